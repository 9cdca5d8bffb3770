//! Every attribution method against Captum 0.9 / pytorch-grad-cam 1.5.7 on the same weights
//! and the same input (tests/refs/attributions-*.safetensors, made by scripts/attribution_refs.py).
mod common;
mod lrp;
mod road;

use common::*;
use glassbox_engine::explain::{explain, Method, Params};
use glassbox_engine::model::Model;
use glassbox_engine::weights::{self, Weights};
use tch::{Device, Kind, Tensor};

fn refs(name: &str) -> Weights {
    weights::load(&asset(&format!("tests/refs/attributions-{name}.safetensors"))).unwrap()
}

fn ours(model: &Model, r: &Weights, method: Method, p: Params) -> glassbox_engine::explain::Explanation {
    let input = r.get("input").unwrap();
    let e = explain(model, input, method, &p, &mut |_| true).unwrap();
    let target = r.get("target").unwrap().double_value(&[0]) as i64;
    assert_eq!(e.target, target, "{method}: top-1 class");
    e
}

fn check(model: &Model, r: &Weights, method: Method, key: &str, min_r: f64) -> f64 {
    let e = ours(model, r, method, Params::default());
    let want = r.get(key).unwrap();
    assert_eq!(e.attribution.size(), want.size(), "{method}: shape");
    let c = pearson(&e.attribution, want);
    eprintln!("{method}: Pearson {c:.5}");
    assert!(c >= min_r, "{method}: Pearson {c} < {min_r}");
    c
}

fn deterministic(model: &Model, name: &str, guided: bool) {
    let r = refs(name);
    let logits = model.logits(r.get("input").unwrap());
    assert!(
        logits.allclose(r.get("logits").unwrap(), 1e-3, 1e-3, false),
        "{name}: logits differ from PyTorch"
    );
    check(model, &r, Method::Gradient, "gradient", 0.99);
    check(model, &r, Method::InputXGradient, "input_x_gradient", 0.99);
    check(model, &r, Method::IntegratedGradients, "integrated_gradients", 0.99);
    check(model, &r, Method::GradCam, "grad_cam", 0.99);
    check(model, &r, Method::GradCamPlusPlus, "grad_cam_pp", 0.99);
    check(model, &r, Method::ScoreCam, "score_cam", 0.99);
    check(model, &r, Method::Occlusion, "occlusion", 0.99);
    if guided {
        check(model, &r, Method::GuidedBackprop, "guided_backprop", 0.99);
        check(model, &r, Method::GuidedGradCam, "guided_grad_cam", 0.99);
    }
}

#[test]
fn embedded_efficientnet_lite0_matches_captum_and_grad_cam() {
    let m = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    deterministic(&m, "efficientnet-lite0", true);
}

#[test]
fn torchvision_resnet18_matches_captum_and_grad_cam() {
    deterministic(&synthetic_resnet18(), "resnet18", true);
}

#[test]
fn integrated_gradients_completeness_error_is_reported_and_shrinks_with_steps() {
    let m = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let r = refs("efficientnet-lite0");
    let e32 = ours(&m, &r, Method::IntegratedGradients, Params::default());
    let captum32 = r.get("ig_delta").unwrap().double_value(&[0]);
    let err32 = e32.completeness_error.unwrap();
    // Captum reports the same convergence delta for the same rule and steps.
    assert!(
        (err32 - captum32).abs() < 0.05 * captum32.abs().max(0.1),
        "ours {err32}, Captum {captum32}"
    );
    let e128 = ours(
        &m,
        &r,
        Method::IntegratedGradients,
        Params {
            steps: 128,
            ..Params::default()
        },
    );
    let err128 = e128.completeness_error.unwrap();
    let captum128 = r.get("ig128_delta").unwrap().double_value(&[0]);
    assert!((err128 - captum128).abs() < 0.05, "ours {err128}, Captum {captum128}");
    let gap = r.get("logits").unwrap().double_value(&[0, e128.target]);
    assert!(
        err128.abs() < 0.05 * gap.abs(),
        "128 steps: error {err128} vs logit {gap}"
    );
    assert_eq!(e128.metadata["steps"], "128");
}

