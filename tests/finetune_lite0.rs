//! Whole-network and from-a-layer fine-tuning of the embedded EfficientNet-Lite0, through
//! `finetune::finetune` (what `glassbox finetune` and the app's Train panel run), a few
//! steps on eight images of the bundled two-digits lesson folder:
//! - the loss on the training batch falls (measured here, before and after, with the same
//!   dropout masks),
//! - from a layer, every tensor of the layers before it is bit for bit the base's, batch
//!   norm's running statistics among them ("batch norm before it keeps its running
//!   statistics", `Model::forward_train`); the layers from it on train, their batch norm
//!   updating its statistics as PyTorch does, with Lite0's momentum 0.01 and the unbiased
//!   batch variance: `running = 0.99 running + 0.01 batch`, checked against the batch
//!   statistics computed here from the layer's input,
//! - whole-network: every weight and every batch norm's statistics move, by that rule.
//!
//! Eight images, a batch of eight (one step per epoch) and two epochs keep it cheap.
mod common;

use std::collections::BTreeMap;

use common::{asset, variables};
use glassbox_engine::finetune::{self, Config, Control, DataSource, Hooks, Optimizer, Outcome, Scope};
use glassbox_engine::model::Model;
use tch::{Device, Kind, Tensor};

const MOMENTUM: f64 = 0.01;
const EPOCHS: usize = 2;
const PER_CLASS: usize = 4;

fn lesson_data() -> DataSource {
    DataSource::Folder(asset("assets/lessons/two-digits"))
}

fn config(scope: Scope) -> Config {
    Config {
        scope,
        epochs: EPOCHS,
        lr: 1e-3,
        batch: 8,
        optimizer: Optimizer::Adam,
        seed: 4,
        val_split: 0.0,
        // The same eight images at every step: the batch statistics are computed here.
        augment: false,
        per_class: PER_CLASS,
        ..Default::default()
    }
}

fn tune(cfg: &Config) -> (Model, Outcome) {
    let base = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let control = Control::default();
    let mut event = |_| true;
    let mut hooks = Hooks {
        event: &mut event,
        control: &control,
    };
    let out = finetune::finetune(&base, &lesson_data(), cfg, &mut hooks).unwrap();
    (base, out)
}

