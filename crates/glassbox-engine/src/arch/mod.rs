//! Architectures and their detection from a weight file's keys and shapes.

pub mod efficientnet_lite;
pub mod mobilenet_v2;
mod net;
pub mod resnet;
pub mod sequential;
pub mod tiny_cnn;

use std::fmt;

use tch::nn;

use super::error::{Error, Result};
use super::weights::Weights;
pub use net::Net;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    EfficientNetLite(u8),
    ResNet(u8),
    Vgg(u8),
    AlexNet,
    MobileNetV2,
    TinyCnn,
}

/// Every architecture name `--arch` accepts.
pub const ARCH_NAMES: &[&str] = &[
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite2",
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg11",
    "vgg16",
    "alexnet",
    "mobilenet_v2",
    "tiny-cnn",
];

/// Every architecture, in the order of [`ARCH_NAMES`].
pub const ALL_ARCHS: &[Arch] = &[
    Arch::EfficientNetLite(0),
    Arch::EfficientNetLite(1),
    Arch::EfficientNetLite(2),
    Arch::ResNet(18),
    Arch::ResNet(34),
    Arch::ResNet(50),
    Arch::Vgg(11),
    Arch::Vgg(16),
    Arch::AlexNet,
    Arch::MobileNetV2,
    Arch::TinyCnn,
];

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::EfficientNetLite(v) => write!(f, "efficientnet-lite{v}"),
            Arch::ResNet(d) => write!(f, "resnet{d}"),
            Arch::Vgg(d) => write!(f, "vgg{d}"),
            Arch::AlexNet => write!(f, "alexnet"),
            Arch::MobileNetV2 => write!(f, "mobilenet_v2"),
            Arch::TinyCnn => write!(f, "tiny-cnn"),
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let arch = match norm.as_str() {
            "efficientnet-lite0" => Arch::EfficientNetLite(0),
            "efficientnet-lite1" => Arch::EfficientNetLite(1),
            "efficientnet-lite2" => Arch::EfficientNetLite(2),
            "resnet18" => Arch::ResNet(18),
            "resnet34" => Arch::ResNet(34),
            "resnet50" => Arch::ResNet(50),
            "vgg11" => Arch::Vgg(11),
            "vgg16" => Arch::Vgg(16),
            "alexnet" => Arch::AlexNet,
            "mobilenet-v2" | "mobilenetv2" => Arch::MobileNetV2,
            "tiny-cnn" | "tinycnn" => Arch::TinyCnn,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown architecture `{s}`; choose one of: {}",
                    ARCH_NAMES.join(", ")
                )))
            }
        };
        Ok(arch)
    }
}

impl Arch {
    /// The name `--arch` takes.
    pub fn name(self) -> &'static str {
        ARCH_NAMES[ALL_ARCHS.iter().position(|a| *a == self).expect("every arch is listed")]
    }

    /// Builds the network's variables under `p` (random initialisation).
    pub fn build(self, p: &nn::Path, classes: i64, in_channels: i64) -> Box<dyn Net> {
        match self {
            Arch::EfficientNetLite(v) => Box::new(efficientnet_lite::EfficientNetLite::new(p, v, classes)),
            Arch::ResNet(d) => Box::new(resnet::ResNet::new(p, d, classes)),
            Arch::Vgg(d) => Box::new(sequential::Sequential::vgg(p, d, classes)),
            Arch::AlexNet => Box::new(sequential::Sequential::alexnet(p, classes)),
            Arch::MobileNetV2 => Box::new(mobilenet_v2::MobileNetV2::new(p, classes)),
            Arch::TinyCnn => Box::new(tiny_cnn::TinyCnn::new(p, in_channels, classes)),
        }
    }

    /// The classifier's weight key, whose first dimension is the number of classes.
    pub fn classifier_key(self) -> &'static str {
        match self {
            Arch::EfficientNetLite(_) => "_fc.weight",
            Arch::ResNet(_) => "fc.weight",
            Arch::Vgg(_) | Arch::AlexNet => "classifier.6.weight",
            Arch::MobileNetV2 => "classifier.1.weight",
            Arch::TinyCnn => "fc2.weight",
        }
    }

    /// Inputs of the classifier (the second dimension of its weight).
    pub fn features(self) -> i64 {
        match self {
            Arch::EfficientNetLite(_) | Arch::MobileNetV2 => 1280,
            Arch::ResNet(d) if d >= 50 => 2048,
            Arch::ResNet(_) => 512,
            Arch::Vgg(_) | Arch::AlexNet => 4096,
            Arch::TinyCnn => 128,
        }
    }

    /// The epsilon of its batch norms.
    pub fn bn_eps(self) -> f64 {
        match self {
            Arch::EfficientNetLite(_) => efficientnet_lite::EPS,
            Arch::MobileNetV2 => mobilenet_v2::EPS,
            Arch::ResNet(_) => resnet::EPS,
            _ => 1e-5,
        }
    }

    /// The activation function the architecture uses everywhere.
    pub fn activation(self) -> super::layers::ActFn {
        match self {
            Arch::EfficientNetLite(_) | Arch::MobileNetV2 => super::layers::ActFn::Relu6,
            _ => super::layers::ActFn::Relu,
        }
    }

    /// Input channels the architecture expects (tiny-cnn: from its first conv).
    pub fn default_in_channels(self) -> i64 {
        match self {
            Arch::TinyCnn => 1,
            _ => 3,
        }
    }
}

