//! A loaded model: architecture, weights, labels and preprocessing, on CPU or GPU.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};

use super::arch::{self, Arch, Net, Spec};
use super::error::{Error, Result};
use super::guard;
use super::layers::Fwd;
pub use super::layers::LayerKind;
use super::preprocess::Preprocess;
use super::weights::{self, StoreAs, Weights};

/// Builtin models embedded in the binary.
pub const BUILTINS: &[&str] = &["efficientnet-lite0", "mnist", "fashion-mnist"];

fn builtin_bytes(name: &str) -> Option<&'static [u8]> {
    match name {
        #[cfg(asset_efficientnet_lite0)]
        "efficientnet-lite0" => Some(include_bytes!("../../../assets/efficientnet-lite0.safetensors")),
        #[cfg(asset_mnist)]
        "mnist" => Some(include_bytes!("../../../assets/mnist-tiny-cnn.safetensors")),
        #[cfg(asset_fashion_mnist)]
        "fashion-mnist" => Some(include_bytes!("../../../assets/fashion-mnist-tiny-cnn.safetensors")),
        _ => None,
    }
}

/// Where a model comes from: a builtin model, a weights file, or made in this process
/// (randomly initialised, trained). Written and read as text: the builtin's name, the path,
/// or `new ARCH`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub enum ModelSource {
    Builtin(String),
    File(PathBuf),
    Created(String),
}

impl ModelSource {
    /// The file name (for a file), else the whole text: what a title shows.
    pub fn short_name(&self) -> String {
        match self {
            ModelSource::File(p) => p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelSource::Builtin(n) => f.write_str(n),
            ModelSource::File(p) => write!(f, "{}", p.display()),
            ModelSource::Created(what) => f.write_str(what),
        }
    }
}

impl From<&str> for ModelSource {
    /// A builtin name, else a file path.
    fn from(s: &str) -> Self {
        if BUILTINS.contains(&s) {
            ModelSource::Builtin(s.to_owned())
        } else if let Some(what) = s.strip_prefix("new ") {
            ModelSource::Created(format!("new {what}"))
        } else {
            ModelSource::File(PathBuf::from(s))
        }
    }
}

impl From<String> for ModelSource {
    fn from(s: String) -> Self {
        ModelSource::from(s.as_str())
    }
}

impl From<&Path> for ModelSource {
    fn from(p: &Path) -> Self {
        ModelSource::File(p.to_path_buf())
    }
}

impl From<PathBuf> for ModelSource {
    fn from(p: PathBuf) -> Self {
        ModelSource::File(p)
    }
}

impl From<ModelSource> for String {
    fn from(s: ModelSource) -> String {
        s.to_string()
    }
}

impl std::str::FromStr for ModelSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Ok(ModelSource::from(s))
    }
}

/// Metadata keys Glassbox writes and reads in safetensors files.
pub mod meta {
    pub const ARCH: &str = "glassbox.arch";
    pub const LABELS: &str = "glassbox.labels";
    pub const PREPROCESS: &str = "glassbox.preprocess";
    /// The edits made by hand, in their readable form (a JSON list), oldest first.
    pub const EDITS: &str = "glassbox.edits";
    /// Knocked-out channels (a JSON list of "LAYER:C"), applied again when the file opens.
    pub const KNOCKOUTS: &str = "glassbox.knockouts";
}

/// One traced layer output.
pub struct Traced {
    pub name: String,
    pub kind: LayerKind,
    pub output: Tensor,
}

/// A layer as `glassbox layers` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub name: String,
    pub kind: LayerKind,
    pub shape: Vec<i64>,
    pub params: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Class {
    pub index: i64,
    pub label: String,
    pub probability: f64,
    pub logit: f64,
}

/// How a forward runs: training (from a layer on), ending after a layer, showing every
/// convolution's input, or carrying relevance (LRP).
#[derive(Default)]
struct Run<'a> {
    train: bool,
    from: Option<&'a str>,
    stop_after: Option<&'a str>,
    conv_input: Option<super::layers::ConvInputHook<'a>>,
    lrp: Option<&'a mut crate::lrp::Pass>,
}

