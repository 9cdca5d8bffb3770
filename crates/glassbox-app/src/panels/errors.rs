//! The red bar: what went wrong and what to do; a restart when the engine was lost.

use egui::{Color32, RichText, Ui};

use crate::command::Command;
use crate::widgets::Ctx;

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    egui::Frame::new()
        .fill(Color32::from_rgb(120, 30, 30))
        .inner_margin(6.0)
        .show(ui, |ui| {
            for e in &cx.state.errors {
                ui.label(RichText::new(format!("Error: {e}")).color(Color32::WHITE));
            }
            if cx.state.engine_lost && cx.state.errors.is_empty() {
                ui.label(RichText::new("The engine is stopped.").color(Color32::WHITE));
            }
            ui.horizontal(|ui| {
                if ui.button("Dismiss").clicked() {
                    out.push(Command::DismissErrors);
                }
                if cx.state.engine_lost
                    && ui
                        .button("Restart engine")
                        .on_hover_text("Start the engine again and reopen the model and image.")
                        .clicked()
                {
                    out.push(Command::RestartEngine);
                }
            });
        });
}
