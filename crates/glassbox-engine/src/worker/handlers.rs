//! One handler per request. Each reads the engine state, does its work, and returns the
//! response; it changes the state only once it has succeeded.

use tch::Tensor;

use super::outbox::Outbox;
use super::protocol::{
    CellImage, EditRequest, EvalSet, ExampleImage, Fault, ImageSource, Request, Response, TrainRequest,
};
use super::state::{decode, explained, model_info, Session, State};
use crate::arch::Arch;
use crate::defaults;
use crate::edit;
use crate::error::{Error, Result};
use crate::evaluate;
use crate::explain::{self, Method, Params, Progress};
use crate::inspect;
use crate::map::{attribution_map, Map};
use crate::metrics;
use crate::model::{meta, Model, ModelSource};
use crate::render::{self, FilterMode};

/// What a handler needs besides the request: its id, the channel for progress reports,
/// and whether it went stale (superseded, cancelled, or the engine is closing).
pub(super) struct Ctx<'a> {
    pub id: u64,
    pub out: &'a Outbox,
    pub stale: &'a dyn Fn() -> bool,
}

impl Ctx<'_> {
    /// Reports progress; false when the request should stop.
    fn progress(&self, done: usize, total: usize, partial: Option<Map>) -> bool {
        if (self.stale)() {
            return false;
        }
        let _ = self.out.send(Response::Progress {
            id: self.id,
            done,
            total,
            partial,
        });
        true
    }
}

pub(super) fn run(state: &mut State, req: Request, cx: &Ctx) -> Result<Response> {
    // Whatever changes the model makes the kept activations stale.
    let changes_model = match &req {
        Request::OpenModel { .. } => true,
        Request::Edit(e) => !matches!(e, EditRequest::Save { .. } | EditRequest::Evaluate(_)),
        Request::Train(t) => !matches!(t, TrainRequest::Cell { .. }),
        _ => false,
    };
    if changes_model {
        state.examples = None;
    }
    match req {
        Request::Visualize { goal, settings } => {
            let m = state.need_model()?;
            let v = crate::visualize::visualize(m, &goal, &settings, &mut |d, t| cx.progress(d, t, None))?;
            Ok(Response::Visualized {
                id: cx.id,
                goal,
                picture: v.picture,
                objective: v.objective,
            })
        }
        Request::Unfold { layer, channel, y, x } => {
            let (m, input) = state.need_input()?;
            let result = crate::convolution::unfold(m, input, &layer, channel, y, x)?;
            Ok(Response::Unfolded {
                id: cx.id,
                result: Box::new(result),
            })
        }
        Request::Examples {
            source,
            per_class,
            layer,
            channel,
        } => examples(state, cx, source, per_class, layer, channel),
        Request::OpenModel { model, arch } => open_model(state, cx, model, arch),
        Request::SetImage { source } => set_image(state, cx, source),
        Request::Predict { top } => predict(state, cx, top),
        Request::Analyze {
            top,
            layer,
            methods,
            params,
        } => analyze(state, cx, top, layer, methods, params),
        Request::Activations { layer } => activations(state, cx, layer),
        Request::Explain { slot, method, params } => explain_slot(state, cx, slot, method, params),
        Request::Faithfulness { slot, target, map } => faithfulness(state, cx, slot, target, map),
        Request::ChannelKernel { layer, channel } => channel_kernel(state, cx, layer, channel),
        Request::ReceptiveField { layer, channel, y, x } => receptive_field(state, cx, layer, channel, y, x),
        Request::Filters { conv, per_input } => filters(state, cx, conv, per_input),
        Request::Sanity { slot, method, params } => sanity(state, cx, slot, method, params),
        Request::InjectFault(fault) => inject_fault(state, fault),
        Request::Edit(e) => edit(state, cx, e),
        Request::Train(t) => train(state, cx, t),
    }
}

