//! The explanations: up to four methods side by side, each with its parameters, its map
//! over the input, its faithfulness curves and its sanity check; colormap, opacity and the
//! CAM layer for all.

use egui::{Color32, Sense, Ui, Vec2};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::command::Command;
use crate::state::{Slot, MAX_SLOTS};
use crate::textures::Which;
use crate::widgets::{fit, Ctx};
use glassbox_engine::explain::{Baseline, Method, METHODS};
use glassbox_engine::metrics::Curve;
use glassbox_engine::render::COLORMAPS;

pub const TIP: &str = "Saliency maps: which input pixels the chosen class depends on, by each method.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    ui.horizontal(|ui| {
        crate::widgets::heading(ui, "Explanation", TIP, crate::state::Topic::Explanation, out);
        if let Some(t) = s.target.or(s.explained_target) {
            let label = s
                .model
                .as_ref()
                .and_then(|m| m.labels.get(t as usize).cloned())
                .unwrap_or_default();
            ui.label(format!("of class {t} ({label})"));
        }
    });
    ui.horizontal_wrapped(|ui| {
        let mut cmap = s.settings.colormap.clone();
        egui::ComboBox::new("colormap", "colormap")
            .selected_text(&cmap)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut cmap, "auto".to_string(), "auto (each method's standard)");
                for c in COLORMAPS {
                    ui.selectable_value(&mut cmap, c.to_string(), *c);
                }
            });
        if cmap != s.settings.colormap {
            out.push(Command::SetColormap(cmap));
        }
        let mut opacity = s.settings.opacity;
        if ui
            .add(egui::Slider::new(&mut opacity, 0.0..=1.0).text("opacity"))
            .changed()
        {
            out.push(Command::SetOpacity(opacity));
        }
        let spatial = s.spatial_layers();
        let mut cam = s.settings.cam_layer.clone();
        let shown = cam.clone().unwrap_or_else(|| "last spatial (default)".into());
        egui::ComboBox::new("cam-layer", "CAM layer")
            .selected_text(shown)
            .height(400.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut cam, None, "last spatial (default)");
                for l in &spatial {
                    ui.selectable_value(&mut cam, Some(l.clone()), l);
                }
            })
            .response
            .on_hover_text("The layer Grad-CAM, Grad-CAM++, Score-CAM and guided Grad-CAM look at.");
        if cam != s.settings.cam_layer {
            out.push(Command::SetCamLayer(cam));
        }
        if s.slots.len() < MAX_SLOTS
            && ui
                .button("+ Add method")
                .on_hover_text("Another method side by side on the same image (Ctrl+N).")
                .clicked()
        {
            let used: Vec<Method> = s.slots.iter().map(|s| s.method).collect();
            let next = METHODS
                .iter()
                .copied()
                .find(|m| !used.contains(m))
                .unwrap_or(Method::Gradient);
            out.push(Command::AddSlot(next));
        }
    });
    super::scoreboard::ui(ui, cx, out);
    // As large as the view allows: as many maps side by side as fit at their smallest,
    // the rest on the next rows, each picture as wide as its share and as tall as the view.
    let n = s.slots.len().max(1);
    let avail = ui.available_width();
    let cols = ((avail / (MIN_SLOT + SLOT_MARGIN)).floor() as usize).clamp(1, n);
    let width = (avail / cols as f32 - SLOT_MARGIN).max(MIN_SLOT);
    let rows = n.div_ceil(cols) as f32;
    // A sanity check's strip of maps sits under the picture: room for it too.
    let strip = if s.slots.iter().any(|sl| sl.sanity.is_some()) {
        200.0
    } else {
        0.0
    };
    let tall = (ui.clip_rect().height() / rows.min(2.0) - SLOT_CHROME - strip).max(MIN_SLOT - 10.0);
    let picture = (width - 10.0).min(tall);
    for row in s.slots.chunks(cols) {
        ui.horizontal_top(|ui| {
            for slot in row {
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.set_width(width);
                    ui.vertical(|ui| slot_ui(ui, cx, slot, picture, out));
                });
            }
        });
    }
}