pub struct Model {
    pub spec: Spec,
    pub vs: nn::VarStore,
    pub net: Box<dyn Net>,
    pub labels: Vec<String>,
    pub preprocess: Preprocess,
    pub source: ModelSource,
    pub metadata: BTreeMap<String, String>,
    /// The traced layers with shapes and parameter counts, measured once by one forward.
    layers: std::sync::OnceLock<Vec<LayerInfo>>,
    /// Channels (layer, index) whose output is zero in every forward and backward.
    pub knockouts: std::collections::BTreeSet<(String, i64)>,
}

/// The device Glassbox computes on: the GPU when libtorch sees one.
pub fn default_device() -> Device {
    Device::cuda_if_available()
}

fn default_preprocess(arch: Arch, in_channels: i64) -> Preprocess {
    let mut p = match arch {
        Arch::EfficientNetLite(v) => Preprocess::efficientnet_lite(arch::efficientnet_lite::params(v).2 as u32),
        Arch::TinyCnn => Preprocess::digits(arch::tiny_cnn::SIZE as u32),
        _ => Preprocess::imagenet(224),
    };
    if arch == Arch::TinyCnn && in_channels == 3 {
        p.gray = false;
        p.mean = vec![127.5; 3];
        p.std = vec![127.5; 3];
    }
    p
}

/// Floating tensors with NaN or Inf values, refused at load: every output would be NaN.
fn check_finite_weights(w: &Weights) -> Result<()> {
    for (name, t) in &w.tensors {
        if !t.is_floating_point() {
            continue;
        }
        let bad = t.f_isfinite()?.logical_not().sum(Kind::Int64).int64_value(&[]);
        if bad > 0 {
            return Err(Error::invalid(format!(
                "tensor `{name}` holds {bad} NaN or infinite value(s) of {}; the weights are broken",
                t.numel()
            )));
        }
    }
    Ok(())
}

impl Model {
    /// A randomly initialised model of `arch`.
    pub fn new_random(arch: Arch, classes: i64, in_channels: i64, device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let net = arch.build(&vs.root(), classes, in_channels);
        let preprocess = default_preprocess(arch, in_channels);
        Model {
            spec: Spec {
                arch,
                classes,
                in_channels,
            },
            vs,
            net,
            labels: default_labels(classes),
            preprocess,
            source: ModelSource::Created(format!("new {arch}")),
            metadata: BTreeMap::new(),
            layers: std::sync::OnceLock::new(),
            knockouts: std::collections::BTreeSet::new(),
        }
    }

    /// A builtin model (`efficientnet-lite0`, `mnist`, `fashion-mnist`) or a weights file.
    pub fn open(source: impl Into<ModelSource>, arch: Option<Arch>, device: Device) -> Result<Self> {
        let source = source.into();
        match &source {
            ModelSource::Builtin(name) => {
                let bytes = builtin_bytes(name).ok_or_else(|| {
                    Error::invalid(format!(
                        "builtin model `{name}` is not embedded in this build (its file in assets/ was missing when it was built)"
                    ))
                })?;
                let w = weights::from_bytes(bytes, Path::new(name))?;
                let mut m = Model::from_weights(w, arch, device, None)?;
                m.source = source;
                Ok(m)
            }
            ModelSource::File(path) => {
                if !path.exists() {
                    return Err(Error::file(
                        path,
                        format!("no such file, and not a builtin model ({})", BUILTINS.join(", ")),
                    ));
                }
                Model::from_file(path, arch, device)
            }
            ModelSource::Created(what) => Err(Error::invalid(format!(
                "`{what}` was made in an earlier session and not saved; open a weights file or a builtin model"
            ))),
        }
    }

    pub fn from_file(path: &Path, arch: Option<Arch>, device: Device) -> Result<Self> {
        let w = weights::load(path)?;
        let sidecar = path.parent().map(|d| d.join("labels.txt")).filter(|p| p.is_file());
        let mut m = Model::from_weights(w, arch, device, sidecar.as_deref()).map_err(|e| match e {
            Error::Invalid(msg) => Error::file(path, msg),
            e => e,
        })?;
        m.source = ModelSource::File(path.to_path_buf());
        Ok(m)
    }

