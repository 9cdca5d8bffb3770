//! Occlusion: how much the target logit drops when a window of the input is hidden,
//! averaged over the windows covering each pixel (Captum's Occlusion).

use tch::{Kind, Tensor};

use super::method::{cancelled, Params, Progress, ProgressFn};
use super::target::batch_budget;
use crate::error::Result;
use crate::model::Model;

/// Captum's Occlusion: mean drop of the target logit over the windows covering each pixel.
pub(super) fn occlusion(
    model: &Model,
    x: &Tensor,
    target: i64,
    p: &Params,
    full: f64,
    progress: &mut ProgressFn,
) -> Result<Tensor> {
    tch::no_grad(|| {
        let (h, w) = (x.size()[2], x.size()[3]);
        let ny = 1 + (h - p.window) / p.stride;
        let nx = 1 + (w - p.window) / p.stride;
        let positions: Vec<(i64, i64)> = (0..ny)
            .flat_map(|j| (0..nx).map(move |i| (j * p.stride, i * p.stride)))
            .collect();
        let total_n = positions.len();
        let bs = batch_budget(model, 64);
        let mut total = Tensor::zeros([1, 1, h, w], (Kind::Float, x.device()));
        let mut count = Tensor::zeros([1, 1, h, w], (Kind::Float, x.device()));
        for (b, chunk) in positions.chunks(bs).enumerate() {
            let n = chunk.len() as i64;
            let masks = Tensor::zeros([n, 1, h, w], (Kind::Float, x.device()));
            for (i, &(y0, x0)) in chunk.iter().enumerate() {
                let _ = masks
                    .get(i as i64)
                    .narrow(1, y0, p.window)
                    .narrow(2, x0, p.window)
                    .fill_(1.0);
            }
            let occluded = x * (1.0 - &masks) + &masks * p.occlusion_value;
            let out = model.logits(&occluded).select(1, target);
            let drop = (full - out).view([n, 1, 1, 1]);
            total += (drop * &masks).sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
            count += masks.sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
            let done = (b * bs + chunk.len()).min(total_n);
            let partial = (&total / count.clamp_min(1.0)).expand([1, x.size()[1], h, w], false);
            if !progress(Progress {
                done,
                total: total_n,
                partial: Some(&partial),
            }) {
                return Err(cancelled());
            }
        }
        let mean = total / count.clamp_min(1.0);
        Ok(mean.expand([1, x.size()[1], h, w], false).contiguous())
    })
}
