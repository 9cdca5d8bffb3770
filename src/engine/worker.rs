//! The engine on its own thread. It owns every tensor; callers (the UI, tests) send
//! requests and receive plain data back. A newer request of the same kind supersedes an
//! older one still running (it is cancelled at its next progress report), and any request
//! can be cancelled by its id.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::{DynamicImage, RgbImage, RgbaImage};
use tch::{Device, Tensor};

use super::arch::Arch;
use super::error::{Error, Result};
use super::explain::{self, Method, Params, Progress};
use super::guard;
use super::inspect::{self, Channels, ReceptiveField};
use super::metrics::{self, Curve, Sanity};
use super::model::{Class, LayerInfo, Model};
use super::render::{self, attribution_map, FilterMode, Map};

/// Where an image comes from.
#[derive(Debug, Clone)]
pub enum ImageSource {
    File(PathBuf),
    /// Encoded bytes (a bundled sample); `name` is shown to the user.
    Bytes {
        name: String,
        bytes: Vec<u8>,
    },
    /// Raw RGBA pixels (the clipboard).
    Pixels {
        name: String,
        width: u32,
        height: u32,
        rgba: Vec<u8>,
    },
}

impl ImageSource {
    pub fn name(&self) -> String {
        match self {
            ImageSource::File(p) => p.display().to_string(),
            ImageSource::Bytes { name, .. } | ImageSource::Pixels { name, .. } => name.clone(),
        }
    }
}

/// What the engine is asked to do.
#[derive(Debug, Clone)]
pub enum Request {
    /// A builtin model name or a weights file.
    OpenModel { model: String, arch: Option<Arch> },
    /// Decode an image and keep it as the current input.
    SetImage { source: ImageSource },
    /// Top-k classes of the current image.
    Predict { top: usize },
    /// Everything a new image needs, from one forward and one backward: the top-k classes,
    /// the channels of `layer`, and the maps of the methods among `methods` that share a
    /// backward (the others need their own `Explain`).
    Analyze {
        top: usize,
        layer: Option<String>,
        methods: Vec<Method>,
        params: Params,
    },
    /// The channels of one layer for the current image.
    Activations { layer: String },
    /// An attribution map of the current image, for explanation slot `slot`.
    Explain {
        slot: usize,
        method: Method,
        params: Params,
    },
    /// Deletion and insertion curves of a map of the current image.
    Faithfulness { slot: usize, target: i64, map: Map },
    /// The kernel that made channel `channel` of `layer`, as a picture.
    ChannelKernel { layer: String, channel: usize },
    /// The input pixels that position (y, x) of `layer` depends on.
    ReceptiveField {
        layer: String,
        channel: Option<usize>,
        y: usize,
        x: usize,
    },
    /// The kernels of a convolution as a picture.
    Filters { conv: String, per_input: bool },
    /// Cascading randomisation of the model: does the map depend on the weights?
    Sanity {
        slot: usize,
        method: Method,
        params: Params,
    },
    /// Faults injected on purpose, to test that the engine and the app survive them.
    #[doc(hidden)]
    InjectFault(Fault),
}

/// A fault for [`Request::InjectFault`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A libtorch error inside the request (an invalid view): the engine answers Failed.
    TorchError,
    /// A Rust panic inside the request: the engine answers Failed.
    Panic,
    /// The engine thread ends, as if it had died: the app must notice and offer a restart.
    KillThread,
}

impl Request {
    /// Requests with the same key supersede each other.
    fn key(&self) -> (u8, usize) {
        match self {
            Request::OpenModel { .. } => (0, 0),
            Request::SetImage { .. } => (1, 0),
            Request::Predict { .. } => (2, 0),
            Request::Analyze { .. } => (3, 0),
            Request::Activations { .. } => (4, 0),
            Request::Explain { slot, .. } => (5, *slot),
            Request::Faithfulness { slot, .. } => (6, *slot),
            Request::ChannelKernel { .. } => (7, 0),
            Request::ReceptiveField { .. } => (8, 0),
            Request::Filters { .. } => (9, 0),
            Request::Sanity { slot, .. } => (10, *slot),
            Request::InjectFault(_) => (11, 0),
        }
    }

