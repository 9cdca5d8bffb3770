//! What the session's methods take and give back: plain data, no tensor (the app holds
//! these; only the engine thread holds tensors).

use std::collections::HashMap;
use std::path::PathBuf;

use image::{DynamicImage, RgbImage, RgbaImage};

use crate::data::DatasetName;
use crate::error::{Error, Result};
use crate::evaluate::{ClassChange, Evaluation};
use crate::explain::{Explanation, Method};
use crate::map::{attribution_map, Map};
use crate::model::{Class, LayerInfo, Model, ModelSource};
use crate::{finetune, inspect};

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

    /// The image, checked (size, format) before it is decoded.
    pub(crate) fn decode(&self) -> Result<DynamicImage> {
        match self {
            ImageSource::File(path) => crate::preprocess::load_image(path),
            ImageSource::Bytes { name, bytes } => crate::preprocess::decode(bytes, std::path::Path::new(name)),
            ImageSource::Pixels {
                name,
                width,
                height,
                rgba,
            } => {
                crate::preprocess::check_image_size(*width, *height, rgba.len() as u64, std::path::Path::new(name))?;
                RgbaImage::from_raw(*width, *height, rgba.clone())
                    .map(DynamicImage::ImageRgba8)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "{name}: {width}x{height} pixels need {} bytes, got {}",
                            *width as usize * *height as usize * 4,
                            rgba.len()
                        ))
                    })
            }
        }
    }
}

/// An image the session took: its name, how the model sees it, its size before.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub name: String,
    /// The image as the model sees it (after resize and crop).
    pub view: DynamicImage,
    pub original: (u32, u32),
}

/// What the UI shows about a model.
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

impl ModelInfo {
    pub fn of(m: &Model) -> ModelInfo {
        let p = &m.preprocess;
        ModelInfo {
            source: m.source.clone(),
            arch: m.spec.arch.to_string(),
            classes: m.spec.classes,
            parameters: m.parameter_count(),
            layers: m.layers(),
            convs: inspect::conv_layers(m),
            producers: m
                .layers()
                .iter()
                .filter_map(|l| inspect::producing_conv(m, &l.name).map(|c| (l.name.clone(), c)))
                .collect(),
            labels: m.labels.clone(),
            device: crate::Device::from(m.device()).to_string(),
            input: format!("{}x{}x{}", p.channels(), p.size, p.size),
            saved_edits: crate::edit::saved_log(m),
            training: finetune::record_of(m),
        }
    }
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

impl Explained {
    /// A method's output as a map at the input's size.
    pub(crate) fn of(e: &Explanation, size: i64) -> Result<Explained> {
        Ok(Explained {
            method: e.method,
            target: e.target,
            layer: e.layer.clone(),
            map: attribution_map(&e.attribution, e.method, size, size)?,
            completeness_error: e.completeness_error,
        })
    }
}

/// The kernel that made a channel, as a picture and as numbers.
#[derive(Debug, Clone)]
pub struct KernelView {
    /// The convolution it belongs to.
    pub conv: String,
    pub shape: Vec<i64>,
    pub picture: RgbImage,
    /// The kernel's values, [1, in, kh, kw] flattened (the editor shows and paints them).
    pub values: Vec<f32>,
    /// The channel's own numbers beside its kernel: every one-value-per-channel parameter
    /// of the same block (bias, batch norm), with this channel's value.
    pub channel_params: Vec<(String, f32)>,
}

/// The edits in force, in their readable form.
#[derive(Debug, Clone)]
pub struct EditState {
    pub log: Vec<String>,
    /// How many undone edits can be redone.
    pub redoable: usize,
    pub knockouts: Vec<(String, i64)>,
}

/// Labelled images to evaluate on.
#[derive(Debug, Clone)]
pub enum EvalSet {
    Dataset(DatasetName),
    /// One sub-folder of images per class, named by label or index.
    Folder(PathBuf),
}

/// The edited model against the original on the same labelled images.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub edited: Evaluation,
    pub original: Evaluation,
    /// Per class, the most damaged first.
    pub changes: Vec<ClassChange>,
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

/// The images that most activate a channel, and the search behind them.
#[derive(Debug, Clone)]
pub struct Examples {
    pub images: Vec<ExampleImage>,
    /// Images searched, and how fast their activations were computed (None: kept from before).
    pub searched: usize,
    pub images_per_s: Option<f64>,
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

/// A finished run: its candidate is the session's model now.
#[derive(Debug)]
pub struct Trained {
    pub summary: Box<finetune::Summary>,
    /// The epoch of each point of the timeline.
    pub timeline: Vec<usize>,
    pub info: ModelInfo,
    /// The current image's top classes: the model the run started from, the candidate.
    pub probe: Option<(Vec<Class>, Vec<Class>)>,
}

/// A finished run whose candidate is the session's model: what it started from, its
/// timeline and its validation images, until the candidate is accepted or discarded.
pub(crate) struct Candidate {
    pub(crate) base: Model,
    pub(crate) base_editor: crate::edit::Editor,
    pub(crate) timeline: finetune::Timeline,
    pub(crate) val: finetune::ValSet,
}

/// What becomes model A.
#[derive(Debug, Clone, PartialEq)]
pub enum PinSource {
    /// The current model as it is now (its edits and knock-outs included).
    Current,
    /// The current model with every edit undone.
    BeforeEdits,
    /// The model the last retraining started from.
    BeforeRetraining,
    /// A weights file (a builtin name works too).
    File(std::path::PathBuf),
}

/// Model A and what it is, in words.
pub(super) struct Pinned {
    pub(super) model: Model,
    pub(super) what: String,
}

/// The two models on the current image.
#[derive(Debug, Clone)]
pub struct Compared {
    /// What A is ("efficientnet-lite0 before its 2 edits"), and B.
    pub a: String,
    pub b: String,
    pub weights: crate::compare::WeightChanges,
    /// With an image: both answers and maps (`None` without an image).
    pub image: Option<crate::compare::ImageComparison>,
    /// A's map, B's map over the image, and B - A.
    pub pictures: Option<[image::RgbImage; 3]>,
}

/// Both models' per-class accuracy on labelled images.
#[derive(Debug)]
pub struct ComparedAccuracy {
    pub a: Option<crate::evaluate::Evaluation>,
    pub b: Option<crate::evaluate::Evaluation>,
    pub changes: Vec<crate::compare::AccuracyChange>,
}

/// Methods (or one CAM's layers) scored on one image for one class, the best by ROAD first
/// (`crate::score` for the measures), and the methods that could not be scored, with why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Scoreboard {
    pub target: i64,
    /// The rows are one CAM method's layers (else methods).
    pub layers: bool,
    pub scores: Vec<crate::score::Score>,
    pub failed: Vec<(String, String)>,
}

impl Scoreboard {
    /// What a row is called: its layer on a board of layers, else its method.
    pub fn row_name<'a>(&self, s: &'a crate::score::Score) -> &'a str {
        match (&s.layer, self.layers) {
            (Some(l), true) => l,
            _ => &s.method,
        }
    }
}
