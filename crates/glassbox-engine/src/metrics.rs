//! Can I trust this heatmap? Faithfulness (deletion / insertion curves) and the sanity
//! check of Adebayo et al. 2018 (cascading model randomisation).

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::error::{Error, Result};
use super::explain::{self, Method, Params};
use super::map::{attribution_map, Map};
use super::model::Model;

#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    /// Fraction of pixels deleted (or inserted), 0 to 1.
    pub fractions: Vec<f64>,
    /// Probability of the target class at each fraction.
    pub scores: Vec<f64>,
    /// Area under the curve (trapezoid rule over [0, 1]).
    pub auc: f64,
}

fn auc(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// Deletion (most important pixels removed first: a faithful map drops fast, low AUC)
/// and insertion (they are put back into a blurred image first: high AUC is faithful).
pub fn deletion_insertion(
    model: &Model,
    input: &Tensor,
    map: &Map,
    target: i64,
    steps: usize,
    keep_going: &dyn Fn() -> bool,
) -> Result<(Curve, Curve)> {
    let steps = steps.clamp(2, 1000);
    let x = input.to_device(model.device()).to_kind(Kind::Float);
    let (h, w) = (x.size()[2], x.size()[3]);
    if (map.h as i64, map.w as i64) != (h, w) {
        return Err(Error::invalid(format!("map is {}x{}, input {h}x{w}", map.w, map.h)));
    }
    // Pixel ranks: most important first.
    let mut order: Vec<usize> = (0..map.data.len()).collect();
    order.sort_by(|&a, &b| map.data[b].total_cmp(&map.data[a]));
    let mut rank = vec![0i64; order.len()];
    for (r, &p) in order.iter().enumerate() {
        rank[p] = r as i64;
    }
    let rank = Tensor::from_slice(&rank).view([1, 1, h, w]).to_device(x.device());
    let n = (h * w) as f64;
    let fractions: Vec<f64> = (0..=steps).map(|i| i as f64 / steps as f64).collect();
    let blurred = blur(&x);
    let zero = Tensor::zeros_like(&x);
    let run = |from: &Tensor, to: &Tensor| -> Result<Vec<f64>> {
        tch::no_grad(|| {
            let mut scores = Vec::with_capacity(fractions.len());
            for chunk in fractions.chunks(16) {
                if !keep_going() {
                    return Err(Error::Cancelled);
                }
                let imgs: Vec<Tensor> = chunk
                    .iter()
                    .map(|f| {
                        let k = (f * n).round() as i64;
                        let mask = rank.lt(k).to_kind(Kind::Float); // 1 = replaced
                        from * (1.0 - &mask) + to * &mask
                    })
                    .collect();
                let probs = model
                    .logits(&Tensor::cat(&imgs, 0))
                    .softmax(-1, Kind::Float)
                    .select(1, target);
                let v = Vec::<f32>::try_from(&probs.to_device(Device::Cpu)).map_err(Error::from)?;
                scores.extend(v.into_iter().map(f64::from));
            }
            Ok(scores)
        })
    };
    let del = run(&x, &zero)?;
    let ins = run(&blurred, &x)?;
    Ok((
        Curve {
            auc: auc(&fractions, &del),
            fractions: fractions.clone(),
            scores: del,
        },
        Curve {
            auc: auc(&fractions, &ins),
            fractions,
            scores: ins,
        },
    ))
}

fn blur(x: &Tensor) -> Tensor {
    let (h, w) = (x.size()[2], x.size()[3]);
    // Down to 1/16 and back: a strong, cheap blur.
    x.upsample_bilinear2d([(h / 16).max(1), (w / 16).max(1)], false, None, None)
        .upsample_bilinear2d([h, w], false, None, None)
}

/// Spearman rank correlation of two equally long series.
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    fn ranks(v: &[f32]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0;
            for k in &idx[i..=j] {
                r[*k] = avg;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        num += (x - ma) * (y - mb);
        da += (x - ma) * (x - ma);
        db += (y - mb) * (y - mb);
    }
    if da == 0.0 || db == 0.0 {
        return 0.0;
    }
    num / (da * db).sqrt()
}

#[derive(Debug, Clone, Serialize)]
pub struct SanityStep {
    /// The layer group randomised in this step (all groups above it are random too).
    pub randomised: String,
    pub spearman: f64,
    /// The map of the model randomised down to here (for the side-by-side view).
    #[serde(skip)]
    pub map: Option<Map>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sanity {
    pub method: String,
    /// The trained model's map.
    #[serde(skip)]
    pub original: Option<Map>,
    pub steps: Vec<SanityStep>,
    /// Passes when the map of the fully randomised model no longer resembles the original.
    pub passed: bool,
    pub verdict: String,
}

/// The check's verdict from the rank correlation left when every layer is random.
pub fn verdict(last: f64) -> (bool, String) {
    if last.abs() < 0.5 {
        (
            true,
            format!(
                "passes: with every layer randomised the map keeps a rank correlation of {last:.2} with the original, so it depends on what the model learned"
            ),
        )
    } else {
        (
            false,
            format!(
                "FAILS: with every layer randomised the map still has a rank correlation of {last:.2} with the original; it shows the input's structure more than what the model learned"
            ),
        )
    }
}

/// Groups of parameters from the top of the network down: `_fc`, `_bn1`, `_conv_head`,
/// `_blocks.15`, ..., `layer4.1`, ..., `conv1`.
pub fn layer_groups(model: &Model) -> Vec<String> {
    let order: Vec<String> = model.layers().into_iter().map(|l| l.name).collect();
    let mut groups: Vec<(usize, String)> = Vec::new();
    for name in model.vs.variables().keys() {
        let parts: Vec<&str> = name.split('.').collect();
        let key = if parts.len() > 2 && parts[1].parse::<usize>().is_ok() {
            format!("{}.{}", parts[0], parts[1])
        } else {
            parts[..parts.len() - 1].join(".")
        };
        if groups.iter().any(|g| g.1 == key) {
            continue;
        }
        let pos = order
            .iter()
            .position(|l| l == &key || l.starts_with(&format!("{key}.")))
            .unwrap_or(0);
        groups.push((pos, key));
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.0));
    groups.into_iter().map(|g| g.1).collect()
}

/// Same architecture and weights, independent variables.
pub fn duplicate(model: &Model) -> Model {
    duplicate_on(model, model.device())
}

/// Same architecture and weights, independent variables on `device`.
pub fn duplicate_on(model: &Model, device: tch::Device) -> Model {
    let mut m = Model::new_random(model.spec.arch, model.spec.classes, model.spec.in_channels, device);
    m.labels = model.labels.clone();
    m.preprocess = model.preprocess.clone();
    m.source = model.source.clone();
    m.knockouts = model.knockouts.clone();
    let src = model.vs.variables();
    tch::no_grad(|| {
        for (k, mut v) in m.vs.variables() {
            if let Some(s) = src.get(&k) {
                v.copy_(&s.to_device(device));
            }
        }
    });
    m
}

/// Re-initialises the parameters of layer group `group` (running statistics excepted) with
/// seeded normal noise of each parameter's own spread. Each parameter draws its own noise
/// stream, seeded by its index in the sorted list `vars` (never by anything two parameters
/// can share, like the length of their names).
fn randomise(vars: &[(String, Tensor)], group: &str, seed: i64) {
    let prefix = format!("{group}.");
    tch::no_grad(|| {
        for (index, (k, v)) in vars.iter().enumerate().filter(|(_, (k, _))| k.starts_with(&prefix)) {
            if k.ends_with("running_mean") || k.ends_with("running_var") {
                continue;
            }
            let std = v.std(true).double_value(&[]);
            let std = if std.is_finite() && std > 0.0 { std } else { 0.05 };
            let noise = crate::noise::seeded_normal(&v.size(), seed, index as u64);
            let mut v = v.shallow_clone();
            v.copy_(&(noise.to_device(v.device()) * std));
        }
    });
}

/// Every layer group of `model` re-initialised as the sanity check's last step leaves it.
pub fn randomise_all(model: &Model, seed: i64) {
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for g in layer_groups(model) {
        randomise(&vars, &g, seed);
    }
}

/// Cascading randomisation: re-initialise layer groups from the top down and compare
/// each map with the original by Spearman rank correlation of |map|.
pub fn sanity_check(
    model: &Model,
    input: &Tensor,
    method: Method,
    p: &Params,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Sanity> {
    let size = (input.size()[2], input.size()[3]);
    let abs_map = |attribution: &Tensor| -> Result<(Vec<f32>, Map)> {
        let map = attribution_map(attribution, method, size.0, size.1)?;
        Ok((map.data.iter().map(|v| v.abs()).collect(), map))
    };
    // The original map also fixes the target every randomised model is explained for.
    let first = explain::explain(model, input, method, p, &mut |_| true)?;
    let target = first.target;
    let (original, original_map) = abs_map(&first.attribution)?;
    let fixed = Params {
        target: Some(target),
        ..p.clone()
    };
    let map_of = |m: &Model| -> Result<(Vec<f32>, Map)> {
        abs_map(&explain::explain(m, input, method, &fixed, &mut |_| true)?.attribution)
    };
    let work = duplicate(model);
    let groups = layer_groups(&work);
    let mut vars: Vec<(String, Tensor)> = work.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut steps = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        randomise(&vars, g, p.seed);
        let (values, map) = map_of(&work)?;
        let s = spearman(&original, &values);
        steps.push(SanityStep {
            randomised: g.clone(),
            spearman: s,
            map: Some(map),
        });
        if !progress(i + 1, groups.len()) {
            return Err(Error::Cancelled);
        }
    }
    let last = steps.last().map_or(1.0, |s| s.spearman);
    let (passed, verdict) = verdict(last);
    Ok(Sanity {
        method: method.name().to_string(),
        original: Some(original_map),
        steps,
        passed,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[1.0, 1.0, 2.0, 2.0]) - 0.894427191).abs() < 1e-6);
    }

    #[test]
    fn a_map_that_stays_similar_fails() {
        assert!(!verdict(0.8).0 && verdict(0.8).1.starts_with("FAILS"));
        assert!(verdict(0.1).0 && verdict(0.1).1.starts_with("passes"));
    }

    #[test]
    fn parameters_with_names_of_equal_length_get_different_noise() {
        let vars: Vec<(String, Tensor)> = ["g.aa", "g.bb", "h.cc"]
            .iter()
            .map(|n| (n.to_string(), Tensor::zeros([64], (Kind::Float, Device::Cpu))))
            .collect();
        randomise(&vars, "g", 3);
        assert!(!vars[0].1.equal(&vars[1].1), "same noise for two parameters");
        assert!(vars[0].1.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert_eq!(
            vars[2].1.abs().sum(Kind::Float).double_value(&[]),
            0.0,
            "other groups untouched"
        );
    }

    #[test]
    fn auc_of_a_constant_is_the_constant() {
        assert!((auc(&[0.0, 0.5, 1.0], &[0.3, 0.3, 0.3]) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn auc_is_the_trapezoid_rule() {
        // Two trapezoids: 0.25 * (1 + 0.2) / 2 + 0.75 * (0.2 + 0.6) / 2.
        let a = auc(&[0.0, 0.25, 1.0], &[1.0, 0.2, 0.6]);
        assert!((a - (0.15 + 0.3)).abs() < 1e-12, "{a}");
        assert_eq!(auc(&[0.5], &[1.0]), 0.0, "one point: no area");
    }

    #[test]
    fn spearman_averages_the_ranks_of_ties_and_is_zero_for_a_constant() {
        // Ranks (0.5, 0.5, 2) against (0, 1, 2): 1.5 / sqrt(1.5 * 2).
        let r = spearman(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]);
        assert!((r - 1.5 / 3f64.sqrt()).abs() < 1e-12, "{r}");
        // Three equal values in the middle: ranks (0, 2, 2, 2, 4).
        let r = spearman(&[0.0, 5.0, 5.0, 5.0, 9.0], &[0.0, 1.0, 2.0, 3.0, 4.0]);
        assert!((r - 8.0 / (8f64 * 10.0).sqrt()).abs() < 1e-12, "{r}");
        assert!((spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]) - 0.8).abs() < 1e-12);
        assert_eq!(spearman(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), 0.0);
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[7.0, 7.0, 7.0]), 0.0);
    }

    #[test]
    fn the_verdict_turns_at_half_either_way() {
        for (last, passes) in [(0.49, true), (-0.49, true), (0.5, false), (-0.5, false), (-0.9, false)] {
            let (p, text) = verdict(last);
            assert_eq!(p, passes, "{last}");
            assert!(text.contains(&format!("{last:.2}")), "{text}");
        }
    }

    fn tiny() -> Model {
        tch::manual_seed(5);
        Model::new_random(crate::arch::Arch::TinyCnn, 10, 1, Device::Cpu)
    }

    fn prob(m: &Model, x: &Tensor, target: i64) -> f64 {
        m.logits(x).softmax(-1, Kind::Float).double_value(&[0, target])
    }

    #[test]
    fn deletion_and_insertion_replace_the_most_important_pixels_first() {
        let m = tiny();
        let x = Tensor::randn([1, 1, 28, 28], (Kind::Float, Device::Cpu)) + 0.5;
        // Importance falls in reading order: the first k pixels go first.
        let map = Map {
            w: 28,
            h: 28,
            data: (0..784).map(|i| 1000.0 - i as f32).collect(),
        };
        let target = 3;
        let (del, ins) = deletion_insertion(&m, &x, &map, target, 20, &|| true).unwrap();
        assert_eq!(del.fractions.len(), 21, "two batches of up to 16");
        assert_eq!((del.fractions[5], ins.fractions[20]), (0.25, 1.0));
        let blurred = x
            .upsample_bilinear2d([1, 1], false, None, None)
            .upsample_bilinear2d([28, 28], false, None, None);
        let first = |k: i64| {
            let mut mask = vec![0f32; 784];
            mask[..k as usize].iter_mut().for_each(|v| *v = 1.0);
            Tensor::from_slice(&mask).view([1, 1, 28, 28])
        };
        for (i, f) in del.fractions.iter().enumerate() {
            let k = (f * 784.0).round() as i64;
            let gone = &x * (1.0 - first(k));
            let back = &blurred * (1.0 - first(k)) + &x * first(k);
            assert!(
                (del.scores[i] - prob(&m, &gone, target)).abs() < 1e-5,
                "deletion at {f}"
            );
            assert!(
                (ins.scores[i] - prob(&m, &back, target)).abs() < 1e-5,
                "insertion at {f}"
            );
        }
        assert!((del.scores[0] - prob(&m, &x, target)).abs() < 1e-5);
        assert!((ins.scores[20] - prob(&m, &x, target)).abs() < 1e-5);
        assert!((del.auc - auc(&del.fractions, &del.scores)).abs() < 1e-12);
        assert!((ins.auc - auc(&ins.fractions, &ins.scores)).abs() < 1e-12);
        assert_ne!(del.scores[10], del.scores[11], "the curve moves");
        // Steps are bounded: at least 2.
        let (del, _) = deletion_insertion(&m, &x, &map, target, 0, &|| true).unwrap();
        assert_eq!(del.fractions, vec![0.0, 0.5, 1.0]);
        // A map of another size, and a cancel.
        let small = Map {
            w: 14,
            h: 28,
            data: vec![0.0; 392],
        };
        let e = deletion_insertion(&m, &x, &small, target, 4, &|| true).unwrap_err();
        assert!(e.to_string().contains("map is 14x28, input 28x28"), "{e}");
        let e = deletion_insertion(&m, &x, &map, target, 4, &|| false).unwrap_err();
        assert!(matches!(e, Error::Cancelled));
    }

    #[test]
    fn the_blur_keeps_the_size_and_smooths_at_a_sixteenth() {
        let x = Tensor::randn([1, 3, 64, 48], (Kind::Float, Device::Cpu));
        let b = blur(&x);
        assert_eq!(b.size(), [1, 3, 64, 48]);
        let small = x.upsample_bilinear2d([4, 3], false, None, None);
        let expected = small.upsample_bilinear2d([64, 48], false, None, None);
        assert!(b.allclose(&expected, 1e-6, 1e-6, false));
        assert!(b.std(true).double_value(&[]) < 0.5 * x.std(true).double_value(&[]));
    }

    #[test]
    fn layer_groups_run_from_the_top_down_one_per_layer() {
        let m = tiny();
        assert_eq!(layer_groups(&m), ["fc2", "fc1", "bn2", "conv2", "bn1", "conv1"]);
        let lite = Model::new_random(crate::arch::Arch::EfficientNetLite(0), 10, 3, Device::Cpu);
        let g = layer_groups(&lite);
        assert_eq!(g.first().map(String::as_str), Some("_fc"));
        assert_eq!(g.last().map(String::as_str), Some("_conv_stem"));
        let blocks: Vec<&String> = g.iter().filter(|n| n.starts_with("_blocks.")).collect();
        assert_eq!(blocks.len(), 16, "a block is one group: {blocks:?}");
        assert_eq!((blocks[0].as_str(), blocks[15].as_str()), ("_blocks.15", "_blocks.0"));
    }

    #[test]
    fn a_duplicate_has_the_same_values_and_its_own_variables() {
        let mut m = tiny();
        m.knockouts.insert(("conv1".into(), 2));
        m.labels[0] = "zero".into();
        let d = duplicate(&m);
        let (a, b) = (m.vs.variables(), d.vs.variables());
        assert_eq!(a.len(), b.len());
        for (k, v) in &a {
            assert!(v.equal(&b[k]), "{k}");
        }
        assert_eq!(
            (d.knockouts.clone(), d.labels[0].as_str()),
            (m.knockouts.clone(), "zero")
        );
        let mut w = b["conv1.weight"].shallow_clone();
        let _ = tch::no_grad(|| w.fill_(0.0));
        assert!(
            a["conv1.weight"].abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "independent"
        );
    }

    #[test]
    fn randomising_a_group_draws_seeded_noise_of_each_parameters_spread() {
        let m = tiny();
        tch::no_grad(|| {
            let _ = m.vs.variables()["bn1.running_mean"].shallow_clone().fill_(0.25);
        });
        let sorted = |m: &Model| {
            let mut v: Vec<(String, Tensor)> = m.vs.variables().into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let before: Vec<(String, Tensor)> = sorted(&m).into_iter().map(|(k, v)| (k, v.copy())).collect();
        let vars = sorted(&m);
        randomise(&vars, "conv2", 7);
        for ((k, old), (_, new)) in before.iter().zip(&vars) {
            if k.starts_with("conv2.") {
                assert!(!old.equal(new), "{k} randomised");
                let (s0, s1) = (old.std(true).double_value(&[]), new.std(true).double_value(&[]));
                assert!((s1 / s0 - 1.0).abs() < 0.1, "{k}: spread {s0} then {s1}");
            } else {
                assert!(old.equal(new), "{k} untouched");
            }
        }
        randomise(&vars, "bn1", 7);
        let now = m.vs.variables();
        assert!(now["bn1.running_mean"].equal(&Tensor::full([16], 0.25, (Kind::Float, Device::Cpu))));
        assert!(!now["bn1.weight"].equal(&Tensor::ones([16], (Kind::Float, Device::Cpu))));
        // A parameter with no spread (a fresh bias of zeros) gets noise of 0.05.
        assert!((now["bn1.bias"].std(true).double_value(&[]) / 0.05 - 1.0).abs() < 0.5);
        // The same seed gives the same noise; another seed other noise.
        let again = tiny();
        let v2 = sorted(&again);
        tch::no_grad(|| {
            for ((_, v), (_, old)) in v2.iter().zip(&before) {
                v.shallow_clone().copy_(old);
            }
        });
        randomise(&v2, "conv2", 7);
        assert!(v2
            .iter()
            .find(|v| v.0 == "conv2.weight")
            .unwrap()
            .1
            .equal(&now["conv2.weight"]));
        randomise(&v2, "conv2", 8);
        assert!(!v2
            .iter()
            .find(|v| v.0 == "conv2.weight")
            .unwrap()
            .1
            .equal(&now["conv2.weight"]));
    }

    #[test]
    fn the_sanity_check_randomises_every_group_in_turn_and_keeps_the_target() {
        let m = tiny();
        let x = Tensor::randn([1, 1, 28, 28], (Kind::Float, Device::Cpu));
        let p = Params {
            target: Some(4),
            ..Params::default()
        };
        let mut seen = Vec::new();
        let s = sanity_check(&m, &x, Method::Gradient, &p, &mut |i, n| {
            seen.push((i, n));
            true
        })
        .unwrap();
        let groups = layer_groups(&m);
        assert_eq!(seen, (1..=6).map(|i| (i, 6)).collect::<Vec<_>>());
        let names: Vec<&String> = s.steps.iter().map(|s| &s.randomised).collect();
        assert_eq!(names, groups.iter().collect::<Vec<_>>());
        let original = explain::explain(&m, &x, Method::Gradient, &p, &mut |_| true).unwrap();
        let map = attribution_map(&original.attribution, Method::Gradient, 28, 28).unwrap();
        assert_eq!(
            s.original.as_ref().unwrap().data,
            map.data,
            "the model itself is untouched"
        );
        let last = s.steps.last().unwrap();
        assert_eq!((s.passed, s.verdict.clone()), verdict(last.spearman));
        assert!(last.spearman.abs() < 0.9 && last.spearman > -1.0);
        // Each step's number is its own map against the original.
        let abs = |m: &Map| m.data.iter().map(|v| v.abs()).collect::<Vec<f32>>();
        for step in &s.steps {
            let r = spearman(&abs(&map), &abs(step.map.as_ref().unwrap()));
            assert!((r - step.spearman).abs() < 1e-12);
        }
        // Without a target: every randomised model is explained for the original's top-1
        // class, each step's map rebuilt here group by group.
        let top = Params::default();
        let s = sanity_check(&m, &x, Method::Gradient, &top, &mut |_, _| true).unwrap();
        let target = explain::explain(&m, &x, Method::Gradient, &top, &mut |_| true)
            .unwrap()
            .target;
        let work = duplicate(&m);
        let mut vars: Vec<(String, Tensor)> = work.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let fixed = Params {
            target: Some(target),
            ..top.clone()
        };
        let mut own_top = Vec::new();
        for (g, step) in groups.iter().zip(&s.steps) {
            randomise(&vars, g, top.seed);
            let e = explain::explain(&work, &x, Method::Gradient, &fixed, &mut |_| true).unwrap();
            let map = attribution_map(&e.attribution, Method::Gradient, 28, 28).unwrap();
            assert_eq!(step.map.as_ref().unwrap().data, map.data, "{g}");
            own_top.push(work.logits(&x).argmax(-1, false).int64_value(&[0]));
        }
        assert!(
            own_top.iter().any(|t| *t != target),
            "a step whose own top class differs: {own_top:?}"
        );
        let e = sanity_check(&m, &x, Method::Gradient, &p, &mut |i, _| i < 2).unwrap_err();
        assert!(matches!(e, Error::Cancelled));
    }
}
