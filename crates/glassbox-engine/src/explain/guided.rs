//! Guided backprop and guided Grad-CAM. tch exposes no autograd hooks, so the guided rule
//! is a small libtorch autograd function in C++ (`guided.cpp`, compiled by build.rs).

use tch::{Kind, Tensor};

use super::cam::{grad_cam_from, layer_grads, upsample_normalised};
use super::target::pick_target;
use crate::error::{Error, Result};
use crate::layers::LayerKind;
use crate::model::Model;

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
pub(super) fn guided_backprop(model: &Model, x: &Tensor, target: Option<i64>) -> Result<(Tensor, i64)> {
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

/// Guided backprop restricted to Grad-CAM's regions of `layer` (upsampled, scaled to [0, 1]).
pub(super) fn guided_grad_cam(model: &Model, x: &Tensor, target: Option<i64>, layer: &str) -> Result<(Tensor, i64)> {
    let (lg, t) = layer_grads(model, x, target, layer, false)?;
    let cam = grad_cam_from(&lg.activation, &lg.layer_grad, false);
    let up = upsample_normalised(&cam, x.size()[2], x.size()[3]);
    let (gb, _) = guided_backprop(model, x, Some(t))?;
    Ok((gb * up, t))
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
