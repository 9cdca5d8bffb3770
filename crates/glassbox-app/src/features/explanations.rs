//! The explanations: up to four maps side by side, each a method with its parameters, for
//! one target class and CAM layer; their progress, partial maps, faithfulness curves and
//! sanity checks. A new image is analysed in one pass for the methods that share a backward.

use crate::command::Command;
use crate::feature::Feature;
use crate::state::MAX_SLOTS;
use crate::textures::Which;
use crate::GlassboxApp;
use glassbox_engine::explain::{shares_backward, Method, Params};
use glassbox_engine::render;
use glassbox_engine::worker::{Explained, Request, RequestKind};
use glassbox_engine::worker::{Kind, Response};

/// The explanation slots.
pub(crate) struct Explanations;

impl Feature for Explanations {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::SetTarget(index) => {
                if app.state.target != index {
                    app.state.target = index;
                    app.analyze_all(false);
                }
            }
            Command::SetCamLayer(layer) => {
                app.state.settings.cam_layer = layer;
                app.analyze_all(false);
            }
            Command::AddSlot(method) => {
                if app.state.slots.len() < MAX_SLOTS {
                    let id = app.state.push_slot(method);
                    app.remember_methods();
                    app.run_slot(id, false);
                }
            }
            Command::RemoveSlot(id) => {
                if app.state.slots.len() > 1 {
                    app.cancel_slot(id);
                    app.state.slots.retain(|s| s.id != id);
                    app.tex.remove(Which::Slot(id));
                    app.remember_methods();
                }
            }
            Command::SetMethod(id, method) => {
                if let Some(s) = app.state.slot_mut(id) {
                    s.method = method;
                    s.result = None;
                    s.partial = None;
                    s.overlay_dirty = true;
                }
                app.remember_methods();
                app.run_slot(id, false);
            }
            Command::SetSlotParams { id, params, run } => {
                if let Some(s) = app.state.slot_mut(id) {
                    s.params = params;
                }
                if run {
                    app.run_slot(id, false);
                }
            }
            Command::SanitySlot(id) => app.run_slot(id, true),
            Command::CancelSlot(id) => app.cancel_slot(id),
            Command::SetColormap(c) => {
                app.state.settings.colormap = c;
                app.state.slots.iter_mut().for_each(|s| s.overlay_dirty = true);
            }
            Command::SetOpacity(o) => {
                app.state.settings.opacity = o.clamp(0.0, 1.0);
                app.state.slots.iter_mut().for_each(|s| s.overlay_dirty = true);
            }
            other => return Some(other),
        }
        None
    }

    fn respond(&self, app: &mut GlassboxApp, job: Kind, r: Response) -> Option<Response> {
        match r {
            Response::Analyzed {
                top,
                original_top,
                target,
                channels,
                original_channels,
                maps,
                ..
            } => {
                app.state.top = top;
                app.state.original_top = original_top;
                app.state.original_channels = original_channels;
                app.state.explained_target = Some(target);
                match channels {
                    Some(Ok(ch)) => app.set_channels(ch),
                    Some(Err(e)) => app.state.errors.push(e),
                    None => {}
                }
                for m in maps {
                    match m {
                        Ok(e) => {
                            let ids: Vec<usize> = app
                                .state
                                .slots
                                .iter()
                                .filter(|s| s.method == e.method)
                                .map(|s| s.id)
                                .collect();
                            for id in ids {
                                app.slot_done(id, e.clone());
                            }
                        }
                        Err(msg) => {
                            for s in app.state.slots.iter_mut().filter(|s| shares_backward(s.method)) {
                                s.error = Some(msg.clone());
                            }
                        }
                    }
                }
            }
            Response::Explained { slot, result, .. } => {
                app.state.explained_target = Some(result.target);
                app.slot_done(slot, result);
            }
            Response::Faithfulness {
                slot,
                deletion,
                insertion,
                ..
            } => {
                if let Some(s) = app.state.slot_mut(slot) {
                    s.faith = Some((deletion, insertion));
                }
            }
            Response::Sanity { slot, result, .. } => {
                // The maps side by side: the trained model's, then each randomisation.
                if let (Some(input), Some(sl)) = (&app.state.input, app.state.slot(slot)) {
                    let cmap = app.state.colormap_for(sl.method);
                    let maps = result
                        .original
                        .iter()
                        .chain(result.steps.iter().filter_map(|s| s.map.as_ref()));
                    for (k, m) in maps.enumerate() {
                        let pic = render::overlay(
                            &input.view,
                            m,
                            cmap,
                            app.state.settings.opacity as f64,
                            glassbox_engine::defaults::OVERLAY_CLIP,
                            sl.method.is_cam(),
                        );
                        app.tex.set(&app.ctx, Which::Sanity(slot, k), &pic);
                    }
                }
                if let Some(s) = app.state.slot_mut(slot) {
                    s.sanity = Some(result);
                    s.sanity_running = None;
                    s.progress = None;
                }
            }
            Response::Progress {
                done, total, partial, ..
            } if matches!(job.request, RequestKind::Explain | RequestKind::Sanity) => {
                if let Some(s) = job.slot.and_then(|sid| app.state.slot_mut(sid)) {
                    s.progress = Some((done, total));
                    if let Some(p) = partial {
                        s.partial = Some(p);
                        s.overlay_dirty = true;
                    }
                }
            }
            Response::Cancelled { .. } if matches!(job.request, RequestKind::Explain | RequestKind::Sanity) => {
                if let Some(s) = job.slot.and_then(|sid| app.state.slot_mut(sid)) {
                    s.running = None;
                    s.sanity_running = None;
                    s.progress = None;
                }
            }
            Response::Failed { message, .. }
                if matches!(
                    job.request,
                    RequestKind::Explain | RequestKind::Sanity | RequestKind::Faithfulness
                ) =>
            {
                if let Some(s) = job.slot.and_then(|sid| app.state.slot_mut(sid)) {
                    s.error = Some(message);
                    s.running = None;
                    s.sanity_running = None;
                    s.progress = None;
                }
            }
            other => return Some(other),
        }
        None
    }

    fn cancel(&self, app: &mut GlassboxApp) {
        app.cancel_slot_work();
    }
}

