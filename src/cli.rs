//! The command line: every capability of the engine, for tests, batch work and lessons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tch::{Device, Tensor};

use crate::engine::arch::Arch;
use crate::engine::data::{self, DatasetName};
use crate::engine::model::Model;
use crate::engine::train::{self, Progress, TrainConfig};
use crate::engine::weights::{self, StoreAs};

#[derive(Parser, Debug)]
#[command(
    name = "glassbox",
    version,
    about = "See why a convolutional network decides what it decides."
)]
pub struct Cli {
    /// Where to compute: the GPU when libtorch sees one (auto), or force cpu / cuda.
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

impl DeviceArg {
    pub fn device(self) -> Result<Device> {
        Ok(match self {
            DeviceArg::Auto => crate::engine::model::default_device(),
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => {
                if !tch::Cuda::is_available() {
                    bail!("--device cuda: libtorch sees no CUDA GPU on this machine; use --device cpu");
                }
                Device::Cuda(0)
            }
        })
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Classify images: top-k classes with probabilities.
    Predict {
        /// Image files (PNG, JPEG, WebP, GIF, BMP, TIFF).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// A builtin model (efficientnet-lite0, mnist, fashion-mnist) or a weights file.
        #[arg(long, short, default_value = "efficientnet-lite0")]
        model: String,
        /// Architecture, when it cannot be detected from the weights.
        #[arg(long)]
        arch: Option<String>,
        /// How many classes to show.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// One JSON object per line per image.
        #[arg(long)]
        json: bool,
        /// Write the exact input tensor and the logits to a safetensors file.
        #[arg(long)]
        save_raw: Option<PathBuf>,
    },
    /// List every traced layer with its output shape and parameter count.
    Layers {
        #[arg(long, short, default_value = "efficientnet-lite0")]
        model: String,
        #[arg(long)]
        arch: Option<String>,
        /// One JSON object per line per layer.
        #[arg(long)]
        json: bool,
    },
    /// Convert a PyTorch state dict (.pth/.pt, zip or legacy) or safetensors file to
    /// Glassbox safetensors, checking that it fits the architecture. No pickle code runs.
    Import {
        input: PathBuf,
        #[arg(long)]
        arch: Option<String>,
        #[arg(long)]
        out: PathBuf,
        /// Store weights as fp16 (half the size).
        #[arg(long)]
        f16: bool,
        /// Replace OUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Train the small CNN on MNIST or Fashion-MNIST (data from `make setup`).
    Train {
        #[arg(long, default_value = "tiny-cnn")]
        arch: String,
        #[arg(long)]
        dataset: String,
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        #[arg(long, default_value_t = 0)]
        seed: i64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 64)]
        batch_size: i64,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Train on the first N images only (0 = all 60,000).
        #[arg(long, default_value_t = 0)]
        limit: i64,
        #[arg(long)]
        force: bool,
    },
}

fn parse_arch(a: &Option<String>) -> Result<Option<Arch>> {
    a.as_deref()
        .map(|s| s.parse::<Arch>().map_err(anyhow::Error::from))
        .transpose()
}

/// Refuses to overwrite a file silently, or to write over the input.
fn check_out(out: &Path, input: Option<&Path>, force: bool) -> Result<()> {
    if let Some(i) = input {
        if i.canonicalize()
            .ok()
            .is_some_and(|c| Some(c) == out.canonicalize().ok())
        {
            bail!(
                "--out {} is the input file; originals are never modified: choose another path",
                out.display()
            );
        }
    }
    if out.is_dir() {
        bail!(
            "--out {} is a directory; give a file name ending in .safetensors",
            out.display()
        );
    }
    if out.exists() && !force {
        bail!("{} already exists; pass --force to replace it", out.display());
    }
    Ok(())
}

pub fn run(cli: Cli) -> Result<()> {
    let device = cli.device.device()?;
    match cli.command {
        Command::Predict {
            images,
            model,
            arch,
            top,
            json,
            save_raw,
        } => {
            let m = Model::open(&model, parse_arch(&arch)?, device)?;
            let mut inputs = Vec::new();
            for p in &images {
                inputs.push(m.preprocess.prepare_file(p)?.tensor);
            }
            let x = Tensor::cat(&inputs, 0);
            let logits = m.logits(&x);
            for (path, classes) in images.iter().zip(m.top_k(&logits, top)) {
                if json {
                    let obj = serde_json::json!({ "image": path.display().to_string(), "top": classes });
                    println!("{obj}");
                } else {
                    println!("{}", path.display());
                    for (i, c) in classes.iter().enumerate() {
                        println!(
                            "  {:>2}. {:<40} {:>6.2}%  (class {})",
                            i + 1,
                            c.label,
                            c.probability * 100.0,
                            c.index
                        );
                    }
                }
            }
            if let Some(out) = save_raw {
                let mut meta = BTreeMap::new();
                meta.insert("model".into(), m.source.clone());
                let names: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
                meta.insert("images".into(), serde_json::to_string(&names)?);
                let tensors = vec![("input".to_string(), x), ("logits".to_string(), logits)];
                weights::save_safetensors(&out, &tensors, &meta, StoreAs::F32)?;
            }
        }
        Command::Layers { model, arch, json } => {
            let m = Model::open(&model, parse_arch(&arch)?, device)?;
            let layers = m.layers();
            if json {
                for l in &layers {
                    println!("{}", serde_json::to_string(l)?);
                }
            } else {
                println!(
                    "{} ({}), {} classes, {} parameters, input {}x{}x{}, device {:?}",
                    m.source,
                    m.spec.arch,
                    m.spec.classes,
                    m.parameter_count(),
                    m.spec.in_channels,
                    m.preprocess.size,
                    m.preprocess.size,
                    m.device()
                );
                println!("{:<36} {:<10} {:<22} {:>10}", "layer", "kind", "output", "params");
                for l in &layers {
                    let shape = format!("{:?}", l.shape);
                    println!("{:<36} {:<10} {:<22} {:>10}", l.name, l.kind.as_str(), shape, l.params);
                }
            }
        }
        Command::Import {
            input,
            arch,
            out,
            f16,
            force,
        } => {
            check_out(&out, Some(&input), force)?;
            let m = Model::from_file(&input, parse_arch(&arch)?, Device::Cpu)?;
            let mut meta = BTreeMap::new();
            meta.insert(
                "glassbox.imported_from".into(),
                input
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            m.save(&out, &meta, if f16 { StoreAs::F16 } else { StoreAs::F32 })?;
            eprintln!(
                "imported {} as {} ({} classes, {} parameters) to {}",
                input.display(),
                m.spec.arch,
                m.spec.classes,
                m.parameter_count(),
                out.display()
            );
        }
        Command::Train {
            arch,
            dataset,
            epochs,
            seed,
            out,
            batch_size,
            lr,
            limit,
            force,
        } => {
            let arch: Arch = arch.parse()?;
            if arch != Arch::TinyCnn {
                bail!("training from scratch is available for tiny-cnn only (got {arch})");
            }
            if epochs == 0 || epochs > 1000 {
                bail!("--epochs must be between 1 and 1000 (got {epochs})");
            }
            if !(1..=60_000).contains(&batch_size) {
                bail!("--batch-size must be between 1 and 60000 (got {batch_size})");
            }
            check_out(&out, None, force)?;
            let dataset: DatasetName = dataset.parse()?;
            let data = data::load(dataset, &data::data_dir())?;
            let cfg = TrainConfig {
                dataset,
                epochs,
                seed,
                batch_size,
                lr,
                limit,
            };
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} steps, {msg} ({eta} left)",
                )
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
                .save(&out, &trained.record, StoreAs::F32)
                .with_context(|| format!("saving {}", out.display()))?;
            println!(
                "{}: tiny-cnn on {} ({} epochs, seed {seed}), test accuracy {:.2}%",
                out.display(),
                dataset.as_str(),
                epochs,
                trained.test_accuracy * 100.0
            );
        }
    }
    Ok(())
}

/// Entry point of the binary: one clear line on stderr and a non-zero exit on error.
pub fn main() -> std::process::ExitCode {
    // Die quietly on a closed pipe (`glassbox layers | head`), as command-line tools do.
    // SAFETY: resetting a signal disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown");
        let first = msg.lines().next().unwrap_or(msg);
        eprintln!("glassbox: internal error: {first} (please report this)");
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let msg = format!("{e:#}");
            eprintln!("glassbox: error: {}", msg.replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
        Err(_) => std::process::ExitCode::from(2),
    }
}
