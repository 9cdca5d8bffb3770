//! Attribution methods: why the model gave its answer.
//!
//! All of them explain the target class's LOGIT, as Captum and pytorch-grad-cam do.
//! Input-shaped maps are [1, C, H, W]; the CAM family is [1, 1, h, w] at the layer's
//! resolution, after ReLU.
//!
//! This file: the method list, their parameters, and the dispatch. One file per family:
//! `gradient.rs` (gradient, input x gradient, SmoothGrad, Integrated Gradients), `cam.rs`
//! (Grad-CAM, Grad-CAM++, the shared backward), `guided.rs` with `guided.cpp` (guided
//! backprop, guided Grad-CAM), `score_cam.rs`, `occlusion.rs`. A new method goes into its
//! family's file, or a new one, and into `Method`, `METHODS` and `explain` here.

mod cam;
mod gradient;
mod guided;
mod occlusion;
mod score_cam;

pub use cam::{shared_pass_with, upsample_normalised};
pub use gradient::{gauss_legendre, seeded_normal, seeded_normals};

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

pub(crate) fn cancelled() -> Error {
    Error::Cancelled
}

/// Layers whose output is spatial ([N, C, H, W]), in forward order.
pub fn spatial_layers(model: &Model) -> Vec<(String, LayerKind, Vec<i64>)> {
    model
        .layers()
        .into_iter()
        .filter(|l| super::defaults::is_spatial(&l.shape))
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

pub(crate) fn check_finite(t: &Tensor, what: &str) -> Result<()> {
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
pub(crate) fn pick_target(model: &Model, logits: &Tensor, target: Option<i64>) -> Result<i64> {
    check_finite(logits, "the model output")?;
    match target {
        Some(t) => {
            check_target(model, t)?;
            Ok(t)
        }
        None => Ok(logits.get(0).argmax(-1, false).int64_value(&[])),
    }
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
    meta.insert("model".to_string(), model.source.to_string());
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
        Method::Gradient => gradient::grad_of_target(model, &x, p.target)?,
        Method::InputXGradient => {
            let (g, t) = gradient::grad_of_target(model, &x, p.target)?;
            (g * &x, t)
        }
        Method::SmoothGrad => (gradient::smoothgrad(model, &x, target, p, &mut meta, progress)?, target),
        Method::IntegratedGradients => {
            let (attr, err) =
                gradient::integrated_gradients(model, &x, target, p, first.as_ref(), &mut meta, progress)?;
            completeness_error = Some(err);
            (attr, target)
        }
        Method::GradCam | Method::GradCamPlusPlus => {
            let l = layer.as_deref().expect("layer resolved");
            cam::grad_cam(model, &x, p.target, l, method == Method::GradCamPlusPlus)?
        }
        Method::ScoreCam => {
            let l = layer.as_deref().expect("layer resolved");
            score_cam::score_cam(model, &x, p.target, l, progress)?
        }
        Method::GuidedBackprop => guided::guided_backprop(model, &x, p.target)?,
        Method::GuidedGradCam => {
            let l = layer.as_deref().expect("layer resolved");
            guided::guided_grad_cam(model, &x, p.target, l)?
        }
        Method::Occlusion => {
            meta.insert("window".into(), p.window.to_string());
            meta.insert("stride".into(), p.stride.to_string());
            meta.insert("baseline_value".into(), p.occlusion_value.to_string());
            let full = first.as_ref().map_or(0.0, |l| l.double_value(&[0, target]));
            (occlusion::occlusion(model, &x, target, p, full, progress)?, target)
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
        match cam::shared_pass(model, input, &shared, p) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip_and_unknown_lists_choices() {
        for m in METHODS {
            assert_eq!(m.name().parse::<Method>().unwrap(), *m);
        }
        let e = "lime".parse::<Method>().unwrap_err().to_string();
        assert!(e.contains("unknown method `lime`") && e.contains("grad-cam++"), "{e}");
    }
}
