//! The command line: every capability of the engine, for tests, batch work and lessons.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use tch::{Device, Tensor};

use crate::engine::arch::Arch;
use crate::engine::data::{self, DatasetName};
use crate::engine::explain::{self, Method, Params};
use crate::engine::inspect;
use crate::engine::model::Model;
use crate::engine::render::{self, Colormap, FilterMode};
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
    /// The largest image Glassbox decodes, in pixels (default 16384x16384). Decoding may use
    /// 4 bytes per pixel, at least 1 GiB.
    #[arg(long, global = true, default_value_t = crate::engine::preprocess::DEFAULT_MAX_IMAGE_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_image_pixels: u64,
    /// Without a command, the desktop app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
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

/// Which model a command uses.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// A builtin model (efficientnet-lite0, mnist, fashion-mnist) or a weights file.
    #[arg(long, short, default_value = "efficientnet-lite0")]
    pub model: String,
    /// Architecture, when it cannot be detected from the weights.
    #[arg(long)]
    pub arch: Option<String>,
}

impl ModelArgs {
    pub fn open(&self, device: Device) -> Result<Model> {
        Ok(Model::open(&self.model, parse_arch(&self.arch)?, device)?)
    }
}

/// A method and its parameters (explain, sanity).
#[derive(clap::Args, Debug)]
pub struct MethodArgs {
    /// gradient, input-x-gradient, smoothgrad, integrated-gradients, grad-cam, grad-cam++,
    /// score-cam, guided-backprop, guided-grad-cam, occlusion.
    #[arg(long)]
    pub method: String,
    /// Class index to explain (default: the top-1 class).
    #[arg(long)]
    pub target: Option<i64>,
    /// Layer for the CAM methods (default: the last layer with a spatial output).
    #[arg(long)]
    pub layer: Option<String>,
    /// Integrated Gradients steps.
    #[arg(long, default_value_t = 32)]
    pub steps: usize,
    /// SmoothGrad samples.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// SmoothGrad noise, as a fraction of the input's range.
    #[arg(long, default_value_t = 0.15)]
    pub sigma: f64,
    /// Occlusion window side in pixels (default: 1/7 of the input side, 32 at 224).
    #[arg(long)]
    pub window: Option<i64>,
    /// Occlusion stride in pixels (default: half the window).
    #[arg(long)]
    pub stride: Option<i64>,
    /// IG baseline (zero, black, blur) or occlusion fill value (a number, model space).
    #[arg(long)]
    pub baseline: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
}