    /// A model from weights, with everything the file claims checked before libtorch sees
    /// it: the architecture's classifier and input channels, the preprocessing, the labels,
    /// finite weights, and finally one forward at the declared input size.
    pub fn from_weights(w: Weights, arch: Option<Arch>, device: Device, sidecar: Option<&Path>) -> Result<Self> {
        let arch = match (arch, w.metadata.get(meta::ARCH)) {
            (Some(a), _) => Some(a),
            (None, Some(name)) => Some(
                name.parse::<Arch>()
                    .map_err(|e| Error::invalid(format!("metadata `{}`: {e}", meta::ARCH)))?,
            ),
            (None, None) => None,
        };
        let spec = arch::detect(&w, arch)?;
        let preprocess = match w.metadata.get(meta::PREPROCESS) {
            Some(p) => serde_json::from_str::<Preprocess>(p)
                .map_err(|e| Error::invalid(format!("metadata `{}` is not valid: {e}", meta::PREPROCESS)))?,
            None => default_preprocess(spec.arch, spec.in_channels),
        };
        preprocess
            .validate(spec.in_channels)
            .map_err(|e| Error::invalid(format!("metadata `{}`: {e}", meta::PREPROCESS)))?;
        let labels = labels_for(&w.metadata, spec.classes, sidecar)?;
        check_finite_weights(&w)?;
        let mut m = Model::new_random(spec.arch, spec.classes, spec.in_channels, device);
        m.spec = spec;
        load_into(&m.vs, &w, spec.arch)?;
        m.labels = labels;
        m.preprocess = preprocess;
        m.metadata = w.metadata;
        m.check_runs()?;
        if let Some(k) = m.metadata.get(meta::KNOCKOUTS).cloned() {
            let list: Vec<String> = serde_json::from_str(&k).map_err(|e| {
                Error::invalid(format!(
                    "metadata `{}` is not a JSON list of \"LAYER:C\": {e}",
                    meta::KNOCKOUTS
                ))
            })?;
            for item in list {
                let (l, c) = item
                    .rsplit_once(':')
                    .and_then(|(l, c)| Some((l.to_owned(), c.parse::<i64>().ok()?)))
                    .ok_or_else(|| {
                        Error::invalid(format!("metadata `{}`: `{item}` is not LAYER:C", meta::KNOCKOUTS))
                    })?;
                check_channel(&m, &l, c).map_err(|e| Error::invalid(format!("metadata `{}`: {e}", meta::KNOCKOUTS)))?;
                m.knockouts.insert((l, c));
            }
        }
        Ok(m)
    }

