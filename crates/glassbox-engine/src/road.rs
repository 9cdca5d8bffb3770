//! ROAD, RemOve And Debias (Rong et al. 2022), as pytorch-grad-cam 1.5.7's `ROADCombined`:
//! for each percentile p of the map (10, 20, ..., 90), the pixels above it (most relevant
//! first) or below 100 - p (least relevant first) are filled in by noisy linear imputation,
//! each from its 8 neighbours, and the model's probability of the target is read on both.
//! The score is the mean over p of (least-first - most-first) / 2: high when removing what
//! the map ranks first hurts more than removing what it ranks last. Where a mask keeps no
//! pixel (the map ties over at least p % of it, as a CAM's zeros after its ReLU do), there is
//! nothing to fill from: pytorch-grad-cam's solver meets a singular system there; Glassbox
//! fills each channel with its mean.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::gridsolve::{Grid, MAX_SIDE};
use crate::model::Model;

/// The most imputations that run at once.
const IMPUTING_THREADS: usize = 4;

/// pytorch-grad-cam's default percentiles.
pub const PERCENTILES: [f64; 9] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0];
/// The imputer's noise (standard deviation, in the model's input units).
pub const NOISE: f64 = 0.01;

/// (row offset, column offset, weight): edges 1/6, diagonals 1/12, as pytorch-grad-cam.
const NEIGHBOURS: [(i64, i64, f64); 8] = [
    (1, 1, 1.0 / 12.0),
    (0, 1, 1.0 / 6.0),
    (-1, 1, 1.0 / 12.0),
    (1, -1, 1.0 / 12.0),
    (0, -1, 1.0 / 6.0),
    (-1, -1, 1.0 / 12.0),
    (1, 0, 1.0 / 6.0),
    (-1, 0, 1.0 / 6.0),
];

/// The scores of one map.
#[derive(Debug, Clone)]
pub struct Road {
    pub percentiles: Vec<f64>,
    /// Probability of the target with the most relevant (100 - p) % imputed, per p.
    pub most_first: Vec<f64>,
    /// With the least relevant (100 - p) % imputed.
    pub least_first: Vec<f64>,
    /// Mean over p of (least_first - most_first) / 2, in [-0.5, 0.5]; higher is better.
    pub combined: f64,
}

/// An image [C, H, W] (row-major, `data`) with the pixels where `keep` is false filled in:
/// each is the weighted mean of its in-image neighbours (known or filled), a sparse linear
/// system solved per channel (multigrid-preconditioned conjugate gradients, `gridsolve`), then `noise` (one value per channel
/// and filled pixel) added.
pub fn impute(data: &[f32], c: usize, h: usize, w: usize, keep: &[bool], noise: &[f32]) -> Result<Vec<f32>> {
    if data.len() != c * h * w || keep.len() != h * w {
        return Err(Error::invalid("impute: the image and the mask differ in size"));
    }
    let unknown: Vec<usize> = (0..h * w).filter(|&p| !keep[p]).collect();
    let n = unknown.len();
    if noise.len() != c * n {
        return Err(Error::invalid("impute: one noise value per channel and filled pixel"));
    }
    if n == 0 {
        return Ok(data.to_vec());
    }
    if n == h * w {
        // Nothing kept (at least p % of the map tie at its lowest value, common after a
        // CAM's ReLU): no pixel to fill from, so each channel becomes its mean, plus noise.
        let mut out = vec![0f32; c * n];
        for ch in 0..c {
            let plane = &data[ch * n..(ch + 1) * n];
            let mean = plane.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            for k in 0..n {
                out[ch * n + k] = (mean + noise[ch * n + k] as f64) as f32;
            }
        }
        return Ok(out);
    }
    // Row k: s_k (the sum of the weights of its in-image neighbours) on the diagonal,
    // -weight for each unknown neighbour; the known neighbours' weighted values on the right.
    let weight = |o: usize| {
        NEIGHBOURS
            .iter()
            .find(|(dr, dc, _)| (dr + 1) * 3 + dc + 1 == o as i64)
            .map(|n| n.2)
    };
    let inside = |p: usize, dr: i64, dc: i64| {
        let (r, col) = ((p / w) as i64 + dr, (p % w) as i64 + dc);
        (r >= 0 && col >= 0 && r < h as i64 && col < w as i64).then(|| r as usize * w + col as usize)
    };
    let unknown_cells: Vec<bool> = keep.iter().map(|k| !k).collect();
    let grid = Grid::new(h, w, &unknown_cells, |p, o| match weight(o) {
        Some(wt) => -wt,
        None => NEIGHBOURS
            .iter()
            .filter(|(dr, dc, _)| inside(p, *dr, *dc).is_some())
            .map(|n| n.2)
            .sum(),
    })?;
    let mut rhs = vec![0f64; c * n];
    for (k, &p) in unknown.iter().enumerate() {
        for (dr, dc, wt) in NEIGHBOURS {
            if let Some(q) = inside(p, dr, dc).filter(|&q| keep[q]) {
                for ch in 0..c {
                    rhs[ch * n + k] += wt * data[ch * h * w + q] as f64;
                }
            }
        }
    }
    // The channels share the matrix and its levels: solved side by side.
    let mut solved = Vec::with_capacity(c * n);
    for part in rhs.chunks(n * MAX_SIDE) {
        solved.extend(grid.solve(part, TOLERANCE)?.0);
    }
    let mut out = data.to_vec();
    for ch in 0..c {
        for (k, &p) in unknown.iter().enumerate() {
            out[ch * h * w + p] = (solved[ch * n + k] + noise[ch * n + k] as f64) as f32;
        }
    }
    Ok(out)
}

