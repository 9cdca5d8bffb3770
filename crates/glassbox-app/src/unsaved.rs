//! Nothing lost: what the user made that no file holds yet (edits, a retrained model, kept or
//! not yet kept, a retraining under way), the question asked before anything replaces it
//! (opening another model by any path: the Models menu, a file dialog, a dropped file, a
//! lesson step; closing the window), and its answers: Save… / Discard / Cancel.
//!
//! This file is the feature's slice of the state (`Unsaved`) and its command (`Answer`); how
//! the app asks and follows the answer is `features/unsaved.rs`, its window
//! `panels/unsaved.rs`.

use glassbox_engine::arch::Arch;
use glassbox_engine::model::ModelSource;

/// What waits for the user's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Then {
    /// Open this model (it replaces the one shown, its edits and any candidate).
    Open(ModelSource, Option<Arch>),
    /// Close the window.
    Quit,
}

/// The question on screen: what waits, and what it would lose.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub then: Then,
    pub lose: Vec<String>,
    /// Save… was chosen: `then` follows once the model is saved.
    pub saving: bool,
}

/// The user's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Save the model (a file dialog), then go on.
    Save,
    /// Go on without saving.
    Discard,
    /// Stay as it is.
    Cancel,
}

/// This feature's part of the state.
#[derive(Debug, Clone, Default)]
pub struct Unsaved {
    /// The edit list when the model was last saved (None: not saved since it opened).
    pub saved_edits: Option<Vec<String>>,
    /// The model shown was retrained in this session and is in no file yet.
    pub retrained: bool,
    /// `retrained` of the model the current run started from (back if it is discarded).
    pub base_retrained: bool,
    pub question: Option<Question>,
    /// Discard was the answer to closing: the window may close now.
    pub quit_confirmed: bool,
}
