//! Retraining: a run makes a candidate (the model it started from is kept), which the
//! timeline scrubs, whose confusion cells open, and which is accepted or discarded.

use std::sync::Arc;

use super::{Candidate, CellImage, Explained, ImageSource, ModelInfo, Session, Trained};
use crate::error::{Error, Result};
use crate::explain::{self, Method, Params};
use crate::finetune::{self, Config, Control, DataSource, Event, Hooks};
use crate::model::{Class, Model};
use crate::{defaults, render};

impl Session {
    /// A run on the current model (or from scratch); its result becomes the model, and the
    /// model it started from is kept until the candidate is accepted or discarded (a second
    /// run keeps the first one's starting point). `on_event` returns false to stop.
    pub fn train(
        &mut self,
        source: &DataSource,
        config: &Config,
        control: &Arc<Control>,
        on_event: &mut dyn FnMut(Event) -> bool,
    ) -> Result<Trained> {
        let m = self.model()?;
        let out = finetune::finetune(
            m,
            source,
            config,
            &mut Hooks {
                event: on_event,
                control,
            },
        )?;
        let probe = match &self.image {
            Some(img) => {
                let top = |m: &Model| -> Result<Vec<Class>> {
                    let x = m.preprocess.prepare(img).tensor;
                    Ok(m.top_k(&m.logits(&x), 5)?.remove(0))
                };
                Some((top(m)?, top(&out.model)?))
            }
            None => None,
        };
        let info = ModelInfo::of(&out.model);
        let started = self.model.replace(out.model).expect("a model was open");
        let editor = std::mem::take(&mut self.editor);
        let (base, base_editor) = match self.training.take() {
            Some(c) => (c.base, c.base_editor),
            None => (started, editor),
        };
        let timeline = out.timeline.epochs();
        self.training = Some(Candidate {
            base,
            base_editor,
            timeline: out.timeline,
            val: out.val,
        });
        self.model_changed();
        self.prepare_again();
        Ok(Trained {
            summary: Box::new(out.summary),
            timeline,
            info,
            probe,
        })
    }

    /// The run that made the candidate, or what to do first.
    fn candidate(&self) -> Result<(&Model, &Candidate)> {
        match (&self.model, &self.training) {
            (Some(m), Some(c)) => Ok((m, c)),
            _ => Err(Error::invalid("no retrained model: train one first")),
        }
    }

    /// The candidate's weights at point `n` of its timeline; returns that point's epoch.
    pub fn scrub(&mut self, n: usize) -> Result<usize> {
        let (m, c) = self.candidate()?;
        c.timeline.restore(m, n)?;
        let epoch = c.timeline.snapshots[n].0;
        self.model_changed();
        Ok(epoch)
    }

    /// The validation images of one confusion cell, each with the Grad-CAM map of the class
    /// the candidate predicts over it.
    pub fn cell(&self, truth: usize, predicted: usize, keep_going: &dyn Fn() -> bool) -> Result<Vec<CellImage>> {
        let (m, c) = self.candidate()?;
        let size = m.preprocess.size as i64;
        let mut images = Vec::new();
        for i in c.val.cell(truth, predicted, defaults::CELL_IMAGES) {
            let view = c.val.picture(i)?;
            let x = finetune::normalise(m, &c.val.images.get(i as i64).unsqueeze(0));
            let top = m.top_k(&m.logits(&x), 1)?.remove(0).remove(0);
            let params = Params {
                target: Some(top.index),
                ..Params::default()
            };
            let e = explain::explain(m, &x, Method::GradCam, &params, &mut |_| keep_going())?;
            let e = Explained::of(&e, size)?;
            let overlay = render::overlay(
                &view,
                &e.map,
                render::Colormap::default_for(Method::GradCam),
                defaults::OVERLAY_OPACITY,
                defaults::OVERLAY_CLIP,
                true,
            );
            let file = c.val.files[i].as_deref();
            let name = match file {
                Some(p) => p
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                None => format!("validation image {i}"),
            };
            images.push(CellImage {
                name: name.clone(),
                source: ImageSource::of(file, &name, &view),
                overlay,
                predicted: top.label,
                probability: top.probability,
            });
        }
        Ok(images)
    }

    /// Keeps the candidate (at the point shown) as the model, or goes back to the model the
    /// run started from.
    pub fn close_training(&mut self, accept: bool) -> Result<ModelInfo> {
        let c = self
            .training
            .take()
            .ok_or_else(|| Error::invalid("no retrained model to keep or discard"))?;
        if accept {
            self.before_retraining = Some(c.base);
        } else {
            self.model = Some(c.base);
            self.editor = c.base_editor;
        }
        self.model_changed();
        self.prepare_again();
        self.info()
    }

    /// Whether a retrained candidate waits to be accepted or discarded.
    pub fn has_candidate(&self) -> bool {
        self.training.is_some()
    }
}