/// The images that most activate a channel; the layer's activations over the data are
/// computed once and kept.
fn examples(
    state: &mut State,
    cx: &Ctx,
    source: crate::finetune::DataSource,
    per_class: usize,
    layer: String,
    channel: usize,
) -> Result<Response> {
    use crate::examples;
    let m = state.model.as_ref().ok_or_else(|| Error::invalid("no model is open"))?;
    let kept = state
        .examples
        .as_ref()
        .is_some_and(|a| a.source == source && a.per_class == per_class && a.layer == layer);
    let mut images_per_s = None;
    if !kept {
        let a = examples::activations(m, &source, per_class, &layer, &mut |d, t| cx.progress(d, t, None))?;
        images_per_s = Some(a.images_per_s);
        state.examples = Some(a);
    }
    let a = state.examples.as_ref().expect("just computed");
    let top = a.top(m, channel, crate::defaults::EXAMPLES)?;
    let images = top
        .into_iter()
        .map(|e| {
            let source = ImageSource::of(e.file.as_deref(), &e.name, &e.view);
            ExampleImage {
                name: e.name,
                activation: e.activation,
                overlay: e.overlay,
                source,
            }
        })
        .collect();
    Ok(Response::Examples {
        id: cx.id,
        layer,
        channel,
        images,
        searched: a.data.labels.len(),
        images_per_s,
    })
}

/// Retraining: a run makes a candidate (the model it started from is kept), which the
/// timeline scrubs, whose confusion cells open, and which is accepted or discarded.
fn train(state: &mut State, cx: &Ctx, t: TrainRequest) -> Result<Response> {
    use crate::finetune::{self, Event, Hooks};
    match t {
        TrainRequest::Start {
            source,
            config,
            control,
        } => {
            let m = state.need_model()?;
            // Reports at most every 50 ms (a head-only step takes a fraction of that).
            let mut last = std::time::Instant::now() - std::time::Duration::from_secs(1);
            let mut on_event = |e: Event| {
                let throttled = matches!(e, Event::Step { step, steps, .. } if step < steps)
                    || matches!(e, Event::Features { done, total } if done < total)
                    || matches!(e, Event::Paused);
                if !throttled || last.elapsed().as_millis() >= 50 {
                    last = std::time::Instant::now();
                    let _ = cx.out.send(Response::Training { id: cx.id, event: e });
                }
                !(cx.stale)()
            };
            let out = finetune::finetune(
                m,
                &source,
                &config,
                &mut Hooks {
                    event: &mut on_event,
                    control: &control,
                },
            )?;
            let probe = match &state.image {
                Some(img) => {
                    let top = |m: &Model| -> Result<Vec<crate::model::Class>> {
                        let x = m.preprocess.prepare(img).tensor;
                        Ok(m.top_k(&m.logits(&x), 5)?.remove(0))
                    };
                    Some((top(m)?, top(&out.model)?))
                }
                None => None,
            };
            let info = model_info(&out.model);
            // The candidate becomes the model; what it started from is kept (a second run
            // keeps the first one's starting point).
            let candidate = out.model;
            state.input = state.image.as_ref().map(|img| candidate.preprocess.prepare(img).tensor);
            let started = state.model.replace(candidate).expect("a model was open");
            let editor = std::mem::take(&mut state.editor);
            let (base, base_editor) = match state.training.take() {
                Some(s) => (s.base, s.base_editor),
                None => (started, editor),
            };
            state.original_logits = None;
            state.original_channels = None;
            let timeline = out.timeline.epochs();
            state.training = Some(Session {
                base,
                base_editor,
                timeline: out.timeline,
                val: out.val,
            });
            Ok(Response::Trained {
                id: cx.id,
                summary: Box::new(out.summary),
                timeline,
                info,
                probe,
            })
        }
        TrainRequest::Scrub(n) => {
            let (Some(m), Some(s)) = (&state.model, &state.training) else {
                return Err(Error::invalid("no retrained model to scrub: train one first"));
            };
            s.timeline.restore(m, n)?;
            Ok(Response::Scrubbed {
                id: cx.id,
                point: n,
                epoch: s.timeline.snapshots[n].0,
            })
        }
        TrainRequest::Cell { truth, predicted } => {
            let (Some(m), Some(s)) = (&state.model, &state.training) else {
                return Err(Error::invalid("no retrained model: train one first"));
            };
            let size = m.preprocess.size as i64;
            let mut images = Vec::new();
            for i in s.val.cell(truth, predicted, crate::defaults::CELL_IMAGES) {
                let view = s.val.picture(i)?;
                let x = finetune::normalise(m, &s.val.images.get(i as i64).unsqueeze(0));
                let top = m.top_k(&m.logits(&x), 1)?.remove(0).remove(0);
                let params = Params {
                    target: Some(top.index),
                    ..Params::default()
                };
                let e = explain::explain(m, &x, Method::GradCam, &params, &mut |_| !(cx.stale)())?;
                let map = attribution_map(&e.attribution, Method::GradCam, size, size)?;
                let overlay = render::overlay(
                    &view,
                    &map,
                    render::Colormap::default_for(Method::GradCam),
                    defaults::OVERLAY_OPACITY,
                    defaults::OVERLAY_CLIP,
                    true,
                );
                let file = s.val.files[i].as_deref();
                let name = match file {
                    Some(p) => p
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    None => format!("validation image {i}"),
                };
                let source = ImageSource::of(file, &name, &view);
                images.push(CellImage {
                    name,
                    source,
                    overlay,
                    predicted: top.label,
                    probability: top.probability,
                });
            }
            Ok(Response::Cell {
                id: cx.id,
                truth,
                predicted,
                images,
            })
        }
        TrainRequest::Accept | TrainRequest::Discard => {
            let accepted = matches!(t, TrainRequest::Accept);
            let s = state
                .training
                .take()
                .ok_or_else(|| Error::invalid("no retrained model to keep or discard"))?;
            if !accepted {
                state.model = Some(s.base);
                state.editor = s.base_editor;
            }
            let m = state.need_model()?;
            state.input = state.image.as_ref().map(|img| m.preprocess.prepare(img).tensor);
            state.original_logits = None;
            state.original_channels = None;
            let info = model_info(state.need_model()?);
            Ok(Response::TrainingClosed {
                id: cx.id,
                accepted,
                info,
            })
        }
    }
}

