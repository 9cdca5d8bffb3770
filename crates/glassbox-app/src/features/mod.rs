//! The window's features, one module each: its commands, how it follows the engine's
//! answers to its requests, and what it stops on Esc (`crate::feature::Feature`). Its slice
//! of the state is in `state/` and its panel in `panels/`. Adding a feature: a module
//! here, its entry in [`ALL`], its panel in the layout.

mod channel;
mod compare;
mod draw;
mod edits;
mod explanations;
mod input;
mod lessons;
mod neuron;
mod presentation;
mod retrain;
mod score;
mod unfold;
mod unsaved;

use std::time::Duration;

use crate::command::Command;
use crate::feature::Feature;
use crate::{GlassboxApp, Picked};
use glassbox_engine::worker::{Request, Response};

/// Every feature, in the order they are offered a command or an answer.
const ALL: [&dyn Feature; 13] = [
    &input::Files,
    &unsaved::Unsaved,
    &explanations::Explanations,
    &score::Score,
    &channel::Channel,
    &unfold::Unfold,
    &edits::Edits,
    &compare::Compare,
    &retrain::Retrain,
    &neuron::Neuron,
    &lessons::Lessons,
    &draw::Draw,
    &presentation::Presentation,
];

/// While the engine works, how often the window checks that it is still alive (its answers
/// wake the window at once; a thread that died sends none).
const ENGINE_LOOK: Duration = Duration::from_millis(100);

impl GlassboxApp {
    /// Applies one command: the feature it belongs to takes it; Esc's cancel-all goes to
    /// every feature.
    pub fn apply(&mut self, cmd: Command) {
        if let Command::CancelAll = cmd {
            for f in ALL {
                f.cancel(self);
            }
            return;
        }
        let mut left = Some(cmd);
        for f in ALL {
            if let Some(cmd) = left.take() {
                left = f.apply(self, cmd);
            }
        }
        if let Some(cmd) = left {
            self.state
                .errors
                .push(format!("no part of the app takes the command {cmd:?}"));
        }
    }

    /// Sends a request to the engine; a newer request of the same kind supersedes the
    /// older one. Returns its id.
    pub(crate) fn send(&mut self, req: Request) -> u64 {
        let kind = req.kind();
        let copy = self.timings.then(|| req.clone());
        let id = self.engine.send(req);
        if let Some(req) = copy {
            self.sent.insert(id, req);
            self.sent_count += 1;
        }
        self.pending.retain(|_, k| *k != kind);
        self.pending.insert(id, kind);
        id
    }

    /// Cancels request `id` and forgets it: its answer, if one still comes, is dropped.
    pub(crate) fn abandon(&mut self, id: u64) {
        self.engine.cancel(id);
        self.pending.remove(&id);
    }

    /// Receives engine responses and the results of dialogs; notices a lost engine.
    pub fn poll(&mut self) {
        while let Some(r) = self.engine.try_recv() {
            self.respond(r);
        }
        if !self.state.engine_lost && !self.engine.alive() {
            // Nothing pending can finish now: say so instead of "working" forever.
            self.state.engine_lost = true;
            self.pending.clear();
            self.cancel_slot_work();
            self.state.errors.push(
                "the engine stopped unexpectedly; what is on screen stays. Restart it to go on (your model and image are opened again)"
                    .into(),
            );
        }
        while let Ok(p) = self.picked_rx.try_recv() {
            match p {
                Picked::Command(c) => self.apply(c),
                Picked::Error(e) => self.state.errors.push(e),
            }
        }
        if self.lesson_deferred.is_some() {
            self.lesson_deferred_now();
        }
        self.update_slot_textures();
        if self.busy() {
            // Answers wake the window by themselves (the engine's waker); this only notices
            // an engine that stopped without answering.
            self.ctx.request_repaint_after(ENGINE_LOOK);
        }
    }

    /// One engine response, to the feature whose request it answers (a stale one, of a
    /// request superseded or cancelled, is dropped); a failure no feature takes goes to
    /// the error bar.
    fn respond(&mut self, r: Response) {
        let id = r.id();
        let job = if r.is_final() {
            let job = self.pending.remove(&id);
            if let Some(req) = self.sent.remove(&id) {
                if job.is_some() && !matches!(r, Response::Failed { .. } | Response::Cancelled { .. }) {
                    self.answered.push(req);
                }
            }
            job
        } else {
            self.pending.get(&id).copied()
        };
        let Some(job) = job else {
            return; // superseded or cancelled: its result is stale
        };
        let mut left = Some(r);
        for f in ALL {
            if let Some(r) = left.take() {
                left = f.respond(self, job, r);
            }
        }
        if let Some(Response::Failed { message, .. }) = left {
            self.state.errors.push(message);
        }
        if self.all_views_after.is_none() && self.state.views_ready() {
            self.all_views_after = self.image_requested.map(|t| t.elapsed());
        }
    }
}
