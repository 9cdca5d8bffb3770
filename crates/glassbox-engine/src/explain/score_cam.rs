//! Score-CAM: each channel of a layer, upsampled, masks the input; its weight is the
//! softmax of the target scores the masked inputs keep (pytorch-grad-cam's rule). Channels
//! constant over the image share one forward (their masks are all zero).

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
        let masks = ((up - &mn) / (&mx - &mn + 1e-8)).squeeze_dim(0); // [K, H, W]
        let k = masks.size()[0];
        // A channel that is constant over the image (a dead unit: often most of a layer)
        // masks everything: its masked input is all zeros, the same for every such channel,
        // so one forward scores them all.
        let range = Vec::<f32>::try_from((mx - mn).flatten(0, -1).to_device(Device::Cpu)).map_err(Error::from)?;
        let (live, constant): (Vec<i64>, Vec<i64>) = (0..k).partition(|&c| range[c as usize] > 0.0);
        let bs = (batch_budget(model, 64) as i64).max(1);
        let mut scores = vec![0f32; k as usize];
        let score = |batch: &Tensor| -> Result<Vec<f32>> {
            let out = model.logits(batch).select(1, target).to_device(Device::Cpu);
            Vec::<f32>::try_from(&out).map_err(Error::from)
        };
        if let Some(&c) = constant.first() {
            let s = score(&(x * masks.get(c).unsqueeze(0)))?[0];
            for &c in &constant {
                scores[c as usize] = s;
            }
        }
        let mut seen: Vec<i64> = constant.clone();
        for chunk in live.chunks(bs as usize) {
            let idx = Tensor::from_slice(chunk).to_device(x.device());
            let batch = x * masks.index_select(0, &idx).unsqueeze(1);
            for (&c, s) in chunk.iter().zip(score(&batch)?) {
                scores[c as usize] = s;
            }
            seen.extend_from_slice(chunk);
            let sel = Tensor::from_slice(&seen).to_device(x.device());
            let kept: Vec<f32> = seen.iter().map(|&c| scores[c as usize]).collect();
            let partial = (Tensor::from_slice(&kept)
                .to_device(x.device())
                .softmax(-1, Kind::Float)
                .view([1, seen.len() as i64, 1, 1])
                * a.index_select(1, &sel))
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
            .relu();
            if !progress(Progress {
                done: seen.len(),
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
