//! Retraining in place: teach the model new classes (weight imprinting, then optionally a
//! few epochs of the new classes' weights), replace its classes (the head alone on cached
//! features, or the network from a chosen layer on, or all of it), or train the small CNN
//! from scratch. One implementation serves the app (on the engine thread, with live
//! reports, pause, a learning rate changed on the way, cancel) and `glassbox finetune`.
//!
//! The result is a candidate beside the model it started from: the base is never changed.
//! A run is replayable: the same seed, data and settings give the same weights, bit for bit
//! on the same device. A NaN or diverging loss stops the run and rolls the candidate back
//! to its last good epoch.
//!
//! The phases, one file each: `data.rs` (read, split, augment), `head.rs` (features,
//! imprinting, a new classifier), `plan.rs` (what changes, snapshots, memory), `run.rs` (the
//! run: start, plan, epochs, result); what a run is told (`settings.rs`) and tells
//! (`reports.rs`).

mod data;
mod head;
mod plan;
mod reports;
mod run;
mod settings;

use std::collections::BTreeMap;

pub use data::{picture, read_data, Data};
pub use head::{bias_key, classifier_layer, features, features_of, head_logits, imprint, normalise, IMPRINT_MARGIN};
pub use reports::{ClassVal, EpochStats, Event, Hooks, Outcome, Plan, Summary, Timeline, ValSet};
pub use run::run;
pub use settings::{Config, Control, DataSource, Optimizer, Scope};

use crate::error::Result;
use crate::model::Model;
use crate::preprocess::Preprocess;
use plan::changing;

/// A model's training record (`glassbox.train.*` metadata), keys without the prefix.
pub fn record_of(m: &Model) -> BTreeMap<String, String> {
    m.metadata
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("glassbox.train.")?.to_string(), v.clone())))
        .collect()
}

/// Reads the data and runs: what `glassbox finetune` and the app's Train panel do.
/// Bundled data sets are digits and clothes: they are not flipped (a mirrored 2 is no 2).
/// From scratch, the images are read as the small CNN takes them (28x28 gray).
pub fn finetune(base: &Model, source: &DataSource, cfg: &Config, hooks: &mut Hooks) -> Result<Outcome> {
    cfg.validate()?;
    let mut cfg = cfg.clone();
    if matches!(source, DataSource::Dataset(_)) {
        cfg.augment = false;
    }
    let pre = if cfg.scratch {
        Preprocess::digits(crate::arch::tiny_cnn::SIZE as u32)
    } else {
        base.preprocess.clone()
    };
    if let Scope::From(l) = &cfg.scope {
        // Said before thousands of images are read.
        changing(base, &Scope::From(l.clone()))?;
    }
    let data = read_data(&pre, source, cfg.per_class)?;
    run(base, &data, &cfg, hooks)
}

#[cfg(test)]
mod tests;
