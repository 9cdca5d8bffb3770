//! What a run is told: which weights train, the optimiser, where the data comes from, the
//! settings, and the controls shared with whoever started it (pause, a new learning rate).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::data::DatasetName;
use crate::error::{Error, Result};

/// Which weights train.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The classifier alone, on the backbone's features computed once.
    Head,
    /// This layer (a weight-key prefix such as `_blocks.12` or `layer4`) and every layer after it.
    From(String),
    /// Every weight.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    /// SGD with momentum 0.9.
    Sgd,
    Adam,
}

impl Optimizer {
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
        }
    }
}

/// Where the labelled images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// One sub-folder of images per class (ImageFolder); the sub-folder names are the labels.
    Folder(PathBuf),
    /// A bundled data set's training images (MNIST, Fashion-MNIST).
    Dataset(DatasetName),
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Folder(p) => write!(f, "{}", p.display()),
            DataSource::Dataset(d) => f.write_str(d.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Keep the model's classes and append the data's new ones (imprinted, then the new
    /// classes' weights trained for `epochs`). Otherwise the data's classes replace them.
    pub add_classes: bool,
    /// A new small CNN (random weights) instead of the model: training from scratch.
    pub scratch: bool,
    pub scope: Scope,
    pub epochs: usize,
    pub lr: f64,
    pub batch: i64,
    pub optimizer: Optimizer,
    pub seed: i64,
    /// Fraction of each class held out for validation (0 to 0.9).
    pub val_split: f64,
    /// Random horizontal flips and crops (whole-network and from-a-layer training).
    pub augment: bool,
    /// At most this many images per class (0: all).
    pub per_class: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            add_classes: false,
            scratch: false,
            scope: Scope::Head,
            epochs: 10,
            lr: 1e-3,
            batch: 32,
            optimizer: Optimizer::Adam,
            seed: 0,
            val_split: 0.15,
            augment: true,
            per_class: 0,
        }
    }
}

impl Config {
    /// Refuses settings no run could use, before any image is read.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(format!(
                "the learning rate must be a positive number (got {}); try 0.001",
                self.lr
            )));
        }
        if !(0.0..=0.9).contains(&self.val_split) {
            return Err(Error::invalid(format!(
                "the validation split must be between 0 and 0.9 (got {})",
                self.val_split
            )));
        }
        if !(1..=4096).contains(&self.batch) {
            return Err(Error::invalid(format!(
                "the batch must be 1 to 4096 images (got {})",
                self.batch
            )));
        }
        if self.epochs > 10_000 {
            return Err(Error::invalid(format!("at most 10000 epochs (got {})", self.epochs)));
        }
        if self.add_classes && self.scope != Scope::Head {
            return Err(Error::invalid(
                "adding classes keeps the old ones by training only the new classes' weights; it cannot train the network from a layer or whole (leave out --from/--full, or leave out --add-classes to replace the classes)",
            ));
        }
        if self.scratch && self.add_classes {
            return Err(Error::invalid(
                "a model trained from scratch has no old classes to keep: leave out --add-classes",
            ));
        }
        if !self.add_classes && self.epochs == 0 {
            return Err(Error::invalid(
                "replacing the classes needs at least one epoch (only adding classes can imprint them with 0 epochs)",
            ));
        }
        Ok(())
    }

    /// What is trained, in words ("head", "from _blocks.12", "imprint", ...).
    pub fn mode(&self) -> String {
        match (&self.scope, self.add_classes, self.scratch) {
            (_, true, _) if self.epochs == 0 => "imprint".into(),
            (_, true, _) => "imprint + new classes' weights".into(),
            (_, _, true) => "from scratch".into(),
            (Scope::Head, _, _) => "head".into(),
            (Scope::From(l), _, _) => format!("from {l}"),
            (Scope::Full, _, _) => "full".into(),
        }
    }
}

/// Shared with whoever started the run: pause, resume and a new learning rate, read at
/// every step. (Cancel is the engine's: a request's cancellation.)
#[derive(Debug, Default)]
pub struct Control {
    paused: AtomicBool,
    /// A new learning rate's bits, 0 for none pending.
    lr: AtomicU64,
}

impl Control {
    pub fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::SeqCst);
    }
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
    /// A new learning rate from the next step on; refused unless finite and positive.
    pub fn set_lr(&self, lr: f64) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::invalid(format!(
                "the learning rate must be a positive number (got {lr})"
            )));
        }
        self.lr.store(lr.to_bits(), Ordering::SeqCst);
        Ok(())
    }
    pub(super) fn take_lr(&self) -> Option<f64> {
        match self.lr.swap(0, Ordering::SeqCst) {
            0 => None,
            b => Some(f64::from_bits(b)),
        }
    }
}
