//! The window's layout: the panels in their places, presentation mode, the keyboard
//! shortcuts and dropped files; and one frame of the app (answers in, panels drawn, their
//! commands applied).

use std::path::PathBuf;
use std::time::Instant;

use egui::{Align2, Color32, FontId, Key, Modifiers, Ui};

use crate::command::{Command, DialogKind};
use crate::panels::{
    activations, channel, compare, draw, edits, errors, explain_this, explanations, filters, help, input, layers,
    lesson, model, prediction, status, toolbar, train, unfold, unsaved, wants,
};
use crate::state::{ExportWhat, Focus, State};
use crate::tiles::{Layout, Layouts, Pane};
use crate::widgets::Ctx;
use crate::GlassboxApp;
use glassbox_engine::explain::Method;

impl GlassboxApp {
    /// One frame: engine results in, then every panel, then the commands they emitted.
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let t0 = Instant::now();
        self.poll();
        let mut cmds = Vec::new();
        let ctx = ui.ctx().clone();
        if self.presented != self.state.present {
            apply_presentation(&ctx, self.state.present);
            self.presented = self.state.present;
        }
        shortcuts(&ctx, &self.state, self.layouts.maximised.is_some(), &mut cmds);
        let view = Ctx {
            state: &self.state,
            tex: &self.tex,
            busy: self.busy(),
            frame_times: self.timings.then_some(&self.frame_times),
            all_views_after: self.all_views_after.filter(|_| self.timings),
            layout: self.layouts.current,
        };
        window(ui, &view, &mut self.layouts, &mut cmds);
        unsaved::ui(&ctx, &self.state, &mut cmds);
        if self.tour.is_none() {
            self.on_close_requested(&ctx);
        }
        for c in cmds {
            self.apply(c);
        }
        self.run_tour(&ctx);
        self.frame_times.push_back(t0.elapsed().as_secs_f32());
        if self.frame_times.len() > 120 {
            self.frame_times.pop_front();
        }
    }
}

/// The whole window: the bars at the top and bottom, then one view alone (presentation's
/// focus), a maximised pane, or the tiles of the layout shown.
pub fn window(ui: &mut Ui, cx: &Ctx, layouts: &mut Layouts, out: &mut Vec<Command>) {
    let ctx = ui.ctx().clone();
    files_dropped(&ctx, out);
    egui::Panel::top("toolbar").show(ui, |ui| toolbar::ui(ui, cx, out));
    if cx.state.lesson.is_some() {
        egui::Panel::top("lesson").show(ui, |ui| lesson::ui(ui, cx, out));
    }
    if !cx.state.errors.is_empty() || cx.state.engine_lost {
        egui::Panel::top("errors").show(ui, |ui| errors::ui(ui, cx, out));
    }
    egui::Panel::bottom("status").show(ui, |ui| status::ui(ui, cx, out));
    explain_this::panel(ui, cx.state.explain_this, out);
    if let Some(f) = cx.state.focus {
        egui::CentralPanel::default().show(ui, |ui| focus_view(ui, cx, f, out));
    } else if let Some(p) = layouts.maximised {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(p.title());
                if ui.button("Restore").on_hover_text("Back to the layout (Esc)").clicked() {
                    out.push(Command::Maximise(None));
                }
            });
            ui.separator();
            pane_scrolled(ui, cx, p, out);
        });
    } else {
        egui::CentralPanel::default()
            .frame(egui::Frame::central_panel(&ctx.global_style()).inner_margin(2.0))
            .show(ui, |ui| {
                let mut views = Views { cx, out };
                layouts.tree_mut().ui(&mut views, ui);
            });
    }
    drop_hint(&ctx);
    pointer_highlight(&ctx, cx.state.present);
    if cx.state.show_help {
        help::window(&ctx, out);
    }
}

/// One view alone, full window, with the buttons that walk through them.
fn focus_view(ui: &mut Ui, cx: &Ctx, f: Focus, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        if ui.button("< previous").on_hover_text("PageUp").clicked() {
            out.push(Command::Focus(Some(Focus::step(Some(f), false))));
        }
        ui.heading(f.name());
        if ui.button("next >").on_hover_text("PageDown").clicked() {
            out.push(Command::Focus(Some(Focus::step(Some(f), true))));
        }
        if ui.button("All views").on_hover_text("Esc").clicked() {
            out.push(Command::Focus(None));
        }
    });
    ui.separator();
    egui::ScrollArea::vertical()
        .id_salt("focus-scroll")
        .show(ui, |ui| match f {
            Focus::Prediction => {
                ui.horizontal_top(|ui| {
                    ui.vertical(|ui| {
                        ui.set_width(ui.available_width() * 0.45);
                        input::ui(ui, cx, out);
                        if draw::available(cx) {
                            draw::ui(ui, cx, out);
                        }
                    });
                    ui.vertical(|ui| prediction::ui(ui, cx, out));
                });
            }
            Focus::Explanation => explanations::ui(ui, cx, out),
            Focus::Activations => {
                activations::ui(ui, cx, out);
                channel::ui(ui, cx, out);
            }
            Focus::Filters => filters::ui(ui, cx, out),
            Focus::Retrain => train::ui(ui, cx, out),
        });
}