    /// One forward at the declared input size (under the guard), which also measures the
    /// layers. Inputs so large that one image's activations would not fit in memory are
    /// refused first, from a forward at a small size.
    fn check_runs(&self) -> Result<()> {
        let s = self.preprocess.size as i64;
        let c = self.spec.in_channels;
        let refuse = |e: Error| {
            Error::invalid(format!(
                "{} cannot run on a {c}x{s}x{s} input (metadata `{}` size {s}): {e}",
                self.spec.arch,
                meta::PREPROCESS
            ))
        };
        const PROBE: i64 = 256;
        if s > PROBE {
            if let Ok(small) = guard::catch("a trial forward", || -> Result<_> { Ok(self.measure_layers_at(PROBE)) }) {
                let bytes: i64 = small.iter().map(|l| l.shape.iter().product::<i64>() * 4).sum();
                let need = bytes as f64 * (s as f64 / PROBE as f64).powi(2);
                let have = super::device::memory_for_batches(self.device()) as f64;
                if need > have {
                    return Err(Error::invalid(format!(
                        "metadata `{}` size {s} needs about {:.1} GiB of activations for one image in {}, more than the {:.1} GiB Glassbox gives a batch here; use a size of at most {}",
                        meta::PREPROCESS,
                        need / (1u64 << 30) as f64,
                        self.spec.arch,
                        have / (1u64 << 30) as f64,
                        (PROBE as f64 * (have / bytes as f64).sqrt()) as i64
                    )));
                }
            }
        }
        let layers = guard::catch("a forward at the input size", || -> Result<_> {
            Ok(self.measure_layers_at(s))
        })
        .map_err(refuse)?;
        let _ = self.layers.set(layers);
        Ok(())
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Forward with every layer output passed through `hook`.
    pub fn forward_hooked(
        &self,
        x: &Tensor,
        train: bool,
        hook: &mut dyn FnMut(&str, LayerKind, Tensor) -> Tensor,
    ) -> Tensor {
        self.forward_with(
            x,
            hook,
            Run {
                train,
                ..Run::default()
            },
        )
    }

    /// An inference forward for layer-wise relevance propagation: the logits, every layer's
    /// output carrying its rule's gradient (see `lrp.rs`), the first layer kept in `pass`.
    /// Knocked-out channels stay out, of the values and of the relevance. What the pass
    /// needs of the model (its output layer, knock-outs, input range) is set here.
    pub fn forward_lrp(&self, x: &Tensor, pass: &mut crate::lrp::Pass) -> Tensor {
        pass.output = self.spec.arch.classifier_key().trim_end_matches(".weight").to_string();
        pass.knocked_convs = self.knockouts.iter().cloned().collect();
        let (low, high) = self.preprocess.input_range();
        pass.bounds = Some((low.to_device(self.device()), high.to_device(self.device())));
        let run = Run {
            lrp: Some(pass),
            ..Run::default()
        };
        self.forward_with(x, &mut |_, _, t| t, run)
    }

    /// An inference forward that also shows every convolution's input and geometry.
    pub fn forward_seeing_convs(
        &self,
        x: &Tensor,
        hook: &mut dyn FnMut(&str, LayerKind, Tensor) -> Tensor,
        conv_input: &mut dyn FnMut(&str, &Tensor, super::layers::Geometry),
    ) -> Tensor {
        let run = Run {
            conv_input: Some(conv_input),
            ..Run::default()
        };
        tch::no_grad(|| self.forward_with(x, hook, run))
    }

    /// A training forward in which only `from` and the layers after it train (batch norm
    /// before it keeps its running statistics); `None`: every layer trains.
    pub fn forward_train(&self, x: &Tensor, from: Option<&str>) -> Tensor {
        let run = Run {
            train: true,
            from,
            ..Run::default()
        };
        self.forward_with(x, &mut |_, _, t| t, run)
    }

    /// The output of `layer` (None for no such layer) from an inference forward that ends
    /// there: the layers after it compute nothing, so a layer half-way costs about half a
    /// forward (dataset examples).
    pub fn layer_output(&self, x: &Tensor, layer: &str) -> Option<Tensor> {
        let mut got = None;
        let mut keep = |name: &str, _: LayerKind, t: Tensor| {
            if name == layer {
                got = Some(t.shallow_clone());
            }
            t
        };
        let run = Run {
            stop_after: Some(layer),
            ..Run::default()
        };
        let _ = tch::no_grad(|| self.forward_with(x, &mut keep, run));
        got
    }

    fn forward_with(&self, x: &Tensor, hook: &mut dyn FnMut(&str, LayerKind, Tensor) -> Tensor, run: Run) -> Tensor {
        let Run {
            train,
            from,
            stop_after,
            mut conv_input,
            mut lrp,
        } = run;
        let mut fwd = |hook: &mut dyn FnMut(&str, LayerKind, Tensor) -> Tensor| {
            let mut f = match from {
                Some(l) if train => Fwd::training_from(l, hook),
                _ => Fwd::new(train, hook),
            };
            if let Some(c) = conv_input.take() {
                f = f.with_conv_input(c);
            }
            if let Some(l) = stop_after {
                f = f.stopping_after(l);
            }
            if let Some(p) = lrp.take() {
                f = f.with_lrp(p);
            }
            self.net.forward(&x.to_device(self.device()), &mut f)
        };
        if self.knockouts.is_empty() {
            return fwd(hook);
        }
        // Knocked-out channels are zeroed before anything sees the layer's output.
        let knockouts = &self.knockouts;
        let mut knocked = |name: &str, kind: LayerKind, t: Tensor| -> Tensor {
            let chans: Vec<i64> = knockouts.iter().filter(|(l, _)| l == name).map(|(_, c)| *c).collect();
            let t = if chans.is_empty() || t.dim() < 2 {
                t
            } else {
                // Made of traced operations only (ones, then a zero per channel), so that a
                // TorchScript trace of the forward holds the mask: a tensor copied in from
                // Rust memory would be traced as uninitialised memory.
                let n = t.size()[1];
                let mask = Tensor::ones([n], (t.kind(), t.device()));
                for c in chans.into_iter().filter(|c| (0..n).contains(c)) {
                    let _ = mask.narrow(0, c, 1).fill_(0.0);
                }
                let mut shape = vec![1i64; t.dim()];
                shape[1] = n;
                t * mask.view(shape.as_slice())
            };
            hook(name, kind, t)
        };
        fwd(&mut knocked)
    }

    /// Logits of a batch, without gradients.
    pub fn logits(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| self.forward_hooked(x, false, &mut |_, _, t| t))
    }

