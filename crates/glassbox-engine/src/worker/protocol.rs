//! What the engine is asked and what it answers: requests in, plain data out. Every
//! response names the request it answers.

use std::path::PathBuf;

use image::{DynamicImage, RgbImage};

use crate::arch::Arch;
use crate::edit::Op;
use crate::evaluate::{ClassChange, Evaluation};
use crate::explain::{Method, Params};
use crate::finetune::{self, Control, DataSource, Summary};
use crate::inspect::{Channels, ReceptiveField};
use crate::map::Map;
use crate::metrics::{Curve, Sanity};
use crate::model::{Class, ModelSource};
pub use crate::session::{CellImage, EvalSet, ExampleImage, Explained, ImageSource, ModelInfo};

/// What the engine is asked to do.
#[derive(Debug, Clone, strum::EnumDiscriminants)]
#[strum_discriminants(name(RequestKind), derive(Hash))]
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
    /// The scoreboard on the current image: every method, or (`layers_of`) one CAM method
    /// at each candidate layer.
    Score { layers_of: Option<Method>, params: Params },
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
    /// Pin a model as A of a comparison (the current model is B); `None` unpins.
    Pin(Option<crate::session::PinSource>),
    /// A (pinned) against B (the current model) on the current image: weights, both top-k,
    /// `method`'s map for both and their difference.
    Compare { top: usize, method: Method, params: Params },
    /// The kernels of a convolution in A and in B.
    CompareFilters { conv: String, per_input: bool },
    /// A's and B's per-class accuracy on labelled images.
    CompareAccuracy(EvalSet),
    /// The current model for PyTorch: a TorchScript module or safetensors with PyTorch's
    /// keys; `force` replaces an existing file. Never superseded.
    Export {
        path: PathBuf,
        torchscript: bool,
        force: bool,
    },
    /// Retraining: start a run (its result becomes a candidate beside the model it started
    /// from), scrub the candidate's timeline, look into a confusion cell, accept or discard.
    Train(TrainRequest),
    /// Faults injected on purpose, to test that the engine and the app survive them.
    #[doc(hidden)]
    InjectFault(Fault),
}

/// What to do about retraining (`engine::finetune`).
#[derive(Debug, Clone, strum::EnumDiscriminants)]
#[strum_discriminants(name(TrainKind), derive(Hash))]
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

/// What kind of work a request is: its variant (and a training request's), and the
/// explanation slot it is for. Requests of one kind supersede each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind {
    pub request: RequestKind,
    pub train: Option<TrainKind>,
    pub slot: Option<usize>,
}

impl Request {
    /// Whether a newer request of the same kind makes this one stale (edits never are).
    pub(super) fn supersedable(&self) -> bool {
        !matches!(
            self,
            Request::Edit(_)
                | Request::Export { .. }
                | Request::Train(TrainRequest::Start { .. } | TrainRequest::Accept | TrainRequest::Discard)
        )
    }

    /// What kind of work this is: a newer request of the same kind supersedes it.
    pub fn kind(&self) -> Kind {
        Kind {
            request: self.into(),
            train: match self {
                Request::Train(t) => Some(t.into()),
                _ => None,
            },
            slot: match self {
                Request::Explain { slot, .. } | Request::Faithfulness { slot, .. } | Request::Sanity { slot, .. } => {
                    Some(*slot)
                }
                _ => None,
            },
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
            Request::Score { layers_of: None, .. } => "scoring every method".into(),
            Request::Score { layers_of: Some(m), .. } => format!("scoring {m} at each candidate layer"),
            Request::InjectFault(f) => format!("the injected fault {f:?}"),
            Request::Edit(EditRequest::Apply(op)) => format!("the edit `{op}`"),
            Request::Edit(EditRequest::Save { path, .. }) => format!("saving {}", path.display()),
            Request::Edit(EditRequest::Evaluate(_)) => "the evaluation".into(),
            Request::Edit(e) => format!("{e:?}").to_lowercase(),
            Request::Visualize { goal, .. } => format!("the image {goal} wants to see"),
            Request::Unfold { layer, y, x, .. } => format!("the arithmetic of `{layer}` at ({y}, {x})"),
            Request::Examples { layer, channel, .. } => format!("the top images of `{layer}` channel {channel}"),
            Request::Pin(Some(p)) => format!("pinning {p:?} as A").to_lowercase(),
            Request::Pin(None) => "unpinning model A".into(),
            Request::Compare { .. } => "the comparison of A and B".into(),
            Request::CompareFilters { conv, .. } => format!("the filters of `{conv}` in A and B"),
            Request::CompareAccuracy(_) => "the accuracy of A and B".into(),
            Request::Export { path, .. } => format!("exporting to {}", path.display()),
            Request::Train(TrainRequest::Start { source, .. }) => format!("training on {source}"),
            Request::Train(TrainRequest::Scrub(n)) => format!("the timeline's point {n}"),
            Request::Train(TrainRequest::Cell { .. }) => "the images of the confusion cell".into(),
            Request::Train(TrainRequest::Accept) => "keeping the retrained model".into(),
            Request::Train(TrainRequest::Discard) => "going back to the model before training".into(),
        }
    }
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
    /// The scoreboard.
    Scored {
        id: u64,
        result: Box<crate::session::Scoreboard>,
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
    /// Model A is pinned (`Some(what it is)`) or unpinned.
    Pinned {
        id: u64,
        what: Option<String>,
    },
    Compared {
        id: u64,
        result: Box<crate::session::Compared>,
    },
    CompareFilters {
        id: u64,
        conv: String,
        a: RgbImage,
        b: RgbImage,
    },
    CompareAccuracy {
        id: u64,
        result: Box<crate::session::ComparedAccuracy>,
    },
    Exported {
        id: u64,
        done: crate::export::Exported,
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
            | Response::Scored { id, .. }
            | Response::Edited { id, .. }
            | Response::Saved { id, .. }
            | Response::Evaluated { id, .. }
            | Response::Examples { id, .. }
            | Response::Unfolded { id, .. }
            | Response::Visualized { id, .. }
            | Response::Pinned { id, .. }
            | Response::Compared { id, .. }
            | Response::CompareFilters { id, .. }
            | Response::CompareAccuracy { id, .. }
            | Response::Exported { id, .. }
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
