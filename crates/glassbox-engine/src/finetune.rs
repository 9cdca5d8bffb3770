//! Retraining in place: teach the model new classes (weight imprinting, then optionally a
//! few epochs of the new classes' weights), replace its classes (the head alone on cached
//! features, or the network from a chosen layer on, or all of it), or train the small CNN
//! from scratch. One implementation serves the app (on the engine thread, with live
//! reports, pause, a learning rate changed on the way, cancel) and `glassbox finetune`.
//!
//! The result is a candidate beside the model it started from: the base is never changed.
//! A run is replayable: the same seed, data and settings give the same weights, bit for bit
//! on the same device. A NaN or diverging loss stops the run and rolls the candidate back
//! to its last good epoch.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::arch::Arch;
use super::data::{self, DatasetName};
use super::error::{Error, Result};
use super::model::{meta, Model, ModelSource};
use super::preprocess::{self, Preprocess};
use super::weights::Weights;

/// Which weights train.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The classifier alone, on the backbone's features computed once.
    Head,
    /// This layer (a weight-key prefix such as `_blocks.12` or `layer4`) and every layer after it.
    From(String),
    /// Every weight.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    /// SGD with momentum 0.9.
    Sgd,
    Adam,
}

impl Optimizer {
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Adam => "adam",
        }
    }
}

/// Where the labelled images come from.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// One sub-folder of images per class (ImageFolder); the sub-folder names are the labels.
    Folder(PathBuf),
    /// A bundled data set's training images (MNIST, Fashion-MNIST).
    Dataset(DatasetName),
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Folder(p) => write!(f, "{}", p.display()),
            DataSource::Dataset(d) => f.write_str(d.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Keep the model's classes and append the data's new ones (imprinted, then the new
    /// classes' weights trained for `epochs`). Otherwise the data's classes replace them.
    pub add_classes: bool,
    /// A new small CNN (random weights) instead of the model: training from scratch.
    pub scratch: bool,
    pub scope: Scope,
    pub epochs: usize,
    pub lr: f64,
    pub batch: i64,
    pub optimizer: Optimizer,
    pub seed: i64,
    /// Fraction of each class held out for validation (0 to 0.9).
    pub val_split: f64,
    /// Random horizontal flips and crops (whole-network and from-a-layer training).
    pub augment: bool,
    /// At most this many images per class (0: all).
    pub per_class: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            add_classes: false,
            scratch: false,
            scope: Scope::Head,
            epochs: 10,
            lr: 1e-3,
            batch: 32,
            optimizer: Optimizer::Adam,
            seed: 0,
            val_split: 0.15,
            augment: true,
            per_class: 0,
        }
    }
}

impl Config {
    /// Refuses settings no run could use, before any image is read.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(format!(
                "the learning rate must be a positive number (got {}); try 0.001",
                self.lr
            )));
        }
        if !(0.0..=0.9).contains(&self.val_split) {
            return Err(Error::invalid(format!(
                "the validation split must be between 0 and 0.9 (got {})",
                self.val_split
            )));
        }
        if !(1..=4096).contains(&self.batch) {
            return Err(Error::invalid(format!(
                "the batch must be 1 to 4096 images (got {})",
                self.batch
            )));
        }
        if self.epochs > 10_000 {
            return Err(Error::invalid(format!("at most 10000 epochs (got {})", self.epochs)));
        }
        if self.add_classes && self.scope != Scope::Head {
            return Err(Error::invalid(
                "adding classes keeps the old ones by training only the new classes' weights; it cannot train the network from a layer or whole (leave out --from/--full, or leave out --add-classes to replace the classes)",
            ));
        }
        if self.scratch && self.add_classes {
            return Err(Error::invalid(
                "a model trained from scratch has no old classes to keep: leave out --add-classes",
            ));
        }
        if !self.add_classes && self.epochs == 0 {
            return Err(Error::invalid(
                "replacing the classes needs at least one epoch (only adding classes can imprint them with 0 epochs)",
            ));
        }
        Ok(())
    }

    /// What is trained, in words ("head", "from _blocks.12", "imprint", ...).
    pub fn mode(&self) -> String {
        match (&self.scope, self.add_classes, self.scratch) {
            (_, true, _) if self.epochs == 0 => "imprint".into(),
            (_, true, _) => "imprint + new classes' weights".into(),
            (_, _, true) => "from scratch".into(),
            (Scope::Head, _, _) => "head".into(),
            (Scope::From(l), _, _) => format!("from {l}"),
            (Scope::Full, _, _) => "full".into(),
        }
    }
}

/// Shared with whoever started the run: pause, resume and a new learning rate, read at
/// every step. (Cancel is the engine's: a request's cancellation.)
#[derive(Debug, Default)]
pub struct Control {
    paused: AtomicBool,
    /// A new learning rate's bits, 0 for none pending.
    lr: AtomicU64,
}

impl Control {
    pub fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::SeqCst);
    }
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }
    /// A new learning rate from the next step on; refused unless finite and positive.
    pub fn set_lr(&self, lr: f64) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::invalid(format!(
                "the learning rate must be a positive number (got {lr})"
            )));
        }
        self.lr.store(lr.to_bits(), Ordering::SeqCst);
        Ok(())
    }
    fn take_lr(&self) -> Option<f64> {
        match self.lr.swap(0, Ordering::SeqCst) {
            0 => None,
            b => Some(f64::from_bits(b)),
        }
    }
}

/// One epoch's figures (epoch 0: the model before training).
#[derive(Debug, Clone, Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: Option<f64>,
    pub train_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub lr: f64,
    pub seconds: f64,
}

/// What a run reports while it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// The data is read and the run planned.
    Plan(Plan),
    /// Features of the images computed so far (head-only training and imprinting).
    Features {
        done: usize,
        total: usize,
    },
    Step {
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
        lr: f64,
        /// Seconds since training started.
        elapsed: f64,
    },
    Epoch(EpochStats),
    /// Waiting while paused.
    Paused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub mode: String,
    pub classes: Vec<String>,
    pub train_images: usize,
    pub val_images: usize,
    pub skipped: Vec<String>,
    pub epochs: usize,
    pub batch: i64,
    pub steps_per_epoch: usize,
    /// Estimated memory the run takes (weights, gradients, optimiser state, a batch's
    /// activations or the cached features), bytes.
    pub estimate_bytes: i64,
    pub budget_bytes: i64,
    /// Said when the batch was reduced to fit.
    pub note: Option<String>,
}

/// A data class's result on the validation images.
#[derive(Debug, Clone, Serialize)]
pub struct ClassVal {
    pub label: String,
    /// The class's index in the trained model.
    pub index: i64,
    pub correct: u64,
    pub total: u64,
    pub accuracy: f64,
    /// The starting model's accuracy on the same images, when it knew the class.
    pub base_accuracy: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: String,
    pub plan: Plan,
    /// Classes added by imprinting.
    pub imprinted: Vec<String>,
    pub epochs: Vec<EpochStats>,
    pub val_accuracy: Option<f64>,
    pub per_class: Vec<ClassVal>,
    /// confusion[true][predicted] over the data's classes, plus a last column: predicted a
    /// class the data does not have.
    pub confusion: Vec<Vec<u64>>,
    /// Why the run stopped early (a rollback), if it did.
    pub note: Option<String>,
    /// What the saved file's metadata records.
    pub record: BTreeMap<String, String>,
    pub seconds: f64,
}

