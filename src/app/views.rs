//! Drawing the window: panels, views, shortcuts, and the screenshot tour.

use std::path::PathBuf;
use std::time::Instant;

use egui::{Align2, Color32, FontId, Key, Modifiers, RichText, Sense, Stroke, StrokeKind, Ui, Vec2};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::{DialogKind, ExportWhat, GlassboxApp, MAX_SLOTS, SAMPLES};
use crate::engine::explain::{Baseline, Method, METHODS};
use crate::engine::render::{tile_scale, COLORMAPS};
use crate::engine::worker::ImageSource;

const TIP_INPUT: &str = "The image as the model sees it: resized and centre-cropped to its input size.";
const TIP_PREDICTION: &str =
    "The model's most likely classes with probability and logit; click one to explain that class.";
const TIP_EXPLANATION: &str = "Saliency maps: which input pixels the chosen class depends on, by each method.";
const TIP_ACTIVATIONS: &str =
    "Every channel of the chosen layer for this image, strongest first; click a channel to inspect it.";
const TIP_FILTERS: &str = "The convolution kernels of a layer as pictures: red positive, blue negative weights.";
const TIP_MODEL: &str = "The open network: architecture, size, layers and the device it runs on.";
const TIP_LAYERS: &str = "Every layer by its PyTorch weight name with its output shape; click one to see its channels.";