impl MethodArgs {
    /// The method and its parameters, with defaults that fit the model's input size.
    pub fn params(&self, model: &Model) -> Result<(Method, Params)> {
        let method: Method = self.method.parse()?;
        let mut p = Params {
            target: self.target,
            layer: self.layer.clone(),
            steps: self.steps,
            samples: self.samples,
            sigma: self.sigma,
            seed: self.seed,
            ..Params::default()
        }
        .with_window_for(model.preprocess.size as i64);
        if let Some(w) = self.window {
            p.window = w;
            p.stride = (w / 2).max(1);
        }
        if let Some(s) = self.stride {
            p.stride = s;
        }
        if let Some(b) = &self.baseline {
            match b.parse::<f64>() {
                Ok(v) if method == Method::Occlusion => p.occlusion_value = v,
                _ => p.baseline = b.parse()?,
            }
        }
        Ok((method, p))
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Classify images: top-k classes with probabilities.
    Predict {
        /// Image files (PNG, JPEG, WebP, GIF, BMP, TIFF).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        /// How many classes to show.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// One JSON object per line per image.
        #[arg(long)]
        json: bool,
        /// Write the exact input tensor and the logits to a safetensors file.
        #[arg(long)]
        save_raw: Option<PathBuf>,
        /// Images per forward pass.
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// Only this part of the inputs: I/N (0-based) of the batches, for independent processes.
        #[arg(long)]
        shard: Option<String>,
        /// The top-k classes as a bar chart (.png or .svg; with several images, a folder).
        #[arg(long)]
        chart: Option<PathBuf>,
    },
    /// Open the desktop app (the default without a command).
    Gui {
        /// An image to open (else the last one, else a bundled sample).
        image: Option<PathBuf>,
        /// A builtin model or a weights file (else the last one, else the builtin Lite0).
        #[arg(long, short)]
        model: Option<String>,
        #[arg(long)]
        arch: Option<String>,
        /// Start without what the last session remembered.
        #[arg(long)]
        fresh: bool,
        /// Take the README screenshots into this folder, then quit.
        #[arg(long, hide = true)]
        screenshots: Option<PathBuf>,
    },
    /// One channel of a layer for an image: its statistics, the channel large and over the
    /// input, and the kernel of the convolution that made it.
    Channel {
        image: PathBuf,
        #[arg(long)]
        layer: String,
        #[arg(long)]
        channel: usize,
        #[command(flatten)]
        model: ModelArgs,
        /// Folder for channel.png, overlay.png and kernel.png.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The input pixels one activation depends on (its receptive field): the gradient of
    /// the activation at ROW,COL of a layer with respect to the input, and its bounding box.
    ReceptiveField {
        image: PathBuf,
        #[arg(long)]
        layer: String,
        /// Position in the layer's output, ROW,COL from 0.
        #[arg(long)]
        at: String,
        /// One channel (default: all channels summed).
        #[arg(long)]
        channel: Option<usize>,
        #[command(flatten)]
        model: ModelArgs,
        /// The field over the input, with its box, as PNG.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List every traced layer with its output shape and parameter count.
    Layers {
        #[command(flatten)]
        model: ModelArgs,
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
    /// Explain a prediction: a saliency map per image, drawn over the image the model saw.
    Explain {
        /// Image files or directories of images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        method: MethodArgs,
        /// Overlay PNG (one input) or a directory (several inputs: NAME.METHOD.png).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Safetensors with input, logits and attribution (file, or directory for several).
        #[arg(long)]
        save_raw: Option<PathBuf>,
        /// Overlay opacity, 0-1.
        #[arg(long, default_value_t = 0.5)]
        opacity: f64,
        /// Colormap (default: the method's standard one).
        #[arg(long)]
        colormap: Option<String>,
        /// Only this part of the inputs: I/N (0-based), for independent processes.
        #[arg(long)]
        shard: Option<String>,
        /// Also measure faithfulness: deletion and insertion curves and their AUC.
        #[arg(long)]
        metrics: bool,
        /// With --metrics: the two curves as a chart (.png or .svg; with several images, a folder).
        #[arg(long, requires = "metrics")]
        chart: Option<PathBuf>,
    },
    /// Sanity check (Adebayo et al. 2018): randomise layers from the top down and see
    /// whether the map changes. A map that stays similar fails.
    Sanity {
        image: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        method: MethodArgs,
        #[arg(long)]
        json: bool,
    },
    /// Every channel of a layer's output as a grid of thumbnails, ordered by mean activation.
    Activations {
        /// Image files or directories of images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        #[arg(long)]
        layer: String,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        out: PathBuf,
        /// One colour scale per channel instead of one shared scale.
        #[arg(long)]
        per_channel: bool,
        #[arg(long)]
        save_raw: Option<PathBuf>,
        /// Only this part of the inputs: I/N (0-based), for independent processes.
        #[arg(long)]
        shard: Option<String>,
    },
    /// The convolution kernels of a layer as pictures (first layer in colour).
    Filters {
        #[arg(long)]
        layer: String,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        out: PathBuf,
        /// Deeper kernels: one tile per input channel instead of their average.
        #[arg(long)]
        per_input: bool,
        /// At most this many tiles.
        #[arg(long, default_value_t = 256)]
        max_tiles: usize,
    },
    /// Time the engine: model load, forward, forward+backward (medians), peak memory.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 20)]
        runs: usize,
        #[arg(long)]
        json: bool,
        /// Also time every attribution method beside its bound (on this image).
        #[arg(long)]
        methods: Option<PathBuf>,
        /// Time the desktop app instead, headless, dropping these images in turn: frame
        /// building (median, p99) and drop-to-all-views beside decode+forward+backward.
        #[arg(long, num_args = 1..)]
        ui: Vec<PathBuf>,
        /// Hold a long session instead: this many predictions through the engine thread,
        /// alternating the images given with --soak-images, reporting resident memory.
        #[arg(long)]
        soak: Option<usize>,
        #[arg(long, num_args = 1.., requires = "soak")]
        soak_images: Vec<PathBuf>,
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

/// Runs `one` on every input with a progress bar, printing each result line; with many
/// inputs a failing one is reported and skipped, a single input fails the command.
fn for_each_input(inputs: &[PathBuf], many: bool, mut one: impl FnMut(&Path) -> Result<String>) -> Result<()> {
    let bar = if many {
        progress_bar(inputs.len() as u64, "images")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut failed = 0;
    for path in inputs {
        bar.set_message(path.display().to_string());
        match one(path) {
            Ok(line) => bar.suspend(|| println!("{line}")),
            Err(e) if !many => return Err(e),
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("glassbox: skipped {}: {e:#}", path.display()));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failed > 0 {
        bail!("{failed} of {} inputs failed (reported above)", inputs.len());
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
        meta.insert("model".into(), m.source.clone());
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

fn print_prediction(path: &Path, classes: &[crate::engine::model::Class], json: bool) {
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

/// Files named on the command line, and the images inside directories (sorted).
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    const EXT: &[&str] = &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"];
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading directory {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && f.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| EXT.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            found.sort();
            if found.is_empty() {
                bail!("directory {} holds no images ({})", p.display(), EXT.join(", "));
            }
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// `--shard I/N`: the items whose position modulo N is I.
pub fn shard_of<T>(items: Vec<T>, shard: Option<&str>) -> Result<Vec<T>> {
    let Some(s) = shard else { return Ok(items) };
    let parsed = s
        .split_once('/')
        .and_then(|(i, n)| Some((i.trim().parse::<usize>().ok()?, n.trim().parse::<usize>().ok()?)));
    match parsed {
        Some((i, n)) if n > 0 && i < n => Ok(items
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i)
            .map(|(_, x)| x)
            .collect()),
        _ => bail!("--shard must be I/N with 0 <= I < N, like 0/4 (got `{s}`)"),
    }
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("[{{bar:30}}] {{pos}}/{{len}} {what}, {{eta}} left  {{msg}}"))
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// The output for one input: `target` itself for a single input, else `target/NAME.TAG.EXT`.
fn output_path(target: &Option<PathBuf>, many: bool, input: &Path, tag: &str, ext: &str) -> Option<PathBuf> {
    let t = target.as_ref()?;
    if !many {
        return Some(t.clone());
    }
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    Some(t.join(format!("{stem}.{tag}.{ext}")))
}

#[allow(clippy::too_many_arguments)]
fn explain_one(
    m: &Model,
    path: &Path,
    method: Method,
    params: &Params,
    cmap: Colormap,
    opacity: f64,
    many: bool,
    metrics: bool,
    out: &Option<PathBuf>,
    save_raw: &Option<PathBuf>,
    chart: &Option<PathBuf>,
) -> Result<String> {
    let prepared = m.preprocess.prepare_file(path)?;
    let mut e = explain::explain(m, &prepared.tensor, method, params, &mut |_| true)?;
    let size = m.preprocess.size as i64;
    let map = render::attribution_map(&e.attribution, method, size, size)?;
    let mut faithfulness = None;
    if metrics {
        let (del, ins) = crate::engine::metrics::deletion_insertion(m, &prepared.tensor, &map, e.target, 50, &|| true)?;
        e.metadata.insert("deletion_auc".into(), format!("{:.5}", del.auc));
        e.metadata.insert("insertion_auc".into(), format!("{:.5}", ins.auc));
        faithfulness = Some((del.auc, ins.auc));
        if let Some(c) = output_path(
            chart,
            many,
            path,
            &format!("{}-faithfulness", method.name().replace('+', "p")),
            "svg",
        ) {
            let title = format!(
                "{method}: {}",
                path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
            );
            crate::charts::save(
                &crate::charts::Chart::Faithfulness {
                    title,
                    deletion: del,
                    insertion: ins,
                },
                &c,
            )?;
        }
    }
    let mut line = format!(
        "{}: {} for class {} ({})",
        path.display(),
        method,
        e.target,
        m.labels.get(e.target as usize).map(String::as_str).unwrap_or("?")
    );
    if let Some(l) = &e.layer {
        line.push_str(&format!(", layer {l}"));
    }
    if let Some(err) = e.completeness_error {
        line.push_str(&format!(", completeness error {err:.4}"));
    }
    if let Some((d, i)) = faithfulness {
        line.push_str(&format!(", deletion AUC {d:.4}, insertion AUC {i:.4}"));
    }
    if let Some(o) = output_path(out, many, path, &method.name().replace('+', "p"), "png") {
        let img = render::overlay(&prepared.view, &map, cmap, opacity, 0.99, method.is_cam());
        render::save_png(&img, &o)?;
        line.push_str(&format!(" -> {}", o.display()));
    }
    if let Some(r) = output_path(save_raw, many, path, &method.name().replace('+', "p"), "safetensors") {
        let logits = m.logits(&prepared.tensor);
        let tensors = vec![
            ("input".to_string(), prepared.tensor),
            ("logits".to_string(), logits),
            ("attribution".to_string(), e.attribution),
        ];
        weights::save_safetensors(&r, &tensors, &e.metadata, StoreAs::F32)?;
    }
    Ok(line)
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
    crate::engine::preprocess::set_max_image_pixels(cli.max_image_pixels);
    let device = cli.device.device()?;
    let command = cli.command.unwrap_or(Command::Gui {
        image: None,
        model: None,
        arch: None,
        fresh: false,
        screenshots: None,
    });
    match command {
        Command::Gui {
            image,
            model,
            arch,
            fresh,
            screenshots,
        } => {
            let image = image
                .map(|p| {
                    if p.is_file() {
                        Ok(p)
                    } else {
                        Err(anyhow::anyhow!("{}: no such image file", p.display()))
                    }
                })
                .transpose()?;
            crate::app::run(crate::app::Options {
                model,
                arch: parse_arch(&arch)?,
                image,
                device,
                fresh,
                screenshots,
                timings: true,
            })?;
        }
        Command::Channel {
            image,
            layer,
            channel,
            model,
            out,
            json,
        } => {
            let m = model.open(device)?;
            let prepared = m.preprocess.prepare_file(&image)?;
            let (_, ch) = inspect::channels(&m, &prepared.tensor, &layer)?;
            if channel >= ch.c {
                bail!(
                    "channel {channel} does not exist: `{layer}` has channels 0 to {}",
                    ch.c - 1
                );
            }
            let st = ch.stats(channel);
            let kernel = inspect::channel_kernel(&m, &layer, channel);
            if let Some(dir) = &out {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                let (heat, over) = render::channel_pictures(&prepared.view, &ch, channel);
                render::save_png(&heat, &dir.join("channel.png"))?;
                render::save_png(&over, &dir.join("overlay.png"))?;
                if let Ok((_, k)) = &kernel {
                    render::save_png(
                        &render::filter_grid(k, FilterMode::PerInput, 64)?,
                        &dir.join("kernel.png"),
                    )?;
                }
            }
            let made_by = kernel.as_ref().ok().map(|(c, k)| (c.clone(), k.size()));
            if json {
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
        }
        Command::ReceptiveField {
            image,
            layer,
            at,
            channel,
            model,
            out,
            json,
        } => {
            let (y, x) = at
                .split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?)))
                .ok_or_else(|| {
                    anyhow::anyhow!("--at must be ROW,COL with whole numbers from 0, e.g. 3,4 (got `{at}`)")
                })?;
            let m = model.open(device)?;
            let prepared = m.preprocess.prepare_file(&image)?;
            let f = inspect::receptive_field(&m, &prepared.tensor, &layer, channel, y, x)?;
            if let Some(o) = &out {
                render::save_png(&render::field_picture(&prepared.view, &f), o)?;
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "layer": layer, "row": y, "col": x, "channel": channel,
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
        }
        Command::Predict {
            images,
            model,
            top,
            json,
            save_raw,
            batch_size,
            shard,
            chart,
        } => {
            let m = model.open(device)?;
            if !(1..=4096).contains(&batch_size) {
                bail!("--batch-size must be between 1 and 4096 (got {batch_size})");
            }
            let files = expand_inputs(&images)?;
            let single = files.len() == 1 && !images[0].is_dir();
            // Shards take whole batches, so every batch is the same as in the unsharded run.
            let batches: Vec<Vec<PathBuf>> = files.chunks(batch_size).map(<[PathBuf]>::to_vec).collect();
            let batches = shard_of(batches, shard.as_deref())?;
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
                for ((path, _), classes) in ok.iter().zip(m.top_k(&logits, top)?) {
                    if let Some(c) = output_path(&chart, !single, path, "top", "svg") {
                        if !single {
                            std::fs::create_dir_all(chart.as_ref().expect("given"))?;
                        }
                        let title = path
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        crate::charts::save(
                            &crate::charts::Chart::Prediction {
                                title,
                                top: classes.clone(),
                            },
                            &c,
                        )?;
                    }
                    bar.suspend(|| print_prediction(path, &classes, json));
                    names.push(path.display().to_string());
                }
                if save_raw.is_some() {
                    all_x.push(x);
                    all_logits.push(logits.to_device(Device::Cpu));
                }
            }
            bar.finish_and_clear();
            if let (Some(out), false) = (save_raw, all_x.is_empty()) {
                let mut meta = BTreeMap::new();
                meta.insert("model".into(), m.source.clone());
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
        }
        Command::Layers { model, json } => {
            let m = model.open(device)?;
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
        Command::Explain {
            images,
            model,
            method,
            out,
            save_raw,
            opacity,
            colormap,
            shard,
            metrics,
            chart,
        } => {
            let m = model.open(device)?;
            let (method, params) = method.params(&m)?;
            if !(0.0..=1.0).contains(&opacity) {
                bail!("--opacity must be between 0 and 1 (got {opacity})");
            }
            let cmap = match colormap {
                Some(c) => c.parse()?,
                None => Colormap::default_for(method),
            };
            let inputs = shard_of(expand_inputs(&images)?, shard.as_deref())?;
            let many = inputs.len() > 1 || images.iter().any(|p| p.is_dir());
            for dir in [&out, &save_raw, &chart].into_iter().flatten().filter(|_| many) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            for_each_input(&inputs, many, |path| {
                explain_one(
                    &m, path, method, &params, cmap, opacity, many, metrics, &out, &save_raw, &chart,
                )
            })?;
        }
        Command::Sanity {
            image,
            model,
            method,
            json,
        } => {
            let m = model.open(device)?;
            let (method, params) = method.params(&m)?;
            let prepared = m.preprocess.prepare_file(&image)?;
            let bar = progress_bar(0, "layer groups");
            let s = crate::engine::metrics::sanity_check(&m, &prepared.tensor, method, &params, &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                true
            })?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "sanity check of {method} on {} (cascading randomisation, top layer first)",
                    image.display()
                );
                println!("{:<28} {:>10}", "randomised down to", "spearman");
                for st in &s.steps {
                    println!("{:<28} {:>10.4}", st.randomised, st.spearman);
                }
                println!("{method} {}", s.verdict);
            }
        }
        Command::Activations {
            images,
            layer,
            model,
            out,
            per_channel,
            save_raw,
            shard,
        } => {
            let m = model.open(device)?;
            let inputs = shard_of(expand_inputs(&images)?, shard.as_deref())?;
            let many = inputs.len() > 1 || images.iter().any(|p| p.is_dir());
            for dir in [Some(&out), save_raw.as_ref()].into_iter().flatten().filter(|_| many) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let out = Some(out);
            for_each_input(&inputs, many, |image| {
                let png = output_path(&out, many, image, &layer, "png").expect("--out is given");
                let raw = output_path(&save_raw, many, image, &layer, "safetensors");
                activations_one(&m, image, &layer, &png, raw.as_deref(), per_channel)
            })?;
        }
        Command::Filters {
            layer,
            model,
            out,
            per_input,
            max_tiles,
        } => {
            let m = model.open(device)?;
            let w = inspect::conv_weight(&m, &layer)?;
            let mode = if per_input {
                FilterMode::PerInput
            } else {
                FilterMode::Average
            };
            let img = render::filter_grid(&w, mode, max_tiles.max(1))?;
            render::save_png(&img, &out)?;
            println!("{}: kernels of `{layer}` {:?}", out.display(), w.size());
        }
        Command::Bench {
            model,
            runs,
            json,
            methods,
            ui,
            soak,
            soak_images,
        } => {
            if let Some(n) = soak {
                if soak_images.is_empty() {
                    bail!("--soak needs images: --soak-images A.png B.png");
                }
                let r = crate::engine::bench::soak(&model.model, &soak_images, n.max(10), device)?;
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "{} predictions of {} in {:.0} s; resident memory (MiB) after each tenth:",
                        r.predictions, r.model, r.seconds
                    );
                    for (k, mib) in &r.rss_mib {
                        println!("  after {k:>6}: {mib:8.1}");
                    }
                    println!("growth from the first tenth to the end: {:+.2} %", r.growth_percent);
                }
                return Ok(());
            }
            if !ui.is_empty() {
                let r = crate::app::bench::run(&ui, 300, runs.clamp(1, 50), device)?;
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "ui on {}: frame build median {:.2} ms, p99 {:.2} ms ({} frames, every panel open)",
                        r.device, r.frame_median_ms, r.frame_p99_ms, r.frames
                    );
                    println!(
                        "drop to all views {:.1} ms vs bound (decode+forward+backward) {:.1} ms: {:.2}x (median of {})",
                        r.drop_to_views_median_ms, r.bound_median_ms, r.ratio, r.drops
                    );
                }
                return Ok(());
            }
            if !(1..=10_000).contains(&runs) {
                bail!("--runs must be between 1 and 10000 (got {runs})");
            }
            let r = crate::engine::bench::core(&model.model, runs, device)?;
            let method_times = match &methods {
                Some(img) => {
                    let m = model.open(device)?;
                    let x = m.preprocess.prepare_file(img)?.tensor;
                    crate::engine::bench::methods(&m, &x, runs)?
                }
                None => Vec::new(),
            };
            if json {
                println!("{}", serde_json::json!({ "core": r, "methods": method_times }));
            } else {
                println!(
                    "model {}, device {}, {} threads, {} runs each",
                    r.model, r.device, r.threads, runs
                );
                for t in &r.timings {
                    println!(
                        "  {:<44} median {:>9.2} ms   min {:>9.2} ms",
                        t.name, t.median_ms, t.min_ms
                    );
                }
                if let Some(rss) = r.peak_rss_mib {
                    println!("  {:<44} {:>9.1} MiB", "peak RSS", rss);
                }
                if !method_times.is_empty() {
                    println!("attribution methods (median of runs; bound = the bare libtorch passes it cannot avoid)");
                    println!(
                        "  {:<22} {:>11} {:>11} {:>7}  bound",
                        "method", "time ms", "bound ms", "ratio"
                    );
                    for t in &method_times {
                        println!(
                            "  {:<22} {:>11.1} {:>11.1} {:>6.2}x  {}",
                            t.method, t.median_ms, t.bound_ms, t.ratio, t.bound
                        );
                    }
                }
            }
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
    // Keep large tensor buffers in the heap instead of fresh mmaps: libtorch allocates and
    // frees activation-sized blocks on every pass, and page-faulting new mappings each time
    // costs about 8 % of a batch-16 forward+backward here.
    // SAFETY: malloc tuning at start-up, before any allocation-heavy work or thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    // A panic outside the guard is a bug: one line asking for a report. Panics inside it
    // (libtorch errors from tch's convenience calls) become ordinary one-line errors.
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
    crate::engine::guard::install_hook();
    let cli = Cli::parse();
    let what = match &cli.command {
        Some(c) => format!("glassbox {}", command_name(c)),
        None => "glassbox".to_string(),
    };
    match crate::engine::guard::catch(&what, || run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let bug = matches!(
                e.downcast_ref::<crate::engine::Error>(),
                Some(crate::engine::Error::Panic { torch: false, .. })
            );
            let msg = format!("{e:#}").replace('\n', " ");
            if bug {
                eprintln!("glassbox: {msg} (please report this)");
                std::process::ExitCode::from(2)
            } else {
                eprintln!("glassbox: error: {msg}");
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// The subcommand's name as typed (`receptive-field`), for messages.
fn command_name(c: &Command) -> String {
    let debug = format!("{c:?}");
    let name = debug.split([' ', '{', '(']).next().unwrap_or("");
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}
