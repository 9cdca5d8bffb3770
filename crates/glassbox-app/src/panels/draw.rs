//! Draw a digit: a canvas for the models that read 28x28 gray images (MNIST,
//! Fashion-MNIST). Every stroke is the model's input at once: the prediction, every layer's
//! activations and the maps follow it.

use egui::{Color32, Rect, Sense, Stroke, Ui, Vec2};

use crate::command::{Command, DrawCommand};
use crate::state::CANVAS;
use crate::widgets::Ctx;

pub const TIP: &str = "Draw with the mouse: white strokes on black, as in MNIST. Every stroke updates the prediction and the activations.";

/// Whether the model reads 28x28 gray images (the small models), so drawing makes sense.
pub fn available(cx: &Ctx) -> bool {
    cx.state
        .model
        .as_ref()
        .is_some_and(|m| m.input == format!("1x{CANVAS}x{CANVAS}"))
}

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    if !available(cx) {
        return;
    }
    let c = &cx.state.canvas;
    let draw = |d| Command::Draw(d);
    crate::widgets::heading(ui, "Draw a digit", TIP, crate::state::Topic::Draw, out);
    let side = ui.available_width().clamp(140.0, 224.0);
    let (rect, resp) = ui.allocate_exact_size(Vec2::splat(side), Sense::click_and_drag());
    let cell = side / CANVAS as f32;
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, Color32::BLACK);
    for (i, &v) in c.pixels.iter().enumerate() {
        if v > 0.0 {
            let (x, y) = ((i % CANVAS) as f32, (i / CANVAS) as f32);
            let g = (v * 255.0) as u8;
            painter.rect_filled(
                Rect::from_min_size(rect.min + Vec2::new(x * cell, y * cell), Vec2::splat(cell)),
                0.0,
                Color32::from_gray(g),
            );
        }
    }
    painter.rect_stroke(rect, 0.0, Stroke::new(1.0, Color32::GRAY), egui::StrokeKind::Inside);
    let to_canvas = |p: egui::Pos2| ((p.x - rect.min.x) / cell, (p.y - rect.min.y) / cell);
    if let Some(p) = resp.interact_pointer_pos() {
        if resp.dragged() || resp.drag_started() || resp.clicked() {
            let now = to_canvas(p);
            let delta = resp.drag_delta() / cell;
            let from = if resp.drag_started() || resp.clicked() {
                now
            } else {
                (now.0 - delta.x, now.1 - delta.y)
            };
            out.push(draw(DrawCommand::Stroke { from, to: now }));
        }
    }
    resp.on_hover_text(TIP);
    ui.horizontal(|ui| {
        let mut erase = c.erase;
        if ui.toggle_value(&mut erase, "Eraser").changed() {
            out.push(draw(DrawCommand::Erase(erase)));
        }
        let mut brush = c.brush;
        let l = ui.label("brush");
        if ui
            .add(egui::Slider::new(&mut brush, 0.5..=3.0).fixed_decimals(1))
            .labelled_by(l.id)
            .changed()
        {
            out.push(draw(DrawCommand::Brush(brush)));
        }
        if ui.button("Clear").clicked() {
            out.push(draw(DrawCommand::Clear));
        }
    });
}
