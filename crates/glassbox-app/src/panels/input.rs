//! The input: the image as the model sees it, or the receptive field drawn on it.

use egui::Ui;

use crate::command::Command;
use crate::textures::Which;
use crate::widgets::{fit, Ctx};

pub const TIP: &str = "The image as the model sees it: resized and centre-cropped to its input size.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    crate::widgets::heading(ui, "Input", TIP, crate::state::Topic::Input, out);
    let s = cx.state;
    let Some(input) = &s.input else {
        ui.label("Drop an image on the window, open one, paste one or pick a sample.");
        return;
    };
    ui.label(format!(
        "{} — {}×{}, seen as {}×{}",
        input.name,
        input.original.0,
        input.original.1,
        input.view.width(),
        input.view.height()
    ));
    let width = ui.available_width().min(300.0);
    let field = cx.tex.get(Which::Field).filter(|_| s.field.is_some());
    if let Some(tex) = field.or(cx.tex.get(Which::Input)) {
        let h = tex.handle.as_ref().expect("a texture with a picture");
        let r = ui.add(egui::Image::new((h.id(), fit(tex.size, width))));
        if field.is_some() {
            r.on_hover_text("The receptive field: input pixels the chosen activation depends on (box).");
        }
    }
    if let Some(f) = &s.field {
        let text = match f.field.bbox {
            Some((x0, y0, x1, y1)) => format!(
                "receptive field of `{}` at row {}, column {}: {}×{} pixels",
                f.layer,
                f.y,
                f.x,
                x1 - x0 + 1,
                y1 - y0 + 1
            ),
            None => format!("`{}` at ({}, {}) does not depend on any pixel here", f.layer, f.y, f.x),
        };
        ui.label(text);
        if ui.button("Hide receptive field").clicked() {
            out.push(Command::HideField);
        }
    }
}