fn f64s(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn is_stat(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// Where a Lite0 weight sits, by its name alone: -1 for the stem, the block's number, 100
/// for the head (`_conv_head`, `_bn1`, `_fc`).
fn position(name: &str) -> i64 {
    if name.starts_with("_conv_stem.") || name.starts_with("_bn0.") {
        -1
    } else if let Some(rest) = name.strip_prefix("_blocks.") {
        rest.split('.').next().unwrap().parse().unwrap()
    } else {
        assert!(
            ["_conv_head.", "_bn1.", "_fc."].iter().any(|p| name.starts_with(p)),
            "{name}: not a Lite0 weight"
        );
        100
    }
}

/// The normalised training images (all eight, the one batch of every step) and their labels.
fn batch(m: &Model) -> (Tensor, Vec<usize>) {
    let data = finetune::read_data(&m.preprocess, &lesson_data(), PER_CLASS).unwrap();
    assert_eq!(data.classes, ["digit-3", "digit-7"]);
    assert_eq!(data.labels, [0, 0, 0, 0, 1, 1, 1, 1]);
    (finetune::normalise(m, &data.images), data.labels)
}

/// Mean cross-entropy of the training forward (`from` on, or all layers), computed here
/// from the logits, averaged over two fixed dropout masks.
fn train_loss(m: &Model, x: &Tensor, labels: &[usize], from: Option<&str>) -> f64 {
    let mut total = 0.0;
    for seed in 0..2 {
        tch::manual_seed(100 + seed);
        let logits = tch::no_grad(|| m.forward_train(x, from));
        let k = logits.size()[1] as usize;
        let l = f64s(&logits);
        for (i, &y) in labels.iter().enumerate() {
            let row = &l[i * k..(i + 1) * k];
            let max = row.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            total += lse - row[y];
        }
    }
    total / (2 * labels.len()) as f64
}

/// Per channel: the batch mean and the unbiased batch variance of a [N, C, H, W] tensor.
fn batch_stats(t: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let s = t.size();
    let (n, c, hw) = (s[0] as usize, s[1] as usize, (s[2] * s[3]) as usize);
    let v = f64s(t);
    let count = (n * hw) as f64;
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    for ch in 0..c {
        let vals = (0..n).flat_map(|i| v[(i * c + ch) * hw..(i * c + ch + 1) * hw].iter());
        let m = vals.clone().sum::<f64>() / count;
        mean[ch] = m;
        var[ch] = vals.map(|x| (x - m).powi(2)).sum::<f64>() / (count - 1.0);
    }
    (mean, var)
}

/// Checks `after = (1 - momentum) before + momentum batch`, the batch statistics computed
/// here in f64 from the batch norm's input `x`. libtorch's CPU kernel sums a channel's
/// values in f32 (about 100,000 of them in the first blocks), so its batch mean can be off
/// by up to `count * f32::EPSILON * max |x|` (naive summation's bound; seen in PyTorch 2.11:
/// a relative 1e-3 on channels whose values sit near 11, in either memory format), its
/// variance by that of a sum of squares, `max x^2` in place of `max |x|` (a kernel may
/// compute it as `E[x^2] - E[x]^2`). Those errors then travel: the run trains in
/// channels-last on the CPU, where the kernel sums in another order, so every training-mode
/// batch norm normalises with slightly other statistics than the probe's (measured: the
/// stem's batch norm output differs by 1e-4 of its largest value, block 2's activations by
/// 1e-2, with the stem convolution's output equal bit for bit), and a channel's input
/// differs by up to 2e-2 of its largest value (allowed per channel, of `max |x|` or
/// `max x^2`). Each channel is checked to those bounds, and the momentum
/// itself, fitted by least squares over
/// the channels, must be MOMENTUM to 2 % (another momentum, or statistics taken from another
/// tensor, are far off). Returns whether the update is large enough for that to tell (a
/// batch whose statistics are already the running ones does not).
fn assert_running(what: &str, before: &Tensor, after: &Tensor, batch: &[f64], x: &Tensor) -> bool {
    let (b, a) = (f64s(before), f64s(after));
    assert_eq!(b.len(), batch.len(), "{what}: channels");
    let s = x.size();
    let count = (s[0] * s[2] * s[3]) as f64;
    let x = x.to_kind(Kind::Double);
    let max_abs = if what.contains("running_var") {
        f64s(&x.square().amax([0, 2, 3], false))
    } else {
        f64s(&x.abs().amax([0, 2, 3], false))
    };
    let scale = a.iter().map(|x| x.abs()).fold(0.0, f64::max);
    let (mut update, mut num, mut den) = (0f64, 0f64, 0f64);
    for c in 0..b.len() {
        let want = (1.0 - MOMENTUM) * b[c] + MOMENTUM * batch[c];
        let kernel = (count * f32::EPSILON as f64 + 2e-2) * max_abs[c];
        let bound = 1e-3 * (want - b[c]).abs() + MOMENTUM * kernel + 1e-6 * scale;
        let err = (a[c] - want).abs();
        assert!(
            err <= bound,
            "{what}, channel {c}: off by {err:.3e} (bound {bound:.3e})"
        );
        update = update.max((want - b[c]).abs());
        num += (a[c] - b[c]) * (batch[c] - b[c]);
        den += (batch[c] - b[c]).powi(2);
    }
    let telling = update > 1e-3 * scale;
    if telling {
        let fitted = num / den;
        assert!(
            (fitted / MOMENTUM - 1.0).abs() <= 0.02,
            "{what}: moved by a momentum of {fitted:.5}, not {MOMENTUM}"
        );
    }
    telling
}

/// The timeline's snapshot `i` (the weights that change, after epoch i) as a map.
fn snap(out: &Outcome, i: usize) -> BTreeMap<String, Tensor> {
    out.timeline.snapshots[i]
        .1
        .iter()
        .map(|(k, t)| (k.clone(), t.shallow_clone()))
        .collect()
}

/// The losses of the recorded epochs and what the test measures before and after.
fn assert_loss_falls(out: &mut Outcome, from: Option<&str>) {
    let recorded: Vec<f64> = out
        .summary
        .epochs
        .iter()
        .skip(1)
        .map(|e| e.train_loss.unwrap())
        .collect();
    assert_eq!(recorded.len(), EPOCHS);
    assert!(recorded.iter().all(|l| l.is_finite() && *l > 0.0), "{recorded:?}");
    assert_eq!(out.timeline.epochs(), (0..=EPOCHS).collect::<Vec<_>>());
    let (x, labels) = batch(&out.model);
    let after = train_loss(&out.model, &x, &labels, from);
    let last = out.timeline.snapshots.len() - 1;
    out.timeline.restore(&out.model, 0).unwrap();
    let before = train_loss(&out.model, &x, &labels, from);
    out.timeline.restore(&out.model, last).unwrap();
    eprintln!("{from:?}: recorded training loss {recorded:?}; measured {before:.4} -> {after:.4}");
    assert!(
        after < 0.9 * before,
        "the loss on the training batch: {before} -> {after}"
    );
    // What the run recorded agrees (each epoch's loss is measured during its step, before it).
    assert!(
        recorded[EPOCHS - 1] < 0.9 * recorded[0],
        "the recorded training loss: {recorded:?}"
    );
}

#[test]
fn from_a_middle_layer_trains_from_there_and_leaves_the_layers_before_bit_for_bit() {
    let t0 = std::time::Instant::now();
    let from = "_blocks.10";
    let (base, mut out) = tune(&config(Scope::From(from.into())));
    assert_eq!(out.summary.mode, "from _blocks.10");
    assert_eq!(out.model.metadata["glassbox.train.mode"], "from _blocks.10");
    assert_eq!(out.summary.plan.train_images, 8);
    assert_eq!(out.summary.plan.steps_per_epoch, 1);
    let (b, a) = (variables(&base), variables(&out.model));
    assert_eq!(
        b.keys().collect::<Vec<_>>(),
        a.keys().collect::<Vec<_>>(),
        "the same weights"
    );
    let (mut frozen, mut frozen_stats, mut trained) = (0, 0, 0);
    for (name, old) in &b {
        let new = &a[name];
        if position(name) < 10 {
            assert!(new.equal(old), "{name} is before {from}: not bit for bit the base's");
            frozen += 1;
            frozen_stats += is_stat(name) as usize;
        } else if name.starts_with("_fc.") {
            // The new classifier (two classes): moved from its start.
            assert_eq!(new.size()[0], 2, "{name}");
            assert!(!new.equal(&snap(&out, 0)[name]), "{name} did not train");
        } else {
            assert!(!new.equal(old), "{name} is at or after {from}: it should have trained");
            trained += 1;
        }
    }
    eprintln!("{frozen} tensors before {from} ({frozen_stats} batch-norm statistics), {trained} trained");
    // The stem, blocks 0 to 9: 4 tensors per batch norm, 2 of them statistics.
    assert!(
        frozen > 100 && frozen_stats > 40,
        "{frozen} frozen, {frozen_stats} statistics"
    );
    assert!(trained > 50, "{trained}");
    // The snapshots hold what changes: nothing before the layer.
    assert!(snap(&out, 0).keys().all(|k| position(k) >= 10));
    for (k, t) in snap(&out, 0) {
        if !k.starts_with("_fc.") {
            assert!(t.equal(&b[&k]), "{k}: the run started from the base");
        }
    }

    // The first batch norm of the layer, exactly, step by step: its input is the expansion
    // convolution of the frozen features (the same in inference), with the weights of the
    // step.
    let (x, _) = batch(&out.model);
    for step in 0..EPOCHS {
        out.timeline.restore(&out.model, step).unwrap();
        let (_, traced) = out.model.trace(&x);
        let input = &traced
            .iter()
            .find(|t| t.name == "_blocks.10._expand_conv")
            .unwrap()
            .output;
        let (mean, var) = batch_stats(input);
        let (s0, s1) = (snap(&out, step), snap(&out, step + 1));
        for (stat, batch) in [("running_mean", &mean), ("running_var", &var)] {
            let k = format!("_blocks.10._bn0.{stat}");
            let what = format!("{k}, step {}", step + 1);
            let telling = assert_running(&what, &s0[&k], &s1[&k], batch, input);
            assert!(telling, "{k}: the batch agrees with the statistics already");
        }
    }
    out.timeline.restore(&out.model, EPOCHS).unwrap();

    assert_loss_falls(&mut out, Some(from));
    eprintln!("from {from}: {:.1} s", t0.elapsed().as_secs_f64());
}

#[test]
fn the_whole_network_trains_every_weight_and_batch_norm_by_its_momentum() {
    let t0 = std::time::Instant::now();
    let (base, mut out) = tune(&config(Scope::Full));
    assert_eq!(out.summary.mode, "full");
    let (b, a) = (variables(&base), variables(&out.model));
    assert_eq!(b.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>());
    for (name, old) in &b {
        if name.starts_with("_fc.") {
            assert!(!a[name].equal(&snap(&out, 0)[name]), "{name} did not train");
        } else {
            assert!(!a[name].equal(old), "{name} did not change");
        }
    }
    assert_eq!(snap(&out, 0).len(), b.len(), "every weight is in the timeline");

    // Every batch norm's statistics after the first step, from the batch statistics of its
    // input (the convolution before it) in a training forward of the starting weights.
    let probe = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let (x, _) = batch(&probe);
    let mut inputs: Vec<(String, Tensor)> = Vec::new();
    let mut prev: Option<Tensor> = None;
    let _ = tch::no_grad(|| {
        probe.forward_hooked(&x, true, &mut |name, _, t| {
            let leaf = name.rsplit('.').next().unwrap();
            if leaf.starts_with("_bn") {
                inputs.push((name.to_string(), prev.take().unwrap()));
            }
            prev = Some(t.shallow_clone());
            t
        })
    });
    let bns = b.keys().filter(|k| k.ends_with(".running_mean")).count();
    assert_eq!(inputs.len(), bns, "every batch norm's input");
    let (s0, s1) = (snap(&out, 0), snap(&out, 1));
    let mut telling_means = 0;
    for (bn, input) in &inputs {
        let (mean, var) = batch_stats(input);
        for (stat, batch) in [("running_mean", &mean), ("running_var", &var)] {
            let k = format!("{bn}.{stat}");
            assert!(s0[&k].equal(&b[&k]), "{k}: the run starts from the base");
            let telling = assert_running(&k, &s0[&k], &s1[&k], batch, input);
            if stat == "running_var" {
                assert!(telling, "{k}: the batch agrees with the statistics already");
            } else {
                telling_means += telling as usize;
            }
        }
    }
    // (After a convolution of batch-normalised features a running mean is often the batch
    // mean already, near 0; every variance moves.)
    eprintln!("{bns} batch norms; {telling_means} running means moved by more than 0.1 %");
    assert!(telling_means > 0);

    assert_loss_falls(&mut out, None);
    eprintln!("full: {:.1} s", t0.elapsed().as_secs_f64());
}