/// The edits: each applies in order; undo, redo and go-to restore values bit for bit.
fn edit(state: &mut State, cx: &Ctx, e: EditRequest) -> Result<Response> {
    let m = state
        .model
        .as_mut()
        .ok_or_else(|| Error::invalid("no model is open: open a weights file or pick the builtin model"))?;
    if state.training.is_some() && !matches!(e, EditRequest::Save { .. } | EditRequest::Evaluate(_)) {
        return Err(Error::invalid(
            "the model is a retrained candidate: keep it (Accept) or discard it before editing by hand",
        ));
    }
    let ed = &mut state.editor;
    match e {
        EditRequest::Apply(op) => ed.apply(m, op)?,
        EditRequest::Undo => {
            ed.undo(m)?;
        }
        EditRequest::Redo => {
            ed.redo(m)?;
        }
        EditRequest::GoTo(n) => ed.go_to(m, n)?,
        EditRequest::Reset => ed.reset(m)?,
        EditRequest::Save { path, force } => {
            if let ModelSource::File(own) = &m.source {
                let same = own
                    .canonicalize()
                    .ok()
                    .is_some_and(|a| Some(a) == path.canonicalize().ok());
                if same {
                    return Err(Error::file(
                        &path,
                        "is the model's own file; originals are never modified: choose another name",
                    ));
                }
            }
            if path.exists() && !force {
                return Err(Error::file(&path, "already exists; confirm to replace it"));
            }
            let mut log = edit::saved_log(m);
            log.extend(ed.log());
            let mut extra = std::collections::BTreeMap::new();
            extra.insert(
                meta::EDITS.to_string(),
                serde_json::to_string(&log).expect("strings serialise"),
            );
            m.save(&path, &extra, crate::weights::StoreAs::F32)?;
            return Ok(Response::Saved { id: cx.id, path });
        }
        EditRequest::Evaluate(set) => {
            let labelled = match &set {
                EvalSet::Dataset(d) => evaluate::dataset(*d)?,
                EvalSet::Folder(dir) => evaluate::folder(m, dir)?,
            };
            let n = ed.log().len();
            let total = 2 * labelled.len();
            let edited = evaluate::evaluate(m, &labelled, &mut |done, _| cx.progress(done, total, None))?;
            ed.go_to(m, 0)?;
            let original = evaluate::evaluate(m, &labelled, &mut |done, t| cx.progress(t + done, total, None));
            ed.go_to(m, n)?;
            let original = original?;
            let changes = evaluate::compare(&original, &edited);
            return Ok(Response::Evaluated {
                id: cx.id,
                edited,
                original,
                changes,
            });
        }
    }
    Ok(Response::Edited {
        id: cx.id,
        log: ed.log(),
        redoable: ed.redoable(),
        knockouts: m.knockouts.iter().cloned().collect(),
    })
}

