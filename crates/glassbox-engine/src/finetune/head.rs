//! The classifier: features, logits from features, imprinting new classes, a model with a
//! new head.

use tch::{Device, Kind, Tensor};

use crate::arch::Arch;
use crate::error::{Error, Result};
use crate::model::{meta, Model, ModelSource};
use crate::weights::Weights;

/// The name of the classifier layer (its weight key without `.weight`).
pub fn classifier_layer(arch: Arch) -> &'static str {
    arch.classifier_key().trim_end_matches(".weight")
}

/// The key of the classifier's bias.
pub fn bias_key(arch: Arch) -> String {
    format!("{}.bias", classifier_layer(arch))
}

/// A u8 batch normalised by the model's preprocessing, on its device.
pub fn normalise(model: &Model, x: &Tensor) -> Tensor {
    let p = &model.preprocess;
    let c = p.channels();
    let dev = model.device();
    let mean = Tensor::from_slice(&p.mean)
        .to_kind(Kind::Float)
        .view([1, c, 1, 1])
        .to_device(dev);
    let std = Tensor::from_slice(&p.std)
        .to_kind(Kind::Float)
        .view([1, c, 1, 1])
        .to_device(dev);
    (x.to_device(dev).to_kind(Kind::Float) - mean) / std
}

/// The classifier's input for a normalised batch (its features), without gradients.
pub fn features(model: &Model, x: &Tensor) -> Result<Tensor> {
    let cls = classifier_layer(model.spec.arch);
    let mut prev: Option<Tensor> = None;
    let mut feats: Option<Tensor> = None;
    let _logits = tch::no_grad(|| {
        model.forward_hooked(x, false, &mut |name, _, t| {
            if name == cls {
                feats = prev.take();
            } else {
                prev = Some(t.shallow_clone());
            }
            t
        })
    });
    feats
        .map(|f| f.flatten(1, -1))
        .ok_or_else(|| Error::invalid(format!("the model has no `{cls}` layer to take features for")))
}

/// The model's classifier applied to features (the classifier's inputs, `features`).
pub fn head_logits(model: &Model, features: &Tensor) -> Tensor {
    let vars = model.vs.variables();
    let arch = model.spec.arch;
    let w = &vars[arch.classifier_key()];
    features.to_device(w.device()).matmul(&w.tr()) + &vars[&bias_key(arch)]
}

/// Features of u8 images in batches; `tick(done)` after each batch, false stops.
/// Logits of u8 images, in batches, without gradients.
pub(super) fn logits_of(model: &Model, images: &Tensor) -> Tensor {
    let n = images.size()[0];
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let len = 64.min(n - i);
        out.push(model.logits(&normalise(model, &images.narrow(0, i, len))));
        i += len;
    }
    Tensor::cat(&out, 0)
}

pub fn features_of(model: &Model, images: &Tensor, tick: &mut dyn FnMut(usize) -> bool) -> Result<Tensor> {
    let n = images.size()[0];
    let mut out = vec![Tensor::zeros(
        [0, model.spec.arch.features()],
        (Kind::Float, model.device()),
    )];
    let mut i = 0;
    while i < n {
        let len = 32.min(n - i);
        out.push(features(model, &normalise(model, &images.narrow(0, i, len)))?);
        i += len;
        if !tick(i as usize) {
            return Err(Error::Cancelled);
        }
    }
    Ok(Tensor::cat(&out, 0))
}

/// How far (in logits) every training image of the new classes lands above the best old
/// class, by the shared part of the new rows alone.
pub const IMPRINT_MARGIN: f64 = 4.0;

/// Shrinkage of the new classes' within-class covariance toward a multiple of the identity
/// (a few images per class in hundreds of feature dimensions).
pub const IMPRINT_SHRINKAGE: f64 = 0.5;

/// The mean norm of the rows' discriminative parts, relative to the old rows' mean norm.
pub const IMPRINT_DISCRIMINATIVE: f64 = 0.5;

