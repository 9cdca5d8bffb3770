//! What every feature of the window is to the app: it applies the commands that are its
//! own and takes the engine's answers to the requests it sent, handing anything else back.
//! The features are in `features/`, one module each; the app tries them in turn.

use crate::command::Command;
use crate::GlassboxApp;
use glassbox_engine::worker::{Kind, Response};

pub(crate) trait Feature {
    /// Applies `cmd` if it is this feature's; hands it back otherwise.
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command>;

    /// Takes `r`, the answer to a request of kind `job`, if it is this feature's; hands it
    /// back otherwise.
    fn respond(&self, _app: &mut GlassboxApp, _job: Kind, r: Response) -> Option<Response> {
        Some(r)
    }

    /// Stops what this feature has running (Esc: cancel all work).
    fn cancel(&self, _app: &mut GlassboxApp) {}
}
