//! One channel: large and over the input, its statistics, and the kernel of the
//! convolution that made it; a click on it shows the receptive field of that pixel.

use egui::{Sense, Ui, Vec2};

use crate::command::Command;
use crate::textures::Which;
use crate::widgets::{fit, shape_text, Ctx};

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    let (Some(d), Some(ch)) = (&s.channel, &s.channels) else {
        return;
    };
    ui.strong(format!("channel {} (rank {} of {})", d.channel, d.stats.rank + 1, ch.c));
    // The two pictures side by side, as large as the view allows.
    let side = ((ui.available_width() - 16.0) / 2.0).clamp(180.0, 420.0);
    ui.horizontal(|ui| {
        if let Some(t) = cx.tex.get(Which::Channel) {
            let h = t.handle.as_ref().expect("a texture with a picture");
            let r = ui
                .add(egui::Image::new((h.id(), Vec2::splat(side))).sense(Sense::click()))
                .on_hover_text("The channel, large. Click a pixel to see its receptive field on the input.");
            if r.clicked() {
                if let Some(pos) = r.interact_pointer_pos() {
                    let local = pos - r.rect.min;
                    let y = ((local.y / r.rect.height()) * ch.h as f32) as usize;
                    let x = ((local.x / r.rect.width()) * ch.w as f32) as usize;
                    out.push(Command::RequestField {
                        layer: ch.layer.clone(),
                        channel: Some(d.channel),
                        y: y.min(ch.h - 1),
                        x: x.min(ch.w - 1),
                    });
                }
            }
        }
        if let Some(t) = cx.tex.get(Which::ChannelOverlay) {
            let h = t.handle.as_ref().expect("a texture with a picture");
            ui.add(egui::Image::new((h.id(), Vec2::splat(side))))
                .on_hover_text("The channel over the input: where in the image it fires.");
        }
    });
    let st = d.stats;
    egui::Grid::new("channel-stats").num_columns(4).show(ui, |ui| {
        ui.label("mean");
        ui.label(format!("{:.3}", st.mean));
        ui.label("std");
        ui.label(format!("{:.3}", st.std));
        ui.end_row();
        ui.label("min");
        ui.label(format!("{:.3}", st.min));
        ui.label("max");
        ui.label(format!("{:.3}", st.max));
        ui.end_row();
        ui.label("active");
        ui.label(format!("{:.0} %", st.active * 100.0));
        ui.end_row();
    });
    match (&d.kernel, &d.kernel_error) {
        (Some((conv, shape, _)), _) => {
            ui.label(format!("made by `{conv}`, kernel {}", shape_text(shape)))
                .on_hover_text(
                    "The weights of the convolution that produced this channel, one tile per input channel.",
                );
            if let Some(t) = cx.tex.get(Which::Kernel) {
                let h = t.handle.as_ref().expect("a texture with a picture");
                let size = fit(t.size, 360.0);
                let size = if size.y > 160.0 { size * (160.0 / size.y) } else { size };
                ui.add(egui::Image::new((h.id(), size)));
            }
        }
        (None, Some(e)) => {
            ui.label(e);
        }
        _ => {}
    }
    super::edits::kernel_editor(ui, cx, d, out);
}
