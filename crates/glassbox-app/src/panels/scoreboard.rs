//! The scoreboard, at the top of the explanations: which map to trust on this image (every
//! method scored by deletion and insertion AUC, ROAD and the sanity check), or which layer a
//! CAM should look at; the best of each measure marked, each row opening its map.

use egui::{RichText, Ui};

use crate::command::Command;
use crate::widgets::Ctx;
use glassbox_engine::explain::Method;
use glassbox_engine::score::best;

const HOW: &str = "Each method's map is checked on this image: deletion AUC (the class's probability as its top pixels are removed; lower is better), insertion AUC (as they are put back into a blurred image; higher), ROAD (pytorch-grad-cam's ROADCombined: the top pixels filled in from their neighbours against the bottom ones; higher) and the sanity check (the rank correlation with the same method on a model with random weights; nearer 0 is better). About a minute for EfficientNet-Lite0 on two CPU cores: Esc cancels.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    let s = cx.state;
    let sc = &s.scores;
    let cam = s
        .slots
        .iter()
        .map(|sl| sl.method)
        .find(|m| m.uses_layer())
        .unwrap_or(Method::GradCam);
    ui.horizontal_wrapped(|ui| {
        ui.label("Which map to trust?");
        let idle = sc.running.is_none() && s.input.is_some();
        if ui
            .add_enabled(idle, egui::Button::new("Score every method"))
            .on_hover_text(HOW)
            .clicked()
        {
            out.push(Command::Score(None));
        }
        if ui
            .add_enabled(idle, egui::Button::new(format!("Which layer for {cam}?")))
            .on_hover_text(format!(
                "{cam} scored at the last block of each stage, the same measures: the best layer by ROAD is offered as the CAM layer."
            ))
            .clicked()
        {
            out.push(Command::Score(Some(cam)));
        }
        if sc.running.is_some() {
            ui.spinner();
            if let Some((done, total)) = sc.progress {
                ui.label(format!("scoring: {done} of {total} done"));
            }
            if ui.button("Cancel scoring").clicked() {
                out.push(Command::CancelAll);
            }
        }
    });
    if let Some(e) = &sc.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    let Some(board) = &sc.board else { return };
    let layers = board.layers;
    let bests = best(&board.scores);
    let first_slot = s.slots.first().map(|sl| sl.id);
    egui::Grid::new("scoreboard").striped(true).show(ui, |ui| {
        ui.strong(if layers { "layer" } else { "method" });
        for h in [
            "deletion AUC (lower)",
            "insertion AUC (higher)",
            "ROAD (higher)",
            "sanity rho (nearer 0)",
        ] {
            ui.strong(h);
        }
        ui.end_row();
        for (i, row) in board.scores.iter().enumerate() {
            let name = board.row_name(row).to_string();
            let hover = if layers {
                format!("Use {name} as the CAM layer")
            } else {
                format!("Show {name}'s map in the first explanation")
            };
            if ui.button(&name).on_hover_text(hover).clicked() {
                if layers {
                    out.push(Command::SetCamLayer(Some(name.clone())));
                } else if let (Some(id), Ok(m)) = (first_slot, name.parse::<Method>()) {
                    out.push(Command::SetMethod(id, m));
                }
            }
            for (k, v) in [row.deletion_auc, row.insertion_auc, row.road, row.sanity_spearman]
                .into_iter()
                .enumerate()
            {
                let text = format!("{v:.4}");
                if bests[k] == Some(i) {
                    ui.label(RichText::new(format!("{text} best")).strong());
                } else {
                    ui.label(text);
                }
            }
            ui.end_row();
        }
    });
    for (m, e) in &board.failed {
        ui.label(format!("{m}: not scored: {e}"));
    }
    if layers {
        if let Some(l) = board.scores.first().and_then(|r| r.layer.clone()) {
            if s.settings.cam_layer.as_deref() != Some(l.as_str())
                && ui
                    .button(format!("Use {l} as the CAM layer"))
                    .on_hover_text("The best layer by ROAD on this image.")
                    .clicked()
            {
                out.push(Command::SetCamLayer(Some(l)));
            }
        }
    }
    ui.separator();
}
