//! One engine session: the model, the image, the edits and knock-outs, the caches, and the
//! retrained candidate, with a method per job. The command line calls it directly; the
//! worker thread (`crate::worker`) holds one and calls the same methods for the app.
//!
//! Every method changes the session only once it has succeeded: a failed request leaves
//! the model and image it had.
//!
//! - `mod.rs` (this file): open, image, predict, analyse, activations, explain (the
//!   pipeline: explain, attribution map, overlay), curves, sanity, and the small views.
//! - `edits.rs`: edits by hand, undo, save, evaluate. `compare.rs`: model A pinned beside
//!   the current one, export. `training.rs`: the candidate of a
//!   run. `neuron.rs`: top images, visualisation, the unfolded convolution.
//! - `types.rs`: what the methods take and give back (plain data: no tensor leaves).

mod compare;
mod edits;
mod neuron;
mod score;
mod training;
mod types;

use image::{DynamicImage, RgbImage};
use tch::Tensor;

use types::{Candidate, Pinned};
pub use types::{
    CellImage, Compared, ComparedAccuracy, EditState, EvalSet, Evaluated, ExampleImage, Examples, Explained, ImageSet,
    ImageSource, KernelView, ModelInfo, PinSource, Scoreboard, Trained,
};

use crate::arch::Arch;
use crate::defaults;
use crate::error::{Error, Result};
use crate::explain::{self, Method, Params};
use crate::inspect::{self, Channels, ReceptiveField};
use crate::map::{attribution_map, Map};
use crate::metrics::{self, Curve, Sanity};
use crate::model::{Class, Model, ModelSource};
use crate::render::{self, Colormap, FilterMode};

/// How a long job reports: done of total, with the map so far where one exists. It returns
/// false when the job should stop (the job then ends with `Error::Cancelled`).
pub type OnProgress<'a> = &'a mut dyn FnMut(usize, usize, Option<Map>) -> bool;

/// A model, an image, and what the user did to them.
pub struct Session {
    device: tch::Device,
    model: Option<Model>,
    image: Option<DynamicImage>,
    /// The current image as the current model sees it (after resize and crop).
    view: Option<DynamicImage>,
    /// The current image prepared for the current model.
    input: Option<Tensor>,
    /// The edits made to the model by hand (undoable); a new model starts with none.
    editor: crate::edit::Editor,
    /// The unedited model's logits for the current image (computed once while edits are in
    /// force; a new image or model forgets them).
    original_logits: Option<Tensor>,
    /// The unedited model's channels of one layer for the current image, kept likewise.
    original_channels: Option<Channels>,
    /// After a training run: the model it started from (the candidate is `model`), until
    /// the candidate is accepted or discarded.
    training: Option<Candidate>,
    /// A layer's activations over a folder or data set, kept for the top images of its
    /// channels (forgotten when the model changes).
    examples: Option<crate::examples::Activations>,
    /// Model A of a comparison (the current model is B); kept across edits, retraining and
    /// opening another model.
    pinned: Option<Pinned>,
    /// The model the last accepted retraining started from ("before this retraining").
    before_retraining: Option<Model>,
}

/// What one call to [`Session::analyze`] gives: everything a new image needs.
#[derive(Debug)]
pub struct Analysis {
    pub top: Vec<Class>,
    /// With edits in force: the same classes' probabilities in the original model.
    pub original_top: Option<Vec<Class>>,
    pub target: i64,
    pub channels: Option<Result<Channels, String>>,
    /// With edits in force: the original model's channels of the same layer.
    pub original_channels: Option<Channels>,
    pub maps: Vec<Result<Explained, String>>,
}

const NO_MODEL: &str = "no model is open: open a weights file or pick the builtin model";

impl Session {
    pub fn new(device: crate::Device) -> Session {
        Session {
            device: device.into(),
            model: None,
            image: None,
            view: None,
            input: None,
            editor: Default::default(),
            original_logits: None,
            original_channels: None,
            training: None,
            examples: None,
            pinned: None,
            before_retraining: None,
        }
    }

    /// A session on a model already open (the command line opens its own, with its flags).
    pub fn with_model(model: Model) -> Session {
        let mut s = Session::new(crate::Device::from(model.device()));
        s.model = Some(model);
        s
    }

    /// The model, or what the user has to do first.
    pub fn model(&self) -> Result<&Model> {
        self.model.as_ref().ok_or_else(|| Error::invalid(NO_MODEL))
    }

    /// The current image as the model sees it, once both are there.
    pub fn view(&self) -> Option<&DynamicImage> {
        self.view.as_ref()
    }

    /// The model and the prepared image, or what the user has to do first.
    fn need_input(&self) -> Result<(&Model, &Tensor)> {
        match (&self.model, &self.input) {
            (Some(m), Some(x)) => Ok((m, x)),
            (None, _) => Err(Error::invalid(NO_MODEL)),
            (_, None) => Err(Error::invalid(
                "no image yet: drop an image on the window, open one or paste one",
            )),
        }
    }

