//! Open up a convolution: one value of a feature map, computed in the open. The input patch
//! under the kernel, the kernel, their element-wise products and their sum, the bias, the
//! batch norm, the activation function and the result, for any convolution of any model
//! (grouped and depthwise included), checked against the value the network computed.

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::error::{Error, Result};
use super::inspect;
use super::layers::{Geometry, LayerKind};
use super::model::Model;

/// At most this many input channels are shown one by one (the others are in the total).
pub const SHOWN_INPUTS: usize = 8;

/// One input channel under the kernel.
#[derive(Debug, Clone, Serialize)]
pub struct InputSlice {
    pub channel: usize,
    /// k*k values under the kernel, row by row (0 where the kernel is over the padding).
    pub patch: Vec<f32>,
    pub padding: Vec<bool>,
    pub kernel: Vec<f32>,
    pub products: Vec<f32>,
    pub sum: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchNormStep {
    pub layer: String,
    pub mean: f32,
    pub var: f32,
    pub eps: f64,
    pub gamma: f32,
    pub beta: f32,
    pub out: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Unfolded {
    pub conv: String,
    /// The layer and position asked about.
    pub layer: String,
    pub channel: usize,
    pub y: usize,
    pub x: usize,
    pub k: i64,
    pub stride: i64,
    pub pad_top: i64,
    pub pad_left: i64,
    pub groups: i64,
    /// The first row and column of the patch in the convolution's input (may be negative:
    /// padding), and the input's size.
    pub top: i64,
    pub left: i64,
    pub input_size: (i64, i64),
    /// The input channels the kernel reads (its group), the first [`SHOWN_INPUTS`] shown.
    pub inputs: Vec<InputSlice>,
    pub input_channels: usize,
    /// Σ over every input channel of the group.
    pub total: f32,
    pub bias: Option<f32>,
    /// total + bias, and the value the network computed.
    pub conv_out: f32,
    pub network_conv_out: f32,
    pub batch_norm: Option<BatchNormStep>,
    /// The activation function and its output.
    pub activation: Option<(String, f32)>,
    /// The asked layer's value at the position.
    pub result: f32,
    /// What happens between the last step shown and the asked layer (a residual addition).
    pub note: Option<String>,
}

fn at(t: &Tensor, c: usize, y: usize, x: usize) -> f32 {
    t.double_value(&[0, c as i64, y as i64, x as i64]) as f32
}

/// The value of channel `channel` of `layer` at (y, x) for input `x0` [1, C, H, W], step by step.
pub fn unfold(model: &Model, x0: &Tensor, layer: &str, channel: usize, y: usize, x: usize) -> Result<Unfolded> {
    let conv = inspect::producing_conv(model, layer).ok_or_else(|| {
        Error::invalid(format!(
            "no convolution before `{layer}` makes its channels; pick a convolution, or the batch norm or activation after one"
        ))
    })?;
    let layers = model.layers();
    let ci = layers
        .iter()
        .position(|l| l.name == conv)
        .expect("the convolution is a layer");
    // The convolution, then the batch norm and activation that follow it.
    let mut chain = vec![conv.clone()];
    let mut j = ci + 1;
    for kind in [LayerKind::BatchNorm, LayerKind::Activation] {
        if layers
            .get(j)
            .is_some_and(|l| l.kind == kind && l.shape == layers[ci].shape)
        {
            chain.push(layers[j].name.clone());
            j += 1;
        }
    }
    let mut outputs: std::collections::HashMap<String, Tensor> = Default::default();
    let mut input: Option<(Tensor, Geometry)> = None;
    let _ = model.forward_seeing_convs(
        x0,
        &mut |name, _, t| {
            if name == layer || chain.iter().any(|c| c == name) {
                outputs.insert(name.to_string(), t.to_device(Device::Cpu));
            }
            t
        },
        &mut |name, t, g| {
            if name == conv && input.is_none() {
                input = Some((t.to_device(Device::Cpu), g));
            }
        },
    );
    let (inp, g) = input.ok_or_else(|| Error::invalid(format!("`{conv}` saw no input in the forward")))?;
    let asked = outputs.get(layer).ok_or_else(|| inspect::unknown_layer(model, layer))?;
    let conv_t = &outputs[&conv];
    if asked.dim() != 4 || asked.size()[2..] != conv_t.size()[2..] {
        return Err(Error::invalid(format!(
            "`{layer}` is {:?}, not at the resolution of `{conv}` {:?}; pick `{conv}` or a layer right after it",
            asked.size(),
            conv_t.size()
        )));
    }
    let (c_out, h, w) = (
        conv_t.size()[1] as usize,
        conv_t.size()[2] as usize,
        conv_t.size()[3] as usize,
    );
    if channel >= c_out || y >= h || x >= w {
        return Err(Error::invalid(format!(
            "`{layer}` has {c_out} channels of {h}x{w}; channel {channel} at row {y}, column {x} is outside it"
        )));
    }
    let weight = inspect::conv_weight(model, &conv)?
        .to_device(Device::Cpu)
        .to_kind(Kind::Float);
    let per_group = weight.size()[1] as usize;
    let outs_per_group = c_out / g.groups as usize;
    let first_in = (channel / outs_per_group) * per_group;
    let k = g.k as usize;
    let top = y as i64 * g.stride - g.pad_top;
    let left = x as i64 * g.stride - g.pad_left;
    let (ih, iw) = (inp.size()[2], inp.size()[3]);
    let (inputs, total) = input_slices(&inp, &weight, channel, first_in, per_group, k, (top, left));
    let vars = model.vs.variables();
    let bias = vars
        .get(&format!("{conv}.bias"))
        .map(|b| b.double_value(&[channel as i64]) as f32);
    let conv_out = (total + bias.unwrap_or(0.0) as f64) as f32;
    let network_conv_out = at(conv_t, channel, y, x);
    // The steps up to the asked layer (all of them when it comes after the chain).
    let upto = chain.iter().position(|c| c == layer).unwrap_or(chain.len() - 1);
    let (batch_norm, activation) = after_conv(model, &chain[1..=upto], &outputs, channel, y, x);
    let in_chain = chain.iter().any(|c| c == layer);
    Ok(Unfolded {
        conv: conv.clone(),
        layer: layer.to_string(),
        channel,
        y,
        x,
        k: g.k,
        stride: g.stride,
        pad_top: g.pad_top,
        pad_left: g.pad_left,
        groups: g.groups,
        top,
        left,
        input_size: (ih, iw),
        inputs,
        input_channels: per_group,
        total: total as f32,
        bias,
        conv_out,
        network_conv_out,
        batch_norm,
        activation,
        result: at(asked, channel, y, x),
        note: (!in_chain).then(|| {
            format!(
                "`{layer}` comes after these steps (for example a block that adds its input, the residual): its value here is the result"
            )
        }),
    })
}

/// Each input channel's patch, kernel and products for one output value (the first
/// [`SHOWN_INPUTS`] kept), and their total.
fn input_slices(
    inp: &Tensor,
    weight: &Tensor,
    channel: usize,
    first_in: usize,
    per_group: usize,
    k: usize,
    (top, left): (i64, i64),
) -> (Vec<InputSlice>, f64) {
    let (ih, iw) = (inp.size()[2], inp.size()[3]);
    let mut inputs = Vec::new();
    let mut total = 0f64;
    for local in 0..per_group {
        let c = first_in + local;
        let mut slice = InputSlice {
            channel: c,
            patch: Vec::with_capacity(k * k),
            padding: Vec::with_capacity(k * k),
            kernel: Vec::with_capacity(k * k),
            products: Vec::with_capacity(k * k),
            sum: 0.0,
        };
        let mut sum = 0f64;
        for u in 0..k as i64 {
            for v in 0..k as i64 {
                let (r, q) = (top + u, left + v);
                let pad = r < 0 || q < 0 || r >= ih || q >= iw;
                let value = if pad { 0.0 } else { at(inp, c, r as usize, q as usize) };
                let kv = weight.double_value(&[channel as i64, local as i64, u, v]) as f32;
                slice.patch.push(value);
                slice.padding.push(pad);
                slice.kernel.push(kv);
                slice.products.push(value * kv);
                sum += value as f64 * kv as f64;
            }
        }
        slice.sum = sum as f32;
        total += sum;
        if inputs.len() < SHOWN_INPUTS {
            inputs.push(slice);
        }
    }
    (inputs, total)
}

/// The batch norm and activation steps after the convolution, each with its output.
fn after_conv(
    model: &Model,
    steps: &[String],
    outputs: &std::collections::HashMap<String, Tensor>,
    channel: usize,
    y: usize,
    x: usize,
) -> (Option<BatchNormStep>, Option<(String, f32)>) {
    let layers = model.layers();
    let vars = model.vs.variables();
    let mut batch_norm = None;
    let mut activation = None;
    for name in steps {
        let kind = layers.iter().find(|l| &l.name == name).map(|l| l.kind);
        let out = at(&outputs[name], channel, y, x);
        match kind {
            Some(LayerKind::BatchNorm) => {
                let p = |s: &str| {
                    vars.get(&format!("{name}.{s}"))
                        .map(|t| t.double_value(&[channel as i64]) as f32)
                };
                batch_norm = Some(BatchNormStep {
                    layer: name.clone(),
                    mean: p("running_mean").unwrap_or(0.0),
                    var: p("running_var").unwrap_or(1.0),
                    eps: model.spec.arch.bn_eps(),
                    gamma: p("weight").unwrap_or(1.0),
                    beta: p("bias").unwrap_or(0.0),
                    out,
                });
            }
            _ => {
                let f = match model.spec.arch.activation() {
                    super::layers::ActFn::Relu => "ReLU: max(0, z)",
                    super::layers::ActFn::Relu6 => "ReLU6: min(max(0, z), 6)",
                };
                activation = Some((f.to_string(), out));
            }
        }
    }
    (batch_norm, activation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-4 * (1.0 + b.abs())
    }

    /// Seeded random biases and batch-norm statistics, so that no step of the unfolding
    /// is the identity (a fresh model's batch norms are, and its biases are small).
    fn busy(m: &Model) {
        tch::no_grad(|| {
            for (name, mut t) in m.vs.variables() {
                if name.ends_with("running_var") || (t.dim() == 1 && name.ends_with(".weight")) {
                    t.copy_(&(Tensor::rand_like(&t) + 0.5));
                } else if name.ends_with("running_mean") || name.ends_with(".bias") {
                    t.copy_(&(Tensor::randn_like(&t) * 0.5));
                }
            }
        });
    }

    /// The layer's value at (channel, y, x), from a forward that ends at it.
    fn value(m: &Model, x: &Tensor, layer: &str, c: usize, y: usize, xx: usize) -> f32 {
        m.layer_output(x, layer)
            .unwrap()
            .double_value(&[0, c as i64, y as i64, xx as i64]) as f32
    }

    #[test]
    fn the_sum_of_products_is_the_networks_value_for_plain_grouped_and_depthwise_convolutions() {
        tch::manual_seed(3);
        // Tiny CNN: plain 3x3 with padding 1, BN, ReLU; at the border (padding) and inside.
        let m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        busy(&m);
        let x = Tensor::randn([1, 1, 28, 28], (Kind::Float, Device::Cpu));
        let vars = m.vs.variables();
        // (layer, channel, y, x, its convolution, batch norm and activation shown)
        for (layer, c, y, xx, conv, bn, act) in [
            ("conv1", 3, 0, 0, "conv1", false, false),
            ("bn1", 5, 10, 27, "conv1", true, false),
            ("relu1", 7, 14, 3, "conv1", true, true),
            ("relu2", 30, 6, 6, "conv2", true, true),
        ] {
            let u = unfold(&m, &x, layer, c, y, xx).unwrap();
            assert_eq!(
                (u.layer.as_str(), u.conv.as_str(), u.channel, u.y, u.x),
                (layer, conv, c, y, xx)
            );
            assert_eq!(
                (u.batch_norm.is_some(), u.activation.is_some()),
                (bn, act),
                "{layer}: the chain"
            );
            assert!(u.note.is_none(), "{layer} is in the chain");
            // Each number against the network, read by another path.
            let z = value(&m, &x, conv, c, y, xx);
            assert!(z.abs() > 1e-3, "{layer}: a value that tells something");
            assert!(close(u.network_conv_out, z), "{layer}: {} vs {z}", u.network_conv_out);
            assert!(close(u.conv_out, z), "{layer}: {} vs {z}", u.conv_out);
            assert!(close(u.result, value(&m, &x, layer, c, y, xx)), "{layer}: result");
            assert_eq!(u.bias, None, "the tiny CNN's convolutions have none");
            assert!(close(u.total, u.conv_out));
            let sums: f32 = u.inputs.iter().map(|s| s.sum).sum();
            if conv == "conv1" {
                assert_eq!((u.input_channels, u.inputs.len()), (1, 1));
                assert!(close(sums, u.total), "{layer}: every input channel shown here");
            } else {
                assert_eq!((u.input_channels, u.inputs.len()), (16, SHOWN_INPUTS));
            }
            let w = &vars[&format!("{conv}.weight")];
            for s in &u.inputs {
                let products: f32 = s.products.iter().sum();
                assert!(close(products, s.sum));
                for (i, (p, k)) in s.patch.iter().zip(&s.kernel).enumerate() {
                    let (r, q) = (u.top + i as i64 / 3, u.left + i as i64 % 3);
                    let kv = w.double_value(&[c as i64, s.channel as i64, i as i64 / 3, i as i64 % 3]) as f32;
                    assert_eq!(*k, kv, "{layer}: kernel value {i}");
                    assert_eq!(s.products[i], p * k);
                    let (h, w) = u.input_size;
                    assert_eq!(s.padding[i], r < 0 || q < 0 || r >= h || q >= w, "{layer}: padding {i}");
                    if conv == "conv1" && !s.padding[i] {
                        let input = x.double_value(&[0, 0, r, q]) as f32;
                        assert_eq!(*p, input, "{layer}: patch value {i}");
                    }
                }
            }
            if let Some(b) = &u.batch_norm {
                let p = |s: &str| vars[&format!("{}.{s}", b.layer)].double_value(&[c as i64]) as f32;
                assert_eq!(
                    (b.mean, b.var, b.gamma, b.beta),
                    (p("running_mean"), p("running_var"), p("weight"), p("bias"))
                );
                let z = b.gamma * (u.conv_out - b.mean) / (b.var + b.eps as f32).sqrt() + b.beta;
                assert!(close(z, b.out), "{layer}: bn {z} vs {}", b.out);
                assert!(close(b.out, value(&m, &x, &b.layer, c, y, xx)));
            }
            if let Some((f, a)) = &u.activation {
                let before = u.batch_norm.as_ref().map_or(u.conv_out, |b| b.out);
                assert!(close(before.max(0.0), *a));
                assert!(f.starts_with("ReLU:"), "{f}");
            }
        }
        let u = unfold(&m, &x, "conv1", 0, 0, 0).unwrap();
        assert_eq!((u.top, u.left), (-1, -1));
        assert!(
            u.inputs[0].padding[0] && !u.inputs[0].padding[4],
            "the corner is over the padding"
        );
        assert!(
            u.batch_norm.is_none() && u.activation.is_none(),
            "conv1 itself: the sum and bias only"
        );
        // EfficientNet-Lite0: SAME padding with stride 2, and a depthwise convolution.
        let m = Model::new_random(Arch::EfficientNetLite(0), 10, 3, Device::Cpu);
        busy(&m);
        let x = Tensor::randn([1, 3, 224, 224], (Kind::Float, Device::Cpu));
        let u = unfold(&m, &x, "_conv_stem", 2, 111, 0).unwrap();
        assert_eq!((u.stride, u.k, u.input_size), (2, 3, (224, 224)));
        assert_eq!((u.top, u.left), (111 * 2 - u.pad_top, -u.pad_left));
        let z = value(&m, &x, "_conv_stem", 2, 111, 0);
        assert!(
            close(u.conv_out, z) && close(u.network_conv_out, z),
            "stem: {} vs {z}",
            u.conv_out
        );
        assert_eq!(u.inputs[0].patch[4], x.double_value(&[0, 0, u.top + 1, 1]) as f32);
        let u = unfold(&m, &x, "_blocks.1._depthwise_conv", 40, 20, 30).unwrap();
        assert_eq!(
            (u.input_channels, u.inputs.len(), u.inputs[0].channel, u.groups),
            (1, 1, 40, 96),
            "depthwise: one input channel, its own"
        );
        assert!(close(
            u.conv_out,
            value(&m, &x, "_blocks.1._depthwise_conv", 40, 20, 30)
        ));
        // A 1x1 convolution with 96 inputs: 8 shown, all summed.
        let u = unfold(&m, &x, "_blocks.1._project_conv", 5, 3, 4).unwrap();
        assert_eq!((u.input_channels, u.inputs.len()), (96, SHOWN_INPUTS));
        assert_eq!(u.inputs[7].channel, 7);
        assert!(close(u.conv_out, value(&m, &x, "_blocks.1._project_conv", 5, 3, 4)));
        // A block that adds its input: the layer comes after the chain, its own value shown.
        let u = unfold(&m, &x, "_blocks.2", 5, 3, 4).unwrap();
        assert_eq!(u.conv, "_blocks.2._project_conv");
        assert!(u.note.is_some() && u.batch_norm.is_some() && u.activation.is_none());
        let block = value(&m, &x, "_blocks.2", 5, 3, 4);
        assert!(close(u.result, block) && !close(u.result, u.batch_norm.as_ref().unwrap().out));
        // AlexNet: convolutions with a bias and no batch norm, ReLU straight after.
        let m = Model::new_random(Arch::AlexNet, 10, 3, Device::Cpu);
        busy(&m);
        let u = unfold(&m, &x, "features.1", 9, 20, 40).unwrap();
        let bias = m.vs.variables()["features.0.bias"].double_value(&[9]) as f32;
        assert_eq!((u.conv.as_str(), u.bias), ("features.0", Some(bias)));
        assert!(u.batch_norm.is_none() && u.activation.is_some());
        assert!(close(u.total + bias, u.conv_out));
        assert!(close(u.conv_out, value(&m, &x, "features.0", 9, 20, 40)));
        assert!(close(u.result, u.conv_out.max(0.0)) && close(u.result, value(&m, &x, "features.1", 9, 20, 40)));
    }

    #[test]
    fn outside_the_layer_or_without_a_convolution_is_an_error() {
        let m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        let x = Tensor::randn([1, 1, 28, 28], (Kind::Float, Device::Cpu));
        for (c, y, xx) in [(16, 0, 0), (0, 28, 0), (0, 0, 28)] {
            let e = unfold(&m, &x, "conv1", c, y, xx).unwrap_err().to_string();
            assert!(e.contains("16 channels of 28x28"), "{e}");
        }
        assert!(unfold(&m, &x, "conv1", 15, 27, 27).is_ok());
        // A layer after a pooling: made by conv1, at another resolution.
        let e = unfold(&m, &x, "pool1", 0, 1, 1).unwrap_err().to_string();
        assert!(
            e.contains("`pool1` is [1, 16, 14, 14], not at the resolution of `conv1` [1, 16, 28, 28]"),
            "{e}"
        );
    }
}
