//! Nothing lost: what the user made that no file holds yet (edits, a retrained model, kept or
//! not yet kept, a retraining under way), the question asked before anything replaces it
//! (opening another model by any path: the Models menu, a file dialog, a dropped file, a
//! lesson step; closing the window), and its answers: Save… / Discard / Cancel.
//!
//! One feature in one file: its slice of the state (`Unsaved`), its command (`Answer`), how
//! the app applies it and follows the engine (`GlassboxApp::ask_first`, `answer`,
//! `saved`), and its window (`ui`).

use egui::Ui;

use crate::command::{Command, DialogKind};
use crate::state::State;
use crate::GlassboxApp;
use glassbox_engine::arch::Arch;
use glassbox_engine::model::ModelSource;

/// What waits for the user's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Then {
    /// Open this model (it replaces the one shown, its edits and any candidate).
    Open(ModelSource, Option<Arch>),
    /// Close the window.
    Quit,
}

/// The question on screen: what waits, and what it would lose.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub then: Then,
    pub lose: Vec<String>,
    /// Save… was chosen: `then` follows once the model is saved.
    pub saving: bool,
}

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Save the model (a file dialog), then go on.
    Save,
    /// Go on without saving.
    Discard,
    /// Stay as it is.
    Cancel,
}

/// This feature's part of the state.
#[derive(Debug, Clone, Default)]
pub struct Unsaved {
    /// The edit list when the model was last saved (None: not saved since it opened).
    pub saved_edits: Option<Vec<String>>,
    /// The model shown was retrained in this session and is in no file yet.
    pub retrained: bool,
    /// `retrained` of the model the current run started from (back if it is discarded).
    pub base_retrained: bool,
    pub question: Option<Question>,
    /// Discard was the answer to closing: the window may close now.
    pub quit_confirmed: bool,
}

/// What opening another model or quitting would lose now, in words (empty: nothing).
pub fn at_risk(s: &State) -> Vec<String> {
    let mut lose = Vec::new();
    let tr = &s.training;
    if tr.running.is_some() {
        lose.push("the retraining under way".to_string());
    }
    if tr.result.is_some() {
        lose.push("the retrained model you have not kept or discarded yet".to_string());
    } else if s.unsaved.retrained {
        lose.push("the retrained model you kept (it is in no file yet)".to_string());
    }
    if !s.edits.is_empty() && s.unsaved.saved_edits.as_ref() != Some(&s.edits) {
        let n = s.edits.len();
        let first = s.edits.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        let more = if n > 3 { ", …" } else { "" };
        lose.push(format!(
            "{n} edit{} not saved ({first}{more})",
            if n == 1 { "" } else { "s" }
        ));
    }
    lose
}

impl GlassboxApp {
    /// True when `then` must wait for the user's answer (the question is then on screen).
    pub(crate) fn ask_first(&mut self, then: Then) -> bool {
        let lose = at_risk(&self.state);
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
    fn go_on(&mut self, then: Then) {
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

/// The question, in a modal window over the app: what would be lost and the three answers.
pub fn ui(ctx: &egui::Context, s: &State, out: &mut Vec<Command>) {
    let Some(q) = &s.unsaved.question else { return };
    let modal = egui::Modal::new(egui::Id::unique("unsaved-question")).show(ctx, |ui: &mut Ui| {
        ui.set_max_width(460.0);
        let what = match &q.then {
            Then::Open(m, _) => format!("Opening {} would lose:", m.short_name()),
            Then::Quit => "Closing Glassbox would lose:".to_string(),
        };
        ui.heading("Unsaved changes");
        ui.label(what);
        for l in &q.lose {
            ui.label(format!("• {l}"));
        }
        if q.saving {
            ui.label("Saving: choose where in the file dialog.");
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            let training = s.training.running.is_some();
            if ui
                .add_enabled(!training, egui::Button::new("Save…"))
                .on_hover_text("Save the model with its edits as a new file, then go on.")
                .on_disabled_hover_text("A retraining is under way: cancel it or wait for it first.")
                .clicked()
            {
                out.push(Command::Answer(Answer::Save));
            }
            if ui.button("Discard").on_hover_text("Go on without saving.").clicked() {
                out.push(Command::Answer(Answer::Discard));
            }
            if ui.button("Cancel").on_hover_text("Stay as you are (Esc).").clicked() {
                out.push(Command::Answer(Answer::Cancel));
            }
        });
    });
    // Esc or a click beside the window: Cancel.
    if modal.should_close() {
        out.push(Command::Answer(Answer::Cancel));
    }
}
