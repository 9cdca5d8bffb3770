//! The README screenshots, taken by the app itself in its real window (`make screenshots`).

//!
//! `mod.rs` (this file): where the tour is; `run.rs`: each step, driving the app.

mod run;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub struct Tour {
    dir: PathBuf,
    step: usize,
    /// Frames since the step's setup, to let layout settle.
    frames: usize,
    shot_requested: bool,
    shot_done: Arc<AtomicBool>,
    /// The central scroll pinned: Some(true) = bottom, Some(false) = top.
    scroll: Option<bool>,
    /// How far the central area can scroll (set by the window each frame).
    pub central_scroll_max: f32,
}

const TOUR: &[&str] = &[
    "main",
    "methods",
    "activations",
    "filters",
    "error",
    "present",
    "retrain",
    "draw",
    "conv",
    "neuron",
    "sanity",
    "lesson",
];

impl Tour {
    pub fn new(dir: PathBuf) -> Tour {
        Tour {
            dir,
            step: 0,
            frames: 0,
            shot_requested: false,
            shot_done: Default::default(),
            scroll: None,
            central_scroll_max: 0.0,
        }
    }

    /// Where the window pins its central scroll area, if anywhere.
    pub fn scroll(&self) -> Option<(bool, f32)> {
        self.scroll.map(|bottom| (bottom, self.central_scroll_max))
    }
}