/// Weight imprinting (Qi et al. 2018) calibrated for a linear classifier with a bias, for
/// several new classes at once (`classes[j]`: the features of class j's images). Each new row
/// is the sum of two parts:
/// - shared by all new classes, "this is one of the new things": the normalised mean of all
///   their images' normalised features, scaled to the old rows' mean norm (`w_g`), with a
///   bias that puts every training image [`IMPRINT_MARGIN`] above the best old class:
///   `b_g = max_i(max_k(w_k.f_i + b_k) - w_g.f_i) + margin`;
/// - centred across the new classes, "which of them": linear discriminant analysis,
///   `v_j = S^-1 (mu_j - mu)` with `S` the within-class covariance shrunk by
///   [`IMPRINT_SHRINKAGE`], its bias `-v_j.mu - v_j.(mu_j - mu) / 2`, the `v_j` scaled to a
///   mean norm of [`IMPRINT_DISCRIMINATIVE`] times the old rows'.
///
/// The `v_j` sum to zero, so the new rows' mean is `w_g`; with one new class there is only
/// `w_g`. Which new class wins depends on the `v_j` alone; whether a new class beats the old
/// ones depends mostly on `w_g`, which is far from an ordinary photo's features (measured in
/// BENCHMARKS.md: 86 % of ten digits right from 20 each against 69 % for the plain imprint
/// with the old biases' mean, every photo keeping its class).
pub fn imprint(classes: &[Tensor], old_w: &Tensor, old_b: &Tensor) -> (Tensor, Tensor) {
    let dk = Kind::Double;
    let dev = old_w.device();
    let fs: Vec<Tensor> = classes.iter().map(|f| f.to_device(dev).to_kind(dk)).collect();
    let all = Tensor::cat(&fs, 0);
    let (ow, ob) = (old_w.to_kind(dk), old_b.to_kind(dk));
    let scale = ow.norm_scalaropt_dim(2, [1], false).mean(dk);
    let unit = &all / all.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let g = unit.mean_dim([0i64].as_slice(), false, dk);
    let wg = &g / g.norm().clamp_min(1e-12) * &scale;
    let k = fs.len() as i64;
    let d = all.size()[1];
    let means = Tensor::stack(
        &fs.iter()
            .map(|f| f.mean_dim([0i64].as_slice(), false, dk))
            .collect::<Vec<_>>(),
        0,
    );
    let (v, beta) = if k > 1 {
        let mu = means.mean_dim([0i64].as_slice(), true, dk);
        let centred = Tensor::cat(
            &fs.iter()
                .enumerate()
                .map(|(j, f)| f - means.get(j as i64))
                .collect::<Vec<_>>(),
            0,
        );
        let n = centred.size()[0] as f64;
        let s = centred.tr().matmul(&centred) / n;
        let a = IMPRINT_SHRINKAGE;
        let ridge = (s.trace().double_value(&[]) / d as f64).max(1e-12) * a;
        let sigma = s * (1.0 - a) + Tensor::eye(d, (dk, dev)) * ridge;
        let diff = &means - &mu;
        let v = Tensor::linalg_solve(&sigma, &diff.tr(), true).tr();
        let v = &v / v.norm_scalaropt_dim(2, [1], false).mean(dk).clamp_min(1e-12) * (&scale * IMPRINT_DISCRIMINATIVE);
        let beta = -v.matmul(&mu.squeeze_dim(0)) - (&v * &diff).sum_dim_intlist([1i64].as_slice(), false, dk) * 0.5;
        (v, beta)
    } else {
        (Tensor::zeros([1, d], (dk, dev)), Tensor::zeros([1], (dk, dev)))
    };
    let best_old = (all.matmul(&ow.tr()) + &ob).amax([1i64].as_slice(), false);
    let bg = (best_old - all.matmul(&wg)).max() + IMPRINT_MARGIN;
    let w = wg.unsqueeze(0) + v;
    let b = beta + bg;
    (w.to_kind(Kind::Float), b.to_kind(Kind::Float))
}

/// A model like `base` with classifier `w`, `b` and these labels (checked and measured as
/// any opened model is).
pub(super) fn with_head(base: &Model, labels: Vec<String>, w: &Tensor, b: &Tensor) -> Result<Model> {
    let arch = base.spec.arch;
    let (wk, bk) = (arch.classifier_key(), bias_key(arch));
    let tensors = tch::no_grad(|| {
        base.vs
            .variables()
            .into_iter()
            .map(|(n, t)| {
                let t = if n == wk {
                    w.shallow_clone()
                } else if n == bk {
                    b.shallow_clone()
                } else {
                    t.copy()
                };
                (n, t.to_device(Device::Cpu))
            })
            .collect::<Vec<_>>()
    });
    let mut metadata = base.metadata.clone();
    metadata.insert(
        meta::LABELS.into(),
        serde_json::to_string(&labels).expect("labels serialise"),
    );
    metadata.insert(
        meta::PREPROCESS.into(),
        serde_json::to_string(&base.preprocess).expect("preprocessing serialises"),
    );
    metadata.remove(meta::KNOCKOUTS);
    let mut m = Model::from_weights(Weights { tensors, metadata }, Some(arch), base.device(), None)?;
    m.knockouts = base
        .knockouts
        .iter()
        .filter(|(l, c)| crate::model::check_channel(&m, l, *c).is_ok())
        .cloned()
        .collect();
    m.source = ModelSource::Created(format!("{} retrained", base.source.short_name()));
    Ok(m)
}

/// A new classifier as PyTorch's `nn.Linear` initialises one (uniform in ±1/sqrt(inputs)).
pub(super) fn fresh_head(classes: i64, inputs: i64) -> (Tensor, Tensor) {
    let bound = 1.0 / (inputs as f64).sqrt();
    let u = |shape: &[i64]| Tensor::rand(shape, (Kind::Float, Device::Cpu)) * (2.0 * bound) - bound;
    (u(&[classes, inputs]), u(&[classes]))
}

