//! Retraining in place: the data (a folder of labelled images or a bundled data set), what
//! to train (add classes, the head, from a layer, the whole network, a small CNN from
//! scratch) and how; the run live (progress with ETA, pause, cancel, the learning rate,
//! loss and accuracy curves); then the result as a candidate: its timeline, the confusion
//! matrix of the validation images (click a cell for its images and their explanations),
//! beside the model it started from; keep it, discard it or save it.

use egui::{Color32, RichText, Ui, Vec2};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::command::{Command, DialogKind, TrainCommand};
use crate::state::{TrainForm, TrainMode, Training};
use crate::textures::Which;
use crate::widgets::Ctx;
use glassbox_engine::data::DatasetName;
use glassbox_engine::finetune::{DataSource, Optimizer};

pub const TIP: &str = "Teach the model new classes, fine-tune it on your own images, or train the small CNN from scratch, and watch it learn.";

/// The data and the settings, and the run's controls (pause, learning rate, cancel).
pub fn setup(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    super::explain_this::what_is_this(ui, crate::state::Topic::Retrain, out);
    form(ui, cx, out);
    ui.separator();
    run(ui, &cx.state.training, out);
}

/// The loss and accuracy curves of the run (live while it goes on).
pub fn curves_ui(ui: &mut Ui, cx: &Ctx) {
    let tr = &cx.state.training;
    if tr.losses.is_empty() && tr.epochs.is_empty() {
        ui.weak("The loss of every step and the accuracy of every epoch appear here while a run goes on.");
        return;
    }
    curves(ui, tr);
}

/// The candidate of the last run: its timeline, its confusion matrix, keep or discard.
pub fn result_ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    match &cx.state.training.result {
        Some(r) => result(ui, cx, r, out),
        None => {
            ui.weak(
                "After a run, its candidate is here: scrub its timeline, open a confusion cell, keep it or discard it.",
            );
        }
    }
}

/// Everything of retraining, one part under the other (a view shown alone).
pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    setup(ui, cx, out);
    curves_ui(ui, cx);
    if cx.state.training.result.is_some() {
        ui.separator();
        result_ui(ui, cx, out);
    }
}

fn form(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let tr = &cx.state.training;
    let mut f: TrainForm = tr.form.clone();
    let idle = tr.running.is_none();
    ui.add_enabled_ui(idle, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.label("Data:");
            if ui
                .button("Pick a folder…")
                .on_hover_text("A folder with one sub-folder of images per class; each sub-folder's name is its label.")
                .clicked()
            {
                out.push(Command::Dialog(DialogKind::TrainFolder));
            }
            for d in DatasetName::ALL {
                if ui
                    .selectable_label(f.source == Some(DataSource::Dataset(*d)), d.as_str())
                    .on_hover_text("A bundled data set's training images.")
                    .clicked()
                {
                    f.source = Some(DataSource::Dataset(*d));
                }
            }
            match &f.source {
                Some(DataSource::Folder(p)) => ui.label(RichText::new(p.display().to_string()).strong()),
                Some(DataSource::Dataset(_)) => ui.weak("its training images"),
                None => ui.weak("none chosen"),
            };
        });
        ui.horizontal_wrapped(|ui| {
            ui.radio_value(&mut f.mode, TrainMode::AddClasses, "Add its classes")
                .on_hover_text("Keep the model's classes and append the data's: imprinted at once, then the new weights trained for the epochs.");
            ui.radio_value(&mut f.mode, TrainMode::Head, "Replace: head only")
                .on_hover_text("The data's classes replace the model's; only the classifier trains, on features computed once.");
            ui.radio_value(&mut f.mode, TrainMode::From, "Replace: from a layer")
                .on_hover_text("The chosen layer and every layer after it train, with flips and crops.");
            ui.radio_value(&mut f.mode, TrainMode::Full, "Replace: whole network");
            ui.radio_value(&mut f.mode, TrainMode::Scratch, "From scratch (small CNN)")
                .on_hover_text("A new small CNN from random weights, on 28x28 gray images (MNIST, Fashion-MNIST).");
        });
        if f.mode == TrainMode::From {
            let layers: Vec<String> = cx
                .state
                .model
                .as_ref()
                .map(|m| m.layers.iter().map(|l| l.name.clone()).collect())
                .unwrap_or_default();
            if f.from.is_empty() || !layers.contains(&f.from) {
                f.from = layers.iter().rev().nth(3).cloned().unwrap_or_default();
            }
            egui::ComboBox::new("train-from", "train from")
                .selected_text(&f.from)
                .height(300.0)
                .show_ui(ui, |ui| {
                    for l in &layers {
                        ui.selectable_value(&mut f.from, l.clone(), l);
                    }
                });
        }
        egui::Grid::new("train-settings").num_columns(4).show(ui, |ui| {
            let l = ui.label("Epochs");
            ui.add(egui::DragValue::new(&mut f.epochs).range(0..=1000)).labelled_by(l.id);
            let l = ui.label("Learning rate");
            ui.add(egui::TextEdit::singleline(&mut f.lr).desired_width(70.0))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("Batch");
            ui.add(egui::DragValue::new(&mut f.batch).range(1..=1024)).labelled_by(l.id);
            ui.label("Optimiser");
            egui::ComboBox::new("train-optimizer", "")
                .selected_text(f.optimizer.name())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut f.optimizer, Optimizer::Adam, "adam");
                    ui.selectable_value(&mut f.optimizer, Optimizer::Sgd, "sgd")
                        .on_hover_text("SGD with momentum 0.9");
                });
            ui.end_row();
            let l = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut f.seed)).labelled_by(l.id);
            let l = ui.label("Validation");
            ui.add(egui::Slider::new(&mut f.val_split, 0.0..=0.9).fixed_decimals(2))
                .labelled_by(l.id)
                .on_hover_text("Fraction of each class held out to validate on (seeded).");
            ui.end_row();
            let l = ui.label("Images per class");
            ui.add(egui::DragValue::new(&mut f.per_class).range(0..=100_000))
                .labelled_by(l.id)
                .on_hover_text("At most this many images of each class (0: all).");
            ui.checkbox(&mut f.augment, "flips and crops")
                .on_hover_text("Random horizontal flips and crops while training a layer on or the whole network (never for digits).");
            ui.end_row();
        });
    });
    if f != tr.form {
        out.push(Command::Train(TrainCommand::Form(f)));
    }
}

