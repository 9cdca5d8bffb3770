//! A convolution opened up: the value clicked in a channel, computed in the open (patch,
//! kernel, products, sum, bias, batch norm, activation). The channel view asks for it.

use crate::command::Command;
use crate::feature::Feature;
use crate::GlassboxApp;
use glassbox_engine::worker::RequestKind;
use glassbox_engine::worker::{Kind, Response};

/// The value clicked, computed in the open.
pub(crate) struct Unfold;

impl Feature for Unfold {
    fn apply(&self, _app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        Some(cmd)
    }

    fn respond(&self, app: &mut GlassboxApp, job: Kind, r: Response) -> Option<Response> {
        match r {
            Response::Unfolded { result, .. } => {
                app.state.unfolded = Some(*result);
                app.state.unfold_error = None;
            }
            Response::Failed { message, .. } if job.request == RequestKind::Unfold => {
                app.state.unfolded = None;
                app.state.unfold_error = Some(message);
            }
            other => return Some(other),
        }
        None
    }
}
