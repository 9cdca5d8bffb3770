//! Attribution methods: why the model gave its answer.
//!
//! All of them explain the target class's LOGIT, as Captum and pytorch-grad-cam do.
//! Input-shaped maps are [1, C, H, W]; the CAM family is [1, 1, h, w] at the layer's
//! resolution, after ReLU.

use std::collections::BTreeMap;
use std::fmt;

use tch::{Device, Kind, Tensor};

use super::error::{Error, Result};
use super::layers::LayerKind;
use super::model::Model;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Gradient,
    InputXGradient,
    SmoothGrad,
    IntegratedGradients,
    GradCam,
    GradCamPlusPlus,
    ScoreCam,
    GuidedBackprop,
    GuidedGradCam,
    Occlusion,
}

pub const METHODS: &[Method] = &[
    Method::Gradient,
    Method::InputXGradient,
    Method::SmoothGrad,
    Method::IntegratedGradients,
    Method::GradCam,
    Method::GradCamPlusPlus,
    Method::ScoreCam,
    Method::GuidedBackprop,
    Method::GuidedGradCam,
    Method::Occlusion,
];

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Gradient => "gradient",
            Method::InputXGradient => "input-x-gradient",
            Method::SmoothGrad => "smoothgrad",
            Method::IntegratedGradients => "integrated-gradients",
            Method::GradCam => "grad-cam",
            Method::GradCamPlusPlus => "grad-cam++",
            Method::ScoreCam => "score-cam",
            Method::GuidedBackprop => "guided-backprop",
            Method::GuidedGradCam => "guided-grad-cam",
            Method::Occlusion => "occlusion",
        }
    }

    /// One sentence on what the map shows.
    pub fn describe(self) -> &'static str {
        match self {
            Method::Gradient => "How much each pixel's change would change the class score (the raw gradient).",
            Method::InputXGradient => "The gradient times the pixel value: each pixel's first-order contribution.",
            Method::SmoothGrad => "The gradient averaged over noisy copies of the image, which removes speckle.",
            Method::IntegratedGradients => {
                "Contributions summed along a path from a baseline image; they add up to the score difference."
            }
            Method::GradCam => "Which regions of a layer's feature maps raise the class score, weighted by gradients.",
            Method::GradCamPlusPlus => "Grad-CAM with pixel-wise weights, better for several instances of a class.",
            Method::ScoreCam => "Each feature map used as a mask on the input, weighted by the score it keeps.",
            Method::GuidedBackprop => "Gradients passed back only where they are positive: fine edges the class likes.",
            Method::GuidedGradCam => "Guided backprop restricted to the regions Grad-CAM finds: fine and localised.",
            Method::Occlusion => "How much the score drops when a window of the image is hidden.",
        }
    }

    /// Maps at the layer's resolution (CAM family) rather than the input's.
    pub fn is_cam(self) -> bool {
        matches!(self, Method::GradCam | Method::GradCamPlusPlus | Method::ScoreCam)
    }

    pub fn uses_layer(self) -> bool {
        self.is_cam() || self == Method::GuidedGradCam
    }

    /// Signed maps are drawn with a diverging colormap.
    pub fn is_signed(self) -> bool {
        matches!(
            self,
            Method::InputXGradient | Method::IntegratedGradients | Method::Occlusion
        )
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let alias = match norm.as_str() {
            "saliency" | "grad" => "gradient",
            "ixg" | "input-x-grad" | "inputxgradient" => "input-x-gradient",
            "ig" => "integrated-gradients",
            "gradcam" => "grad-cam",
            "gradcam++" | "grad-cam-plus-plus" | "gradcampp" => "grad-cam++",
            "scorecam" => "score-cam",
            "guided" | "guidedbackprop" => "guided-backprop",
            "guided-gradcam" | "guidedgradcam" => "guided-grad-cam",
            other => other,
        };
        METHODS.iter().copied().find(|m| m.name() == alias).ok_or_else(|| {
            let names: Vec<&str> = METHODS.iter().map(|m| m.name()).collect();
            Error::invalid(format!("unknown method `{s}`; choose one of: {}", names.join(", ")))
        })
    }
}

/// The reference input of Integrated Gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// All zeros in model space (after normalisation).
    Zero,
    /// A black image, normalised like the input.
    Black,
    /// The input blurred (Gaussian, sigma = 1/16 of the image side).
    Blur,
}

impl std::str::FromStr for Baseline {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "zero" => Ok(Baseline::Zero),
            "black" => Ok(Baseline::Black),
            "blur" => Ok(Baseline::Blur),
            _ => Err(Error::invalid(format!(
                "unknown baseline `{s}`; choose zero, black or blur"
            ))),
        }
    }
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Zero => "zero",
            Baseline::Black => "black",
            Baseline::Blur => "blur",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    /// Class to explain; `None` = the top-1 class.
    pub target: Option<i64>,
    /// Layer for the CAM family; `None` = the last layer with a spatial output.
    pub layer: Option<String>,
    /// Integrated Gradients path steps.
    pub steps: usize,
    /// SmoothGrad noisy samples.
    pub samples: usize,
    /// SmoothGrad noise sigma, as a fraction of the input's range (max - min).
    pub sigma: f64,
    /// Occlusion window side and stride, in input pixels.
    pub window: i64,
    pub stride: i64,
    /// Occlusion: value (model space) the window is filled with.
    pub occlusion_value: f64,
    pub baseline: Baseline,
    pub seed: i64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            target: None,
            layer: None,
            steps: 32,
            samples: 16,
            sigma: 0.15,
            window: 32,
            stride: 16,
            occlusion_value: 0.0,
            baseline: Baseline::Zero,
            seed: 0,
        }
    }
}

