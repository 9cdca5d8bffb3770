//! Looking inside: `glassbox layers`, `channel`, `receptive-field`, `activations`, `filters`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::builder::RangedU64ValueParser;
use tch::{Device, Tensor};

use super::args::{expand_inputs, for_each_input, output_path, parse_at, parse_shard, At, ModelArgs, Shard};
use glassbox_engine::defaults;
use glassbox_engine::inspect;
use glassbox_engine::model::Model;
use glassbox_engine::render::{self, Colormap, FilterMode};
use glassbox_engine::weights::{self, StoreAs};

/// List every traced layer with its output shape and parameter count.
#[derive(clap::Args, Debug)]
pub struct LayersArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// One JSON object per line per layer.
    #[arg(long)]
    pub json: bool,
}

/// One channel of a layer for an image: its statistics, the channel large and over the
/// input, and the kernel of the convolution that made it.
#[derive(clap::Args, Debug)]
pub struct ChannelArgs {
    pub image: PathBuf,
    /// The layer, by its PyTorch weight-key prefix (`_blocks.5`, `layer4.1`, `conv1`).
    #[arg(long)]
    pub layer: String,
    /// The channel of that layer (from 0).
    #[arg(long)]
    pub channel: usize,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Folder for channel.png, overlay.png and kernel.png.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The input pixels one activation depends on (its receptive field): the gradient of the
/// activation at ROW,COL of a layer with respect to the input, and its bounding box.
#[derive(clap::Args, Debug)]
pub struct ReceptiveFieldArgs {
    pub image: PathBuf,
    /// The layer, by its PyTorch weight-key prefix (`_blocks.5`, `layer4.1`, `conv1`).
    #[arg(long)]
    pub layer: String,
    /// Position in the layer's output, ROW,COL from 0.
    #[arg(long, value_parser = parse_at)]
    pub at: At,
    /// One channel (default: all channels summed).
    #[arg(long)]
    pub channel: Option<usize>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The field over the input, with its box, as PNG.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Every channel of a layer's output as a grid of thumbnails, ordered by mean activation.
#[derive(clap::Args, Debug)]
pub struct ActivationsArgs {
    /// Image files or directories of images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// The layer, by its PyTorch weight-key prefix (`_blocks.5`, `layer4.1`, `conv1`).
    #[arg(long)]
    pub layer: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The picture to write (.png).
    #[arg(long)]
    pub out: PathBuf,
    /// One colour scale per channel instead of one shared scale.
    #[arg(long)]
    pub per_channel: bool,
    /// The layer's output for this image, as safetensors.
    #[arg(long)]
    pub save_raw: Option<PathBuf>,
    /// Only this part of the inputs: I/N (0-based), `auto` in a Slurm job array, `auto/N`
    /// in a Kubernetes Indexed Job of N completions.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
}

/// The convolution kernels of a layer as pictures (first layer in colour).
#[derive(clap::Args, Debug)]
pub struct FiltersArgs {
    /// The layer, by its PyTorch weight-key prefix (`_blocks.5`, `layer4.1`, `conv1`).
    #[arg(long)]
    pub layer: String,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The picture to write (.png).
    #[arg(long)]
    pub out: PathBuf,
    /// Deeper kernels: one tile per input channel instead of their average.
    #[arg(long)]
    pub per_input: bool,
    /// At most this many tiles.
    #[arg(long, default_value_t = defaults::FILTER_TILES, value_parser = RangedU64ValueParser::<usize>::new().range(1..=65536))]
    pub max_tiles: usize,
}

pub fn layers(a: LayersArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let layers = m.layers();
    if a.json {
        for l in &layers {
            println!("{}", serde_json::to_string(l)?);
        }
    } else {
        println!(
            "{} ({}), {} classes, {} parameters, input {}x{}x{}, device {}",
            m.source,
            m.spec.arch,
            m.spec.classes,
            m.parameter_count(),
            m.spec.in_channels,
            m.preprocess.size,
            m.preprocess.size,
            glassbox_engine::Device::from(m.device())
        );
        println!("{:<36} {:<10} {:<22} {:>10}", "layer", "kind", "output", "params");
        for l in &layers {
            let shape = format!("{:?}", l.shape);
            println!("{:<36} {:<10} {:<22} {:>10}", l.name, l.kind.as_str(), shape, l.params);
        }
    }
    Ok(())
}

pub fn channel(a: ChannelArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let prepared = m.preprocess.prepare_file(&a.image)?;
    let (layer, channel) = (&a.layer, a.channel);
    let (_, ch) = inspect::channels(&m, &prepared.tensor, layer)?;
    if channel >= ch.c {
        bail!(
            "channel {channel} does not exist: `{layer}` has channels 0 to {}",
            ch.c - 1
        );
    }
    let st = ch.stats(channel);
    let kernel = inspect::channel_kernel(&m, layer, channel);
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (heat, over) = render::channel_pictures(&prepared.view, &ch, channel);
        render::save_png(&heat, &dir.join("channel.png"))?;
        render::save_png(&over, &dir.join("overlay.png"))?;
        if let Ok((_, k)) = &kernel {
            render::save_png(
                &render::filter_grid(k, FilterMode::PerInput, defaults::KERNEL_TILES)?,
                &dir.join("kernel.png"),
            )?;
        }
    }
    let made_by = kernel.as_ref().ok().map(|(c, k)| (c.clone(), k.size()));
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "layer": layer, "channel": channel, "channels": ch.c, "rank": st.rank,
                "mean": st.mean, "std": st.std, "min": st.min, "max": st.max, "active": st.active,
                "conv": made_by.as_ref().map(|m| m.0.clone()), "kernel": made_by.as_ref().map(|m| m.1.clone()),
            })
        );
    } else {
        println!(
            "`{layer}` channel {channel} of {}: rank {} by mean, mean {:.4}, std {:.4}, min {:.4}, max {:.4}, active {:.1} %",
            ch.c,
            st.rank + 1,
            st.mean,
            st.std,
            st.min,
            st.max,
            st.active * 100.0
        );
        match &made_by {
            Some((conv, shape)) => println!("made by `{conv}`, kernel {shape:?}"),
            None => println!("no convolution made this channel directly"),
        }
    }
    Ok(())
}

