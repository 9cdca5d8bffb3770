//! `glassbox-bench`: the engine's timings, the app's (headless), and a long session
//! (`make bench` runs each; BENCHMARKS.md says what each figure is). A binary of its own so
//! that no benchmark code ships in the product's crates; it starts its process exactly as
//! `glassbox` does (`glassbox_cli::start_process`: the same allocator settings).
//!
//! This file: the arguments and what each mode prints. `engine.rs` times the engine
//! directly, `app.rs` drives the real app headless.

mod app;
mod engine;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::builder::RangedU64ValueParser;
use clap::Parser;
use tch::Device;

use glassbox_cli::args::ModelArgs;
use glassbox_cli::DeviceArg;

/// Time Glassbox: the engine (model load, forward, forward+backward, each method), the
/// desktop app headless, live editing, retraining, dataset examples, Draw a digit, and a
/// long session's memory.
#[derive(Parser, Debug)]
#[command(name = "glassbox-bench")]
struct Cli {
    /// Where to compute: the GPU when libtorch sees one (auto), or force cpu / cuda.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    #[command(flatten)]
    bench: BenchArgs,
}

fn main() -> std::process::ExitCode {
    glassbox_cli::start_process();
    let cli = Cli::parse();
    glassbox_cli::finish("glassbox-bench", || run(cli.bench, cli.device.device()?))
}

/// Time the engine: model load, forward, forward+backward (medians), peak memory.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 20, value_parser = RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub runs: usize,
    #[arg(long)]
    pub json: bool,
    /// Also time every attribution method beside its bound (on this image).
    #[arg(long)]
    pub methods: Option<PathBuf>,
    /// Time the desktop app instead, headless, dropping these images in turn: frame
    /// building (median, p99) and drop-to-all-views beside decode+forward+backward.
    #[arg(long, num_args = 1..)]
    pub ui: Vec<PathBuf>,
    /// Time live editing instead, on this image: an edit in the headless app to every view
    /// it refreshes beside the same requests run directly on the engine; the engine alone
    /// beside forward+backward; and the undo of an edit to the largest parameter.
    #[arg(long)]
    pub edits: Option<PathBuf>,
    /// Hold a long session instead: this many cycles of every kind of request the app
    /// sends, through the engine thread, alternating the images given with --soak-images;
    /// fails (exit 1) when resident memory grows 5 % or more after the warm-up.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(2..=1_000_000))]
    pub soak: Option<usize>,
    #[arg(long, num_args = 1.., requires = "soak")]
    pub soak_images: Vec<PathBuf>,
    /// Time retraining instead, writing MNIST digit folders and their features into this
    /// folder: head-only at 5/20/50 per class, imprinting two classes, whole-network
    /// throughput (the photos given with --photos are checked to keep their class).
    #[arg(long)]
    pub finetune: Option<PathBuf>,
    /// Photos that must keep their top-1 class (--finetune, --imprint).
    #[arg(long, num_args = 1..)]
    pub photos: Vec<PathBuf>,
    /// With --finetune or --imprint: the smallest sizes that run every part (a check that
    /// the benchmark works, not figures to quote).
    #[arg(long)]
    pub smallest: bool,
    /// Measure imprinting instead, writing MNIST digit folders into this folder: Glassbox's
    /// calibration beside the plain baseline, every pair of digits and all ten added at once
    /// from 20 each, on the whole test set, the photos (--photos) keeping their class.
    #[arg(long)]
    pub imprint: Option<PathBuf>,
    /// Time dataset examples instead: every channel's activation of the default layer over
    /// this many MNIST digits (a tenth of each class), beside the plain forward.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(10..=60_000))]
    pub examples: Option<usize>,
    /// Time Draw a digit instead: this many strokes on the MNIST model's canvas, headless,
    /// each to all views refreshed.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(2..=100_000))]
    pub draw: Option<usize>,
}

