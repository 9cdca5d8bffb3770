//! What the engine is asked and what it answers: requests in, plain data out. Every
//! response names the request it answers.

use std::collections::HashMap;
use std::path::PathBuf;

use image::{DynamicImage, RgbImage};

use crate::arch::Arch;
use crate::data::DatasetName;
use crate::edit::Op;
use crate::evaluate::{ClassChange, Evaluation};
use crate::explain::{Method, Params};
use crate::finetune::{self, Control, DataSource, Summary};
use crate::inspect::{Channels, ReceptiveField};
use crate::map::Map;
use crate::metrics::{Curve, Sanity};
use crate::model::{Class, LayerInfo, ModelSource};

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
    /// An image of a data set: its file when it has one, else its pixels under `name`.
    pub fn of(file: Option<&std::path::Path>, name: &str, view: &DynamicImage) -> ImageSource {
        match file {
            Some(p) => ImageSource::File(p.to_path_buf()),
            None => {
                let rgba = view.to_rgba8();
                ImageSource::Pixels {
                    name: name.to_string(),
                    width: rgba.width(),
                    height: rgba.height(),
                    rgba: rgba.into_raw(),
                }
            }
        }
    }

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
    /// A builtin model or a weights file.
    OpenModel { model: ModelSource, arch: Option<Arch> },
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
    /// A change to the model by hand, or what to do with the changes. Edits are never
    /// superseded: each applies in order.
    Edit(EditRequest),
    /// An image grown to maximise a channel or a class (`engine::visualize`).
    Visualize {
        goal: crate::visualize::Goal,
        settings: crate::visualize::Settings,
    },
    /// One value of a layer computed in the open: patch, kernel, products, sum, bias, batch
    /// norm, activation (`engine::convolution`).
    Unfold {
        layer: String,
        channel: usize,
        y: usize,
        x: usize,
    },
    /// The images of a folder or data set that most activate channel `channel` of `layer`
    /// (the layer's activations are computed once per model, data and layer, then kept).
    Examples {
        source: DataSource,
        per_class: usize,
        layer: String,
        channel: usize,
    },
    /// Retraining: start a run (its result becomes a candidate beside the model it started
    /// from), scrub the candidate's timeline, look into a confusion cell, accept or discard.
    Train(TrainRequest),
    /// Faults injected on purpose, to test that the engine and the app survive them.
    #[doc(hidden)]
    InjectFault(Fault),
}

/// What to do about retraining (`engine::finetune`).
#[derive(Debug, Clone)]
pub enum TrainRequest {
    /// A run on the current model (or from scratch); pause and the learning rate go through
    /// `control`, cancel through the engine.
    Start {
        source: DataSource,
        config: finetune::Config,
        control: std::sync::Arc<Control>,
    },
    /// The candidate's weights at point `n` of its timeline (every view follows).
    Scrub(usize),
    /// The validation images of one confusion cell, with the explanation of each.
    Cell { truth: usize, predicted: usize },
    /// Keep the candidate (at the point shown) as the model.
    Accept,
    /// Back to the model the run started from.
    Discard,
}

/// One of the images that most activate a channel.
#[derive(Debug, Clone)]
pub struct ExampleImage {
    pub name: String,
    pub activation: f64,
    /// The image with the channel's activation over it.
    pub overlay: RgbImage,
    /// Where it comes from, to open it as the input.
    pub source: ImageSource,
}

/// One validation image of a confusion cell.
#[derive(Debug, Clone)]
pub struct CellImage {
    pub name: String,
    /// Where it comes from, to open it as the input.
    pub source: ImageSource,
    /// The image with the Grad-CAM map of the predicted class over it.
    pub overlay: RgbImage,
    pub predicted: String,
    pub probability: f64,
}

/// What to do to the model's edits (`engine::edit`).
#[derive(Debug, Clone)]
pub enum EditRequest {
    Apply(Op),
    Undo,
    Redo,
    /// Back (or forward) to the point after the first n edits of the log.
    GoTo(usize),
    /// Every edit undone: the original model.
    Reset,
    /// The edited model as a new safetensors file, with its edit log; `force` replaces an
    /// existing file (never the model's own file).
    Save {
        path: PathBuf,
        force: bool,
    },
    /// The edited model against the original on labelled images, per class.
    Evaluate(EvalSet),
}

/// Labelled images to evaluate on.
#[derive(Debug, Clone)]
pub enum EvalSet {
    Dataset(DatasetName),
    /// One sub-folder of images per class, named by label or index.
    Folder(PathBuf),
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
    /// Whether a newer request of the same kind makes this one stale (edits never are).
    pub(super) fn supersedable(&self) -> bool {
        !matches!(
            self,
            Request::Edit(_)
                | Request::Train(TrainRequest::Start { .. } | TrainRequest::Accept | TrainRequest::Discard)
        )
    }

