//! What every panel shares: what it reads (`Ctx`) and the small pieces it draws with.

use std::collections::VecDeque;
use std::time::Duration;

use egui::{Ui, Vec2};

use crate::command::Command;
use crate::panels::explain_this;
use crate::state::{State, Topic};
use crate::textures::Textures;

/// What a panel reads.
pub struct Ctx<'a> {
    pub state: &'a State,
    pub tex: &'a Textures,
    /// The engine is working on something for the app.
    pub busy: bool,
    /// Frame times to show in the status bar (None: not shown).
    pub frame_times: Option<&'a VecDeque<f32>>,
    pub all_views_after: Option<Duration>,
    /// The layout shown.
    pub layout: crate::tiles::Layout,
}

/// The shape of a layer output without its batch dimension: `32×112×112`.
pub fn shape_text(shape: &[i64]) -> String {
    shape
        .iter()
        .skip(1)
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

/// A picture at most `max` wide, aspect kept (and at most 10 times its size: a 28x28
/// digit gets to 280 pixels, a 224x224 photo as large as the view allows).
pub fn fit(size: [usize; 2], max: f32) -> Vec2 {
    let (w, h) = (size[0] as f32, size[1] as f32);
    let s = (max / w).min(10.0);
    Vec2::new(w * s, h * s)
}

/// A view's heading with its "Explain this" button and tooltip.
pub fn heading(ui: &mut Ui, title: &str, tip: &str, topic: Topic, out: &mut Vec<Command>) {
    ui.horizontal(|ui| {
        ui.heading(title).on_hover_text(tip);
        explain_this::button(ui, topic, out);
    });
}
