//! ROAD (part of the `attributions` test binary): equal to pytorch-grad-cam 1.5.7's
//! `ROADCombined` (noise off) on the same model, input and map (tests/refs/road.safetensors,
//! made by scripts/road_refs.py).

use super::common::*;
use glassbox_engine::model::Model;
use glassbox_engine::road::{road, PERCENTILES};
use glassbox_engine::weights;
use tch::{Device, Kind};

#[test]
fn road_equals_pytorch_grad_cam_with_the_noise_off() {
    let r = weights::load(&asset("tests/refs/road.safetensors")).unwrap();
    let input = weights::load(&asset("tests/refs/attributions-efficientnet-lite0.safetensors")).unwrap();
    let model = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let map = Vec::<f32>::try_from(r.get("map").unwrap().to_kind(Kind::Float).flatten(0, -1)).unwrap();
    assert_eq!(map.len(), 224 * 224);
    let target = r.get("target").unwrap().double_value(&[0]) as i64;
    let got = road(&model, input.get("input").unwrap(), &map, target, 0.0, 0).unwrap();
    let want = r.get("combined").unwrap().double_value(&[0]);
    eprintln!("ROAD combined {:.5} (pytorch-grad-cam {want:.5})", got.combined);
    assert!((got.combined - want).abs() <= 0.01, "{} against {want}", got.combined);
    for (i, p) in PERCENTILES.iter().enumerate() {
        let (m, l) = (
            r.get("most_first").unwrap().double_value(&[i as i64]),
            r.get("least_first").unwrap().double_value(&[i as i64]),
        );
        eprintln!(
            "p {p}: most first {:.4} ({m:.4}), least first {:.4} ({l:.4})",
            got.most_first[i], got.least_first[i]
        );
        assert!(
            (got.most_first[i] - m).abs() <= 0.01 && (got.least_first[i] - l).abs() <= 0.01,
            "p {p}"
        );
    }
    // With the imputer's noise (0.01), seeded: a score near the noiseless one.
    let noisy = road(&model, input.get("input").unwrap(), &map, target, 0.01, 7).unwrap();
    assert!((noisy.combined - want).abs() <= 0.02, "{}", noisy.combined);
}

#[test]
fn a_map_tied_at_its_lowest_values_is_scored() {
    // A CAM after its ReLU: most of the map is exactly 0. Removing the most relevant
    // pixels at percentile 10 keeps none (map < 0 nowhere): that image becomes its mean.
    let model = Model::open("mnist", None, Device::Cpu).unwrap();
    let input = tch::Tensor::rand([1, 1, 28, 28], (Kind::Float, Device::Cpu));
    let map: Vec<f32> = (0..28 * 28).map(|p| if p % 28 < 20 { 0.0 } else { 1.0 }).collect();
    let r = road(&model, &input, &map, 0, 0.01, 0).unwrap();
    assert!(r.combined.is_finite() && r.combined.abs() <= 0.5, "{r:?}");
}