    /// What the request does, for error messages ("opening model x: ...").
    pub fn describe(&self) -> String {
        match self {
            Request::OpenModel { model, .. } => format!("opening model {model}"),
            Request::SetImage { source } => format!("opening image {}", source.name()),
            Request::Predict { .. } => "the prediction".into(),
            Request::Analyze { .. } => "analysing the image".into(),
            Request::Activations { layer } => format!("the activations of `{layer}`"),
            Request::Explain { method, .. } => format!("the {method} map"),
            Request::Faithfulness { .. } => "the faithfulness curves".into(),
            Request::ChannelKernel { layer, channel } => format!("the kernel of `{layer}` channel {channel}"),
            Request::ReceptiveField { layer, .. } => format!("the receptive field in `{layer}`"),
            Request::Filters { conv, .. } => format!("the filters of `{conv}`"),
            Request::Sanity { method, .. } => format!("the sanity check of {method}"),
            Request::InjectFault(f) => format!("the injected fault {f:?}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub source: String,
    pub arch: String,
    pub classes: i64,
    pub parameters: i64,
    pub layers: Vec<LayerInfo>,
    pub convs: Vec<String>,
    /// For each layer with channels, the convolution that made them (`inspect::producing_conv`).
    pub producers: HashMap<String, String>,
    pub labels: Vec<String>,
    pub device: String,
    pub input: String,
}

/// One attribution map, as the UI draws it.
#[derive(Debug, Clone)]
pub struct Explained {
    pub method: Method,
    pub target: i64,
    pub layer: Option<String>,
    pub map: Map,
    pub completeness_error: Option<f64>,
}

/// What the engine sends back; every response names the request it answers.
#[derive(Debug)]
pub enum Response {
    ModelOpened {
        id: u64,
        info: ModelInfo,
    },
    /// The image as the model sees it (after resize and crop).
    ImageSet {
        id: u64,
        name: String,
        view: DynamicImage,
        original: (u32, u32),
    },
    Prediction {
        id: u64,
        top: Vec<Class>,
    },
    Analyzed {
        id: u64,
        top: Vec<Class>,
        target: i64,
        channels: Option<Result<Channels, String>>,
        maps: Vec<Result<Explained, String>>,
    },
    Activations {
        id: u64,
        channels: Channels,
    },
    Progress {
        id: u64,
        done: usize,
        total: usize,
        partial: Option<Map>,
    },
    Explained {
        id: u64,
        slot: usize,
        result: Explained,
    },
    Faithfulness {
        id: u64,
        slot: usize,
        deletion: Curve,
        insertion: Curve,
    },
    ChannelKernel {
        id: u64,
        layer: String,
        channel: usize,
        conv: String,
        shape: Vec<i64>,
        picture: RgbImage,
    },
    ReceptiveField {
        id: u64,
        layer: String,
        y: usize,
        x: usize,
        field: ReceptiveField,
    },
    Filters {
        id: u64,
        conv: String,
        shape: Vec<i64>,
        picture: RgbImage,
    },
    Sanity {
        id: u64,
        slot: usize,
        result: Sanity,
    },
    Cancelled {
        id: u64,
    },
    Failed {
        id: u64,
        message: String,
    },
}

impl Response {
    /// The id of the request this answers.
    pub fn id(&self) -> u64 {
        match self {
            Response::ModelOpened { id, .. }
            | Response::ImageSet { id, .. }
            | Response::Prediction { id, .. }
            | Response::Analyzed { id, .. }
            | Response::Activations { id, .. }
            | Response::Progress { id, .. }
            | Response::Explained { id, .. }
            | Response::Faithfulness { id, .. }
            | Response::ChannelKernel { id, .. }
            | Response::ReceptiveField { id, .. }
            | Response::Filters { id, .. }
            | Response::Sanity { id, .. }
            | Response::Cancelled { id }
            | Response::Failed { id, .. } => *id,
        }
    }

    /// True for the last response to a request (everything but progress).
    pub fn is_final(&self) -> bool {
        !matches!(self, Response::Progress { .. })
    }
}

pub struct Engine {
    tx: Option<Sender<(u64, Request)>>,
    rx: Receiver<Response>,
    next: AtomicU64,
    /// Per request kind: the newest id; older ones of that kind stop.
    newest: Arc<Mutex<HashMap<(u8, usize), u64>>>,
    /// Ids cancelled explicitly.
    cancelled: Arc<Mutex<Vec<u64>>>,
    /// Set when the engine is dropped: the running request stops at its next report.
    shutdown: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

struct State {
    device: Device,
    model: Option<Model>,
    image: Option<DynamicImage>,
    /// The current image prepared for the current model.
    input: Option<Tensor>,
}

impl Engine {
    /// Starts the engine thread on `device`.
    pub fn spawn(device: Device) -> Engine {
        let (tx, req_rx) = channel::<(u64, Request)>();
        let (resp_tx, rx) = channel::<Response>();
        let newest = Arc::new(Mutex::new(HashMap::new()));
        let cancelled = Arc::new(Mutex::new(Vec::new()));
        let shutdown = Arc::new(AtomicBool::new(false));
        let (n, c, down) = (newest.clone(), cancelled.clone(), shutdown.clone());
        let handle = std::thread::Builder::new()
            .name("glassbox-engine".into())
            .stack_size(ENGINE_STACK)
            .spawn(move || {
                let mut state = State {
                    device,
                    model: None,
                    image: None,
                    input: None,
                };
                for (id, req) in req_rx {
                    let kind = req.key();
                    let stale = || {
                        n.lock()
                            .map(|m| m.get(&kind).copied().unwrap_or(id) != id)
                            .unwrap_or(false)
                            || c.lock().map(|v| v.contains(&id)).unwrap_or(false)
                            || down.load(Ordering::SeqCst)
                    };
                    if stale() {
                        let _ = resp_tx.send(Response::Cancelled { id });
                        continue;
                    }
                    if matches!(req, Request::InjectFault(Fault::KillThread)) {
                        return; // the thread ends; callers see the engine gone
                    }
                    let resp = handle(&mut state, id, req, &resp_tx, &stale);
                    if resp_tx.send(resp).is_err() {
                        break;
                    }
                }
            })
            .expect("the engine thread starts");
        Engine {
            tx: Some(tx),
            rx,
            next: AtomicU64::new(1),
            newest,
            cancelled,
            shutdown,
            handle: Some(handle),
        }
    }

    /// Queues a request; returns its id. It supersedes older requests of its kind.
    pub fn send(&self, req: Request) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.newest.lock() {
            m.insert(req.key(), id);
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send((id, req));
        }
        id
    }

    /// Stops a request at its next progress report (or before it starts).
    pub fn cancel(&self, id: u64) {
        if let Ok(mut v) = self.cancelled.lock() {
            v.push(id);
        }
    }

    /// A response, if one is ready (never blocks).
    pub fn try_recv(&self) -> Option<Response> {
        self.rx.try_recv().ok()
    }

    /// False once the engine thread has ended (it never should): no request can finish then.
    pub fn alive(&self) -> bool {
        self.handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Waits for the next response (for tests and the command line).
    pub fn recv_timeout(&self, d: std::time::Duration) -> Option<Response> {
        self.rx.recv_timeout(d).ok()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the window must not wait for a long method to finish.
        self.shutdown.store(true, Ordering::SeqCst);
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn model_info(m: &Model) -> ModelInfo {
    let p = &m.preprocess;
    ModelInfo {
        source: m.source.clone(),
        arch: m.spec.arch.to_string(),
        classes: m.spec.classes,
        parameters: m.parameter_count(),
        layers: m.layers(),
        convs: inspect::conv_layers(m),
        producers: m
            .layers()
            .iter()
            .filter_map(|l| inspect::producing_conv(m, &l.name).map(|c| (l.name.clone(), c)))
            .collect(),
        labels: m.labels.clone(),
        device: match m.device() {
            Device::Cpu => "CPU".to_string(),
            Device::Cuda(i) => format!("GPU (CUDA {i})"),
            d => format!("{d:?}"),
        },
        input: format!("{}x{}x{}", p.channels(), p.size, p.size),
    }
}

fn decode(source: &ImageSource) -> Result<DynamicImage> {
    match source {
        ImageSource::File(path) => super::preprocess::load_image(path),
        ImageSource::Bytes { name, bytes } => super::preprocess::decode(bytes, std::path::Path::new(name)),
        ImageSource::Pixels {
            name,
            width,
            height,
            rgba,
        } => {
            super::preprocess::check_image_size(*width, *height, rgba.len() as u64, std::path::Path::new(name))?;
            RgbaImage::from_raw(*width, *height, rgba.clone())
                .map(DynamicImage::ImageRgba8)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "{name}: {width}x{height} pixels need {} bytes, got {}",
                        *width as usize * *height as usize * 4,
                        rgba.len()
                    ))
                })
        }
    }
}

fn explained(e: &explain::Explanation, size: i64) -> Result<Explained> {
    Ok(Explained {
        method: e.method,
        target: e.target,
        layer: e.layer.clone(),
        map: attribution_map(&e.attribution, e.method, size, size)?,
        completeness_error: e.completeness_error,
    })
}

/// The engine thread's stack: libtorch and deep networks recurse more than Rust's default
/// 2 MiB for spawned threads allows comfortably.
const ENGINE_STACK: usize = 32 << 20;

/// Runs one request under the guard: a libtorch error or a panic comes back as Failed,
/// naming the request, and the engine keeps the model and image it had (requests change
/// the state only once they have succeeded).
fn handle(state: &mut State, id: u64, req: Request, out: &Sender<Response>, stale: &dyn Fn() -> bool) -> Response {
    let what = req.describe();
    match guard::catch(&what, || run(state, id, req, out, stale)) {
        Ok(r) => r,
        Err(Error::Cancelled) => Response::Cancelled { id },
        Err(_) if stale() => Response::Cancelled { id },
        Err(e @ Error::Panic { .. }) => Response::Failed {
            id,
            message: e.to_string(),
        },
        Err(e) => Response::Failed {
            id,
            message: format!("{what}: {e}"),
        },
    }
}

fn need_input(state: &State) -> Result<(&Model, &Tensor)> {
    match (&state.model, &state.input) {
        (Some(m), Some(x)) => Ok((m, x)),
        (None, _) => Err(Error::invalid(
            "no model is open: open a weights file or pick the builtin model",
        )),
        (_, None) => Err(Error::invalid(
            "no image yet: drop an image on the window, open one or paste one",
        )),
    }
}

fn run(state: &mut State, id: u64, req: Request, out: &Sender<Response>, stale: &dyn Fn() -> bool) -> Result<Response> {
    Ok(match req {
        Request::OpenModel { model, arch } => {
            let m = Model::open(&model, arch, state.device)?;
            let info = model_info(&m);
            state.input = state.image.as_ref().map(|img| m.preprocess.prepare(img).tensor);
            state.model = Some(m);
            Response::ModelOpened { id, info }
        }
        Request::SetImage { source } => {
            let img = decode(&source)?;
            let view = match &state.model {
                Some(m) => {
                    let p = m.preprocess.prepare(&img);
                    state.input = Some(p.tensor);
                    p.view
                }
                None => img.clone(),
            };
            let original = (img.width(), img.height());
            state.image = Some(img);
            Response::ImageSet {
                id,
                name: source.name(),
                view,
                original,
            }
        }
        Request::Predict { top } => {
            let (m, x) = need_input(state)?;
            let logits = m.logits(x);
            Response::Prediction {
                id,
                top: m.top_k(&logits, top)?.remove(0),
            }
        }
        Request::Analyze {
            top,
            layer,
            methods,
            params,
        } => {
            let (m, x) = need_input(state)?;
            let a = inspect::analyze(m, x, layer.as_deref(), &methods, &params)?;
            let size = m.preprocess.size as i64;
            Response::Analyzed {
                id,
                top: m.top_k(&a.logits, top)?.remove(0),
                target: a.target,
                channels: a.channels.map(|c| c.map_err(|e| e.to_string())),
                maps: a
                    .explanations
                    .iter()
                    .map(|e| {
                        e.as_ref()
                            .map_err(|e| e.to_string())
                            .and_then(|e| explained(e, size).map_err(|e| e.to_string()))
                    })
                    .collect(),
            }
        }
        Request::Activations { layer } => {
            let (m, x) = need_input(state)?;
            let (_, channels) = inspect::channels(m, x, &layer)?;
            Response::Activations { id, channels }
        }
        Request::Explain { slot, method, params } => {
            let (m, x) = need_input(state)?;
            let size = m.preprocess.size as i64;
            let mut progress = |p: Progress| {
                if stale() {
                    return false;
                }
                let partial = p.partial.and_then(|t| attribution_map(t, method, size, size).ok());
                let _ = out.send(Response::Progress {
                    id,
                    done: p.done,
                    total: p.total,
                    partial,
                });
                true
            };
            let e = explain::explain(m, x, method, &params, &mut progress)?;
            Response::Explained {
                id,
                slot,
                result: explained(&e, size)?,
            }
        }
        Request::Faithfulness { slot, target, map } => {
            let (m, x) = need_input(state)?;
            let (deletion, insertion) = metrics::deletion_insertion(m, x, &map, target, 50, &|| !stale())?;
            Response::Faithfulness {
                id,
                slot,
                deletion,
                insertion,
            }
        }
        Request::ChannelKernel { layer, channel } => {
            let m = state.model.as_ref().ok_or_else(|| Error::invalid("no model is open"))?;
            let (conv, k) = inspect::channel_kernel(m, &layer, channel)?;
            Response::ChannelKernel {
                id,
                layer,
                channel,
                conv,
                shape: k.size(),
                picture: render::filter_grid(&k, FilterMode::PerInput, 64)?,
            }
        }
        Request::ReceptiveField {
            layer,
            channel,
            y,
            x: px,
        } => {
            let (m, x) = need_input(state)?;
            let field = inspect::receptive_field(m, x, &layer, channel, y, px)?;
            Response::ReceptiveField {
                id,
                layer,
                y,
                x: px,
                field,
            }
        }
        Request::Filters { conv, per_input } => {
            let m = state.model.as_ref().ok_or_else(|| Error::invalid("no model is open"))?;
            let w = inspect::conv_weight(m, &conv)?;
            let mode = if per_input {
                FilterMode::PerInput
            } else {
                FilterMode::Average
            };
            Response::Filters {
                id,
                conv,
                shape: w.size(),
                picture: render::filter_grid(&w, mode, 256)?,
            }
        }
        Request::Sanity { slot, method, params } => {
            let (m, x) = need_input(state)?;
            let mut progress = |done: usize, total: usize| {
                if stale() {
                    return false;
                }
                let _ = out.send(Response::Progress {
                    id,
                    done,
                    total,
                    partial: None,
                });
                true
            };
            let result = metrics::sanity_check(m, x, method, &params, &mut progress)?;
            Response::Sanity { id, slot, result }
        }
        Request::InjectFault(fault) => match fault {
            Fault::TorchError => {
                let t = Tensor::zeros([2, 3], (tch::Kind::Float, state.device));
                let _ = t.view([7, 7]);
                unreachable!("libtorch refuses a [2, 3] tensor viewed as [7, 7]")
            }
            Fault::Panic => panic!("injected panic"),
            Fault::KillThread => unreachable!("handled by the engine loop"),
        },
    })
}
