//! Editing the model by hand: the edit list (click an entry to go back to that point),
//! undo, redo, reset, save, and what the edits broke on labelled images. The filter editor
//! itself sits in the channel view (`kernel_editor`).

use egui::{Color32, FontId, Sense, Stroke, Ui, Vec2};

use crate::command::{Command, DialogKind};
use crate::state::ChannelDetail;
use crate::widgets::Ctx;
use glassbox_engine::data::DatasetName;
use glassbox_engine::edit::{Op, Preset, Target};
use glassbox_engine::worker::{EditRequest, EvalSet};

pub const TIP: &str =
    "Your changes to the model, oldest first: click one to go back to that point; undo, redo, reset and save them.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    crate::widgets::heading(ui, "Edits", TIP, crate::state::Topic::Edits, out);
    if let Some(m) = s.model.as_ref().filter(|m| !m.saved_edits.is_empty()) {
        ui.collapsing(
            format!("made before this file was saved ({})", m.saved_edits.len()),
            |ui| {
                for (k, e) in m.saved_edits.iter().enumerate() {
                    ui.label(format!("{}. {e}", k + 1));
                }
            },
        );
    }
    if s.edits.is_empty() && s.redoable == 0 {
        ui.label("No edits: knock out a channel or paint a filter in the channel view.");
        return;
    }
    let edit = |e: EditRequest| Command::Edit(e);
    if ui.selectable_label(false, "0. the original model").clicked() {
        out.push(edit(EditRequest::GoTo(0)));
    }
    for (k, e) in s.edits.iter().enumerate() {
        let last = k + 1 == s.edits.len();
        if ui
            .selectable_label(last, format!("{}. {e}", k + 1))
            .on_hover_text("Go back to the model right after this edit.")
            .clicked()
        {
            out.push(edit(EditRequest::GoTo(k + 1)));
        }
    }
    if s.redoable > 0 {
        ui.weak(format!("{} undone edit(s) can be redone", s.redoable));
    }
    ui.horizontal_wrapped(|ui| {
        if ui.add_enabled(!s.edits.is_empty(), egui::Button::new("Undo")).clicked() {
            out.push(edit(EditRequest::Undo));
        }
        if ui.add_enabled(s.redoable > 0, egui::Button::new("Redo")).clicked() {
            out.push(edit(EditRequest::Redo));
        }
        if ui
            .add_enabled(!s.edits.is_empty(), egui::Button::new("Reset"))
            .on_hover_text("Undo every edit: the original model, bit for bit.")
            .clicked()
        {
            out.push(edit(EditRequest::Reset));
        }
        if ui
            .add_enabled(!s.edits.is_empty(), egui::Button::new("Save edited model…"))
            .on_hover_text("A new safetensors file with the edit log; the original is never modified.")
            .clicked()
        {
            out.push(Command::Dialog(DialogKind::SaveModel));
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("What did it break?");
        let small = s
            .model
            .as_ref()
            .is_some_and(|m| m.arch == "tiny-cnn" && m.classes == 10);
        if small {
            for d in DatasetName::ALL {
                if ui
                    .button(format!("on {}", d.as_str()))
                    .on_hover_text(
                        "Accuracy of the edited and the original model on the 10,000 test images, per class.",
                    )
                    .clicked()
                {
                    out.push(edit(EditRequest::Evaluate(EvalSet::Dataset(*d))));
                }
            }
        }
        if ui
            .button("on a folder…")
            .on_hover_text("A folder with one sub-folder of images per class, named by label or class index.")
            .clicked()
        {
            out.push(Command::Dialog(DialogKind::EvalFolder));
        }
    });
    if let Some(e) = &s.evaluation {
        ui.label(format!(
            "accuracy {:.2} % before, {:.2} % now ({:+.2}) on {} images",
            e.original * 100.0,
            e.edited * 100.0,
            (e.edited - e.original) * 100.0,
            e.images
        ));
        egui::Grid::new("damage").num_columns(3).striped(true).show(ui, |ui| {
            for c in e.changes.iter().take(8) {
                ui.label(format!("{} {}", c.index, c.label));
                ui.label(format!("{:.1} % to {:.1} %", c.before * 100.0, c.after * 100.0));
                let color = if c.change < -0.005 {
                    Color32::from_rgb(230, 90, 80)
                } else {
                    ui.visuals().text_color()
                };
                ui.colored_label(color, format!("{:+.1}", c.change * 100.0));
                ui.end_row();
            }
        });
    }
}

