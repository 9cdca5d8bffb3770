//! The scoreboard: every method scored on the current image (which map to trust), or one
//! CAM method at each candidate layer (which layer to look at). A new image, edit or model
//! makes the board stale: it is cleared when everything is analysed again.

use crate::command::Command;
use crate::feature::Feature;
use crate::GlassboxApp;
use glassbox_engine::worker::{Kind, Request, RequestKind, Response};

pub(crate) struct Score;

impl Feature for Score {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Score(layers_of) => {
                app.cancel_scores();
                let params = app.base_params();
                let id = app.send(Request::Score { layers_of, params });
                app.state.scores = crate::state::Scores {
                    running: Some(id),
                    ..Default::default()
                };
            }
            other => return Some(other),
        }
        None
    }

    fn respond(&self, app: &mut GlassboxApp, job: Kind, r: Response) -> Option<Response> {
        let s = &mut app.state.scores;
        match r {
            Response::Scored { result, .. } => {
                *s = crate::state::Scores {
                    board: Some(*result),
                    ..Default::default()
                };
            }
            Response::Progress { done, total, .. } if job.request == RequestKind::Score => {
                s.progress = Some((done, total));
            }
            Response::Cancelled { .. } if job.request == RequestKind::Score => {
                s.running = None;
                s.progress = None;
            }
            Response::Failed { message, .. } if job.request == RequestKind::Score => {
                s.running = None;
                s.progress = None;
                s.error = Some(message);
            }
            other => return Some(other),
        }
        None
    }

    fn cancel(&self, app: &mut GlassboxApp) {
        app.cancel_scores();
    }
}

impl GlassboxApp {
    /// Stops the scoreboard's work, if any.
    pub(crate) fn cancel_scores(&mut self) {
        if let Some(id) = self.state.scores.running.take() {
            self.abandon(id);
        }
        self.state.scores.progress = None;
    }
}
