//! `glassbox train`: the small CNN from scratch on MNIST or Fashion-MNIST.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::builder::RangedU64ValueParser;
use tch::Device;

use super::args::check_out;
use super::args::choice;
use glassbox_engine::arch::Arch;
use glassbox_engine::data::{self, DatasetName};
use glassbox_engine::train::{self, Progress, TrainConfig};
use glassbox_engine::weights::StoreAs;

/// Train the small CNN on MNIST or Fashion-MNIST (data from `make setup`).
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The architecture of the weights, when the file does not say.
    #[arg(long, value_parser = choice::<Arch>(), default_value = "tiny-cnn")]
    pub arch: Arch,
    /// The bundled data set to train on.
    #[arg(long, value_parser = choice::<DatasetName>())]
    pub dataset: DatasetName,
    /// Passes over the training data.
    #[arg(long, default_value_t = 3, value_parser = RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub epochs: usize,
    /// Seed of the initial weights and the shuffling: the same seed, the same model.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    /// The trained model (safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Images per step.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(i64).range(1..=60_000))]
    pub batch_size: i64,
    /// The learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Train on the first N images only (0 = all 60,000).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=60_000))]
    pub limit: i64,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: TrainArgs, device: Device) -> Result<()> {
    if a.arch != Arch::TinyCnn {
        bail!("training from scratch is available for tiny-cnn only (got {})", a.arch);
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr must be a positive number (got {})", a.lr);
    }
    check_out(&a.out, None, a.force)?;
    let data = data::load(a.dataset, &data::data_dir())?;
    let epochs = a.epochs;
    let cfg = TrainConfig {
        dataset: a.dataset,
        epochs,
        seed: a.seed,
        batch_size: a.batch_size,
        lr: a.lr,
        limit: a.limit,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg} ({eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let trained = train::train_tiny_cnn(&data, &cfg, device, &mut |p| match p {
        Progress::Step {
            epoch,
            step,
            steps,
            loss,
        } => {
            bar.set_length(steps as u64);
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4}"));
        }
        Progress::Epoch { epoch, test_accuracy } => {
            let line = format!("epoch {epoch}: test accuracy {:.2}%", test_accuracy * 100.0);
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
    })?;
    bar.finish_and_clear();
    trained
        .model
        .save(&a.out, &trained.record, StoreAs::F32)
        .with_context(|| format!("saving {}", a.out.display()))?;
    println!(
        "{}: tiny-cnn on {} ({} epochs, seed {}), test accuracy {:.2}%",
        a.out.display(),
        a.dataset.as_str(),
        epochs,
        a.seed,
        trained.test_accuracy * 100.0
    );
    Ok(())
}