/// Undo and redo beside the kernel editor, the same as the Edits panel's (whose buttons are
/// plain "Undo" / "Redo": these are labelled apart, both can be on screen at once).
fn undo_redo(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    if ui
        .add_enabled(!s.edits.is_empty(), egui::Button::new("Undo edit"))
        .on_hover_text("Undo the last edit (Ctrl+Z): the model as it was before it, bit for bit.")
        .clicked()
    {
        out.push(Command::Edit(EditRequest::Undo));
    }
    if ui
        .add_enabled(s.redoable > 0, egui::Button::new("Redo edit"))
        .on_hover_text("Redo the edit just undone (Ctrl+Shift+Z or Ctrl+Y).")
        .clicked()
    {
        out.push(Command::Edit(EditRequest::Redo));
    }
}

/// How a click on a kernel value changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Brush {
    Set,
    Add,
    Multiply,
}

/// The editor of the filter that made the chosen channel: its values (click one to paint it
/// with the brush), operations on the whole filter, presets for 3x3 kernels, the channel's
/// knock-out, and undo / redo right beside it.
pub fn kernel_editor(ui: &mut Ui, cx: &Ctx, d: &ChannelDetail, out: &mut Vec<Command>) {
    let s = cx.state;
    let Some(ch) = &s.channels else { return };
    let knocked = s
        .knockouts
        .iter()
        .any(|(l, c)| *l == ch.layer && *c == d.channel as i64);
    let (label, op) = if knocked {
        ("Bring channel back", Op::Restore(ch.layer.clone(), d.channel as i64))
    } else {
        ("Knock out channel", Op::Knockout(ch.layer.clone(), d.channel as i64))
    };
    ui.horizontal_wrapped(|ui| {
        if ui
            .button(format!("{label} {}", d.channel))
            .on_hover_text("A knocked-out channel is zero in every forward and backward.")
            .clicked()
        {
            out.push(Command::Edit(EditRequest::Apply(op)));
        }
        undo_redo(ui, cx, out);
    });
    let Some((conv, shape, _)) = &d.kernel else { return };
    if shape.len() != 4 || d.kernel_values.len() as i64 != shape.iter().product::<i64>() {
        return;
    }
    let (cin, kh, kw) = (shape[1] as usize, shape[2] as usize, shape[3] as usize);
    let param = format!("{conv}.weight");
    let o = d.channel as i64;
    let id = egui::Id::unique("kernel-brush");
    let (mut brush, mut value) = ui.data(|m| m.get_temp::<(Brush, f64)>(id)).unwrap_or((Brush::Set, 0.0));
    ui.horizontal(|ui| {
        egui::ComboBox::new("brush", "brush")
            .selected_text(format!("{brush:?}").to_lowercase())
            .show_ui(ui, |ui| {
                for b in [Brush::Set, Brush::Add, Brush::Multiply] {
                    ui.selectable_value(&mut brush, b, format!("{b:?}").to_lowercase());
                }
            })
            .response
            .on_hover_text("What a click on a value does: set it, add to it, or multiply it by the brush value.");
        ui.add(egui::DragValue::new(&mut value).speed(0.01).range(-100.0..=100.0))
            .on_hover_text("The brush value.");
    });
    ui.data_mut(|m| m.insert_temp(id, (brush, value)));
    // The values, one small grid per input channel (the first 8), coloured around 0.
    let max = d.kernel_values.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let k = Kernel {
        param,
        o,
        dims: (cin, kh, kw),
        max,
        brush: (brush, value),
    };
    let shown = cin.min(8);
    kernel_grids(ui, d, &k, shown, out);
    if shown < cin {
        ui.weak(format!("(the first {shown} of {cin} input channels)"));
    }
    channel_numbers(ui, d, o, out);
    filter_ops(ui, conv, &k, out);
}

