//! The help window (F1): shortcuts, and what each view and method shows.

use super::{activations, draw, edits, explanations, filters, input, layers, model, prediction, train};
use crate::command::Command;
use glassbox_engine::explain::METHODS;

pub fn window(ctx: &egui::Context, out: &mut Vec<Command>) {
    let mut open = true;
    egui::Window::new("Help").open(&mut open).show(ctx, |ui| {
        egui::Grid::new("keys").num_columns(2).show(ui, |ui| {
            for (k, v) in [
                ("Ctrl+1 … Ctrl+4", "the layouts: See why, Edit, Retrain, Teach"),
                ("Ctrl+O", "open an image"),
                ("Ctrl+M", "open a model (.safetensors / .pth)"),
                ("Ctrl+Shift+V", "paste an image from the clipboard"),
                ("Ctrl+S", "export the first explanation as PNG"),
                ("Ctrl+N", "add a method side by side"),
                ("Ctrl+Z / Ctrl+Shift+Z", "undo / redo the last edit of the model"),
                ("1 … 9", "explain that class of the prediction"),
                (
                    "Esc",
                    "a maximised view back in its layout; else cancel long computations (training too)",
                ),
                ("F1", "this help"),
                ("F5", "presentation mode: large type, high contrast, pointer ring"),
                (
                    "PageDown / PageUp",
                    "one view after the other, full window (Esc: all views)",
                ),
                ("Ctrl+plus / Ctrl+minus", "zoom everything"),
            ] {
                ui.monospace(k);
                ui.label(v);
                ui.end_row();
            }
        });
        ui.separator();
        for (name, tip) in [
            ("Input", input::TIP),
            ("Draw a digit", draw::TIP),
            ("Prediction", prediction::TIP),
            ("Explanation", explanations::TIP),
            ("Activations", activations::TIP),
            ("Filters", filters::TIP),
            ("Model", model::TIP),
            ("Layers", layers::TIP),
            ("Edits", edits::TIP),
            ("Retrain", train::TIP),
        ] {
            ui.label(format!("{name}: {tip}"));
        }
        for m in METHODS {
            ui.label(format!("{}: {}", m.name(), m.describe()));
        }
    });
    if !open {
        out.push(Command::ToggleHelp);
    }
}