/// Weights of the candidate at points of the run, to scrub through.
#[derive(Default)]
pub struct Timeline {
    /// (epoch, the weights that change during the run), on the CPU.
    pub snapshots: Vec<(usize, Vec<(String, Tensor)>)>,
}

impl Timeline {
    pub fn epochs(&self) -> Vec<usize> {
        self.snapshots.iter().map(|(e, _)| *e).collect()
    }

    /// Puts snapshot `i`'s weights into `model`.
    pub fn restore(&self, model: &Model, i: usize) -> Result<()> {
        let (_, vars) = self.snapshots.get(i).ok_or_else(|| {
            Error::invalid(format!(
                "the timeline has {} points; no point {i}",
                self.snapshots.len()
            ))
        })?;
        restore(model, vars)
    }
}

/// The validation images kept for the confusion matrix's cells.
pub struct ValSet {
    /// u8 [N, C, S, S] as the model sees them.
    pub images: Tensor,
    /// Data class of each image.
    pub truth: Vec<usize>,
    /// Confusion column of each image's prediction (the last column: another class).
    pub predicted: Vec<usize>,
    /// The file of each image (None for a bundled data set's).
    pub files: Vec<Option<PathBuf>>,
}

impl ValSet {
    /// Images of one cell of the confusion matrix, at most `max`.
    pub fn cell(&self, truth: usize, predicted: usize, max: usize) -> Vec<usize> {
        (0..self.truth.len())
            .filter(|&i| self.truth[i] == truth && self.predicted[i] == predicted)
            .take(max)
            .collect()
    }

    /// Image `i` as a picture (what the model sees).
    pub fn picture(&self, i: usize) -> Result<image::DynamicImage> {
        picture(&self.images.get(i as i64))
    }
}

pub struct Outcome {
    pub model: Model,
    pub summary: Summary,
    pub timeline: Timeline,
    pub val: ValSet,
}

/// Labelled images read for a model: u8 [N, C, S, S] as its preprocessing makes them.
pub struct Data {
    pub classes: Vec<String>,
    pub images: Tensor,
    pub labels: Vec<usize>,
    pub files: Vec<Option<PathBuf>>,
    pub skipped: Vec<String>,
    /// sha256 over every image's class, name and bytes (a folder) or the data set's name and
    /// the images taken (a bundled set).
    pub fingerprint: String,
    pub source: String,
}

/// At most this many bytes of images held for a run.
/// (A run holds them twice: as read, and split into training and validation images.)
const MAX_DATA_BYTES: i64 = 2 << 30;
/// At most this many bytes of timeline snapshots.
const TIMELINE_BYTES: i64 = 1 << 30;

/// The name of the classifier layer (its weight key without `.weight`).
pub fn classifier_layer(arch: Arch) -> &'static str {
    arch.classifier_key().trim_end_matches(".weight")
}

fn bias_key(arch: Arch) -> String {
    format!("{}.bias", classifier_layer(arch))
}

/// Reads the labelled images of `source` for `model`'s preprocessing. Unreadable files are
/// skipped (listed); empty classes, a single class and too much data are refused.
pub fn read_data(model_pre: &Preprocess, source: &DataSource, per_class: usize) -> Result<Data> {
    let c = model_pre.channels();
    let s = model_pre.size as i64;
    let per_image = c * s * s;
    match source {
        DataSource::Folder(dir) => {
            // A folder of images without class sub-folders is one class, named by the folder.
            let subs = match preprocess::class_folders(dir, "named by its label") {
                Ok(s) => s,
                Err(_) if dir.is_dir() && preprocess::images_in(dir).is_ok_and(|v| !v.is_empty()) => {
                    vec![dir.clone()]
                }
                Err(e) => return Err(e),
            };
            let mut lists = Vec::new();
            for sub in &subs {
                let mut imgs = preprocess::images_in(sub)?;
                if per_class > 0 {
                    imgs.truncate(per_class);
                }
                if imgs.is_empty() {
                    return Err(Error::file(
                        sub,
                        "holds no images (png, jpg, webp, gif, bmp, tiff); add some or remove the folder",
                    ));
                }
                lists.push(imgs);
            }
            let total: usize = lists.iter().map(Vec::len).sum();
            check_data_bytes(total as i64 * per_image)?;
            use sha2::Digest;
            let mut hash = sha2::Sha256::new();
            let mut classes = Vec::new();
            let mut views = Vec::new();
            let mut labels = Vec::new();
            let mut files = Vec::new();
            let mut skipped = Vec::new();
            for (k, (sub, imgs)) in subs.iter().zip(lists).enumerate() {
                let name = sub
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let before = labels.len();
                for f in imgs {
                    let read = preprocess::max_image_bytes();
                    let bytes = match super::files::read_file(&f, read) {
                        Ok(b) => b,
                        Err(e) => {
                            skipped.push(e.to_string());
                            continue;
                        }
                    };
                    match preprocess::decode(&bytes, &f) {
                        Ok(img) => {
                            hash.update(name.as_bytes());
                            hash.update(
                                f.file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default(),
                            );
                            hash.update(&bytes);
                            views.push(view_tensor(model_pre, &img));
                            labels.push(k);
                            files.push(Some(f));
                        }
                        Err(e) => skipped.push(e.to_string()),
                    }
                }
                if labels.len() == before {
                    return Err(Error::file(
                        sub,
                        "has no image that could be read; see the files skipped",
                    ));
                }
                classes.push(name);
            }
            Ok(Data {
                classes,
                images: Tensor::stack(&views, 0),
                labels,
                files,
                skipped,
                fingerprint: format!("sha256:{:x}", hash.finalize()),
                source: dir.display().to_string(),
            })
        }
        DataSource::Dataset(name) => {
            let d = data::load(*name, &data::data_dir())?;
            let labels_all = Vec::<i64>::try_from(&d.train.labels).map_err(Error::from)?;
            let mut count = [0usize; 10];
            let mut take = Vec::new();
            for (i, l) in labels_all.iter().enumerate() {
                let l = *l as usize;
                if l < 10 && (per_class == 0 || count[l] < per_class) {
                    count[l] += 1;
                    take.push(i as i64);
                }
            }
            check_data_bytes(take.len() as i64 * per_image)?;
            let idx = Tensor::from_slice(&take);
            let raw = d.train.images.index_select(0, &idx);
            let direct = model_pre.gray && s == raw.size()[2] && model_pre.resize == preprocess::Resize::Squash;
            let images = if direct {
                raw
            } else {
                let n = raw.size()[0];
                let views: Vec<Tensor> = (0..n)
                    .map(|i| -> Result<Tensor> {
                        let px = Vec::<u8>::try_from(&raw.get(i).flatten(0, -1)).map_err(Error::from)?;
                        let (h, w) = (raw.size()[2] as u32, raw.size()[3] as u32);
                        let img = image::GrayImage::from_raw(w, h, px)
                            .ok_or_else(|| Error::invalid("a data set image has the wrong size"))?;
                        Ok(view_tensor(model_pre, &image::DynamicImage::ImageLuma8(img)))
                    })
                    .collect::<Result<_>>()?;
                Tensor::stack(&views, 0)
            };
            let labels: Vec<usize> = take.iter().map(|&i| labels_all[i as usize] as usize).collect();
            use sha2::Digest;
            let mut hash = sha2::Sha256::new();
            hash.update(name.as_str());
            for i in &take {
                hash.update(i.to_le_bytes());
            }
            Ok(Data {
                classes: name.labels(),
                files: vec![None; labels.len()],
                images,
                labels,
                skipped: Vec::new(),
                fingerprint: format!("sha256:{:x}", hash.finalize()),
                source: name.as_str().to_string(),
            })
        }
    }
}

