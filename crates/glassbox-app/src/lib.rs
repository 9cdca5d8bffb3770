//! The desktop app (egui/eframe). It makes no torch call: it sends requests to the engine
//! thread (`engine::worker`) and draws the plain data that comes back.
//!
//! - `lib.rs` (this file): the eframe shell: the app struct, how it starts and what it
//!   remembers.
//! - `state/`: what is on screen, without egui; `command.rs`: what a user can ask.
//! - `features/`: one module per feature (input, explanations, channel, unfold, edits,
//!   retrain, neuron, lessons, draw, presentation, unsaved), each applying its commands
//!   and following the engine's answers to its requests (`feature.rs`: the trait).
//! - `panels/`: one file per panel; each draws from the state and emits commands;
//!   `widgets.rs`: what panels share; `layout.rs`: the window, shortcuts, one frame.
//! - `tiles.rs`: the views as tiles in four ready layouts (See why, Edit, Retrain, Teach),
//!   remembered as the user arranged them.
//! - `textures.rs`: pictures uploaded only when they change; `tour/`: the README
//!   screenshots.

pub mod command;
mod feature;
mod features;
mod layout;
pub mod panels;
pub mod state;
mod textures;
pub mod tiles;
mod tour;
pub mod unsaved;
pub mod widgets;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

pub use command::{Command, DialogKind, DrawCommand, ExamplesCommand, LessonCommand, TrainCommand};
pub use state::{ExportWhat, Settings, Slot, State, MAX_RECENT_MODELS, MAX_SLOTS, MAX_TOP_K};

use glassbox_engine::arch::Arch;
use glassbox_engine::model::ModelSource;
use glassbox_engine::worker::{Engine, ImageSource, Request};
use glassbox_engine::Device;
use textures::Textures;

/// The photos bundled with the app (the gallery).
pub use glassbox_engine::samples::SAMPLES;

/// A file dropped on the window by its path, as the desktop integration hands it to egui:
/// how the UI tests and the headless benchmarks drop a file.
#[derive(Debug)]
pub struct DroppedPath(pub PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// How the app starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// A builtin model or a weights file.
    pub model: Option<ModelSource>,
    pub arch: Option<Arch>,
    pub image: Option<PathBuf>,
    pub device: Device,
    /// Ignore what was remembered from the last session.
    pub fresh: bool,
    /// Take the README screenshots into this folder, then quit.
    pub screenshots: Option<PathBuf>,
    /// Show timings in the status bar (off for snapshot tests: they vary run to run).
    pub timings: bool,
}

/// Results of file dialogs and the clipboard, which run off the UI thread.
enum Picked {
    Command(Command),
    Error(String),
}

pub struct GlassboxApp {
    /// Everything on screen; changed only by commands and engine responses (`features/`).
    pub state: State,
    /// The four layouts of the window's tiles, as the user arranged them, and the one shown.
    pub layouts: tiles::Layouts,
    engine: Engine,
    device: Device,
    ctx: egui::Context,
    tex: Textures,
    /// The requests the engine works on for the app, by id, with their kind (a newer
    /// request of a kind supersedes the older).
    pending: HashMap<u64, glassbox_engine::worker::Kind>,
    picked_tx: Sender<Picked>,
    picked_rx: Receiver<Picked>,
    /// The image the engine holds (sent again when a model opens) and the one on its way.
    image_source: Option<ImageSource>,
    sent_source: Option<ImageSource>,
    /// Time to build the last frames, seconds.
    pub frame_times: VecDeque<f32>,
    /// When the current image was asked for (for the drop-to-all-views measurement).
    pub image_requested: Option<Instant>,
    pub all_views_after: Option<Duration>,
    tour: Option<tour::Tour>,
    timings: bool,
    /// With `timings`: the requests sent and not yet answered, by id.
    sent: HashMap<u64, Request>,
    /// With `timings`: the requests whose answers the app took, in the order they came
    /// (`glassbox-bench` runs the same ones directly on the engine for its bound).
    pub answered: Vec<Request>,
    /// With `timings`: every request sent so far, answered or not (superseded, cancelled).
    pub sent_count: usize,
    /// The presentation look in force (it is set when the mode changes).
    presented: bool,
    /// A lesson step's layer, filter and target, put in place once its model and image
    /// have arrived.
    lesson_deferred: Option<glassbox_engine::lesson::Step>,
    /// The image request whose views were requested with it (a drawing's stroke): its
    /// arrival needs no second round of requests.
    analysed_ahead: Option<u64>,
}

/// The engine's wake-up for this window: a repaint now, so an answer is drawn when it comes.
pub(crate) fn waker(ctx: &egui::Context) -> glassbox_engine::worker::Waker {
    let ctx = ctx.clone();
    std::sync::Arc::new(move || ctx.request_repaint())
}