    /// Logits and every layer output, in forward order.
    pub fn trace(&self, x: &Tensor) -> (Tensor, Vec<Traced>) {
        let mut out = Vec::new();
        let logits = self.forward_hooked(x, false, &mut |name, kind, t| {
            out.push(Traced {
                name: name.to_owned(),
                kind,
                output: t.shallow_clone(),
            });
            t
        });
        (logits, out)
    }

    /// Every traced layer with its output shape (for one input) and parameter count.
    pub fn layers(&self) -> Vec<LayerInfo> {
        self.layers.get_or_init(|| self.measure_layers()).clone()
    }

    fn measure_layers(&self) -> Vec<LayerInfo> {
        self.measure_layers_at(self.preprocess.size as i64)
    }

    /// The traced layers for an input of side `s`: only shapes are kept, so memory is that
    /// of one forward.
    fn measure_layers_at(&self, s: i64) -> Vec<LayerInfo> {
        let x = Tensor::zeros([1, self.spec.in_channels, s, s], (Kind::Float, self.device()));
        let mut traced: Vec<(String, LayerKind, Vec<i64>)> = Vec::new();
        let _logits = tch::no_grad(|| {
            self.forward_hooked(&x, false, &mut |name, kind, t| {
                traced.push((name.to_owned(), kind, t.size()));
                t
            })
        });
        let vars = self.vs.variables();
        traced
            .into_iter()
            .map(|(name, kind, shape)| {
                let prefix = format!("{name}.");
                let params = vars
                    .iter()
                    .filter(|(k, _)| {
                        k.starts_with(&prefix) && !k.ends_with("running_mean") && !k.ends_with("running_var")
                    })
                    .map(|(_, v)| v.numel() as i64)
                    .sum();
                LayerInfo {
                    name,
                    kind,
                    shape,
                    params,
                }
            })
            .collect()
    }

    /// Bytes of every traced layer output for one input (from the cached layer list).
    pub fn activation_bytes(&self) -> i64 {
        self.layers().iter().map(|l| l.shape.iter().product::<i64>() * 4).sum()
    }

