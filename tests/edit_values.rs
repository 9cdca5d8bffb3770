//! The values each weight edit writes (not only that it undoes): `set`, `add`, `scale`,
//! `zero`, `noise`, `randomize` and every 3x3 preset, each checked against what the test
//! computes itself from the documented meaning (README, "glassbox edit"), and each checked
//! to leave every other value of the model bit for bit as it was.
//!
//! The model is the small CNN with random weights: conv1 [16,1,3,3], bn1 [16],
//! conv2 [32,16,3,3], bn2 [32], fc1 [128,1568] + [128], fc2 [10,128] + [10].

mod common;

use std::collections::BTreeMap;

use common::variables;
use glassbox_engine::arch::Arch;
use glassbox_engine::edit::{Editor, Op};
use glassbox_engine::model::Model;
use tch::{Device, Kind, Tensor};

/// The small CNN with weights from the test's own generator, seeded: not libtorch's global
/// one, which the tests of this file, running in parallel threads, would share.
fn tiny(seed: i64) -> Model {
    use rand::{Rng, SeedableRng};
    let m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed as u64);
    let mut vars: Vec<(String, Tensor)> = m.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (name, mut v) in vars {
            let (lo, hi) = if name.ends_with("running_var") {
                (0.5, 1.5)
            } else {
                (-0.2, 0.2)
            };
            let vals: Vec<f32> = (0..v.numel()).map(|_| rng.random_range(lo..hi)).collect();
            v.copy_(&Tensor::from_slice(&vals).view(v.size().as_slice()));
        }
    });
    m
}

fn flat(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.to_kind(Kind::Float).flatten(0, -1)).unwrap()
}

fn apply(m: &mut Model, ops: &[&str]) -> Editor {
    let mut ed = Editor::default();
    for op in ops {
        let op: Op = op.parse().unwrap_or_else(|e| panic!("{op}: {e}"));
        ed.apply(m, op).unwrap();
    }
    ed
}

/// The flat range a leading index names in a tensor of `shape` (row-major), computed here.
fn range_of(shape: &[i64], index: &[i64]) -> std::ops::Range<usize> {
    let inner: i64 = shape[index.len()..].iter().product();
    let mut start = 0i64;
    for (d, &i) in index.iter().enumerate() {
        let stride: i64 = shape[d + 1..].iter().product();
        start += i * stride;
    }
    start as usize..(start + inner) as usize
}

/// Checks that between `before` and `after` only `param`'s values under `index` changed
/// (every other value of every variable bit for bit the same), and returns the old and new
/// values of the target.
fn only_target(
    before: &BTreeMap<String, Tensor>,
    after: &BTreeMap<String, Tensor>,
    param: &str,
    index: &[i64],
) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    assert!(before.contains_key(param), "{param} is a variable of the model");
    let mut target = None;
    for (name, b) in before {
        let a = &after[name];
        assert_eq!(a.size(), b.size(), "{name}: shape");
        assert_eq!(a.kind(), b.kind(), "{name}: kind");
        let (vb, va) = (flat(b), flat(a));
        if name != param {
            let same = vb.iter().zip(&va).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "{name} is not the target, yet it changed");
            continue;
        }
        let r = range_of(&b.size(), index);
        for (i, (x, y)) in vb.iter().zip(&va).enumerate() {
            if !r.contains(&i) {
                assert_eq!(
                    x.to_bits(),
                    y.to_bits(),
                    "{name}: value {i} is outside the target {index:?} yet it changed"
                );
            }
        }
        target = Some((vb[r.clone()].to_vec(), va[r].to_vec()));
    }
    target.unwrap()
}

