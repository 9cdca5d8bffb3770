//! The CAM family's gradients: Grad-CAM and Grad-CAM++ from one forward and one backward to
//! a layer, and the shared pass that serves gradient, input x gradient, Grad-CAM and
//! Grad-CAM++ together.

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use super::method::{Explanation, Method, Params};
use super::target::{check_finite, pick_target, resolve_layer};
use crate::error::{Error, Result};
use crate::model::Model;

/// The activation of `layer` and the gradient of the target logit with respect to it
/// (and to the input, from the same backward).
pub(super) struct LayerGrads {
    pub activation: Tensor,
    pub layer_grad: Tensor,
    pub input_grad: Tensor,
}

/// With `to_input` false the backward stops at the layer: Grad-CAM alone needs no more.
pub(super) fn layer_grads(
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

pub(super) fn grad_cam_from(a: &Tensor, g: &Tensor, plus_plus: bool) -> Tensor {
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

/// Grad-CAM (or Grad-CAM++) of `layer`: the backward stops at the layer.
pub(super) fn grad_cam(
    model: &Model,
    x: &Tensor,
    target: Option<i64>,
    layer: &str,
    plus_plus: bool,
) -> Result<(Tensor, i64)> {
    let (lg, t) = layer_grads(model, x, target, layer, false)?;
    Ok((grad_cam_from(&lg.activation, &lg.layer_grad, plus_plus), t))
}

pub(super) fn shared_pass(model: &Model, input: &Tensor, methods: &[Method], p: &Params) -> Result<Vec<Explanation>> {
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
            metadata.insert("model".to_string(), model.source.to_string());
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
