//! The toolbar: open, paste, samples, models, export, help.

use egui::Ui;

use crate::command::{Command, DialogKind};
use crate::state::ExportWhat;
use crate::tiles::Layout;
use crate::widgets::Ctx;
use glassbox_engine::model::ModelSource;
use glassbox_engine::samples::SAMPLES;
use glassbox_engine::worker::ImageSource;

/// What each builtin model knows, for the Models menu (a builtin without a line here shows
/// its name).
fn builtin_text(name: &str) -> &str {
    match name {
        "efficientnet-lite0" => "EfficientNet-Lite0: photos, 1,000 ImageNet classes",
        "mnist" => "MNIST: handwritten digits (Draw a digit)",
        "fashion-mnist" => "Fashion-MNIST: clothes (Draw a digit)",
        other => other,
    }
}

/// One click to any model: the builtin ones, the files opened lately, another file.
fn models_menu(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let current = &cx.state.settings.model;
    ui.label("Builtin");
    for name in glassbox_engine::model::BUILTINS {
        let src = ModelSource::Builtin((*name).to_string());
        if ui.selectable_label(*current == src, builtin_text(name)).clicked() {
            out.push(Command::OpenModel(src, None));
            ui.close();
        }
    }
    let recent = &cx.state.settings.recent_models;
    if !recent.is_empty() {
        ui.separator();
        ui.label("Recent files");
        for p in recent {
            let src = ModelSource::File(p.clone());
            let name = p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
            if ui
                .selectable_label(*current == src, name)
                .on_hover_text(p.display().to_string())
                .clicked()
            {
                out.push(Command::OpenModel(src, None));
                ui.close();
            }
        }
    }
    ui.separator();
    if ui
        .button("Open model file…")
        .on_hover_text("Open weights: .safetensors or PyTorch .pth (Ctrl+M).")
        .clicked()
    {
        out.push(Command::Dialog(DialogKind::Model));
        ui.close();
    }
}

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    ui.horizontal_wrapped(|ui| {
        ui.heading("Glassbox");
        ui.separator();
        if ui
            .button("Open image…")
            .on_hover_text("Open a photo (Ctrl+O). You can also drop one anywhere on the window.")
            .clicked()
        {
            out.push(Command::Dialog(DialogKind::Image));
        }
        if ui
            .button("Paste image")
            .on_hover_text("Use the image on the clipboard (Ctrl+Shift+V).")
            .clicked()
        {
            out.push(Command::Paste);
        }
        ui.menu_button("Samples", |ui| {
            for (name, bytes) in SAMPLES {
                if ui.button(*name).clicked() {
                    out.push(Command::SetImage(ImageSource::Bytes {
                        name: name.to_string(),
                        bytes: bytes.to_vec(),
                    }));
                    ui.close();
                }
            }
        })
        .response
        .on_hover_text("The photos bundled with Glassbox.");
        ui.separator();
        ui.menu_button("Models", |ui| models_menu(ui, cx, out))
            .response
            .on_hover_text("The builtin models, the model files opened lately, or another file (Ctrl+M).");
        ui.separator();
        ui.menu_button("Export", |ui| {
            let mut items: Vec<(String, ExportWhat, String)> = vec![
                (
                    "Report to take home (HTML)".into(),
                    ExportWhat::Report,
                    "report.html".into(),
                ),
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
            for s in &cx.state.slots {
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
                    out.push(Command::Dialog(DialogKind::Export(what, name)));
                    ui.close();
                }
            }
            ui.separator();
            for (label, torchscript, tip) in [
                (
                    "For PyTorch (TorchScript)…",
                    true,
                    "A module torch.jit.load runs, with your edits, knock-outs and added classes; labels and preprocessing inside.",
                ),
                (
                    "For PyTorch (safetensors)…",
                    false,
                    "The weights with PyTorch's key names, for model.load_state_dict(load_file(F)).",
                ),
            ] {
                if ui.button(label).on_hover_text(tip).clicked() {
                    out.push(Command::Dialog(DialogKind::ExportModel { torchscript }));
                    ui.close();
                }
            }
        });
        ui.menu_button("Lessons", |ui| {
            for (name, _) in glassbox_engine::lesson::BUILTIN {
                if let Ok(l) = glassbox_engine::lesson::Lesson::builtin(name) {
                    if ui.button(&l.title).clicked() {
                        out.push(Command::Lesson(crate::command::LessonCommand::OpenBuiltin(
                            name.to_string(),
                        )));
                        ui.close();
                    }
                }
            }
            if ui.button("Open lesson file…").clicked() {
                out.push(Command::Dialog(DialogKind::Lesson));
                ui.close();
            }
        })
        .response
        .on_hover_text("Step-by-step lessons: each step shows a model, an image and a view, with a short text and a question.");
        ui.separator();
        layouts(ui, cx, out);
        ui.separator();
        let mut present = cx.state.present;
        if ui
            .toggle_value(&mut present, "Present")
            .on_hover_text("Presentation mode (F5): large type, high contrast, a ring around the pointer; PageDown / PageUp show one view after the other, full window; Esc goes back to all views. Ctrl+plus / Ctrl+minus zoom.")
            .changed()
        {
            out.push(Command::Present(present));
        }
        if ui
            .button("Help")
            .on_hover_text("Shortcuts and what each view shows (F1).")
            .clicked()
        {
            out.push(Command::ToggleHelp);
        }
    });
}

/// The four layouts as tabs (Ctrl+1 to Ctrl+4), and the shown one back as it came.
fn layouts(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    for (k, l) in Layout::ALL.into_iter().enumerate() {
        let tip = match l {
            Layout::SeeWhy => "The input, the prediction, the explanations large, the layers",
            Layout::Edit => "The channel with its kernel editor, the edit list, the prediction with the original's ghost bars, what the edits broke",
            Layout::Retrain => "The data and the settings, the curves, the timeline and the confusion matrix",
            Layout::Teach => "Draw a digit, open up a convolution, what a neuron wants to see",
        };
        if ui
            .selectable_label(cx.layout == l, l.name())
            .on_hover_text(format!(
                "{tip} (Ctrl+{}). Drag a tab to move its view, drag a border to resize, Maximise to show one alone, × to close.",
                k + 1
            ))
            .clicked()
        {
            out.push(Command::Layout(l));
        }
    }
    if ui
        .small_button("Reset layout")
        .on_hover_text("This layout as it came: every view back in its place.")
        .clicked()
    {
        out.push(Command::ResetLayout);
    }
}
