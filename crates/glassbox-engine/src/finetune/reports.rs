//! What a run tells: its plan, each step and epoch, and its outcome (the candidate, its
//! summary, its timeline of weights, the validation images for the confusion matrix).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;
use tch::Tensor;

use crate::error::{Error, Result};
use crate::model::Model;

use super::data::picture;
use super::plan::restore;
use super::settings::Control;

/// One epoch's figures (epoch 0: the model before training).
#[derive(Debug, Clone, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: Option<f64>,
    pub train_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

/// What a run reports while it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// The data is read and the run planned.
    Plan(Plan),
    /// Features of the images computed so far (head-only training and imprinting).
    Features {
        done: usize,
        total: usize,
    },
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
        lr: f64,
        /// Seconds since training started.
        elapsed: f64,
    },
    Epoch(EpochStats),
    /// Waiting while paused.
    Paused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub mode: String,
    pub classes: Vec<String>,
    pub train_images: usize,
    pub val_images: usize,
    pub skipped: Vec<String>,
    pub epochs: usize,
    pub batch: i64,
    pub steps_per_epoch: usize,
    /// Estimated memory the run takes (weights, gradients, optimiser state, a batch's
    /// activations or the cached features), bytes.
    pub estimate_bytes: i64,
    pub budget_bytes: i64,
    /// Said when the batch was reduced to fit.
    pub note: Option<String>,
}

/// A data class's result on the validation images.
#[derive(Debug, Clone, Serialize)]
pub struct ClassVal {
    pub label: String,
    /// The class's index in the trained model.
    pub index: i64,
    pub correct: u64,
    pub total: u64,
    pub accuracy: f64,
    /// The starting model's accuracy on the same images, when it knew the class.
    pub base_accuracy: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: String,
    pub plan: Plan,
    /// Classes added by imprinting.
    pub imprinted: Vec<String>,
    pub epochs: Vec<EpochStats>,
    pub val_accuracy: Option<f64>,
    pub per_class: Vec<ClassVal>,
    /// confusion[true][predicted] over the data's classes, plus a last column: predicted a
    /// class the data does not have.
    pub confusion: Vec<Vec<u64>>,
    /// Why the run stopped early (a rollback), if it did.
    pub note: Option<String>,
    /// What the saved file's metadata records.
    pub record: BTreeMap<String, String>,
    pub seconds: f64,
}

/// Weights of the candidate at points of the run, to scrub through.
#[derive(Default)]
pub struct Timeline {
    /// (epoch, the weights that change during the run), on the CPU.
    pub snapshots: Vec<(usize, Vec<(String, Tensor)>)>,
}

impl Timeline {
    pub fn epochs(&self) -> Vec<usize> {
        self.snapshots.iter().map(|(e, _)| *e).collect()
    }

    /// Puts snapshot `i`'s weights into `model`.
    pub fn restore(&self, model: &Model, i: usize) -> Result<()> {
        let (_, vars) = self.snapshots.get(i).ok_or_else(|| {
            Error::invalid(format!(
                "the timeline has {} points; no point {i}",
                self.snapshots.len()
            ))
        })?;
        restore(model, vars)
    }
}

/// The validation images kept for the confusion matrix's cells.
pub struct ValSet {
    /// u8 [N, C, S, S] as the model sees them.
    pub images: Tensor,
    /// Data class of each image.
    pub truth: Vec<usize>,
    /// Confusion column of each image's prediction (the last column: another class).
    pub predicted: Vec<usize>,
    /// The file of each image (None for a bundled data set's).
    pub files: Vec<Option<PathBuf>>,
}

impl ValSet {
    /// Images of one cell of the confusion matrix, at most `max`.
    pub fn cell(&self, truth: usize, predicted: usize, max: usize) -> Vec<usize> {
        (0..self.truth.len())
            .filter(|&i| self.truth[i] == truth && self.predicted[i] == predicted)
            .take(max)
            .collect()
    }

    /// Image `i` as a picture (what the model sees).
    pub fn picture(&self, i: usize) -> Result<image::DynamicImage> {
        picture(&self.images.get(i as i64))
    }
}

pub struct Outcome {
    pub model: Model,
    pub summary: Summary,
    pub timeline: Timeline,
    pub val: ValSet,
}

/// What a run needs besides its settings: reports (false: stop) and the shared controls.
pub struct Hooks<'a> {
    pub event: &'a mut dyn FnMut(Event) -> bool,
    pub control: &'a Control,
}

impl Hooks<'_> {
    pub(super) fn report(&mut self, e: Event) -> Result<()> {
        if (self.event)(e) {
            Ok(())
        } else {
            Err(Error::Cancelled)
        }
    }
    /// Waits while paused (reporting, so a cancel still stops it).
    pub(super) fn wait_if_paused(&mut self) -> Result<()> {
        while self.control.paused() {
            self.report(Event::Paused)?;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }
}