impl GlassboxApp {
    pub(crate) fn base_params(&self) -> Params {
        Params {
            target: self.state.target,
            layer: self.state.settings.cam_layer.clone(),
            ..Params::default()
        }
    }

    pub(crate) fn cancel_slot_work(&mut self) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, j)| {
                matches!(
                    j.request,
                    RequestKind::Explain | RequestKind::Faithfulness | RequestKind::Sanity
                )
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.abandon(id);
        }
        for s in &mut self.state.slots {
            s.running = None;
            s.progress = None;
            s.sanity_running = None;
        }
    }

    pub(crate) fn cancel_slot(&mut self, id: usize) {
        if let Some(s) = self.state.slot_mut(id) {
            let ids: Vec<u64> = [s.running.take(), s.sanity_running.take()]
                .into_iter()
                .flatten()
                .collect();
            s.progress = None;
            for rid in ids {
                self.engine.cancel(rid);
            }
        }
    }

    /// Everything for the current image: one pass for the prediction, the activation grid
    /// and the methods that share a backward; a request of its own for each other method.
    pub(crate) fn analyze_all(&mut self, with_activations: bool) {
        // While another model opens, its arrival analyses everything again; a request now
        // would name layers of the model that is going away.
        if self.state.model.is_none() || self.state.input.is_none() || self.model_on_its_way() {
            return;
        }
        self.cancel_slot_work();
        // The scoreboard was of the image, model and edits before.
        self.cancel_scores();
        self.state.scores = Default::default();
        let mut shared: Vec<Method> = Vec::new();
        for s in &mut self.state.slots {
            s.faith = None;
            s.sanity = None;
            s.error = None;
            if shares_backward(s.method) && !shared.contains(&s.method) {
                shared.push(s.method);
            }
        }
        let layer = if with_activations {
            self.state.settings.layer.clone()
        } else {
            None
        };
        let req = Request::Analyze {
            top: self.state.settings.top_k,
            layer,
            methods: shared,
            params: self.base_params(),
        };
        self.send(req);
        self.refresh_compare();
        let ids: Vec<usize> = self
            .state
            .slots
            .iter()
            .filter(|s| !shares_backward(s.method))
            .map(|s| s.id)
            .collect();
        for id in ids {
            self.run_slot(id, false);
        }
    }

    /// (Re)computes one slot's map, or runs its sanity check.
    /// A model is opening: what is on screen belongs to the one going away.
    pub(crate) fn model_on_its_way(&self) -> bool {
        self.pending.values().any(|j| j.request == RequestKind::OpenModel)
    }

    pub(crate) fn run_slot(&mut self, id: usize, sanity: bool) {
        if self.model_on_its_way() {
            return;
        }
        let Some(slot) = self.state.slot(id) else {
            return;
        };
        if self.state.input.is_none() || self.state.model.is_none() {
            return;
        }
        let base = self.base_params();
        let params = Params {
            target: base.target,
            layer: base.layer,
            ..slot.params.clone()
        };
        let method = slot.method;
        let req = if sanity {
            Request::Sanity {
                slot: id,
                method,
                params,
            }
        } else {
            Request::Explain {
                slot: id,
                method,
                params,
            }
        };
        let rid = self.send(req);
        if let Some(s) = self.state.slot_mut(id) {
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

    pub(crate) fn remember_methods(&mut self) {
        self.state.settings.methods = self.state.slots.iter().map(|s| s.method.name().to_string()).collect();
    }

    pub(crate) fn update_slot_textures(&mut self) {
        let dirty: Vec<usize> = self
            .state
            .slots
            .iter()
            .filter(|s| s.overlay_dirty)
            .map(|s| s.id)
            .collect();
        for id in dirty {
            let pic = self.state.slot(id).and_then(|s| self.state.slot_picture(s));
            match pic {
                Some(p) => self.tex.set(&self.ctx, Which::Slot(id), &p),
                None => self.tex.clear(Which::Slot(id)),
            }
            if let Some(s) = self.state.slot_mut(id) {
                s.overlay_dirty = false;
            }
        }
    }

    pub(crate) fn slot_done(&mut self, id: usize, e: Explained) {
        let target = e.target;
        let map = e.map.clone();
        let Some(s) = self.state.slot_mut(id) else { return };
        s.result = Some(e);
        s.partial = None;
        s.progress = None;
        s.running = None;
        s.error = None;
        s.overlay_dirty = true;
        self.send(Request::Faithfulness { slot: id, target, map });
    }
}
