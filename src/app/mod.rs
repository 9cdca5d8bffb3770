//! The desktop app (egui/eframe). It makes no torch call: it sends requests to the engine
//! thread (`engine::worker`) and draws the plain data that comes back. Textures are
//! uploaded when their content changes, never every frame.

pub mod bench;
mod views;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use image::{DynamicImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::engine::arch::Arch;
use crate::engine::explain::{shares_backward, Method, Params};
use crate::engine::inspect::{ChannelStats, Channels, ReceptiveField};
use crate::engine::layers::LayerKind;
use crate::engine::metrics::{Curve, Sanity};
use crate::engine::model::Class;
use crate::engine::render::{self, Colormap, GridLayout, Map};
use crate::engine::worker::{Engine, Explained, ImageSource, ModelInfo, Request, Response};

/// The photos bundled with the app (the gallery).
pub const SAMPLES: &[(&str, &[u8])] = &[
    ("chelsea.png", include_bytes!("../../assets/samples/chelsea.png")),
    ("coffee.png", include_bytes!("../../assets/samples/coffee.png")),
];

/// At most this many explanations side by side.
pub const MAX_SLOTS: usize = 4;

/// How the app starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// A builtin model name or a weights file.
    pub model: Option<String>,
    pub arch: Option<Arch>,
    pub image: Option<PathBuf>,
    pub device: tch::Device,
    /// Ignore what was remembered from the last session.
    pub fresh: bool,
    /// Take the README screenshots into this folder, then quit.
    pub screenshots: Option<PathBuf>,
    /// Show timings in the status bar (off for snapshot tests: they vary run to run).
    pub timings: bool,
}

/// What the app remembers between sessions (eframe storage).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Settings {
    pub model: String,
    pub image: Option<PathBuf>,
    pub layer: Option<String>,
    pub cam_layer: Option<String>,
    pub filter_conv: Option<String>,
    pub methods: Vec<String>,
    /// "auto" (each method's standard colormap) or a colormap name.
    pub colormap: String,
    pub opacity: f32,
    pub top_k: usize,
    pub shared_scale: bool,
    pub per_input: bool,
    pub show_activations: bool,
    pub show_filters: bool,
    pub show_model: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: "efficientnet-lite0".into(),
            image: None,
            layer: None,
            cam_layer: None,
            filter_conv: None,
            methods: vec!["grad-cam".into()],
            colormap: "auto".into(),
            opacity: 0.5,
            top_k: 5,
            shared_scale: true,
            per_input: false,
            show_activations: true,
            show_filters: true,
            show_model: true,
        }
    }
}

/// A texture that is uploaded only when its picture changes.
#[derive(Default)]
pub struct Tex {
    pub handle: Option<egui::TextureHandle>,
    pub size: [usize; 2],
}

impl Tex {
    pub fn set(&mut self, ctx: &egui::Context, name: &str, img: &RgbImage, smooth: bool) {
        let size = [img.width() as usize, img.height() as usize];
        let color = egui::ColorImage::from_rgb(size, img.as_raw());
        let opts = if smooth {
            egui::TextureOptions::LINEAR
        } else {
            egui::TextureOptions::NEAREST
        };
        match &mut self.handle {
            Some(h) => h.set(color, opts),
            None => self.handle = Some(ctx.load_texture(name, color, opts)),
        }
        self.size = size;
    }
    pub fn clear(&mut self) {
        self.handle = None;
    }
}

/// Parameters a user sets per explanation (target and CAM layer are shared by all).
#[derive(Debug, Clone)]
pub struct Slot {
    pub id: usize,
    pub method: Method,
    pub params: Params,
    pub result: Option<Explained>,
    pub partial: Option<Map>,
    pub progress: Option<(usize, usize)>,
    pub running: Option<u64>,
    pub error: Option<String>,
    pub faith: Option<(Curve, Curve)>,
    pub sanity: Option<Sanity>,
    pub sanity_running: Option<u64>,
    pub overlay_dirty: bool,
}

/// The open image.
pub struct Input {
    pub name: String,
    pub view: DynamicImage,
    pub original: (u32, u32),
}

/// The chosen channel of the activation layer.
pub struct ChannelDetail {
    pub channel: usize,
    pub stats: ChannelStats,
    pub kernel: Option<(String, Vec<i64>, RgbImage)>,
    pub kernel_error: Option<String>,
}