/// The narrowest a map's panel gets before the row wraps (its method row fits).
const MIN_SLOT: f32 = 300.0;
/// A panel's frame and the space between panels.
const SLOT_MARGIN: f32 = 24.0;
/// Height of the view's heading rows and a panel's controls above its picture.
const SLOT_CHROME: f32 = 170.0;

fn slot_ui(ui: &mut Ui, cx: &Ctx, slot: &Slot, picture: f32, out: &mut Vec<Command>) {
    let id = slot.id;
    let method = slot.method;
    let mut chosen = method;
    ui.horizontal(|ui| {
        egui::ComboBox::new(("method", id), "method")
            .selected_text(method.name())
            .show_ui(ui, |ui| {
                for m in METHODS {
                    ui.selectable_value(&mut chosen, *m, m.name())
                        .on_hover_text(m.describe());
                }
            })
            .response
            .on_hover_text(method.describe());
        super::explain_this::button(ui, crate::state::Topic::Method(method), out);
        if cx.state.slots.len() > 1 && ui.small_button("×").on_hover_text("Remove this method").clicked() {
            out.push(Command::RemoveSlot(id));
        }
    });
    if chosen != method {
        out.push(Command::SetMethod(id, chosen));
        return;
    }
    params_ui(ui, slot, out);
    if let Some(t) = cx.tex.get(Which::Slot(id)) {
        let h = t.handle.as_ref().expect("a texture with a picture");
        ui.add(egui::Image::new((h.id(), fit(t.size, picture))))
            .on_hover_text(method.describe());
    } else {
        let (rect, _) = ui.allocate_exact_size(Vec2::splat(picture), Sense::hover());
        ui.painter().rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    }
    if slot.running.is_some() || slot.sanity_running.is_some() {
        ui.horizontal(|ui| {
            let (done, total) = slot.progress.unwrap_or((0, 1));
            let what = if slot.sanity_running.is_some() {
                "sanity check"
            } else {
                method.name()
            };
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .desired_width(170.0)
                    .text(format!("{what} {done}/{total}")),
            );
            if ui
                .button("Cancel")
                .on_hover_text("Stop this computation (Esc stops all).")
                .clicked()
            {
                out.push(Command::CancelSlot(id));
            }
        });
    }
    if let Some(e) = &slot.error {
        ui.colored_label(Color32::from_rgb(230, 90, 80), e);
    }
    if let Some(r) = &slot.result {
        if let Some(l) = &r.layer {
            ui.label(format!("layer {l}"));
        }
        if let Some(err) = r.completeness_error {
            ui.label(format!("completeness error {err:.3}"))
                .on_hover_text("Sum of the map minus the score difference to the baseline: near 0 is exact.");
        }
    }
    match &slot.faith {
        Some((d, i)) => {
            ui.label(format!("deletion AUC {:.3} · insertion AUC {:.3}", d.auc, i.auc)).on_hover_text(
                "Faithfulness: deleting the pixels the map ranks first should drop the score fast (low deletion AUC); inserting them should raise it fast (high insertion AUC).",
            );
            let pts = |c: &Curve| -> PlotPoints { c.fractions.iter().zip(&c.scores).map(|(x, y)| [*x, *y]).collect() };
            Plot::new(("faith", id))
                .height(90.0)
                .width(picture)
                .include_y(0.0)
                .include_y(1.0)
                .allow_drag(false)
                .allow_zoom(false)
                .allow_scroll(false)
                .show_axes([false, true])
                .legend(Legend::default())
                .show(ui, |p| {
                    p.line(Line::new("deletion", pts(d)).color(Color32::from_rgb(220, 80, 60)));
                    p.line(Line::new("insertion", pts(i)).color(Color32::from_rgb(70, 170, 90)));
                });
        }
        None if slot.result.is_some() => {
            ui.label("measuring faithfulness…");
        }
        None => {}
    }
    match &slot.sanity {
        Some(s) => {
            let color = if s.passed {
                Color32::from_rgb(90, 190, 110)
            } else {
                Color32::from_rgb(230, 90, 80)
            };
            let steps: Vec<String> = s
                .steps
                .iter()
                .map(|st| format!("{}: Spearman {:.3}", st.randomised, st.spearman))
                .collect();
            ui.colored_label(color, &s.verdict).on_hover_text(steps.join("\n"));
            // The sanity check as a view: each map as the layers are randomised from the top.
            egui::ScrollArea::horizontal().id_salt(("sanity", id)).show(ui, |ui| {
                ui.horizontal(|ui| {
                    let captions = std::iter::once("trained model".to_string()).chain(
                        s.steps
                            .iter()
                            .map(|st| format!("random to {}\nρ = {:.2}", st.randomised, st.spearman)),
                    );
                    for (k, caption) in captions.enumerate() {
                        let Some(h) = cx.tex.get(Which::Sanity(id, k)).and_then(|t| t.handle.as_ref()) else {
                            continue;
                        };
                        ui.vertical(|ui| {
                            ui.add(egui::Image::new((h.id(), Vec2::splat(72.0))));
                            ui.label(egui::RichText::new(caption).small());
                        });
                    }
                });
            });
        }
        None => {
            if slot.result.is_some()
                && slot.sanity_running.is_none()
                && ui
                    .button("Sanity check")
                    .on_hover_text(
                        "Randomise the weights layer by layer from the top: a trustworthy map changes (Adebayo et al. 2018).",
                    )
                    .clicked()
            {
                out.push(Command::SanitySlot(id));
            }
        }
    }
}

