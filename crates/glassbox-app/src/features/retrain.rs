//! Retraining in place: the form, the run with its live reports (pause, learning rate,
//! cancel), the candidate's timeline and confusion cells, and keeping or discarding it.

use crate::command::Command;
use crate::command::TrainCommand;
use crate::feature::Feature;
use crate::textures::Which;
use crate::GlassboxApp;
use glassbox_engine::worker::{Kind, Response};
use glassbox_engine::worker::{Request, TrainKind, TrainRequest};

/// Retraining and its candidate.
pub(crate) struct Retrain;

impl Feature for Retrain {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Train(t) => app.train(t),
            other => return Some(other),
        }
        None
    }

    fn respond(&self, app: &mut GlassboxApp, job: Kind, r: Response) -> Option<Response> {
        match r {
            Response::Training { event, .. } => {
                use glassbox_engine::finetune::Event;
                let tr = &mut app.state.training;
                match event {
                    Event::Plan(p) => tr.plan = Some(p),
                    Event::Features { done, total } => tr.features = Some((done, total)),
                    Event::Step {
                        epoch,
                        step,
                        steps,
                        loss,
                        elapsed,
                        ..
                    } => {
                        tr.step = Some((epoch, step, steps, elapsed));
                        tr.losses.push([(epoch - 1) as f64 + step as f64 / steps as f64, loss]);
                    }
                    Event::Epoch(e) => tr.epochs.push(e),
                    Event::Paused => {}
                }
            }
            Response::Trained {
                summary,
                timeline,
                info,
                probe,
                ..
            } => {
                let tr = &mut app.state.training;
                tr.running = None;
                tr.control = None;
                tr.paused = false;
                tr.note = summary.note.clone();
                tr.epochs = summary.epochs.clone();
                tr.point = timeline.len().saturating_sub(1);
                tr.cell = None;
                tr.result = Some(crate::state::TrainResult {
                    summary,
                    timeline,
                    probe,
                });
                let base_retrained = app.state.unsaved.retrained;
                app.lesson_model_follows(&info.source);
                app.on_model(info);
                // The candidate is in no file; the model it started from may not be either.
                app.state.unsaved.base_retrained = base_retrained;
                app.state.unsaved.retrained = true;
            }
            Response::Scrubbed { .. } => app.refresh_views(),
            Response::Cell {
                truth,
                predicted,
                images,
                ..
            } => {
                for (k, img) in images.iter().enumerate() {
                    app.tex.set(&app.ctx, Which::Cell(k), &img.overlay);
                }
                app.state.training.cell = Some((truth, predicted, images));
            }
            Response::TrainingClosed { accepted, info, .. } => {
                let tr = &mut app.state.training;
                tr.result = None;
                tr.cell = None;
                app.state.notice = Some(if accepted {
                    "kept the retrained model (save it to keep it after this session)".into()
                } else {
                    "discarded the retrained model: the model before training is back".into()
                });
                app.lesson_model_follows(&info.source);
                app.on_model(info);
                let u = &mut app.state.unsaved;
                u.retrained = if accepted { true } else { u.base_retrained };
            }
            Response::Cancelled { .. } if job.train == Some(TrainKind::Start) => {
                let tr = &mut app.state.training;
                tr.running = None;
                tr.control = None;
                tr.paused = false;
                tr.note = Some("training cancelled: the model is as it was before".into());
            }
            Response::Failed { message, .. } if job.train == Some(TrainKind::Start) => {
                let tr = &mut app.state.training;
                tr.running = None;
                tr.control = None;
                tr.paused = false;
                app.state.errors.push(format!("{message}. The model is as it was."));
            }
            other => return Some(other),
        }
        None
    }

    fn cancel(&self, app: &mut GlassboxApp) {
        app.train(TrainCommand::Cancel);
    }
}

impl GlassboxApp {
    /// Retraining commands: the run goes to the engine; pause and the learning rate go
    /// through the run's shared controls.
    pub(crate) fn train(&mut self, t: TrainCommand) {
        let tr = &mut self.state.training;
        match t {
            TrainCommand::Form(f) => tr.form = f,
            TrainCommand::Data(d) => tr.form.source = Some(d),
            TrainCommand::Start => {
                if tr.running.is_some() {
                    return;
                }
                let Some(source) = tr.form.source.clone() else {
                    self.state
                        .errors
                        .push("pick the data to train on first: a folder of labelled images or a data set".into());
                    return;
                };
                let config = match tr.form.config() {
                    Ok(c) => c,
                    Err(e) => {
                        self.state.errors.push(format!("training not started: {e}"));
                        return;
                    }
                };
                let control = std::sync::Arc::new(glassbox_engine::finetune::Control::default());
                tr.control = Some(control.clone());
                tr.paused = false;
                tr.plan = None;
                tr.epochs.clear();
                tr.losses.clear();
                tr.step = None;
                tr.features = None;
                tr.note = None;
                tr.cell = None;
                tr.new_lr = tr.form.lr.clone();
                let id = self.send(Request::Train(TrainRequest::Start {
                    source,
                    config,
                    control,
                }));
                self.state.training.running = Some(id);
            }
            TrainCommand::Pause(on) => {
                if let Some(c) = &tr.control {
                    c.pause(on);
                    tr.paused = on;
                }
            }
            TrainCommand::SetLr(text) => {
                tr.new_lr = text.clone();
                let set = text
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("the learning rate `{text}` is not a number"))
                    .and_then(|lr| match &tr.control {
                        Some(c) if tr.running.is_some() => c.set_lr(lr).map_err(|e| e.to_string()),
                        _ => Err("no training is running".into()),
                    });
                if let Err(e) = set {
                    self.state.errors.push(e);
                }
            }
            TrainCommand::Cancel => {
                if let Some(id) = tr.running {
                    self.engine.cancel(id);
                    if let Some(c) = &tr.control {
                        c.pause(false);
                    }
                }
            }
            TrainCommand::Scrub(n) => {
                tr.point = n;
                self.send(Request::Train(TrainRequest::Scrub(n)));
            }
            TrainCommand::Cell { truth, predicted } => {
                self.send(Request::Train(TrainRequest::Cell { truth, predicted }));
            }
            TrainCommand::Accept => {
                self.send(Request::Train(TrainRequest::Accept));
            }
            TrainCommand::Discard => {
                self.send(Request::Train(TrainRequest::Discard));
            }
        }
    }
}
