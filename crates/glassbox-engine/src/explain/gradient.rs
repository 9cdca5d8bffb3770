//! The gradient family: the gradient of the target logit with respect to the input, input x
//! gradient, SmoothGrad (averaged over seeded noise) and Integrated Gradients (along a path
//! from a baseline).

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use super::method::{cancelled, Baseline, Params, Progress, ProgressFn};
use super::target::{batch_budget, pick_target};
use crate::error::Result;
use crate::model::Model;
use crate::noise::seeded_normals;

/// Gradient of the target logit (summed over the batch) with respect to the input, from
/// one forward and one backward; the target is found in that same forward when not given.
pub(super) fn grad_of_target(model: &Model, x: &Tensor, target: Option<i64>) -> Result<(Tensor, i64)> {
    let xi = x.detach().set_requires_grad(true);
    let logits = model.forward_hooked(&xi, false, &mut |_, _, t| t);
    let t = pick_target(model, &logits.detach(), target)?;
    let score = logits.select(1, t).sum(Kind::Float);
    Ok((Tensor::run_backward(&[score], &[&xi], false, false).remove(0), t))
}

/// Gauss-Legendre nodes and weights on [0, 1] (Captum's default IG rule).
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut alphas = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for i in 0..n {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * x * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            if n == 1 {
                p0 = 1.0;
                p1 = x;
            }
            dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
            let dx = p1 / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        alphas.push(0.5 * (1.0 + x));
        weights.push(0.5 * 2.0 / ((1.0 - x * x) * dp * dp));
    }
    // Ascending alphas, as numpy's leggauss gives them.
    let mut pairs: Vec<(f64, f64)> = alphas.into_iter().zip(weights).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    pairs.into_iter().unzip()
}

fn gaussian_blur(x: &Tensor, sigma: f64) -> Tensor {
    let radius = (3.0 * sigma).ceil() as i64;
    let k = 2 * radius + 1;
    let coords = Tensor::arange(k, (Kind::Float, x.device())) - radius as f64;
    let g = (-(&coords * &coords) / (2.0 * sigma * sigma)).exp();
    let g = &g / g.sum(Kind::Float);
    let c = x.size()[1];
    let gx = g.view([1, 1, 1, k]).repeat([c, 1, 1, 1]);
    let gy = g.view([1, 1, k, 1]).repeat([c, 1, 1, 1]);
    let padded = x.reflection_pad2d([radius, radius, 0, 0]);
    let y = padded.conv2d(&gx, None::<Tensor>, [1, 1], [0, 0], [1, 1], c);
    let padded = y.reflection_pad2d([0, 0, radius, radius]);
    padded.conv2d(&gy, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)
}

/// SmoothGrad: the gradient averaged over `p.samples` noisy copies of the input (noise of
/// `p.sigma` times the input's range), in batches, reporting the mean so far.
pub(super) fn smoothgrad(
    model: &Model,
    x: &Tensor,
    target: i64,
    p: &Params,
    meta: &mut BTreeMap<String, String>,
    progress: &mut ProgressFn,
) -> Result<Tensor> {
    meta.insert("samples".into(), p.samples.to_string());
    meta.insert("sigma".into(), p.sigma.to_string());
    meta.insert("seed".into(), p.seed.to_string());
    let device = model.device();
    let range = (x.max() - x.min()).double_value(&[]);
    let std = p.sigma * range;
    let bs = batch_budget(model, p.samples);
    let mut sum = Tensor::zeros_like(x);
    let mut done = 0;
    while done < p.samples {
        let n = bs.min(p.samples - done) as i64;
        // Sample k's noise depends on (seed, k) only: the same on any device and batch size.
        let noise = seeded_normals(&x.size(), p.seed, done as u64..(done + n as usize) as u64);
        let noisy = noise.to_device(device) * std + x;
        let (g, _) = grad_of_target(model, &noisy, Some(target))?;
        sum += g.sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
        done += n as usize;
        let partial = &sum / done as f64;
        if !progress(Progress {
            done,
            total: p.samples,
            partial: Some(&partial),
        }) {
            return Err(cancelled());
        }
    }
    Ok(sum / p.samples as f64)
}

/// Integrated Gradients with the Gauss-Legendre rule (Captum's default): the attribution
/// and its completeness error, sum(attribution) - (f(x) - f(baseline)). `first` holds the
/// logits of `x` when they were computed already.
pub(super) fn integrated_gradients(
    model: &Model,
    x: &Tensor,
    target: i64,
    p: &Params,
    first: Option<&Tensor>,
    meta: &mut BTreeMap<String, String>,
    progress: &mut ProgressFn,
) -> Result<(Tensor, f64)> {
    meta.insert("steps".into(), p.steps.to_string());
    meta.insert("baseline".into(), p.baseline.name().to_string());
    meta.insert("rule".into(), "gauss-legendre".to_string());
    let device = model.device();
    let side = x.size()[2].min(x.size()[3]);
    let base = match p.baseline {
        Baseline::Zero => Tensor::zeros_like(x),
        Baseline::Black => {
            let pre = &model.preprocess;
            let c = pre.channels();
            let mean = Tensor::from_slice(&pre.mean).to_kind(Kind::Float).view([1, c, 1, 1]);
            let std = Tensor::from_slice(&pre.std).to_kind(Kind::Float).view([1, c, 1, 1]);
            (Tensor::zeros_like(x) - mean.to_device(device)) / std.to_device(device)
        }
        Baseline::Blur => gaussian_blur(x, side as f64 / 16.0),
    };
    let (alphas, weights) = gauss_legendre(p.steps);
    let diff = x - &base;
    let bs = batch_budget(model, p.steps);
    let mut total = Tensor::zeros_like(x);
    let mut i = 0;
    while i < p.steps {
        let n = bs.min(p.steps - i);
        let a = Tensor::from_slice(&alphas[i..i + n])
            .to_kind(Kind::Float)
            .to_device(device)
            .view([-1, 1, 1, 1]);
        let w = Tensor::from_slice(&weights[i..i + n])
            .to_kind(Kind::Float)
            .to_device(device)
            .view([-1, 1, 1, 1]);
        let path = &base + &a * &diff;
        let (g, _) = grad_of_target(model, &path, Some(target))?;
        total += (g * w).sum_dim_intlist([0i64].as_slice(), true, Kind::Float);
        i += n;
        if !progress(Progress {
            done: i,
            total: p.steps,
            partial: None,
        }) {
            return Err(cancelled());
        }
    }
    let attr = total * &diff;
    let fb = model.logits(&base).double_value(&[0, target]);
    let fx = first.map_or(0.0, |l| l.double_value(&[0, target]));
    let err = attr.sum(Kind::Double).double_value(&[]) - (fx - fb);
    meta.insert("completeness_error".into(), format!("{err:.6}"));
    Ok((attr, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_matches_known_nodes() {
        let (a, w) = gauss_legendre(2);
        let r = 0.5 / 3f64.sqrt();
        assert!(
            (a[0] - (0.5 - r)).abs() < 1e-12 && (a[1] - (0.5 + r)).abs() < 1e-12,
            "{a:?}"
        );
        assert!((w[0] - 0.5).abs() < 1e-12 && (w[1] - 0.5).abs() < 1e-12);
        let (_, w) = gauss_legendre(32);
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Exact for polynomials of degree 2n-1: integral of t^5 on [0,1] is 1/6.
        let (a, w) = gauss_legendre(3);
        let s: f64 = a.iter().zip(&w).map(|(t, w)| w * t.powi(5)).sum();
        assert!((s - 1.0 / 6.0).abs() < 1e-12);
    }
}
