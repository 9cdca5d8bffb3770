//! Edits by hand (the engine keeps them in order, undoable): the edit list, saving the
//! edited model, and what the edits broke on labelled images.

use crate::command::Command;
use crate::feature::Feature;
use crate::GlassboxApp;
use glassbox_engine::worker::Request;
use glassbox_engine::worker::{Kind, Response};

/// Edits by hand, saving, evaluating.
pub(crate) struct Edits;

impl Feature for Edits {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Edit(e) => {
                app.send(Request::Edit(e));
            }
            other => return Some(other),
        }
        None
    }

    fn respond(&self, app: &mut GlassboxApp, _job: Kind, r: Response) -> Option<Response> {
        match r {
            Response::Edited {
                log,
                redoable,
                knockouts,
                ..
            } => {
                app.state.edits = log;
                app.state.redoable = redoable;
                app.state.knockouts = knockouts;
                if app.state.edits.is_empty() {
                    app.state.original_top = None;
                }
                // Every view follows the edited model: prediction, maps, channels, kernels.
                app.refresh_views();
            }
            Response::Saved { path, .. } => {
                app.state.notice = Some(format!("saved the edited model as {}", path.display()));
                app.saved();
            }
            Response::Evaluated {
                edited,
                original,
                changes,
                ..
            } => {
                app.state.evaluation = Some(crate::state::Evaluated {
                    edited: edited.accuracy,
                    original: original.accuracy,
                    images: edited.images,
                    changes,
                });
            }

            other => return Some(other),
        }
        None
    }
}
