//! The layer tree: every layer by its PyTorch weight name with its output shape, grouped
//! by block; a click shows its channels.

use egui::Ui;

use crate::command::Command;
use crate::widgets::{shape_text, Ctx};
use glassbox_engine::defaults;
use glassbox_engine::model::LayerInfo;

pub const TIP: &str = "Every layer by its PyTorch weight name with its output shape; click one to see its channels.";

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    crate::widgets::heading(ui, "Layers", TIP, crate::state::Topic::Layers, out);
    let Some(m) = &cx.state.model else {
        return;
    };
    let selected = cx.state.settings.layer.clone();
    egui::ScrollArea::vertical().id_salt("layer-tree").show(ui, |ui| {
        // Group by the first two name parts: `_blocks.3._bn0` goes under `_blocks.3`.
        let mut groups: Vec<(String, Vec<&LayerInfo>)> = Vec::new();
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
        let row = |ui: &mut Ui, l: &LayerInfo, out: &mut Vec<Command>| {
            let text = format!("{}  {}  {}", l.name, l.kind.as_str(), shape_text(&l.shape));
            let r = ui.add_enabled(
                defaults::has_channels(&l.shape),
                egui::Button::selectable(selected.as_deref() == Some(l.name.as_str()), text),
            );
            if r.clicked() {
                out.push(Command::SetLayer(l.name.clone()));
            }
        };
        for (key, layers) in groups {
            if layers.len() == 1 && layers[0].name == key {
                row(ui, layers[0], out);
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
                            row(ui, l, out);
                        }
                    });
            }
        }
    });
}