/// The kernel being edited: its parameter, output channel, shape (in, h, w), largest
/// magnitude, and the brush.
struct Kernel {
    param: String,
    o: i64,
    dims: (usize, usize, usize),
    max: f32,
    brush: (Brush, f64),
}

/// One small grid of values per input channel (the first `shown`): a click paints a value
/// with the brush, a right-click offers operations on that kernel.
fn kernel_grids(ui: &mut Ui, d: &ChannelDetail, k: &Kernel, shown: usize, out: &mut Vec<Command>) {
    let (param, o, max) = (&k.param, k.o, k.max);
    let (_, kh, kw) = k.dims;
    let (brush, value) = k.brush;
    let cell = if kh * kw <= 9 { 32.0 } else { 14.0 };
    ui.horizontal_wrapped(|ui| {
        for i in 0..shown {
            let (rect, resp) = ui.allocate_exact_size(Vec2::new(cell * kw as f32, cell * kh as f32), Sense::click());
            let p = ui.painter();
            for y in 0..kh {
                for x in 0..kw {
                    let v = d.kernel_values[((i * kh) + y) * kw + x];
                    let t = (v / max).clamp(-1.0, 1.0);
                    let c = if t >= 0.0 {
                        Color32::from_rgb(255, (255.0 * (1.0 - t)) as u8, (255.0 * (1.0 - t)) as u8)
                    } else {
                        Color32::from_rgb((255.0 * (1.0 + t)) as u8, (255.0 * (1.0 + t)) as u8, 255)
                    };
                    let r = egui::Rect::from_min_size(
                        rect.min + Vec2::new(x as f32 * cell, y as f32 * cell),
                        Vec2::splat(cell),
                    );
                    p.rect_filled(r, 0.0, c);
                    p.rect_stroke(r, 0.0, Stroke::new(0.5, Color32::GRAY), egui::StrokeKind::Inside);
                    if cell >= 20.0 {
                        p.text(
                            r.center(),
                            egui::Align2::CENTER_CENTER,
                            format!("{v:.2}"),
                            FontId::monospace(8.0),
                            Color32::BLACK,
                        );
                    }
                }
            }
            let name = format!("kernel {param}[{o},{i}]");
            resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &name));
            let resp = resp.on_hover_text(format!(
                "input channel {i} of `{param}`[{o}]: click to paint a value; right-click for operations on this kernel"
            ));
            resp.context_menu(|ui| {
                let k = Target {
                    param: param.clone(),
                    index: vec![o, i as i64],
                };
                for (label, op) in [
                    ("Zero this kernel", Op::Zero(k.clone())),
                    ("Negate this kernel", Op::Scale(k.clone(), -1.0)),
                    ("Scale by the brush value", Op::Scale(k.clone(), value)),
                    (
                        "Add seeded noise",
                        Op::Noise(k.clone(), (max as f64 * 0.3).max(1e-3), 0),
                    ),
                    ("Re-initialise", Op::Randomize(k.clone(), 0)),
                ] {
                    if ui.button(label).clicked() {
                        out.push(Command::Edit(EditRequest::Apply(op)));
                        ui.close();
                    }
                }
                if kh == 3 && kw == 3 {
                    for p in Preset::ALL {
                        if ui.button(format!("Preset: {}", p.name())).clicked() {
                            out.push(Command::Edit(EditRequest::Apply(Op::Preset(k.clone(), *p))));
                            ui.close();
                        }
                    }
                }
            });
            if resp.clicked() {
                if let Some(pos) = resp.interact_pointer_pos() {
                    let local = pos - rect.min;
                    let (x, y) = ((local.x / cell) as i64, (local.y / cell) as i64);
                    let target = Target {
                        param: param.clone(),
                        index: vec![o, i as i64, y.min(kh as i64 - 1), x.min(kw as i64 - 1)],
                    };
                    let op = match brush {
                        Brush::Set => Op::Set(target, value),
                        Brush::Add => Op::Add(target, value),
                        Brush::Multiply => Op::Scale(target, value),
                    };
                    out.push(Command::Edit(EditRequest::Apply(op)));
                }
            }
        }
    });
}