/// Applies `op` to a fresh model and returns the old and new values of its target, having
/// checked that nothing else moved.
fn edit_values(seed: i64, op: &str, param: &str, index: &[i64]) -> (Vec<f32>, Vec<f32>) {
    let mut m = tiny(seed);
    let before = variables(&m);
    apply(&mut m, &[op]);
    only_target(&before, &variables(&m), param, index)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn add_adds_exactly_the_value_to_the_target_alone() {
    for (op, param, index, v) in [
        ("add conv1.weight[3] 0.1", "conv1.weight", vec![3], 0.1f64),
        ("add conv2.weight[5,7] -0.375", "conv2.weight", vec![5, 7], -0.375),
        ("add conv2.weight[5,7,1,2] 3", "conv2.weight", vec![5, 7, 1, 2], 3.0),
        ("add fc2.bias -2.5", "fc2.bias", vec![], -2.5),
        ("add bn1.running_mean[2] 1e-3", "bn1.running_mean", vec![2], 1e-3),
    ] {
        let (old, new) = edit_values(1, op, param, &index);
        assert_eq!(old.len(), range_of(&tiny(1).vs.variables()[param].size(), &index).len());
        // A float32 addition of the value (as float32), element by element.
        let want: Vec<f32> = old.iter().map(|&o| o + v as f32).collect();
        assert_eq!(bits(&new), bits(&want), "{op}: {new:?} vs {want:?}");
        assert!(old.iter().zip(&new).all(|(o, n)| o != n), "{op}: every value moved");
    }
}

#[test]
fn set_scale_and_zero_write_their_values_to_the_target_alone() {
    let (_, new) = edit_values(2, "set conv1.weight[3,0,1,1]=0.5", "conv1.weight", &[3, 0, 1, 1]);
    assert_eq!(new, [0.5]);
    let (_, new) = edit_values(2, "set fc1.weight[7]=-1.25", "fc1.weight", &[7]);
    assert_eq!(new.len(), 1568);
    assert!(new.iter().all(|&x| x == -1.25));
    let (old, new) = edit_values(2, "scale conv2.weight[4] 1.7", "conv2.weight", &[4]);
    let want: Vec<f32> = old.iter().map(|&o| o * 1.7f32).collect();
    assert_eq!(bits(&new), bits(&want));
    let (old, new) = edit_values(2, "scale fc2.weight -2", "fc2.weight", &[]);
    assert_eq!(bits(&new), bits(&old.iter().map(|&o| -2.0 * o).collect::<Vec<_>>()));
    let (old, new) = edit_values(2, "zero conv1.weight[9]", "conv1.weight", &[9]);
    assert!(old.iter().any(|&x| x != 0.0));
    assert!(new.iter().all(|&x| x.to_bits() == 0), "{new:?}");
}

/// Mean, standard deviation, skewness, excess kurtosis, and the fractions within one and
/// two standard deviations `sigma` of 0.
fn moments(d: &[f64], sigma: f64) -> (f64, f64, f64, f64, f64, f64) {
    let n = d.len() as f64;
    let mean = d.iter().sum::<f64>() / n;
    let m2 = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let m3 = d.iter().map(|x| (x - mean).powi(3)).sum::<f64>() / n;
    let m4 = d.iter().map(|x| (x - mean).powi(4)).sum::<f64>() / n;
    let within = |k: f64| d.iter().filter(|x| x.abs() < k * sigma).count() as f64 / n;
    (
        mean,
        m2.sqrt(),
        m3 / m2.powf(1.5),
        m4 / (m2 * m2) - 3.0,
        within(1.0),
        within(2.0),
    )
}

fn deltas(old: &[f32], new: &[f32]) -> Vec<f64> {
    old.iter().zip(new).map(|(&o, &n)| n as f64 - o as f64).collect()
}

#[test]
fn noise_adds_seeded_normal_noise_of_standard_deviation_sigma_to_the_target_alone() {
    // The whole of fc1.weight: 200704 values, enough to measure the distribution.
    let sigma = 0.05;
    let (old, new) = edit_values(3, "noise fc1.weight 0.05 7", "fc1.weight", &[]);
    let d = deltas(&old, &new);
    let n = d.len() as f64;
    let (mean, std, skew, kurt, in1, in2) = moments(&d, sigma);
    eprintln!("noise: mean {mean:.2e} std {std:.5} skew {skew:.4} kurtosis {kurt:.4} within 1σ {in1:.4} 2σ {in2:.4}");
    assert!(mean.abs() < 5.0 * sigma / n.sqrt(), "mean {mean}");
    assert!((std / sigma - 1.0).abs() < 0.01, "std {std} for sigma {sigma}");
    assert!(skew.abs() < 0.03, "skewness {skew}");
    assert!(kurt.abs() < 0.06, "excess kurtosis {kurt}: not normal");
    // A normal distribution has 68.27 % within one standard deviation and 95.45 % within two.
    assert!((in1 - 0.6827).abs() < 0.005, "{in1} within 1 sigma");
    assert!((in2 - 0.9545).abs() < 0.003, "{in2} within 2 sigma");

    // The same seed gives the same values, bit for bit; another seed other values.
    let (_, again) = edit_values(3, "noise fc1.weight 0.05 7", "fc1.weight", &[]);
    assert_eq!(bits(&again), bits(&new), "same seed, same values");
    let (_, other) = edit_values(3, "noise fc1.weight 0.05 8", "fc1.weight", &[]);
    let d8 = deltas(&old, &other);
    let changed = d8.iter().zip(&d).filter(|(a, b)| a != b).count();
    assert!(
        changed as f64 > 0.99 * n,
        "another seed, other noise: {changed} of {n} differ"
    );
    let corr = d8.iter().zip(&d).map(|(a, b)| a * b).sum::<f64>() / (n * sigma * sigma);
    assert!(corr.abs() < 0.01, "the noise of two seeds is uncorrelated: {corr}");

    // The noise is drawn from the seed alone: the same seed on other weights adds the same
    // noise, and SIGMA scales it (a standard deviation, not a variance).
    let (old_b, new_b) = edit_values(4, "noise fc1.weight 0.1 7", "fc1.weight", &[]);
    assert!(old_b != old, "another model");
    for (i, (db, da)) in deltas(&old_b, &new_b).iter().zip(&d).enumerate() {
        assert!((db - 2.0 * da).abs() < 1e-6, "value {i}: {db} is not twice {da}");
    }

    // On an indexed part: only that kernel moves, by noise of that scale.
    let (old, new) = edit_values(3, "noise conv2.weight[4,2] 0.5 11", "conv2.weight", &[4, 2]);
    let d = deltas(&old, &new);
    assert_eq!(d.len(), 9);
    assert!(d.iter().all(|x| *x != 0.0 && x.abs() < 5.0 * 0.5), "{d:?}");
    let (old, new) = edit_values(3, "noise conv2.weight[4,2,1,0] 0.5 11", "conv2.weight", &[4, 2, 1, 0]);
    assert!(
        old[0] != new[0] && (new[0] - old[0]).abs() < 2.5,
        "one value: {old:?} -> {new:?}"
    );
    let (old, new) = edit_values(3, "noise conv2.weight[6] 0.5 11", "conv2.weight", &[6]);
    let (_, std, ..) = moments(&deltas(&old, &new), 0.5);
    assert!((std / 0.5 - 1.0).abs() < 0.2, "144 values of std {std}");
}

/// Checks that `v` looks drawn uniformly from [-bound, bound]: inside it, reaching near both
/// ends, centred, with the standard deviation bound/sqrt(3) and a quarter in each half-half.
fn assert_uniform(what: &str, v: &[f32], bound: f64) {
    let n = v.len() as f64;
    let v: Vec<f64> = v.iter().map(|&x| x as f64).collect();
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(l, h), &x| (l.min(x), h.max(x)));
    assert!(
        lo >= -bound * (1.0 + 1e-6) && hi <= bound * (1.0 + 1e-6),
        "{what}: [{lo}, {hi}] outside ±{bound}"
    );
    // The nearest of n uniform draws to an end is within bound * 12 / n of it but for about
    // 1 chance in e^6.
    let reach = bound * (1.0 - (12.0 / n).min(0.9));
    assert!(lo < -reach && hi > reach, "{what}: [{lo}, {hi}] does not span ±{bound}");
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let want_std = bound / 3f64.sqrt();
    let tol = 5.0 / n.sqrt();
    assert!(mean.abs() < want_std * tol, "{what}: mean {mean}");
    assert!((std / want_std - 1.0).abs() < tol, "{what}: std {std}, want {want_std}");
    let quarter = v.iter().filter(|&&x| x > 0.0 && x < bound / 2.0).count() as f64 / n;
    assert!(
        (quarter - 0.25).abs() < 2.5 / n.sqrt(),
        "{what}: {quarter} in (0, bound/2)"
    );
}