fn run(ui: &mut Ui, tr: &Training, out: &mut Vec<Command>) {
    let cmd = |t| Command::Train(t);
    match tr.running {
        None => {
            if ui
                .button(RichText::new("Start training").strong())
                .on_hover_text("Runs on the model as it is now; the result is a candidate you keep or discard.")
                .clicked()
            {
                out.push(cmd(TrainCommand::Start));
            }
        }
        Some(_) => {
            let (frac, text) = match (tr.step, tr.features, &tr.plan) {
                (Some((e, st, steps, _)), _, Some(p)) => {
                    let done = (e - 1) * steps + st;
                    let total = (p.epochs * steps).max(1);
                    let eta = tr.eta().map(|s| format!(", about {s:.0} s left")).unwrap_or_default();
                    (
                        done as f32 / total as f32,
                        format!("epoch {e}/{}, step {st}/{steps}{eta}", p.epochs),
                    )
                }
                (None, Some((d, t)), _) => (d as f32 / t.max(1) as f32, format!("features of {d}/{t} images")),
                _ => (0.0, "reading the images…".to_string()),
            };
            ui.add(egui::ProgressBar::new(frac).text(text));
            ui.horizontal(|ui| {
                let label = if tr.paused { "Resume" } else { "Pause" };
                if ui.button(label).clicked() {
                    out.push(cmd(TrainCommand::Pause(!tr.paused)));
                }
                if ui
                    .button("Cancel training")
                    .on_hover_text("Stops now; the model stays as it was before the run.")
                    .clicked()
                {
                    out.push(cmd(TrainCommand::Cancel));
                }
                let id = egui::Id::unique("train-new-lr");
                let mut lr: String = ui.data(|d| d.get_temp(id)).unwrap_or_else(|| tr.new_lr.clone());
                let l = ui.label("new learning rate");
                ui.add(egui::TextEdit::singleline(&mut lr).desired_width(70.0))
                    .labelled_by(l.id);
                if ui.button("Set").on_hover_text("From the next step on.").clicked() {
                    out.push(cmd(TrainCommand::SetLr(lr.clone())));
                }
                ui.data_mut(|d| d.insert_temp(id, lr));
            });
        }
    }
    if let Some(p) = &tr.plan {
        ui.weak(format!(
            "{}: {} classes, {} training and {} validation images, batch {}, about {:.0} MiB",
            p.mode,
            p.classes.len(),
            p.train_images,
            p.val_images,
            p.batch,
            p.estimate_bytes as f64 / (1u64 << 20) as f64
        ));
        if let Some(n) = &p.note {
            ui.colored_label(Color32::from_rgb(230, 170, 60), n);
        }
        if !p.skipped.is_empty() {
            ui.collapsing(format!("{} file(s) skipped", p.skipped.len()), |ui| {
                for s in &p.skipped {
                    ui.label(s);
                }
            });
        }
    }
    if let Some(n) = &tr.note {
        ui.colored_label(Color32::from_rgb(230, 170, 60), n);
    }
}