/// How the tiles draw their panes, name their tabs and offer to maximise them.
struct Views<'a, 'b> {
    cx: &'a Ctx<'b>,
    out: &'a mut Vec<Command>,
}

impl egui_tiles::Behavior<Pane> for Views<'_, '_> {
    fn tab_title_for_pane(&mut self, pane: &Pane) -> egui::WidgetText {
        pane.title().into()
    }

    fn pane_ui(&mut self, ui: &mut Ui, _tile: egui_tiles::TileId, pane: &mut Pane) -> egui_tiles::UiResponse {
        pane_scrolled(ui, self.cx, *pane, self.out);
        egui_tiles::UiResponse::None
    }

    fn is_tab_closable(&self, _tiles: &egui_tiles::Tiles<Pane>, _tile: egui_tiles::TileId) -> bool {
        true
    }

    fn top_bar_right_ui(
        &mut self,
        tiles: &egui_tiles::Tiles<Pane>,
        ui: &mut Ui,
        _tile: egui_tiles::TileId,
        tabs: &egui_tiles::Tabs,
        _scroll_offset: &mut f32,
    ) {
        let Some(pane) = tabs.active.and_then(|a| tiles.get_pane(&a)) else {
            return;
        };
        if ui
            .small_button("Maximise")
            .on_hover_text(format!("{}: alone over the layout", pane.title()))
            .clicked()
        {
            self.out.push(Command::Maximise(Some(*pane)));
        }
    }

    fn simplification_options(&self) -> egui_tiles::SimplificationOptions {
        egui_tiles::SimplificationOptions {
            // Every pane keeps its tab: its name, and the handle to move it by.
            all_panes_must_have_tabs: true,
            ..Default::default()
        }
    }

    fn gap_width(&self, _style: &egui::Style) -> f32 {
        4.0
    }

    fn min_size(&self) -> f32 {
        120.0
    }
}

/// A pane's view in its own scroll area (a view taller or wider than its tile scrolls).
fn pane_scrolled(ui: &mut Ui, cx: &Ctx, pane: Pane, out: &mut Vec<Command>) {
    egui::ScrollArea::both()
        .id_salt(("pane", pane))
        .auto_shrink(false)
        .show(ui, |ui| pane_ui(ui, cx, pane, out));
}

/// What one pane shows.
fn pane_ui(ui: &mut Ui, cx: &Ctx, pane: Pane, out: &mut Vec<Command>) {
    match pane {
        Pane::Input => input::ui(ui, cx, out),
        Pane::Draw if draw::available(cx) => draw::ui(ui, cx, out),
        Pane::Draw => {
            ui.label(
                "Drawing needs a model that reads 28x28 digits: open MNIST or Fashion-MNIST from the Models menu.",
            );
        }
        Pane::Prediction => prediction::ui(ui, cx, out),
        Pane::Explanations => explanations::ui(ui, cx, out),
        Pane::Activations => activations::ui(ui, cx, out),
        Pane::Channel => channel::ui(ui, cx, out),
        Pane::Unfold => unfold::ui(ui, cx, out),
        Pane::Neuron => wants::ui(ui, cx, out),
        Pane::Layers => layers::ui(ui, cx, out),
        Pane::Filters => filters::ui(ui, cx, out),
        Pane::Model => model::ui(ui, cx, out),
        Pane::Edits => edits::ui(ui, cx, out),
        Pane::TrainSetup => train::setup(ui, cx, out),
        Pane::TrainCurves => train::curves_ui(ui, cx),
        Pane::TrainResult => train::result_ui(ui, cx, out),
        Pane::Compare => compare::ui(ui, cx, out),
    }
}

/// In presentation mode, a ring around the pointer so the room can follow it.
fn pointer_highlight(ctx: &egui::Context, present: bool) {
    if !present {
        return;
    }
    if let Some(p) = ctx.pointer_hover_pos() {
        let painter = ctx.layer_painter(egui::LayerId::new(egui::Order::Foreground, egui::Id::unique("pointer")));
        painter.circle(
            p,
            22.0,
            Color32::from_rgba_unmultiplied(255, 220, 0, 50),
            egui::Stroke::new(3.0, Color32::from_rgb(255, 200, 0)),
        );
    }
}

