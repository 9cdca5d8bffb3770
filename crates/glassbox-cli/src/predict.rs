//! `glassbox predict`: the top-k classes of images, in batches.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::builder::RangedU64ValueParser;
use tch::{Device, Tensor};

use super::args::{expand_inputs, output_path, parse_shard, progress_bar, ModelArgs, Shard};
use glassbox_engine::defaults;
use glassbox_engine::model::Class;
use glassbox_engine::weights::{self, StoreAs};

/// Classify images: top-k classes with probabilities.
#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Image files or folders of images (PNG, JPEG, WebP, GIF, BMP, TIFF).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// How many classes to show.
    #[arg(long, default_value_t = defaults::TOP_K, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub top: usize,
    /// One JSON object per line per image.
    #[arg(long)]
    pub json: bool,
    /// Write the exact input tensor and the logits to a safetensors file.
    #[arg(long)]
    pub save_raw: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16, value_parser = RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub batch_size: usize,
    /// Only this part of the inputs: I/N (0-based) of the batches, `auto` in a Slurm job
    /// array, `auto/N` in a Kubernetes Indexed Job of N completions.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// The top-k classes as a bar chart (.png or .svg; with several images, a folder).
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

fn print_prediction(path: &Path, classes: &[Class], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "image": path.display().to_string(), "top": classes })
        );
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

pub fn run(a: PredictArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let files = expand_inputs(&a.images)?;
    let single = files.len() == 1 && !a.images[0].is_dir();
    // Shards take whole batches, so every batch is the same as in the unsharded run.
    let batches: Vec<Vec<PathBuf>> = files.chunks(a.batch_size).map(<[PathBuf]>::to_vec).collect();
    let batches = Shard::of(a.shard, batches)?;
    let total: usize = batches.iter().map(Vec::len).sum();
    let bar = progress_bar(if single { 0 } else { total as u64 }, "images");
    let (mut all_x, mut all_logits, mut names, mut failed) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for batch in batches {
        let mut ok = Vec::new();
        for p in &batch {
            match m.preprocess.prepare_file(p) {
                Ok(prep) => ok.push((p.clone(), prep.tensor)),
                Err(e) if single => return Err(e.into()),
                Err(e) => {
                    failed += 1;
                    bar.suspend(|| eprintln!("glassbox: skipped {}: {e}", p.display()));
                }
            }
        }
        bar.inc(batch.len() as u64);
        if ok.is_empty() {
            continue;
        }
        let x = Tensor::cat(&ok.iter().map(|(_, t)| t.shallow_clone()).collect::<Vec<_>>(), 0);
        let logits = m.logits(&x);
        for ((path, _), classes) in ok.iter().zip(m.top_k(&logits, a.top)?) {
            if let Some(c) = output_path(&a.chart, !single, path, "top", "svg") {
                if let (false, Some(dir)) = (single, &a.chart) {
                    std::fs::create_dir_all(dir)?;
                }
                let title = path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                glassbox_engine::charts::save(
                    &glassbox_engine::charts::Chart::Prediction {
                        title,
                        top: classes.clone(),
                    },
                    &c,
                )?;
            }
            bar.suspend(|| print_prediction(path, &classes, a.json));
            names.push(path.display().to_string());
        }
        if a.save_raw.is_some() {
            all_x.push(x);
            all_logits.push(logits.to_device(Device::Cpu));
        }
    }
    bar.finish_and_clear();
    if let (Some(out), false) = (a.save_raw, all_x.is_empty()) {
        let mut meta = BTreeMap::new();
        meta.insert("model".into(), m.source.to_string());
        meta.insert("images".into(), serde_json::to_string(&names)?);
        let tensors = vec![
            ("input".to_string(), Tensor::cat(&all_x, 0)),
            ("logits".to_string(), Tensor::cat(&all_logits, 0)),
        ];
        weights::save_safetensors(&out, &tensors, &meta, StoreAs::F32)?;
    }
    if failed > 0 {
        bail!("{failed} of {total} images could not be read (reported above)");
    }
    Ok(())
}
