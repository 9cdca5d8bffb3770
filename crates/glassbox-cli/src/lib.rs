//! The command line: every capability of the engine, for tests, batch work and lessons.
//!
//! This file: the `Cli` and `Command` types and the dispatch. `args.rs` holds what several
//! commands share (model, method, shard, position arguments, the engine's enums as clap
//! value enums, input and output paths); each command or family has its file: `predict.rs`,
//! `explain.rs` (explain, sanity), `inspect.rs` (layers, channel, receptive-field,
//! activations, filters), `import.rs`, `train.rs`, `edit.rs` (edit, diff, eval), `compare.rs`, `export.rs`. A new command gets a file
//! with its `...Args` struct and `run`, and a variant here.
//!
//! The feature `gui` (on by default) adds `glassbox gui`, the desktop app; without it
//! (`--no-default-features`, the build for cluster nodes) nothing of egui, winit or wgpu
//! is linked. The benchmarks are another binary, `glassbox-bench` (crates/glassbox-bench).

pub mod args;
mod compare;
mod edit;
mod explain;
mod export;
mod finetune;
mod import;
mod inspect;
mod lesson;
mod neuron;
mod predict;
mod report;
mod score;
mod train;

#[cfg(feature = "gui")]
use std::path::PathBuf;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[cfg(feature = "gui")]
use args::choice;
pub use args::{expand_inputs, DeviceArg, Shard};

#[cfg(feature = "gui")]
use glassbox_engine::arch::Arch;
#[cfg(feature = "gui")]
use glassbox_engine::model::ModelSource;

#[derive(Parser, Debug)]
#[command(
    name = "glassbox",
    about = "See why a convolutional network decides what it decides."
)]
pub struct Cli {
    /// Where to compute: the GPU when libtorch sees one (auto), or force cpu / cuda.
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// The largest image Glassbox decodes, in pixels (default 16384x16384). Decoding may use
    /// 4 bytes per pixel, at least 1 GiB.
    #[arg(long, global = true, default_value_t = glassbox_engine::preprocess::DEFAULT_MAX_IMAGE_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_image_pixels: u64,
    /// Without a command, the desktop app opens.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Classify images: top-k classes with probabilities.
    Predict(predict::PredictArgs),
    /// Explain a prediction: a saliency map per image, drawn over the image the model saw.
    Explain(explain::ExplainArgs),
    /// Sanity check (Adebayo et al. 2018): randomise layers from the top down and see
    /// whether the map changes. A map that stays similar fails.
    Sanity(explain::SanityArgs),
    /// List every traced layer with its output shape and parameter count.
    Layers(inspect::LayersArgs),
    /// One channel of a layer for an image: its statistics, the channel large and over the
    /// input, and the kernel of the convolution that made it.
    Channel(inspect::ChannelArgs),
    /// The input pixels one activation depends on (its receptive field): the gradient of
    /// the activation at ROW,COL of a layer with respect to the input, and its bounding box.
    ReceptiveField(inspect::ReceptiveFieldArgs),
    /// Every channel of a layer's output as a grid of thumbnails, ordered by mean activation.
    Activations(inspect::ActivationsArgs),
    /// The convolution kernels of a layer as pictures (first layer in colour).
    Filters(inspect::FiltersArgs),
    /// Convert a PyTorch state dict (.pth/.pt, zip or legacy) or safetensors file to
    /// Glassbox safetensors, checking that it fits the architecture. No pickle code runs.
    Import(import::ImportArgs),
    /// Train the small CNN on MNIST or Fashion-MNIST (data from `make setup`).
    Train(train::TrainArgs),
    /// Retrain in place: add classes (imprinting), replace them (head only, from a layer,
    /// whole network) or train the small CNN from scratch, on a labelled folder or data set.
    Finetune(finetune::FinetuneArgs),
    /// Edit a model's weights or knock out channels, and save it as a new file with the edit log.
    Edit(edit::EditArgs),
    /// Which tensors differ between two models, by how much, and both edit logs.
    Diff(edit::DiffArgs),
    /// Two models side by side: weight change per tensor, both answers and maps on each
    /// image with their difference, and both per-class accuracies on labelled data.
    Compare(compare::CompareArgs),
    /// Accuracy, per-class accuracy and the confusion matrix on a labelled folder or data set.
    Eval(edit::EvalArgs),
    /// The model back to PyTorch: a TorchScript module (knock-outs and added classes in its
    /// forward) or safetensors with PyTorch's key names.
    Export(export::ExportArgs),
    /// One value of a channel computed in the open: the input patch, the kernel, their
    /// products and sum, the bias, batch norm and activation.
    Conv(neuron::ConvArgs),
    /// The images of a folder or data set that most activate a channel.
    Examples(neuron::ExamplesArgs),
    /// An image grown to excite a channel or a class (feature visualisation).
    Visualize(neuron::VisualizeArgs),
    /// Lessons: check a lesson file (every model, image, layer and folder it names), list the builtin ones.
    #[command(subcommand)]
    Lesson(lesson::LessonCommand),
    /// A self-contained HTML report of images (prediction, maps, activations, edits,
    /// training record, model card) to take home; it opens offline in any browser.
    Report(report::ReportArgs),
    /// Open the desktop app (the default without a command).
    #[cfg(feature = "gui")]
    Gui(GuiArgs),
    /// Print a completion script for a shell: `glassbox completions bash > /etc/bash_completion.d/glassbox`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The command's name as typed (`receptive-field`), for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Predict(_) => "predict",
            Command::Explain(_) => "explain",
            Command::Sanity(_) => "sanity",
            Command::Layers(_) => "layers",
            Command::Channel(_) => "channel",
            Command::ReceptiveField(_) => "receptive-field",
            Command::Activations(_) => "activations",
            Command::Filters(_) => "filters",
            Command::Import(_) => "import",
            Command::Train(_) => "train",
            Command::Finetune(_) => "finetune",
            Command::Edit(_) => "edit",
            Command::Diff(_) => "diff",
            Command::Compare(_) => "compare",
            Command::Eval(_) => "eval",
            Command::Export(_) => "export",
            Command::Report(_) => "report",
            Command::Lesson(_) => "lesson",
            Command::Conv(_) => "conv",
            Command::Examples(_) => "examples",
            Command::Visualize(_) => "visualize",
            #[cfg(feature = "gui")]
            Command::Gui(_) => "gui",
            Command::Completions { .. } => "completions",
        }
    }
}

