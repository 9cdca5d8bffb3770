//! Open up a convolution: the value clicked in a channel, computed in the open: the input
//! patch under the kernel, the kernel, their products and sum, the bias, the batch norm,
//! the activation and the result. The arrow keys move to the next position.

use egui::{Color32, RichText, Ui};

use crate::command::Command;
use crate::widgets::Ctx;
use glassbox_engine::convolution::Unfolded;

pub const TIP: &str = "One value of the channel computed step by step: patch times kernel, summed, plus bias, batch norm, activation. Arrow keys move.";

/// A k x k grid of numbers, coloured red (positive) and blue (negative); `dim` greys the
/// cells over the padding.
fn grid(ui: &mut Ui, id: (&str, usize), k: usize, values: &[f32], dim: &[bool]) {
    let max = values.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    egui::Grid::new(id).spacing([2.0, 2.0]).show(ui, |ui| {
        for r in 0..k {
            for c in 0..k {
                let v = values[r * k + c];
                let a = (v.abs() / max * 160.0) as u8;
                let bg = if dim.get(r * k + c).copied().unwrap_or(false) {
                    Color32::from_gray(60)
                } else if v >= 0.0 {
                    Color32::from_rgba_unmultiplied(200, 60, 50, a)
                } else {
                    Color32::from_rgba_unmultiplied(50, 90, 210, a)
                };
                egui::Frame::new().fill(bg).inner_margin(2.0).show(ui, |ui| {
                    ui.label(RichText::new(format!("{v:+.2}")).monospace().small());
                });
            }
            ui.end_row();
        }
    });
}

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    if let Some(e) = &s.unfold_error {
        ui.weak(e);
    }
    let Some(u) = &s.unfolded else { return };
    keys(ui, u, out);
    ui.separator();
    ui.label(
        RichText::new(format!(
            "Inside `{}` channel {} at row {}, column {}",
            u.layer, u.channel, u.y, u.x
        ))
        .strong(),
    )
    .on_hover_text(TIP);
    ui.weak(format!(
        "made by `{}`: a {}x{} kernel, stride {}, {} input channel(s){}; the patch starts at row {}, column {} of its {}x{} input",
        u.conv,
        u.k,
        u.k,
        u.stride,
        u.input_channels,
        if u.groups > 1 { format!(", {} groups", u.groups) } else { String::new() },
        u.top,
        u.left,
        u.input_size.0,
        u.input_size.1
    ));
    let k = u.k as usize;
    for (n, slice) in u.inputs.iter().take(3).enumerate() {
        ui.label(format!("input channel {}", slice.channel));
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.weak("patch");
                grid(ui, ("patch", n), k, &slice.patch, &slice.padding);
            });
            ui.label("×");
            ui.vertical(|ui| {
                ui.weak("kernel");
                grid(ui, ("kernel", n), k, &slice.kernel, &[]);
            });
            ui.label("=");
            ui.vertical(|ui| {
                ui.weak("products");
                grid(ui, ("products", n), k, &slice.products, &slice.padding);
            });
            ui.label(format!("Σ = {:+.4}", slice.sum));
        });
    }
    if u.input_channels > 3 {
        ui.weak(format!(
            "… and {} more input channels, each summed the same way",
            u.input_channels - 3
        ));
    }
    let mut lines = vec![format!(
        "sum over {} input channel(s): {:+.4}",
        u.input_channels, u.total
    )];
    if let Some(b) = u.bias {
        lines.push(format!("+ bias {b:+.4}"));
    }
    lines.push(format!(
        "= {:+.4}   (the network computed {:+.4})",
        u.conv_out, u.network_conv_out
    ));
    if let Some(b) = &u.batch_norm {
        lines.push(format!(
            "batch norm `{}`: {:.3} × ({:+.4} − {:+.4}) / √({:.4} + {}) + {:+.3} = {:+.4}",
            b.layer, b.gamma, u.conv_out, b.mean, b.var, b.eps, b.beta, b.out
        ));
    }
    if let Some((f, v)) = &u.activation {
        lines.push(format!("{f} = {v:+.4}"));
    }
    if let Some(n) = &u.note {
        lines.push(n.clone());
    }
    lines.push(format!("value of `{}` here: {:+.4}", u.layer, u.result));
    for l in lines {
        ui.label(RichText::new(l).monospace());
    }
    ui.weak("The receptive field of this value is drawn on the input. Arrow keys: the next position.");
}

/// Arrow keys step to the neighbouring position (when no text field has the keyboard).
fn keys(ui: &mut Ui, u: &Unfolded, out: &mut Vec<Command>) {
    if ui.ctx().egui_wants_keyboard_input() {
        return;
    }
    let (l, r, up, down) = ui.ctx().input_mut(|i| {
        use egui::{Key, Modifiers};
        (
            i.consume_key(Modifiers::NONE, Key::ArrowLeft),
            i.consume_key(Modifiers::NONE, Key::ArrowRight),
            i.consume_key(Modifiers::NONE, Key::ArrowUp),
            i.consume_key(Modifiers::NONE, Key::ArrowDown),
        )
    });
    let (mut y, mut x) = (u.y as i64, u.x as i64);
    x += r as i64 - l as i64;
    y += down as i64 - up as i64;
    if (y, x) != (u.y as i64, u.x as i64) && y >= 0 && x >= 0 {
        out.push(Command::RequestField {
            layer: u.layer.clone(),
            channel: Some(u.channel),
            y: y as usize,
            x: x as usize,
        });
    }
}