/// The residual, relative to the right-hand side, at which the imputation stops: the filled
/// values are then within about 1e-5 of the exact solution's (pytorch-grad-cam solves
/// exactly), far below the image's own steps.
const TOLERANCE: f64 = 1e-7;

/// numpy's default percentile (linear interpolation between the sorted values).
pub fn percentile(values: &[f32], p: f64) -> f64 {
    percentile_of_sorted(&sorted(values), p)
}

fn sorted(values: &[f32]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    v
}

fn percentile_of_sorted(v: &[f64], p: f64) -> f64 {
    let pos = p / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
}

/// For each percentile p of `ps`, the pixels kept when the most relevant (or, `least`, the
/// least relevant) are removed: pytorch-grad-cam's `map < percentile(map, p)` (on `1 - map`
/// for least). The map is sorted once for all of them.
pub fn kept(map: &[f32], ps: &[f64], least: bool) -> Vec<Vec<bool>> {
    let m: Vec<f32> = if least {
        map.iter().map(|v| 1.0 - v).collect()
    } else {
        map.to_vec()
    };
    let order = sorted(&m);
    ps.iter()
        .map(|&p| {
            let t = percentile_of_sorted(&order, p);
            m.iter().map(|&v| (v as f64) < t).collect()
        })
        .collect()
}

