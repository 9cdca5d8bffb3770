//! Score-CAM: each channel of a layer, upsampled, masks the input; its weight is the
//! softmax of the target scores the masked inputs keep (pytorch-grad-cam's rule).

use tch::{Device, Kind, Tensor};

use super::method::{cancelled, Progress, ProgressFn};
use super::target::{batch_budget, pick_target};
use crate::error::{Error, Result};
use crate::model::Model;

pub(super) fn score_cam(
    model: &Model,
    x: &Tensor,
    target: Option<i64>,
    layer: &str,
    progress: &mut ProgressFn,
) -> Result<(Tensor, i64)> {
    tch::no_grad(|| {
        let mut act = None;
        let logits = model.forward_hooked(x, false, &mut |name, _, t| {
            if name == layer {
                act = Some(t.shallow_clone());
            }
            t
        });
        let a = act.ok_or_else(|| Error::invalid(format!("layer `{layer}` was not reached")))?;
        let target = pick_target(model, &logits, target)?;
        let (h, w) = (x.size()[2], x.size()[3]);
        // pytorch-grad-cam: UpsamplingBilinear2d (align_corners=True), min-max per channel.
        let up = a.upsample_bilinear2d([h, w], true, None, None);
        let flat = up.flatten(2, 3);
        let mx = flat.amax([2i64].as_slice(), false).unsqueeze(-1).unsqueeze(-1);
        let mn = flat.amin([2i64].as_slice(), false).unsqueeze(-1).unsqueeze(-1);
        let masks = ((up - &mn) / (mx - mn + 1e-8)).squeeze_dim(0); // [K, H, W]
        let k = masks.size()[0];
        let bs = (batch_budget(model, 64) as i64).max(1);
        let mut scores = Vec::with_capacity(k as usize);
        let mut i = 0;
        while i < k {
            let n = bs.min(k - i);
            let batch = x * masks.narrow(0, i, n).unsqueeze(1);
            let out = model.logits(&batch).select(1, target).to_device(Device::Cpu);
            scores.extend(Vec::<f32>::try_from(&out).map_err(Error::from)?);
            i += n;
            let seen = i;
            let partial = (Tensor::from_slice(&scores)
                .to_device(x.device())
                .softmax(-1, Kind::Float)
                .view([1, seen, 1, 1])
                * a.narrow(1, 0, seen))
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
            .relu();
            if !progress(Progress {
                done: i as usize,
                total: k as usize,
                partial: Some(&partial),
            }) {
                return Err(cancelled());
            }
        }
        let s = Tensor::from_slice(&scores)
            .to_device(x.device())
            .softmax(-1, Kind::Float)
            .view([1, k, 1, 1]);
        Ok((
            (s * a).sum_dim_intlist([1i64].as_slice(), true, Kind::Float).relu(),
            target,
        ))
    })
}