    /// Trainable parameter count.
    pub fn parameter_count(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|v| v.numel() as i64).sum()
    }

    /// Top-k classes of each row of `logits`; a row with NaN or Inf is an error (it would
    /// print as "NaN %").
    pub fn top_k(&self, logits: &Tensor, k: usize) -> Result<Vec<Vec<Class>>> {
        let finite = logits.f_isfinite()?.all().int64_value(&[]) != 0;
        if !finite {
            return Err(Error::invalid(
                "the model's output holds NaN or infinite values: its weights or preprocessing are numerically broken",
            ));
        }
        let probs = logits
            .to_kind(Kind::Float)
            .softmax(-1, Kind::Float)
            .to_device(Device::Cpu);
        let k = k.clamp(1, self.spec.classes as usize) as i64;
        let (vals, idx) = probs.topk(k, -1, true, true);
        Ok((0..probs.size()[0])
            .map(|r| {
                (0..k)
                    .map(|j| {
                        let index = idx.int64_value(&[r, j]);
                        Class {
                            index,
                            label: self
                                .labels
                                .get(index as usize)
                                .cloned()
                                .unwrap_or_else(|| format!("class {index}")),
                            probability: vals.double_value(&[r, j]),
                            logit: logits.double_value(&[r, index]),
                        }
                    })
                    .collect()
            })
            .collect())
    }

    /// Saves the weights (and labels, arch, preprocessing as metadata) atomically.
    pub fn save(&self, path: &Path, extra: &BTreeMap<String, String>, store: StoreAs) -> Result<()> {
        let mut vars: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        weights::save_safetensors(path, &vars, &self.file_metadata(extra), store)
    }

    /// The metadata a saved file carries: the model's own, `extra`, and the architecture,
    /// labels, preprocessing and knock-outs as they are now.
    pub(crate) fn file_metadata(&self, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut metadata = self.metadata.clone();
        metadata.extend(extra.clone());
        metadata.insert(meta::ARCH.into(), self.spec.arch.to_string());
        metadata.insert(
            meta::LABELS.into(),
            serde_json::to_string(&self.labels).expect("labels serialise"),
        );
        metadata.insert(
            meta::PREPROCESS.into(),
            serde_json::to_string(&self.preprocess).expect("preprocess serialises"),
        );
        let knocked: Vec<String> = self.knockouts.iter().map(|(l, c)| format!("{l}:{c}")).collect();
        if knocked.is_empty() {
            metadata.remove(meta::KNOCKOUTS);
        } else {
            metadata.insert(
                meta::KNOCKOUTS.into(),
                serde_json::to_string(&knocked).expect("strings serialise"),
            );
        }
        metadata
    }
}

/// Copies the file's tensors into the network's variables, checking names and shapes.
pub fn load_into(vs: &nn::VarStore, w: &Weights, arch: Arch) -> Result<()> {
    let vars = vs.variables();
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (name, var) in &vars {
        match w.get(name) {
            None => missing.push(name.clone()),
            Some(src) if src.size() != var.size() => wrong.push(format!(
                "`{name}` is {:?} in the file, {arch} needs {:?}",
                src.size(),
                var.size()
            )),
            Some(_) => {}
        }
    }
    let unexpected: Vec<&str> = w
        .names()
        .filter(|n| !vars.contains_key(*n) && !n.ends_with("num_batches_tracked"))
        .collect();
    if !missing.is_empty() || !wrong.is_empty() || !unexpected.is_empty() {
        missing.sort();
        let list = |v: &[String]| {
            let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 5 {
                s.push_str(&format!(" (and {} more)", v.len() - 5));
            }
            s
        };
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing keys {}", list(&missing)));
        }
        if !wrong.is_empty() {
            parts.push(format!("wrong shapes: {}", list(&wrong)));
        }
        if !unexpected.is_empty() {
            let u: Vec<String> = unexpected.iter().map(|s| s.to_string()).collect();
            parts.push(format!("unexpected keys {}", list(&u)));
        }
        return Err(Error::invalid(format!(
            "the weights do not fit {arch}: {}. Check --arch or the file",
            parts.join("; ")
        )));
    }
    tch::no_grad(|| {
        for (name, mut var) in vars {
            if let Some(src) = w.get(&name) {
                var.copy_(&src.to_kind(var.kind()));
            }
        }
    });
    Ok(())
}

fn default_labels(classes: i64) -> Vec<String> {
    if classes == 1000 {
        tch::vision::imagenet::CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..classes).map(|i| format!("class {i}")).collect()
    }
}

