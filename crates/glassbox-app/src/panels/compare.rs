//! Two models side by side: model A (pinned) against the current model, B. Both answers on
//! the current image with the change of each probability, both maps and their difference,
//! the weights that changed (largest first, each convolution's filters in both), both
//! per-class accuracies on labelled images.

use egui::{RichText, Ui};

use crate::command::{Command, CompareCommand, DialogKind};
use crate::textures::Which;
use crate::widgets::{fit, Ctx};
use glassbox_engine::data::DatasetName;
use glassbox_engine::session::PinSource;
use glassbox_engine::worker::EvalSet;

pub const TIP: &str =
    "Pin the model as A, change it (edit, retrain, open another file): see what changed, side by side.";

/// The rows of the weight table shown (the JSON of `glassbox compare` lists every one).
const WEIGHT_ROWS: usize = 40;

fn pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{:.1} %", p * 100.0))
}

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    let c = &s.compare;
    ui.heading("Compare A and B").on_hover_text(TIP);
    let pin = |src| Command::Compare(CompareCommand::Pin(src));
    ui.horizontal_wrapped(|ui| {
        if ui
            .button("Pin the model now as A")
            .on_hover_text("A is the model as it is now; edit, retrain or open another model, and compare.")
            .clicked()
        {
            out.push(pin(Some(PinSource::Current)));
        }
        if ui
            .add_enabled(!s.edits.is_empty(), egui::Button::new("A = before the edits"))
            .on_hover_text("Compare the model before your edits with the model now.")
            .clicked()
        {
            out.push(pin(Some(PinSource::BeforeEdits)));
        }
        if ui
            .button("A = before the retraining")
            .on_hover_text("Compare the model the last retraining started from with the model now.")
            .clicked()
        {
            out.push(pin(Some(PinSource::BeforeRetraining)));
        }
        if ui.button("Open a file as A…").clicked() {
            out.push(Command::Dialog(DialogKind::PinFile));
        }
        if ui.add_enabled(c.pinned.is_some(), egui::Button::new("Unpin")).clicked() {
            out.push(pin(None));
        }
    });
    let Some(what) = &c.pinned else {
        ui.label("Nothing pinned. Pin the model as A, then change the current model (B): edit it, retrain it, or open another model file. This view shows what changed.");
        return;
    };
    let b = c.result.as_ref().map_or("the model now".to_string(), |r| r.b.clone());
    ui.label(format!("A: {what}"));
    ui.label(format!("B: {b} (the model now)"));
    let Some(r) = &c.result else {
        ui.weak(if cx.busy { "comparing…" } else { "no comparison yet" });
        return;
    };
    egui::ScrollArea::vertical().id_salt("compare").show(ui, |ui| {
        if let Some(img) = &r.image {
            ui.separator();
            egui::Grid::new("compare-top").striped(true).show(ui, |ui| {
                ui.strong("class");
                ui.strong("A");
                ui.strong("B");
                ui.strong("change");
                ui.end_row();
                for ch in &img.changes {
                    ui.label(&ch.label);
                    ui.label(pct(ch.a));
                    ui.label(pct(ch.b));
                    ui.label(ch.change.map_or("-".into(), |d| format!("{:+.1}", d * 100.0)));
                    ui.end_row();
                }
            });
            maps(ui, cx, img);
        }
        weights(ui, cx, r, out);
        accuracy(ui, cx, out);
    });
}

fn maps(ui: &mut Ui, cx: &Ctx, img: &glassbox_engine::compare::ImageComparison) {
    ui.separator();
    ui.label(format!(
        "{} of `{}`: 1 - Pearson {:.3}, rank correlation {:.3}",
        img.method, img.target, img.one_minus_pearson, img.spearman
    ))
    .on_hover_text("0 and 1: the two maps are the same up to scale.");
    picture_row(ui, cx, Which::Compare, &["A", "B", "B - A (red: B looks more)"], 260.0);
}

