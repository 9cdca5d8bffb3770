//! The status bar: working or ready, the model and device, timings.

use std::time::Duration;

use egui::{Color32, Ui};

use crate::command::Command;
use crate::widgets::Ctx;

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    ui.horizontal(|ui| {
        let running = s
            .slots
            .iter()
            .filter(|s| s.running.is_some() || s.sanity_running.is_some())
            .count();
        if s.engine_lost {
            ui.colored_label(Color32::from_rgb(230, 90, 80), "engine stopped");
        } else if cx.busy {
            spinner(ui);
            ui.label(if running > 0 {
                format!("working: {running} long computation(s)")
            } else {
                "working".to_string()
            });
            if running > 0
                && ui
                    .button("Cancel all")
                    .on_hover_text("Stop every long computation (Esc).")
                    .clicked()
            {
                out.push(Command::CancelAll);
            }
        } else {
            ui.label("ready");
        }
        ui.separator();
        if let Some(m) = &s.model {
            ui.label(format!("{} on {}", m.arch, m.device));
        }
        if !s.edits.is_empty() {
            ui.separator();
            ui.colored_label(Color32::from_rgb(230, 170, 60), format!("{} edit(s)", s.edits.len()));
        }
        if let Some(n) = &s.notice {
            ui.separator();
            ui.label(n);
        }
        if let Some(d) = cx.all_views_after {
            ui.separator();
            ui.label(format!("image to all views: {:.0} ms", d.as_secs_f64() * 1e3));
        }
        if let Some(times) = cx.frame_times.filter(|t| !t.is_empty()) {
            let mut ft: Vec<f32> = times.iter().copied().collect();
            ft.sort_by(|a, b| a.total_cmp(b));
            ui.separator();
            ui.label(format!("frame {:.1} ms", ft[ft.len() / 2] * 1e3))
                .on_hover_text("Median time to build a frame of this window.");
        }
    });
}

/// Frames a second of the working spinner. egui's own spinner asks for a frame at every
/// display refresh (60 a second) for as long as the engine works; on a two-core laptop those
/// frames take CPU from the computation the user is waiting for. Ten a second still turns.
const SPINNER_FPS: f64 = 10.0;

/// A turning arc, redrawn [`SPINNER_FPS`] times a second.
fn spinner(ui: &mut Ui) {
    let size = ui.spacing().interact_size.y;
    let (rect, _) = ui.allocate_exact_size(egui::vec2(size, size), egui::Sense::hover());
    if !ui.is_rect_visible(rect) {
        return;
    }
    let step = (ui.input(|i| i.time) * SPINNER_FPS).floor() / SPINNER_FPS;
    let start = step * std::f64::consts::TAU;
    let radius = rect.height() / 2.0 - 2.0;
    let points: Vec<egui::Pos2> = (0..=24)
        .map(|i| {
            let a = start + i as f64 / 24.0 * std::f64::consts::PI * 1.5;
            rect.center() + radius * egui::vec2(a.cos() as f32, a.sin() as f32)
        })
        .collect();
    ui.painter().add(egui::Shape::line(
        points,
        egui::Stroke::new(2.0, ui.visuals().strong_text_color()),
    ));
    ui.ctx()
        .request_repaint_after(Duration::from_secs_f64(1.0 / SPINNER_FPS));
}