pub fn run(a: BenchArgs, device: Device) -> Result<()> {
    if let Some(n) = a.examples {
        examples(&a, n, device)
    } else if let Some(n) = a.draw {
        draw(&a, n, device)
    } else if let Some(dir) = &a.finetune {
        finetune(&a, dir, device)
    } else if let Some(dir) = &a.imprint {
        imprint(&a, dir, device)
    } else if let Some(img) = &a.edits {
        edits(&a, img, device)
    } else if let Some(n) = a.soak {
        soak(&a, n, device)
    } else if !a.ui.is_empty() {
        ui(&a, device)
    } else {
        core(&a, device)
    }
}

/// `--examples N`: every channel's activation of the default layer over N digits.
fn examples(a: &BenchArgs, n: usize, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let layer = glassbox_engine::model::default_layer(&m.layers())
        .ok_or_else(|| anyhow::anyhow!("the model has no layer with channels"))?;
    let r = crate::engine::examples(&m, &layer, (n / 10).max(1))?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "dataset examples, {} `{}` over {} digits: {:.1} images/s beside the plain forward's {:.1} ({:.2}x); then any channel's top 9 in {:.1} ms",
            r.model,
            r.layer,
            r.images,
            r.images_per_s,
            r.forward_images_per_s,
            r.images_per_s / r.forward_images_per_s,
            r.top_ms
        );
    }
    Ok(())
}

/// `--draw N`: strokes on the MNIST model's canvas, headless.
fn draw(a: &BenchArgs, n: usize, device: Device) -> Result<()> {
    let r = crate::app::draw(n, device.into())?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "draw a digit on {}: stroke to all views {:.2} ms median, {:.2} ms p90 ({} strokes; a frame is 16.7 ms)",
            r.device, r.stroke_to_views_median_ms, r.stroke_to_views_p90_ms, r.strokes
        );
    }
    Ok(())
}

/// `--imprint DIR`: both calibrations of imprinting on digits added to the model.
fn imprint(a: &BenchArgs, dir: &std::path::Path, device: Device) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let m = a.model.open(device)?;
    let (train, test) = if a.smallest { (2, 3) } else { (20, 0) };
    let r = crate::engine::imprint(&m, dir, &a.photos, train, test)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let pct = |v: f64| format!("{:.1} %", v * 100.0);
    let recall = |o: &crate::engine::imprint::Outcome| o.recall.iter().map(|&r| pct(r)).collect::<Vec<_>>().join(" / ");
    println!(
        "imprinting MNIST digits into {} from {} each; tested on {} test digits; {} photos must keep their class",
        r.model,
        r.train_per_class,
        r.test_images,
        r.photos.len()
    );
    println!("| calibration | 0 and 1: recall, photos kept | 3 and 7 | all 45 pairs: mean / min recall, pairs with both >= 95 %, pairs keeping every photo | ten at once: right, sent to a new class, photos kept |");
    println!("|---|---|---|---|---|");
    for c in &r.calibrations {
        println!(
            "| {} | {}, {} | {}, {} | {} / {}, {} of {}, {} of {} | {}, {}, {} |",
            c.name,
            recall(&c.zero_one),
            c.zero_one.photos_kept,
            recall(&c.three_seven),
            c.three_seven.photos_kept,
            pct(c.pairs.mean_recall),
            pct(c.pairs.min_recall),
            c.pairs.pairs_at_95,
            c.pairs.pairs,
            c.pairs.pairs_photos_kept,
            c.pairs.pairs,
            pct(c.ten.accuracy),
            pct(c.ten.to_new),
            c.ten.photos_kept
        );
    }
    println!(
        "trade-off, ten digits at once, every new bias moved by d logits (right, sent to a new class, photos kept):"
    );
    println!(
        "| d | {} |",
        r.calibrations
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(r.calibrations.len()));
    for i in 0..r.calibrations[0].tradeoff.len() {
        let cells: Vec<String> = r
            .calibrations
            .iter()
            .map(|c| {
                let (_, acc, to_new, kept) = c.tradeoff[i];
                format!("{}, {}, {}", pct(acc), pct(to_new), kept)
            })
            .collect();
        println!("| {:+} | {} |", r.calibrations[0].tradeoff[i].0, cells.join(" | "));
    }
    println!(
        "--add-classes with the default {} epochs on 3 and 7: recall {}, photos kept {}",
        r.default_epochs,
        r.default_epochs_recall
            .iter()
            .map(|&v| pct(v))
            .collect::<Vec<_>>()
            .join(" / "),
        r.default_epochs_photos_kept
    );
    Ok(())
}

