//! Layer-wise relevance propagation (part of the `attributions` test binary): equal to
//! Zennit 0.5.1 on torchvision ResNet-18 and VGG-16 with synthetic weights (tests/refs/
//! lrp.safetensors, made by scripts/lrp_refs.py); on EfficientNet-Lite0 and MobileNetV2,
//! which Zennit has no canonizer for, the merged batch norms keep the logits and relevance
//! is conserved.

use super::common::*;
use glassbox_engine::arch::Arch;
use glassbox_engine::explain::{explain, Method, Params};
use glassbox_engine::lrp::{Composite, Pass};
use glassbox_engine::model::Model;
use glassbox_engine::weights;
use tch::{Device, Kind, Tensor};

const LRP: [Method; 3] = [
    Method::LrpEpsilonPlusFlat,
    Method::LrpEpsilonGammaBox,
    Method::LrpAlpha2Beta1,
];

fn relevance(model: &Model, x: &Tensor, method: Method, target: Option<i64>) -> (Tensor, i64) {
    let p = Params {
        target,
        ..Params::default()
    };
    let e = explain(model, x, method, &p, &mut |_| true).unwrap();
    (e.attribution, e.target)
}

fn against_zennit(name: &str, model: &Model) {
    let r = weights::load(&asset("tests/refs/lrp.safetensors")).unwrap();
    for photo in ["chelsea", "coffee"] {
        let x = r.get(&format!("input.{photo}")).unwrap().to_kind(Kind::Float);
        let target = r.get(&format!("{name}.{photo}.target")).unwrap().double_value(&[0]) as i64;
        for m in LRP {
            let key = format!("{name}.{photo}.{m}");
            let (a, t) = relevance(model, &x, m, None);
            assert_eq!(t, target, "{key}: the top class");
            let heat = |t: &Tensor| {
                t.to_kind(Kind::Float)
                    .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
            };
            let want_heat = match r.get(&format!("{key}.full")) {
                Some(full) => heat(full),
                None => r.get(&key).unwrap().shallow_clone(),
            };
            let c = pearson(&heat(&a), &want_heat);
            let (sum, want) = (
                a.sum(Kind::Double).double_value(&[]),
                r.get(&format!("{key}.sum")).unwrap().double_value(&[0]),
            );
            eprintln!("{key}: Pearson {c:.6}, relevance {sum:.5} (Zennit {want:.5})");
            assert!(c >= 0.999, "{key}: Pearson {c}");
            assert!(
                (sum - want).abs() <= 1e-3 * want.abs().max(1.0),
                "{key}: sum {sum} against {want}"
            );
            if photo == "chelsea" {
                let c = pearson(&a, r.get(&format!("{key}.full")).unwrap());
                assert!(c >= 0.999, "{key}, every colour channel: Pearson {c}");
            }
        }
    }
}

#[test]
fn lrp_equals_zennit_on_resnet18() {
    against_zennit("resnet18", &synthetic_arch(Arch::ResNet(18)));
}

#[test]
fn lrp_equals_zennit_on_vgg16() {
    against_zennit("vgg16", &synthetic_arch(Arch::Vgg(16)));
}

/// Lite0 (its real weights), MobileNetV2 and ResNet-18 (synthetic), on a photo: the batch
/// norms merged into their convolutions give the same logits, and the relevance at the input
/// adds up to what the output was given (1), less what the biases keep.
#[test]
fn lrp_on_mobile_networks_merges_batch_norm_and_conserves_relevance() {
    let lite0 = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let mobilenet = synthetic_arch(Arch::MobileNetV2);
    let resnet = synthetic_arch(Arch::ResNet(18));
    for (name, model) in [
        ("efficientnet-lite0", &lite0),
        ("mobilenet_v2", &mobilenet),
        ("resnet18", &resnet),
    ] {
        let x = model
            .preprocess
            .prepare_file(&asset("assets/samples/chelsea.png"))
            .unwrap()
            .tensor;
        let plain = model.logits(&x);
        let mut pass = Pass::new(Composite::EpsilonPlusFlat);
        pass.canonized = true;
        let merged = tch::no_grad(|| model.forward_lrp(&x, &mut pass));
        let diff = (&merged - &plain).abs().max().double_value(&[]);
        eprintln!("{name}: merged batch norm, logits off by {diff:.2e}");
        assert!(
            diff <= 1e-4 * plain.abs().max().double_value(&[]).max(1.0),
            "{name}: {diff}"
        );
        for m in LRP {
            let (a, t) = relevance(model, &x, m, None);
            // The same map with the ledger kept: the relevance at the input, and what each
            // layer's biases and stabilisers kept, add up to the 1 the target was given.
            let mut pass = Pass::new(m.composite().unwrap());
            pass.account = true;
            let logits = model.forward_lrp(&x, &mut pass);
            let (r, l) = pass.ledger(&logits.select(1, t).sum(Kind::Float)).unwrap();
            assert!(
                r.allclose(&a, 1e-5, 1e-9, false),
                "{name} {m}: the ledger's map is the method's"
            );
            let total = l.input + l.kept + l.kept_first;
            eprintln!(
                "{name} {m}: at the input {:.4}, kept by biases {:.4} (first layer {:.4}); in all {total:.5}",
                l.input, l.kept, l.kept_first
            );
            assert!(
                (total - 1.0).abs() <= 1e-3,
                "{name} {m}: relevance not conserved: {l:?}"
            );
            if m == Method::LrpEpsilonPlusFlat {
                // Flat keeps nothing: the first layer's output relevance all reaches the input.
                assert!(
                    (l.input - l.first_output).abs() <= 1e-3 * l.first_output.abs().max(1e-6),
                    "{l:?}"
                );
            }
        }
    }
}
