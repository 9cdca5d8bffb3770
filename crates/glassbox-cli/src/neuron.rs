//! The classroom's questions from the command line: `glassbox conv` (one value computed in
//! the open), `glassbox examples` (the images that most activate a channel) and
//! `glassbox visualize` (an image grown to excite a channel or a class).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::builder::RangedU64ValueParser;
use tch::Device;

use super::args::choice;
use super::args::{parse_at, At, ModelArgs};
use glassbox_engine::data::DatasetName;
use glassbox_engine::finetune::DataSource;
use glassbox_engine::{convolution, examples, render, visualize};

/// One value of a channel computed in the open: patch, kernel, products, sum, bias, batch norm, activation.
#[derive(clap::Args, Debug)]
pub struct ConvArgs {
    pub image: PathBuf,
    /// A convolution, or the batch norm or activation right after one.
    #[arg(long)]
    pub layer: String,
    /// The channel of that layer (from 0).
    #[arg(long)]
    pub channel: usize,
    /// Position in the layer's output, ROW,COL from 0.
    #[arg(long, value_parser = parse_at)]
    pub at: At,
    #[command(flatten)]
    pub model: ModelArgs,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The images of a folder or data set that most activate a channel (top 9), each saved with
/// the channel over it.
#[derive(clap::Args, Debug)]
pub struct ExamplesArgs {
    /// The layer whose channel is searched for (a weight-key prefix: `relu2`, `_blocks.5`).
    #[arg(long)]
    pub layer: String,
    /// The channel of that layer (from 0).
    #[arg(long)]
    pub channel: usize,
    /// A folder of images (or of class sub-folders).
    #[arg(long, conflicts_with = "dataset", required_unless_present = "dataset")]
    pub data: Option<PathBuf>,
    /// A bundled data set's training images.
    #[arg(long, value_parser = choice::<DatasetName>())]
    pub dataset: Option<DatasetName>,
    /// At most this many images per class.
    #[arg(long, default_value_t = 100)]
    pub per_class: usize,
    /// How many of the strongest images to keep.
    #[arg(long, default_value_t = 9, value_parser = RangedU64ValueParser::<usize>::new().range(1..=100))]
    pub top: usize,
    #[command(flatten)]
    pub model: ModelArgs,
    /// A folder for the pictures (1.png is the strongest).
    #[arg(long)]
    pub out: PathBuf,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// An image grown by gradient ascent to excite a channel or a class.
#[derive(clap::Args, Debug)]
pub struct VisualizeArgs {
    /// With --channel: grow an image for that channel of this layer.
    #[arg(long, requires = "channel", conflicts_with = "class")]
    pub layer: Option<String>,
    /// The channel of --layer (from 0).
    #[arg(long, requires = "layer")]
    pub channel: Option<usize>,
    /// Grow an image for this class instead (its index).
    #[arg(long, required_unless_present = "layer")]
    pub class: Option<i64>,
    /// Gradient-ascent steps.
    #[arg(long, default_value_t = 128, value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub steps: usize,
    /// The seed of the starting noise and the jitter (the same seed, the same picture).
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
    #[command(flatten)]
    pub model: ModelArgs,
    /// The picture (.png).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn conv(a: ConvArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let x = m.preprocess.prepare_file(&a.image)?.tensor;
    let u = convolution::unfold(&m, &x, &a.layer, a.channel, a.at.row, a.at.col)?;
    if a.json {
        println!("{}", serde_json::to_string(&u)?);
        return Ok(());
    }
    println!(
        "`{}` channel {} at ({}, {}), made by `{}`: {}x{} kernel, stride {}, {} input channel(s), patch from ({}, {})",
        u.layer, u.channel, u.y, u.x, u.conv, u.k, u.k, u.stride, u.input_channels, u.top, u.left
    );
    let k = u.k as usize;
    for s in &u.inputs {
        println!(
            "input channel {}: patch × kernel = products, Σ {:+.4}",
            s.channel, s.sum
        );
        for r in 0..k {
            let row = |v: &[f32]| {
                v[r * k..(r + 1) * k]
                    .iter()
                    .map(|x| format!("{x:+8.3}"))
                    .collect::<String>()
            };
            println!("  {}   {}   {}", row(&s.patch), row(&s.kernel), row(&s.products));
        }
    }
    if u.inputs.len() < u.input_channels {
        println!(
            "… {} more input channels summed the same way",
            u.input_channels - u.inputs.len()
        );
    }
    println!(
        "sum {:+.4}{}",
        u.total,
        u.bias.map(|b| format!(" + bias {b:+.4}")).unwrap_or_default()
    );
    println!("= {:+.4} (the network: {:+.4})", u.conv_out, u.network_conv_out);
    if let Some(b) = &u.batch_norm {
        println!(
            "batch norm `{}`: {:.4} * (z - {:+.4}) / sqrt({:.4} + {}) + {:+.4} = {:+.4}",
            b.layer, b.gamma, b.mean, b.var, b.eps, b.beta, b.out
        );
    }
    if let Some((f, v)) = &u.activation {
        println!("{f} = {v:+.4}");
    }
    if let Some(n) = &u.note {
        println!("{n}");
    }
    println!("value of `{}`: {:+.4}", u.layer, u.result);
    Ok(())
}

pub fn examples(a: ExamplesArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let source = match (&a.data, a.dataset) {
        (Some(d), _) => DataSource::Folder(d.clone()),
        (None, Some(d)) => DataSource::Dataset(d),
        (None, None) => unreachable!("clap requires one"),
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let bar = super::args::progress_bar(0, "images");
    let acts = examples::activations(&m, &source, a.per_class, &a.layer, &mut |d, t| {
        bar.set_length(t as u64);
        bar.set_position(d as u64);
        true
    })?;
    bar.finish_and_clear();
    let top = acts.top(&m, a.channel, a.top)?;
    let mut pictures = Vec::new();
    for (k, e) in top.iter().enumerate() {
        let p = a.out.join(format!("{}.png", k + 1));
        render::save_png(&e.overlay, &p)?;
        pictures.push(p);
    }
    if a.json {
        let top: Vec<_> = top
            .iter()
            .zip(&pictures)
            .enumerate()
            .map(|(k, (e, p))| {
                serde_json::json!({
                    "rank": k + 1,
                    "name": e.name,
                    "activation": e.activation,
                    "picture": p.display().to_string(),
                })
            })
            .collect();
        let out = serde_json::json!({
            "layer": a.layer,
            "channel": a.channel,
            "searched": acts.data.labels.len(),
            "images_per_s": acts.images_per_s,
            "top": top,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "channel {} of `{}`: the top {} of {} images ({:.0} images/s)",
        a.channel,
        a.layer,
        top.len(),
        acts.data.labels.len(),
        acts.images_per_s
    );
    for (k, (e, p)) in top.iter().zip(&pictures).enumerate() {
        println!("{:>2}. {:+.4}  {}  -> {}", k + 1, e.activation, e.name, p.display());
    }
    Ok(())
}

pub fn visualize(a: VisualizeArgs, device: Device) -> Result<()> {
    if !a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        bail!("{}: the picture is written as .png", a.out.display());
    }
    let m = a.model.open(device)?;
    let goal = match (&a.layer, a.channel, a.class) {
        (Some(l), Some(c), _) => visualize::Goal::Channel {
            layer: l.clone(),
            channel: c,
        },
        (_, _, Some(c)) => visualize::Goal::Class(c),
        _ => unreachable!("clap requires --layer and --channel, or --class"),
    };
    let settings = visualize::Settings {
        steps: a.steps,
        seed: a.seed,
        ..Default::default()
    };
    let bar = super::args::progress_bar(a.steps as u64, "steps");
    let v = visualize::visualize(&m, &goal, &settings, &mut |d, _| {
        bar.set_position(d as u64);
        true
    })?;
    bar.finish_and_clear();
    render::save_png(&v.picture, &a.out)?;
    println!(
        "{}: what {goal} wants to see ({} steps, seed {}); its value {:.3} at the start, {:.3} at the end",
        a.out.display(),
        a.steps,
        a.seed,
        v.objective.first().copied().unwrap_or(0.0),
        v.objective.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