fn shape_text(shape: &[i64]) -> String {
    shape
        .iter()
        .skip(1)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// A picture at most `max` wide, aspect kept.
fn fit(size: [usize; 2], max: f32) -> Vec2 {
    let (w, h) = (size[0] as f32, size[1] as f32);
    let s = (max / w).min(4.0);
    Vec2::new(w * s, h * s)
}

impl GlassboxApp {
    /// One frame: engine results in, then every panel.
    pub fn frame(&mut self, ui: &mut Ui) {
        let t0 = Instant::now();
        let ctx = ui.ctx().clone();
        self.poll(&ctx);
        self.shortcuts(&ctx);
        self.files_dropped(&ctx);
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar(ui));
        if !self.errors.is_empty() || self.engine_lost {
            egui::Panel::top("errors").show(ui, |ui| self.error_banner(ui));
        }
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::Panel::left("left")
            .resizable(true)
            .default_size(320.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().id_salt("left-scroll").show(ui, |ui| {
                    self.input_view(ui);
                    ui.separator();
                    self.prediction_view(ui);
                    ui.separator();
                    self.model_view(ui);
                });
            });
        egui::Panel::right("layers")
            .resizable(true)
            .default_size(260.0)
            .show(ui, |ui| self.layer_tree(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            let mut area = egui::ScrollArea::vertical().id_salt("central-scroll");
            match self.tour_scroll {
                // The screenshot of the filters: the end of the page; of an error: the top.
                Some(true) => area = area.vertical_scroll_offset(self.central_scroll_max),
                Some(false) => area = area.vertical_scroll_offset(0.0),
                None => {}
            }
            let out = area.show(ui, |ui| {
                self.explanation_view(ui);
                ui.separator();
                self.activations_view(ui);
                ui.separator();
                self.filters_view(ui);
            });
            self.central_scroll_max = (out.content_size.y - out.inner_rect.height()).max(0.0);
        });
        self.drop_hint(&ctx);
        if self.show_help {
            self.help_window(&ctx);
        }
        self.run_tour(&ctx);
        self.frame_times.push_back(t0.elapsed().as_secs_f32());
        if self.frame_times.len() > 120 {
            self.frame_times.pop_front();
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        let cmd = Modifiers::COMMAND;
        let (open, model, paste, export, esc, help, add) = ctx.input_mut(|i| {
            (
                i.consume_key(cmd, Key::O),
                i.consume_key(cmd, Key::M),
                i.consume_key(cmd | Modifiers::SHIFT, Key::V),
                i.consume_key(cmd, Key::S),
                i.consume_key(Modifiers::NONE, Key::Escape),
                i.consume_key(Modifiers::NONE, Key::F1),
                i.consume_key(cmd, Key::N),
            )
        });
        if open {
            self.dialog(DialogKind::Image);
        }
        if model {
            self.dialog(DialogKind::Model);
        }
        if paste {
            self.paste();
        }
        if export {
            if let Some(id) = self.slots.first().map(|s| s.id) {
                self.dialog(DialogKind::Export(ExportWhat::Overlay(id), "explanation.png".into()));
            }
        }
        if esc {
            self.cancel_all();
        }
        if help {
            self.show_help = !self.show_help;
        }
        if add {
            self.add_slot(Method::IntegratedGradients);
        }
        // Ctrl+V with a file path as text opens it; with an image, egui gets no text.
        let pasted: Vec<String> = ctx.input(|i| {
            i.events
                .iter()
                .filter_map(|e| match e {
                    egui::Event::Paste(t) => Some(t.clone()),
                    _ => None,
                })
                .collect()
        });
        for t in pasted {
            let p = PathBuf::from(t.trim().trim_start_matches("file://"));
            if p.is_file() {
                self.open_path(p);
            }
        }
        // Keys 1-9 pick a class of the prediction as the target.
        let keys = [
            Key::Num1,
            Key::Num2,
            Key::Num3,
            Key::Num4,
            Key::Num5,
            Key::Num6,
            Key::Num7,
            Key::Num8,
            Key::Num9,
        ];
        if !ctx.egui_wants_keyboard_input() {
            for (k, key) in keys.iter().enumerate() {
                if ctx.input_mut(|i| i.consume_key(Modifiers::NONE, *key)) {
                    if let Some(c) = self.top.get(k) {
                        let idx = c.index;
                        self.set_target(Some(idx));
                    }
                }
            }
        }
    }

    fn files_dropped(&mut self, ctx: &egui::Context) {
        let dropped = ctx.input(|i| i.raw.dropped_files.clone());
        for f in dropped {
            self.open_path(f.path().to_path_buf());
        }
    }

    fn drop_hint(&self, ctx: &egui::Context) {
        if ctx.input(|i| i.raw.hovered_files.is_empty()) {
            return;
        }
        let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("drop")));
        let rect = ctx.content_rect();
        painter.rect_filled(rect, 0.0, Color32::from_black_alpha(180));
        painter.text(
            rect.center(),
            Align2::CENTER_CENTER,
            "Drop an image to explain it, or a .safetensors / .pth file to open it",
            FontId::proportional(24.0),
            Color32::WHITE,
        );
    }

    fn toolbar(&mut self, ui: &mut Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.heading("Glassbox");
            ui.separator();
            if ui
                .button("Open image…")
                .on_hover_text("Open a photo (Ctrl+O). You can also drop one anywhere on the window.")
                .clicked()
            {
                self.dialog(DialogKind::Image);
            }
            if ui
                .button("Paste image")
                .on_hover_text("Use the image on the clipboard (Ctrl+Shift+V).")
                .clicked()
            {
                self.paste();
            }
            ui.menu_button("Samples", |ui| {
                for (name, bytes) in SAMPLES {
                    if ui.button(*name).clicked() {
                        self.set_image(ImageSource::Bytes {
                            name: name.to_string(),
                            bytes: bytes.to_vec(),
                        });
                        ui.close();
                    }
                }
            })
            .response
            .on_hover_text("The photos bundled with Glassbox.");
            ui.separator();
            if ui
                .button("Open model…")
                .on_hover_text("Open weights: .safetensors or PyTorch .pth (Ctrl+M).")
                .clicked()
            {
                self.dialog(DialogKind::Model);
            }
            if ui
                .button("Builtin model")
                .on_hover_text("Back to the embedded EfficientNet-Lite0 (ImageNet).")
                .clicked()
            {
                self.open_model("efficientnet-lite0".into(), None);
            }
            ui.separator();
            ui.menu_button("Export", |ui| {
                let mut items: Vec<(String, ExportWhat, String)> = vec![
                    ("Input (PNG)".into(), ExportWhat::Input, "input.png".into()),
                    (
                        "Activation grid (PNG)".into(),
                        ExportWhat::Activations,
                        "activations.png".into(),
                    ),
                    (
                        "Channel overlay (PNG)".into(),
                        ExportWhat::Channel,
                        "channel.png".into(),
                    ),
                    ("Filters (PNG)".into(), ExportWhat::Filters, "filters.png".into()),
                    (
                        "Prediction chart (PNG)".into(),
                        ExportWhat::PredictionChart,
                        "prediction.png".into(),
                    ),
                    (
                        "Prediction chart (SVG)".into(),
                        ExportWhat::PredictionChart,
                        "prediction.svg".into(),
                    ),
                ];
                for s in &self.slots {
                    items.push((
                        format!("{} overlay (PNG)", s.method),
                        ExportWhat::Overlay(s.id),
                        format!("{}.png", s.method),
                    ));
                    items.push((
                        format!("{} deletion/insertion chart (SVG)", s.method),
                        ExportWhat::FaithfulnessChart(s.id),
                        format!("{}-faithfulness.svg", s.method),
                    ));
                }
                for (label, what, name) in items {
                    if ui.button(label).clicked() {
                        self.dialog(DialogKind::Export(what, name));
                        ui.close();
                    }
                }
            });
            if ui
                .button("Help")
                .on_hover_text("Shortcuts and what each view shows (F1).")
                .clicked()
            {
                self.show_help = !self.show_help;
            }
        });
    }

    fn error_banner(&mut self, ui: &mut Ui) {
        egui::Frame::new()
            .fill(Color32::from_rgb(120, 30, 30))
            .inner_margin(6.0)
            .show(ui, |ui| {
                let mut dismiss = false;
                let mut restart = false;
                for e in &self.errors {
                    ui.label(RichText::new(format!("Error: {e}")).color(Color32::WHITE));
                }
                if self.engine_lost && self.errors.is_empty() {
                    ui.label(RichText::new("The engine is stopped.").color(Color32::WHITE));
                }
                ui.horizontal(|ui| {
                    if ui.button("Dismiss").clicked() {
                        dismiss = true;
                    }
                    if self.engine_lost
                        && ui
                            .button("Restart engine")
                            .on_hover_text("Start the engine again and reopen the model and image.")
                            .clicked()
                    {
                        restart = true;
                    }
                });
                if dismiss {
                    self.errors.clear();
                }
                if restart {
                    self.restart_engine();
                }
            });
    }

    fn status_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            let running = self
                .slots
                .iter()
                .filter(|s| s.running.is_some() || s.sanity_running.is_some())
                .count();
            if self.engine_lost {
                ui.colored_label(Color32::from_rgb(230, 90, 80), "engine stopped");
            } else if self.busy() {
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
                    self.cancel_all();
                }
            } else {
                ui.label("ready");
            }
            ui.separator();
            if let Some(m) = &self.model {
                ui.label(format!("{} on {}", m.arch, m.device));
            }
            if let Some(d) = self.all_views_after.filter(|_| self.timings) {
                ui.separator();
                ui.label(format!("image to all views: {:.0} ms", d.as_secs_f64() * 1e3));
            }
            let mut ft: Vec<f32> = self.frame_times.iter().copied().collect();
            if !ft.is_empty() && self.timings {
                ft.sort_by(|a, b| a.total_cmp(b));
                ui.separator();
                ui.label(format!("frame {:.1} ms", ft[ft.len() / 2] * 1e3))
                    .on_hover_text("Median time to build a frame of this window.");
            }
        });
    }

    fn input_view(&mut self, ui: &mut Ui) {
        ui.heading("Input").on_hover_text(TIP_INPUT);
        let Some(input) = &self.input else {
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
        let showing_field = self.field.is_some() && self.tex_field.handle.is_some();
        let tex = if showing_field {
            &self.tex_field
        } else {
            &self.tex_input
        };
        if let Some(h) = &tex.handle {
            let r = ui.add(egui::Image::new((h.id(), fit(tex.size, width))));
            if showing_field {
                r.on_hover_text("The receptive field: input pixels the chosen activation depends on (box).");
            }
        }
        if let Some(f) = &self.field {
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
                self.field = None;
            }
        }
    }

    fn prediction_view(&mut self, ui: &mut Ui) {
        ui.heading("Prediction").on_hover_text(TIP_PREDICTION);
        if self.top.is_empty() {
            ui.label(if self.busy() {
                "computing…"
            } else {
                "no prediction yet"
            });
            return;
        }
        let chosen = self.target.or(self.explained_target);
        let mut clicked = None;
        for (k, c) in self.top.iter().enumerate() {
            let text = format!("{} {:.1} %", c.label, c.probability * 100.0);
            let width = ui.available_width();
            let (rect, resp) = ui.allocate_exact_size(Vec2::new(width, 34.0), Sense::click());
            let selected = chosen == Some(c.index);
            resp.widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, true, selected, &text));
            let p = ui.painter();
            let bg = if selected {
                Color32::from_rgb(60, 70, 110)
            } else {
                ui.visuals().extreme_bg_color
            };
            p.rect_filled(rect, 3.0, bg);
            let bar = egui::Rect::from_min_size(rect.min, Vec2::new(rect.width() * c.probability as f32, 6.0));
            p.rect_filled(
                bar.translate(Vec2::new(0.0, rect.height() - 6.0)),
                0.0,
                Color32::from_rgb(90, 140, 230),
            );
            let fg = ui.visuals().strong_text_color();
            p.text(
                rect.min + Vec2::new(6.0, 3.0),
                Align2::LEFT_TOP,
                format!("{}. {}", k + 1, c.label),
                FontId::proportional(14.0),
                fg,
            );
            p.text(
                rect.right_top() + Vec2::new(-6.0, 3.0),
                Align2::RIGHT_TOP,
                format!("{:.1} %  logit {:.2}", c.probability * 100.0, c.logit),
                FontId::monospace(12.0),
                fg,
            );
            if resp.hovered() {
                p.rect_stroke(rect, 3.0, Stroke::new(1.0, fg), StrokeKind::Inside);
            }
            if resp
                .on_hover_text(format!("class {}: explain this class (key {})", c.index, k + 1))
                .clicked()
            {
                clicked = Some(c.index);
            }
        }
        if let Some(i) = clicked {
            self.set_target(Some(i));
        }
        ui.horizontal(|ui| {
            match self.target {
                Some(t) => {
                    ui.label(format!("explaining class {t}"));
                    if ui.button("Explain the top class").clicked() {
                        self.set_target(None);
                    }
                }
                None => {
                    ui.label("explaining the top class");
                }
            };
        });
    }

    fn model_view(&mut self, ui: &mut Ui) {
        let open = egui::CollapsingHeader::new("Model")
            .default_open(self.settings.show_model)
            .show(ui, |ui| {
                let Some(m) = &self.model else {
                    ui.label("opening…");
                    return;
                };
                egui::Grid::new("model-grid")
                    .num_columns(2)
                    .striped(true)
                    .show(ui, |ui| {
                        for (k, v) in [
                            ("architecture", m.arch.clone()),
                            (
                                "weights",
                                // The file name; the full path is its tooltip.
                                std::path::Path::new(&m.source)
                                    .file_name()
                                    .map(|f| f.to_string_lossy().into_owned())
                                    .unwrap_or_else(|| m.source.clone()),
                            ),
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
                                r.on_hover_text(&m.source);
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
            });
        open.header_response.on_hover_text(TIP_MODEL);
        self.settings.show_model = open.openness > 0.5;
    }

    fn layer_tree(&mut self, ui: &mut Ui) {
        ui.heading("Layers").on_hover_text(TIP_LAYERS);
        let Some(m) = &self.model else {
            return;
        };
        let selected = self.settings.layer.clone();
        let mut pick = None;
        egui::ScrollArea::vertical().id_salt("layer-tree").show(ui, |ui| {
            // Group by the first two name parts: `_blocks.3._bn0` goes under `_blocks.3`.
            let mut groups: Vec<(String, Vec<&crate::engine::model::LayerInfo>)> = Vec::new();
            for l in &m.layers {
                let parts: Vec<&str> = l.name.split('.').collect();
                let key = if parts.len() >= 2 && parts[1].chars().all(|c| c.is_ascii_digit()) {
                    format!("{}.{}", parts[0], parts[1])
                } else {
                    l.name.clone()
                };
                match groups.last_mut() {
                    Some((k, v)) if *k == key => v.push(l),
                    _ => groups.push((key, vec![l])),
                }
            }
            for (key, layers) in groups {
                let row = |ui: &mut Ui, l: &crate::engine::model::LayerInfo, pick: &mut Option<String>| {
                    let spatial = l.shape.len() == 4;
                    let text = format!("{}  {}  {}", l.name, l.kind.as_str(), shape_text(&l.shape));
                    let r = ui.add_enabled(
                        spatial,
                        egui::Button::selectable(selected.as_deref() == Some(l.name.as_str()), text),
                    );
                    if r.clicked() {
                        *pick = Some(l.name.clone());
                    }
                };
                if layers.len() == 1 && layers[0].name == key {
                    row(ui, layers[0], &mut pick);
                } else {
                    let open = selected
                        .as_deref()
                        .is_some_and(|s| s == key || s.starts_with(&format!("{key}.")));
                    let block = layers.iter().find(|l| l.name == key);
                    let title = match block {
                        Some(b) => format!("{key}  {}", shape_text(&b.shape)),
                        None => key.clone(),
                    };
                    egui::CollapsingHeader::new(title)
                        .id_salt(&key)
                        .open(open.then_some(true))
                        .show(ui, |ui| {
                            for l in layers {
                                row(ui, l, &mut pick);
                            }
                        });
                }
            }
        });
        if let Some(l) = pick {
            self.set_layer(l);
        }
    }

    fn explanation_view(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.heading("Explanation").on_hover_text(TIP_EXPLANATION);
            if let Some(t) = self.target.or(self.explained_target) {
                let label = self
                    .model
                    .as_ref()
                    .and_then(|m| m.labels.get(t as usize).cloned())
                    .unwrap_or_default();
                ui.label(format!("of class {t} ({label})"));
            }
        });
        ui.horizontal_wrapped(|ui| {
            let mut cmap = self.settings.colormap.clone();
            egui::ComboBox::new("colormap", "colormap")
                .selected_text(&cmap)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut cmap, "auto".to_string(), "auto (each method's standard)");
                    for c in COLORMAPS {
                        ui.selectable_value(&mut cmap, c.to_string(), *c);
                    }
                });
            if cmap != self.settings.colormap {
                self.settings.colormap = cmap;
                self.slots.iter_mut().for_each(|s| s.overlay_dirty = true);
            }
            let r = ui.add(egui::Slider::new(&mut self.settings.opacity, 0.0..=1.0).text("opacity"));
            if r.changed() {
                self.slots.iter_mut().for_each(|s| s.overlay_dirty = true);
            }
            let spatial: Vec<String> = self
                .model
                .as_ref()
                .map(|m| {
                    m.layers
                        .iter()
                        .filter(|l| l.shape.len() == 4 && l.shape[2] > 1)
                        .map(|l| l.name.clone())
                        .collect()
                })
                .unwrap_or_default();
            let mut cam = self.settings.cam_layer.clone();
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
            if cam != self.settings.cam_layer {
                self.set_cam_layer(cam);
            }
            if self.slots.len() < MAX_SLOTS
                && ui
                    .button("+ Add method")
                    .on_hover_text("Another method side by side on the same image (Ctrl+N).")
                    .clicked()
            {
                let used: Vec<Method> = self.slots.iter().map(|s| s.method).collect();
                let next = METHODS
                    .iter()
                    .copied()
                    .find(|m| !used.contains(m))
                    .unwrap_or(Method::Gradient);
                self.add_slot(next);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let ids: Vec<usize> = self.slots.iter().map(|s| s.id).collect();
            for id in ids {
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.set_width(250.0);
                    ui.vertical(|ui| self.slot_view(ui, id));
                });
            }
        });
    }

    fn slot_view(&mut self, ui: &mut Ui, id: usize) {
        let Some(idx) = self.slots.iter().position(|s| s.id == id) else {
            return;
        };
        let method = self.slots[idx].method;
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
            if self.slots.len() > 1 && ui.small_button("Remove").on_hover_text("Remove this method").clicked() {
                self.remove_slot(id);
            }
        });
        if chosen != method {
            self.set_method(id, chosen);
            return;
        }
        let Some(idx) = self.slots.iter().position(|s| s.id == id) else {
            return;
        };
        // Parameters of the method.
        let mut changed = false;
        {
            let p = &mut self.slots[idx].params;
            let mut drag = |ui: &mut Ui, label: &str, tip: &str, w: &mut dyn FnMut(&mut Ui) -> egui::Response| {
                ui.horizontal(|ui| {
                    let l = ui.label(label).on_hover_text(tip);
                    let r = w(ui).labelled_by(l.id);
                    changed |= r.changed() && !r.dragged() || r.drag_stopped();
                });
            };
            match method {
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
                        changed |= before != p.baseline;
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
        }
        if changed {
            self.explain_slot(id);
        }
        let slot = &self.slots[idx];
        if let Some(h) = self.tex_slots.get(&id).and_then(|t| t.handle.as_ref()) {
            let size = self.tex_slots[&id].size;
            ui.add(egui::Image::new((h.id(), fit(size, 240.0))))
                .on_hover_text(method.describe());
        } else {
            let (rect, _) = ui.allocate_exact_size(Vec2::splat(240.0), Sense::hover());
            ui.painter().rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
        }
        let mut cancel = false;
        let mut sanity = false;
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
                cancel = ui
                    .button("Cancel")
                    .on_hover_text("Stop this computation (Esc stops all).")
                    .clicked();
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
                let pts = |c: &crate::engine::metrics::Curve| -> PlotPoints {
                    c.fractions.iter().zip(&c.scores).map(|(x, y)| [*x, *y]).collect()
                };
                Plot::new(("faith", id))
                    .height(90.0)
                    .width(240.0)
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
                    sanity = true;
                }
            }
        }
        if cancel {
            self.cancel_slot(id);
        }
        if sanity {
            self.sanity_slot(id);
        }
    }

    fn activations_view(&mut self, ui: &mut Ui) {
        let header = egui::CollapsingHeader::new("Activations")
            .default_open(self.settings.show_activations)
            .show(ui, |ui| {
                let Some(ch) = &self.channels else {
                    ui.label("pick a layer on the right");
                    return;
                };
                let (layer, c, h, w) = (ch.layer.clone(), ch.c, ch.h, ch.w);
                let scale = tile_scale(ch);
                ui.horizontal(|ui| {
                    ui.label(format!(
                        "`{layer}`: {c} channels of {h}×{w}, strongest first (mean activation)"
                    ));
                    if ui
                        .checkbox(&mut self.settings.shared_scale, "one colour scale")
                        .on_hover_text(
                            "One scale for all channels (compare strengths), or one per channel (see shapes).",
                        )
                        .changed()
                    {
                        let ctx = ui.ctx().clone();
                        self.redraw_grid(&ctx);
                    }
                });
                let mut click = None;
                ui.horizontal_top(|ui| {
                    egui::ScrollArea::both()
                        .id_salt("grid")
                        .max_height(420.0)
                        .max_width(620.0)
                        .show(ui, |ui| {
                            if let (Some(hd), Some((_, layout))) = (&self.tex_grid.handle, &self.grid) {
                                let size = Vec2::new(self.tex_grid.size[0] as f32, self.tex_grid.size[1] as f32);
                                let r = ui.add(egui::Image::new((hd.id(), size)).sense(Sense::click()));
                                let r = r.on_hover_text(
                                    "Click a channel to inspect it and see the receptive field of that pixel.",
                                );
                                if r.clicked() {
                                    if let Some(pos) = r.interact_pointer_pos() {
                                        let local = pos - r.rect.min;
                                        if let Some((k, y, x)) = layout.hit(local.x, local.y, scale) {
                                            click = Some((k, y, x));
                                        }
                                    }
                                }
                            }
                        });
                    ui.vertical(|ui| self.channel_view(ui));
                });
                if let Some((k, y, x)) = click {
                    let channel = self.channels.as_ref().and_then(|c| c.order.get(k)).map(|o| o.0);
                    if let Some(c) = channel {
                        let ctx = ui.ctx().clone();
                        self.select_channel(&ctx, c, Some((y, x)));
                    }
                }
            });
        header.header_response.on_hover_text(TIP_ACTIVATIONS);
        self.settings.show_activations = header.openness > 0.5;
    }

    fn channel_view(&mut self, ui: &mut Ui) {
        let Some(d) = &self.channel else { return };
        let Some(ch) = &self.channels else { return };
        ui.strong(format!("channel {} (rank {} of {})", d.channel, d.stats.rank + 1, ch.c));
        let mut click = None;
        ui.horizontal(|ui| {
            if let Some(h) = &self.tex_channel.handle {
                let r = ui.add(egui::Image::new((h.id(), Vec2::splat(180.0))).sense(Sense::click()));
                let r = r.on_hover_text("The channel, large. Click a pixel to see its receptive field on the input.");
                if r.clicked() {
                    if let Some(pos) = r.interact_pointer_pos() {
                        let local = pos - r.rect.min;
                        let y = ((local.y / r.rect.height()) * ch.h as f32) as usize;
                        let x = ((local.x / r.rect.width()) * ch.w as f32) as usize;
                        click = Some((y.min(ch.h - 1), x.min(ch.w - 1)));
                    }
                }
            }
            if let Some(h) = &self.tex_channel_overlay.handle {
                ui.add(egui::Image::new((h.id(), Vec2::splat(180.0))))
                    .on_hover_text("The channel over the input: where in the image it fires.");
            }
        });
        let s = d.stats;
        egui::Grid::new("channel-stats").num_columns(4).show(ui, |ui| {
            ui.label("mean");
            ui.label(format!("{:.3}", s.mean));
            ui.label("std");
            ui.label(format!("{:.3}", s.std));
            ui.end_row();
            ui.label("min");
            ui.label(format!("{:.3}", s.min));
            ui.label("max");
            ui.label(format!("{:.3}", s.max));
            ui.end_row();
            ui.label("active");
            ui.label(format!("{:.0} %", s.active * 100.0));
            ui.end_row();
        });
        match (&d.kernel, &d.kernel_error) {
            (Some((conv, shape, _)), _) => {
                ui.label(format!("made by `{conv}`, kernel {}", shape_text(shape)))
                    .on_hover_text(
                        "The weights of the convolution that produced this channel, one tile per input channel.",
                    );
                if let Some(h) = &self.tex_kernel.handle {
                    let size = fit(self.tex_kernel.size, 360.0);
                    let size = if size.y > 160.0 { size * (160.0 / size.y) } else { size };
                    ui.add(egui::Image::new((h.id(), size)));
                }
            }
            (None, Some(e)) => {
                ui.label(e);
            }
            _ => {}
        }
        if let Some((y, x)) = click {
            let (layer, c) = (ch.layer.clone(), d.channel);
            self.request_field(layer, Some(c), y, x);
        }
    }

    fn filters_view(&mut self, ui: &mut Ui) {
        let header = egui::CollapsingHeader::new("Filters")
            .default_open(self.settings.show_filters)
            .show(ui, |ui| {
                let convs = self.model.as_ref().map(|m| m.convs.clone()).unwrap_or_default();
                let mut conv = self.settings.filter_conv.clone().unwrap_or_default();
                ui.horizontal(|ui| {
                    egui::ComboBox::new("filter-conv", "convolution")
                        .selected_text(&conv)
                        .height(400.0)
                        .show_ui(ui, |ui| {
                            for c in &convs {
                                ui.selectable_value(&mut conv, c.clone(), c);
                            }
                        });
                    if ui
                        .checkbox(&mut self.settings.per_input, "one tile per input channel")
                        .on_hover_text("Deeper kernels: show each input channel's slice instead of their average.")
                        .changed()
                    {
                        self.set_filter_conv(conv.clone());
                    }
                });
                if Some(&conv) != self.settings.filter_conv.as_ref() && !conv.is_empty() {
                    self.set_filter_conv(conv);
                }
                if let (Some((c, shape, _)), Some(h)) = (&self.filters, &self.tex_filters.handle) {
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
                    let size = self.tex_filters.size;
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
            });
        header.header_response.on_hover_text(TIP_FILTERS);
        self.settings.show_filters = header.openness > 0.5;
    }

    fn help_window(&mut self, ctx: &egui::Context) {
        let mut open = true;
        egui::Window::new("Help").open(&mut open).show(ctx, |ui| {
            egui::Grid::new("keys").num_columns(2).show(ui, |ui| {
                for (k, v) in [
                    ("Ctrl+O", "open an image"),
                    ("Ctrl+M", "open a model (.safetensors / .pth)"),
                    ("Ctrl+Shift+V", "paste an image from the clipboard"),
                    ("Ctrl+S", "export the first explanation as PNG"),
                    ("Ctrl+N", "add a method side by side"),
                    ("1 … 9", "explain that class of the prediction"),
                    ("Esc", "cancel long computations"),
                    ("F1", "this help"),
                ] {
                    ui.monospace(k);
                    ui.label(v);
                    ui.end_row();
                }
            });
            ui.separator();
            for (name, tip) in [
                ("Input", TIP_INPUT),
                ("Prediction", TIP_PREDICTION),
                ("Explanation", TIP_EXPLANATION),
                ("Activations", TIP_ACTIVATIONS),
                ("Filters", TIP_FILTERS),
                ("Model", TIP_MODEL),
            ] {
                ui.label(format!("{name}: {tip}"));
            }
            for m in METHODS {
                ui.label(format!("{}: {}", m.name(), m.describe()));
            }
        });
        self.show_help &= open;
    }
}

