//! Looking inside the network for one input: a layer's channels, the kernel that made a
//! channel, the receptive field of one activation, a convolution's kernels, and the
//! one-pass analysis the desktop app runs when an image arrives. Plain data out.

use tch::{Device, Kind, Tensor};

use super::error::{Error, Result};
use super::explain::{self, Explanation, Method, Params};
use super::layers::LayerKind;
use super::map::Map;
use super::model::Model;

/// A layer's output [C, h, w] for one input, as plain numbers.
#[derive(Debug, Clone)]
pub struct Channels {
    pub layer: String,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// C * h * w values, channel-major.
    pub data: Vec<f32>,
    /// (channel, mean activation), largest mean first.
    pub order: Vec<(usize, f32)>,
    pub min: f32,
    pub max: f32,
}

/// Statistics of one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelStats {
    pub mean: f32,
    pub std: f32,
    pub min: f32,
    pub max: f32,
    /// Fraction of positions with a positive activation.
    pub active: f32,
    /// 0 = the channel with the largest mean.
    pub rank: usize,
}

impl Channels {
    /// From a layer output [1, C, h, w].
    pub fn from_tensor(layer: &str, t: &Tensor) -> Result<Channels> {
        let s = t.size();
        if s.len() != 4 {
            return Err(Error::invalid(format!(
                "layer `{layer}` has output {s:?}, not channels of a picture; choose a conv, bn, activation, pool or block layer"
            )));
        }
        let (c, h, w) = (s[1] as usize, s[2] as usize, s[3] as usize);
        let t = t
            .detach()
            .get(0)
            .to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous();
        let data = Vec::<f32>::try_from(&t.flatten(0, -1)).map_err(Error::from)?;
        let mut order: Vec<(usize, f32)> = data
            .chunks(h * w)
            .enumerate()
            .map(|(i, v)| (i, v.iter().sum::<f32>() / v.len() as f32))
            .collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let min = data.iter().copied().fold(f32::INFINITY, f32::min);
        let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        Ok(Channels {
            layer: layer.to_owned(),
            c,
            h,
            w,
            data,
            order,
            min,
            max,
        })
    }

    /// `self - other` channel by channel (same layer and shape), in `self`'s order, with a
    /// scale symmetric around 0: what an edit changed.
    pub fn minus(&self, other: &Channels) -> Option<Channels> {
        if (self.c, self.h, self.w) != (other.c, other.h, other.w) {
            return None;
        }
        let data: Vec<f32> = self.data.iter().zip(&other.data).map(|(a, b)| a - b).collect();
        let m = data.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
        Some(Channels {
            layer: self.layer.clone(),
            c: self.c,
            h: self.h,
            w: self.w,
            data,
            order: self.order.clone(),
            min: -m,
            max: m,
        })
    }

    /// One channel as a map.
    pub fn channel(&self, c: usize) -> Map {
        let n = self.h * self.w;
        Map {
            w: self.w,
            h: self.h,
            data: self.data[c * n..(c + 1) * n].to_vec(),
        }
    }

    pub fn stats(&self, c: usize) -> ChannelStats {
        let n = self.h * self.w;
        let v = &self.data[c * n..(c + 1) * n];
        let mean = v.iter().sum::<f32>() / n as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
        ChannelStats {
            mean,
            std: var.sqrt(),
            min: v.iter().copied().fold(f32::INFINITY, f32::min),
            max: v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            active: v.iter().filter(|x| **x > 0.0).count() as f32 / n as f32,
            rank: self.order.iter().position(|o| o.0 == c).unwrap_or(0),
        }
    }
}

pub(crate) fn unknown_layer(model: &Model, layer: &str) -> Error {
    let names: Vec<String> = model
        .layers()
        .into_iter()
        .filter(|l| l.shape.len() == 4)
        .map(|l| l.name)
        .collect();
    let sample = crate::error::name_sample(&names);
    Error::invalid(format!(
        "unknown layer `{layer}`; layers with channels: {sample} (`glassbox layers` lists all)"
    ))
}

/// The logits and the channels of `layer` for a preprocessed input [1, C, H, W].
pub fn channels(model: &Model, x: &Tensor, layer: &str) -> Result<(Tensor, Channels)> {
    let mut out = None;
    let logits = tch::no_grad(|| {
        model.forward_hooked(x, false, &mut |name, _, t| {
            if name == layer {
                out = Some(t.shallow_clone());
            }
            t
        })
    });
    let t = out.ok_or_else(|| unknown_layer(model, layer))?;
    Ok((logits, Channels::from_tensor(layer, &t)?))
}