    /// What changes the model makes the kept top images stale.
    pub(crate) fn model_changed(&mut self) {
        self.examples = None;
    }

    /// The current image prepared again, after the model changed; the original model's
    /// kept answers are forgotten.
    fn prepare_again(&mut self) {
        let prepared = match (&self.model, &self.image) {
            (Some(m), Some(img)) => Some(m.preprocess.prepare(img)),
            _ => None,
        };
        (self.input, self.view) = match prepared {
            Some(p) => (Some(p.tensor), Some(p.view)),
            None => (None, None),
        };
        self.original_logits = None;
        self.original_channels = None;
    }

    /// A builtin model or a weights file; the edits and any candidate go with the old one.
    pub fn open_model(&mut self, model: ModelSource, arch: Option<Arch>) -> Result<ModelInfo> {
        let m = Model::open(model, arch, self.device)?;
        let info = ModelInfo::of(&m);
        self.model = Some(m);
        self.training = None;
        // "Before this retraining" belonged to the model going away (a pin stays: comparing
        // with another file is what it is for).
        self.before_retraining = None;
        self.editor = Default::default();
        self.model_changed();
        self.prepare_again();
        Ok(info)
    }

    /// The open model's description.
    pub fn info(&self) -> Result<ModelInfo> {
        Ok(ModelInfo::of(self.model()?))
    }

    /// Decodes an image and keeps it as the current input.
    pub fn set_image(&mut self, source: &ImageSource) -> Result<ImageSet> {
        let img = source.decode()?;
        let original = (img.width(), img.height());
        let prepared = self.model.as_ref().map(|m| m.preprocess.prepare(&img));
        let view = match prepared {
            Some(p) => {
                self.input = Some(p.tensor);
                self.view = Some(p.view.clone());
                p.view
            }
            None => img.clone(),
        };
        self.image = Some(img);
        self.original_logits = None;
        self.original_channels = None;
        Ok(ImageSet {
            name: source.name(),
            view,
            original,
        })
    }

    /// The top `top` classes of the current image.
    pub fn predict(&self, top: usize) -> Result<Vec<Class>> {
        let (m, x) = self.need_input()?;
        Ok(m.top_k(&m.logits(x), top)?.remove(0))
    }

