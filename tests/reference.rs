//! The embedded model against PyTorch, and the importer against the registry weights.
mod common;

use common::*;
use glassbox_engine::model::Model;
use glassbox_engine::weights;
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

/// The max and mean absolute difference, in [0, 1] pixel units, between the model's view of
/// each reference image and torchvision's (decode with EXIF orientation, shorter side to
/// 256 with antialiased bilinear, centre crop 224), made by scripts/preprocess_refs.py.
#[test]
fn preprocessing_equals_torchvision_on_photos_and_odd_images() {
    use glassbox_engine::preprocess::{load_image, Preprocess};
    let refs = weights::load(&asset("tests/refs/preprocess-torchvision.safetensors")).unwrap();
    let p = Preprocess::imagenet(224);
    let mut report = Vec::new();
    for (name, path) in [
        ("chelsea.png", "assets/samples/chelsea.png"),
        ("coffee.png", "assets/samples/coffee.png"),
        ("gray.png", "tests/refs/preprocess/gray.png"),
        ("rgba.png", "tests/refs/preprocess/rgba.png"),
        ("rgb16.png", "tests/refs/preprocess/rgb16.png"),
        ("exif-rotated.jpg", "tests/refs/preprocess/exif-rotated.jpg"),
        ("half-pixel-crop.png", "tests/refs/preprocess/half-pixel-crop.png"),
    ] {
        let want = refs.get(name).unwrap_or_else(|| panic!("no reference for {name}"));
        let view = p.view(&load_image(&asset(path)).unwrap()).to_rgb8();
        assert_eq!((view.width(), view.height()), (224, 224));
        let got = tch::Tensor::from_slice(view.as_raw())
            .view([224, 224, 3])
            .permute([2, 0, 1])
            .to_kind(Kind::Float)
            / 255.0;
        let diff = (&got - want.to_kind(Kind::Float)).abs();
        let (max, mean) = (diff.max().double_value(&[]), diff.mean(Kind::Float).double_value(&[]));
        report.push(format!("{name}: max {max:.4}, mean {mean:.5}"));
        // Measured: the same resampling (image's triangle filter is the antialiased
        // bilinear), so what differs is our rounding to 8 bits: max 0.0022, mean 0.00098
        // (a quarter level) on PNGs; JPEG decoders differ by a few levels (0.011 max). A
        // crop half a pixel off (0.33), a missed EXIF rotation or a wrong channel order
        // shows up as tenths.
        assert!(max < 0.02, "{name}: max |difference| {max:.4}");
        assert!(mean < 0.002, "{name}: mean |difference| {mean:.5}");
    }
    eprintln!("preprocessing vs torchvision, [0, 1] units:\n  {}", report.join("\n  "));
}

/// Edited weights and a knocked-out channel give PyTorch's logits for the same edits on the
/// reference architecture (scripts/edit_refs.py: the knock-out as a forward hook).
#[test]
fn edited_lite0_logits_equal_pytorch_with_the_same_edits() {
    use glassbox_engine::edit::{Editor, Op};
    let inputs = weights::load(&asset("tests/refs/efficientnet-lite0-logits.safetensors")).unwrap();
    let refs = weights::load(&asset("tests/refs/edited-lite0-logits.safetensors")).unwrap();
    let x = inputs.get("input").unwrap();
    let expected = refs.get("logits").unwrap();
    let mut m = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let unedited = m.logits(x);
    let mut ed = Editor::default();
    for op in [
        "scale _blocks.3._project_conv.weight[5] 0.5",
        "zero _conv_stem.weight[2]",
        "set _conv_head.weight[7,100,0,0]=1.5",
        "knockout _blocks.5:3",
    ] {
        ed.apply(&mut m, op.parse::<Op>().unwrap()).unwrap();
    }
    let got = m.logits(x);
    let diff = (&got - expected).abs().max().double_value(&[]);
    assert!(diff <= 1e-3, "max |logit difference| = {diff}");
    let moved = (&unedited - expected).abs().max().double_value(&[]);
    assert!(
        moved > 0.05,
        "the edits change the logits ({moved}), so the check means something"
    );
}

