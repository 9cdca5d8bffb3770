//! Layer-wise relevance propagation under one of Zennit's composites: one relevance
//! forward, one backward from the one-hot at the target, and the first layer's rule.

use tch::{Kind, Tensor};

use super::target::pick_target;
use crate::error::Result;
use crate::lrp::{Composite, Pass};
use crate::model::Model;

/// The relevance of each input value [1, C, H, W] for `target` (the top class when
/// `None`); it sums to about 1, the relevance given to the target at the output, less
/// what biases absorb.
pub(super) fn lrp(model: &Model, x: &Tensor, composite: Composite, target: Option<i64>) -> Result<(Tensor, i64)> {
    let mut pass = Pass::new(composite, "");
    pass.bounds = Some(input_range(model, x));
    let logits = model.forward_lrp(&x.detach(), &mut pass);
    let t = pick_target(model, &logits.detach(), target)?;
    let score = logits.select(1, t).sum(Kind::Float);
    let leaf = match &pass.first {
        Some(first) => first.leaf.shallow_clone(),
        None => {
            return Err(crate::error::Error::invalid(
                "LRP: the network has no convolution or dense layer",
            ))
        }
    };
    let g = Tensor::run_backward(&[score], &[&leaf], false, false).remove(0);
    Ok((pass.input_relevance(&g)?, t))
}

/// The lowest and highest value each input channel takes after the model's preprocessing
/// (pixel 0 and 255), [1, C, 1, 1] each: z-box's bounds.
fn input_range(model: &Model, x: &Tensor) -> (Tensor, Tensor) {
    let c = x.size()[1] as usize;
    let p = &model.preprocess;
    let at = |v: &[f64], i: usize| v[i.min(v.len().saturating_sub(1))];
    let (low, high): (Vec<f32>, Vec<f32>) = (0..c)
        .map(|i| {
            let (m, s) = (at(&p.mean, i), at(&p.std, i));
            (((0.0 - m) / s) as f32, ((255.0 - m) / s) as f32)
        })
        .unzip();
    let t = |v: Vec<f32>| Tensor::from_slice(&v).view([1, c as i64, 1, 1]).to_device(x.device());
    (t(low), t(high))
}