/// The kernels of a convolution layer [out, in, k, k]; the error lists the convolutions.
pub fn conv_weight(model: &Model, layer: &str) -> Result<Tensor> {
    let vars = model.vs.variables();
    match vars.get(&format!("{layer}.weight")).filter(|w| w.dim() == 4) {
        Some(w) => Ok(w.detach()),
        None => {
            let convs = conv_layers(model);
            Err(Error::invalid(format!(
                "`{layer}` is not a convolution layer; convolutions: {}",
                convs.join(", ")
            )))
        }
    }
}

/// Convolution layers, in forward order.
pub fn conv_layers(model: &Model) -> Vec<String> {
    model
        .layers()
        .into_iter()
        .filter(|l| l.kind == LayerKind::Conv)
        .map(|l| l.name)
        .collect()
}

/// The convolution whose output channels became `layer`'s: `layer` itself when it is a
/// convolution, else the last convolution before it (in forward order) with as many
/// output channels. None when the channel count changed without one (a concatenation).
pub fn producing_conv(model: &Model, layer: &str) -> Option<String> {
    let layers = model.layers();
    let end = layers.iter().position(|l| l.name == layer)?;
    let c = *layers[end].shape.get(1)?;
    layers[..=end]
        .iter()
        .rev()
        .find(|l| l.kind == LayerKind::Conv && l.shape.get(1) == Some(&c))
        .map(|l| l.name.clone())
}

/// What made channel `channel` of `layer`: the convolution and its kernel for that
/// output channel [1, in, k, k].
pub fn channel_kernel(model: &Model, layer: &str, channel: usize) -> Result<(String, Tensor)> {
    let conv = producing_conv(model, layer).ok_or_else(|| {
        Error::invalid(format!(
            "no convolution before `{layer}` produces its channels; the channels come from a concatenation or the input"
        ))
    })?;
    let w = conv_weight(model, &conv)?;
    let out = w.size()[0] as usize;
    if channel >= out {
        return Err(Error::invalid(format!(
            "channel {channel} does not exist: `{conv}` has channels 0 to {}",
            out - 1
        )));
    }
    Ok((conv, w.narrow(0, channel as i64, 1)))
}

/// The input pixels one activation depends on.
#[derive(Debug, Clone)]
pub struct ReceptiveField {
    /// |d activation / d input|, summed over input channels, at the input's size.
    pub map: Map,
    /// Bounding box (x0, y0, x1, y1), inclusive, of the pixels with a non-zero gradient.
    pub bbox: Option<(usize, usize, usize, usize)>,
}

/// The receptive field of position (y, x) of `layer`'s output: the gradient of the
/// activation there (of `channel`, or of all channels summed) with respect to the input.
pub fn receptive_field(
    model: &Model,
    x: &Tensor,
    layer: &str,
    channel: Option<usize>,
    y: usize,
    xp: usize,
) -> Result<ReceptiveField> {
    let xi = x.to_device(model.device()).detach().set_requires_grad(true);
    let mut out = None;
    let _logits = model.forward_hooked(&xi, false, &mut |name, _, t| {
        if name == layer {
            out = Some(t.shallow_clone());
        }
        t
    });
    let t = out.ok_or_else(|| unknown_layer(model, layer))?;
    let s = t.size();
    if s.len() != 4 {
        return Err(Error::invalid(format!(
            "layer `{layer}` has output {s:?}, not a picture"
        )));
    }
    if y >= s[2] as usize || xp >= s[3] as usize {
        return Err(Error::invalid(format!(
            "position ({y}, {xp}) is outside `{layer}`'s {}x{} output (row, column from 0)",
            s[2], s[3]
        )));
    }
    let at = t.narrow(2, y as i64, 1).narrow(3, xp as i64, 1);
    let score = match channel {
        Some(c) if c >= s[1] as usize => {
            return Err(Error::invalid(format!(
                "channel {c} does not exist: `{layer}` has channels 0 to {}",
                s[1] - 1
            )))
        }
        Some(c) => at.narrow(1, c as i64, 1).sum(Kind::Float),
        None => at.sum(Kind::Float),
    };
    let g = Tensor::run_backward(&[score], &[&xi], false, false).remove(0);
    let g = g.abs().sum_dim_intlist([1i64].as_slice(), false, Kind::Float).get(0);
    let map = Map::from_tensor(&g)?;
    let mut bbox: Option<(usize, usize, usize, usize)> = None;
    for (i, v) in map.data.iter().enumerate() {
        if *v > 0.0 {
            let (py, px) = (i / map.w, i % map.w);
            bbox = Some(match bbox {
                None => (px, py, px, py),
                Some((x0, y0, x1, y1)) => (x0.min(px), y0.min(py), x1.max(px), y1.max(py)),
            });
        }
    }
    Ok(ReceptiveField { map, bbox })
}

