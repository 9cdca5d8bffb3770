//! The filters: a convolution's kernels as pictures (the first layer in colour, 1x1
//! convolutions as a channel-mixing matrix); it follows the chosen layer.

use egui::{Ui, Vec2};

use crate::command::Command;
use crate::textures::Which;
use crate::widgets::{shape_text, Ctx};

pub const TIP: &str = "The convolution kernels of a layer as pictures: red positive, blue negative weights.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    super::explain_this::what_is_this(ui, crate::state::Topic::Filters, out);
    let convs = s.model.as_ref().map(|m| m.convs.clone()).unwrap_or_default();
    let current = s.settings.filter_conv.clone().unwrap_or_default();
    let mut conv = current.clone();
    ui.horizontal(|ui| {
        egui::ComboBox::new("filter-conv", "convolution")
            .selected_text(&conv)
            .height(400.0)
            .show_ui(ui, |ui| {
                for c in &convs {
                    ui.selectable_value(&mut conv, c.clone(), c);
                }
            });
        let mut per_input = s.settings.per_input;
        if ui
            .checkbox(&mut per_input, "one tile per input channel")
            .on_hover_text("Deeper kernels: show each input channel's slice instead of their average.")
            .changed()
        {
            out.push(Command::SetPerInput(per_input));
        }
    });
    if conv != current && !conv.is_empty() {
        out.push(Command::SetFilterConv(conv));
    }
    if let Some((c, shape, _)) = &s.filters {
        ui.horizontal(|ui| {
            let id = egui::Id::unique("filter-to-edit");
            let mut o: usize = ui.data(|d| d.get_temp(id)).unwrap_or(0);
            let l = ui.label("filter");
            ui.add(egui::DragValue::new(&mut o).range(0..=(shape[0].max(1) - 1) as usize))
                .labelled_by(l.id);
            ui.data_mut(|d| d.insert_temp(id, o));
            if ui
                .button("Edit this filter")
                .on_hover_text("Open the filter in the editor: its values, to paint, and its operations.")
                .clicked()
            {
                out.push(Command::EditFilter {
                    conv: c.clone(),
                    out: o,
                });
            }
        });
    }
    if let (Some((c, shape, _)), Some(t)) = (&s.filters, cx.tex.get(Which::Filters)) {
        let is_1x1 = shape.len() == 4 && shape[2] == 1 && shape[3] == 1;
        ui.label(format!(
            "`{c}`: {} kernels {}{}",
            shape[0],
            shape_text(shape),
            if is_1x1 {
                " — a 1×1 convolution mixes channels: rows are outputs, columns inputs"
            } else if shape.get(1) == Some(&3) {
                " — first layer, in colour"
            } else {
                ""
            }
        ));
        // Small grids (a first layer's few 3x3 kernels) are drawn larger.
        let h = t.handle.as_ref().expect("a texture with a picture");
        let size = t.size;
        let zoom = (360.0 / size[0].max(size[1]) as f32).clamp(1.0, 4.0).floor();
        let shown = Vec2::new(size[0] as f32, size[1] as f32) * zoom;
        egui::ScrollArea::both()
            .id_salt("filters")
            .max_height(420.0)
            .min_scrolled_height(shown.y.min(420.0))
            .show(ui, |ui| {
                ui.add(egui::Image::new((h.id(), shown)));
            });
    }
}