/// A receptive field on the input.
pub struct Field {
    pub layer: String,
    pub y: usize,
    pub x: usize,
    pub field: ReceptiveField,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Job {
    Model,
    Image,
    Analyze,
    Activations,
    Explain(usize),
    Faith(usize),
    Kernel,
    Field,
    Filters,
    Sanity(usize),
    Fault,
}

/// Results of file dialogs and the clipboard, which run off the UI thread.
enum Picked {
    Image(PathBuf),
    Model(PathBuf),
    Pixels(ImageSource),
    Export(ExportWhat, PathBuf),
    Error(String),
}

/// What can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportWhat {
    Input,
    Overlay(usize),
    Activations,
    Channel,
    Filters,
    PredictionChart,
    FaithfulnessChart(usize),
}

pub struct GlassboxApp {
    engine: Engine,
    device: tch::Device,
    /// The engine thread ended (it never should): nothing pending can finish; the error bar
    /// offers a restart.
    pub engine_lost: bool,
    pub settings: Settings,
    pub model: Option<ModelInfo>,
    pub input: Option<Input>,
    /// The image the engine holds (sent again when a model opens) and the one on its way.
    image_source: Option<ImageSource>,
    sent_source: Option<ImageSource>,
    pub top: Vec<Class>,
    /// The class every explanation explains; None = the top-1 class.
    pub target: Option<i64>,
    /// The class the current maps explain.
    pub explained_target: Option<i64>,
    pub slots: Vec<Slot>,
    next_slot: usize,
    pub channels: Option<Channels>,
    pub grid: Option<(RgbImage, GridLayout)>,
    pub channel: Option<ChannelDetail>,
    pub field: Option<Field>,
    pub filters: Option<(String, Vec<i64>, RgbImage)>,
    pub errors: Vec<String>,
    pending: HashMap<u64, Job>,
    picked_tx: Sender<Picked>,
    picked_rx: Receiver<Picked>,
    /// Textures.
    tex_input: Tex,
    tex_field: Tex,
    tex_slots: HashMap<usize, Tex>,
    tex_grid: Tex,
    tex_channel: Tex,
    tex_channel_overlay: Tex,
    tex_kernel: Tex,
    tex_filters: Tex,
    /// Time to build the last frames, seconds.
    pub frame_times: VecDeque<f32>,
    /// When the current image arrived (for the drop-to-all-views measurement).
    pub image_requested: Option<Instant>,
    pub all_views_after: Option<Duration>,
    tour: Option<views::Tour>,
    show_help: bool,
    /// The screenshot tour pins the central scroll: Some(true) = bottom, Some(false) = top.
    tour_scroll: Option<bool>,
    central_scroll_max: f32,
    timings: bool,
    /// Texture uploads so far (a test checks that steady frames upload nothing).
    pub uploads: usize,
}

fn parse_methods(names: &[String]) -> Vec<Method> {
    let mut v: Vec<Method> = names.iter().filter_map(|n| n.parse().ok()).collect();
    v.dedup();
    v.truncate(MAX_SLOTS);
    if v.is_empty() {
        v.push(Method::GradCam);
    }
    v
}

/// Method-specific defaults for a model input side.
fn default_params(side: u32) -> Params {
    Params::default().with_window_for(side as i64)
}

impl GlassboxApp {
    /// The app with its engine thread; `storage` holds what the last session remembered.
    pub fn new(ctx: &egui::Context, storage: Option<&dyn eframe::Storage>, opts: Options) -> Self {
        let mut settings: Settings = if opts.fresh {
            Settings::default()
        } else {
            storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .unwrap_or_default()
        };
        if let Some(m) = &opts.model {
            settings.model = m.clone();
        }
        if let Some(i) = &opts.image {
            settings.image = Some(i.clone());
        }
        let (picked_tx, picked_rx) = channel();
        let mut app = GlassboxApp {
            engine: Engine::spawn(opts.device),
            device: opts.device,
            engine_lost: false,
            settings: settings.clone(),
            model: None,
            input: None,
            image_source: None,
            sent_source: None,
            top: Vec::new(),
            target: None,
            explained_target: None,
            slots: Vec::new(),
            next_slot: 0,
            channels: None,
            grid: None,
            channel: None,
            field: None,
            filters: None,
            errors: Vec::new(),
            pending: HashMap::new(),
            picked_tx,
            picked_rx,
            tex_input: Tex::default(),
            tex_field: Tex::default(),
            tex_slots: HashMap::new(),
            tex_grid: Tex::default(),
            tex_channel: Tex::default(),
            tex_channel_overlay: Tex::default(),
            tex_kernel: Tex::default(),
            tex_filters: Tex::default(),
            frame_times: VecDeque::new(),
            image_requested: None,
            all_views_after: None,
            tour: opts.screenshots.map(views::Tour::new),
            show_help: false,
            tour_scroll: None,
            central_scroll_max: 0.0,
            timings: opts.timings,
            uploads: 0,
        };
        for m in parse_methods(&settings.methods) {
            app.push_slot(m);
        }
        app.open_model(settings.model.clone(), opts.arch);
        match settings.image.clone() {
            Some(p) if p.exists() => app.set_image(ImageSource::File(p)),
            Some(p) => app.errors.push(format!(
                "the last image, {}, is gone; drop or open another one",
                p.display()
            )),
            None => app.set_image(ImageSource::Bytes {
                name: SAMPLES[0].0.to_string(),
                bytes: SAMPLES[0].1.to_vec(),
            }),
        }
        ctx.request_repaint();
        app
    }