    /// Requests with the same key supersede each other.
    pub(super) fn key(&self) -> (u8, usize) {
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
            Request::Edit(_) => (12, 0),
            Request::Examples { .. } => (14, 0),
            Request::Unfold { .. } => (15, 0),
            Request::Visualize { .. } => (16, 0),
            Request::Train(t) => (
                13,
                match t {
                    TrainRequest::Start { .. } => 0,
                    TrainRequest::Scrub(_) => 1,
                    TrainRequest::Cell { .. } => 2,
                    TrainRequest::Accept | TrainRequest::Discard => 3,
                },
            ),
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
            Request::Edit(EditRequest::Apply(op)) => format!("the edit `{op}`"),
            Request::Edit(EditRequest::Save { path, .. }) => format!("saving {}", path.display()),
            Request::Edit(EditRequest::Evaluate(_)) => "the evaluation".into(),
            Request::Edit(e) => format!("{e:?}").to_lowercase(),
            Request::Visualize { goal, .. } => format!("the image {goal} wants to see"),
            Request::Unfold { layer, y, x, .. } => format!("the arithmetic of `{layer}` at ({y}, {x})"),
            Request::Examples { layer, channel, .. } => format!("the top images of `{layer}` channel {channel}"),
            Request::Train(TrainRequest::Start { source, .. }) => format!("training on {source}"),
            Request::Train(TrainRequest::Scrub(n)) => format!("the timeline's point {n}"),
            Request::Train(TrainRequest::Cell { .. }) => "the images of the confusion cell".into(),
            Request::Train(TrainRequest::Accept) => "keeping the retrained model".into(),
            Request::Train(TrainRequest::Discard) => "going back to the model before training".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub source: ModelSource,
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
    /// The edit log saved in the weights file (edits made before it was saved).
    pub saved_edits: Vec<String>,
    /// The training record in the weights file (`glassbox.train.*`, without the prefix).
    pub training: std::collections::BTreeMap<String, String>,
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
        /// With edits in force: the same classes' probabilities in the original model.
        original_top: Option<Vec<Class>>,
        target: i64,
        channels: Option<Result<Channels, String>>,
        /// With edits in force: the original model's channels of the same layer.
        original_channels: Option<Channels>,
        maps: Vec<Result<Explained, String>>,
    },
    Activations {
        id: u64,
        channels: Channels,
        /// With edits in force: the original model's channels of the same layer.
        original: Option<Channels>,
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
        /// The kernel's values, [1, in, kh, kw] flattened (the editor shows and paints them).
        values: Vec<f32>,
        /// The channel's own numbers beside its kernel: every one-value-per-channel
        /// parameter of the same block (bias, batch norm), with this channel's value.
        channel_params: Vec<(String, f32)>,
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
    /// The edits in force after an edit request, in their readable form.
    Edited {
        id: u64,
        log: Vec<String>,
        redoable: usize,
        knockouts: Vec<(String, i64)>,
    },
    Saved {
        id: u64,
        path: PathBuf,
    },
    Evaluated {
        id: u64,
        edited: Evaluation,
        original: Evaluation,
        /// Per class, the most damaged first.
        changes: Vec<ClassChange>,
    },
    Visualized {
        id: u64,
        goal: crate::visualize::Goal,
        picture: RgbImage,
        objective: Vec<f64>,
    },
    Unfolded {
        id: u64,
        result: Box<crate::convolution::Unfolded>,
    },
    Examples {
        id: u64,
        layer: String,
        channel: usize,
        images: Vec<ExampleImage>,
        /// Images searched, and how fast their activations were computed (None: kept from before).
        searched: usize,
        images_per_s: Option<f64>,
    },
    /// A running training's report (not final).
    Training {
        id: u64,
        event: finetune::Event,
    },
    /// A run finished: the candidate is the model now (the one it started from is kept
    /// until it is accepted or discarded).
    Trained {
        id: u64,
        summary: Box<Summary>,
        /// The epoch of each point of the timeline.
        timeline: Vec<usize>,
        info: ModelInfo,
        /// The current image's top classes: the model the run started from, the candidate.
        probe: Option<(Vec<Class>, Vec<Class>)>,
    },
    Scrubbed {
        id: u64,
        point: usize,
        epoch: usize,
    },
    Cell {
        id: u64,
        truth: usize,
        predicted: usize,
        images: Vec<CellImage>,
    },
    /// The candidate was accepted (it stays) or discarded (the model before is back).
    TrainingClosed {
        id: u64,
        accepted: bool,
        info: ModelInfo,
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
            | Response::Edited { id, .. }
            | Response::Saved { id, .. }
            | Response::Evaluated { id, .. }
            | Response::Examples { id, .. }
            | Response::Unfolded { id, .. }
            | Response::Visualized { id, .. }
            | Response::Training { id, .. }
            | Response::Trained { id, .. }
            | Response::Scrubbed { id, .. }
            | Response::Cell { id, .. }
            | Response::TrainingClosed { id, .. }
            | Response::Cancelled { id }
            | Response::Failed { id, .. } => *id,
        }
    }

    /// True for the last response to a request (everything but progress).
    pub fn is_final(&self) -> bool {
        !matches!(self, Response::Progress { .. } | Response::Training { .. })
    }
}
