//! The engine on its own thread. It owns every tensor; callers (the UI, tests) send
//! requests and receive plain data back. A newer request of the same kind supersedes an
//! older one still running (it is cancelled at its next progress report), and any request
//! can be cancelled by its id.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::DynamicImage;
use tch::Device;

use super::arch::Arch;
use super::explain::{self, Method, Params, Progress};
use super::model::{Class, LayerInfo, Model};
use super::render::{attribution_map, Map};

/// What the engine is asked to do.
#[derive(Debug, Clone)]
pub enum Request {
    /// A builtin model name or a weights file.
    OpenModel { model: String, arch: Option<Arch> },
    /// Decode an image and keep it as the current input.
    SetImage { path: PathBuf },
    /// Top-k classes of the current image.
    Predict { top: usize },
    /// An attribution map of the current image.
    Explain { method: Method, params: Params },
}

impl Request {
    /// Requests of one kind supersede each other.
    fn kind(&self) -> u8 {
        match self {
            Request::OpenModel { .. } => 0,
            Request::SetImage { .. } => 1,
            Request::Predict { .. } => 2,
            Request::Explain { .. } => 3,
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
    pub labels: Vec<String>,
    pub device: String,
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
        view: DynamicImage,
    },
    Prediction {
        id: u64,
        top: Vec<Class>,
    },
    Progress {
        id: u64,
        done: usize,
        total: usize,
        partial: Option<Map>,
    },
    Explained {
        id: u64,
        method: Method,
        target: i64,
        layer: Option<String>,
        map: Map,
        completeness_error: Option<f64>,
    },
    Cancelled {
        id: u64,
    },
    Failed {
        id: u64,
        message: String,
    },
}

pub struct Engine {
    tx: Option<Sender<(u64, Request)>>,
    rx: Receiver<Response>,
    next: AtomicU64,
    /// Per request kind: the newest id; older ones of that kind stop.
    newest: Arc<Mutex<HashMap<u8, u64>>>,
    /// Ids cancelled explicitly.
    cancelled: Arc<Mutex<Vec<u64>>>,
    handle: Option<JoinHandle<()>>,
}

struct State {
    device: Device,
    model: Option<Model>,
    image: Option<DynamicImage>,
}

impl Engine {
    /// Starts the engine thread on `device`.
    pub fn spawn(device: Device) -> Engine {
        let (tx, req_rx) = channel::<(u64, Request)>();
        let (resp_tx, rx) = channel::<Response>();
        let newest = Arc::new(Mutex::new(HashMap::new()));
        let cancelled = Arc::new(Mutex::new(Vec::new()));
        let (n, c) = (newest.clone(), cancelled.clone());
        let handle = std::thread::Builder::new()
            .name("glassbox-engine".into())
            .spawn(move || {
                let mut state = State {
                    device,
                    model: None,
                    image: None,
                };
                for (id, req) in req_rx {
                    let kind = req.kind();
                    let stale = || {
                        n.lock()
                            .map(|m| m.get(&kind).copied().unwrap_or(id) != id)
                            .unwrap_or(false)
                            || c.lock().map(|v| v.contains(&id)).unwrap_or(false)
                    };
                    if stale() {
                        let _ = resp_tx.send(Response::Cancelled { id });
                        continue;
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
            handle: Some(handle),
        }
    }

    /// Queues a request; returns its id. It supersedes older requests of its kind.
    pub fn send(&self, req: Request) -> u64 {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.newest.lock() {
            m.insert(req.kind(), id);
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

    /// Waits for the next response (for tests and the command line).
    pub fn recv_timeout(&self, d: std::time::Duration) -> Option<Response> {
        self.rx.recv_timeout(d).ok()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn handle(state: &mut State, id: u64, req: Request, out: &Sender<Response>, stale: &dyn Fn() -> bool) -> Response {
    let failed = |e: &dyn std::fmt::Display| Response::Failed {
        id,
        message: e.to_string(),
    };
    match req {
        Request::OpenModel { model, arch } => match Model::open(&model, arch, state.device) {
            Ok(m) => {
                let info = ModelInfo {
                    source: m.source.clone(),
                    arch: m.spec.arch.to_string(),
                    classes: m.spec.classes,
                    parameters: m.parameter_count(),
                    layers: m.layers(),
                    labels: m.labels.clone(),
                    device: format!("{:?}", m.device()),
                };
                state.model = Some(m);
                Response::ModelOpened { id, info }
            }
            Err(e) => failed(&e),
        },
        Request::SetImage { path } => match super::preprocess::load_image(&path) {
            Ok(img) => {
                let view = match &state.model {
                    Some(m) => m.preprocess.view(&img),
                    None => img.clone(),
                };
                state.image = Some(img);
                Response::ImageSet { id, view }
            }
            Err(e) => failed(&e),
        },
        Request::Predict { top } => {
            let (Some(m), Some(img)) = (&state.model, &state.image) else {
                return failed(&"open a model and an image first");
            };
            let x = m.preprocess.prepare(img).tensor;
            let logits = m.logits(&x);
            Response::Prediction {
                id,
                top: m.top_k(&logits, top).remove(0),
            }
        }
        Request::Explain { method, params } => {
            let (Some(m), Some(img)) = (&state.model, &state.image) else {
                return failed(&"open a model and an image first");
            };
            let prepared = m.preprocess.prepare(img);
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
            match explain::explain(m, &prepared.tensor, method, &params, &mut progress) {
                Ok(e) => match attribution_map(&e.attribution, method, size, size) {
                    Ok(map) => Response::Explained {
                        id,
                        method,
                        target: e.target,
                        layer: e.layer,
                        map,
                        completeness_error: e.completeness_error,
                    },
                    Err(err) => failed(&err),
                },
                Err(_) if stale() => Response::Cancelled { id },
                Err(e) => failed(&e),
            }
        }
    }
}
