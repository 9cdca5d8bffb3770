//! Retraining's slice of the state: the form, the run's reports and its result.

use glassbox_engine::finetune::{Config, DataSource, EpochStats, Optimizer, Plan, Scope, Summary};
use glassbox_engine::model::Class;
use glassbox_engine::worker::CellImage;

/// What a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainMode {
    /// Append the data's classes to the model's (imprinting, then the new weights).
    AddClasses,
    Head,
    /// From the layer in the form's `from`.
    From,
    Full,
    /// A new small CNN.
    Scratch,
}

/// The Retrain panel's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainForm {
    pub source: Option<DataSource>,
    pub mode: TrainMode,
    pub from: String,
    pub epochs: usize,
    /// As typed (checked when the run starts).
    pub lr: String,
    pub batch: i64,
    pub optimizer: Optimizer,
    pub seed: i64,
    pub val_split: f64,
    pub augment: bool,
    /// Images per class (0: all).
    pub per_class: usize,
}

impl Default for TrainForm {
    fn default() -> Self {
        TrainForm {
            source: None,
            mode: TrainMode::AddClasses,
            from: String::new(),
            epochs: 5,
            lr: "0.001".into(),
            batch: 32,
            optimizer: Optimizer::Adam,
            seed: 0,
            val_split: 0.15,
            augment: true,
            per_class: 100,
        }
    }
}

impl TrainForm {
    /// The run's settings, or what is wrong with them.
    pub fn config(&self) -> Result<Config, String> {
        let lr: f64 = self
            .lr
            .trim()
            .parse()
            .map_err(|_| format!("the learning rate `{}` is not a number; try 0.001", self.lr))?;
        let c = Config {
            add_classes: self.mode == TrainMode::AddClasses,
            scratch: self.mode == TrainMode::Scratch,
            scope: match self.mode {
                TrainMode::From => Scope::From(self.from.clone()),
                TrainMode::Full | TrainMode::Scratch => Scope::Full,
                TrainMode::AddClasses | TrainMode::Head => Scope::Head,
            },
            epochs: self.epochs,
            lr,
            batch: self.batch,
            optimizer: self.optimizer,
            seed: self.seed,
            val_split: self.val_split,
            augment: self.augment,
            per_class: self.per_class,
        };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

/// A run's reports and result.
#[derive(Default)]
pub struct Training {
    pub form: TrainForm,
    /// The engine request of the run going on.
    pub running: Option<u64>,
    pub control: Option<std::sync::Arc<glassbox_engine::finetune::Control>>,
    pub paused: bool,
    pub plan: Option<Plan>,
    pub epochs: Vec<EpochStats>,
    /// Training loss per step: (epochs done, loss).
    pub losses: Vec<[f64; 2]>,
    /// (epoch, step, steps, seconds since training started).
    pub step: Option<(usize, usize, usize, f64)>,
    pub features: Option<(usize, usize)>,
    pub result: Option<TrainResult>,
    /// The timeline point shown.
    pub point: usize,
    /// The confusion cell opened: (truth, predicted, its images).
    pub cell: Option<(usize, usize, Vec<CellImage>)>,
    /// Why the last run stopped early or was cancelled.
    pub note: Option<String>,
    /// The learning rate to set during the run, as typed.
    pub new_lr: String,
}

/// A finished run: the candidate is the model shown.
pub struct TrainResult {
    pub summary: Box<Summary>,
    pub timeline: Vec<usize>,
    pub probe: Option<(Vec<Class>, Vec<Class>)>,
}

impl Training {
    /// Seconds left in the run, from its pace so far.
    pub fn eta(&self) -> Option<f64> {
        let (epoch, step, steps, elapsed) = self.step?;
        let total = self.plan.as_ref()?.epochs * steps;
        let done = (epoch - 1) * steps + step;
        (done > 0).then(|| elapsed / done as f64 * (total.saturating_sub(done)) as f64)
    }
}