#[test]
fn randomize_reinitialises_as_pytorch_does_on_the_target_alone() {
    // Weights: uniform in ±1/sqrt(fan-in), the fan-in being the inputs of one output
    // (in channels x kernel for a convolution, in features for a linear layer).
    for (op, param, index, fan_in) in [
        ("randomize fc1.weight 5", "fc1.weight", vec![], 1568.0),
        ("randomize conv1.weight 5", "conv1.weight", vec![], 9.0),
        ("randomize conv2.weight 5", "conv2.weight", vec![], 16.0 * 9.0),
        ("randomize fc2.weight[3] 5", "fc2.weight", vec![3], 128.0),
        ("randomize conv2.weight[7] 6", "conv2.weight", vec![7], 16.0 * 9.0),
        // Biases: the same bound as their layer's weight (its fan-in, not the bias's size).
        ("randomize fc1.bias 5", "fc1.bias", vec![], 1568.0),
        ("randomize fc2.bias 5", "fc2.bias", vec![], 128.0),
    ] {
        let (old, new) = edit_values(5, op, param, &index);
        assert_uniform(op, &new, 1.0 / f64::sqrt(fan_in));
        let moved = old.iter().zip(&new).filter(|(o, n)| o != n).count();
        assert_eq!(moved, new.len(), "{op}: every value is new");
        // Seeded: the same seed the same bytes, another seed other values.
        let (_, again) = edit_values(5, op, param, &index);
        assert_eq!(bits(&again), bits(&new), "{op}: same seed");
        let other = op.replace(" 5", " 55").replace(" 6", " 66");
        let (_, other_v) = edit_values(5, &other, param, &index);
        // (Two float32 draws can meet by chance: about 1 in 10^7 here.)
        let same = other_v.iter().zip(&new).filter(|(a, b)| a == b).count();
        assert!(
            same <= new.len() / 10_000,
            "{other}: another seed gives other values ({same} the same)"
        );
        // Drawn from the seed, not from the old values: another model, the same values.
        let (old9, new9) = edit_values(9, op, param, &index);
        assert_ne!(bits(&old9), bits(&old));
        assert_eq!(bits(&new9), bits(&new), "{op}: the values depend on the seed alone");
    }
    // The indexed part gets the values the whole parameter would get there.
    let (_, whole) = edit_values(5, "randomize conv2.weight 6", "conv2.weight", &[]);
    let (_, part) = edit_values(5, "randomize conv2.weight[7] 6", "conv2.weight", &[7]);
    assert_eq!(bits(&part), bits(&whole[range_of(&[32, 16, 3, 3], &[7])]));
    let (_, part) = edit_values(5, "randomize conv2.weight[7,3] 6", "conv2.weight", &[7, 3]);
    assert_eq!(bits(&part), bits(&whole[range_of(&[32, 16, 3, 3], &[7, 3])]));
    let (_, part) = edit_values(5, "randomize conv2.weight[7,3,2,1] 6", "conv2.weight", &[7, 3, 2, 1]);
    assert_eq!(bits(&part), bits(&whole[range_of(&[32, 16, 3, 3], &[7, 3, 2, 1])]));
}