/// Every architecture against its reference implementation (scripts/arch_refs.py:
/// torchvision, PyPI efficientnet-lite-pytorch, tiny-cnn written out in PyTorch), with the
/// same synthetic weights (every weight, bias and batch-norm statistic from one formula) and
/// the same synthetic input: equal key names and shapes, equal logits, equal top-1.
fn logits_equal_reference(name: &str) {
    use glassbox_engine::arch::Arch;
    let refs = weights::load(&asset("tests/refs/arch-logits.safetensors")).unwrap();
    let expected = refs
        .get(name)
        .unwrap_or_else(|| panic!("{name}: no reference logits; run `make refs`"));
    let arch: Arch = name.parse().unwrap();
    let m = synthetic_arch(arch);

    // The same parameter and buffer keys with the same shapes: a missed batch-norm buffer
    // or a misnamed layer fails here, before the logits say that something differs.
    let mut vars: Vec<(String, Vec<i64>)> = m.vs.variables().into_iter().map(|(k, v)| (k, v.size())).collect();
    vars.sort();
    let lines: String = vars.iter().map(|(k, s)| format!("{k} {s:?}\n")).collect();
    let keys: serde_json::Value = serde_json::from_str(&refs.metadata["keys"]).unwrap();
    assert_eq!(
        vars.len() as u64,
        keys[name]["keys"].as_u64().unwrap(),
        "{name}: number of state-dict keys"
    );
    assert_eq!(
        sha256(lines.as_bytes()),
        keys[name]["keys_sha256"].as_str().unwrap(),
        "{name}: keys and shapes differ from the reference's (ours:\n{lines})"
    );

    let s = m.preprocess.size as i64;
    let got = m.logits(&synthetic_input(s, arch.default_in_channels()));
    assert_eq!(got.size(), expected.size(), "{name}: logits shape");
    let diff = (&got - expected).abs().max().double_value(&[]);
    let scale = expected.abs().max().double_value(&[]);
    eprintln!("{name}: max |logit difference| {diff:.3e}, max |logit| {scale:.3}");
    // Measured: 0, bit for bit (the same libtorch and kernels). What float32 may differ by
    // (PyTorch's float32 against float64 logits) is at most 2e-6 of the largest logit. 0.05
    // added to one element of one batch-norm variance moves the logits by 6e-5 to 1e-3 of it
    // (5e-6 in ResNet-34, whose residual sum dwarfs one early channel), to one weight by 3e-4
    // to 3e-3, and batch norms without their statistics (mean 0, variance 1) by 0.6 to 6.
    assert!(
        diff <= 2e-5 * scale.max(1.0),
        "{name}: max |logit difference| {diff} (max |logit| {scale})"
    );
    assert_eq!(
        Vec::<i64>::try_from(got.argmax(-1, false)).unwrap(),
        Vec::<i64>::try_from(expected.argmax(-1, false)).unwrap(),
        "{name}: top-1"
    );
}

#[test]
fn every_architecture_has_reference_logits() {
    let refs = weights::load(&asset("tests/refs/arch-logits.safetensors")).unwrap();
    let mut have: Vec<&str> = refs.tensors.iter().map(|(n, _)| n.as_str()).collect();
    let mut want = glassbox_engine::arch::ARCH_NAMES.to_vec();
    have.sort();
    want.sort();
    assert_eq!(have, want);
}

#[test]
fn efficientnet_lites_logits_equal_pytorch() {
    for n in ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"] {
        logits_equal_reference(n);
    }
}

#[test]
fn resnets_logits_equal_torchvision() {
    for n in ["resnet18", "resnet34", "resnet50"] {
        logits_equal_reference(n);
    }
}

#[test]
fn vggs_and_alexnet_logits_equal_torchvision() {
    for n in ["vgg11", "vgg16", "alexnet"] {
        logits_equal_reference(n);
    }
}

#[test]
fn mobilenet_v2_logits_equal_torchvision() {
    logits_equal_reference("mobilenet_v2");
}

#[test]
fn tiny_cnn_logits_equal_pytorch() {
    logits_equal_reference("tiny-cnn");
}
