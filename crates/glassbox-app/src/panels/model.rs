//! The model: architecture, weights file, size, classes, input, layers, device, labels.

use egui::Ui;

use crate::command::Command;
use crate::widgets::Ctx;

pub const TIP: &str = "The open network: architecture, size, layers and the device it runs on.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    super::explain_this::what_is_this(ui, crate::state::Topic::Model, out);
    let Some(m) = &s.model else {
        ui.label("opening…");
        return;
    };
    egui::Grid::new("model-grid")
        .num_columns(2)
        .striped(true)
        .show(ui, |ui| {
            for (k, v) in [
                ("architecture", m.arch.clone()),
                // The file name; the full path is its tooltip.
                ("weights", m.source.short_name()),
                (
                    "parameters",
                    format!("{:.2} M ({})", m.parameters as f64 / 1e6, m.parameters),
                ),
                ("classes", m.classes.to_string()),
                ("input", m.input.clone()),
                ("layers", m.layers.len().to_string()),
                ("convolutions", m.convs.len().to_string()),
                ("device", m.device.clone()),
            ] {
                ui.label(k);
                let r = ui.label(v);
                if k == "weights" {
                    r.on_hover_text(m.source.to_string());
                }
                ui.end_row();
            }
        });
    ui.collapsing(format!("Labels ({})", m.labels.len()), |ui| {
        egui::ScrollArea::vertical()
            .id_salt("labels")
            .max_height(160.0)
            .show(ui, |ui| {
                for (i, l) in m.labels.iter().enumerate() {
                    ui.label(format!("{i}: {l}"));
                }
            });
    });
}