/// The README screenshots, taken by the app itself in its real window.
pub struct Tour {
    dir: PathBuf,
    step: usize,
    /// Frames since the step's setup, to let layout settle.
    frames: usize,
    shot_requested: bool,
    shot_done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Tour {
    pub fn new(dir: PathBuf) -> Tour {
        Tour {
            dir,
            step: 0,
            frames: 0,
            shot_requested: false,
            shot_done: Default::default(),
        }
    }
}

const TOUR: &[&str] = &["main", "methods", "activations", "filters", "error"];

impl GlassboxApp {
    fn run_tour(&mut self, ctx: &egui::Context) {
        use std::sync::atomic::Ordering;
        let settled = !self.busy() && self.views_ready();
        let field_missing = self.field.is_none();
        let Some(t) = self.tour.as_mut() else { return };
        if t.step >= TOUR.len() {
            return;
        }
        ctx.request_repaint();
        if t.shot_requested {
            if t.shot_done.load(Ordering::SeqCst) {
                t.step += 1;
                t.frames = 0;
                t.shot_requested = false;
                t.shot_done.store(false, Ordering::SeqCst);
                if t.step >= TOUR.len() {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    return;
                }
                let step = t.step;
                self.tour_setup(ctx, TOUR[step]);
            }
            return;
        }
        // Wait until everything on screen has arrived, faithfulness and kernels included.
        if settled && TOUR[t.step] == "activations" && field_missing {
            // Show a receptive field: the middle of the chosen channel.
            if let (Some(ch), Some(d)) = (&self.channels, &self.channel) {
                let (layer, c, y, x) = (ch.layer.clone(), d.channel, ch.h / 2, ch.w / 2);
                self.request_field(layer, Some(c), y, x);
            }
            return;
        }
        let Some(t) = self.tour.as_mut() else { return };
        if !settled {
            t.frames = 0;
            return;
        }
        t.frames += 1;
        if t.frames < 10 {
            return;
        }
        let path = t.dir.join(format!("{}.png", TOUR[t.step]));
        let done = t.shot_done.clone();
        t.shot_requested = true;
        ctx.request_screenshot(move |img| {
            let (w, h) = (img.size[0] as u32, img.size[1] as u32);
            let rgb: Vec<u8> = img.pixels.iter().flat_map(|p| [p.r(), p.g(), p.b()]).collect();
            if let Some(buf) = image::RgbImage::from_raw(w, h, rgb) {
                if let Err(e) = crate::engine::render::save_png(&buf, &path) {
                    eprintln!("glassbox: {e}");
                } else {
                    println!("{}", path.display());
                }
            }
            done.store(true, Ordering::SeqCst);
        });
    }