/// The channel's bias and batch-norm numbers, each editable.
fn channel_numbers(ui: &mut Ui, d: &ChannelDetail, o: i64, out: &mut Vec<Command>) {
    if !d.channel_params.is_empty() {
        egui::Grid::new("channel-params").num_columns(2).show(ui, |ui| {
            for (name, v) in &d.channel_params {
                let l = ui.label(
                    name.rsplit('.')
                        .take(2)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("."),
                );
                let mut x = *v as f64;
                let r = ui
                    .add(egui::DragValue::new(&mut x).speed(0.01))
                    .labelled_by(l.id)
                    .on_hover_text(format!("`{name}`[{o}]"));
                if r.drag_stopped() || (r.changed() && !r.dragged()) {
                    let t = Target {
                        param: name.clone(),
                        index: vec![o],
                    };
                    out.push(Command::Edit(EditRequest::Apply(Op::Set(t, x))));
                }
                ui.end_row();
            }
        });
    }
}

/// Operations on the whole filter of the channel and on the whole layer, and the 3x3 presets.
fn filter_ops(ui: &mut Ui, conv: &str, k: &Kernel, out: &mut Vec<Command>) {
    let (param, o, max) = (&k.param, k.o, k.max);
    let (cin, kh, kw) = k.dims;
    let value = k.brush.1;
    let whole = Target {
        param: param.clone(),
        index: vec![o],
    };
    ui.horizontal_wrapped(|ui| {
        for (label, op) in [
            ("Zero", Op::Zero(whole.clone())),
            ("Negate", Op::Scale(whole.clone(), -1.0)),
            ("×2", Op::Scale(whole.clone(), 2.0)),
            ("Noise", Op::Noise(whole.clone(), (max as f64 * 0.3).max(1e-3), 0)),
            ("Re-initialise", Op::Randomize(whole.clone(), 0)),
        ] {
            if ui
                .small_button(label)
                .on_hover_text(format!("{op} — on the whole filter of this channel"))
                .clicked()
            {
                out.push(Command::Edit(EditRequest::Apply(op)));
            }
        }
        ui.separator();
        let layer = Target {
            param: param.clone(),
            index: vec![],
        };
        for (label, op) in [
            ("Zero layer", Op::Zero(layer.clone())),
            ("Negate layer", Op::Scale(layer.clone(), -1.0)),
            ("Scale layer", Op::Scale(layer.clone(), value)),
            (
                "Noise on layer",
                Op::Noise(layer.clone(), (max as f64 * 0.3).max(1e-3), 0),
            ),
            ("Re-initialise layer", Op::Randomize(layer.clone(), 0)),
        ] {
            if ui
                .small_button(label)
                .on_hover_text(format!("{op} — every filter of `{conv}`"))
                .clicked()
            {
                out.push(Command::Edit(EditRequest::Apply(op)));
            }
        }
        if kh == 3 && kw == 3 {
            for p in Preset::ALL {
                if ui
                    .small_button(p.name())
                    .on_hover_text("Put this 3x3 kernel in every input channel of the filter.")
                    .clicked()
                {
                    for i in 0..cin as i64 {
                        let t = Target {
                            param: param.clone(),
                            index: vec![o, i],
                        };
                        out.push(Command::Edit(EditRequest::Apply(Op::Preset(t, *p))));
                    }
                }
            }
        }
    });
}