/// Pictures `which(0)`, `which(1)`, ... side by side, each with its caption under it, at
/// most `max` wide each.
fn picture_row(ui: &mut Ui, cx: &Ctx, which: fn(usize) -> Which, captions: &[&str], max: f32) {
    let n = captions.len() as f32;
    let side = ((ui.available_width() - 8.0 * (n - 1.0)) / n).clamp(60.0, max);
    ui.horizontal(|ui| {
        for (k, caption) in captions.iter().enumerate() {
            if let Some(h) = cx.tex.get(which(k)) {
                ui.vertical(|ui| {
                    let handle = h.handle.as_ref().expect("a texture with a picture");
                    ui.add(egui::Image::new((handle.id(), fit(h.size, side))));
                    ui.label(*caption);
                });
            }
        }
    });
}

fn weights(ui: &mut Ui, cx: &Ctx, r: &glassbox_engine::session::Compared, out: &mut Vec<Command>) {
    let w = &r.weights;
    ui.separator();
    ui.label(format!(
        "weights: {} tensor(s) changed, {} the same, {} shared class(es)",
        w.changed.len(),
        w.unchanged,
        w.shared_classes
    ));
    for (what, list) in [
        ("classes only in A", &w.classes_only_a),
        ("classes only in B", &w.classes_only_b),
    ] {
        if !list.is_empty() {
            ui.label(format!("{what}: {}", list.join(", ")));
        }
    }
    let convs = cx.state.model.as_ref().map(|m| m.convs.clone()).unwrap_or_default();
    egui::Grid::new("compare-weights").striped(true).show(ui, |ui| {
        ui.strong("tensor (largest change first)");
        ui.strong("relative L2");
        ui.strong("values changed");
        ui.end_row();
        for t in w.changed.iter().take(WEIGHT_ROWS) {
            let conv = t.name.strip_suffix(".weight").filter(|c| convs.iter().any(|x| x == c));
            match conv {
                Some(conv) => {
                    if ui
                        .link(&t.name)
                        .on_hover_text("Show this convolution's filters in A and in B.")
                        .clicked()
                    {
                        out.push(Command::Compare(CompareCommand::Filters(conv.to_string())));
                    }
                }
                None => {
                    ui.label(&t.name);
                }
            }
            ui.label(t.relative_l2.map_or("new".into(), |v| format!("{v:.4}")));
            let rows = t.shared_rows.map_or(String::new(), |n| format!(" ({n} shared rows)"));
            ui.label(format!("{} of {}{rows}", t.values, t.of));
            ui.end_row();
        }
    });
    if w.changed.len() > WEIGHT_ROWS {
        ui.weak(format!("and {} more", w.changed.len() - WEIGHT_ROWS));
    }
    if let Some((conv, _, _)) = &cx.state.compare.filters {
        ui.label(format!("the filters of `{conv}`"));
        picture_row(ui, cx, Which::CompareFilters, &["A", "B"], 320.0);
    }
}

fn accuracy(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    ui.separator();
    ui.horizontal_wrapped(|ui| {
        ui.label("Accuracy of A and B");
        let small = cx.state.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn");
        if small {
            for d in DatasetName::ALL {
                if ui.button(format!("on {}", d.as_str())).clicked() {
                    out.push(Command::Compare(CompareCommand::Accuracy(EvalSet::Dataset(*d))));
                }
            }
        }
        if ui
            .button("on a folder…")
            .on_hover_text("One sub-folder of images per class; a class only one model has counts for that one.")
            .clicked()
        {
            out.push(Command::Dialog(DialogKind::CompareFolder));
        }
    });
    let Some(a) = &cx.state.compare.accuracy else { return };
    let side = |e: &Option<glassbox_engine::evaluate::Evaluation>| match e {
        Some(e) => format!("{:.2} % of {}", e.accuracy * 100.0, e.images),
        None => "no image of its classes".into(),
    };
    ui.label(RichText::new(format!("A: {}   B: {}", side(&a.a), side(&a.b))).strong());
    egui::Grid::new("compare-accuracy").striped(true).show(ui, |ui| {
        ui.strong("class (most changed first)");
        ui.strong("images");
        ui.strong("A");
        ui.strong("B");
        ui.strong("change");
        ui.end_row();
        for ch in &a.changes {
            ui.label(&ch.label);
            ui.label(ch.images.to_string());
            ui.label(format!("{:.1} %", ch.a * 100.0));
            ui.label(format!("{:.1} %", ch.b * 100.0));
            ui.label(format!("{:+.1}", ch.change * 100.0));
            ui.end_row();
        }
    });
}