pub const MAX_STEPS: usize = 4096;
pub const MAX_SAMPLES: usize = 4096;

impl Params {
    /// Occlusion window for an input side: 1/7 of it (32 at 224 px), stride half of it.
    pub fn with_window_for(mut self, side: i64) -> Self {
        self.window = (side / 7).max(1);
        self.stride = (self.window / 2).max(1);
        self
    }

    /// Refuses parameters outside their allowed ranges, saying the range. The occlusion
    /// window is checked only for occlusion (its default is for 224-pixel inputs).
    pub fn validate(&self, method: Method, input_side: i64) -> Result<()> {
        if !(1..=MAX_STEPS).contains(&self.steps) {
            return Err(Error::invalid(format!(
                "--steps must be between 1 and {MAX_STEPS} (got {})",
                self.steps
            )));
        }
        if !(1..=MAX_SAMPLES).contains(&self.samples) {
            return Err(Error::invalid(format!(
                "--samples must be between 1 and {MAX_SAMPLES} (got {})",
                self.samples
            )));
        }
        if !(self.sigma.is_finite() && self.sigma > 0.0 && self.sigma <= 1.0) {
            return Err(Error::invalid(format!(
                "--sigma must be in (0, 1] (got {})",
                self.sigma
            )));
        }
        if method != Method::Occlusion {
            return Ok(());
        }
        if !(1..=input_side).contains(&self.window) {
            return Err(Error::invalid(format!(
                "--window must be between 1 and the input side {input_side} (got {})",
                self.window
            )));
        }
        if !(1..=input_side).contains(&self.stride) {
            return Err(Error::invalid(format!(
                "--stride must be between 1 and the input side {input_side} (got {})",
                self.stride
            )));
        }
        if !self.occlusion_value.is_finite() {
            return Err(Error::invalid("--baseline value for occlusion must be a finite number"));
        }
        Ok(())
    }
}

/// The result of one method on one image.
pub struct Explanation {
    pub method: Method,
    pub target: i64,
    pub layer: Option<String>,
    /// On the CPU: [1, C, H, W] or [1, 1, h, w] (CAM family).
    pub attribution: Tensor,
    /// Integrated Gradients: sum(attr) - (f(x) - f(baseline)).
    pub completeness_error: Option<f64>,
    /// Every parameter that shaped the map, for the record.
    pub metadata: BTreeMap<String, String>,
}

/// How far a long method is, with its map so far where one exists (SmoothGrad: the mean
/// of the samples so far; occlusion: the windows so far; Score-CAM: the channels so far),
/// so a viewer can show a first picture early and refine it.
pub struct Progress<'t> {
    pub done: usize,
    pub total: usize,
    /// Same shape as the final attribution, on the model's device.
    pub partial: Option<&'t Tensor>,
}

/// Called as a long method advances; returning false cancels it.
pub type ProgressFn<'a> = dyn FnMut(Progress<'_>) -> bool + 'a;

fn cancelled() -> Error {
    Error::Cancelled
}

/// Layers whose output is spatial ([N, C, H, W]), in forward order.
pub fn spatial_layers(model: &Model) -> Vec<(String, LayerKind, Vec<i64>)> {
    model
        .layers()
        .into_iter()
        .filter(|l| l.shape.len() == 4 && l.shape[2] > 1)
        .map(|l| (l.name, l.kind, l.shape))
        .collect()
}

/// A list of layer names for an error message: all of them, or the first and last few.
pub fn name_sample<S: AsRef<str>>(names: &[S]) -> String {
    let join = |v: &[S]| v.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ");
    if names.len() > 12 {
        format!("{} ... {}", join(&names[..4]), join(&names[names.len() - 6..]))
    } else {
        join(names)
    }
}

/// The layer a CAM method uses: the one asked for, else the last spatial one.
pub fn resolve_layer(model: &Model, layer: Option<&str>) -> Result<String> {
    let spatial = spatial_layers(model);
    match layer {
        None => spatial
            .last()
            .map(|l| l.0.clone())
            .ok_or_else(|| Error::invalid("this model has no layer with a spatial output")),
        Some(name) => {
            if spatial.iter().any(|l| l.0 == name) {
                return Ok(name.to_owned());
            }
            let all = model.layers();
            let names: Vec<&str> = spatial.iter().map(|l| l.0.as_str()).collect();
            let sample = name_sample(&names);
            if let Some(l) = all.iter().find(|l| l.name == name) {
                Err(Error::invalid(format!(
                    "layer `{name}` has output {:?}, which is not spatial; CAM methods need a layer with a [N, C, H, W] output such as: {sample} (default: the last, {})",
                    l.shape,
                    names.last().unwrap_or(&"")
                )))
            } else {
                Err(Error::invalid(format!(
                    "unknown layer `{name}`; layers with a spatial output: {sample} (`glassbox layers` lists all)"
                )))
            }
        }
    }
}