fn check_data_bytes(bytes: i64) -> Result<()> {
    if bytes > MAX_DATA_BYTES {
        return Err(Error::invalid(format!(
            "the images would take {:.1} GiB as the model sees them, more than the {} GiB a run may hold; take fewer images per class",
            bytes as f64 / (1u64 << 30) as f64,
            MAX_DATA_BYTES >> 30
        )));
    }
    Ok(())
}

/// u8 [C, S, S]: the image as the model sees it, before normalisation.
fn view_tensor(p: &Preprocess, img: &image::DynamicImage) -> Tensor {
    let v = p.view(img);
    let (w, h) = (v.width() as i64, v.height() as i64);
    let raw = if p.gray {
        v.to_luma8().into_raw()
    } else {
        v.to_rgb8().into_raw()
    };
    Tensor::from_slice(&raw)
        .view([h, w, p.channels()])
        .permute([2, 0, 1])
        .contiguous()
}

/// A u8 [C, S, S] tensor as a picture.
pub fn picture(t: &Tensor) -> Result<image::DynamicImage> {
    let (c, h, w) = (t.size()[0], t.size()[1] as u32, t.size()[2] as u32);
    let raw = Vec::<u8>::try_from(&t.permute([1, 2, 0]).contiguous().flatten(0, -1)).map_err(Error::from)?;
    let bad = || Error::invalid("an image of the wrong size");
    Ok(if c == 1 {
        image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, raw).ok_or_else(bad)?)
    } else {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, raw).ok_or_else(bad)?)
    })
}

/// A u8 batch normalised by the model's preprocessing, on its device.
pub fn normalise(model: &Model, x: &Tensor) -> Tensor {
    let p = &model.preprocess;
    let c = p.channels();
    let dev = model.device();
    let mean = Tensor::from_slice(&p.mean)
        .to_kind(Kind::Float)
        .view([1, c, 1, 1])
        .to_device(dev);
    let std = Tensor::from_slice(&p.std)
        .to_kind(Kind::Float)
        .view([1, c, 1, 1])
        .to_device(dev);
    (x.to_device(dev).to_kind(Kind::Float) - mean) / std
}

/// The classifier's input for a normalised batch (its features), without gradients.
pub fn features(model: &Model, x: &Tensor) -> Result<Tensor> {
    let cls = classifier_layer(model.spec.arch);
    let mut prev: Option<Tensor> = None;
    let mut feats: Option<Tensor> = None;
    let _logits = tch::no_grad(|| {
        model.forward_hooked(x, false, &mut |name, _, t| {
            if name == cls {
                feats = prev.take();
            } else {
                prev = Some(t.shallow_clone());
            }
            t
        })
    });
    feats
        .map(|f| f.flatten(1, -1))
        .ok_or_else(|| Error::invalid(format!("the model has no `{cls}` layer to take features for")))
}

/// The model's classifier applied to features (the classifier's inputs, `features`).
pub fn head_logits(model: &Model, features: &Tensor) -> Tensor {
    let vars = model.vs.variables();
    let arch = model.spec.arch;
    let w = &vars[arch.classifier_key()];
    features.to_device(w.device()).matmul(&w.tr()) + &vars[&bias_key(arch)]
}

/// Features of u8 images in batches; `tick(done)` after each batch, false stops.
/// Logits of u8 images, in batches, without gradients.
fn logits_of(model: &Model, images: &Tensor) -> Tensor {
    let n = images.size()[0];
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let len = 64.min(n - i);
        out.push(model.logits(&normalise(model, &images.narrow(0, i, len))));
        i += len;
    }
    Tensor::cat(&out, 0)
}

pub fn features_of(model: &Model, images: &Tensor, tick: &mut dyn FnMut(usize) -> bool) -> Result<Tensor> {
    let n = images.size()[0];
    let mut out = vec![Tensor::zeros(
        [0, model.spec.arch.features()],
        (Kind::Float, model.device()),
    )];
    let mut i = 0;
    while i < n {
        let len = 32.min(n - i);
        out.push(features(model, &normalise(model, &images.narrow(0, i, len)))?);
        i += len;
        if !tick(i as usize) {
            return Err(Error::Cancelled);
        }
    }
    Ok(Tensor::cat(&out, 0))
}

/// How far (in logits) an imprinted class is placed above the old classes' best logit on
/// its own images.
pub const IMPRINT_MARGIN: f64 = 1.0;

/// Weight imprinting (Qi et al. 2018), calibrated for a linear classifier with a bias (the
/// paper's classifier is normalised; pretrained ones are not). The new class's weight is the
/// normalised mean of its images' normalised features (the paper's), scaled to the mean
/// norm of the old classes' weights; its bias puts its logit, on average over its own
/// images, [`IMPRINT_MARGIN`] above the best old class's:
/// `b = mean_i(max_k(w_k.f_i + b_k) - w.f_i) + margin`.
pub fn imprint(features: &Tensor, old_w: &Tensor, old_b: &Tensor) -> (Tensor, Tensor) {
    let f = features.to_kind(Kind::Float);
    let unit = &f / f.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let mean = unit.mean_dim([0i64].as_slice(), false, Kind::Float);
    let dir = &mean / mean.norm().clamp_min(1e-12);
    let w = dir * old_w.norm_scalaropt_dim(2, [1], false).mean(Kind::Float);
    let best_old = (f.matmul(&old_w.tr()) + old_b).amax([1i64].as_slice(), false);
    let b = (best_old - f.matmul(&w)).mean(Kind::Float) + IMPRINT_MARGIN;
    (w, b)
}

/// A model like `base` with classifier `w`, `b` and these labels (checked and measured as
/// any opened model is).
fn with_head(base: &Model, labels: Vec<String>, w: &Tensor, b: &Tensor) -> Result<Model> {
    let arch = base.spec.arch;
    let (wk, bk) = (arch.classifier_key(), bias_key(arch));
    let tensors = tch::no_grad(|| {
        base.vs
            .variables()
            .into_iter()
            .map(|(n, t)| {
                let t = if n == wk {
                    w.shallow_clone()
                } else if n == bk {
                    b.shallow_clone()
                } else {
                    t.copy()
                };
                (n, t.to_device(Device::Cpu))
            })
            .collect::<Vec<_>>()
    });
    let mut metadata = base.metadata.clone();
    metadata.insert(
        meta::LABELS.into(),
        serde_json::to_string(&labels).expect("labels serialise"),
    );
    metadata.insert(
        meta::PREPROCESS.into(),
        serde_json::to_string(&base.preprocess).expect("preprocessing serialises"),
    );
    metadata.remove(meta::KNOCKOUTS);
    let mut m = Model::from_weights(Weights { tensors, metadata }, Some(arch), base.device(), None)?;
    m.knockouts = base
        .knockouts
        .iter()
        .filter(|(l, c)| super::edit::check_channel(&m, l, *c).is_ok())
        .cloned()
        .collect();
    m.source = ModelSource::Created(format!("{} retrained", base.source.short_name()));
    Ok(m)
}

