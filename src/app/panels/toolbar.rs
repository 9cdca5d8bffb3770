//! The toolbar: open, paste, samples, models, export, help.

use egui::Ui;

use super::Ctx;
use crate::app::command::{Command, DialogKind};
use crate::app::state::ExportWhat;
use crate::app::SAMPLES;
use crate::engine::model::ModelSource;
use crate::engine::worker::ImageSource;

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
        if ui
            .button("Open model…")
            .on_hover_text("Open weights: .safetensors or PyTorch .pth (Ctrl+M).")
            .clicked()
        {
            out.push(Command::Dialog(DialogKind::Model));
        }
        if ui
            .button("Builtin model")
            .on_hover_text("Back to the embedded EfficientNet-Lite0 (ImageNet).")
            .clicked()
        {
            out.push(Command::OpenModel(
                ModelSource::Builtin("efficientnet-lite0".into()),
                None,
            ));
        }
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
        });
        ui.menu_button("Lessons", |ui| {
            for (name, _) in crate::lesson::BUILTIN {
                if let Ok(l) = crate::lesson::Lesson::builtin(name) {
                    if ui.button(&l.title).clicked() {
                        out.push(Command::Lesson(crate::app::command::LessonCommand::OpenBuiltin(
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