/// Presentation mode's look: everything larger, text at full contrast, thicker lines (set
/// when the mode changes; Ctrl+plus / Ctrl+minus zoom from there).
pub fn apply_presentation(ctx: &egui::Context, present: bool) {
    let zoom = if present { 1.5 } else { 1.0 };
    {
        ctx.set_zoom_factor(zoom);
        let mut v = if present {
            egui::Visuals::dark()
        } else {
            egui::Visuals::default()
        };
        if present {
            v.override_text_color = Some(Color32::WHITE);
            v.panel_fill = Color32::BLACK;
            v.window_fill = Color32::BLACK;
            v.extreme_bg_color = Color32::BLACK;
            v.widgets.noninteractive.bg_stroke = egui::Stroke::new(1.5, Color32::from_gray(200));
            v.selection.bg_fill = Color32::from_rgb(0, 90, 200);
        }
        ctx.set_visuals(v);
    }
}

fn files_dropped(ctx: &egui::Context, out: &mut Vec<Command>) {
    let dropped = ctx.input(|i| i.raw.dropped_files.clone());
    for f in dropped {
        out.push(Command::OpenPath(f.path().to_path_buf()));
    }
}

fn drop_hint(ctx: &egui::Context) {
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

/// Keyboard shortcuts (F1 lists them) and file paths pasted as text.
pub fn shortcuts(ctx: &egui::Context, state: &State, maximised: bool, out: &mut Vec<Command>) {
    // While "Unsaved changes" asks, the keyboard is its own (Esc answers Cancel there).
    if state.unsaved.question.is_some() {
        return;
    }
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
    let (present, next, prev) = ctx.input_mut(|i| {
        (
            i.consume_key(Modifiers::NONE, Key::F5),
            i.consume_key(Modifiers::NONE, Key::PageDown),
            i.consume_key(Modifiers::NONE, Key::PageUp),
        )
    });
    if present {
        out.push(Command::Present(!state.present));
    }
    // Ctrl+Z undoes the last edit of the model, Ctrl+Shift+Z or Ctrl+Y redoes it, anywhere but
    // in a text field (where they undo the typing). The most specific first: consume_key
    // ignores an extra Shift.
    if !ctx.text_edit_focused() {
        let (redo, undo) = ctx.input_mut(|i| {
            let redo = i.consume_key(cmd | Modifiers::SHIFT, Key::Z) | i.consume_key(cmd, Key::Y);
            (redo, i.consume_key(cmd, Key::Z))
        });
        if undo && !state.edits.is_empty() {
            out.push(Command::Edit(glassbox_engine::worker::EditRequest::Undo));
        }
        if redo && state.redoable > 0 {
            out.push(Command::Edit(glassbox_engine::worker::EditRequest::Redo));
        }
    }
    // A presenter's clicker sends PageDown / PageUp: the next lesson step, else the next view.
    if next || prev {
        match &state.lesson {
            Some(run) => {
                let n = run.lesson.steps.len();
                let k = if next {
                    (run.step + 1).min(n - 1)
                } else {
                    run.step.saturating_sub(1)
                };
                out.push(Command::Lesson(crate::command::LessonCommand::Go(k)));
            }
            None => out.push(Command::Focus(Some(Focus::step(state.focus, next)))),
        }
    }
    for (k, key) in [Key::Num1, Key::Num2, Key::Num3, Key::Num4].into_iter().enumerate() {
        if ctx.input_mut(|i| i.consume_key(cmd, key)) {
            out.push(Command::Layout(Layout::ALL[k]));
        }
    }
    let esc = if esc && state.focus.is_some() {
        out.push(Command::Focus(None));
        false
    } else if esc && maximised {
        out.push(Command::Maximise(None));
        false
    } else {
        esc
    };
    if open {
        out.push(Command::Dialog(DialogKind::Image));
    }
    if model {
        out.push(Command::Dialog(DialogKind::Model));
    }
    if paste {
        out.push(Command::Paste);
    }
    if export {
        if let Some(id) = state.slots.first().map(|s| s.id) {
            out.push(Command::Dialog(DialogKind::Export(
                ExportWhat::Overlay(id),
                "explanation.png".into(),
            )));
        }
    }
    if esc {
        out.push(Command::CancelAll);
    }
    if help {
        out.push(Command::ToggleHelp);
    }
    if add {
        out.push(Command::AddSlot(Method::IntegratedGradients));
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
            out.push(Command::OpenPath(p));
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
                if let Some(c) = state.top.get(k) {
                    out.push(Command::SetTarget(Some(c.index)));
                }
            }
        }
    }
}
