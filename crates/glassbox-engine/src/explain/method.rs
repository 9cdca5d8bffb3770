//! The attribution methods by name, their parameters, what one returns, and its progress.

use std::collections::BTreeMap;
use std::fmt;

use tch::Tensor;

use crate::error::{Error, Result};

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
    LrpEpsilonPlusFlat,
    LrpEpsilonGammaBox,
    LrpAlpha2Beta1,
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
    Method::LrpEpsilonPlusFlat,
    Method::LrpEpsilonGammaBox,
    Method::LrpAlpha2Beta1,
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
            Method::LrpEpsilonPlusFlat => "lrp-epsilon-plus-flat",
            Method::LrpEpsilonGammaBox => "lrp-epsilon-gamma-box",
            Method::LrpAlpha2Beta1 => "lrp-alpha2-beta1",
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
            Method::LrpEpsilonPlusFlat => {
                "The class score passed back layer by layer to the pixels, each layer sharing it among its inputs by their positive contributions."
            }
            Method::LrpEpsilonGammaBox => {
                "The class score passed back layer by layer, positive contributions favoured (gamma), the first layer within the pixel range."
            }
            Method::LrpAlpha2Beta1 => {
                "The class score passed back layer by layer, evidence for (twice) minus evidence against (once) at each convolution."
            }
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
            Method::InputXGradient
                | Method::IntegratedGradients
                | Method::Occlusion
                | Method::LrpEpsilonPlusFlat
                | Method::LrpEpsilonGammaBox
                | Method::LrpAlpha2Beta1
        )
    }

    /// The LRP composite of an LRP method.
    pub fn composite(self) -> Option<crate::lrp::Composite> {
        use crate::lrp::Composite;
        match self {
            Method::LrpEpsilonPlusFlat => Some(Composite::EpsilonPlusFlat),
            Method::LrpEpsilonGammaBox => Some(Composite::EpsilonGammaBox),
            Method::LrpAlpha2Beta1 => Some(Composite::EpsilonAlpha2Beta1),
            _ => None,
        }
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
            "lrp" | "epsilon-plus-flat" | "lrp-epsilonplusflat" => "lrp-epsilon-plus-flat",
            "epsilon-gamma-box" | "lrp-epsilongammabox" => "lrp-epsilon-gamma-box",
            "alpha2-beta1" | "lrp-epsilon-alpha2-beta1" | "lrp-alpha-beta" => "lrp-alpha2-beta1",
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
