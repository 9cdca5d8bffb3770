//! Two models side by side: a model pinned as A (the model as it is now, before its edits,
//! before its retraining, or a file) against the current model, B. The pin stays while the
//! user edits, retrains or opens another model; comparing shows what changed.

use image::RgbImage;

use super::types::{Compared, ComparedAccuracy, PinSource, Pinned};
use super::{Session, NO_MODEL};
use crate::compare;
use crate::error::{Error, Result};
use crate::evaluate::{self, Evaluation};
use crate::explain::{Method, Params};
use crate::metrics::duplicate;
use crate::model::{Model, ModelSource};

impl Session {
    /// Pins model A; returns what it is, in words.
    pub fn pin(&mut self, source: &PinSource) -> Result<String> {
        let (model, what) = match source {
            PinSource::Current => {
                let m = self.model()?;
                let n = self.editor.log().len();
                let edits = if n == 0 {
                    String::new()
                } else {
                    format!(" with its {n} edit(s)")
                };
                (duplicate(m), format!("{}{edits}, as pinned", m.source.short_name()))
            }
            PinSource::BeforeEdits => {
                let n = self.editor.log().len();
                if n == 0 {
                    return Err(Error::invalid(
                        "the model has no edits: there is nothing before them to compare with",
                    ));
                }
                let m = self.model.as_mut().ok_or_else(|| Error::invalid(NO_MODEL))?;
                self.editor.go_to(m, 0)?;
                let before = duplicate(m);
                self.editor.go_to(m, n)?;
                let what = format!("{} before its {n} edit(s)", m.source.short_name());
                (before, what)
            }
            PinSource::BeforeRetraining => {
                let base = match (&self.training, &self.before_retraining) {
                    (Some(c), _) => &c.base,
                    (None, Some(b)) => b,
                    (None, None) => {
                        return Err(Error::invalid(
                            "no retraining in this session: train the model first (Retrain), then compare",
                        ))
                    }
                };
                (
                    duplicate(base),
                    format!("{} before the retraining", base.source.short_name()),
                )
            }
            PinSource::File(p) => {
                let m = Model::open(ModelSource::from(p.to_string_lossy().as_ref()), None, self.device)?;
                let what = m.source.short_name();
                (m, what)
            }
        };
        self.pinned = Some(Pinned {
            model,
            what: what.clone(),
        });
        Ok(what)
    }

    /// Forgets model A.
    pub fn unpin(&mut self) {
        self.pinned = None;
    }

    fn pinned(&self) -> Result<&Pinned> {
        self.pinned
            .as_ref()
            .ok_or_else(|| Error::invalid("no model is pinned as A: pin one first (Compare > Pin)"))
    }

    /// A (pinned) against B (the current model): weights, and on the current image both
    /// top-k with the change, `method`'s map of the same class for both, and their difference.
    pub fn compare(&self, top: usize, method: Method, params: &Params) -> Result<Compared> {
        let p = self.pinned()?;
        let b = self.model()?;
        if p.model.spec.arch != b.spec.arch {
            return Err(Error::invalid(format!(
                "A ({}) is {} and B is {}: compare two versions of one architecture",
                p.what, p.model.spec.arch, b.spec.arch
            )));
        }
        let weights = compare::weight_changes(&p.model, b);
        let (image, pictures) = match (&self.input, &self.view) {
            (Some(x), Some(view)) => {
                let c = compare::image(&p.model, b, x, top, method, params)?;
                let pics = compare::pictures(view, &c, method);
                (Some(c), pics)
            }
            _ => (None, None),
        };
        Ok(Compared {
            a: p.what.clone(),
            b: b.source.short_name(),
            weights,
            image,
            pictures,
        })
    }

    /// The kernels of convolution `conv` in A and in B, as pictures.
    pub fn compare_filters(&self, conv: &str, per_input: bool) -> Result<(RgbImage, RgbImage)> {
        let a = super::filter_picture(&self.pinned()?.model, conv, per_input)?;
        let (_, b) = self.filters(conv, per_input)?;
        Ok((a, b))
    }

    /// A's and B's per-class accuracy on labelled images (a class only one of them has counts
    /// for that one), most changed first.
    pub fn compare_accuracy(
        &self,
        set: &super::EvalSet,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<ComparedAccuracy> {
        let a = &self.pinned()?.model;
        let b = self.model()?;
        // A data set is labelled by index, the same for both: read once. A folder is
        // labelled by each model's own classes.
        let (la, lb) = match set {
            super::EvalSet::Dataset(d) => (evaluate::dataset(*d)?, None),
            super::EvalSet::Folder(dir) => (
                evaluate::folder_known(a, dir)?.0,
                Some(evaluate::folder_known(b, dir)?.0),
            ),
        };
        let lb = lb.as_ref().unwrap_or(&la);
        let total = la.len() + lb.len();
        let mut one = |m: &Model, set: &evaluate::Labelled, offset: usize| -> Result<Option<Evaluation>> {
            if set.is_empty() {
                return Ok(None);
            }
            evaluate::evaluate(m, set, &mut |d, _| progress(offset + d, total)).map(Some)
        };
        let ea = one(a, &la, 0)?;
        let eb = one(b, lb, la.len())?;
        let changes = match (&ea, &eb) {
            (Some(x), Some(y)) => compare::accuracies(x, y),
            _ => Vec::new(),
        };
        Ok(ComparedAccuracy { a: ea, b: eb, changes })
    }

    /// The current model (with its whole edit log) as a TorchScript module or safetensors
    /// with PyTorch's keys; `force` replaces an existing file (never the model's own).
    pub fn export(&self, path: &std::path::Path, torchscript: bool, force: bool) -> Result<crate::export::Exported> {
        let m = self.writable_to(path, force)?;
        let log = self.full_log()?;
        if torchscript {
            crate::export::torchscript(m, &log, path)
        } else {
            crate::export::safetensors(m, &log, path)
        }
    }
}