pub fn receptive_field(a: ReceptiveFieldArgs, device: Device) -> Result<()> {
    let (y, x) = (a.at.row, a.at.col);
    let layer = &a.layer;
    let m = a.model.open(device)?;
    let prepared = m.preprocess.prepare_file(&a.image)?;
    let f = inspect::receptive_field(&m, &prepared.tensor, layer, a.channel, y, x)?;
    if let Some(o) = &a.out {
        render::save_png(&render::field_picture(&prepared.view, &f), o)?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "layer": layer, "row": y, "col": x, "channel": a.channel,
                "bbox": f.bbox.map(|(x0, y0, x1, y1)| serde_json::json!({"x0": x0, "y0": y0, "x1": x1, "y1": y1})) })
        );
    } else {
        match f.bbox {
            Some((x0, y0, x1, y1)) => println!(
                "`{layer}` at row {y}, column {x}: depends on input pixels x {x0}..={x1}, y {y0}..={y1} ({}x{})",
                x1 - x0 + 1,
                y1 - y0 + 1
            ),
            None => println!("`{layer}` at row {y}, column {x} does not depend on any input pixel of this image"),
        }
    }
    Ok(())
}

fn activations_one(
    m: &Model,
    image: &Path,
    layer: &str,
    out: &Path,
    raw: Option<&Path>,
    per_channel: bool,
) -> Result<String> {
    let prepared = m.preprocess.prepare_file(image)?;
    let (logits, ch) = inspect::channels(m, &prepared.tensor, layer)?;
    let (img, _) = render::channel_grid(&ch, !per_channel, Colormap::Viridis);
    render::save_png(&img, out)?;
    if let Some(raw) = raw {
        let mut meta = BTreeMap::new();
        meta.insert("layer".into(), layer.to_owned());
        meta.insert("model".into(), m.source.to_string());
        let tensors = vec![
            ("input".to_string(), prepared.tensor),
            ("logits".to_string(), logits),
            (
                "activation".to_string(),
                Tensor::from_slice(&ch.data).view([1, ch.c as i64, ch.h as i64, ch.w as i64]),
            ),
        ];
        weights::save_safetensors(raw, &tensors, &meta, StoreAs::F32)?;
    }
    Ok(format!(
        "{}: {} channels of `{layer}` {:?}, strongest channels {:?}",
        out.display(),
        ch.c,
        [1, ch.c, ch.h, ch.w],
        ch.order.iter().take(5).map(|o| o.0).collect::<Vec<_>>()
    ))
}

pub fn activations(a: ActivationsArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let inputs = Shard::of(a.shard, expand_inputs(&a.images)?)?;
    let many = inputs.len() > 1 || a.images.iter().any(|p| p.is_dir());
    for dir in [Some(&a.out), a.save_raw.as_ref()]
        .into_iter()
        .flatten()
        .filter(|_| many)
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = Some(a.out.clone());
    for_each_input(&inputs, many, |image| {
        let png = output_path(&out, many, image, &a.layer, "png").expect("--out is given");
        let raw = output_path(&a.save_raw, many, image, &a.layer, "safetensors");
        activations_one(&m, image, &a.layer, &png, raw.as_deref(), a.per_channel)
    })
}

pub fn filters(a: FiltersArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let w = inspect::conv_weight(&m, &a.layer)?;
    let mode = if a.per_input {
        FilterMode::PerInput
    } else {
        FilterMode::Average
    };
    let img = render::filter_grid(&w, mode, a.max_tiles)?;
    render::save_png(&img, &a.out)?;
    println!("{}: kernels of `{}` {:?}", a.out.display(), a.layer, w.size());
    Ok(())
}
