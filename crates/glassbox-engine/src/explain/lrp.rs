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
    let mut pass = Pass::new(composite);
    let logits = model.forward_lrp(&x.detach(), &mut pass);
    let t = pick_target(model, &logits.detach(), target)?;
    let (relevance, _) = pass.ledger(&logits.select(1, t).sum(Kind::Float))?;
    Ok((relevance, t))
}
