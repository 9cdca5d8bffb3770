//! The "Unsaved changes" question, in a modal window over the app.

use egui::Ui;

use crate::command::Command;
use crate::state::State;
use crate::unsaved::{Answer, Then};

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