/// A new classifier as PyTorch's `nn.Linear` initialises one (uniform in ±1/sqrt(inputs)).
fn fresh_head(classes: i64, inputs: i64) -> (Tensor, Tensor) {
    let bound = 1.0 / (inputs as f64).sqrt();
    let u = |shape: &[i64]| Tensor::rand(shape, (Kind::Float, Device::Cpu)) * (2.0 * bound) - bound;
    (u(&[classes, inputs]), u(&[classes]))
}

/// The weights that change in a run of `scope` (with the buffers of the layers that train).
fn changing(model: &Model, scope: &Scope) -> Result<Vec<String>> {
    let vars = model.vs.variables();
    let mut names: Vec<String> = match scope {
        Scope::Full => vars.keys().cloned().collect(),
        Scope::Head => {
            let arch = model.spec.arch;
            vec![arch.classifier_key().to_string(), bias_key(arch)]
                .into_iter()
                .filter(|k| vars.contains_key(k))
                .collect()
        }
        Scope::From(from) => {
            let order: Vec<String> = model.layers().into_iter().map(|l| l.name).collect();
            let matches = |name: &str, l: &str| name == l || name.strip_prefix(l).is_some_and(|r| r.starts_with('.'));
            let start = order.iter().position(|n| matches(n, from)).ok_or_else(|| {
                Error::invalid(format!(
                    "the model has no layer `{from}` to train from; layers include {}",
                    super::explain::name_sample(&order)
                ))
            })?;
            vars.keys()
                .filter(|k| {
                    let layer = k.rsplit_once('.').map_or(k.as_str(), |(l, _)| l);
                    match order.iter().position(|n| n == layer || matches(n, layer)) {
                        Some(p) => p >= start,
                        None => true,
                    }
                })
                .cloned()
                .collect()
        }
    };
    names.sort();
    Ok(names)
}

fn snapshot(model: &Model, names: &[String]) -> Vec<(String, Tensor)> {
    let vars = model.vs.variables();
    tch::no_grad(|| {
        names
            .iter()
            .filter_map(|n| vars.get(n).map(|t| (n.clone(), t.to_device(Device::Cpu).copy())))
            .collect()
    })
}

fn restore(model: &Model, vars: &[(String, Tensor)]) -> Result<()> {
    let mut own = model.vs.variables();
    tch::no_grad(|| {
        for (n, t) in vars {
            let v = own
                .get_mut(n)
                .ok_or_else(|| Error::invalid(format!("the model has no weight `{n}` to restore")))?;
            v.copy_(t);
        }
        Ok(())
    })
}

/// What a run needs besides its settings: reports (false: stop) and the shared controls.
pub struct Hooks<'a> {
    pub event: &'a mut dyn FnMut(Event) -> bool,
    pub control: &'a Control,
}

impl Hooks<'_> {
    fn report(&mut self, e: Event) -> Result<()> {
        if (self.event)(e) {
            Ok(())
        } else {
            Err(Error::Cancelled)
        }
    }
    /// Waits while paused (reporting, so a cancel still stops it).
    fn wait_if_paused(&mut self) -> Result<()> {
        while self.control.paused() {
            self.report(Event::Paused)?;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }
}

/// The training and validation indices: per class, a seeded shuffle, `split` held out.
fn split(data: &Data, split: f64, seed: i64) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed as u64);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (k, name) in data.classes.iter().enumerate() {
        let mut idx: Vec<i64> = (0..data.labels.len())
            .filter(|&i| data.labels[i] == k)
            .map(|i| i as i64)
            .collect();
        if split > 0.0 && idx.len() < 2 {
            return Err(Error::invalid(format!(
                "class `{name}` has {} image(s): holding out a validation split needs at least 2 per class (add images, or use a validation split of 0)",
                idx.len()
            )));
        }
        idx.shuffle(&mut rng);
        let mut n_val = (idx.len() as f64 * split).round() as usize;
        if split > 0.0 {
            n_val = n_val.clamp(1, idx.len() - 1);
        }
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort();
    val.sort();
    Ok((train, val))
}

/// Random horizontal flips and crops (padding by an eighth, reflected) of a float batch.
fn augment(x: &Tensor) -> Result<Tensor> {
    let (n, s) = (x.size()[0], x.size()[3]);
    let pad = (s / 8).max(1);
    let flip = Vec::<f32>::try_from(&Tensor::rand([n], (Kind::Float, Device::Cpu)))?;
    let offs = Vec::<i64>::try_from(&Tensor::randint(2 * pad + 1, [n * 2], (Kind::Int64, Device::Cpu)))?;
    let padded = x.reflection_pad2d([pad, pad, pad, pad]);
    let parts: Vec<Tensor> = (0..n)
        .map(|i| {
            let (dy, dx) = (offs[2 * i as usize], offs[2 * i as usize + 1]);
            let p = padded.get(i).narrow(1, dy, s).narrow(2, dx, s);
            if flip[i as usize] < 0.5 {
                p.flip([2])
            } else {
                p
            }
        })
        .collect();
    Ok(Tensor::stack(&parts, 0))
}

/// The memory a run takes, and the batch that fits.
fn plan_memory(
    model: &Model,
    cfg: &Config,
    scope: &Scope,
    n_images: usize,
    budget: i64,
) -> Result<(i64, i64, i64, Option<String>)> {
    let params: i64 = model.vs.variables().values().map(|v| v.numel() as i64).sum();
    let states = match cfg.optimizer {
        Optimizer::Sgd => 1,
        Optimizer::Adam => 2,
    };
    if *scope == Scope::Head {
        let feats = n_images as i64 * model.spec.arch.features() * 4;
        let head = (model.spec.classes + 64) * model.spec.arch.features() * 4 * (2 + states);
        let need = params * 4 + feats + head + model.activation_bytes() * 2 * 32;
        if need > budget {
            return Err(Error::invalid(format!(
                "training the head needs about {:.1} GiB (features of {n_images} images), more than the {:.1} GiB available; take fewer images per class",
                need as f64 / (1u64 << 30) as f64,
                budget as f64 / (1u64 << 30) as f64
            )));
        }
        return Ok((cfg.batch, need, budget, None));
    }
    let fixed = params * 4 * (2 + states);
    // Saved activations for backward, their gradients and the augmented batch.
    let per_image = model.activation_bytes() * 3;
    let need = |b: i64| fixed + b * per_image;
    if need(cfg.batch) <= budget {
        return Ok((cfg.batch, need(cfg.batch), budget, None));
    }
    let fit = (budget - fixed) / per_image.max(1);
    if fit < 1 {
        return Err(Error::invalid(format!(
            "training needs about {:.1} GiB even for one image at a time (weights, gradients, optimiser state, activations), more than the {:.1} GiB available; train the head only or from a later layer",
            need(1) as f64 / (1u64 << 30) as f64,
            budget as f64 / (1u64 << 30) as f64
        )));
    }
    Ok((
        fit,
        need(fit),
        budget,
        Some(format!(
            "batch reduced from {} to {fit}: {} images would need about {:.1} GiB, {:.1} GiB is available",
            cfg.batch,
            cfg.batch,
            need(cfg.batch) as f64 / (1u64 << 30) as f64,
            budget as f64 / (1u64 << 30) as f64
        )),
    ))
}

