//! The classroom and the window's arrangement: the four layouts (each remembered as the
//! user arranged it), a pane maximised, presentation mode (large type, a pointer
//! highlight), one view alone in the window (PageUp / PageDown walk through them), and the
//! "Explain this" window.

use crate::command::Command;
use crate::feature::Feature;
use crate::GlassboxApp;

/// Layouts, presentation mode, focus, Explain this.
pub(crate) struct Presentation;

impl Feature for Presentation {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::ExplainThis(t) => app.state.explain_this = t,
            Command::Present(on) => {
                app.state.present = on;
                if !on {
                    app.state.focus = None;
                }
            }
            Command::Focus(f) => app.state.focus = f,
            Command::Layout(l) => {
                app.layouts.current = l;
                app.layouts.maximised = None;
            }
            Command::ResetLayout => app.layouts.reset_current(),
            Command::Maximise(p) => app.layouts.maximised = p,
            Command::Show(p) => app.layouts.show(p),
            other => return Some(other),
        }
        None
    }
}