    /// Everything a new image needs, from one forward and one backward: the top classes,
    /// the channels of `layer`, and the maps of the methods among `methods` that share a
    /// backward; with edits in force, the original model's answers beside them.
    pub fn analyze(
        &mut self,
        top: usize,
        layer: Option<&str>,
        methods: &[Method],
        params: &Params,
    ) -> Result<Analysis> {
        let original_top = self.original_top(top)?;
        let original_channels = match layer {
            Some(l) => self.original_channels(l)?,
            None => None,
        };
        let (m, x) = self.need_input()?;
        let a = inspect::analyze(m, x, layer, methods, params)?;
        let size = m.preprocess.size as i64;
        Ok(Analysis {
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
                        .and_then(|e| Explained::of(e, size).map_err(|e| e.to_string()))
                })
                .collect(),
        })
    }

    /// With edits in force, the original model's top classes for the current image (the
    /// edits are undone for one forward and redone, bit for bit).
    fn original_top(&mut self, top: usize) -> Result<Option<Vec<Class>>> {
        let n = self.editor.log().len();
        let (Some(m), Some(x), true) = (self.model.as_mut(), self.input.as_ref(), n > 0) else {
            return Ok(None);
        };
        let logits = match &self.original_logits {
            Some(l) => l.shallow_clone(),
            None => {
                self.editor.go_to(m, 0)?;
                let l = m.logits(x);
                self.editor.go_to(m, n)?;
                self.original_logits = Some(l.shallow_clone());
                l
            }
        };
        Ok(Some(m.top_k(&logits, top.max(m.spec.classes as usize))?.remove(0)))
    }

    /// The channels of one layer for the current image, and with edits in force the
    /// original model's.
    pub fn activations(&mut self, layer: &str) -> Result<(Channels, Option<Channels>)> {
        let original = self.original_channels(layer)?;
        let (m, x) = self.need_input()?;
        let (_, channels) = inspect::channels(m, x, layer)?;
        Ok((channels, original))
    }

    /// With edits in force, the original model's channels of `layer` for the current image
    /// (the edits undone for one forward and redone, bit for bit), once per image and layer.
    fn original_channels(&mut self, layer: &str) -> Result<Option<Channels>> {
        let n = self.editor.log().len();
        let (Some(m), Some(x), true) = (self.model.as_mut(), self.input.as_ref(), n > 0) else {
            return Ok(None);
        };
        if let Some(c) = self.original_channels.as_ref().filter(|c| c.layer == layer) {
            return Ok(Some(c.clone()));
        }
        self.editor.go_to(m, 0)?;
        let ch = inspect::channels(m, x, layer);
        self.editor.go_to(m, n)?;
        self.original_channels = ch.ok().map(|c| c.1);
        Ok(self.original_channels.clone())
    }

    /// An attribution map of the current image: the explain pipeline (the method, then
    /// its map at the input's size), with partial maps reported on the way.
    pub fn explain(&self, method: Method, params: &Params, progress: OnProgress) -> Result<Explained> {
        Ok(self.explain_raw(method, params, progress)?.0)
    }

    /// The same, with the method's own output (the attribution tensor and its record) for
    /// those who save it raw.
    pub fn explain_raw(
        &self,
        method: Method,
        params: &Params,
        progress: OnProgress,
    ) -> Result<(Explained, explain::Explanation)> {
        let (m, x) = self.need_input()?;
        let size = m.preprocess.size as i64;
        let mut report = |p: explain::Progress| {
            let partial = p.partial.and_then(|t| attribution_map(t, method, size, size).ok());
            progress(p.done, p.total, partial)
        };
        let e = explain::explain(m, x, method, params, &mut report)?;
        Ok((Explained::of(&e, size)?, e))
    }

    /// A map over the current image as the model sees it (the method's standard colormap
    /// unless `colormap` says otherwise).
    pub fn overlay(&self, map: &Map, method: Method, colormap: Option<Colormap>, opacity: f64) -> Result<RgbImage> {
        let view = self
            .view
            .as_ref()
            .ok_or_else(|| Error::invalid("no image yet: open one first"))?;
        Ok(render::overlay(
            view,
            map,
            colormap.unwrap_or(Colormap::default_for(method)),
            opacity,
            defaults::OVERLAY_CLIP,
            method.is_cam(),
        ))
    }

    /// The logits of the current image (for those who save them raw).
    pub fn logits(&self) -> Result<Tensor> {
        let (m, x) = self.need_input()?;
        Ok(m.logits(x))
    }

    /// The current image as the model's input tensor (for those who save it raw).
    pub fn input(&self) -> Result<&Tensor> {
        Ok(self.need_input()?.1)
    }

    /// Deletion and insertion curves of a map of the current image for class `target`.
    pub fn curves(&self, map: &Map, target: i64, keep_going: &dyn Fn() -> bool) -> Result<(Curve, Curve)> {
        let (m, x) = self.need_input()?;
        metrics::deletion_insertion(m, x, map, target, defaults::FAITHFULNESS_STEPS, keep_going)
    }

    /// Cascading randomisation of the model: does the map depend on the weights?
    pub fn sanity(
        &self,
        method: Method,
        params: &Params,
        progress: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<Sanity> {
        let (m, x) = self.need_input()?;
        metrics::sanity_check(m, x, method, params, progress)
    }

    /// The kernel that made channel `channel` of `layer`, with its numbers.
    pub fn channel_kernel(&self, layer: &str, channel: usize) -> Result<KernelView> {
        let m = self.model()?;
        let (conv, k) = inspect::channel_kernel(m, layer, channel)?;
        let channel_params = channel_params(m, &conv, channel);
        Ok(KernelView {
            shape: k.size(),
            picture: render::filter_grid(&k, FilterMode::PerInput, defaults::KERNEL_TILES)?,
            values: Vec::<f32>::try_from(&k.flatten(0, -1).to_device(tch::Device::Cpu).to_kind(tch::Kind::Float))
                .map_err(Error::from)?,
            conv,
            channel_params,
        })
    }

    /// The input pixels that position (y, x) of `layer` depends on.
    pub fn receptive_field(&self, layer: &str, channel: Option<usize>, y: usize, x: usize) -> Result<ReceptiveField> {
        let (m, input) = self.need_input()?;
        inspect::receptive_field(m, input, layer, channel, y, x)
    }

    /// The kernels of a convolution as a picture, and their shape.
    pub fn filters(&self, conv: &str, per_input: bool) -> Result<(Vec<i64>, RgbImage)> {
        let m = self.model()?;
        Ok((
            inspect::conv_weight(m, conv)?.size(),
            filter_picture(m, conv, per_input)?,
        ))
    }

    /// A tensor on the session's device: for the fault the tests inject.
    #[doc(hidden)]
    pub fn device(&self) -> tch::Device {
        self.device
    }
}

/// The kernels of convolution `conv` of `m` as a picture.
fn filter_picture(m: &Model, conv: &str, per_input: bool) -> Result<RgbImage> {
    let w = inspect::conv_weight(m, conv)?;
    let mode = if per_input {
        FilterMode::PerInput
    } else {
        FilterMode::Average
    };
    render::filter_grid(&w, mode, defaults::FILTER_TILES)
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