/// Loss, accuracy and predicted classes of `logits` against `y`.
fn scores(logits: &Tensor, y: &Tensor) -> (f64, i64, Vec<i64>) {
    let loss = logits.cross_entropy_for_logits(y).double_value(&[]);
    let pred = logits.argmax(-1, false);
    let correct = pred.eq_tensor(y).sum(Kind::Int64).int64_value(&[]);
    (
        loss,
        correct,
        Vec::<i64>::try_from(&pred.to_device(Device::Cpu)).unwrap_or_default(),
    )
}

/// Runs a fine-tuning (or imprinting, or training from scratch) of `base` on `data`.
pub fn run(base: &Model, data: &Data, cfg: &Config, hooks: &mut Hooks) -> Result<Outcome> {
    cfg.validate()?;
    let started = Instant::now();
    let device = base.device();
    let arch = base.spec.arch;
    if data.classes.len() < 2 && !cfg.add_classes {
        return Err(Error::invalid(format!(
            "the data has one class (`{}`); a classifier needs at least two (or add it to the model's classes with --add-classes)",
            data.classes.first().cloned().unwrap_or_default()
        )));
    }
    // The class of the model each data class trains: a label the model has (adding), else new.
    let old_k = base.spec.classes;
    let mut labels: Vec<String>;
    let mut heads = Vec::new();
    let mut new_classes = Vec::new();
    if cfg.add_classes {
        labels = base.labels.clone();
        for name in &data.classes {
            match super::evaluate::class_of(base, name) {
                Some(i) => heads.push(i),
                None => {
                    heads.push(labels.len() as i64);
                    labels.push(name.clone());
                    new_classes.push(name.clone());
                }
            }
        }
        if new_classes.is_empty() {
            return Err(Error::invalid(format!(
                "every class of the data is already one of the model's ({}); nothing to add. Leave out --add-classes to fine-tune on them",
                data.classes.join(", ")
            )));
        }
    } else {
        labels = data.classes.clone();
        heads = (0..data.classes.len() as i64).collect();
    }
    let (train_idx, val_idx) = split(data, cfg.val_split, cfg.seed)?;
    if train_idx.is_empty() {
        return Err(Error::invalid(
            "no image is left for training after the validation split",
        ));
    }
    tch::manual_seed(cfg.seed);
    let k = labels.len() as i64;
    let feats_n = arch.features();
    let scope = if cfg.scratch && cfg.scope == Scope::Head {
        Scope::Full
    } else {
        cfg.scope.clone()
    };
    // The candidate: the base with its new head, or a new small CNN.
    let cand = if cfg.scratch {
        let mut m = Model::new_random(Arch::TinyCnn, k, 1, device);
        m.labels = labels.clone();
        m.source = ModelSource::Created("new tiny-cnn".into());
        m
    } else if cfg.add_classes {
        let vars = base.vs.variables();
        let w = vars
            .get(arch.classifier_key())
            .expect("the classifier exists")
            .to_device(Device::Cpu);
        let b = vars
            .get(&bias_key(arch))
            .expect("the classifier has a bias")
            .to_device(Device::Cpu);
        let pad_w = Tensor::zeros([k - old_k, feats_n], (Kind::Float, Device::Cpu));
        let pad_b = Tensor::zeros([k - old_k], (Kind::Float, Device::Cpu));
        with_head(
            base,
            labels.clone(),
            &Tensor::cat(&[w, pad_w], 0),
            &Tensor::cat(&[b, pad_b], 0),
        )?
    } else {
        let (w, b) = fresh_head(k, feats_n);
        with_head(base, labels.clone(), &w, &b)?
    };
    let (batch, estimate, budget, note) = plan_memory(
        &cand,
        cfg,
        &scope,
        data.labels.len(),
        super::explain::memory_for_batches(device),
    )?;
    let steps = train_idx.len().div_ceil(batch as usize);
    let plan = Plan {
        mode: cfg.mode(),
        classes: data.classes.clone(),
        train_images: train_idx.len(),
        val_images: val_idx.len(),
        skipped: data.skipped.clone(),
        epochs: cfg.epochs,
        batch,
        steps_per_epoch: steps,
        estimate_bytes: estimate,
        budget_bytes: budget,
        note,
    };
    hooks.report(Event::Plan(plan.clone()))?;
    let tidx = Tensor::from_slice(&train_idx);
    let vidx = Tensor::from_slice(&val_idx);
    let heads_t = Tensor::from_slice(&heads);
    let y_all = heads_t.index_select(
        0,
        &Tensor::from_slice(&data.labels.iter().map(|&l| l as i64).collect::<Vec<_>>()),
    );
    let (train_x, train_y) = (data.images.index_select(0, &tidx), y_all.index_select(0, &tidx));
    let (val_x, val_y) = (data.images.index_select(0, &vidx), y_all.index_select(0, &vidx));
    let n_train = train_idx.len() as i64;

    // Head-only and imprinting: the backbone's features, once.
    let head_mode = scope == Scope::Head && !cfg.scratch;
    let (train_f, val_f) = if head_mode {
        let total = (n_train + val_x.size()[0]) as usize;
        let tf = features_of(&cand, &train_x, &mut |d| {
            (hooks.event)(Event::Features { done: d, total })
        })?;
        let vf = features_of(&cand, &val_x, &mut |d| {
            (hooks.event)(Event::Features {
                done: n_train as usize + d,
                total,
            })
        })?;
        (Some(tf), Some(vf))
    } else {
        (None, None)
    };
    let vars = cand.vs.variables();
    let head_w = vars.get(arch.classifier_key()).map(Tensor::shallow_clone);
    let head_b = vars.get(&bias_key(arch)).map(Tensor::shallow_clone);
    if cfg.add_classes {
        // Imprinting: each new class from its training images' features.
        let (Some(tf), Some(w), Some(b)) = (&train_f, &head_w, &head_b) else {
            unreachable!("adding classes is head-only")
        };
        let old_w = w.narrow(0, 0, old_k);
        let old_b = b.narrow(0, 0, old_k);
        let ty = train_y.to_device(tf.device());
        tch::no_grad(|| -> Result<()> {
            for (j, _) in new_classes.iter().enumerate() {
                let class = old_k + j as i64;
                let rows = ty.eq(class).nonzero().squeeze_dim(1);
                let (iw, ib) = imprint(&tf.index_select(0, &rows), &old_w, &old_b);
                w.get(class).copy_(&iw);
                b.get(class).copy_(&ib.view([]));
            }
            Ok(())
        })?;
    }

    // Which weights train.
    let names = changing(&cand, &scope)?;
    let trainable: std::collections::HashSet<&String> = names.iter().collect();
    for (n, v) in cand.vs.variables() {
        if !is_buffer(&n) {
            let _ = v.set_requires_grad(trainable.contains(&n));
        }
    }
    let snapshot_bytes: i64 = snapshot_size(&cand, &names);
    let every = ((cfg.epochs as i64 * snapshot_bytes) / TIMELINE_BYTES + 1).max(1) as usize;
    let mut timeline = Timeline::default();
    let mut opt = match cfg.optimizer {
        Optimizer::Sgd => nn::Sgd {
            momentum: 0.9,
            ..Default::default()
        }
        .build(&cand.vs, cfg.lr)?,
        Optimizer::Adam => nn::Adam::default().build(&cand.vs, cfg.lr)?,
    };
    let mut lr = cfg.lr;
    let mut lr_changes: Vec<String> = Vec::new();
    let from = match &scope {
        Scope::From(l) => Some(l.clone()),
        _ => None,
    };

    // Validation loss, accuracy and predictions.
    let validate = |m: &Model| -> Result<(Option<f64>, Option<f64>, Vec<i64>)> {
        let n = val_y.size()[0];
        if n == 0 {
            return Ok((None, None, Vec::new()));
        }
        let logits = match &val_f {
            Some(vf) => tch::no_grad(|| head_logits(m, vf)),
            None => logits_of(m, &val_x),
        };
        let (loss, correct, pred) = scores(&logits, &val_y.to_device(logits.device()));
        Ok((Some(loss), Some(correct as f64 / n as f64), pred))
    };

    let (vl, va, _) = validate(&cand)?;
    let mut history = vec![EpochStats {
        epoch: 0,
        train_loss: None,
        train_accuracy: None,
        val_loss: vl,
        val_accuracy: va,
        lr,
        seconds: 0.0,
    }];
    hooks.report(Event::Epoch(history[0].clone()))?;
    timeline.snapshots.push((0, snapshot(&cand, &names)));
    let mut last_good = (0usize, snapshot(&cand, &names));
    let mut stop_note = None;
    let train_t0 = Instant::now();
    let mut first_loss: Option<f64> = None;
    'epochs: for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let perm = Tensor::randperm(n_train, (Kind::Int64, Device::Cpu));
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0i64);
        for step in 0..steps {
            hooks.wait_if_paused()?;
            if let Some(new) = hooks.control.take_lr() {
                lr = new;
                opt.set_lr(lr);
                lr_changes.push(format!("{lr} from epoch {epoch} step {}", step + 1));
            }
            let start = step as i64 * batch;
            let len = batch.min(n_train - start);
            let idx = perm.narrow(0, start, len);
            let y = train_y.index_select(0, &idx).to_device(device);
            let logits = match &train_f {
                Some(tf) => {
                    let f = tf.index_select(0, &idx.to_device(tf.device()));
                    head_logits(&cand, &f)
                }
                None => {
                    let x = normalise(&cand, &train_x.index_select(0, &idx));
                    let x = if cfg.augment {
                        augment(&x.to_device(Device::Cpu))?.to_device(device)
                    } else {
                        x
                    };
                    cand.forward_train(&x, from.as_deref())
                }
            };
            let loss = logits.cross_entropy_for_logits(&y);
            let lv = loss.double_value(&[]);
            let first = *first_loss.get_or_insert(lv);
            if !lv.is_finite() || lv > 100.0 * first.max(1.0) {
                restore(&cand, &last_good.1)?;
                stop_note = Some(format!(
                    "the loss {} at epoch {epoch}, step {} (learning rate {lr}); the run stopped and the model was rolled back to epoch {}, its last good one",
                    if lv.is_finite() { format!("diverged to {lv:.3e}") } else { format!("became {lv}") },
                    step + 1,
                    last_good.0
                ));
                break 'epochs;
            }
            opt.zero_grad();
            loss.backward();
            if cfg.add_classes {
                // Only the new classes' weights learn: the old ones keep working as they were.
                for t in [&head_w, &head_b].into_iter().flatten() {
                    let g = t.grad();
                    if g.defined() {
                        let _ = g.narrow(0, 0, old_k).zero_();
                    }
                }
            }
            opt.step();
            loss_sum += lv * len as f64;
            correct += tch::no_grad(|| logits.argmax(-1, false).eq_tensor(&y).sum(Kind::Int64).int64_value(&[]));
            seen += len;
            hooks.report(Event::Step {
                epoch,
                step: step + 1,
                steps,
                loss: lv,
                lr,
                elapsed: train_t0.elapsed().as_secs_f64(),
            })?;
        }
        let (vl, va, _) = validate(&cand)?;
        let finite = vl.is_none_or(f64::is_finite);
        if !finite {
            restore(&cand, &last_good.1)?;
            stop_note = Some(format!(
                "the validation loss became {} at epoch {epoch}; the model was rolled back to epoch {}, its last good one",
                vl.unwrap_or(f64::NAN),
                last_good.0
            ));
            break;
        }
        let stats = EpochStats {
            epoch,
            train_loss: Some(loss_sum / seen.max(1) as f64),
            train_accuracy: Some(correct as f64 / seen.max(1) as f64),
            val_loss: vl,
            val_accuracy: va,
            lr,
            seconds: t0.elapsed().as_secs_f64(),
        };
        hooks.report(Event::Epoch(stats.clone()))?;
        history.push(stats);
        last_good = (epoch, snapshot(&cand, &names));
        if epoch % every == 0 || epoch == cfg.epochs {
            timeline.snapshots.push((epoch, snapshot(&cand, &names)));
        }
    }
    if stop_note.is_some() {
        // The timeline ends at the epoch the model was rolled back to.
        let good = last_good.0;
        timeline.snapshots.retain(|(e, _)| *e <= good);
        history.retain(|h| h.epoch <= good);
    }
    for (n, v) in cand.vs.variables() {
        if !is_buffer(&n) {
            let _ = v.set_requires_grad(true);
        }
    }

    // The result on the validation images: per class, the confusion, the base beside it.
    let (_, val_accuracy, pred) = validate(&cand)?;
    let kd = data.classes.len();
    let col = |p: i64| heads.iter().position(|&h| h == p).unwrap_or(kd);
    let truth: Vec<usize> = val_idx.iter().map(|&i| data.labels[i as usize]).collect();
    let predicted: Vec<usize> = pred.iter().map(|&p| col(p)).collect();
    let mut confusion = vec![vec![0u64; kd + 1]; kd];
    for (t, p) in truth.iter().zip(&predicted) {
        confusion[*t][*p] += 1;
    }
    // A model from scratch has no base that reads the same images.
    let base_pred = if cfg.scratch {
        None
    } else {
        Some(base_predictions(base, &val_x, &val_f)?)
    };
    let per_class: Vec<ClassVal> = (0..kd)
        .map(|c| {
            let total: u64 = confusion[c].iter().sum();
            let base_class = super::evaluate::class_of(base, &data.classes[c]);
            let base_accuracy = base_class
                .zip(base_pred.as_ref())
                .filter(|_| total > 0)
                .map(|(bc, bp)| {
                    let right = truth.iter().zip(bp).filter(|(t, p)| **t == c && **p == bc).count();
                    right as f64 / total as f64
                });
            ClassVal {
                label: data.classes[c].clone(),
                index: heads[c],
                correct: confusion[c][c],
                total,
                accuracy: if total > 0 {
                    confusion[c][c] as f64 / total as f64
                } else {
                    0.0
                },
                base_accuracy,
            }
        })
        .collect();

    let mut record = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        record.insert(format!("glassbox.train.{k}"), v);
    };
    put("mode", cfg.mode());
    put("data", data.source.clone());
    put("data_fingerprint", data.fingerprint.clone());
    put(
        "classes",
        serde_json::to_string(&data.classes).expect("strings serialise"),
    );
    put("epochs", history.last().map_or(0, |h| h.epoch).to_string());
    put("optimizer", cfg.optimizer.name().into());
    put("lr", cfg.lr.to_string());
    put("batch", batch.to_string());
    put("seed", cfg.seed.to_string());
    put("val_split", cfg.val_split.to_string());
    put("augment", (cfg.augment && !head_mode).to_string());
    put("train_images", train_idx.len().to_string());
    put("val_images", val_idx.len().to_string());
    put(
        "base",
        if cfg.scratch {
            "none (from scratch)".into()
        } else {
            base.source.to_string()
        },
    );
    if let Some(a) = val_accuracy {
        put("val_accuracy", format!("{a:.4}"));
    }
    if val_accuracy.is_some() {
        let pc: Vec<(&str, f64)> = per_class.iter().map(|c| (c.label.as_str(), c.accuracy)).collect();
        put("per_class", serde_json::to_string(&pc).expect("numbers serialise"));
    }
    if !lr_changes.is_empty() {
        put(
            "lr_changes",
            serde_json::to_string(&lr_changes).expect("strings serialise"),
        );
    }
    if let Some(n) = &stop_note {
        put("stopped", n.clone());
    }
    let mut model = cand;
    model.metadata.retain(|k, _| !k.starts_with("glassbox.train."));
    model.metadata.extend(record.clone());
    Ok(Outcome {
        summary: Summary {
            mode: cfg.mode(),
            plan,
            imprinted: new_classes,
            epochs: history,
            val_accuracy,
            per_class,
            confusion,
            note: stop_note,
            record,
            seconds: started.elapsed().as_secs_f64(),
        },
        model,
        timeline,
        val: ValSet {
            images: val_x,
            truth,
            predicted,
            files: val_idx.iter().map(|&i| data.files[i as usize].clone()).collect(),
        },
    })
}