#[test]
fn smoothgrad_is_statistically_close_to_captum() {
    // Different noise draws: compare the |.|-reduced maps of 64 samples each.
    let m = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let r = refs("efficientnet-lite0");
    let e = ours(
        &m,
        &r,
        Method::SmoothGrad,
        Params {
            samples: 64,
            ..Params::default()
        },
    );
    // Independent noise draws differ pixel by pixel; where the map is strong agrees:
    // compare the |.|-reduced maps averaged over 16x16 blocks, and their overall scale.
    let reduce = |t: &Tensor| {
        let m = t.to_kind(Kind::Float).abs().amax([1i64].as_slice(), true);
        m.avg_pool2d([16, 16], [16, 16], [0, 0], false, true, None::<i64>)
    };
    let (a, b) = (reduce(&e.attribution), reduce(r.get("smoothgrad").unwrap()));
    let c = pearson(&a, &b);
    eprintln!("smoothgrad: pooled Pearson {c:.4}");
    assert!(c > 0.9, "SmoothGrad pooled Pearson {c}");
    let ratio = e.attribution.abs().mean(Kind::Float).double_value(&[])
        / (r.get("smoothgrad")
            .unwrap()
            .to_kind(Kind::Float)
            .abs()
            .mean(Kind::Float)
            .double_value(&[])
            * r.get("smoothgrad_scale").unwrap().double_value(&[0]));
    assert!((ratio - 1.0).abs() < 0.1, "mean |attribution| ours / Captum = {ratio}");
    // Seeded: the same seed gives the same map.
    let again = ours(
        &m,
        &r,
        Method::SmoothGrad,
        Params {
            samples: 64,
            ..Params::default()
        },
    );
    assert!(again.attribution.equal(&e.attribution));
}

#[test]
fn long_methods_show_early_maps_and_can_be_cancelled() {
    let m = Model::open("mnist", None, Device::Cpu).unwrap();
    let x = Tensor::zeros([1, 1, 28, 28], (Kind::Float, Device::Cpu));
    for method in [Method::SmoothGrad, Method::Occlusion, Method::ScoreCam] {
        let mut partials: Vec<Tensor> = Vec::new();
        let p = Params {
            samples: 8,
            ..Params::default()
        }
        .with_window_for(28);
        let e = explain(&m, &x, method, &p, &mut |pr| {
            assert!(pr.done <= pr.total);
            if let Some(t) = pr.partial {
                partials.push(t.to_device(Device::Cpu).copy());
            }
            true
        })
        .unwrap();
        let last = partials.last().unwrap_or_else(|| panic!("{method}: no early map"));
        assert_eq!(last.size(), e.attribution.size(), "{method}");
        assert!(
            last.allclose(&e.attribution, 1e-5, 1e-6, false),
            "{method}: the last early map is the result"
        );
        // Cancelling stops the method with a clear error.
        let err = explain(&m, &x, method, &p, &mut |_| false).err().unwrap().to_string();
        assert!(err.contains("cancelled"), "{method}: {err}");
    }
}

#[test]
fn one_backward_serves_gradient_input_x_gradient_and_the_cams() {
    use glassbox_engine::explain::explain_many;
    let m = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let x = refs("efficientnet-lite0").get("input").unwrap().shallow_clone();
    let methods = [
        Method::Gradient,
        Method::InputXGradient,
        Method::GradCam,
        Method::GradCamPlusPlus,
    ];
    let p = Params::default();
    let many = explain_many(&m, &x, &methods, &p, &mut |_| true);
    for (method, got) in methods.iter().zip(many) {
        let got = got.unwrap();
        let alone = explain(&m, &x, *method, &p, &mut |_| true).unwrap();
        assert_eq!(got.method, *method);
        assert_eq!(got.target, alone.target);
        assert!(
            got.attribution.allclose(&alone.attribution, 1e-5, 1e-6, false),
            "{method}"
        );
    }
}

#[test]
fn nan_in_the_model_is_reported_not_drawn() {
    let m = Model::open("mnist", None, Device::Cpu).unwrap();
    tch::no_grad(|| {
        let mut w = m.vs.variables()["fc2.bias"].shallow_clone();
        let _ = w.fill_(f64::NAN);
    });
    let x = Tensor::zeros([1, 1, 28, 28], (Kind::Float, Device::Cpu));
    let e = explain(&m, &x, Method::Gradient, &Params::default(), &mut |_| true)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("NaN or Inf") && e.contains("model output"), "{e}");
}