/// Open the desktop app.
#[cfg(feature = "gui")]
#[derive(clap::Args, Debug, Default)]
pub struct GuiArgs {
    /// An image to open (else the last one, else a bundled sample).
    pub image: Option<PathBuf>,
    /// A builtin model or a weights file (else the last one, else the builtin Lite0).
    #[arg(long, short)]
    pub model: Option<ModelSource>,
    /// The architecture of the weights, when the file does not say.
    #[arg(long, value_parser = choice::<Arch>())]
    pub arch: Option<Arch>,
    /// Start without what the last session remembered.
    #[arg(long)]
    pub fresh: bool,
    /// Take the README screenshots into this folder, then quit.
    #[arg(long, hide = true)]
    pub screenshots: Option<PathBuf>,
}

#[cfg(feature = "gui")]
fn gui(a: GuiArgs, device: glassbox_engine::Device) -> Result<()> {
    let image = match a.image {
        Some(p) if !p.is_file() => anyhow::bail!("{}: no such image file", p.display()),
        other => other,
    };
    glassbox_app::run(glassbox_app::Options {
        model: a.model,
        arch: a.arch,
        image,
        device,
        fresh: a.fresh,
        screenshots: a.screenshots,
        timings: true,
    })
}

pub fn run(cli: Cli) -> Result<()> {
    glassbox_engine::preprocess::set_max_image_pixels(cli.max_image_pixels);
    let device = cli.device.device()?;
    let Some(command) = cli.command.or_else(default_command) else {
        anyhow::bail!(
            "this glassbox is built without the desktop app (for cluster nodes): name a command, \
             `glassbox --help` lists them"
        );
    };
    match command {
        Command::Predict(a) => predict::run(a, device),
        Command::Explain(a) if a.score => score::run(&a, a.model.open(device)?),
        Command::Explain(a) => explain::run(a, device),
        Command::Sanity(a) => explain::sanity(a, device),
        Command::Layers(a) => inspect::layers(a, device),
        Command::Channel(a) => inspect::channel(a, device),
        Command::ReceptiveField(a) => inspect::receptive_field(a, device),
        Command::Activations(a) => inspect::activations(a, device),
        Command::Filters(a) => inspect::filters(a, device),
        Command::Import(a) => import::run(a, device),
        Command::Train(a) => train::run(a, device),
        Command::Finetune(a) => finetune::run(a, device),
        Command::Edit(a) => edit::run_edit(a, device),
        Command::Diff(a) => edit::run_diff(a, device),
        Command::Compare(a) => compare::run(a, device),
        Command::Eval(a) => edit::run_eval(a, device),
        Command::Export(a) => export::run(a, device),
        Command::Report(a) => report::run(a, device),
        Command::Lesson(c) => lesson::run(c, device),
        Command::Conv(a) => neuron::conv(a, device),
        Command::Examples(a) => neuron::examples(a, device),
        Command::Visualize(a) => neuron::visualize(a, device),
        #[cfg(feature = "gui")]
        Command::Gui(a) => gui(a, device.into()),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "glassbox", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// What runs without a command: the desktop app, where this build has it.
fn default_command() -> Option<Command> {
    #[cfg(feature = "gui")]
    return Some(Command::Gui(GuiArgs::default()));
    #[cfg(not(feature = "gui"))]
    None
}

/// What `glassbox --version` says: the version, the libtorch it was built with, and
/// whether libtorch sees a GPU here.
pub fn version_text() -> String {
    let cuda = if glassbox_engine::Device::cuda_available() {
        format!("CUDA: {} GPU(s) seen", tch::Cuda::device_count())
    } else {
        "CUDA: no GPU seen (computing on the CPU)".to_string()
    };
    format!(
        "{}\nlibtorch {} (tch 0.24)\n{cuda}",
        env!("CARGO_PKG_VERSION"),
        glassbox_engine::LIBTORCH_VERSION
    )
}

/// What every Glassbox binary does first: quiet on a closed pipe, the allocator as
/// BENCHMARKS.md measured it, log messages, and panics turned into one line.
pub fn start_process() {
    // Die quietly on a closed pipe (`glassbox layers | head`), as command-line tools do.
    // SAFETY: resetting a signal disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Keep large tensor buffers in the heap instead of fresh mmaps: libtorch allocates and
    // frees activation-sized blocks on every pass, and page-faulting new mappings each time
    // costs about 8 % of a batch-16 forward+backward here.
    // One arena for every thread: glibc gives each new thread an arena of its own whose
    // heaps hold at most 64 MiB, so on the engine thread every larger block (Lite0's
    // expanded activations at batch 16 are 77 MB) was a fresh mmap again, whatever the
    // threshold: the faithfulness curves took 2.5 s there against 1.45 s on the main thread,
    // and the app's edit-to-views 1.6x-1.9x its bound; with one arena, 1.04x (BENCHMARKS.md).
    // SAFETY: malloc tuning at start-up, before any allocation-heavy work or thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        // A MALLOC_ARENA_MAX the user set wins (glibc has read it already).
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
    // Messages of Glassbox and of eframe, wgpu and winit: warnings by default, RUST_LOG to choose.
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).try_init();
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
    glassbox_engine::guard::install_hook();
}

/// Entry point of the binary: one clear line on stderr and a non-zero exit on error.
pub fn main() -> std::process::ExitCode {
    start_process();
    let mut command = Cli::command();
    // Asking libtorch about CUDA takes a moment: only for --version.
    if std::env::args().skip(1).any(|a| a == "--version" || a == "-V") {
        command = command.version(&*Box::leak(version_text().into_boxed_str()));
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let what = match &cli.command {
        Some(c) => format!("glassbox {}", c.name()),
        None => "glassbox".to_string(),
    };
    finish(&what, || run(cli))
}

/// Runs one command under the guard: one clear line on stderr and a non-zero exit on error
/// (2 for a bug, with a request to report it).
pub fn finish(what: &str, f: impl FnOnce() -> Result<()>) -> std::process::ExitCode {
    match glassbox_engine::guard::catch(what, f) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let bug = matches!(
                e.downcast_ref::<glassbox_engine::Error>(),
                Some(glassbox_engine::Error::Panic { torch: false, .. })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option of every command says what it is for in `--help` (positional arguments
    /// are named in the command's own line).
    #[test]
    fn every_option_has_a_help_line() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if a.get_long().is_some() && !builtin && a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", a.get_long().unwrap_or_default()));
                }
            }
            for sub in c.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "glassbox", &mut missing);
        assert!(missing.is_empty(), "options without a help line: {missing:?}");
    }
}