/// A model's training record (`glassbox.train.*` metadata), keys without the prefix.
pub fn record_of(m: &Model) -> BTreeMap<String, String> {
    m.metadata
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("glassbox.train.")?.to_string(), v.clone())))
        .collect()
}

/// Batch-norm statistics: variables that never take a gradient.
fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked")
}

fn snapshot_size(model: &Model, names: &[String]) -> i64 {
    let vars = model.vs.variables();
    names
        .iter()
        .filter_map(|n| vars.get(n))
        .map(|t| t.numel() as i64 * 4)
        .sum()
}

/// The starting model's predicted class of each validation image.
fn base_predictions(base: &Model, val_x: &Tensor, val_f: &Option<Tensor>) -> Result<Vec<i64>> {
    let n = val_x.size()[0];
    if n == 0 {
        return Ok(Vec::new());
    }
    let logits = match val_f {
        // Same backbone: the base's head on the cached features.
        Some(f) => tch::no_grad(|| head_logits(base, f)),
        None => logits_of(base, val_x),
    };
    Vec::<i64>::try_from(&logits.argmax(-1, false).to_device(Device::Cpu)).map_err(Error::from)
}

/// Reads the data and runs: what `glassbox finetune` and the app's Train panel do.
/// Bundled data sets are digits and clothes: they are not flipped (a mirrored 2 is no 2).
/// From scratch, the images are read as the small CNN takes them (28x28 gray).
pub fn finetune(base: &Model, source: &DataSource, cfg: &Config, hooks: &mut Hooks) -> Result<Outcome> {
    cfg.validate()?;
    let mut cfg = cfg.clone();
    if matches!(source, DataSource::Dataset(_)) {
        cfg.augment = false;
    }
    let pre = if cfg.scratch {
        Preprocess::digits(super::arch::tiny_cnn::SIZE as u32)
    } else {
        base.preprocess.clone()
    };
    if let Scope::From(l) = &cfg.scope {
        // Said before thousands of images are read.
        changing(base, &Scope::From(l.clone()))?;
    }
    let data = read_data(&pre, source, cfg.per_class)?;
    run(base, &data, &cfg, hooks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::ALL_ARCHS;

    #[test]
    fn features_times_the_head_are_the_logits_for_every_architecture() {
        tch::manual_seed(0);
        for &arch in ALL_ARCHS {
            if matches!(arch, Arch::Vgg(16) | Arch::ResNet(50) | Arch::ResNet(34)) {
                continue; // large; their families are covered by vgg11 and resnet18
            }
            let m = Model::new_random(arch, 7, arch.default_in_channels(), Device::Cpu);
            let s = m.preprocess.size as i64;
            let x = Tensor::randn([2, arch.default_in_channels(), s, s], (Kind::Float, Device::Cpu));
            let f = features(&m, &x).unwrap();
            assert_eq!(f.size(), [2, arch.features()], "{arch}");
            let logits = head_logits(&m, &f);
            let diff = (logits - m.logits(&x)).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "{arch}: {diff}");
        }
    }

    #[test]
    fn imprinting_is_the_normalised_mean_scaled_to_the_old_weights() {
        let f = Tensor::from_slice(&[3.0f32, 4.0, 0.0, 2.0]).view([2, 2]);
        let w = Tensor::from_slice(&[2.0f32, 0.0, 0.0, 4.0]).view([2, 2]);
        let b = Tensor::from_slice(&[1.0f32, 3.0]);
        let (iw, ib) = imprint(&f, &w, &b);
        // Old logits: (3,4) -> (7, 19), (0,2) -> (1, 11); best 19 and 11.
        // unit features (0.6, 0.8) and (0, 1): mean (0.3, 0.9), direction / sqrt(0.9), scale 3.
        let n = (0.3f64 * 0.3 + 0.9 * 0.9).sqrt();
        let want = [0.3 / n * 3.0, 0.9 / n * 3.0];
        let got = Vec::<f32>::try_from(&iw).unwrap();
        assert!(
            (got[0] as f64 - want[0]).abs() < 1e-5 && (got[1] as f64 - want[1]).abs() < 1e-5,
            "{got:?}"
        );
        let dot = |a: [f64; 2]| a[0] * want[0] + a[1] * want[1];
        let b_want = ((19.0 - dot([3.0, 4.0])) + (11.0 - dot([0.0, 2.0]))) / 2.0 + IMPRINT_MARGIN;
        assert!(
            (ib.double_value(&[]) - b_want).abs() < 1e-4,
            "{} vs {b_want}",
            ib.double_value(&[])
        );
    }

    #[test]
    fn the_split_is_stratified_and_seeded() {
        let data = Data {
            classes: vec!["a".into(), "b".into()],
            images: Tensor::zeros([10, 1, 2, 2], (Kind::Uint8, Device::Cpu)),
            labels: vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 1],
            files: vec![None; 10],
            skipped: vec![],
            fingerprint: String::new(),
            source: String::new(),
        };
        let (t, v) = split(&data, 0.3, 1).unwrap();
        assert_eq!((t.len(), v.len()), (7, 3));
        assert_eq!(v.iter().filter(|&&i| i >= 6).count(), 1);
        assert_eq!(split(&data, 0.3, 1).unwrap(), (t.clone(), v.clone()));
        let one = Data {
            labels: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ..data
        };
        let e = split(&one, 0.2, 1).unwrap_err().to_string();
        assert!(e.contains("class `b` has 1 image"), "{e}");
        assert_eq!(split(&one, 0.0, 1).unwrap().1.len(), 0);
    }

    #[test]
    fn a_batch_that_does_not_fit_is_reduced_or_refused_with_the_estimate() {
        let m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        let cfg = Config {
            batch: 256,
            ..Default::default()
        };
        let (b, need, _, note) = plan_memory(&m, &cfg, &Scope::Full, 1000, 1 << 40).unwrap();
        assert_eq!((b, note), (256, None));
        // A budget for about 10 images: the batch shrinks and says why.
        let per_image = m.activation_bytes() * 3;
        let fixed = need - 256 * per_image;
        let (b, _, _, note) = plan_memory(&m, &cfg, &Scope::Full, 1000, fixed + 10 * per_image).unwrap();
        assert_eq!(b, 10);
        assert!(note.unwrap().contains("batch reduced from 256 to 10"));
        // Not even one image fits: refused, with the estimate.
        let e = plan_memory(&m, &cfg, &Scope::Full, 1000, fixed / 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("even for one image") && e.contains("GiB"), "{e}");
        // Head-only: the cached features must fit.
        let e = plan_memory(&m, &cfg, &Scope::Head, 10_000_000, 1 << 30)
            .unwrap_err()
            .to_string();
        assert!(e.contains("features of 10000000 images"), "{e}");
    }

    #[test]
    fn settings_no_run_could_use_are_refused() {
        let bad = |c: Config, want: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        };
        bad(
            Config {
                lr: f64::NAN,
                ..Default::default()
            },
            "learning rate",
        );
        bad(
            Config {
                lr: -1.0,
                ..Default::default()
            },
            "learning rate",
        );
        bad(
            Config {
                val_split: 0.95,
                ..Default::default()
            },
            "validation split",
        );
        bad(
            Config {
                add_classes: true,
                scope: Scope::Full,
                ..Default::default()
            },
            "cannot train the network",
        );
        bad(
            Config {
                epochs: 0,
                ..Default::default()
            },
            "at least one epoch",
        );
        assert!(Config {
            add_classes: true,
            epochs: 0,
            ..Default::default()
        }
        .validate()
        .is_ok());
    }
}