/// `--finetune DIR`: retraining at several sizes, imprinting, whole-network throughput.
fn finetune(a: &BenchArgs, dir: &std::path::Path, device: Device) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let m = a.model.open(device)?;
    let sizes = if a.smallest {
        crate::engine::FinetuneSizes::smallest()
    } else {
        crate::engine::FinetuneSizes::full()
    };
    let r = crate::engine::finetune(&m, dir, &a.photos, &sizes)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "retraining {} on {} ({} threads); head: {} epochs, Adam lr {}, batch {}",
            r.model, r.device, r.threads, r.epochs, r.lr, r.batch
        );
        for h in &r.head {
            println!(
                "  head only, {:>2} digits per class: test accuracy {:.1} % on {} digits; {:.2} s (features {:.2} s, head {:.3} s)",
                h.per_class,
                h.test_accuracy * 100.0,
                r.test_images,
                h.wall_s,
                h.features_s,
                h.head_s
            );
        }
        println!(
            "  imprinting digit-3 and digit-7 from {} images each: {:.1} % of {} new ones right, {:.2} s",
            r.imprint_train,
            r.imprint_accuracy * 100.0,
            2 * r.imprint_test,
            r.imprint_s
        );
        println!(
            "  the same, then 10 epochs of their weights: {:.1} % right, {:.2} s",
            r.refined_accuracy * 100.0,
            r.refined_s
        );
        for (p, before, after, refined) in &r.photos_top1 {
            println!("    {p}: top-1 `{before}` before, `{after}` imprinted, `{refined}` refined");
        }
        println!(
            "  whole network, batch {}: {:.1} images/s, the median of {} runs of {} steps ({}; forward, backward, Adam step)",
            r.full_batch,
            r.full_images_per_s,
            r.full_runs_images_per_s.len(),
            r.full_steps,
            r.full_runs_images_per_s
                .iter()
                .map(|v| format!("{v:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// `--edits IMAGE`: an edit through the app beside the same requests on the engine.
fn edits(a: &BenchArgs, img: &std::path::Path, device: Device) -> Result<()> {
    // Through the app (the figure users feel), then the engine alone under its own name.
    let app = crate::app::edits(img, a.runs, device.into())?;
    let mut m = a.model.open(device)?;
    let x = m.preprocess.prepare_file(img)?.tensor;
    let engine = crate::engine::edits(&mut m, &x, a.runs)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "model": app.model,
                "device": app.device,
                "edits": app.edits,
                "app_edit_to_views_ms": app.app_edit_to_views_ms,
                "bound_ms": app.bound_ms,
                "ratio": app.ratio,
                "engine_thread_ms": app.engine_thread_ms,
                "views": app.views,
                "requests_sent": app.requests_sent,
                "engine_edit_to_views_ms": engine.edit_to_views_ms,
                "engine_forward_backward_ms": engine.bound_ms,
                "undo_param": engine.undo_param,
                "undo_shape": engine.undo_shape,
                "undo_median_ms": engine.undo_median_ms,
            })
        );
    } else {
        println!(
            "an edit in the app to every view it refreshes ({}; {} requests sent): {:.1} ms vs the same requests run directly on the engine {:.1} ms: {:.2}x (median of {})",
            app.views.join(", "),
            app.requests_sent,
            app.app_edit_to_views_ms,
            app.bound_ms,
            app.ratio,
            app.edits
        );
        println!(
            "the same requests on an engine thread of its own, without the app: {:.1} ms ({:.2}x the bound)",
            app.engine_thread_ms,
            app.engine_thread_ms / app.bound_ms
        );
        println!(
            "the engine alone (edit, prediction, channels, Grad-CAM): {:.1} ms beside forward+backward {:.1} ms",
            engine.edit_to_views_ms, engine.bound_ms
        );
        println!(
            "undo of an edit to `{}` {:?}: {:.3} ms (median)",
            engine.undo_param, engine.undo_shape, engine.undo_median_ms
        );
    }
    Ok(())
}