impl GlassboxApp {
    /// The app with its engine thread; `storage` holds what the last session remembered.
    pub fn new(ctx: &egui::Context, storage: Option<&dyn eframe::Storage>, opts: Options) -> Self {
        let (mut settings, stored_error) = match storage.and_then(|s| s.get_string(eframe::APP_KEY)) {
            Some(text) if !opts.fresh => match Settings::from_stored(&text) {
                Ok(s) => (s, None),
                Err(e) => (Settings::default(), Some(e)),
            },
            _ => (Settings::default(), None),
        };
        let (layouts, layouts_error) = match storage.and_then(|s| s.get_string(tiles::STORAGE_KEY)) {
            Some(text) if !opts.fresh => tiles::Layouts::from_stored(&text),
            _ => (tiles::Layouts::default(), None),
        };
        if let Some(m) = &opts.model {
            settings.model = m.clone();
        }
        if let Some(i) = &opts.image {
            settings.image = Some(i.clone());
        }
        let (picked_tx, picked_rx) = channel();
        let mut app = GlassboxApp {
            state: State {
                settings: settings.clone(),
                ..State::default()
            },
            layouts,
            engine: Engine::spawn_waking(opts.device, Some(waker(ctx))),
            device: opts.device,
            ctx: ctx.clone(),
            tex: Textures::default(),
            pending: HashMap::new(),
            picked_tx,
            picked_rx,
            image_source: None,
            sent_source: None,
            frame_times: VecDeque::new(),
            image_requested: None,
            all_views_after: None,
            tour: opts.screenshots.map(tour::Tour::new),
            timings: opts.timings,
            sent: HashMap::new(),
            answered: Vec::new(),
            sent_count: 0,
            presented: false,
            lesson_deferred: None,
            analysed_ahead: None,
        };
        if let Some(e) = stored_error {
            app.state
                .errors
                .push(format!("{e}; starting with the default settings"));
        }
        app.state.errors.extend(layouts_error);
        for m in state::parse_methods(&settings.methods) {
            app.state.push_slot(m);
        }
        app.apply(Command::OpenModel(settings.model.clone(), opts.arch));
        match settings.image.clone() {
            Some(p) if p.exists() => app.apply(Command::SetImage(ImageSource::File(p))),
            Some(p) => app.state.errors.push(format!(
                "the last image, {}, is gone; drop or open another one",
                p.display()
            )),
            None => app.apply(Command::SetImage(ImageSource::Bytes {
                name: SAMPLES[0].0.to_string(),
                bytes: SAMPLES[0].1.to_vec(),
            })),
        }
        ctx.request_repaint();
        app
    }

    /// The settings to remember (eframe storage).
    pub fn settings(&self) -> &Settings {
        &self.state.settings
    }

    /// Anything still running in the engine.
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Texture uploads so far (a test checks that steady frames upload nothing).
    pub fn uploads(&self) -> usize {
        self.tex.uploads
    }

    /// What is pending in the engine and what each slot shows, for test diagnostics.
    pub fn describe_work(&self) -> String {
        let mut jobs: Vec<String> = self.pending.iter().map(|(id, j)| format!("{id}:{j:?}")).collect();
        jobs.sort();
        let s = &self.state;
        let slots: Vec<String> = s
            .slots
            .iter()
            .map(|s| {
                format!(
                    "{} result={} error={:?} running={:?} sanity={:?} progress={:?}",
                    s.method,
                    s.result.is_some(),
                    s.error,
                    s.running,
                    s.sanity_running,
                    s.progress
                )
            })
            .collect();
        format!(
            "pending [{}]; model {:?}; input {:?}; top {}; channels {:?}; slots [{}]",
            jobs.join(", "),
            s.model.as_ref().map(|m| &m.arch),
            s.input.as_ref().map(|i| &i.name),
            s.top.len(),
            s.channels.as_ref().map(|c| &c.layer),
            slots.join("; ")
        )
    }
}

impl eframe::App for GlassboxApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.frame(ui);
    }

    fn raw_input_hook(&mut self, _ctx: &egui::Context, raw: &mut egui::RawInput) {
        // The screenshot tour shows no tooltip of wherever the pointer happens to be.
        if self.tour.is_some() {
            raw.events.retain(|e| !matches!(e, egui::Event::PointerMoved(_)));
            raw.events.push(egui::Event::PointerGone);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state.settings);
        storage.set_string(tiles::STORAGE_KEY, self.layouts.to_stored());
    }
}

/// Opens the window. Without a display it says so and returns an error.
pub fn run(opts: Options) -> anyhow::Result<()> {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if !has_display {
        anyhow::bail!(
            "no display to open the window on (neither DISPLAY nor WAYLAND_DISPLAY is set); run it on a desktop, under `xvfb-run`, or use the command-line tools (`glassbox --help`)"
        );
    }
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Glassbox")
            .with_app_id("glassbox")
            .with_inner_size([1600.0, 1000.0])
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        persist_window: opts.screenshots.is_none(),
        ..Default::default()
    };
    eframe::run_native(
        "glassbox",
        native,
        Box::new(move |cc| Ok(Box::new(GlassboxApp::new(&cc.egui_ctx, cc.storage, opts)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
