//! The status bar: working or ready, the model and device, timings.

use egui::{Color32, Ui};

use super::Ctx;
use crate::app::command::Command;

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
            ui.spinner();
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
