//! `glassbox finetune`: teach a model new classes, replace its classes (head only, from a
//! layer on, or the whole network) or train the small CNN from scratch, on a folder of
//! labelled images or a bundled data set; saved with the training record in its metadata.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::builder::RangedU64ValueParser;
use tch::Device;

use super::args::choice;
use super::args::{check_out, ModelArgs};
use glassbox_engine::data::DatasetName;
use glassbox_engine::finetune::{self, Config, Control, DataSource, Event, Hooks, Optimizer, Scope};
use glassbox_engine::model::ModelSource;
use glassbox_engine::weights::StoreAs;

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OptimizerArg {
    /// SGD with momentum 0.9 (default learning rate 0.01).
    Sgd,
    /// Adam (default learning rate 0.001).
    Adam,
}

/// Fine-tune a model on labelled images (see README, "Retrain in place").
#[derive(clap::Args, Debug)]
pub struct FinetuneArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A folder with one sub-folder of images per class; the sub-folder names are the labels.
    #[arg(long, conflicts_with = "dataset", required_unless_present = "dataset")]
    pub data: Option<PathBuf>,
    /// A bundled data set's training images instead of a folder.
    #[arg(long, value_parser = choice::<DatasetName>())]
    pub dataset: Option<DatasetName>,
    /// Keep the model's classes and append the data's new ones: imprinted from their
    /// images, then (with --epochs above 0) their weights trained alone.
    #[arg(long)]
    pub add_classes: bool,
    /// Train the classifier alone on features computed once (the default).
    #[arg(long, group = "scope")]
    pub head_only: bool,
    /// Train this layer (a weight-key prefix: `_blocks.12`, `layer4`) and every layer after it.
    #[arg(long, group = "scope", value_name = "LAYER")]
    pub from: Option<String>,
    /// Train every weight.
    #[arg(long, group = "scope")]
    pub full: bool,
    /// A new small CNN from random weights (MNIST / Fashion-MNIST, or any folder read as 28x28 gray).
    #[arg(long, group = "scope")]
    pub scratch: bool,
    /// Passes over the training data.
    #[arg(long, default_value_t = 10, value_parser = RangedU64ValueParser::<usize>::new().range(0..=10_000))]
    pub epochs: usize,
    /// Learning rate (default 0.001 with Adam, 0.01 with SGD).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Images per step.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(i64).range(1..=4096))]
    pub batch: i64,
    /// The optimiser: adam, or sgd with momentum.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adam)]
    pub optimizer: OptimizerArg,
    /// Seed of the split, the shuffling, the augmentation and the new weights.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// Fraction of each class held out for validation.
    #[arg(long, default_value_t = 0.15)]
    pub val_split: f64,
    /// At most N images per class (0: all).
    #[arg(long, default_value_t = 0)]
    pub per_class: usize,
    /// No random flips and crops (they are off for the bundled digit and clothes sets).
    #[arg(long)]
    pub no_augment: bool,
    /// The retrained model (safetensors, with the training record in its metadata).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

impl FinetuneArgs {
    pub fn config(&self) -> Config {
        let optimizer = match self.optimizer {
            OptimizerArg::Sgd => Optimizer::Sgd,
            OptimizerArg::Adam => Optimizer::Adam,
        };
        Config {
            add_classes: self.add_classes,
            scratch: self.scratch,
            scope: match (&self.from, self.full || self.scratch) {
                (Some(l), _) => Scope::From(l.clone()),
                (None, true) => Scope::Full,
                (None, false) => Scope::Head,
            },
            epochs: self.epochs,
            lr: self.lr.unwrap_or(match optimizer {
                Optimizer::Sgd => 0.01,
                Optimizer::Adam => 0.001,
            }),
            batch: self.batch,
            optimizer,
            seed: self.seed,
            val_split: self.val_split,
            augment: !self.no_augment,
            per_class: self.per_class,
        }
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |a| format!("{:.2}%", a * 100.0))
}

pub fn run(a: FinetuneArgs, device: Device) -> Result<()> {
    let input = match &a.model.model {
        ModelSource::File(p) => Some(p.as_path()),
        _ => None,
    };
    check_out(&a.out, input, a.force)?;
    let cfg = a.config();
    cfg.validate()?;
    let source = match (&a.data, a.dataset) {
        (Some(d), _) => DataSource::Folder(d.clone()),
        (None, Some(d)) => DataSource::Dataset(d),
        (None, None) => unreachable!("clap requires --data or --dataset"),
    };
    let base = a.model.open(device)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let say = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let epochs = cfg.epochs;
    let control = Control::default();
    let mut on_event = |e: Event| {
        match e {
            Event::Plan(p) => {
                say(format!(
                    "{}: {} classes ({}), {} training and {} validation images, batch {}, {} steps per epoch; about {:.0} MiB",
                    p.mode,
                    p.classes.len(),
                    p.classes.join(", "),
                    p.train_images,
                    p.val_images,
                    p.batch,
                    p.steps_per_epoch,
                    p.estimate_bytes as f64 / (1u64 << 20) as f64
                ));
                for s in &p.skipped {
                    say(format!("skipped: {s}"));
                }
                if let Some(n) = p.note {
                    say(n);
                }
            }
            Event::Features { done, total } => {
                bar.set_prefix("features");
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message("images");
            }
            Event::Step {
                epoch,
                step,
                steps,
                loss,
                ..
            } => {
                bar.set_prefix(format!("epoch {epoch}/{epochs}"));
                bar.set_length(steps as u64);
                bar.set_position(step as u64);
                bar.set_message(format!("steps, loss {loss:.4}"));
            }
            Event::Epoch(s) => say(format!(
                "epoch {}/{epochs}: train loss {}, accuracy {}; validation loss {}, accuracy {} ({:.2} s)",
                s.epoch,
                s.train_loss.map_or("-".into(), |l| format!("{l:.4}")),
                pct(s.train_accuracy),
                s.val_loss.map_or("-".into(), |l| format!("{l:.4}")),
                pct(s.val_accuracy),
                s.seconds
            )),
            Event::Paused => {}
        }
        true
    };
    let out = finetune::finetune(
        &base,
        &source,
        &cfg,
        &mut Hooks {
            event: &mut on_event,
            control: &control,
        },
    )?;
    bar.finish_and_clear();
    out.model
        .save(&a.out, &Default::default(), StoreAs::F32)
        .with_context(|| format!("saving {}", a.out.display()))?;
    let s = &out.summary;
    if a.json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    if !s.imprinted.is_empty() {
        println!("imprinted: {}", s.imprinted.join(", "));
    }
    if let Some(n) = &s.note {
        println!("stopped: {n}");
    }
    if !s.per_class.is_empty() && s.plan.val_images > 0 {
        println!("validation, per class (index in the model, accuracy, the starting model's):");
        for c in &s.per_class {
            println!(
                "  {:>5}  {:<24} {:>4}/{:<4} {:>8}   {}",
                c.index,
                c.label,
                c.correct,
                c.total,
                pct(Some(c.accuracy)),
                pct(c.base_accuracy)
            );
        }
    }
    println!(
        "{}: {} on {} ({} epochs, {}, lr {}, seed {}), validation accuracy {}, {:.1} s",
        a.out.display(),
        s.mode,
        source,
        s.epochs.last().map_or(0, |e| e.epoch),
        cfg.optimizer.name(),
        cfg.lr,
        cfg.seed,
        pct(s.val_accuracy),
        s.seconds
    );
    Ok(())
}