/// The architecture, number of classes and input channels of a weight file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    pub arch: Arch,
    pub classes: i64,
    pub in_channels: i64,
}

fn count_indices(w: &Weights, prefix: &str) -> usize {
    w.names()
        .filter_map(|n| n.strip_prefix(prefix)?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1)
}

const EXPECTED: &str = "expected the keys of one of: EfficientNet-Lite (`_conv_stem.weight`, `_blocks.0._depthwise_conv.weight`, `_fc.weight`), ResNet (`conv1.weight`, `layer1.0.conv1.weight`, `fc.weight`), VGG (`features.0.weight`, `classifier.6.weight`), AlexNet (`features.0.weight` 64x3x11x11, `classifier.6.weight`), MobileNetV2 (`features.0.0.weight`, `features.1.conv.0.0.weight`, `classifier.1.weight`), tiny-cnn (`conv1.weight`, `conv2.weight`, `fc2.weight`)";

/// Detects the architecture from the keys and shapes, or takes `forced` (`--arch`).
pub fn detect(w: &Weights, forced: Option<Arch>) -> Result<Spec> {
    let arch = match forced {
        Some(a) => a,
        None => detect_arch(w)?,
    };
    let key = arch.classifier_key();
    // Checked before anything is built: the network's size follows from these numbers.
    let classes = match w.shape(key) {
        Some(s) if s.len() == 2 && s[1] == arch.features() && s[0] >= 1 => s[0],
        Some(s) if s.len() == 2 && s[0] < 1 => {
            return Err(Error::invalid(format!(
                "`{key}` has shape {s:?}: the model has no class; it needs at least one"
            )))
        }
        Some(s) => {
            return Err(Error::invalid(format!(
                "`{key}` (the {arch} classifier) has shape {s:?}; {arch} needs [classes, {}]",
                arch.features()
            )))
        }
        None => {
            return Err(Error::invalid(format!(
                "the weights have no `{key}` (the {arch} classifier), so the number of classes is unknown; keys start with: {}",
                first_keys(w)
            )))
        }
    };
    let in_channels = match arch {
        Arch::TinyCnn => match w.shape("conv1.weight") {
            Some(s) if s.len() == 4 && (s[1] == 1 || s[1] == 3) => s[1],
            Some(s) => {
                return Err(Error::invalid(format!(
                    "`conv1.weight` has shape {s:?}; tiny-cnn needs [16, 1 or 3, 3, 3]"
                )))
            }
            None => 1,
        },
        _ => 3,
    };
    Ok(Spec {
        arch,
        classes,
        in_channels,
    })
}

fn first_keys(w: &Weights) -> String {
    let keys: Vec<&str> = w.names().take(6).collect();
    if keys.is_empty() {
        "(no tensors)".into()
    } else {
        keys.join(", ")
    }
}

fn detect_arch(w: &Weights) -> Result<Arch> {
    if w.has("_conv_stem.weight") {
        let blocks = count_indices(w, "_blocks.");
        let head_in = w.shape("_conv_head.weight").map_or(0, |s| s[1]);
        return match (blocks, head_in) {
            (16, 320) => Ok(Arch::EfficientNetLite(0)),
            (21, 320) => Ok(Arch::EfficientNetLite(1)),
            (21, 352) => Ok(Arch::EfficientNetLite(2)),
            _ => Err(Error::invalid(format!(
                "EfficientNet-style weights with {blocks} blocks and a {head_in}-channel head are not EfficientNet-Lite0/1/2 (16 blocks/320, 21/320, 21/352)"
            ))),
        };
    }
    if w.has("layer1.0.conv1.weight") {
        let bottleneck = w.has("layer1.0.conv3.weight");
        let counts: Vec<usize> = (1..=4).map(|i| count_indices(w, &format!("layer{i}."))).collect();
        for depth in [18u8, 34, 50] {
            if let Some((c, b)) = resnet::layout(depth) {
                if c.as_slice() == counts.as_slice() && b == bottleneck {
                    return Ok(Arch::ResNet(depth));
                }
            }
        }
        return Err(Error::invalid(format!(
            "ResNet weights with blocks {counts:?} ({}) are not ResNet-18/34/50",
            if bottleneck { "bottleneck" } else { "basic" }
        )));
    }
    if w.has("features.0.0.weight") && w.has("features.1.conv.0.0.weight") {
        return Ok(Arch::MobileNetV2);
    }
    if let Some(s) = w.shape("features.0.weight") {
        if s.len() == 4 && s[2] == 11 {
            return Ok(Arch::AlexNet);
        }
        let convs = w
            .names()
            .filter(|n| n.starts_with("features.") && n.ends_with(".weight"))
            .count();
        return match convs {
            8 => Ok(Arch::Vgg(11)),
            13 => Ok(Arch::Vgg(16)),
            _ => Err(Error::invalid(format!(
                "VGG-style weights with {convs} convolutions are not VGG-11 (8) or VGG-16 (13); batch-norm VGGs are not supported"
            ))),
        };
    }
    if w.has("conv1.weight") && w.has("conv2.weight") && w.has("fc2.weight") {
        return Ok(Arch::TinyCnn);
    }
    Err(Error::invalid(format!(
        "unrecognised weights: {EXPECTED}; this file's keys start with: {}. Pass --arch to choose one of: {}",
        first_keys(w),
        ARCH_NAMES.join(", ")
    )))
}