/// The method's own parameters. While a value is dragged the slot follows it; the map is
/// computed again when the change is done.
fn params_ui(ui: &mut Ui, slot: &Slot, out: &mut Vec<Command>) {
    let id = slot.id;
    let mut p = slot.params.clone();
    let (mut changed, mut done) = (false, false);
    let mut drag = |ui: &mut Ui, label: &str, tip: &str, w: &mut dyn FnMut(&mut Ui) -> egui::Response| {
        ui.horizontal(|ui| {
            let l = ui.label(label).on_hover_text(tip);
            let r = w(ui).labelled_by(l.id);
            changed |= r.changed();
            done |= r.changed() && !r.dragged() || r.drag_stopped();
        });
    };
    match slot.method {
        Method::SmoothGrad => {
            drag(ui, "samples", "Noisy copies averaged.", &mut |ui| {
                ui.add(egui::DragValue::new(&mut p.samples).range(1..=256))
            });
            drag(ui, "noise σ", "Noise, as a fraction of the input's range.", &mut |ui| {
                ui.add(egui::DragValue::new(&mut p.sigma).range(0.01..=1.0).speed(0.01))
            });
        }
        Method::IntegratedGradients => {
            drag(
                ui,
                "steps",
                "Points on the path from the baseline to the image.",
                &mut |ui| ui.add(egui::DragValue::new(&mut p.steps).range(1..=512)),
            );
            ui.horizontal(|ui| {
                let before = p.baseline;
                egui::ComboBox::new(("baseline", id), "baseline")
                    .selected_text(p.baseline.name())
                    .show_ui(ui, |ui| {
                        for b in [Baseline::Zero, Baseline::Black, Baseline::Blur] {
                            ui.selectable_value(&mut p.baseline, b, b.name());
                        }
                    });
                if before != p.baseline {
                    changed = true;
                    done = true;
                }
            });
        }
        Method::Occlusion => {
            drag(ui, "window", "Side of the hidden square, in input pixels.", &mut |ui| {
                ui.add(egui::DragValue::new(&mut p.window).range(1..=512))
            });
            drag(ui, "stride", "Step between windows, in input pixels.", &mut |ui| {
                ui.add(egui::DragValue::new(&mut p.stride).range(1..=512))
            });
        }
        _ => {}
    }
    if changed || done {
        out.push(Command::SetSlotParams {
            id,
            params: p,
            run: done,
        });
    }
}
