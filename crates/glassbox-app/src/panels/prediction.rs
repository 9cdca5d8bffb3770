//! The prediction: the top classes with probability bars and logits; click one (or press
//! 1-9) to explain it. Long class names are elided to fit beside the numbers, with the
//! full name in the tooltip.

use egui::{Color32, FontId, Rect, Sense, Stroke, StrokeKind, Ui, Vec2};

use crate::command::Command;
use crate::widgets::Ctx;

pub const TIP: &str = "The model's most likely classes with probability and logit; click one to explain that class.";

/// Where the last frame drew each row's name and numbers (read by a test that checks they
/// never overlap).
#[derive(Debug, Clone, Default)]
pub struct RowRects(pub Vec<(Rect, Rect)>);

pub fn rows_id() -> egui::Id {
    egui::Id::unique("prediction-row-rects")
}

pub fn ui(ui: &mut Ui, cx: &Ctx, out: &mut Vec<Command>) {
    crate::widgets::heading(ui, "Prediction", TIP, crate::state::Topic::Prediction, out);
    let s = cx.state;
    if s.top.is_empty() {
        ui.label(if cx.busy { "computing…" } else { "no prediction yet" });
        return;
    }
    let chosen = s.target.or(s.explained_target);
    let mut drawn = Vec::new();
    for (k, c) in s.top.iter().enumerate() {
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
        let bar = Rect::from_min_size(rect.min, Vec2::new(rect.width() * c.probability as f32, 6.0));
        p.rect_filled(
            bar.translate(Vec2::new(0.0, rect.height() - 6.0)),
            0.0,
            Color32::from_rgb(90, 140, 230),
        );
        let fg = ui.visuals().strong_text_color();
        // With edits in force: the original model's probability as a ghost bar, and the change.
        let original = s
            .original_top
            .as_ref()
            .and_then(|o| o.iter().find(|o| o.index == c.index))
            .map(|o| o.probability);
        if let Some(op) = original {
            let ghost = Rect::from_min_size(
                rect.min + Vec2::new(0.0, rect.height() - 6.0),
                Vec2::new(rect.width() * op as f32, 6.0),
            );
            p.rect_stroke(
                ghost,
                0.0,
                Stroke::new(1.0, Color32::from_rgb(230, 170, 60)),
                StrokeKind::Inside,
            );
        }
        let delta = original.map_or(String::new(), |op| format!(" ({:+.1})", (c.probability - op) * 100.0));
        // The numbers first, at the right; the name gets the room that is left, elided.
        let numbers = p.layout_no_wrap(
            format!("{:.1} %{delta}  logit {:.2}", c.probability * 100.0, c.logit),
            FontId::monospace(12.0),
            fg,
        );
        let right = Rect::from_min_size(
            rect.right_top() + Vec2::new(-6.0 - numbers.size().x, 3.0),
            numbers.size(),
        );
        let room = (right.left() - 12.0 - (rect.left() + 6.0)).max(10.0);
        let name = elided(ui, &format!("{}. {}", k + 1, c.label), room, fg);
        let left = Rect::from_min_size(rect.min + Vec2::new(6.0, 3.0), name.size());
        p.galley(left.min, name.clone(), fg);
        p.galley(right.min, numbers, fg);
        drawn.push((left, right));
        if resp.hovered() {
            p.rect_stroke(rect, 3.0, Stroke::new(1.0, fg), StrokeKind::Inside);
        }
        if resp
            .on_hover_text(format!(
                "{}\nclass {}: explain this class (key {})",
                c.label,
                c.index,
                k + 1
            ))
            .clicked()
        {
            out.push(Command::SetTarget(Some(c.index)));
        }
    }
    ui.ctx().data_mut(|d| d.insert_temp(rows_id(), RowRects(drawn)));
    ui.horizontal(|ui| {
        match s.target {
            Some(t) => {
                ui.label(format!("explaining class {t}"));
                if ui.button("Explain the top class").clicked() {
                    out.push(Command::SetTarget(None));
                }
            }
            None => {
                ui.label("explaining the top class");
            }
        };
    });
}

/// `text` on one line of at most `max_width` points, ending in "…" when cut.
fn elided(ui: &Ui, text: &str, max_width: f32, color: Color32) -> std::sync::Arc<egui::Galley> {
    let mut job = egui::text::LayoutJob::single_section(
        text.to_owned(),
        egui::TextFormat::simple(FontId::proportional(14.0), color),
    );
    job.wrap = egui::text::TextWrapping {
        max_width,
        max_rows: 1,
        break_anywhere: true,
        overflow_character: Some('…'),
    };
    ui.painter().layout_job(job)
}
