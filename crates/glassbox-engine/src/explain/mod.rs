//! Attribution methods: why the model gave its answer.
//!
//! All of them explain the target class's LOGIT, as Captum and pytorch-grad-cam do.
//! Input-shaped maps are [1, C, H, W]; the CAM family is [1, 1, h, w] at the layer's
//! resolution, after ReLU.
//!
//! This file: the dispatch. `method.rs`: the method list and their parameters; `target.rs`:
//! the checks and choices they share (target class, CAM layer, batch size). One file per family:
//! `gradient.rs` (gradient, input x gradient, SmoothGrad, Integrated Gradients), `cam.rs`
//! (Grad-CAM, Grad-CAM++, the shared backward), `guided.rs` with `guided.cpp` (guided
//! backprop, guided Grad-CAM), `score_cam.rs`, `occlusion.rs`, `lrp.rs` (layer-wise
//! relevance propagation; its rules in the crate's `lrp.rs`). A new method goes into its
//! family's file, or a new one, and into `Method`, `METHODS` (method.rs) and `explain` here.

mod cam;
mod gradient;
mod guided;
mod lrp;
mod method;
mod occlusion;
mod score_cam;
mod target;

pub use cam::{shared_pass_with, upsample_normalised};
pub use gradient::gauss_legendre;
pub use method::{Baseline, Explanation, Method, Params, Progress, ProgressFn, MAX_SAMPLES, MAX_STEPS, METHODS};
pub use target::{batch_budget, check_target, resolve_layer, spatial_layers};
pub(crate) use target::{check_finite, pick_target};

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use super::error::{Error, Result};
use super::model::Model;

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
        Method::LrpEpsilonPlusFlat | Method::LrpEpsilonGammaBox | Method::LrpAlpha2Beta1 => {
            let composite = method.composite().expect("an LRP method");
            meta.insert("composite".into(), composite.to_string());
            lrp::lrp(model, &x, composite, p.target)?
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
