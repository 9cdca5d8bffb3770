//! Nothing lost: before anything replaces what no file holds yet (opening another model by
//! any path, closing the window), the question; then Save… / Discard / Cancel.

use crate::command::{Command, DialogKind};
use crate::feature::Feature;
use crate::unsaved::{Answer, Question, Then};
use crate::GlassboxApp;

/// The question before a loss, and its answers.
pub(crate) struct Unsaved;

impl Feature for Unsaved {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Answer(a) => app.answer(a),
            other => return Some(other),
        }
        None
    }
}

impl GlassboxApp {
    /// True when `then` must wait for the user's answer (the question is then on screen).
    pub(crate) fn ask_first(&mut self, then: Then) -> bool {
        let lose = self.state.at_risk();
        if lose.is_empty() {
            return false;
        }
        self.state.unsaved.question = Some(Question {
            then,
            lose,
            saving: false,
        });
        true
    }

    /// Applies the user's answer to the question on screen.
    pub(crate) fn answer(&mut self, a: Answer) {
        let Some(q) = self.state.unsaved.question.as_mut() else {
            return;
        };
        match a {
            Answer::Cancel => self.state.unsaved.question = None,
            Answer::Save => {
                q.saving = true;
                self.apply(Command::Dialog(DialogKind::SaveModel));
            }
            Answer::Discard => {
                let then = q.then.clone();
                self.state.unsaved.question = None;
                self.go_on(then);
            }
        }
    }

    /// The model was saved: its edits and retraining are in a file now, and what waited for
    /// Save… goes on.
    pub(crate) fn saved(&mut self) {
        let u = &mut self.state.unsaved;
        u.saved_edits = Some(self.state.edits.clone());
        u.retrained = false;
        if u.question.as_ref().is_some_and(|q| q.saving) {
            let then = u.question.take().map(|q| q.then);
            if let Some(then) = then {
                self.go_on(then);
            }
        }
    }

    /// What waited, done without asking again.
    pub(crate) fn go_on(&mut self, then: Then) {
        match then {
            Then::Open(model, arch) => self.send_open_model(model, arch),
            Then::Quit => {
                self.state.unsaved.quit_confirmed = true;
                self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }
    }

    /// The window's close button (or the system's): asked first when something would be lost.
    pub(crate) fn on_close_requested(&mut self, ctx: &egui::Context) {
        if !ctx.input(|i| i.viewport().close_requested()) || self.state.unsaved.quit_confirmed {
            return;
        }
        if self.ask_first(Then::Quit) {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        }
    }
}