/// Checks a target class index.
pub fn check_target(model: &Model, target: i64) -> Result<()> {
    if target < 0 || target >= model.spec.classes {
        return Err(Error::invalid(format!(
            "target class {target} does not exist: the model has classes 0 to {}",
            model.spec.classes - 1
        )));
    }
    Ok(())
}

fn check_finite(t: &Tensor, what: &str) -> Result<()> {
    let bad = t.isfinite().logical_not().any().int64_value(&[]) != 0;
    if bad {
        return Err(Error::invalid(format!(
            "{what} contains NaN or Inf; the model or its weights are numerically broken there"
        )));
    }
    Ok(())
}

/// How many copies of one input fit in memory at once for forward+backward.
pub fn batch_budget(model: &Model, want: usize) -> usize {
    // Saved activations for backward: about every traced output, twice over.
    let per_sample = model.activation_bytes() * 2;
    let free = memory_for_batches(model.device());
    let fit = (free / per_sample.max(1)).max(1) as usize;
    want.clamp(1, fit.min(256))
}

/// Memory one batch of work may take: a quarter of the machine's memory on the CPU (fixed
/// per machine, so batch sizes, and thus the floating-point results, do not change from run
/// to run with the free memory), 8 GiB on a GPU.
pub fn memory_for_batches(device: Device) -> i64 {
    match device {
        Device::Cpu => total_memory_bytes().unwrap_or(2 << 30) / 4,
        _ => 8 << 30,
    }
}

fn total_memory_bytes() -> Option<i64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The class to explain: the one asked for, or the top-1 of these logits (first row).
fn pick_target(model: &Model, logits: &Tensor, target: Option<i64>) -> Result<i64> {
    check_finite(logits, "the model output")?;
    match target {
        Some(t) => {
            check_target(model, t)?;
            Ok(t)
        }
        None => Ok(logits.get(0).argmax(-1, false).int64_value(&[])),
    }
}

/// Gradient of the target logit (summed over the batch) with respect to the input, from
/// one forward and one backward; the target is found in that same forward when not given.
fn grad_of_target(model: &Model, x: &Tensor, target: Option<i64>) -> Result<(Tensor, i64)> {
    let xi = x.detach().set_requires_grad(true);
    let logits = model.forward_hooked(&xi, false, &mut |_, _, t| t);
    let t = pick_target(model, &logits.detach(), target)?;
    let score = logits.select(1, t).sum(Kind::Float);
    Ok((Tensor::run_backward(&[score], &[&xi], false, false).remove(0), t))
}

/// Standard normal noise of `shape` from the stream (seed, stream), drawn on the CPU
/// (PCG and the ziggurat method) so every device, thread and batch size gets the same numbers.
pub fn seeded_normal(shape: &[i64], seed: i64, stream: u64) -> Tensor {
    seeded_normals(shape, seed, stream..stream + 1)
}

/// `seeded_normal` for each stream of `streams`, stacked along dim 0 (`shape`'s first
/// dimension is multiplied by their count); the streams are drawn on all cores at once.
pub fn seeded_normals(shape: &[i64], seed: i64, streams: std::ops::Range<u64>) -> Tensor {
    use rand::{Rng, SeedableRng};
    let len = shape.iter().product::<i64>() as usize;
    let n = streams.end.saturating_sub(streams.start) as usize;
    let mut v = vec![0f32; len * n];
    let fill = |out: &mut [f32], stream: u64| {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(
            (seed as u64) ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17),
        );
        out.iter_mut().for_each(|o| *o = rng.sample(rand_distr::StandardNormal));
    };
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let per_thread = n.div_ceil(threads) * len;
    if per_thread > 0 {
        std::thread::scope(|s| {
            for (c, chunk) in v.chunks_mut(per_thread).enumerate() {
                let start = streams.start + (c * per_thread / len) as u64;
                s.spawn(move || {
                    for (j, sample) in chunk.chunks_mut(len).enumerate() {
                        fill(sample, start + j as u64);
                    }
                });
            }
        });
    }
    let mut full = shape.to_vec();
    if let Some(d) = full.first_mut() {
        *d *= n as i64;
    } else {
        full.push(n as i64);
    }
    Tensor::from_slice(&v).view(full.as_slice())
}

/// Gauss-Legendre nodes and weights on [0, 1] (Captum's default IG rule).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut alphas = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            if n == 1 {
                p0 = 1.0;
                p1 = x;
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        alphas.push(0.5 * (1.0 + x));
        weights.push(0.5 * 2.0 / ((1.0 - x * x) * dp * dp));
    }
    // Ascending alphas, as numpy's leggauss gives them.
    let mut pairs: Vec<(f64, f64)> = alphas.into_iter().zip(weights).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    pairs.into_iter().unzip()
}