/// Everything the app shows for a new input, from ONE forward and ONE backward: the
/// logits, the channels of `layer`, and the methods that share a backward.
pub struct Analysis {
    pub logits: Tensor,
    pub target: i64,
    pub channels: Option<Result<Channels>>,
    pub explanations: Vec<Result<Explanation>>,
}

pub fn analyze(model: &Model, x: &Tensor, layer: Option<&str>, methods: &[Method], p: &Params) -> Result<Analysis> {
    let x = x.to_device(model.device()).to_kind(Kind::Float);
    let shared: Vec<Method> = methods
        .iter()
        .copied()
        .filter(|m| explain::shares_backward(*m))
        .collect();
    if shared.is_empty() {
        let (logits, channels) = match layer {
            Some(l) => {
                let (logits, ch) = channels(model, &x, l)?;
                (logits, Some(Ok(ch)))
            }
            None => (model.logits(&x), None),
        };
        let target = match p.target {
            Some(t) => t,
            None => logits.argmax(1, false).int64_value(&[0]),
        };
        return Ok(Analysis {
            logits,
            target,
            channels,
            explanations: Vec::new(),
        });
    }
    let (list, logits, captured) = explain::shared_pass_with(model, &x, &shared, p, layer)?;
    let target = list.first().map_or(0, |e| e.target);
    let channels = match (layer, captured) {
        (Some(l), Some(t)) => Some(Channels::from_tensor(l, &t)),
        (Some(l), None) => Some(Err(unknown_layer(model, l))),
        _ => None,
    };
    Ok(Analysis {
        logits,
        target,
        channels,
        explanations: list.into_iter().map(Ok).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    fn tiny() -> Model {
        tch::manual_seed(0);
        Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu)
    }

    #[test]
    fn channels_are_ordered_by_mean_and_stats_agree() {
        let m = tiny();
        let x = Tensor::randn([1, 1, 28, 28], (Kind::Float, Device::Cpu));
        let first = m.layers().into_iter().find(|l| l.shape.len() == 4).unwrap();
        let (_, ch) = channels(&m, &x, &first.name).unwrap();
        assert_eq!(ch.c as i64, first.shape[1]);
        for w in ch.order.windows(2) {
            assert!(w[0].1 >= w[1].1);
        }
        let top = ch.order[0].0;
        let s = ch.stats(top);
        assert_eq!(s.rank, 0);
        assert!((s.mean - ch.order[0].1).abs() < 1e-5);
        assert!(s.min <= s.mean && s.mean <= s.max);
        assert!(channels(&m, &x, "nope")
            .unwrap_err()
            .to_string()
            .contains("unknown layer"));
    }

    #[test]
    fn receptive_field_of_a_3x3_conv_is_3x3() {
        let m = tiny();
        let x = Tensor::randn([1, 1, 28, 28], (Kind::Float, Device::Cpu));
        let conv = conv_layers(&m).remove(0);
        let k = conv_weight(&m, &conv).unwrap().size()[2] as usize;
        let rf = receptive_field(&m, &x, &conv, Some(0), 10, 10).unwrap();
        let (x0, y0, x1, y1) = rf.bbox.unwrap();
        assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (k, k));
        assert!(x0 <= 10 && 10 <= x1 && y0 <= 10 && 10 <= y1);
        assert!(receptive_field(&m, &x, &conv, None, 999, 0).is_err());
    }

    #[test]
    fn the_kernel_of_a_channel_comes_from_the_conv_that_made_it() {
        let m = tiny();
        let layers = m.layers();
        let conv = conv_layers(&m).remove(0);
        // The layer right after the first conv (its BN or activation) has the same channels.
        let i = layers.iter().position(|l| l.name == conv).unwrap();
        let next = &layers[i + 1].name;
        let (made_by, k) = channel_kernel(&m, next, 2).unwrap();
        assert_eq!(made_by, conv);
        let w = conv_weight(&m, &conv).unwrap();
        assert!(k.equal(&w.narrow(0, 2, 1)));
        assert!(channel_kernel(&m, next, 10_000).is_err());
    }
}