/// ROAD of a map (H x W values, row-major, larger = more relevant) for `target` on a
/// preprocessed input [1, C, H, W]; `noise` is the imputer's standard deviation (seeded by
/// `seed`; 0 for none).
pub fn road(model: &Model, input: &Tensor, map: &[f32], target: i64, noise: f64, seed: i64) -> Result<Road> {
    let x = input.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    let s = x.size();
    if s.len() != 4 || s[0] != 1 {
        return Err(Error::invalid(format!("ROAD takes one image [1, C, H, W], got {s:?}")));
    }
    let (c, h, w) = (s[1] as usize, s[2] as usize, s[3] as usize);
    if map.len() != h * w {
        return Err(Error::invalid(format!(
            "the map has {} values, the input {w}x{h} pixels",
            map.len()
        )));
    }
    let data = Vec::<f32>::try_from(x.flatten(0, -1)).map_err(Error::from)?;
    let mut jobs = Vec::new();
    for (i, least) in [false, true].into_iter().enumerate() {
        for (j, keep) in kept(map, &PERCENTILES, least).into_iter().enumerate() {
            let missing = c * keep.iter().filter(|k| !**k).count();
            let stream = (i * PERCENTILES.len() + j) as u64;
            let noise: Vec<f32> = if noise > 0.0 {
                let t = crate::noise::seeded_normal(&[missing as i64], seed, stream) * noise;
                Vec::<f32>::try_from(t.to_kind(Kind::Float)).map_err(Error::from)?
            } else {
                vec![0.0; missing]
            };
            jobs.push((keep, noise));
        }
    }
    // The 18 imputations on the cores, one image per thread at a time; at most
    // IMPUTING_THREADS at once (each holds its system's levels and vectors, about 250 bytes
    // per pixel to fill).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(IMPUTING_THREADS)
        .min(jobs.len());
    let mut done: Vec<(usize, Result<Vec<f32>>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((keep, noise)) = jobs.get(k) else { break };
                        out.push((k, impute(&data, c, h, w, keep, noise)));
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect()
    });
    if done.len() != jobs.len() {
        return Err(Error::invalid("ROAD: the imputation failed"));
    }
    done.sort_by_key(|d| d.0);
    let mut images = Vec::new();
    for (_, f) in done {
        images.push(Tensor::from_slice(&f?).view([1, c as i64, h as i64, w as i64]));
    }
    let mut probs = Vec::new();
    for chunk in images.chunks(9) {
        let p = model
            .logits(&Tensor::cat(chunk, 0).to_device(model.device()))
            .softmax(-1, Kind::Float)
            .select(1, target)
            .to_device(Device::Cpu);
        probs.extend(Vec::<f32>::try_from(p).map_err(Error::from)?.into_iter().map(f64::from));
    }
    let k = PERCENTILES.len();
    let (most_first, least_first) = (probs[..k].to_vec(), probs[k..].to_vec());
    let combined = most_first
        .iter()
        .zip(&least_first)
        .map(|(m, l)| (l - m) / 2.0)
        .sum::<f64>()
        / k as f64;
    Ok(Road {
        percentiles: PERCENTILES.to_vec(),
        most_first,
        least_first,
        combined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The helper's check against pytorch-grad-cam's NoisyLinearImputer (noise 0): a 4 x 4
    /// image `(4 r + c)^1.5 / 10`, pixels (1,1), (2,2) and (0,3) filled in.
    #[test]
    fn imputation_equals_pytorch_grad_cam_on_a_small_image() {
        let data: Vec<f32> = (0..16).map(|i| (i as f32).powf(1.5) / 10.0).collect();
        let mut keep = vec![true; 16];
        for (r, c) in [(1, 1), (2, 2), (0, 3)] {
            keep[r * 4 + c] = false;
        }
        let out = impute(&data, 1, 4, 4, &keep, &[0.0; 3]).unwrap();
        for ((r, c), want) in [((1, 1), 1.3334335), ((2, 2), 3.3162295), ((0, 3), 1.1478862)] {
            let got = out[r * 4 + c];
            assert!((got - want).abs() < 1e-5, "({r}, {c}): {got} against {want}");
        }
        // Known pixels stay.
        assert_eq!(out[0], data[0]);
        // Nothing kept: each channel is its mean (there is no pixel to fill from).
        let out = impute(&data, 1, 4, 4, &[false; 16], &[0.0; 16]).unwrap();
        let mean = data.iter().sum::<f32>() / 16.0;
        assert!(out.iter().all(|v| (v - mean).abs() < 1e-6), "{out:?}");
    }

    #[test]
    fn percentiles_are_numpys_and_the_masks_split_the_map() {
        let v: Vec<f32> = (0..10).map(|i| i as f32).collect();
        assert_eq!(percentile(&v, 50.0), 4.5);
        assert_eq!(percentile(&v, 10.0), 0.9);
        // Most relevant first at p = 80: the top 2 values go; least first: the bottom 2.
        let most = kept(&v, &[80.0], false).remove(0);
        assert_eq!(most.iter().filter(|k| !**k).count(), 2);
        assert!(!most[9] && !most[8] && most[7]);
        let least = kept(&v, &[80.0], true).remove(0);
        assert!(!least[0] && !least[1] && least[2]);
    }
}