fn gaussian_blur(x: &Tensor, sigma: f64) -> Tensor {
    let radius = (3.0 * sigma).ceil() as i64;
    let k = 2 * radius + 1;
    let coords = Tensor::arange(k, (Kind::Float, x.device())) - radius as f64;
    let g = (-(&coords * &coords) / (2.0 * sigma * sigma)).exp();
    let g = &g / g.sum(Kind::Float);
    let c = x.size()[1];
    let gx = g.view([1, 1, 1, k]).repeat([c, 1, 1, 1]);
    let gy = g.view([1, 1, k, 1]).repeat([c, 1, 1, 1]);
    let padded = x.reflection_pad2d([radius, radius, 0, 0]);
    let y = padded.conv2d(&gx, None::<Tensor>, [1, 1], [0, 0], [1, 1], c);
    let padded = y.reflection_pad2d([0, 0, radius, radius]);
    padded.conv2d(&gy, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)
}

/// The activation of `layer` and the gradient of the target logit with respect to it
/// (and to the input, from the same backward).
struct LayerGrads {
    activation: Tensor,
    layer_grad: Tensor,
    input_grad: Tensor,
}

/// With `to_input` false the backward stops at the layer: Grad-CAM alone needs no more.
fn layer_grads(
    model: &Model,
    x: &Tensor,
    target: Option<i64>,
    layer: &str,
    to_input: bool,
) -> Result<(LayerGrads, i64)> {
    layer_grads_with(model, x, target, layer, to_input, None).map(|(lg, t, _, _)| (lg, t))
}

/// `layer_grads` that also returns the logits and the output of `capture`, from the same forward.
fn layer_grads_with(
    model: &Model,
    x: &Tensor,
    target: Option<i64>,
    layer: &str,
    to_input: bool,
    capture: Option<&str>,
) -> Result<(LayerGrads, i64, Tensor, Option<Tensor>)> {
    let xi = x.detach().set_requires_grad(true);
    let mut act = None;
    let mut captured = None;
    let logits = model.forward_hooked(&xi, false, &mut |name, _, t| {
        if name == layer {
            act = Some(t.shallow_clone());
        }
        if Some(name) == capture {
            captured = Some(t.detach());
        }
        t
    });
    let activation = act.ok_or_else(|| Error::invalid(format!("layer `{layer}` was not reached in the forward")))?;
    let target = pick_target(model, &logits.detach(), target)?;
    let score = logits.select(1, target).sum(Kind::Float);
    let mut g = if to_input {
        Tensor::run_backward(&[score], &[&activation, &xi], false, false)
    } else {
        Tensor::run_backward(&[score], &[&activation], false, false)
    };
    let input_grad = if to_input {
        g.pop().expect("two grads")
    } else {
        Tensor::new()
    };
    let layer_grad = g.pop().expect("a grad");
    if !layer_grad.defined() {
        return Err(Error::invalid(format!("the target does not depend on layer `{layer}`")));
    }
    Ok((
        LayerGrads {
            activation: activation.detach(),
            layer_grad,
            input_grad,
        },
        target,
        logits.detach(),
        captured,
    ))
}

fn grad_cam_from(a: &Tensor, g: &Tensor, plus_plus: bool) -> Tensor {
    let weights = if plus_plus {
        let g2 = g * g;
        let g3 = &g2 * g;
        let sum_a = a.sum_dim_intlist([2i64, 3].as_slice(), true, Kind::Float);
        let aij = &g2 / (&g2 * 2.0 + sum_a * g3 + 1e-6);
        let aij = aij.where_self(&g.ne(0.0), &Tensor::zeros_like(&aij));
        (g.relu() * aij).sum_dim_intlist([2i64, 3].as_slice(), true, Kind::Float)
    } else {
        g.mean_dim([2i64, 3].as_slice(), true, Kind::Float)
    };
    (weights * a)
        .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
        .relu()
}

extern "C" {
    fn glassbox_positive_gradient(
        x: *const std::ffi::c_void,
        error: *mut *mut std::ffi::c_char,
    ) -> *mut std::ffi::c_void;
    fn glassbox_free_message(message: *mut std::ffi::c_char);
}