/// Labels from metadata, a sidecar `labels.txt`, ImageNet's names for 1000 classes, else "class N".
fn labels_for(metadata: &BTreeMap<String, String>, classes: i64, sidecar: Option<&Path>) -> Result<Vec<String>> {
    let (labels, origin): (Vec<String>, String) = if let Some(j) = metadata.get(meta::LABELS) {
        let l = serde_json::from_str(j)
            .map_err(|e| Error::invalid(format!("metadata `{}` is not a JSON list of names: {e}", meta::LABELS)))?;
        (l, format!("the metadata `{}`", meta::LABELS))
    } else if let Some(p) = sidecar {
        let bytes = super::files::read_file(p, 64 << 20)?;
        let text =
            String::from_utf8(bytes).map_err(|_| Error::file(p, "is not UTF-8 text (one class name per line)"))?;
        let l = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        (l, p.display().to_string())
    } else {
        return Ok(default_labels(classes));
    };
    if labels.len() as i64 != classes {
        return Err(Error::invalid(format!(
            "{origin} has {} class names but the model has {classes} classes; give one name per class",
            labels.len()
        )));
    }
    Ok(labels)
}

/// Checks that `layer` is a traced layer with at least `c + 1` channels.
pub fn check_channel(model: &Model, layer: &str, c: i64) -> Result<()> {
    let layers = model.layers();
    let l = layers.iter().find(|l| l.name == layer).ok_or_else(|| {
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        Error::invalid(format!(
            "unknown layer `{layer}`; traced layers: {} (`glassbox layers` lists all)",
            super::error::name_sample(&names)
        ))
    })?;
    let channels = l.shape.get(1).copied().unwrap_or(0);
    if c >= channels {
        return Err(Error::invalid(format!(
            "`{layer}` has channels 0 to {}, not {c}",
            channels - 1
        )));
    }
    Ok(())
}

/// The layer whose channels are shown first: the last block at 14 pixels or more (else the
/// last spatial layer).
pub fn default_layer(layers: &[LayerInfo]) -> Option<String> {
    let spatial: Vec<_> = layers
        .iter()
        .filter(|l| crate::defaults::is_spatial(&l.shape))
        .collect();
    let mid: Vec<_> = spatial.iter().filter(|l| l.shape[2] >= 14).collect();
    let pool = if mid.is_empty() { spatial.iter().collect() } else { mid };
    pool.iter()
        .rev()
        .find(|l| l.kind == crate::layers::LayerKind::Block)
        .or(pool.last())
        .map(|l| l.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_that_stops_at_a_layer_gives_that_layers_output() {
        for arch in [
            Arch::EfficientNetLite(0),
            Arch::ResNet(18),
            Arch::ResNet(50),
            Arch::Vgg(11),
            Arch::AlexNet,
            Arch::MobileNetV2,
            Arch::TinyCnn,
        ] {
            tch::manual_seed(3);
            let m = Model::new_random(arch, 10, if arch == Arch::TinyCnn { 1 } else { 3 }, Device::Cpu);
            let side = if arch == Arch::TinyCnn { 28 } else { 96 };
            let x = Tensor::randn(
                [2, m.preprocess.channels(), side, side],
                (tch::Kind::Float, Device::Cpu),
            );
            let (_, traced) = tch::no_grad(|| m.trace(&x));
            // The first layer, one in the middle, and the last.
            for k in [0, traced.len() / 2, traced.len() - 1] {
                let t = &traced[k];
                let got = m.layer_output(&x, &t.name).unwrap();
                assert_eq!(got.size(), t.output.size(), "{arch:?} {}", t.name);
                let diff = (&got - &t.output).abs().max().double_value(&[]);
                assert!(diff == 0.0, "{arch:?} {}: {diff}", t.name);
            }
            assert!(m.layer_output(&x, "no-such-layer").is_none());
        }
    }

    #[test]
    fn labels_must_match_the_class_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.txt");
        std::fs::write(&p, "a\nb\n").unwrap();
        let e = labels_for(&BTreeMap::new(), 3, Some(&p)).unwrap_err().to_string();
        assert!(e.contains("2 class names") && e.contains("3 classes"), "{e}");
        assert_eq!(labels_for(&BTreeMap::new(), 2, Some(&p)).unwrap(), ["a", "b"]);
        assert_eq!(
            labels_for(&BTreeMap::new(), 1000, None).unwrap()[281],
            "tabby, tabby cat"
        );
        assert_eq!(labels_for(&BTreeMap::new(), 3, None).unwrap()[2], "class 2");
    }
}
