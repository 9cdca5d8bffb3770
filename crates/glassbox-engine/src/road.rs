//! ROAD, RemOve And Debias (Rong et al. 2022), as pytorch-grad-cam 1.5.7's `ROADCombined`:
//! for each percentile p of the map (10, 20, ..., 90), the pixels above it (most relevant
//! first) or below 100 - p (least relevant first) are filled in by noisy linear imputation,
//! each from its 8 neighbours, and the model's probability of the target is read on both.
//! The score is the mean over p of (least-first - most-first) / 2: high when removing what
//! the map ranks first hurts more than removing what it ranks last.

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::Model;

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
/// system solved per channel by conjugate gradients, then `noise` (one value per channel
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
    let mut id = vec![usize::MAX; h * w];
    for (k, &p) in unknown.iter().enumerate() {
        id[p] = k;
    }
    // Row k: diagonal s_k, and -weight for each unknown neighbour.
    let mut diag = vec![0f64; n];
    let mut links: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    let mut rhs = vec![0f64; c * n];
    for (k, &p) in unknown.iter().enumerate() {
        let (r, col) = ((p / w) as i64, (p % w) as i64);
        for (dr, dc, wt) in NEIGHBOURS {
            let (rr, cc) = (r + dr, col + dc);
            if rr < 0 || cc < 0 || rr >= h as i64 || cc >= w as i64 {
                continue;
            }
            diag[k] += wt;
            let q = rr as usize * w + cc as usize;
            if keep[q] {
                for ch in 0..c {
                    rhs[ch * n + k] += wt * data[ch * h * w + q] as f64;
                }
            } else {
                links[k].push((id[q], wt));
            }
        }
    }
    // The channels share the matrix: solved side by side, one thread each.
    let solved: Vec<Result<Vec<f64>>> = std::thread::scope(|scope| {
        let (diag, links) = (&diag, &links);
        let jobs: Vec<_> = rhs
            .chunks(n.max(1))
            .take(c)
            .map(|b| scope.spawn(move || solve(diag, links, b)))
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err(Error::invalid("ROAD: the imputation failed")))
            })
            .collect()
    });
    let mut out = data.to_vec();
    for (ch, x) in solved.into_iter().enumerate() {
        let x = x?;
        for (k, &p) in unknown.iter().enumerate() {
            out[ch * h * w + p] = (x[k] + noise[ch * n + k] as f64) as f32;
        }
    }
    Ok(out)
}

/// The residual, relative to the right-hand side, at which the imputation stops: the filled
/// values are then within about 1e-5 of the exact solution's (pytorch-grad-cam solves
/// exactly), far below the image's own steps.
const TOLERANCE: f64 = 1e-7;

/// Conjugate gradients with a Jacobi preconditioner on `diag - links` (symmetric; positive
/// definite where every region to fill touches a known pixel).
fn solve(diag: &[f64], links: &[Vec<(usize, f64)>], b: &[f64]) -> Result<Vec<f64>> {
    let n = b.len();
    let apply = |v: &[f64], out: &mut [f64]| {
        for k in 0..n {
            let mut s = diag[k] * v[k];
            for &(j, wt) in &links[k] {
                s -= wt * v[j];
            }
            out[k] = s;
        }
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut x: Vec<f64> = (0..n).map(|k| b[k] / diag[k].max(1e-12)).collect();
    let mut r = vec![0f64; n];
    apply(&x, &mut r);
    for k in 0..n {
        r[k] = b[k] - r[k];
    }
    let mut z: Vec<f64> = (0..n).map(|k| r[k] / diag[k].max(1e-12)).collect();
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let norm_b = dot(b, b).sqrt().max(1e-300);
    let mut ap = vec![0f64; n];
    for _ in 0..(10 * n).max(100) {
        if dot(&r, &r).sqrt() <= TOLERANCE * norm_b {
            return Ok(x);
        }
        apply(&p, &mut ap);
        let pap = dot(&p, &ap);
        if pap <= 0.0 {
            return Err(Error::invalid(
                "ROAD: a region to fill in touches no known pixel (the map keeps none)",
            ));
        }
        let alpha = rz / pap;
        for k in 0..n {
            x[k] += alpha * p[k];
            r[k] -= alpha * ap[k];
        }
        for k in 0..n {
            z[k] = r[k] / diag[k].max(1e-12);
        }
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        rz = rz_new;
        for k in 0..n {
            p[k] = z[k] + beta * p[k];
        }
    }
    Err(Error::invalid("ROAD: the imputation did not converge"))
}

/// numpy's default percentile (linear interpolation between the sorted values).
pub fn percentile(values: &[f32], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    let pos = p / 100.0 * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(v.len() - 1);
    v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
}

/// The pixels kept when the most relevant (or, `least`, the least relevant) are removed at
/// percentile p: pytorch-grad-cam's `map < percentile(map, p)` (on `1 - map` for least).
pub fn kept(map: &[f32], p: f64, least: bool) -> Vec<bool> {
    let m: Vec<f32> = if least {
        map.iter().map(|v| 1.0 - v).collect()
    } else {
        map.to_vec()
    };
    let t = percentile(&m, p);
    m.iter().map(|&v| (v as f64) < t).collect()
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
    let mut images = Vec::new();
    for (i, least) in [false, true].into_iter().enumerate() {
        for (j, &p) in PERCENTILES.iter().enumerate() {
            let keep = kept(map, p, least);
            let missing = c * keep.iter().filter(|k| !**k).count();
            let stream = (i * PERCENTILES.len() + j) as u64;
            let noise: Vec<f32> = if noise > 0.0 {
                let t = crate::noise::seeded_normal(&[missing as i64], seed, stream) * noise;
                Vec::<f32>::try_from(t.to_kind(Kind::Float)).map_err(Error::from)?
            } else {
                vec![0.0; missing]
            };
            let filled = impute(&data, c, h, w, &keep, &noise)?;
            images.push(Tensor::from_slice(&filled).view([1, c as i64, h as i64, w as i64]));
        }
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
    }

    #[test]
    fn percentiles_are_numpys_and_the_masks_split_the_map() {
        let v: Vec<f32> = (0..10).map(|i| i as f32).collect();
        assert_eq!(percentile(&v, 50.0), 4.5);
        assert_eq!(percentile(&v, 10.0), 0.9);
        // Most relevant first at p = 80: the top 2 values go; least first: the bottom 2.
        let most = kept(&v, 80.0, false);
        assert_eq!(most.iter().filter(|k| !**k).count(), 2);
        assert!(!most[9] && !most[8] && most[7]);
        let least = kept(&v, 80.0, true);
        assert!(!least[0] && !least[1] && least[2]);
    }
}
