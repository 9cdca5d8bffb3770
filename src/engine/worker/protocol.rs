//! What the engine is asked and what it answers: requests in, plain data out. Every
//! response names the request it answers.

use std::collections::HashMap;
use std::path::PathBuf;

use image::{DynamicImage, RgbImage};

use crate::engine::arch::Arch;
use crate::engine::explain::{Method, Params};
use crate::engine::inspect::{Channels, ReceptiveField};
use crate::engine::metrics::{Curve, Sanity};
use crate::engine::model::{Class, LayerInfo, ModelSource};
use crate::engine::render::Map;

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
    /// Faults injected on purpose, to test that the engine and the app survive them.
    #[doc(hidden)]
    InjectFault(Fault),
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
        target: i64,
        channels: Option<Result<Channels, String>>,
        maps: Vec<Result<Explained, String>>,
    },
    Activations {
        id: u64,
        channels: Channels,
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
            | Response::Cancelled { id }
            | Response::Failed { id, .. } => *id,
        }
    }

    /// True for the last response to a request (everything but progress).
    pub fn is_final(&self) -> bool {
        !matches!(self, Response::Progress { .. })
    }
}
