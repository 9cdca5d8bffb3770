//! The activations: the chosen layer's channels as a grid, strongest first; a click picks a
//! channel (shown by the channel panel beside it) and the receptive field of that pixel.

use egui::{Sense, Ui, Vec2};

use crate::command::Command;
use crate::textures::Which;
use crate::widgets::Ctx;
use glassbox_engine::render::tile_scale;

pub const TIP: &str =
    "Every channel of the chosen layer for this image, strongest first; click a channel to inspect it.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    super::explain_this::what_is_this(ui, crate::state::Topic::Activations, out);
    let Some(ch) = &s.channels else {
        ui.label("pick a layer in Layers");
        return;
    };
    let scale = tile_scale(ch);
    ui.horizontal_wrapped(|ui| {
        ui.label(format!(
            "`{}`: {} channels of {}×{}, strongest first (mean activation)",
            ch.layer, ch.c, ch.h, ch.w
        ));
        if s.original_channels.is_some() {
            let mut change = s.show_change;
            if ui
                .checkbox(&mut change, "show the change")
                .on_hover_text("The grid shows edited minus original: red where the edits raised an activation, blue where they lowered it.")
                .changed()
            {
                out.push(Command::SetShowChange(change));
            }
        }
        let mut shared = s.settings.shared_scale;
        if ui
            .checkbox(&mut shared, "one colour scale")
            .on_hover_text("One scale for all channels (compare strengths), or one per channel (see shapes).")
            .changed()
        {
            out.push(Command::SetSharedScale(shared));
        }
    });
    ui.horizontal_top(|ui| {
        egui::ScrollArea::both().id_salt("grid").show(ui, |ui| {
            if let (Some(t), Some((_, layout))) = (cx.tex.get(Which::Grid), &s.grid) {
                let h = t.handle.as_ref().expect("a texture with a picture");
                // As wide as the view (up to twice its pixels): a projector's room sees it.
                let z = (ui.available_width() / t.size[0] as f32).clamp(1.0, 2.0);
                let size = Vec2::new(t.size[0] as f32, t.size[1] as f32) * z;
                let r = ui
                    .add(egui::Image::new((h.id(), size)).sense(Sense::click()))
                    .on_hover_text("Click a channel to inspect it and see the receptive field of that pixel.");
                // Knocked-out channels of this layer are crossed out.
                for (l, c) in &s.knockouts {
                    if *l != ch.layer {
                        continue;
                    }
                    if let Some(k) = ch.order.iter().position(|o| o.0 as i64 == *c) {
                        let (col, row) = (k % layout.cols, k / layout.cols);
                        let min = r.rect.min
                            + z * Vec2::new(
                                (col * (layout.tile_w + layout.gap)) as f32,
                                (row * (layout.tile_h + layout.gap)) as f32,
                            );
                        let tile =
                            egui::Rect::from_min_size(min, z * Vec2::new(layout.tile_w as f32, layout.tile_h as f32));
                        let stroke = egui::Stroke::new(2.0, egui::Color32::from_rgb(230, 60, 60));
                        ui.painter()
                            .line_segment([tile.left_top(), tile.right_bottom()], stroke);
                        ui.painter()
                            .line_segment([tile.right_top(), tile.left_bottom()], stroke);
                    }
                }
                if r.clicked() {
                    if let Some(pos) = r.interact_pointer_pos() {
                        let local = (pos - r.rect.min) / z;
                        if let Some((k, y, x)) = layout.hit(local.x, local.y, scale) {
                            if let Some(o) = ch.order.get(k) {
                                out.push(Command::SelectChannel {
                                    channel: o.0,
                                    at: Some((y, x)),
                                });
                            }
                        }
                    }
                }
            }
        });
    });
}