/// The head functions: normalising a u8 batch, features in batches, a model with a new
/// classifier, a fresh classifier's range.
#[cfg(test)]
mod head_tests {
    use super::*;

    #[test]
    fn a_u8_batch_is_normalised_per_channel_by_the_models_preprocessing() {
        let mut m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        let x = Tensor::from_slice(&[0u8, 255, 127, 200]).view([1, 1, 2, 2]);
        let n = Vec::<f32>::try_from(&normalise(&m, &x).view([-1])).unwrap();
        assert_eq!(n, [-1.0, 1.0, -0.5 / 127.5, 72.5 / 127.5]);
        m.preprocess.mean = vec![100.0];
        m.preprocess.std = vec![4.0];
        assert_eq!(normalise(&m, &x).double_value(&[0, 0, 0, 1]), (255.0 - 100.0) / 4.0);
        let mut m = Model::new_random(Arch::EfficientNetLite(0), 10, 3, Device::Cpu);
        m.preprocess.mean = vec![10.0, 20.0, 30.0];
        m.preprocess.std = vec![1.0, 2.0, 5.0];
        let x = Tensor::full([2, 3, 1, 1], 50, (Kind::Uint8, Device::Cpu));
        let n = normalise(&m, &x);
        assert_eq!(n.size(), [2, 3, 1, 1]);
        assert_eq!(Vec::<f32>::try_from(&n.get(1).view([-1])).unwrap(), [40.0, 15.0, 4.0]);
    }