/// `--soak N`: a long session; an error when resident memory grows too much.
fn soak(a: &BenchArgs, n: usize, device: Device) -> Result<()> {
    if a.soak_images.is_empty() {
        bail!("--soak needs images: --soak-images A.png B.png");
    }
    let r = crate::engine::soak(a.model.model.clone(), &a.soak_images, n, device)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} cycles on {} in {:.0} s, each of: {}",
            r.cycles,
            r.model,
            r.seconds,
            r.request_kinds.join(", ")
        );
        println!("resident memory (MiB) after each tenth, in use (free memory given back) and as held before:");
        for (k, mib) in &r.rss_mib {
            let held = r.rss_before_trim_mib.iter().find(|(c, _)| c == k).map_or(0.0, |h| h.1);
            println!("  after {k:>6}: {mib:8.1}  (held {held:8.1})");
        }
        println!(
            "after the warm-up ({} cycles) {:.1} MiB, at the end {:.1} MiB: {:+.2} %",
            r.warm_up_cycles, r.rss_start_mib, r.rss_end_mib, r.growth_percent
        );
    }
    if r.growth_percent >= crate::engine::SOAK_GROWTH_LIMIT_PERCENT {
        bail!(
            "resident memory grew {:.2} % after the warm-up ({:.1} to {:.1} MiB over {} cycles), {} % or more: a leak",
            r.growth_percent,
            r.rss_start_mib,
            r.rss_end_mib,
            r.cycles,
            crate::engine::SOAK_GROWTH_LIMIT_PERCENT
        );
    }
    Ok(())
}

/// `--ui IMAGE...`: the app headless: frame building and drop-to-all-views.
fn ui(a: &BenchArgs, device: Device) -> Result<()> {
    let r = crate::app::run(&a.ui, 300, a.runs.clamp(1, 50), device.into())?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "ui on {}: frame build median {:.2} ms, p99 {:.2} ms ({} frames, a quarter in each of the four layouts)",
            r.device, r.frame_median_ms, r.frame_p99_ms, r.frames
        );
        println!(
            "drop to all views {:.1} ms vs bound (decode+forward+backward) {:.1} ms: {:.2}x (median of {})",
            r.drop_to_views_median_ms, r.bound_median_ms, r.ratio, r.drops
        );
    }
    Ok(())
}

/// The default: model load, forward, forward+backward; with `--methods`, every method.
fn core(a: &BenchArgs, device: Device) -> Result<()> {
    let r = crate::engine::core(a.model.model.clone(), a.runs, device)?;
    let method_times = match &a.methods {
        Some(img) => {
            let m = a.model.open(device)?;
            let x = m.preprocess.prepare_file(img)?.tensor;
            crate::engine::methods(&m, &x, a.runs)?
        }
        None => Vec::new(),
    };
    if a.json {
        println!("{}", serde_json::json!({ "core": r, "methods": method_times }));
    } else {
        println!(
            "model {}, device {}, {} threads, {} runs each",
            r.model, r.device, r.threads, a.runs
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
    Ok(())
}