#[test]
fn randomize_puts_batch_norm_back_to_one_and_zero() {
    // A fresh model's batch norm is already 1 and 0: move it first so the reset shows.
    let mut m = tiny(6);
    apply(
        &mut m,
        &[
            "noise bn1.weight 0.3 1",
            "noise bn1.bias 0.3 2",
            "noise bn2.running_mean 0.3 3",
            "noise bn2.running_var 0.3 4",
            "noise bn2.weight 0.3 5",
        ],
    );
    for (op, param, index, want) in [
        ("randomize bn1.weight 1", "bn1.weight", vec![], 1.0f32),
        ("randomize bn1.bias 1", "bn1.bias", vec![], 0.0),
        ("randomize bn2.running_mean 1", "bn2.running_mean", vec![], 0.0),
        ("randomize bn2.running_var[4] 1", "bn2.running_var", vec![4], 1.0),
        ("randomize bn2.weight[30] 1", "bn2.weight", vec![30], 1.0),
    ] {
        let before = variables(&m);
        let mut ed = apply(&mut m, &[op]);
        let (old, new) = only_target(&before, &variables(&m), param, &index);
        assert!(old.iter().all(|&o| o != want), "{op}: {old:?} already {want}");
        assert!(
            new.iter().all(|&x| x.to_bits() == want.to_bits()),
            "{op}: {new:?}, want {want}"
        );
        ed.undo(&mut m).unwrap();
    }
}

/// Conv1's output channel 0 for `x` [1, 1, 28, 28], traced.
fn conv1_channel0(m: &Model, x: &Tensor) -> Vec<f32> {
    let (_, traced) = m.trace(x);
    let c = traced.iter().find(|t| t.name == "conv1").expect("conv1 is traced");
    flat(&c.output.get(0).get(0))
}