    #[test]
    fn features_come_in_batches_of_32_and_equal_one_pass() {
        tch::manual_seed(2);
        let m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        let images = Tensor::randint(256, [40, 1, 28, 28], (Kind::Uint8, Device::Cpu));
        let mut ticks = Vec::new();
        let f = features_of(&m, &images, &mut |done| {
            ticks.push(done);
            true
        })
        .unwrap();
        assert_eq!(ticks, [32, 40]);
        assert_eq!(f.size(), [40, 128]);
        let whole = features(&m, &normalise(&m, &images)).unwrap();
        assert!(f.allclose(&whole, 1e-5, 1e-6, false));
        assert!(whole.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        let none = features_of(&m, &images.narrow(0, 0, 0), &mut |_| true).unwrap();
        assert_eq!(none.size(), [0, 128]);
        assert!(matches!(
            features_of(&m, &images, &mut |_| false),
            Err(Error::Cancelled)
        ));
        // Features times the head are the logits of the normalised batch.
        let logits = head_logits(&m, &whole);
        assert!(logits.allclose(&m.logits(&normalise(&m, &images)), 1e-4, 1e-4, false));
    }

    #[test]
    fn a_model_with_a_new_head_keeps_the_rest_and_the_knockouts_that_still_exist() {
        let mut base = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        base.knockouts.insert(("relu1".into(), 3));
        base.knockouts.insert(("fc2".into(), 9));
        let (w, b) = fresh_head(12, 128);
        let labels: Vec<String> = (0..12).map(|i| format!("class {i}")).collect();
        let m = with_head(&base, labels.clone(), &w, &b).unwrap();
        assert_eq!((m.spec.classes, m.labels.clone()), (12, labels));
        let (old, new) = (base.vs.variables(), m.vs.variables());
        assert!(new["fc2.weight"].equal(&w) && new["fc2.bias"].equal(&b));
        for (k, v) in &old {
            if !k.starts_with("fc2.") {
                assert!(new[k].equal(v), "{k}");
            }
        }
        let mut kept: Vec<_> = m.knockouts.iter().cloned().collect();
        kept.sort();
        assert_eq!(kept, [("fc2".to_string(), 9), ("relu1".to_string(), 3)]);
        let fewer = with_head(
            &base,
            vec!["a".into(), "b".into()],
            &w.narrow(0, 0, 2),
            &b.narrow(0, 0, 2),
        )
        .unwrap();
        assert_eq!(
            fewer.knockouts.iter().cloned().collect::<Vec<_>>(),
            [("relu1".to_string(), 3)]
        );
        assert_eq!(m.source.to_string(), format!("{} retrained", base.source.short_name()));
        assert_eq!(m.preprocess, base.preprocess);
    }

    #[test]
    fn a_fresh_head_is_uniform_in_one_over_the_root_of_its_inputs() {
        let (w, b) = fresh_head(10, 400);
        assert_eq!((w.size(), b.size()), (vec![10, 400], vec![10]));
        let (lo, hi) = (w.min().double_value(&[]), w.max().double_value(&[]));
        assert!(lo >= -0.05 && hi <= 0.05, "{lo} {hi}");
        assert!(lo < -0.045 && hi > 0.045, "the whole range is used: {lo} {hi}");
        assert!(w.mean(Kind::Float).double_value(&[]).abs() < 0.005);
        assert!(b.abs().max().double_value(&[]) <= 0.05);
        assert!(b.std(true).double_value(&[]) > 0.01);
    }
}