/// Loss and accuracy, train and validation, as the run goes.
fn curves(ui: &mut Ui, tr: &Training) {
    if tr.epochs.is_empty() && tr.losses.is_empty() {
        return;
    }
    let per_epoch = |f: &dyn Fn(&glassbox_engine::finetune::EpochStats) -> Option<f64>| -> Vec<[f64; 2]> {
        tr.epochs
            .iter()
            .filter_map(|e| f(e).map(|v| [e.epoch as f64, v]))
            .collect()
    };
    // One plot: a line per series, dots on the per-epoch validation series.
    let plot = |ui: &mut Ui, id: &str, top: Option<f64>, series: Vec<(&str, Vec<[f64; 2]>, Color32, bool)>| {
        let mut p = Plot::new(id)
            .height(140.0)
            .width(300.0)
            .include_x(0.0)
            .include_y(0.0)
            .allow_drag(false)
            .allow_scroll(false)
            .x_axis_label("epoch")
            .legend(Legend::default());
        if let Some(t) = top {
            p = p.include_y(t);
        }
        p.show(ui, |p| {
            for (name, pts, color, dots) in series {
                if dots {
                    p.points(Points::new("", PlotPoints::from(pts.clone())).radius(3.0).color(color));
                }
                p.line(Line::new(name, PlotPoints::from(pts)).color(color));
            }
        });
    };
    let (blue, orange) = (Color32::from_rgb(90, 150, 230), Color32::from_rgb(230, 120, 60));
    ui.horizontal(|ui| {
        plot(
            ui,
            "train-loss",
            None,
            vec![
                ("train loss (steps)", tr.losses.clone(), blue, false),
                ("validation loss", per_epoch(&|e| e.val_loss), orange, true),
            ],
        );
        plot(
            ui,
            "train-accuracy",
            Some(1.0),
            vec![
                ("train accuracy", per_epoch(&|e| e.train_accuracy), blue, false),
                ("validation accuracy", per_epoch(&|e| e.val_accuracy), orange, true),
            ],
        );
    });
    if let Some(last) = tr.epochs.last() {
        let pct = |v: Option<f64>| v.map_or("-".into(), |a| format!("{:.1} %", a * 100.0));
        ui.label(format!(
            "epoch {}: train loss {}, accuracy {}; validation loss {}, accuracy {}",
            last.epoch,
            last.train_loss.map_or("-".into(), |l| format!("{l:.3}")),
            pct(last.train_accuracy),
            last.val_loss.map_or("-".into(), |l| format!("{l:.3}")),
            pct(last.val_accuracy)
        ));
    }
}

fn result(ui: &mut Ui, cx: &Ctx, r: &crate::state::TrainResult, out: &mut Vec<Command>) {
    let tr = &cx.state.training;
    let s = &r.summary;
    let cmd = |t| Command::Train(t);
    ui.label(RichText::new("The retrained model (a candidate)").strong());
    ui.horizontal(|ui| {
        if ui
            .button(RichText::new("Keep it").strong())
            .on_hover_text("The retrained model (at the timeline point shown) becomes the model.")
            .clicked()
        {
            out.push(cmd(TrainCommand::Accept));
        }
        if ui
            .button("Discard")
            .on_hover_text("Back to the model before training.")
            .clicked()
        {
            out.push(cmd(TrainCommand::Discard));
        }
        if ui
            .button("Save…")
            .on_hover_text("As safetensors, with the training record in its metadata.")
            .clicked()
        {
            out.push(Command::Dialog(DialogKind::SaveModel));
        }
    });
    ui.label(format!(
        "{} — validation accuracy {}{}",
        s.mode,
        s.val_accuracy.map_or("-".into(), |a| format!("{:.1} %", a * 100.0)),
        if s.imprinted.is_empty() {
            String::new()
        } else {
            format!("; imprinted: {}", s.imprinted.join(", "))
        }
    ));
    // The timeline: every view shows the candidate at the chosen epoch.
    if r.timeline.len() > 1 {
        let mut point = tr.point.min(r.timeline.len() - 1);
        ui.horizontal(|ui| {
            let l = ui.label("Timeline");
            let resp = ui
                .add(
                    egui::Slider::new(&mut point, 0..=r.timeline.len() - 1)
                        .custom_formatter(|v, _| format!("epoch {}", r.timeline[v as usize]))
                        .custom_parser(|t| {
                            let e: usize = t.trim().trim_start_matches("epoch").trim().parse().ok()?;
                            r.timeline.iter().position(|&x| x == e).map(|p| p as f64)
                        }),
                )
                .labelled_by(l.id)
                .on_hover_text("Scrub through training: the prediction, filters, activations and maps follow.");
            if resp.changed() {
                out.push(cmd(TrainCommand::Scrub(point)));
            }
        });
    }
    confusion(ui, cx, r, out);
    // Beside the model it started from.
    if let Some((before, after)) = &r.probe {
        ui.label(RichText::new("This image, before and after").strong());
        egui::Grid::new("train-probe").striped(true).show(ui, |ui| {
            ui.label("before");
            ui.label("after");
            ui.end_row();
            for k in 0..3 {
                let c = |v: &Vec<glassbox_engine::model::Class>| {
                    v.get(k)
                        .map(|c| format!("{} {:.1} %", c.label, c.probability * 100.0))
                        .unwrap_or_default()
                };
                ui.label(c(before));
                ui.label(c(after));
                ui.end_row();
            }
        });
    }
    if !s.per_class.is_empty() {
        ui.collapsing("Per class on the validation images", |ui| {
            egui::Grid::new("train-per-class").striped(true).show(ui, |ui| {
                ui.label("class");
                ui.label("after");
                ui.label("before");
                ui.end_row();
                for c in &s.per_class {
                    ui.label(&c.label);
                    ui.label(format!("{:.1} % ({}/{})", c.accuracy * 100.0, c.correct, c.total));
                    ui.label(
                        c.base_accuracy
                            .map_or("unknown class".into(), |a| format!("{:.1} %", a * 100.0)),
                    );
                    ui.end_row();
                }
            });
        });
    }
}

