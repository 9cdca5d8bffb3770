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

pub(super) fn bias_key(arch: Arch) -> String {
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

/// How far (in logits) an imprinted class is placed above the old classes' best logit on
/// its own images.
pub const IMPRINT_MARGIN: f64 = 1.0;

/// Weight imprinting (Qi et al. 2018), calibrated for a linear classifier with a bias (the
/// paper's classifier is normalised; pretrained ones are not). The new class's weight is the
/// normalised mean of its images' normalised features (the paper's), scaled to the mean
/// norm of the old classes' weights; its bias puts its logit, on average over its own
/// images, [`IMPRINT_MARGIN`] above the best old class's:
/// `b = mean_i(max_k(w_k.f_i + b_k) - w.f_i) + margin`.
pub fn imprint(features: &Tensor, old_w: &Tensor, old_b: &Tensor) -> (Tensor, Tensor) {
    let f = features.to_kind(Kind::Float);
    let unit = &f / f.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let mean = unit.mean_dim([0i64].as_slice(), false, Kind::Float);
    let dir = &mean / mean.norm().clamp_min(1e-12);
    let w = dir * old_w.norm_scalaropt_dim(2, [1], false).mean(Kind::Float);
    let best_old = (f.matmul(&old_w.tr()) + old_b).amax([1i64].as_slice(), false);
    let b = (best_old - f.matmul(&w)).mean(Kind::Float) + IMPRINT_MARGIN;
    (w, b)
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