fn open_model(state: &mut State, cx: &Ctx, model: ModelSource, arch: Option<Arch>) -> Result<Response> {
    let m = Model::open(model, arch, state.device)?;
    let info = model_info(&m);
    state.input = state.image.as_ref().map(|img| m.preprocess.prepare(img).tensor);
    state.model = Some(m);
    state.training = None;
    state.editor = Default::default();
    state.original_logits = None;
    state.original_channels = None;
    Ok(Response::ModelOpened { id: cx.id, info })
}

fn set_image(state: &mut State, cx: &Ctx, source: ImageSource) -> Result<Response> {
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
    state.original_logits = None;
    state.original_channels = None;
    Ok(Response::ImageSet {
        id: cx.id,
        name: source.name(),
        view,
        original,
    })
}

fn predict(state: &mut State, cx: &Ctx, top: usize) -> Result<Response> {
    let (m, x) = state.need_input()?;
    let logits = m.logits(x);
    Ok(Response::Prediction {
        id: cx.id,
        top: m.top_k(&logits, top)?.remove(0),
    })
}

fn analyze(
    state: &mut State,
    cx: &Ctx,
    top: usize,
    layer: Option<String>,
    methods: Vec<Method>,
    params: Params,
) -> Result<Response> {
    let original_top = original_top(state, top)?;
    let original_channels = match &layer {
        Some(l) => original_channels(state, l)?,
        None => None,
    };
    let (m, x) = state.need_input()?;
    let a = inspect::analyze(m, x, layer.as_deref(), &methods, &params)?;
    let size = m.preprocess.size as i64;
    Ok(Response::Analyzed {
        id: cx.id,
        top: m.top_k(&a.logits, top)?.remove(0),
        original_top,
        target: a.target,
        channels: a.channels.map(|c| c.map_err(|e| e.to_string())),
        original_channels,
        maps: a
            .explanations
            .iter()
            .map(|e| {
                e.as_ref()
                    .map_err(|e| e.to_string())
                    .and_then(|e| explained(e, size).map_err(|e| e.to_string()))
            })
            .collect(),
    })
}

/// With edits in force, the original model's top classes for the current image (the edits
/// are undone for one forward and redone, bit for bit).
fn original_top(state: &mut State, top: usize) -> Result<Option<Vec<crate::model::Class>>> {
    let n = state.editor.log().len();
    if n == 0 {
        return Ok(None);
    }
    let (Some(m), Some(x)) = (state.model.as_mut(), state.input.as_ref()) else {
        return Ok(None);
    };
    let logits = match &state.original_logits {
        Some(l) => l.shallow_clone(),
        None => {
            state.editor.go_to(m, 0)?;
            let l = m.logits(x);
            state.editor.go_to(m, n)?;
            state.original_logits = Some(l.shallow_clone());
            l
        }
    };
    Ok(Some(m.top_k(&logits, top.max(m.spec.classes as usize))?.remove(0)))
}

fn activations(state: &mut State, cx: &Ctx, layer: String) -> Result<Response> {
    let original = original_channels(state, &layer)?;
    let (m, x) = state.need_input()?;
    let (_, channels) = inspect::channels(m, x, &layer)?;
    Ok(Response::Activations {
        id: cx.id,
        channels,
        original,
    })
}

/// With edits in force, the original model's channels of `layer` for the current image (the
/// edits undone for one forward and redone, bit for bit), computed once per image and layer.
fn original_channels(state: &mut State, layer: &str) -> Result<Option<crate::inspect::Channels>> {
    let n = state.editor.log().len();
    let (Some(m), Some(x)) = (state.model.as_mut(), state.input.as_ref()) else {
        return Ok(None);
    };
    if n == 0 {
        return Ok(None);
    }
    if let Some(c) = state.original_channels.as_ref().filter(|c| c.layer == layer) {
        return Ok(Some(c.clone()));
    }
    state.editor.go_to(m, 0)?;
    let ch = inspect::channels(m, x, layer);
    state.editor.go_to(m, n)?;
    state.original_channels = ch.ok().map(|c| c.1);
    Ok(state.original_channels.clone())
}