/// The confusion matrix of the validation images; a cell opens its images.
fn confusion(ui: &mut Ui, cx: &Ctx, r: &crate::state::TrainResult, out: &mut Vec<Command>) {
    let s = &r.summary;
    if s.confusion.is_empty() || s.plan.val_images == 0 {
        return;
    }
    let k = s.plan.classes.len();
    let other = s.confusion.iter().any(|row| row[k] > 0);
    let cols = if other { k + 1 } else { k };
    let max = s.confusion.iter().flatten().copied().max().unwrap_or(1).max(1);
    ui.label(RichText::new("Confusion on the validation images (rows: true class; click a cell)").strong());
    egui::ScrollArea::horizontal().id_salt("confusion").show(ui, |ui| {
        egui::Grid::new("train-confusion")
            .spacing(Vec2::splat(2.0))
            .show(ui, |ui| {
                ui.label("");
                for c in 0..cols {
                    let name = s.plan.classes.get(c).map(String::as_str).unwrap_or("other");
                    ui.label(RichText::new(short(name)).small()).on_hover_text(name);
                }
                ui.end_row();
                for (t, row) in s.confusion.iter().enumerate() {
                    ui.label(RichText::new(short(&s.plan.classes[t])).small())
                        .on_hover_text(&s.plan.classes[t]);
                    for (p, &n) in row.iter().take(cols).enumerate() {
                        let a = (n as f32 / max as f32 * 200.0) as u8;
                        let fill = if t == p {
                            Color32::from_rgba_unmultiplied(60, 160, 90, a.max(20))
                        } else {
                            Color32::from_rgba_unmultiplied(220, 80, 60, a.max(if n > 0 { 60 } else { 10 }))
                        };
                        let b = egui::Button::new(n.to_string())
                            .fill(fill)
                            .min_size(Vec2::new(34.0, 22.0));
                        let pred = s.plan.classes.get(p).map(String::as_str).unwrap_or("another class");
                        if ui
                            .add(b)
                            .on_hover_text(format!("{}: true {}, predicted {pred}", n, s.plan.classes[t]))
                            .clicked()
                        {
                            out.push(Command::Train(TrainCommand::Cell { truth: t, predicted: p }));
                        }
                    }
                    ui.end_row();
                }
            });
    });
    if let Some((t, p, images)) = &cx.state.training.cell {
        let pred = s.plan.classes.get(*p).map(String::as_str).unwrap_or("another class");
        ui.label(format!(
            "{} image(s): true {}, predicted {pred} — Grad-CAM of the predicted class",
            images.len(),
            s.plan.classes[*t]
        ));
        ui.horizontal_wrapped(|ui| {
            for (n, img) in images.iter().enumerate() {
                ui.vertical(|ui| {
                    if let Some(h) = cx.tex.get(Which::Cell(n)).and_then(|t| t.handle.as_ref()) {
                        ui.add(egui::Image::new((h.id(), Vec2::splat(96.0))))
                            .on_hover_text(&img.name);
                    }
                    ui.label(
                        RichText::new(format!("{} {:.0} %", short(&img.predicted), img.probability * 100.0)).small(),
                    );
                    if ui
                        .small_button("Open")
                        .on_hover_text(format!("Open {} as the input", img.name))
                        .clicked()
                    {
                        out.push(Command::SetImage(img.source.clone()));
                    }
                });
            }
        });
    }
}

/// A class name cut to fit a matrix cell.
fn short(name: &str) -> String {
    let first = name.split(',').next().unwrap_or(name).trim();
    if first.chars().count() > 10 {
        format!("{}…", first.chars().take(9).collect::<String>())
    } else {
        first.to_string()
    }
}
