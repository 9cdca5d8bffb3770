//! The embedded model against PyTorch, and the importer against the registry weights.
mod common;

use common::*;
use glassbox::engine::model::Model;
use glassbox::engine::weights;
use tch::{Device, Kind};

#[test]
fn efficientnet_lite0_logits_equal_pytorch() {
    let refs = weights::load(&asset("tests/refs/efficientnet-lite0-logits.safetensors")).unwrap();
    let input = refs.get("input").unwrap();
    let expected = refs.get("logits").unwrap();
    assert_eq!(input.size(), [3, 3, 224, 224]);
    let m = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let got = m.logits(input);
    let diff = (&got - expected).abs().max().double_value(&[]);
    assert!(diff <= 1e-3, "max |logit difference| = {diff}");
    assert_eq!(
        got.argmax(-1, false).to_kind(Kind::Int64),
        expected.argmax(-1, false).to_kind(Kind::Int64)
    );
}

#[test]
fn sample_photos_are_a_cat_and_an_espresso() {
    let o = glassbox(&[
        "predict",
        "--json",
        "--top",
        "3",
        path_str(&asset("assets/samples/chelsea.png")),
        path_str(&asset("assets/samples/coffee.png")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    let top1 = |v: &serde_json::Value| v["top"][0]["index"].as_i64().unwrap();
    assert!(
        (281..=285).contains(&top1(&lines[0])),
        "chelsea top-1 {}",
        top1(&lines[0])
    );
    assert_eq!(top1(&lines[1]), 967, "coffee top-1");
    assert_eq!(lines[1]["top"][0]["label"], "espresso");
}

#[test]
fn default_asset_is_recreated_byte_for_byte_from_the_registry_weights() {
    let pth = asset("data/cache/lite0/efficientnet-lite0-57934424.pth");
    assert!(pth.exists(), "run `make setup` first: {} is missing", pth.display());
    let dir = tmp();
    let out = dir.path().join("lite0.safetensors");
    let o = glassbox(&["import", path_str(&pth), "--f16", "--out", path_str(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = std::fs::read_to_string(asset("assets/efficientnet-lite0.safetensors.sha256")).unwrap();
    let got = sha256(&std::fs::read(&out).unwrap());
    assert_eq!(want.split_whitespace().next().unwrap(), got);
}

#[test]
fn legacy_registry_weights_equal_the_embedded_ones_up_to_fp16() {
    let pth = weights::load(&asset("data/cache/lite0/efficientnet-lite0-57934424.pth")).unwrap();
    let emb = weights::load(&asset("assets/efficientnet-lite0.safetensors")).unwrap();
    let mut compared = 0;
    for (name, t) in &pth.tensors {
        if name.ends_with("num_batches_tracked") {
            continue;
        }
        let e = emb.get(name).unwrap_or_else(|| panic!("{name} missing from the asset"));
        assert_eq!(t.size(), e.size(), "{name}");
        let rel = ((t - e).abs().max().double_value(&[])) / (t.abs().max().double_value(&[]) + 1e-12);
        assert!(rel < 1e-3, "{name}: relative fp16 error {rel}");
        compared += 1;
    }
    assert_eq!(compared, 296 - 49);
}

fn sha256(bytes: &[u8]) -> String {
    // sha256sum from coreutils, to keep the crate free of a hashing dependency.
    use std::io::Write;
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}