    fn tour_setup(&mut self, ctx: &egui::Context, step: &str) {
        match step {
            "methods" => {
                let want = [
                    Method::GradCam,
                    Method::IntegratedGradients,
                    Method::SmoothGrad,
                    Method::Occlusion,
                ];
                let ids: Vec<usize> = self.slots.iter().map(|s| s.id).collect();
                for (k, m) in want.iter().enumerate() {
                    match ids.get(k) {
                        Some(id) => self.set_method(*id, *m),
                        None => self.add_slot(*m),
                    }
                }
            }
            "activations" => {
                let layer = self
                    .model
                    .as_ref()
                    .and_then(|m| m.layers.iter().find(|l| l.name == "_blocks.5").map(|l| l.name.clone()))
                    .or(self.settings.layer.clone());
                if let Some(l) = layer {
                    self.set_layer(l);
                }
            }
            "filters" => {
                if let Some(c) = self.model.as_ref().and_then(|m| m.convs.first().cloned()) {
                    self.set_filter_conv(c);
                }
                self.tour_scroll = Some(true);
            }
            "error" => {
                self.tour_scroll = Some(false);
                let path = std::env::temp_dir().join("notes.txt");
                let _ = std::fs::write(&path, "this is not an image\n");
                self.open_path(path);
            }
            _ => {}
        }
        ctx.request_repaint();
    }
}
