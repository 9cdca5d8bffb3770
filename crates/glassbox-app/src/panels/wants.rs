//! What does this neuron want to see? The images of a folder or a bundled data set that
//! most activate the chosen channel (top 9), each with the channel over it.

use egui::{RichText, Ui, Vec2};

use crate::command::{Command, DialogKind, ExamplesCommand};
use crate::textures::Which;
use crate::widgets::Ctx;
use glassbox_engine::data::DatasetName;
use glassbox_engine::finetune::DataSource;

pub const TIP: &str = "The images that most activate this channel: what it responds to, shown by the data.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    let (Some(d), Some(ch)) = (&s.channel, &s.channels) else {
        return;
    };
    let e = &s.examples;
    let cmd = |c| Command::Examples(c);
    ui.separator();
    ui.label(RichText::new("What does this channel want to see?").strong())
        .on_hover_text(TIP);
    ui.horizontal_wrapped(|ui| {
        if ui
            .button("Images from a folder…")
            .on_hover_text("Any folder of images (sub-folders too, one per class).")
            .clicked()
        {
            out.push(Command::Dialog(DialogKind::ExamplesFolder));
        }
        for ds in DatasetName::ALL {
            if ui
                .selectable_label(e.source == Some(DataSource::Dataset(*ds)), ds.as_str())
                .clicked()
            {
                out.push(cmd(ExamplesCommand::Source(DataSource::Dataset(*ds))));
            }
        }
        let mut n = e.per_class;
        let l = ui.label("per class");
        if ui
            .add(egui::DragValue::new(&mut n).range(1..=6000))
            .labelled_by(l.id)
            .changed()
        {
            out.push(cmd(ExamplesCommand::PerClass(n)));
        }
    });
    if let Some(DataSource::Folder(p)) = &e.source {
        ui.weak(p.display().to_string());
    }
    let label = format!("Find the top {} images", glassbox_engine::defaults::EXAMPLES);
    if e.running.is_none() {
        if ui
            .add_enabled(e.source.is_some(), egui::Button::new(label))
            .on_hover_text("Every image's activation is computed once per layer; other channels then come at once.")
            .clicked()
        {
            out.push(cmd(ExamplesCommand::Find));
        }
    } else {
        let (done, total) = e.progress.unwrap_or((0, 1));
        ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32).text(format!("{done}/{total} images")));
    }
    if let Some(r) = e
        .result
        .as_ref()
        .filter(|r| r.layer == ch.layer && r.channel == d.channel)
    {
        top_images(ui, cx, r, out);
    }
    visual(ui, cx, &ch.layer, d.channel, out);
}

fn top_images(ui: &mut Ui, cx: &Ctx, r: &crate::state::ExamplesResult, out: &mut Vec<Command>) {
    ui.label(format!(
        "channel {} of `{}`: the top {} of {} images{}",
        r.channel,
        r.layer,
        r.images.len(),
        r.searched,
        r.images_per_s
            .map(|v| format!(" ({v:.0} images/s)"))
            .unwrap_or_default()
    ));
    egui::Grid::new("examples").spacing(Vec2::splat(4.0)).show(ui, |ui| {
        for (k, img) in r.images.iter().enumerate() {
            ui.vertical(|ui| {
                if let Some(h) = cx.tex.get(Which::Example(k)).and_then(|t| t.handle.as_ref()) {
                    ui.add(egui::Image::new((h.id(), Vec2::splat(84.0))))
                        .on_hover_text(&img.name);
                }
                ui.horizontal(|ui| {
                    ui.label(RichText::new(format!("{:.2}", img.activation)).small());
                    if ui
                        .small_button("Open")
                        .on_hover_text(format!("Open {} as the input", img.name))
                        .clicked()
                    {
                        out.push(Command::SetImage(img.source.clone()));
                    }
                });
            });
            if k % 3 == 2 {
                ui.end_row();
            }
        }
    });
}

/// (2) Feature visualisation: an image grown to maximise this channel, or the class.
fn visual(ui: &mut Ui, cx: &Ctx, layer: &str, channel: usize, out: &mut Vec<Command>) {
    use glassbox_engine::visualize::Goal;
    let s = cx.state;
    let v = &s.visual;
    ui.label(RichText::new("…and as an image grown to excite it (feature visualisation)").strong())
        .on_hover_text(
            "Gradient ascent on the input, with random jitter, scale and blur so the image stays natural; seeded.",
        );
    let class = s.explained_target.or(s.top.first().map(|c| c.index));
    ui.horizontal_wrapped(|ui| {
        let mut seed = v.seed;
        let l = ui.label("seed");
        if ui.add(egui::DragValue::new(&mut seed)).labelled_by(l.id).changed() {
            out.push(Command::VisualSeed(seed));
        }
        if v.running.is_none() {
            if ui.button("Grow an image for this channel").clicked() {
                out.push(Command::Visualize {
                    goal: Goal::Channel {
                        layer: layer.to_string(),
                        channel,
                    },
                    seed: v.seed,
                });
            }
            if let Some(c) = class {
                let label = s
                    .model
                    .as_ref()
                    .and_then(|m| m.labels.get(c as usize).cloned())
                    .unwrap_or_default();
                if ui.button(format!("…for the class {label}")).clicked() {
                    out.push(Command::Visualize {
                        goal: Goal::Class(c),
                        seed: v.seed,
                    });
                }
            }
        } else {
            let (d, t) = v.progress.unwrap_or((0, 1));
            ui.add(
                egui::ProgressBar::new(d as f32 / t.max(1) as f32)
                    .text(format!("step {d}/{t}"))
                    .desired_width(160.0),
            );
            if ui.button("Cancel").on_hover_text("Esc").clicked() {
                out.push(Command::CancelAll);
            }
        }
    });
    if let (Some((goal, first, last)), Some(h)) = (&v.result, cx.tex.get(Which::Visual).and_then(|t| t.handle.as_ref()))
    {
        ui.horizontal(|ui| {
            ui.add(egui::Image::new((h.id(), Vec2::splat(160.0))));
            ui.label(format!(
                "what {goal} wants to see\n(its value {first:.2} at the start, {last:.2} at the end)"
            ));
        });
    }
}
