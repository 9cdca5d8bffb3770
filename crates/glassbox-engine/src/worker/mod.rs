//! The engine on its own thread. It owns every tensor; callers (the UI, tests) send
//! requests and receive plain data back. A newer request of the same kind supersedes an
//! older one still running (it is cancelled at its next progress report), and any request
//! can be cancelled by its id.
//!
//! The thread holds one [`Session`] (the model, the image, the edits...) and runs each
//! request as one call to it. `protocol.rs`: the requests and responses; `outbox.rs`: where
//! the answers go; `handlers.rs`: each request to its session call.

mod handlers;
mod outbox;
mod protocol;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use protocol::{
    CellImage, EditRequest, EvalSet, ExampleImage, Explained, Fault, ImageSource, Kind, ModelInfo, Request,
    RequestKind, Response, TrainKind, TrainRequest,
};

use super::error::Error;
use super::guard;
use super::Device;
use crate::session::Session;
use handlers::Ctx;
use outbox::Outbox;
pub use outbox::Waker;

pub struct Engine {
    tx: Option<Sender<(u64, Request)>>,
    rx: Receiver<Response>,
    next: AtomicU64,
    /// Per request kind: the newest id; older ones of that kind stop.
    newest: Arc<Mutex<HashMap<Kind, u64>>>,
    /// Ids cancelled explicitly.
    cancelled: Arc<Mutex<Vec<u64>>>,
    /// Set when the engine is dropped: the running request stops at its next report.
    shutdown: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the engine thread on `device`.
    pub fn spawn(device: Device) -> Engine {
        Engine::spawn_waking(device, None)
    }

    /// The same, calling `wake` after each answer (and progress report) it sends.
    pub fn spawn_waking(device: Device, wake: Option<Waker>) -> Engine {
        let (tx, req_rx) = channel::<(u64, Request)>();
        let (resp_tx, rx) = channel::<Response>();
        let resp_tx = Outbox { tx: resp_tx, wake };
        let newest = Arc::new(Mutex::new(HashMap::new()));
        let cancelled = Arc::new(Mutex::new(Vec::new()));
        let shutdown = Arc::new(AtomicBool::new(false));
        let (n, c, down) = (newest.clone(), cancelled.clone(), shutdown.clone());
        let handle = std::thread::Builder::new()
            .name("glassbox-engine".into())
            .stack_size(ENGINE_STACK)
            .spawn(move || {
                let mut session = Session::new(device);
                for (id, req) in req_rx {
                    let kind = req.kind();
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
                    let resp = handle(&mut session, id, req, &resp_tx, &stale);
                    if !resp_tx.send(resp) {
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
        if req.supersedable() {
            if let Ok(mut m) = self.newest.lock() {
                m.insert(req.kind(), id);
            }
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

    /// Sends a request and waits for its final answer, at most `limit` for each message
    /// (for benchmarks): a failed request is an error.
    pub fn call(&self, req: Request, limit: std::time::Duration) -> super::error::Result<Response> {
        let id = self.send(req);
        loop {
            let r = self
                .recv_timeout(limit)
                .ok_or_else(|| super::error::Error::invalid("the engine did not answer in time"))?;
            if r.id() == id && r.is_final() {
                return match r {
                    Response::Failed { message, .. } => Err(super::error::Error::invalid(message)),
                    r => Ok(r),
                };
            }
        }
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

/// The engine's request handlers called in the caller's own thread: no worker thread, no
/// channel to the app, no guard. `glassbox-bench` measures the app against it: the same
/// requests, run here one after the other, are the bound the app's path cannot beat.
pub struct Direct {
    session: Session,
    out: Outbox,
    reports: Receiver<Response>,
}

impl Direct {
    pub fn new(device: Device) -> Direct {
        let (tx, reports) = channel();
        Direct {
            session: Session::new(device),
            out: Outbox { tx, wake: None },
            reports,
        }
    }

    /// Runs one request to its end; progress reports are dropped.
    pub fn run(&mut self, req: Request) -> super::error::Result<Response> {
        let cx = Ctx {
            id: 0,
            out: &self.out,
            stale: &|| false,
        };
        let r = handlers::run(&mut self.session, req, &cx);
        while self.reports.try_recv().is_ok() {}
        r
    }
}

/// The engine thread's stack: libtorch and deep networks recurse more than Rust's default
/// 2 MiB for spawned threads allows comfortably.
const ENGINE_STACK: usize = 32 << 20;

/// Runs one request under the guard: a libtorch error or a panic comes back as Failed,
/// naming the request, and the engine keeps the model and image it had (requests change
/// the state only once they have succeeded).
fn handle(session: &mut Session, id: u64, req: Request, out: &Outbox, stale: &dyn Fn() -> bool) -> Response {
    let what = req.describe();
    let cx = Ctx { id, out, stale };
    match guard::catch(&what, || handlers::run(session, req, &cx)) {
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