    fn send(&mut self, job: Job, req: Request) -> u64 {
        let id = self.engine.send(req);
        // A newer request of the same job supersedes the older one.
        self.pending.retain(|_, j| *j != job);
        self.pending.insert(id, job);
        id
    }

    /// What is pending in the engine and what each slot shows, for test diagnostics.
    pub fn describe_work(&self) -> String {
        let mut jobs: Vec<String> = self.pending.iter().map(|(id, j)| format!("{id}:{j:?}")).collect();
        jobs.sort();
        let slots: Vec<String> = self
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
            self.model.as_ref().map(|m| &m.arch),
            self.input.as_ref().map(|i| &i.name),
            self.top.len(),
            self.channels.as_ref().map(|c| &c.layer),
            slots.join("; ")
        )
    }

    /// Anything still running in the engine.
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Work still running that the user waits for (not counting AUC curves).
    pub fn views_ready(&self) -> bool {
        self.model.is_some()
            && self.input.is_some()
            && !self.top.is_empty()
            && self.channels.is_some()
            && self.slots.iter().all(|s| s.result.is_some() || s.error.is_some())
    }

    fn push_slot(&mut self, method: Method) -> usize {
        let side = self.model_side();
        let id = self.next_slot;
        self.next_slot += 1;
        self.slots.push(Slot {
            id,
            method,
            params: default_params(side),
            result: None,
            partial: None,
            progress: None,
            running: None,
            error: None,
            faith: None,
            sanity: None,
            sanity_running: None,
            overlay_dirty: true,
        });
        id
    }

    fn model_side(&self) -> u32 {
        self.model
            .as_ref()
            .and_then(|m| m.input.rsplit('x').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(224)
    }

    pub fn open_model(&mut self, model: String, arch: Option<Arch>) {
        self.cancel_slot_work();
        self.send(Job::Model, Request::OpenModel { model, arch });
    }

    pub fn set_image(&mut self, source: ImageSource) {
        self.image_requested = Some(Instant::now());
        self.all_views_after = None;
        // Long maps of the old image would delay the new one: stop them.
        self.cancel_slot_work();
        self.send(Job::Image, Request::SetImage { source: source.clone() });
        self.sent_source = Some(source);
    }

    /// Opens a dropped or chosen file: a weights file by its extension, else an image.
    pub fn open_path(&mut self, path: PathBuf) {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if matches!(ext.as_str(), "safetensors" | "pth" | "pt" | "bin") {
            self.open_model(path.display().to_string(), None);
        } else {
            self.set_image(ImageSource::File(path));
        }
    }

    fn base_params(&self) -> Params {
        Params {
            target: self.target,
            layer: self.settings.cam_layer.clone(),
            ..Params::default()
        }
    }

    fn slot_params(&self, slot: &Slot) -> Params {
        let base = self.base_params();
        Params {
            target: base.target,
            layer: base.layer,
            ..slot.params.clone()
        }
    }

    fn cancel_slot_work(&mut self) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, j)| matches!(j, Job::Explain(_) | Job::Faith(_) | Job::Sanity(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.engine.cancel(id);
            self.pending.remove(&id);
        }
        for s in &mut self.slots {
            s.running = None;
            s.progress = None;
            s.sanity_running = None;
        }
    }

    /// A new engine thread, opening the model and image again (after the engine was lost).
    pub fn restart_engine(&mut self) {
        self.engine = Engine::spawn(self.device);
        self.engine_lost = false;
        self.pending.clear();
        self.errors.clear();
        let model = self.settings.model.clone();
        self.open_model(model, None);
        if self.image_source.is_none() {
            if let Some(src) = self.sent_source.take() {
                self.image_source = Some(src);
            }
        }
        if let Some(src) = self.image_source.clone() {
            self.set_image(src);
        }
    }

    /// Sends a request that injects a fault (tests of survival).
    #[doc(hidden)]
    pub fn inject_fault(&mut self, fault: crate::engine::worker::Fault) {
        self.send(Job::Fault, Request::InjectFault(fault));
    }

    /// Cancels every long computation (Esc).
    pub fn cancel_all(&mut self) {
        self.cancel_slot_work();
    }

    /// Everything for the current image: one pass for the prediction, the activation grid
    /// and the methods that share a backward; a request of its own for each other method.
    fn analyze_all(&mut self, with_activations: bool) {
        if self.model.is_none() || self.input.is_none() {
            return;
        }
        self.cancel_slot_work();
        let mut shared: Vec<Method> = Vec::new();
        for s in &mut self.slots {
            s.faith = None;
            s.sanity = None;
            s.error = None;
            if shares_backward(s.method) && !shared.contains(&s.method) {
                shared.push(s.method);
            }
        }
        let layer = if with_activations {
            self.settings.layer.clone()
        } else {
            None
        };
        let req = Request::Analyze {
            top: self.settings.top_k,
            layer,
            methods: shared,
            params: self.base_params(),
        };
        self.send(Job::Analyze, req);
        let ids: Vec<usize> = self
            .slots
            .iter()
            .filter(|s| !shares_backward(s.method))
            .map(|s| s.id)
            .collect();
        for id in ids {
            self.explain_slot(id);
        }
    }

    /// (Re)computes one slot's map.
    pub fn explain_slot(&mut self, id: usize) {
        self.run_slot(id, false);
    }

    /// Runs the sanity check of one slot's method.
    pub fn sanity_slot(&mut self, id: usize) {
        self.run_slot(id, true);
    }

    fn run_slot(&mut self, id: usize, sanity: bool) {
        let Some(slot) = self.slots.iter().find(|s| s.id == id) else {
            return;
        };
        if self.input.is_none() || self.model.is_none() {
            return;
        }
        let (method, params) = (slot.method, self.slot_params(slot));
        let (job, req) = if sanity {
            (
                Job::Sanity(id),
                Request::Sanity {
                    slot: id,
                    method,
                    params,
                },
            )
        } else {
            (
                Job::Explain(id),
                Request::Explain {
                    slot: id,
                    method,
                    params,
                },
            )
        };
        let rid = self.send(job, req);
        if let Some(s) = self.slots.iter_mut().find(|s| s.id == id) {
            s.progress = None;
            if sanity {
                s.sanity_running = Some(rid);
            } else {
                s.running = Some(rid);
                s.error = None;
                s.faith = None;
                s.sanity = None;
            }
        }
    }

    pub fn cancel_slot(&mut self, id: usize) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.id == id) {
            for rid in [s.running.take(), s.sanity_running.take()].into_iter().flatten() {
                self.engine.cancel(rid);
            }
            s.progress = None;
        }
    }

    pub fn add_slot(&mut self, method: Method) {
        if self.slots.len() >= MAX_SLOTS {
            return;
        }
        let id = self.push_slot(method);
        self.remember_methods();
        self.explain_slot(id);
    }

    pub fn remove_slot(&mut self, id: usize) {
        if self.slots.len() <= 1 {
            return;
        }
        self.cancel_slot(id);
        self.slots.retain(|s| s.id != id);
        self.tex_slots.remove(&id);
        self.remember_methods();
    }

    pub fn set_method(&mut self, id: usize, method: Method) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.id == id) {
            s.method = method;
            s.result = None;
            s.partial = None;
            s.overlay_dirty = true;
        }
        self.remember_methods();
        self.explain_slot(id);
    }

    fn remember_methods(&mut self) {
        self.settings.methods = self.slots.iter().map(|s| s.method.name().to_string()).collect();
    }

    /// Makes class `index` the target of every explanation (None = top-1).
    pub fn set_target(&mut self, index: Option<i64>) {
        if self.target == index {
            return;
        }
        self.target = index;
        self.analyze_all(false);
    }

    /// Chooses the layer whose channels are shown; the filters follow it (the convolution
    /// that made its channels).
    pub fn set_layer(&mut self, layer: String) {
        let conv = self.model.as_ref().and_then(|m| m.producers.get(&layer).cloned());
        if let Some(c) = conv.filter(|c| self.settings.filter_conv.as_ref() != Some(c)) {
            self.set_filter_conv(c);
        }
        self.settings.layer = Some(layer.clone());
        self.channel = None;
        self.field = None;
        self.tex_field.clear();
        if self.input.is_some() {
            self.send(Job::Activations, Request::Activations { layer });
        }
    }

    pub fn set_cam_layer(&mut self, layer: Option<String>) {
        self.settings.cam_layer = layer;
        self.analyze_all(false);
    }

    pub fn set_filter_conv(&mut self, conv: String) {
        self.settings.filter_conv = Some(conv.clone());
        self.send(
            Job::Filters,
            Request::Filters {
                conv,
                per_input: self.settings.per_input,
            },
        );
    }

    /// Chooses a channel of the activation layer; with a position, also its receptive field.
    pub fn select_channel(&mut self, ctx: &egui::Context, channel: usize, at: Option<(usize, usize)>) {
        let Some(ch) = &self.channels else { return };
        if channel >= ch.c {
            return;
        }
        let stats = ch.stats(channel);
        let layer = ch.layer.clone();
        self.channel = Some(ChannelDetail {
            channel,
            stats,
            kernel: None,
            kernel_error: None,
        });
        self.update_channel_textures(ctx);
        self.send(
            Job::Kernel,
            Request::ChannelKernel {
                layer: layer.clone(),
                channel,
            },
        );
        if let Some((y, x)) = at {
            self.request_field(layer, Some(channel), y, x);
        }
    }

    pub fn request_field(&mut self, layer: String, channel: Option<usize>, y: usize, x: usize) {
        self.send(Job::Field, Request::ReceptiveField { layer, channel, y, x });
    }

    fn colormap_for(&self, m: Method) -> Colormap {
        if self.settings.colormap == "auto" {
            Colormap::default_for(m)
        } else {
            self.settings.colormap.parse().unwrap_or(Colormap::default_for(m))
        }
    }

    /// The overlay picture of a slot (final map, else the map so far).
    pub fn slot_picture(&self, slot: &Slot) -> Option<RgbImage> {
        let input = self.input.as_ref()?;
        let map = slot.result.as_ref().map(|r| &r.map).or(slot.partial.as_ref())?;
        Some(render::overlay(
            &input.view,
            map,
            self.colormap_for(slot.method),
            self.settings.opacity as f64,
            0.99,
            slot.method.is_cam(),
        ))
    }

    fn update_slot_textures(&mut self, ctx: &egui::Context) {
        let dirty: Vec<usize> = self.slots.iter().filter(|s| s.overlay_dirty).map(|s| s.id).collect();
        for id in dirty {
            let pic = self
                .slots
                .iter()
                .find(|s| s.id == id)
                .and_then(|s| self.slot_picture(s));
            let tex = self.tex_slots.entry(id).or_default();
            match pic {
                Some(p) => {
                    tex.set(ctx, &format!("slot-{id}"), &p, true);
                    self.uploads += 1;
                }
                None => tex.clear(),
            }
            if let Some(s) = self.slots.iter_mut().find(|s| s.id == id) {
                s.overlay_dirty = false;
            }
        }
    }

    /// The chosen channel large, and over the input.
    pub fn channel_pictures(&self) -> Option<(RgbImage, RgbImage)> {
        let (ch, sel, input) = (self.channels.as_ref()?, self.channel.as_ref()?, self.input.as_ref()?);
        Some(render::channel_pictures(&input.view, ch, sel.channel))
    }

    fn update_channel_textures(&mut self, ctx: &egui::Context) {
        if let Some((heat, over)) = self.channel_pictures() {
            self.tex_channel.set(ctx, "channel", &heat, false);
            self.tex_channel_overlay.set(ctx, "channel-overlay", &over, true);
            self.uploads += 2;
        }
    }

    fn default_layer(info: &ModelInfo) -> Option<String> {
        let spatial: Vec<_> = info
            .layers
            .iter()
            .filter(|l| l.shape.len() == 4 && l.shape[2] > 1)
            .collect();
        let mid: Vec<_> = spatial.iter().filter(|l| l.shape[2] >= 14).collect();
        let pool = if mid.is_empty() { spatial.iter().collect() } else { mid };
        pool.iter()
            .rev()
            .find(|l| l.kind == LayerKind::Block)
            .or(pool.last())
            .map(|l| l.name.clone())
    }

    /// Applies one engine response.
    fn apply(&mut self, ctx: &egui::Context, r: Response) {
        let id = r.id();
        let job = if r.is_final() {
            self.pending.remove(&id)
        } else {
            self.pending.get(&id).copied()
        };
        let Some(job) = job else {
            return; // superseded or cancelled: its result is stale
        };
        match r {
            Response::ModelOpened { info, .. } => {
                let names: Vec<&str> = info.layers.iter().map(|l| l.name.as_str()).collect();
                if !self.settings.layer.as_deref().is_some_and(|l| names.contains(&l)) {
                    self.settings.layer = Self::default_layer(&info);
                }
                if !self.settings.cam_layer.as_deref().is_some_and(|l| names.contains(&l)) {
                    self.settings.cam_layer = None;
                }
                if !self
                    .settings
                    .filter_conv
                    .as_ref()
                    .is_some_and(|c| info.convs.contains(c))
                {
                    self.settings.filter_conv = info.convs.first().cloned();
                }
                self.settings.model = info.source.trim_start_matches("builtin:").to_string();
                self.model = Some(info);
                let side = self.model_side();
                for s in &mut self.slots {
                    s.params = s.params.clone().with_window_for(side as i64);
                }
                self.target = None;
                self.top.clear();
                self.channels = None;
                self.channel = None;
                self.field = None;
                self.filters = None;
                if let Some(conv) = self.settings.filter_conv.clone() {
                    self.set_filter_conv(conv);
                }
                // The view depends on the model's input size: prepare the image again, unless
                // a newer image is already on its way (it will be prepared for this model;
                // sending the old one again would supersede it and lose the user's drop).
                if self.sent_source.is_none() {
                    if let Some(src) = self.image_source.clone() {
                        self.set_image(src);
                    }
                }
            }
            Response::ImageSet {
                name, view, original, ..
            } => {
                self.tex_input.set(ctx, "input", &view.to_rgb8(), true);
                self.uploads += 1;
                if let Some(src) = self.sent_source.take() {
                    self.settings.image = match &src {
                        ImageSource::File(p) => Some(p.clone()),
                        _ => None,
                    };
                    self.image_source = Some(src);
                }
                self.input = Some(Input { name, view, original });
                self.target = None;
                self.top.clear();
                self.channel = None;
                self.field = None;
                self.tex_field.clear();
                for s in &mut self.slots {
                    s.result = None;
                    s.partial = None;
                    s.overlay_dirty = true;
                }
                self.analyze_all(true);
            }
            Response::Prediction { top, .. } => self.top = top,
            Response::Analyzed {
                top,
                target,
                channels,
                maps,
                ..
            } => {
                self.top = top;
                self.explained_target = Some(target);
                match channels {
                    Some(Ok(ch)) => self.set_channels(ctx, ch),
                    Some(Err(e)) => self.errors.push(e),
                    None => {}
                }
                for m in maps {
                    match m {
                        Ok(e) => {
                            let ids: Vec<usize> = self
                                .slots
                                .iter()
                                .filter(|s| s.method == e.method)
                                .map(|s| s.id)
                                .collect();
                            for id in ids {
                                self.slot_done(id, e.clone());
                            }
                        }
                        Err(msg) => {
                            for s in self.slots.iter_mut().filter(|s| shares_backward(s.method)) {
                                s.error = Some(msg.clone());
                            }
                        }
                    }
                }
            }
            Response::Activations { channels, .. } => self.set_channels(ctx, channels),
            Response::Progress {
                done, total, partial, ..
            } => {
                if let Job::Explain(sid) | Job::Sanity(sid) = job {
                    if let Some(s) = self.slots.iter_mut().find(|s| s.id == sid) {
                        s.progress = Some((done, total));
                        if let Some(p) = partial {
                            s.partial = Some(p);
                            s.overlay_dirty = true;
                        }
                    }
                }
            }
            Response::Explained { slot, result, .. } => {
                self.explained_target = Some(result.target);
                self.slot_done(slot, result);
            }
            Response::Faithfulness {
                slot,
                deletion,
                insertion,
                ..
            } => {
                if let Some(s) = self.slots.iter_mut().find(|s| s.id == slot) {
                    s.faith = Some((deletion, insertion));
                }
            }
            Response::ChannelKernel {
                layer,
                channel,
                conv,
                shape,
                picture,
                ..
            } => {
                let current = self.channels.as_ref().map(|c| c.layer.as_str()) == Some(layer.as_str());
                if let Some(d) = self.channel.as_mut().filter(|d| d.channel == channel && current) {
                    self.tex_kernel.set(ctx, "kernel", &picture, false);
                    self.uploads += 1;
                    d.kernel = Some((conv, shape, picture));
                }
            }
            Response::ReceptiveField { layer, y, x, field, .. } => {
                if let Some(input) = &self.input {
                    let pic = render::field_picture(&input.view, &field);
                    self.tex_field.set(ctx, "field", &pic, true);
                    self.uploads += 1;
                }
                self.field = Some(Field { layer, y, x, field });
            }
            Response::Filters {
                conv, shape, picture, ..
            } => {
                self.tex_filters.set(ctx, "filters", &picture, false);
                self.uploads += 1;
                self.filters = Some((conv, shape, picture));
            }
            Response::Sanity { slot, result, .. } => {
                if let Some(s) = self.slots.iter_mut().find(|s| s.id == slot) {
                    s.sanity = Some(result);
                    s.sanity_running = None;
                    s.progress = None;
                }
            }
            Response::Cancelled { .. } => {
                if let Job::Explain(sid) | Job::Sanity(sid) = job {
                    if let Some(s) = self.slots.iter_mut().find(|s| s.id == sid) {
                        s.running = None;
                        s.sanity_running = None;
                        s.progress = None;
                    }
                }
            }
            Response::Failed { message, .. } => match job {
                Job::Explain(sid) | Job::Sanity(sid) | Job::Faith(sid) => {
                    if let Some(s) = self.slots.iter_mut().find(|s| s.id == sid) {
                        s.error = Some(message);
                        s.running = None;
                        s.sanity_running = None;
                        s.progress = None;
                    }
                }
                Job::Kernel => {
                    if let Some(d) = self.channel.as_mut() {
                        d.kernel_error = Some(message);
                    }
                }
                Job::Image => {
                    // The engine still holds the previous image.
                    self.sent_source = None;
                    self.errors.push(format!("{message}. The previous image stays open."));
                }
                Job::Model => self.errors.push(format!("{message}. The previous model stays open.")),
                _ => self.errors.push(message),
            },
        }
        if self.all_views_after.is_none() && self.views_ready() {
            self.all_views_after = self.image_requested.map(|t| t.elapsed());
        }
    }

    fn slot_done(&mut self, id: usize, e: Explained) {
        let target = e.target;
        let map = e.map.clone();
        if let Some(s) = self.slots.iter_mut().find(|s| s.id == id) {
            s.result = Some(e);
            s.partial = None;
            s.progress = None;
            s.running = None;
            s.error = None;
            s.overlay_dirty = true;
        } else {
            return;
        }
        self.send(Job::Faith(id), Request::Faithfulness { slot: id, target, map });
    }

    fn set_channels(&mut self, ctx: &egui::Context, ch: Channels) {
        let grid = render::channel_grid(&ch, self.settings.shared_scale, Colormap::Viridis);
        self.tex_grid.set(ctx, "grid", &grid.0, false);
        self.uploads += 1;
        self.grid = Some(grid);
        let keep = self.channel.as_ref().map(|d| d.channel).filter(|c| *c < ch.c);
        self.channels = Some(ch);
        match keep {
            Some(c) => self.select_channel(ctx, c, None),
            None => {
                let first = self.channels.as_ref().and_then(|c| c.order.first()).map(|o| o.0);
                if let Some(c) = first {
                    self.select_channel(ctx, c, None);
                }
            }
        }
    }

    /// Redraws the activation grid (the colour-scale option changed).
    pub fn redraw_grid(&mut self, ctx: &egui::Context) {
        if let Some(ch) = self.channels.clone() {
            let keep = self.channel.as_ref().map(|d| d.channel);
            self.set_channels(ctx, ch);
            if let Some(c) = keep {
                self.select_channel(ctx, c, None);
            }
        }
    }

    /// Receives engine responses and the results of dialogs.
    pub fn poll(&mut self, ctx: &egui::Context) {
        while let Some(r) = self.engine.try_recv() {
            self.apply(ctx, r);
        }
        if !self.engine_lost && !self.engine.alive() {
            // Nothing pending can finish now: say so instead of "working" forever.
            self.engine_lost = true;
            self.pending.clear();
            self.cancel_slot_work();
            self.errors.push(
                "the engine stopped unexpectedly; what is on screen stays. Restart it to go on (your model and image are opened again)"
                    .into(),
            );
        }
        while let Ok(p) = self.picked_rx.try_recv() {
            match p {
                Picked::Image(path) => self.set_image(ImageSource::File(path)),
                Picked::Model(path) => self.open_model(path.display().to_string(), None),
                Picked::Pixels(src) => self.set_image(src),
                Picked::Export(what, path) => {
                    if let Err(e) = self.export(what, &path) {
                        self.errors.push(format!("{e:#}"));
                    }
                }
                Picked::Error(e) => self.errors.push(e),
            }
        }
        self.update_slot_textures(ctx);
        if self.busy() {
            ctx.request_repaint_after(Duration::from_millis(16));
        }
    }

    /// Writes a view as PNG or a chart as PNG/SVG, atomically.
    pub fn export(&self, what: ExportWhat, path: &Path) -> anyhow::Result<()> {
        use anyhow::anyhow;
        let nothing = || anyhow!("nothing to export yet: that view is empty");
        let png = |img: &RgbImage| -> anyhow::Result<()> {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if ext != "png" {
                anyhow::bail!("{}: pictures are exported as .png", path.display());
            }
            render::save_png(img, path)?;
            Ok(())
        };
        match what {
            ExportWhat::Input => png(&self.input.as_ref().ok_or_else(nothing)?.view.to_rgb8()),
            ExportWhat::Overlay(id) => {
                let s = self.slots.iter().find(|s| s.id == id).ok_or_else(nothing)?;
                png(&self.slot_picture(s).ok_or_else(nothing)?)
            }
            ExportWhat::Activations => png(&self.grid.as_ref().ok_or_else(nothing)?.0),
            ExportWhat::Channel => png(&self.channel_pictures().ok_or_else(nothing)?.1),
            ExportWhat::Filters => png(&self.filters.as_ref().ok_or_else(nothing)?.2),
            ExportWhat::PredictionChart => {
                if self.top.is_empty() {
                    return Err(nothing());
                }
                let title = self.input.as_ref().map(|i| i.name.clone()).unwrap_or_default();
                crate::charts::save(
                    &crate::charts::Chart::Prediction {
                        title,
                        top: self.top.clone(),
                    },
                    path,
                )
            }
            ExportWhat::FaithfulnessChart(id) => {
                let s = self.slots.iter().find(|s| s.id == id).ok_or_else(nothing)?;
                let (d, i) = s.faith.clone().ok_or_else(nothing)?;
                crate::charts::save(
                    &crate::charts::Chart::Faithfulness {
                        title: format!("{} faithfulness", s.method),
                        deletion: d,
                        insertion: i,
                    },
                    path,
                )
            }
        }
    }

    /// A file dialog off the UI thread; its answer arrives through `poll`.
    fn dialog(&self, kind: DialogKind) {
        let tx = self.picked_tx.clone();
        let start = self
            .settings
            .image
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        std::thread::spawn(move || {
            let mut d = rfd::FileDialog::new();
            if let Some(dir) = start {
                d = d.set_directory(dir);
            }
            let picked = match kind {
                DialogKind::Image => d
                    .add_filter("images", &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"])
                    .pick_file()
                    .map(Picked::Image),
                DialogKind::Model => d
                    .add_filter("weights", &["safetensors", "pth", "pt", "bin"])
                    .pick_file()
                    .map(Picked::Model),
                DialogKind::Export(what, name) => d.set_file_name(name).save_file().map(|p| Picked::Export(what, p)),
            };
            if let Some(p) = picked {
                let _ = tx.send(p);
            }
        });
    }

    /// An image from the clipboard (off the UI thread).
    fn paste(&self) {
        let tx = self.picked_tx.clone();
        std::thread::spawn(move || {
            let msg = match arboard::Clipboard::new().and_then(|mut c| c.get_image()) {
                Ok(img) => Picked::Pixels(ImageSource::Pixels {
                    name: "pasted image".into(),
                    width: img.width as u32,
                    height: img.height as u32,
                    rgba: img.bytes.into_owned(),
                }),
                Err(e) => Picked::Error(format!(
                    "the clipboard holds no image ({e}); copy an image first, or drop a file on the window"
                )),
            };
            let _ = tx.send(msg);
        });
    }
}

#[derive(Debug, Clone)]
enum DialogKind {
    Image,
    Model,
    Export(ExportWhat, String),
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
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
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