#[test]
fn every_preset_writes_its_kernel_to_the_one_filter() {
    // The kernels, row by row, as image processing defines them.
    let third = 1.0f32 / 9.0;
    let kernels: [(&str, [f32; 9]); 4] = [
        ("identity", [0., 0., 0., 0., 1., 0., 0., 0., 0.]),
        // The 8-neighbour Laplacian: no response to a flat area.
        ("edge", [-1., -1., -1., -1., 8., -1., -1., -1., -1.]),
        // The 3x3 box: the mean of the neighbourhood.
        ("blur", [third; 9]),
        // Identity plus the 4-neighbour Laplacian.
        ("sharpen", [0., -1., 0., -1., 5., -1., 0., -1., 0.]),
    ];
    assert_eq!(
        glassbox_engine::edit::Preset::ALL.len(),
        kernels.len(),
        "a preset this test does not know"
    );
    tch::manual_seed(0);
    let x = Tensor::randn([1, 1, 28, 28], (Kind::Float, Device::Cpu));
    let px = flat(&x);
    for (name, k) in kernels {
        // One input channel of one output channel of a 16-input convolution.
        let op = format!("preset conv2.weight[5,9] {name}");
        let (old, new) = edit_values(7, &op, "conv2.weight", &[5, 9]);
        assert_eq!(bits(&new), bits(&k), "{op}: {new:?}");
        assert_ne!(bits(&old), bits(&k));
        let op = format!("preset conv2.weight[31,0] {name}");
        let (_, new) = edit_values(7, &op, "conv2.weight", &[31, 0]);
        assert_eq!(bits(&new), bits(&k), "{op}");

        // In the network: conv1 (1 input channel, padding 1, no bias) now filters the image
        // with the kernel: each inner output pixel is the kernel's weighted sum, computed here.
        let mut m = tiny(7);
        apply(&mut m, &[&format!("preset conv1.weight[0,0] {name}")]);
        let out = conv1_channel0(&m, &x);
        for r in 1..27usize {
            for c in 1..27usize {
                let mut want = 0f64;
                for dr in 0..3 {
                    for dc in 0..3 {
                        want += k[dr * 3 + dc] as f64 * px[(r + dr - 1) * 28 + (c + dc - 1)] as f64;
                    }
                }
                let got = out[r * 28 + c] as f64;
                assert!((got - want).abs() < 1e-5, "{name} at ({r},{c}): {got} vs {want}");
            }
        }
    }
    // A preset replaces one 3x3 kernel: other shapes are refused and nothing changes.
    let mut m = tiny(7);
    let before = variables(&m);
    let mut ed = Editor::default();
    let e = ed
        .apply(&mut m, "preset fc1.weight[0,0] edge".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("3x3"), "{e}");
    for (n, t) in variables(&m) {
        assert!(t.equal(&before[&n]), "{n} changed by a refused preset");
    }
}

/// Found by the `edit_op` fuzz target (fuzz/, 2026-11-30): `set` with a finite number too
/// large for a 32-bit weight made libtorch's conversion fail inside tch, which panics. Each
/// number-taking edit now refuses such a number with the reason, and changes nothing; the
/// largest number a weight holds is still accepted.
#[test]
fn numbers_too_large_for_the_weights_are_refused_not_a_panic() {
    let mut m = tiny(3);
    let before = variables(&m);
    for op in [
        "set conv1.weight[3,0,1,1]=0555555555555555555555555555555555555555555555555555555555555555555555.5",
        "add fc2.bias[7] -1e39",
        "scale conv2.weight[4] 4e38",
        "noise conv1.weight[1,0] 1e300 42",
    ] {
        let mut ed = Editor::default();
        let e = ed.apply(&mut m, op.parse().unwrap()).unwrap_err().to_string();
        assert!(
            e.contains("beyond what") && e.contains("Float") && e.contains("smaller number"),
            "{op}: {e}"
        );
        for (n, t) in variables(&m) {
            assert!(t.equal(&before[&n]), "{n} changed by the refused `{op}`");
        }
    }
    // Written as a 64-bit number: f32::MAX's own shortest form, 3.4028235e38, is a little
    // above it and is refused as libtorch would refuse it.
    let mut ed = apply(&mut m, &[&format!("set fc2.bias[0]={}", f32::MAX as f64)]);
    assert_eq!(flat(&m.vs.variables()["fc2.bias"])[0], f32::MAX);
    ed.undo(&mut m).unwrap();
}
