//! The README screenshots, taken by the app itself in its real window (`make screenshots`):
//! each of the four layouts at a classroom projector's 1280x720 and at 1920x1080,
//! presentation mode at 1280x720, and a few moments worth showing (an error, a sanity
//! check, a lesson).
//!
//! `mod.rs` (this file): where the tour is; `run.rs`: each step, driving the app.

mod run;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub struct Tour {
    dir: PathBuf,
    step: usize,
    /// The current step was set up.
    set_up: bool,
    /// Frames since the step's setup, to let layout settle.
    frames: usize,
    shot_requested: bool,
    shot_done: Arc<AtomicBool>,
}

/// Each shot: its file name and the window's size.
const TOUR: &[(&str, [f32; 2])] = &[
    ("see-why-1280x720", SMALL),
    ("see-why-1920x1080", LARGE),
    ("present-1280x720", SMALL),
    ("sanity", LARGE),
    ("error", SMALL),
    ("edit-1280x720", SMALL),
    ("edit-1920x1080", LARGE),
    ("compare-1280x720", SMALL),
    ("retrain-1280x720", SMALL),
    ("retrain-1920x1080", LARGE),
    ("teach-1280x720", SMALL),
    ("teach-1920x1080", LARGE),
    ("lesson", SMALL),
];

/// A classroom projector.
const SMALL: [f32; 2] = [1280.0, 720.0];
const LARGE: [f32; 2] = [1920.0, 1080.0];

impl Tour {
    pub fn new(dir: PathBuf) -> Tour {
        Tour {
            dir,
            step: 0,
            set_up: false,
            frames: 0,
            shot_requested: false,
            shot_done: Default::default(),
        }
    }
}