/// The head functions: normalising a u8 batch, features in batches, a model with a new
/// classifier, a fresh classifier's range.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_u8_batch_is_normalised_per_channel_by_the_models_preprocessing() {
        let mut m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        let x = Tensor::from_slice(&[0u8, 255, 127, 200]).view([1, 1, 2, 2]);
        let n = Vec::<f32>::try_from(&normalise(&m, &x).view([-1])).unwrap();
        assert_eq!(n, [-1.0, 1.0, -0.5 / 127.5, 72.5 / 127.5]);
        m.preprocess.mean = vec![100.0];
        m.preprocess.std = vec![4.0];
        assert_eq!(normalise(&m, &x).double_value(&[0, 0, 0, 1]), (255.0 - 100.0) / 4.0);
        let mut m = Model::new_random(Arch::EfficientNetLite(0), 10, 3, Device::Cpu);
        m.preprocess.mean = vec![10.0, 20.0, 30.0];
        m.preprocess.std = vec![1.0, 2.0, 5.0];
        let x = Tensor::full([2, 3, 1, 1], 50, (Kind::Uint8, Device::Cpu));
        let n = normalise(&m, &x);
        assert_eq!(n.size(), [2, 3, 1, 1]);
        assert_eq!(Vec::<f32>::try_from(&n.get(1).view([-1])).unwrap(), [40.0, 15.0, 4.0]);
    }

    #[test]
    fn features_come_in_batches_of_32_and_equal_one_pass() {
        tch::manual_seed(2);
        let m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        let images = Tensor::randint(256, [40, 1, 28, 28], (Kind::Uint8, Device::Cpu));
        let mut ticks = Vec::new();
        let f = features_of(&m, &images, &mut |done| {
            ticks.push(done);
            true
        })
        .unwrap();
        assert_eq!(ticks, [32, 40]);
        assert_eq!(f.size(), [40, 128]);
        let whole = features(&m, &normalise(&m, &images)).unwrap();
        assert!(f.allclose(&whole, 1e-5, 1e-6, false));
        assert!(whole.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        let none = features_of(&m, &images.narrow(0, 0, 0), &mut |_| true).unwrap();
        assert_eq!(none.size(), [0, 128]);
        assert!(matches!(
            features_of(&m, &images, &mut |_| false),
            Err(Error::Cancelled)
        ));
        // Features times the head are the logits of the normalised batch.
        let logits = head_logits(&m, &whole);
        assert!(logits.allclose(&m.logits(&normalise(&m, &images)), 1e-4, 1e-4, false));
    }

    #[test]
    fn a_model_with_a_new_head_keeps_the_rest_and_the_knockouts_that_still_exist() {
        let mut base = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        base.knockouts.insert(("relu1".into(), 3));
        base.knockouts.insert(("fc2".into(), 9));
        let (w, b) = fresh_head(12, 128);
        let labels: Vec<String> = (0..12).map(|i| format!("class {i}")).collect();
        let m = with_head(&base, labels.clone(), &w, &b).unwrap();
        assert_eq!((m.spec.classes, m.labels.clone()), (12, labels));
        let (old, new) = (base.vs.variables(), m.vs.variables());
        assert!(new["fc2.weight"].equal(&w) && new["fc2.bias"].equal(&b));
        for (k, v) in &old {
            if !k.starts_with("fc2.") {
                assert!(new[k].equal(v), "{k}");
            }
        }
        let mut kept: Vec<_> = m.knockouts.iter().cloned().collect();
        kept.sort();
        assert_eq!(kept, [("fc2".to_string(), 9), ("relu1".to_string(), 3)]);
        let fewer = with_head(
            &base,
            vec!["a".into(), "b".into()],
            &w.narrow(0, 0, 2),
            &b.narrow(0, 0, 2),
        )
        .unwrap();
        assert_eq!(
            fewer.knockouts.iter().cloned().collect::<Vec<_>>(),
            [("relu1".to_string(), 3)]
        );
        assert_eq!(m.source.to_string(), format!("{} retrained", base.source.short_name()));
        assert_eq!(m.preprocess, base.preprocess);
    }

    #[test]
    fn a_fresh_head_is_uniform_in_one_over_the_root_of_its_inputs() {
        let (w, b) = fresh_head(10, 400);
        assert_eq!((w.size(), b.size()), (vec![10, 400], vec![10]));
        let (lo, hi) = (w.min().double_value(&[]), w.max().double_value(&[]));
        assert!(lo >= -0.05 && hi <= 0.05, "{lo} {hi}");
        assert!(lo < -0.045 && hi > 0.045, "the whole range is used: {lo} {hi}");
        assert!(w.mean(Kind::Float).double_value(&[]).abs() < 0.005);
        assert!(b.abs().max().double_value(&[]) <= 0.05);
        assert!(b.std(true).double_value(&[]) > 0.01);
    }
}
