//! The one place that changes the app's state: commands (from panels, shortcuts, dropped
//! files, dialogs, tests) and engine responses. Requests go to the engine from here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::command::{Command, DialogKind, DrawCommand, ExamplesCommand, LessonCommand, TrainCommand, View};
use super::state::{ChannelDetail, Field, Input, Settings, MAX_SLOTS};
use super::textures::Which;
use super::{GlassboxApp, Picked};
use glassbox_engine::arch::Arch;
use glassbox_engine::explain::{shares_backward, Method, Params};
use glassbox_engine::inspect::Channels;
use glassbox_engine::model::ModelSource;
use glassbox_engine::render::{self, Colormap};
use glassbox_engine::worker::{
    EditRequest, Engine, EvalSet, Explained, ImageSource, ModelInfo, Request, RequestKind, Response, TrainKind,
    TrainRequest,
};

/// While the engine works, how often the window checks that it is still alive (its answers
/// wake the window at once; a thread that died sends none).
const ENGINE_LOOK: Duration = Duration::from_millis(100);

impl GlassboxApp {
    /// Applies one command.
    pub fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::SetImage(source) => {
                self.set_image(source);
            }
            Command::OpenPath(path) => self.open_path(path),
            Command::OpenModel(model, arch) => self.open_model(model, arch),
            Command::Answer(a) => self.answer(a),
            Command::SetTarget(index) => {
                if self.state.target != index {
                    self.state.target = index;
                    self.analyze_all(false);
                }
            }
            Command::SetLayer(layer) => self.set_layer(layer),
            Command::SetCamLayer(layer) => {
                self.state.settings.cam_layer = layer;
                self.analyze_all(false);
            }
            Command::SetFilterConv(conv) => self.set_filter_conv(conv),
            Command::SetPerInput(on) => {
                self.state.settings.per_input = on;
                if let Some(conv) = self.state.settings.filter_conv.clone() {
                    self.set_filter_conv(conv);
                }
            }
            Command::SetShowChange(on) => {
                self.state.show_change = on;
                self.redraw_grid();
            }
            Command::SetSharedScale(on) => {
                self.state.settings.shared_scale = on;
                self.redraw_grid();
            }
            Command::EditFilter { conv, out } => {
                self.state.want_channel = Some(out);
                self.set_layer(conv);
            }
            Command::SelectChannel { channel, at } => self.select_channel(channel, at),
            Command::RequestField { layer, channel, y, x } => {
                // The value there, computed in the open, beside its receptive field.
                if let Some(c) = channel {
                    self.send(Request::Unfold {
                        layer: layer.clone(),
                        channel: c,
                        y,
                        x,
                    });
                }
                self.send(Request::ReceptiveField { layer, channel, y, x });
            }
            Command::HideField => {
                self.state.field = None;
                self.state.unfolded = None;
                self.state.unfold_error = None;
            }
            Command::AddSlot(method) => {
                if self.state.slots.len() < MAX_SLOTS {
                    let id = self.state.push_slot(method);
                    self.remember_methods();
                    self.run_slot(id, false);
                }
            }
            Command::RemoveSlot(id) => {
                if self.state.slots.len() > 1 {
                    self.cancel_slot(id);
                    self.state.slots.retain(|s| s.id != id);
                    self.tex.remove(Which::Slot(id));
                    self.remember_methods();
                }
            }
            Command::SetMethod(id, method) => {
                if let Some(s) = self.state.slot_mut(id) {
                    s.method = method;
                    s.result = None;
                    s.partial = None;
                    s.overlay_dirty = true;
                }
                self.remember_methods();
                self.run_slot(id, false);
            }
            Command::SetSlotParams { id, params, run } => {
                if let Some(s) = self.state.slot_mut(id) {
                    s.params = params;
                }
                if run {
                    self.run_slot(id, false);
                }
            }
            Command::SanitySlot(id) => self.run_slot(id, true),
            Command::CancelSlot(id) => self.cancel_slot(id),
            Command::CancelAll => {
                self.cancel_slot_work();
                self.train(TrainCommand::Cancel);
                for id in [self.state.examples.running.take(), self.state.visual.running.take()]
                    .into_iter()
                    .flatten()
                {
                    self.engine.cancel(id);
                    self.pending.remove(&id);
                }
                self.state.examples.progress = None;
                self.state.visual.progress = None;
            }
            Command::SetColormap(c) => {
                self.state.settings.colormap = c;
                self.state.slots.iter_mut().for_each(|s| s.overlay_dirty = true);
            }
            Command::SetOpacity(o) => {
                self.state.settings.opacity = o.clamp(0.0, 1.0);
                self.state.slots.iter_mut().for_each(|s| s.overlay_dirty = true);
            }
            Command::RememberOpen(view, open) => {
                let s = &mut self.state.settings;
                match view {
                    View::Activations => s.show_activations = open,
                    View::Filters => s.show_filters = open,
                    View::Model => s.show_model = open,
                    View::Train => s.show_train = open,
                }
            }
            Command::Dialog(kind) => self.dialog(kind),
            Command::Paste => self.paste(),
            Command::Export(what, path) => {
                if let Err(e) = self.state.export(what, &path) {
                    self.state.errors.push(format!("{e:#}"));
                }
            }
            Command::DismissErrors => self.state.errors.clear(),
            Command::ToggleHelp => self.state.show_help = !self.state.show_help,
            Command::RestartEngine => self.restart_engine(),
            Command::Edit(e) => {
                self.send(Request::Edit(e));
            }
            Command::InjectFault(fault) => {
                self.send(Request::InjectFault(fault));
            }
            Command::Train(t) => self.train(t),
            Command::ExplainThis(t) => self.state.explain_this = t,
            Command::Present(on) => {
                self.state.present = on;
                if !on {
                    self.state.focus = None;
                }
            }
            Command::Focus(f) => self.state.focus = f,
            Command::Lesson(l) => self.lesson(l),
            Command::VisualSeed(seed) => self.state.visual.seed = seed,
            Command::Visualize { goal, seed } => {
                let settings = glassbox_engine::visualize::Settings {
                    seed,
                    ..Default::default()
                };
                let id = self.send(Request::Visualize { goal, settings });
                self.state.visual.seed = seed;
                self.state.visual.running = Some(id);
                self.state.visual.progress = None;
            }
            Command::Examples(e) => match e {
                ExamplesCommand::Source(src) => self.state.examples.source = Some(src),
                ExamplesCommand::PerClass(n) => self.state.examples.per_class = n.max(1),
                ExamplesCommand::Find => {
                    let (Some(src), Some(ch), Some(d)) = (
                        self.state.examples.source.clone(),
                        &self.state.channels,
                        &self.state.channel,
                    ) else {
                        self.state
                            .errors
                            .push("pick a channel and the images to search (a folder or a data set) first".into());
                        return;
                    };
                    let req = Request::Examples {
                        source: src,
                        per_class: self.state.examples.per_class,
                        layer: ch.layer.clone(),
                        channel: d.channel,
                    };
                    let id = self.send(req);
                    self.state.examples.running = Some(id);
                    self.state.examples.progress = None;
                }
            },
            Command::Draw(d) => {
                let c = &mut self.state.canvas;
                match d {
                    DrawCommand::Stroke { from, to } => c.stroke(from, to),
                    DrawCommand::Brush(r) => {
                        c.brush = r.clamp(0.3, 4.0);
                        return;
                    }
                    DrawCommand::Erase(on) => {
                        c.erase = on;
                        return;
                    }
                    DrawCommand::Clear => c.pixels.iter_mut().for_each(|v| *v = 0.0),
                }
                // The drawing is the input: every view follows it. A drawing is always a
                // valid image, so its analysis goes to the engine with it (the engine takes
                // requests in order) instead of after the image comes back: one round trip
                // per stroke, not two.
                let img = self.state.canvas.image();
                let id = self.set_image(img);
                if self.state.model.is_some() && self.state.input.is_some() && !self.model_on_its_way() {
                    self.state.target = None;
                    self.analyze_all(true);
                    self.analysed_ahead = Some(id);
                }
            }
        }
    }

    /// Retraining commands: the run goes to the engine; pause and the learning rate go
    /// through the run's shared controls.
    fn train(&mut self, t: TrainCommand) {
        let tr = &mut self.state.training;
        match t {
            TrainCommand::Form(f) => tr.form = f,
            TrainCommand::Data(d) => tr.form.source = Some(d),
            TrainCommand::Start => {
                if tr.running.is_some() {
                    return;
                }
                let Some(source) = tr.form.source.clone() else {
                    self.state
                        .errors
                        .push("pick the data to train on first: a folder of labelled images or a data set".into());
                    return;
                };
                let config = match tr.form.config() {
                    Ok(c) => c,
                    Err(e) => {
                        self.state.errors.push(format!("training not started: {e}"));
                        return;
                    }
                };
                let control = std::sync::Arc::new(glassbox_engine::finetune::Control::default());
                tr.control = Some(control.clone());
                tr.paused = false;
                tr.plan = None;
                tr.epochs.clear();
                tr.losses.clear();
                tr.step = None;
                tr.features = None;
                tr.note = None;
                tr.cell = None;
                tr.new_lr = tr.form.lr.clone();
                let id = self.send(Request::Train(TrainRequest::Start {
                    source,
                    config,
                    control,
                }));
                self.state.training.running = Some(id);
            }
            TrainCommand::Pause(on) => {
                if let Some(c) = &tr.control {
                    c.pause(on);
                    tr.paused = on;
                }
            }
            TrainCommand::SetLr(text) => {
                tr.new_lr = text.clone();
                let set = text
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("the learning rate `{text}` is not a number"))
                    .and_then(|lr| match &tr.control {
                        Some(c) if tr.running.is_some() => c.set_lr(lr).map_err(|e| e.to_string()),
                        _ => Err("no training is running".into()),
                    });
                if let Err(e) = set {
                    self.state.errors.push(e);
                }
            }
            TrainCommand::Cancel => {
                if let Some(id) = tr.running {
                    self.engine.cancel(id);
                    if let Some(c) = &tr.control {
                        c.pause(false);
                    }
                }
            }
            TrainCommand::Scrub(n) => {
                tr.point = n;
                self.send(Request::Train(TrainRequest::Scrub(n)));
            }
            TrainCommand::Cell { truth, predicted } => {
                self.send(Request::Train(TrainRequest::Cell { truth, predicted }));
            }
            TrainCommand::Accept => {
                self.send(Request::Train(TrainRequest::Accept));
            }
            TrainCommand::Discard => {
                self.send(Request::Train(TrainRequest::Discard));
            }
        }
    }

    /// Lessons: open, go to a step (its model, image, methods, view and settings), again,
    /// answer, close.
    fn lesson(&mut self, c: LessonCommand) {
        let opened = match c {
            LessonCommand::OpenBuiltin(name) => glassbox_engine::lesson::Lesson::builtin(&name),
            LessonCommand::OpenFile(path) => glassbox_engine::lesson::Lesson::read(&path),
            LessonCommand::Go(n) => {
                if let Some(run) = self.state.lesson.as_mut() {
                    run.step = n.min(run.lesson.steps.len() - 1);
                    run.answer_shown = false;
                    self.lesson_step();
                }
                return;
            }
            LessonCommand::Again => {
                self.lesson_step();
                return;
            }
            LessonCommand::Answer => {
                if let Some(run) = self.state.lesson.as_mut() {
                    run.answer_shown = true;
                }
                return;
            }
            LessonCommand::Close => {
                self.state.lesson = None;
                self.state.focus = None;
                self.lesson_deferred = None;
                return;
            }
        };
        match opened {
            Ok(lesson) => {
                self.state.lesson = Some(super::state::LessonRun {
                    lesson,
                    step: 0,
                    answer_shown: false,
                    model: None,
                });
                self.lesson_step();
            }
            Err(e) => self.state.errors.push(format!("{e:#}")),
        }
    }

    /// Puts the current lesson step in place: the model and image it names (opened if they
    /// differ, unless the lesson's own training changed that model: see `LessonModel`), its
    /// methods, its view alone, the Retrain settings; its layer, filter and target once the
    /// model and image are there.
    fn lesson_step(&mut self) {
        let Some(run) = &self.state.lesson else { return };
        let l = run.lesson.clone();
        let k = run.step;
        let step = l.steps[k].clone();
        let placed = run.model.clone();
        if let Some(name) = l.model_at(k) {
            let src = if glassbox_engine::model::BUILTINS.contains(&name.as_str()) {
                ModelSource::Builtin(name)
            } else {
                ModelSource::File(l.path(&name))
            };
            let current = self.state.settings.model.clone();
            let changed_here = placed.is_some_and(|m| m.named == src && m.now == current);
            let now = if current == src || changed_here {
                current
            } else {
                self.open_model(src.clone(), None);
                src.clone()
            };
            if let Some(run) = self.state.lesson.as_mut() {
                run.model = Some(super::state::LessonModel { named: src, now });
            }
        }
        if let Some(img) = &step.image {
            let source = match img.strip_prefix("sample:") {
                Some(name) => super::SAMPLES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(n, b)| ImageSource::Bytes {
                        name: n.to_string(),
                        bytes: b.to_vec(),
                    }),
                None => Some(ImageSource::File(l.path(img))),
            };
            if let Some(src) = source {
                self.set_image(src);
            }
        }
        if let Some(methods) = &step.methods {
            let want: Vec<Method> = methods.iter().filter_map(|m| m.parse().ok()).collect();
            let ids: Vec<usize> = self.state.slots.iter().map(|s| s.id).collect();
            for (i, m) in want.iter().enumerate() {
                match ids.get(i) {
                    Some(id) if self.state.slot(*id).is_some_and(|s| s.method == *m) => {}
                    Some(id) => self.apply(Command::SetMethod(*id, *m)),
                    None => self.apply(Command::AddSlot(*m)),
                }
            }
            for id in ids.iter().skip(want.len().max(1)) {
                self.apply(Command::RemoveSlot(*id));
            }
        }
        self.state.focus = step.view.as_deref().and_then(super::state::Focus::from_name);
        if let Some(t) = &step.train {
            use super::state::TrainMode;
            let mut f = self.state.training.form.clone();
            f.source = Some(match t.data.strip_prefix("dataset:") {
                Some(d) => glassbox_engine::finetune::DataSource::Dataset(
                    d.parse().unwrap_or(glassbox_engine::data::DatasetName::Mnist),
                ),
                None => glassbox_engine::finetune::DataSource::Folder(l.path(&t.data)),
            });
            f.mode = match t.mode.as_str() {
                "add-classes" => TrainMode::AddClasses,
                "full" => TrainMode::Full,
                "scratch" => TrainMode::Scratch,
                _ => TrainMode::Head,
            };
            if let Some(e) = t.epochs {
                f.epochs = e;
            }
            if let Some(lr) = &t.lr {
                f.lr = lr.clone();
            }
            if let Some(v) = t.val_split {
                f.val_split = v;
            }
            if let Some(p) = t.per_class {
                f.per_class = p;
            }
            self.state.training.form = f;
        }
        self.lesson_deferred = Some(step);
        self.lesson_deferred_now();
    }

    /// The deferred layer, filter and target of a lesson step, once no model or image is
    /// on its way.
    pub(super) fn lesson_deferred_now(&mut self) {
        let waiting = self
            .pending
            .values()
            .any(|j| matches!(j.request, RequestKind::OpenModel | RequestKind::SetImage));
        if waiting || self.state.model.is_none() {
            return;
        }
        let Some(step) = self.lesson_deferred.take() else {
            return;
        };
        // A layer already shown stays as it is, with the channel the student chose there.
        let st = &self.state;
        let shown =
            |l: &String| st.settings.layer.as_ref() == Some(l) && st.channels.as_ref().is_some_and(|c| c.layer == *l);
        if let Some(l) = step.layer.filter(|l| !shown(l)) {
            self.set_layer(l);
        }
        if let Some(f) = step.filter {
            self.set_filter_conv(f);
        }
        if let Some(t) = step.target {
            self.apply(Command::SetTarget(Some(t)));
        }
    }

    /// Training replaced the model in place (a candidate, the kept or the discarded one): if it
    /// was the lesson's model, the lesson's model is now the new one (see `LessonModel`).
    fn lesson_model_follows(&mut self, new: &ModelSource) {
        let current = &self.state.settings.model;
        if let Some(m) = self.state.lesson.as_mut().and_then(|r| r.model.as_mut()) {
            if m.now == *current {
                m.now = new.clone();
            }
        }
    }

    /// Every view follows a model that changed in place (an edit, a timeline point).
    fn refresh_views(&mut self) {
        self.analyze_all(true);
        if let Some(conv) = self.state.settings.filter_conv.clone() {
            self.set_filter_conv(conv);
        }
        if let Some(c) = self.state.channel.as_ref().map(|d| d.channel) {
            self.select_channel(c, None);
        }
    }

    fn send(&mut self, req: Request) -> u64 {
        let kind = req.kind();
        let copy = self.timings.then(|| req.clone());
        let id = self.engine.send(req);
        if let Some(req) = copy {
            self.sent.insert(id, req);
            self.sent_count += 1;
        }
        // A newer request of the same kind supersedes the older one.
        self.pending.retain(|_, k| *k != kind);
        self.pending.insert(id, kind);
        id
    }

    /// Opens a model, by any path; asked first when something unsaved would be lost.
    fn open_model(&mut self, model: ModelSource, arch: Option<Arch>) {
        if self.ask_first(crate::unsaved::Then::Open(model.clone(), arch)) {
            return;
        }
        self.send_open_model(model, arch);
    }

    /// Opens a model without asking (the user answered, or nothing would be lost).
    pub(crate) fn send_open_model(&mut self, model: ModelSource, arch: Option<Arch>) {
        self.cancel_slot_work();
        self.send(Request::OpenModel { model, arch });
    }

    /// Sends an image to the engine; its views are analysed when it comes back (unless
    /// the caller analysed them ahead). Returns the request's id.
    fn set_image(&mut self, source: ImageSource) -> u64 {
        self.image_requested = Some(Instant::now());
        self.all_views_after = None;
        self.analysed_ahead = None;
        // Long maps of the old image would delay the new one: stop them.
        self.cancel_slot_work();
        let id = self.send(Request::SetImage { source: source.clone() });
        self.sent_source = Some(source);
        id
    }

    /// Opens a dropped or chosen file: a weights file by its extension, else an image.
    fn open_path(&mut self, path: PathBuf) {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if matches!(ext.as_str(), "safetensors" | "pth" | "pt" | "bin") {
            self.open_model(ModelSource::File(path), None);
        } else {
            self.set_image(ImageSource::File(path));
        }
    }

    /// A new engine thread, opening the model and image again (after the engine was lost).
    fn restart_engine(&mut self) {
        self.engine = Engine::spawn_waking(self.device, Some(super::waker(&self.ctx)));
        self.state.engine_lost = false;
        self.pending.clear();
        self.state.errors.clear();
        let model = self.state.settings.model.clone();
        self.send_open_model(model, None);
        if self.image_source.is_none() {
            self.image_source = self.sent_source.take();
        }
        if let Some(src) = self.image_source.clone() {
            self.set_image(src);
        }
    }

    fn base_params(&self) -> Params {
        Params {
            target: self.state.target,
            layer: self.state.settings.cam_layer.clone(),
            ..Params::default()
        }
    }

    fn cancel_slot_work(&mut self) {
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
            self.engine.cancel(id);
            self.pending.remove(&id);
        }
        for s in &mut self.state.slots {
            s.running = None;
            s.progress = None;
            s.sanity_running = None;
        }
    }

    fn cancel_slot(&mut self, id: usize) {
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
    fn analyze_all(&mut self, with_activations: bool) {
        // While another model opens, its arrival analyses everything again; a request now
        // would name layers of the model that is going away.
        if self.state.model.is_none() || self.state.input.is_none() || self.model_on_its_way() {
            return;
        }
        self.cancel_slot_work();
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
    fn model_on_its_way(&self) -> bool {
        self.pending.values().any(|j| j.request == RequestKind::OpenModel)
    }

    fn run_slot(&mut self, id: usize, sanity: bool) {
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

    fn remember_methods(&mut self) {
        self.state.settings.methods = self.state.slots.iter().map(|s| s.method.name().to_string()).collect();
    }

    /// Chooses the layer whose channels are shown; the filters follow it (the convolution
    /// that made its channels).
    fn set_layer(&mut self, layer: String) {
        let conv = self.state.model.as_ref().and_then(|m| m.producers.get(&layer).cloned());
        if let Some(c) = conv.filter(|c| self.state.settings.filter_conv.as_ref() != Some(c)) {
            self.set_filter_conv(c);
        }
        self.state.settings.layer = Some(layer.clone());
        self.state.channel = None;
        self.state.field = None;
        self.tex.clear(Which::Field);
        if self.state.input.is_some() && !self.model_on_its_way() {
            self.send(Request::Activations { layer });
        }
    }

    fn set_filter_conv(&mut self, conv: String) {
        self.state.settings.filter_conv = Some(conv.clone());
        if self.model_on_its_way() {
            return;
        }
        let per_input = self.state.settings.per_input;
        self.send(Request::Filters { conv, per_input });
    }

    /// Chooses a channel of the activation layer; with a position, also its receptive field.
    fn select_channel(&mut self, channel: usize, at: Option<(usize, usize)>) {
        let Some(ch) = &self.state.channels else { return };
        if channel >= ch.c {
            return;
        }
        let stats = ch.stats(channel);
        let layer = ch.layer.clone();
        self.state.channel = Some(ChannelDetail {
            channel,
            stats,
            kernel: None,
            kernel_values: Vec::new(),
            channel_params: Vec::new(),
            kernel_error: None,
        });
        if let Some((heat, over)) = self.state.channel_pictures() {
            self.tex.set(&self.ctx, Which::Channel, &heat);
            self.tex.set(&self.ctx, Which::ChannelOverlay, &over);
        }
        self.send(Request::ChannelKernel {
            layer: layer.clone(),
            channel,
        });
        if let Some((y, x)) = at {
            let (h, w) = ch_dims(&self.state.channels);
            self.apply(Command::RequestField {
                layer,
                channel: Some(channel),
                y: y.min(h.saturating_sub(1)),
                x: x.min(w.saturating_sub(1)),
            });
        }
    }

    fn set_channels(&mut self, ch: Channels) {
        let change = self
            .state
            .original_channels
            .as_ref()
            .filter(|_| self.state.show_change)
            .and_then(|o| ch.minus(o));
        let grid = match &change {
            Some(d) => render::channel_grid(d, true, Colormap::RedBlue),
            None => render::channel_grid(&ch, self.state.settings.shared_scale, Colormap::Viridis),
        };
        self.tex.set(&self.ctx, Which::Grid, &grid.0);
        self.state.grid = Some(grid);
        let keep = self
            .state
            .want_channel
            .take()
            .or(self.state.channel.as_ref().map(|d| d.channel))
            .filter(|c| *c < ch.c);
        let first = ch.order.first().map(|o| o.0);
        self.state.channels = Some(ch);
        if let Some(c) = keep.or(first) {
            self.select_channel(c, None);
        }
    }

    /// A new model (opened, retrained, or the one before training back): settings that
    /// name its layers checked, every view emptied, the image prepared for it again.
    fn on_model(&mut self, info: ModelInfo) {
        let names: Vec<&str> = info.layers.iter().map(|l| l.name.as_str()).collect();
        let st = &mut self.state;
        if !st.settings.layer.as_deref().is_some_and(|l| names.contains(&l)) {
            st.settings.layer = super::state::State::default_layer(&info);
        }
        if !st.settings.cam_layer.as_deref().is_some_and(|l| names.contains(&l)) {
            st.settings.cam_layer = None;
        }
        if !st.settings.filter_conv.as_ref().is_some_and(|c| info.convs.contains(c)) {
            st.settings.filter_conv = info.convs.first().cloned();
        }
        st.settings.model = info.source.clone();
        if let ModelSource::File(p) = &info.source {
            st.settings.opened_model_file(p);
        }
        st.model = Some(info);
        st.unsaved.saved_edits = None;
        st.unsaved.retrained = false;
        st.edits.clear();
        st.redoable = 0;
        st.knockouts.clear();
        st.original_top = None;
        st.evaluation = None;
        let side = st.model_side() as i64;
        for s in &mut st.slots {
            s.params = s.params.clone().with_window_for(side);
        }
        st.target = None;
        st.top.clear();
        st.channels = None;
        st.channel = None;
        st.field = None;
        st.filters = None;
        if let Some(conv) = st.settings.filter_conv.clone() {
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

    /// Redraws the activation grid (the colour-scale option changed).
    fn redraw_grid(&mut self) {
        if let Some(ch) = self.state.channels.take() {
            self.set_channels(ch);
        }
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

    fn update_slot_textures(&mut self) {
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

    /// Applies one engine response.
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
        match r {
            Response::ModelOpened { info, .. } => {
                // A model opened: any retrained candidate is gone with the one before it.
                self.state.training.result = None;
                self.state.training.cell = None;
                self.on_model(info)
            }
            Response::ImageSet {
                name, view, original, ..
            } => {
                self.tex.set(&self.ctx, Which::Input, &view.to_rgb8());
                if let Some(src) = self.sent_source.take() {
                    self.state.settings.image = match &src {
                        ImageSource::File(p) => Some(p.clone()),
                        _ => None,
                    };
                    self.image_source = Some(src);
                }
                let st = &mut self.state;
                st.input = Some(Input { name, view, original });
                st.target = None;
                st.top.clear();
                st.channel = None;
                st.field = None;
                for s in &mut st.slots {
                    s.result = None;
                    s.partial = None;
                    s.overlay_dirty = true;
                }
                self.tex.clear(Which::Field);
                if self.analysed_ahead.take() != Some(id) {
                    self.analyze_all(true);
                }
            }
            Response::Prediction { top, .. } => self.state.top = top,
            Response::Analyzed {
                top,
                original_top,
                target,
                channels,
                original_channels,
                maps,
                ..
            } => {
                self.state.top = top;
                self.state.original_top = original_top;
                self.state.original_channels = original_channels;
                self.state.explained_target = Some(target);
                match channels {
                    Some(Ok(ch)) => self.set_channels(ch),
                    Some(Err(e)) => self.state.errors.push(e),
                    None => {}
                }
                for m in maps {
                    match m {
                        Ok(e) => {
                            let ids: Vec<usize> = self
                                .state
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
                            for s in self.state.slots.iter_mut().filter(|s| shares_backward(s.method)) {
                                s.error = Some(msg.clone());
                            }
                        }
                    }
                }
            }
            Response::Activations { channels, original, .. } => {
                self.state.original_channels = original;
                self.set_channels(channels)
            }
            Response::Progress { done, total, .. } if job.request == RequestKind::Examples => {
                self.state.examples.progress = Some((done, total));
            }
            Response::Progress { done, total, .. } if job.request == RequestKind::Visualize => {
                self.state.visual.progress = Some((done, total));
            }
            Response::Progress {
                done, total, partial, ..
            } => {
                if let (RequestKind::Explain | RequestKind::Sanity, Some(sid)) = (job.request, job.slot) {
                    if let Some(s) = self.state.slot_mut(sid) {
                        s.progress = Some((done, total));
                        if let Some(p) = partial {
                            s.partial = Some(p);
                            s.overlay_dirty = true;
                        }
                    }
                }
            }
            Response::Explained { slot, result, .. } => {
                self.state.explained_target = Some(result.target);
                self.slot_done(slot, result);
            }
            Response::Faithfulness {
                slot,
                deletion,
                insertion,
                ..
            } => {
                if let Some(s) = self.state.slot_mut(slot) {
                    s.faith = Some((deletion, insertion));
                }
            }
            Response::ChannelKernel {
                layer,
                channel,
                conv,
                shape,
                picture,
                values,
                channel_params,
                ..
            } => {
                let st = &mut self.state;
                let current = st.channels.as_ref().map(|c| c.layer.as_str()) == Some(layer.as_str());
                if let Some(d) = st.channel.as_mut().filter(|d| d.channel == channel && current) {
                    self.tex.set(&self.ctx, Which::Kernel, &picture);
                    d.kernel = Some((conv, shape, picture));
                    d.kernel_values = values;
                    d.channel_params = channel_params;
                }
            }
            Response::ReceptiveField { layer, y, x, field, .. } => {
                if let Some(input) = &self.state.input {
                    let pic = render::field_picture(&input.view, &field);
                    self.tex.set(&self.ctx, Which::Field, &pic);
                }
                self.state.field = Some(Field { layer, y, x, field });
            }
            Response::Filters {
                conv, shape, picture, ..
            } => {
                self.tex.set(&self.ctx, Which::Filters, &picture);
                self.state.filters = Some((conv, shape, picture));
            }
            Response::Sanity { slot, result, .. } => {
                // The maps side by side: the trained model's, then each randomisation.
                if let (Some(input), Some(sl)) = (&self.state.input, self.state.slot(slot)) {
                    let cmap = self.state.colormap_for(sl.method);
                    let maps = result
                        .original
                        .iter()
                        .chain(result.steps.iter().filter_map(|s| s.map.as_ref()));
                    for (k, m) in maps.enumerate() {
                        let pic = render::overlay(
                            &input.view,
                            m,
                            cmap,
                            self.state.settings.opacity as f64,
                            glassbox_engine::defaults::OVERLAY_CLIP,
                            sl.method.is_cam(),
                        );
                        self.tex.set(&self.ctx, Which::Sanity(slot, k), &pic);
                    }
                }
                if let Some(s) = self.state.slot_mut(slot) {
                    s.sanity = Some(result);
                    s.sanity_running = None;
                    s.progress = None;
                }
            }
            Response::Edited {
                log,
                redoable,
                knockouts,
                ..
            } => {
                self.state.edits = log;
                self.state.redoable = redoable;
                self.state.knockouts = knockouts;
                if self.state.edits.is_empty() {
                    self.state.original_top = None;
                }
                // Every view follows the edited model: prediction, maps, channels, kernels.
                self.refresh_views();
            }
            Response::Saved { path, .. } => {
                self.state.notice = Some(format!("saved the edited model as {}", path.display()));
                self.saved();
            }
            Response::Evaluated {
                edited,
                original,
                changes,
                ..
            } => {
                self.state.evaluation = Some(super::state::Evaluated {
                    edited: edited.accuracy,
                    original: original.accuracy,
                    images: edited.images,
                    changes,
                });
            }
            Response::Training { event, .. } => {
                use glassbox_engine::finetune::Event;
                let tr = &mut self.state.training;
                match event {
                    Event::Plan(p) => tr.plan = Some(p),
                    Event::Features { done, total } => tr.features = Some((done, total)),
                    Event::Step {
                        epoch,
                        step,
                        steps,
                        loss,
                        elapsed,
                        ..
                    } => {
                        tr.step = Some((epoch, step, steps, elapsed));
                        tr.losses.push([(epoch - 1) as f64 + step as f64 / steps as f64, loss]);
                    }
                    Event::Epoch(e) => tr.epochs.push(e),
                    Event::Paused => {}
                }
            }
            Response::Trained {
                summary,
                timeline,
                info,
                probe,
                ..
            } => {
                let tr = &mut self.state.training;
                tr.running = None;
                tr.control = None;
                tr.paused = false;
                tr.note = summary.note.clone();
                tr.epochs = summary.epochs.clone();
                tr.point = timeline.len().saturating_sub(1);
                tr.cell = None;
                tr.result = Some(super::state::TrainResult {
                    summary,
                    timeline,
                    probe,
                });
                let base_retrained = self.state.unsaved.retrained;
                self.lesson_model_follows(&info.source);
                self.on_model(info);
                // The candidate is in no file; the model it started from may not be either.
                self.state.unsaved.base_retrained = base_retrained;
                self.state.unsaved.retrained = true;
            }
            Response::Scrubbed { .. } => self.refresh_views(),
            Response::Visualized {
                goal,
                picture,
                objective,
                ..
            } => {
                self.tex.set(&self.ctx, Which::Visual, &picture);
                let v = &mut self.state.visual;
                v.running = None;
                v.progress = None;
                v.result = Some((
                    goal,
                    objective.first().copied().unwrap_or(0.0),
                    objective.last().copied().unwrap_or(0.0),
                ));
            }
            Response::Unfolded { result, .. } => {
                self.state.unfolded = Some(*result);
                self.state.unfold_error = None;
            }
            Response::Examples {
                layer,
                channel,
                images,
                searched,
                images_per_s,
                ..
            } => {
                for (k, img) in images.iter().enumerate() {
                    self.tex.set(&self.ctx, Which::Example(k), &img.overlay);
                }
                let e = &mut self.state.examples;
                e.running = None;
                e.progress = None;
                e.result = Some(super::state::ExamplesResult {
                    layer,
                    channel,
                    images,
                    searched,
                    images_per_s,
                });
            }
            Response::Cell {
                truth,
                predicted,
                images,
                ..
            } => {
                for (k, img) in images.iter().enumerate() {
                    self.tex.set(&self.ctx, Which::Cell(k), &img.overlay);
                }
                self.state.training.cell = Some((truth, predicted, images));
            }
            Response::TrainingClosed { accepted, info, .. } => {
                let tr = &mut self.state.training;
                tr.result = None;
                tr.cell = None;
                self.state.notice = Some(if accepted {
                    "kept the retrained model (save it to keep it after this session)".into()
                } else {
                    "discarded the retrained model: the model before training is back".into()
                });
                self.lesson_model_follows(&info.source);
                self.on_model(info);
                let u = &mut self.state.unsaved;
                u.retrained = if accepted { true } else { u.base_retrained };
            }
            Response::Cancelled { .. } => {
                if job.request == RequestKind::Examples {
                    self.state.examples.running = None;
                    self.state.examples.progress = None;
                }
                if job.request == RequestKind::Visualize {
                    self.state.visual.running = None;
                    self.state.visual.progress = None;
                }
                if job.train == Some(TrainKind::Start) {
                    let tr = &mut self.state.training;
                    tr.running = None;
                    tr.control = None;
                    tr.paused = false;
                    tr.note = Some("training cancelled: the model is as it was before".into());
                }
                if let (RequestKind::Explain | RequestKind::Sanity, Some(sid)) = (job.request, job.slot) {
                    if let Some(s) = self.state.slot_mut(sid) {
                        s.running = None;
                        s.sanity_running = None;
                        s.progress = None;
                    }
                }
            }
            Response::Failed { message, .. } => match (job.request, job.train, job.slot) {
                (RequestKind::Explain | RequestKind::Sanity | RequestKind::Faithfulness, _, Some(sid)) => {
                    if let Some(s) = self.state.slot_mut(sid) {
                        s.error = Some(message);
                        s.running = None;
                        s.sanity_running = None;
                        s.progress = None;
                    }
                }
                (RequestKind::ChannelKernel, ..) => {
                    if let Some(d) = self.state.channel.as_mut() {
                        d.kernel_error = Some(message);
                    }
                }
                (RequestKind::SetImage, ..) => {
                    // The engine still holds the previous image.
                    self.sent_source = None;
                    self.state
                        .errors
                        .push(format!("{message}. The previous image stays open."));
                }
                (RequestKind::OpenModel, ..) => self
                    .state
                    .errors
                    .push(format!("{message}. The previous model stays open.")),
                (RequestKind::Visualize, ..) => {
                    self.state.visual.running = None;
                    self.state.visual.progress = None;
                    self.state.errors.push(message);
                }
                (RequestKind::Unfold, ..) => {
                    self.state.unfolded = None;
                    self.state.unfold_error = Some(message);
                }
                (RequestKind::Examples, ..) => {
                    self.state.examples.running = None;
                    self.state.examples.progress = None;
                    self.state.errors.push(message);
                }
                (_, Some(TrainKind::Start), _) => {
                    let tr = &mut self.state.training;
                    tr.running = None;
                    tr.control = None;
                    tr.paused = false;
                    self.state.errors.push(format!("{message}. The model is as it was."));
                }
                _ => self.state.errors.push(message),
            },
        }
        if self.all_views_after.is_none() && self.state.views_ready() {
            self.all_views_after = self.image_requested.map(|t| t.elapsed());
        }
    }

    fn slot_done(&mut self, id: usize, e: Explained) {
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

    /// A file dialog off the UI thread; its answer arrives through `poll`.
    fn dialog(&self, kind: DialogKind) {
        let tx = self.picked_tx.clone();
        let start = self
            .state
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
                    .map(Command::OpenPath),
                DialogKind::Model => d
                    .add_filter("weights", &["safetensors", "pth", "pt", "bin"])
                    .pick_file()
                    .map(Command::OpenPath),
                DialogKind::Export(what, name) => d.set_file_name(name).save_file().map(|p| Command::Export(what, p)),
                DialogKind::SaveModel => d
                    .add_filter("safetensors", &["safetensors"])
                    .set_file_name("edited.safetensors")
                    .save_file()
                    .map(|path| Command::Edit(EditRequest::Save { path, force: true })),
                DialogKind::EvalFolder => d
                    .pick_folder()
                    .map(|dir| Command::Edit(EditRequest::Evaluate(EvalSet::Folder(dir)))),
                DialogKind::ExamplesFolder => d.pick_folder().map(|dir| {
                    Command::Examples(ExamplesCommand::Source(glassbox_engine::finetune::DataSource::Folder(
                        dir,
                    )))
                }),
                DialogKind::Lesson => d
                    .add_filter("lessons", &["toml"])
                    .pick_file()
                    .map(|p| Command::Lesson(LessonCommand::OpenFile(p))),
                DialogKind::TrainFolder => d
                    .pick_folder()
                    .map(|dir| Command::Train(TrainCommand::Data(glassbox_engine::finetune::DataSource::Folder(dir)))),
            };
            if let Some(c) = picked {
                let _ = tx.send(Picked::Command(c));
            }
        });
    }

    /// An image from the clipboard (off the UI thread).
    fn paste(&self) {
        let tx = self.picked_tx.clone();
        std::thread::spawn(move || {
            let msg = match arboard::Clipboard::new().and_then(|mut c| c.get_image()) {
                Ok(img) => Picked::Command(Command::SetImage(ImageSource::Pixels {
                    name: "pasted image".into(),
                    width: img.width as u32,
                    height: img.height as u32,
                    rgba: img.bytes.into_owned(),
                })),
                Err(e) => Picked::Error(format!(
                    "the clipboard holds no image ({e}); copy an image first, or drop a file on the window"
                )),
            };
            let _ = tx.send(msg);
        });
    }

    /// The settings to remember (eframe storage).
    pub fn settings(&self) -> &Settings {
        &self.state.settings
    }
}

/// (h, w) of the channels shown, (1, 1) when none.
fn ch_dims(ch: &Option<Channels>) -> (usize, usize) {
    ch.as_ref().map_or((1, 1), |c| (c.h, c.w))
}