fn explain_slot(state: &mut State, cx: &Ctx, slot: usize, method: Method, params: Params) -> Result<Response> {
    let (m, x) = state.need_input()?;
    let size = m.preprocess.size as i64;
    let mut progress = |p: Progress| {
        let partial = p.partial.and_then(|t| attribution_map(t, method, size, size).ok());
        cx.progress(p.done, p.total, partial)
    };
    let e = explain::explain(m, x, method, &params, &mut progress)?;
    Ok(Response::Explained {
        id: cx.id,
        slot,
        result: explained(&e, size)?,
    })
}

fn faithfulness(state: &mut State, cx: &Ctx, slot: usize, target: i64, map: Map) -> Result<Response> {
    let (m, x) = state.need_input()?;
    let (deletion, insertion) =
        metrics::deletion_insertion(m, x, &map, target, defaults::FAITHFULNESS_STEPS, &|| !(cx.stale)())?;
    Ok(Response::Faithfulness {
        id: cx.id,
        slot,
        deletion,
        insertion,
    })
}

fn channel_kernel(state: &mut State, cx: &Ctx, layer: String, channel: usize) -> Result<Response> {
    let m = state.need_model()?;
    let (conv, k) = inspect::channel_kernel(m, &layer, channel)?;
    let params = channel_params(m, &conv, channel);
    Ok(Response::ChannelKernel {
        id: cx.id,
        layer,
        channel,
        conv,
        shape: k.size(),
        picture: render::filter_grid(&k, FilterMode::PerInput, defaults::KERNEL_TILES)?,
        values: Vec::<f32>::try_from(&k.flatten(0, -1).to_device(tch::Device::Cpu).to_kind(tch::Kind::Float))
            .map_err(Error::from)?,
        channel_params: params,
    })
}

/// The one-value-per-channel parameters of convolution `conv` (its bias) and of the batch
/// norm that follows it in the forward, with channel `c`'s value: what the editor offers
/// beside the kernel.
fn channel_params(m: &Model, conv: &str, c: usize) -> Vec<(String, f32)> {
    let layers = m.layers();
    let bn = layers
        .iter()
        .position(|l| l.name == conv)
        .and_then(|i| layers.get(i + 1))
        .filter(|l| l.kind == crate::layers::LayerKind::BatchNorm)
        .map(|l| format!("{}.", l.name));
    let own = format!("{conv}.");
    let mut v: Vec<(String, f32)> =
        m.vs.variables()
            .into_iter()
            .filter(|(k, t)| {
                t.dim() == 1
                    && (k.starts_with(&own) || bn.as_ref().is_some_and(|b| k.starts_with(b.as_str())))
                    && (c as i64) < t.size()[0]
            })
            .map(|(k, t)| (k, t.double_value(&[c as i64]) as f32))
            .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn receptive_field(
    state: &mut State,
    cx: &Ctx,
    layer: String,
    channel: Option<usize>,
    y: usize,
    x: usize,
) -> Result<Response> {
    let (m, input) = state.need_input()?;
    let field = inspect::receptive_field(m, input, &layer, channel, y, x)?;
    Ok(Response::ReceptiveField {
        id: cx.id,
        layer,
        y,
        x,
        field,
    })
}

fn filters(state: &mut State, cx: &Ctx, conv: String, per_input: bool) -> Result<Response> {
    let m = state.need_model()?;
    let w = inspect::conv_weight(m, &conv)?;
    let mode = if per_input {
        FilterMode::PerInput
    } else {
        FilterMode::Average
    };
    Ok(Response::Filters {
        id: cx.id,
        conv,
        shape: w.size(),
        picture: render::filter_grid(&w, mode, defaults::FILTER_TILES)?,
    })
}

fn sanity(state: &mut State, cx: &Ctx, slot: usize, method: Method, params: Params) -> Result<Response> {
    let (m, x) = state.need_input()?;
    let mut progress = |done: usize, total: usize| cx.progress(done, total, None);
    let result = metrics::sanity_check(m, x, method, &params, &mut progress)?;
    Ok(Response::Sanity {
        id: cx.id,
        slot,
        result,
    })
}

fn inject_fault(state: &mut State, fault: Fault) -> Result<Response> {
    match fault {
        Fault::TorchError => {
            let t = Tensor::zeros([2, 3], (tch::Kind::Float, state.device));
            let _ = t.view([7, 7]);
            unreachable!("libtorch refuses a [2, 3] tensor viewed as [7, 7]")
        }
        Fault::Panic => panic!("injected panic"),
        Fault::KillThread => unreachable!("handled by the engine loop"),
    }
}