/// The identity in the forward pass; in the backward pass only the positive part of the
/// gradient goes through (libtorch autograd function in `guided.cpp`). After an activation
/// this is the guided-backprop rule.
fn positive_gradient(x: &Tensor) -> Result<Tensor> {
    let mut error: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: `x` is a live tch tensor (a `torch::Tensor*`); the function returns a new
    // heap tensor that `Tensor::from_ptr` takes ownership of, or null with a message.
    let out = unsafe { glassbox_positive_gradient(x.as_ptr().cast(), &mut error) };
    if out.is_null() {
        let what = if error.is_null() {
            "no message".to_string()
        } else {
            // SAFETY: a NUL-terminated string malloc'ed by guided.cpp, freed right after.
            let s = unsafe { std::ffi::CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned();
            unsafe { glassbox_free_message(error) };
            s
        };
        return Err(Error::invalid(format!(
            "the guided-backprop rule failed in libtorch: {what}"
        )));
    }
    // SAFETY: a new, owned `torch::Tensor*`.
    Ok(unsafe { Tensor::from_ptr(out.cast()) })
}

/// Guided backprop: ReLU/ReLU6 backward passes only positive gradients. One forward with
/// the rule placed after every activation, one ordinary backward.
fn guided_backprop(model: &Model, x: &Tensor, target: Option<i64>) -> Result<(Tensor, i64)> {
    let xi = x.detach().set_requires_grad(true);
    let mut activations = 0;
    let mut failed = None;
    let logits = model.forward_hooked(&xi, false, &mut |_, kind, t| {
        if kind != LayerKind::Activation || failed.is_some() {
            return t;
        }
        activations += 1;
        match positive_gradient(&t) {
            Ok(g) => g,
            Err(e) => {
                failed = Some(e);
                t
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    if activations == 0 {
        return Err(Error::invalid(
            "guided backprop needs a network with ReLU or ReLU6 activations",
        ));
    }
    let target = pick_target(model, &logits.detach(), target)?;
    let score = logits.select(1, target).sum(Kind::Float);
    let mut grads = Tensor::run_backward(&[score], &[&xi], false, false);
    Ok((grads.swap_remove(0), target))
}

/// Runs one method on one preprocessed input [1, C, H, W].
pub fn explain(
    model: &Model,
    input: &Tensor,
    method: Method,
    p: &Params,
    progress: &mut ProgressFn,
) -> Result<Explanation> {
    let device = model.device();
    let x = input.to_device(device).to_kind(Kind::Float);
    if x.size().len() != 4 || x.size()[0] != 1 {
        return Err(Error::invalid(format!(
            "explain takes one image [1, C, H, W], got {:?}",
            x.size()
        )));
    }
    let side = x.size()[2].min(x.size()[3]);
    p.validate(method, side)?;
    if let Some(t) = p.target {
        check_target(model, t)?;
    }
    let mut meta = BTreeMap::new();
    meta.insert("method".to_string(), method.name().to_string());
    meta.insert("model".to_string(), model.source.clone());
    let layer = if method.uses_layer() {
        Some(resolve_layer(model, p.layer.as_deref())?)
    } else {
        None
    };
    if let Some(l) = &layer {
        meta.insert("layer".into(), l.clone());
    }
    // Multi-pass methods need the target before their batches: one extra batch-1 forward.
    // SmoothGrad needs nothing else from it; IG (completeness) and occlusion need the logit.
    let first = match method {
        Method::SmoothGrad => p.target.is_none(),
        Method::IntegratedGradients | Method::Occlusion => true,
        _ => false,
    }
    .then(|| model.logits(&x));
    let target = match &first {
        Some(logits) => pick_target(model, logits, p.target)?,
        None => p.target.unwrap_or(-1),
    };
    let mut completeness_error = None;
    let (attribution, target) = match method {
        Method::Gradient => grad_of_target(model, &x, p.target)?,
        Method::InputXGradient => {
            let (g, t) = grad_of_target(model, &x, p.target)?;
            (g * &x, t)
        }
        Method::SmoothGrad => {
            meta.insert("samples".into(), p.samples.to_string());
            meta.insert("sigma".into(), p.sigma.to_string());
            meta.insert("seed".into(), p.seed.to_string());
            let range = (x.max() - x.min()).double_value(&[]);
            let std = p.sigma * range;
            let bs = batch_budget(model, p.samples);
            let mut sum = Tensor::zeros_like(&x);
            let mut done = 0;
            while done < p.samples {
                let n = bs.min(p.samples - done) as i64;
                // Sample k's noise depends on (seed, k) only: the same on any device and batch size.
                let noise = seeded_normals(&x.size(), p.seed, done as u64..(done + n as usize) as u64);
                let noisy = noise.to_device(device) * std + &x;
                let (g, _) = grad_of_target(model, &noisy, Some(target))?;
                sum += g.sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
                done += n as usize;
                let partial = &sum / done as f64;
                if !progress(Progress {
                    done,
                    total: p.samples,
                    partial: Some(&partial),
                }) {
                    return Err(cancelled());
                }
            }
            (sum / p.samples as f64, target)
        }
        Method::IntegratedGradients => {
            meta.insert("steps".into(), p.steps.to_string());
            meta.insert("baseline".into(), p.baseline.name().to_string());
            meta.insert("rule".into(), "gauss-legendre".to_string());
            let base = match p.baseline {
                Baseline::Zero => Tensor::zeros_like(&x),
                Baseline::Black => {
                    let pre = &model.preprocess;
                    let c = pre.channels();
                    let mean = Tensor::from_slice(&pre.mean).to_kind(Kind::Float).view([1, c, 1, 1]);
                    let std = Tensor::from_slice(&pre.std).to_kind(Kind::Float).view([1, c, 1, 1]);
                    (Tensor::zeros_like(&x) - mean.to_device(device)) / std.to_device(device)
                }
                Baseline::Blur => gaussian_blur(&x, side as f64 / 16.0),
            };
            let (alphas, weights) = gauss_legendre(p.steps);
            let diff = &x - &base;
            let bs = batch_budget(model, p.steps);
            let mut total = Tensor::zeros_like(&x);
            let mut i = 0;
            while i < p.steps {
                let n = bs.min(p.steps - i);
                let a = Tensor::from_slice(&alphas[i..i + n])
                    .to_kind(Kind::Float)
                    .to_device(device)
                    .view([-1, 1, 1, 1]);
                let w = Tensor::from_slice(&weights[i..i + n])
                    .to_kind(Kind::Float)
                    .to_device(device)
                    .view([-1, 1, 1, 1]);
                let path = &base + &a * &diff;
                let (g, _) = grad_of_target(model, &path, Some(target))?;
                total += (g * w).sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
                i += n;
                if !progress(Progress {
                    done: i,
                    total: p.steps,
                    partial: None,
                }) {
                    return Err(cancelled());
                }
            }
            let attr = total * &diff;
            let fb = model.logits(&base).double_value(&[0, target]);
            let fx = first.as_ref().map_or(0.0, |l| l.double_value(&[0, target]));
            let err = attr.sum(Kind::Double).double_value(&[]) - (fx - fb);
            meta.insert("completeness_error".into(), format!("{err:.6}"));
            completeness_error = Some(err);
            (attr, target)
        }
        Method::GradCam | Method::GradCamPlusPlus => {
            let l = layer.as_deref().expect("layer resolved");
            let (lg, t) = layer_grads(model, &x, p.target, l, false)?;
            (
                grad_cam_from(&lg.activation, &lg.layer_grad, method == Method::GradCamPlusPlus),
                t,
            )
        }
        Method::ScoreCam => {
            let l = layer.as_deref().expect("layer resolved");
            score_cam(model, &x, p.target, l, progress)?
        }
        Method::GuidedBackprop => guided_backprop(model, &x, p.target)?,
        Method::GuidedGradCam => {
            let l = layer.as_deref().expect("layer resolved");
            let (lg, t) = layer_grads(model, &x, p.target, l, false)?;
            let cam = grad_cam_from(&lg.activation, &lg.layer_grad, false);
            let up = upsample_normalised(&cam, x.size()[2], x.size()[3]);
            let (gb, _) = guided_backprop(model, &x, Some(t))?;
            (gb * up, t)
        }
        Method::Occlusion => {
            meta.insert("window".into(), p.window.to_string());
            meta.insert("stride".into(), p.stride.to_string());
            meta.insert("baseline_value".into(), p.occlusion_value.to_string());
            let full = first.as_ref().map_or(0.0, |l| l.double_value(&[0, target]));
            (occlusion(model, &x, target, p, full, progress)?, target)
        }
    };
    meta.insert("target".to_string(), target.to_string());
    let attribution = attribution.detach().to_device(Device::Cpu);
    check_finite(&attribution, &format!("the {method} attribution (its gradients)"))?;
    Ok(Explanation {
        method,
        target,
        layer,
        attribution,
        completeness_error,
        metadata: meta,
    })
}

/// Methods that one forward and one backward serve together.
pub fn shares_backward(m: Method) -> bool {
    matches!(
        m,
        Method::Gradient | Method::InputXGradient | Method::GradCam | Method::GradCamPlusPlus
    )
}

/// Several methods on one input: gradient, input x gradient, Grad-CAM and Grad-CAM++
/// come from ONE forward+backward; the others run one after another.
pub fn explain_many(
    model: &Model,
    input: &Tensor,
    methods: &[Method],
    p: &Params,
    progress: &mut ProgressFn,
) -> Vec<Result<Explanation>> {
    let shared: Vec<Method> = methods.iter().copied().filter(|m| shares_backward(*m)).collect();
    let mut done: Vec<(Method, Result<Explanation>)> = Vec::new();
    if shared.len() > 1 {
        match shared_pass(model, input, &shared, p) {
            Ok(list) => done.extend(list.into_iter().map(|e| (e.method, Ok(e)))),
            Err(e) => {
                let msg = e.to_string();
                done.extend(shared.iter().map(|m| (*m, Err(Error::invalid(msg.clone())))));
            }
        }
    }
    methods
        .iter()
        .map(|m| match done.iter().position(|(d, _)| d == m) {
            Some(i) => done.remove(i).1,
            None => explain(model, input, *m, p, progress),
        })
        .collect()
}

fn shared_pass(model: &Model, input: &Tensor, methods: &[Method], p: &Params) -> Result<Vec<Explanation>> {
    shared_pass_with(model, input, methods, p, None).map(|r| r.0)
}

/// The methods that share one backward, with the logits and the output of layer
/// `capture` from the same forward.
pub fn shared_pass_with(
    model: &Model,
    input: &Tensor,
    methods: &[Method],
    p: &Params,
    capture: Option<&str>,
) -> Result<(Vec<Explanation>, Tensor, Option<Tensor>)> {
    let x = input.to_device(model.device()).to_kind(Kind::Float);
    let layer = resolve_layer(model, p.layer.as_deref())?;
    let to_input = methods
        .iter()
        .any(|m| matches!(m, Method::Gradient | Method::InputXGradient));
    let (lg, target, logits, captured) = layer_grads_with(model, &x, p.target, &layer, to_input, capture)?;
    let list = methods
        .iter()
        .map(|&method| {
            let (attribution, layer) = match method {
                Method::Gradient => (lg.input_grad.shallow_clone(), None),
                Method::InputXGradient => (&lg.input_grad * &x, None),
                Method::GradCam => (
                    grad_cam_from(&lg.activation, &lg.layer_grad, false),
                    Some(layer.clone()),
                ),
                _ => (grad_cam_from(&lg.activation, &lg.layer_grad, true), Some(layer.clone())),
            };
            let attribution = attribution.detach().to_device(Device::Cpu);
            check_finite(&attribution, &format!("the {method} attribution (its gradients)"))?;
            let mut metadata = BTreeMap::new();
            metadata.insert("method".to_string(), method.name().to_string());
            metadata.insert("target".to_string(), target.to_string());
            metadata.insert("model".to_string(), model.source.clone());
            if let Some(l) = &layer {
                metadata.insert("layer".into(), l.clone());
            }
            Ok(Explanation {
                method,
                target,
                layer,
                attribution,
                completeness_error: None,
                metadata,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((list, logits, captured))
}

/// A CAM [1, 1, h, w] upsampled bilinearly to [1, 1, H, W] and scaled to [0, 1].
pub fn upsample_normalised(cam: &Tensor, h: i64, w: i64) -> Tensor {
    let up = cam.upsample_bilinear2d([h, w], false, None, None);
    let (mn, mx) = (up.min(), up.max());
    (up - &mn) / (mx - mn + 1e-7)
}

fn score_cam(
    model: &Model,
    x: &Tensor,
    target: Option<i64>,
    layer: &str,
    progress: &mut ProgressFn,
) -> Result<(Tensor, i64)> {
    tch::no_grad(|| {
        let mut act = None;
        let logits = model.forward_hooked(x, false, &mut |name, _, t| {
            if name == layer {
                act = Some(t.shallow_clone());
            }
            t
        });
        let a = act.ok_or_else(|| Error::invalid(format!("layer `{layer}` was not reached")))?;
        let target = pick_target(model, &logits, target)?;
        let (h, w) = (x.size()[2], x.size()[3]);
        // pytorch-grad-cam: UpsamplingBilinear2d (align_corners=True), min-max per channel.
        let up = a.upsample_bilinear2d([h, w], true, None, None);
        let flat = up.flatten(2, 3);
        let mx = flat.amax([2i64].as_slice(), false).unsqueeze(-1).unsqueeze(-1);
        let mn = flat.amin([2i64].as_slice(), false).unsqueeze(-1).unsqueeze(-1);
        let masks = ((up - &mn) / (mx - mn + 1e-8)).squeeze_dim(0); // [K, H, W]
        let k = masks.size()[0];
        let bs = (batch_budget(model, 64) as i64).max(1);
        let mut scores = Vec::with_capacity(k as usize);
        let mut i = 0;
        while i < k {
            let n = bs.min(k - i);
            let batch = x * masks.narrow(0, i, n).unsqueeze(1);
            let out = model.logits(&batch).select(1, target).to_device(Device::Cpu);
            scores.extend(Vec::<f32>::try_from(&out).map_err(Error::from)?);
            i += n;
            let seen = i;
            let partial = (Tensor::from_slice(&scores)
                .to_device(x.device())
                .softmax(-1, Kind::Float)
                .view([1, seen, 1, 1])
                * a.narrow(1, 0, seen))
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
            .relu();
            if !progress(Progress {
                done: i as usize,
                total: k as usize,
                partial: Some(&partial),
            }) {
                return Err(cancelled());
            }
        }
        let s = Tensor::from_slice(&scores)
            .to_device(x.device())
            .softmax(-1, Kind::Float)
            .view([1, k, 1, 1]);
        Ok((
            (s * a).sum_dim_intlist([1i64].as_slice(), true, Kind::Float).relu(),
            target,
        ))
    })
}

/// Captum's Occlusion: mean drop of the target logit over the windows covering each pixel.
fn occlusion(
    model: &Model,
    x: &Tensor,
    target: i64,
    p: &Params,
    full: f64,
    progress: &mut ProgressFn,
) -> Result<Tensor> {
    tch::no_grad(|| {
        let (h, w) = (x.size()[2], x.size()[3]);
        let ny = 1 + (h - p.window) / p.stride;
        let nx = 1 + (w - p.window) / p.stride;
        let positions: Vec<(i64, i64)> = (0..ny)
            .flat_map(|j| (0..nx).map(move |i| (j * p.stride, i * p.stride)))
            .collect();
        let total_n = positions.len();
        let bs = batch_budget(model, 64);
        let mut total = Tensor::zeros([1, 1, h, w], (Kind::Float, x.device()));
        let mut count = Tensor::zeros([1, 1, h, w], (Kind::Float, x.device()));
        for (b, chunk) in positions.chunks(bs).enumerate() {
            let n = chunk.len() as i64;
            let masks = Tensor::zeros([n, 1, h, w], (Kind::Float, x.device()));
            for (i, &(y0, x0)) in chunk.iter().enumerate() {
                let _ = masks
                    .get(i as i64)
                    .narrow(1, y0, p.window)
                    .narrow(2, x0, p.window)
                    .fill_(1.0);
            }
            let occluded = x * (1.0 - &masks) + &masks * p.occlusion_value;
            let out = model.logits(&occluded).select(1, target);
            let drop = (full - out).view([n, 1, 1, 1]);
            total += (drop * &masks).sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
            count += masks.sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
            let done = (b * bs + chunk.len()).min(total_n);
            let partial = (&total / count.clamp_min(1.0)).expand([1, x.size()[1], h, w], false);
            if !progress(Progress {
                done,
                total: total_n,
                partial: Some(&partial),
            }) {
                return Err(cancelled());
            }
        }
        let mean = total / count.clamp_min(1.0);
        Ok(mean.expand([1, x.size()[1], h, w], false).contiguous())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_known_nodes() {
        let (a, w) = gauss_legendre(2);
        let r = 0.5 / 3f64.sqrt();
        assert!(
            (a[0] - (0.5 - r)).abs() < 1e-12 && (a[1] - (0.5 + r)).abs() < 1e-12,
            "{a:?}"
        );
        assert!((w[0] - 0.5).abs() < 1e-12 && (w[1] - 0.5).abs() < 1e-12);
        let (_, w) = gauss_legendre(32);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Exact for polynomials of degree 2n-1: integral of t^5 on [0,1] is 1/6.
        let (a, w) = gauss_legendre(3);
        let s: f64 = a.iter().zip(&w).map(|(t, w)| w * t.powi(5)).sum();
        assert!((s - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn method_names_round_trip_and_unknown_lists_choices() {
        for m in METHODS {
            assert_eq!(m.name().parse::<Method>().unwrap(), *m);
        }
        let e = "lime".parse::<Method>().unwrap_err().to_string();
        assert!(e.contains("unknown method `lime`") && e.contains("grad-cam++"), "{e}");
    }
}

#[cfg(test)]
mod noise_tests {
    use super::*;

    #[test]
    fn seeded_normal_is_standard_normal_and_reproducible() {
        let a = seeded_normal(&[100_000], 3, 7);
        let (m, s) = (a.mean(Kind::Float).double_value(&[]), a.std(true).double_value(&[]));
        assert!(m.abs() < 0.02 && (s - 1.0).abs() < 0.02, "mean {m} std {s}");
        assert!(a.equal(&seeded_normal(&[100_000], 3, 7)));
        let b = seeded_normal(&[100_000], 3, 8);
        let c = (&a * &b).mean(Kind::Float).double_value(&[]);
        assert!(c.abs() < 0.02, "streams correlate: {c}");
    }

    #[test]
    fn seeded_normals_stack_the_single_streams_whatever_the_batch() {
        let shape = [1i64, 3, 5, 7];
        let b = seeded_normals(&shape, 11, 4..9);
        assert_eq!(b.size(), [5, 3, 5, 7]);
        for k in 4..9i64 {
            let one = seeded_normal(&shape, 11, k as u64);
            assert!(b.narrow(0, k - 4, 1).equal(&one), "stream {k}");
        }
        assert_eq!(seeded_normals(&shape, 11, 3..3).size(), [0, 3, 5, 7]);
    }
}

#[cfg(test)]
mod guided_rule_tests {
    use super::*;

    #[test]
    fn positive_gradient_is_the_identity_forward_and_keeps_positive_gradients_backward() {
        let x = Tensor::from_slice(&[-1.0f32, 0.5, 2.0, 3.0]).set_requires_grad(true);
        let y = positive_gradient(&x).unwrap();
        assert!(y.detach().equal(&x.detach()));
        let w = Tensor::from_slice(&[1.0f32, -2.0, 0.0, 4.0]);
        let g = Tensor::run_backward(&[(&y * &w).sum(Kind::Float)], &[&x], false, false);
        let want = Tensor::from_slice(&[1.0f32, 0.0, 0.0, 4.0]);
        assert!(g[0].equal(&want), "{g:?}");
        // After ReLU6 the activation's own mask applies too: the guided rule.
        let z = positive_gradient(&x.relu6()).unwrap();
        let g = Tensor::run_backward(&[(&z * &w).sum(Kind::Float)], &[&x], false, false);
        assert!(g[0].equal(&Tensor::from_slice(&[0.0f32, 0.0, 0.0, 4.0])), "{g:?}");
    }
}
