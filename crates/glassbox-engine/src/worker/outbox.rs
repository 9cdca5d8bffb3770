//! Where the engine thread's answers go.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use super::protocol::Response;

/// Called on the engine thread after each answer it sends: the app's wake-up (egui's
/// `request_repaint`, which is how eframe learns to draw a frame now), so that an answer is
/// shown at once instead of at the next timed repaint.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Where the engine's answers go: the channel, then the wake-up, if any.
#[derive(Clone)]
pub(super) struct Outbox {
    pub(super) tx: Sender<Response>,
    pub(super) wake: Option<Waker>,
}

impl Outbox {
    /// False when nobody listens any more (the engine was dropped).
    pub(super) fn send(&self, r: Response) -> bool {
        let sent = self.tx.send(r).is_ok();
        if let Some(w) = &self.wake {
            w();
        }
        sent
    }
}
