//! Every architecture builds, saves, loads its own weights back (detected from the keys),
//! and traces with the right names and shapes: torchvision's, for torchvision models.
mod common;

use std::collections::BTreeMap;

use common::*;
use glassbox_engine::arch::{Arch, ARCH_NAMES};
use glassbox_engine::model::Model;
use glassbox_engine::weights::StoreAs;
use tch::{Device, Kind, Tensor};

fn torchvision() -> serde_json::Value {
    let text = std::fs::read_to_string(asset("tests/refs/torchvision-shapes.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn roundtrip(name: &str) {
    let arch: Arch = name.parse().unwrap();
    tch::manual_seed(0);
    let m = Model::new_random(arch, 10, arch.default_in_channels(), Device::Cpu);
    let dir = tmp();
    let path = dir.path().join(format!("{name}.safetensors"));
    m.save(&path, &BTreeMap::new(), StoreAs::F32).unwrap();

    // Detected from keys and shapes alone: drop the arch metadata by re-saving plain tensors.
    let w = glassbox_engine::weights::load(&path).unwrap();
    let plain = dir.path().join("plain.safetensors");
    glassbox_engine::weights::save_safetensors(&plain, &w.tensors, &BTreeMap::new(), StoreAs::F32).unwrap();
    let back = Model::from_file(&plain, None, Device::Cpu).unwrap();
    assert_eq!(back.spec.arch, arch, "{name} detected from its keys");
    assert_eq!(back.spec.classes, 10);

    let s = m.preprocess.size as i64;
    let x = Tensor::randn([2, arch.default_in_channels(), s, s], (Kind::Float, Device::Cpu));
    let a = m.logits(&x);
    let b = back.logits(&x);
    assert_eq!(a.size(), [2, 10]);
    assert!(a.allclose(&b, 1e-5, 1e-5, false), "{name}: reloaded logits differ");

    let (_, traced) = tch::no_grad(|| m.trace(&x.narrow(0, 0, 1)));
    let names: Vec<&str> = traced.iter().map(|t| t.name.as_str()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{name}: traced names are unique");

    let tv = torchvision();
    if let Some(refs) = tv.get(name) {
        // Same parameter and buffer keys with the same shapes as torchvision.
        let ours: BTreeMap<String, Vec<i64>> = m.vs.variables().into_iter().map(|(k, v)| (k, v.size())).collect();
        let theirs: BTreeMap<String, Vec<i64>> = refs["keys"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect(),
                )
            })
            .collect();
        assert_eq!(ours, theirs, "{name}: keys and shapes equal torchvision's");
        // Each traced layer that torchvision names has torchvision's output shape.
        let outs = refs["outputs"].as_object().unwrap();
        let mut checked = 0;
        for t in &traced {
            // A module torchvision calls twice (`relu`) is hooked at its last call; ours are `relu`, `relu#2`.
            let reused = names.contains(&format!("{}#2", t.name).as_str());
            if let Some(shape) = outs.get(&t.name).filter(|_| !reused) {
                let shape: Vec<i64> = shape.as_array().unwrap().iter().map(|d| d.as_i64().unwrap()).collect();
                assert_eq!(t.output.size(), shape, "{name}: output shape of {}", t.name);
                checked += 1;
            }
        }
        // Every traced name is a torchvision module name, except a second use of a module
        // (`relu#2`) and MobileNetV2's pooling, which torchvision does functionally.
        let foreign: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !n.contains('#') && !outs.contains_key(*n))
            .filter(|n| !(name == "mobilenet_v2" && *n == "avgpool"))
            .collect();
        assert!(
            foreign.is_empty(),
            "{name}: names torchvision does not have: {foreign:?}"
        );
        assert!(
            checked * 2 >= traced.len(),
            "{name}: only {checked} of {} shapes checked",
            traced.len()
        );
    }
}

#[test]
fn resnets() {
    for n in ["resnet18", "resnet34", "resnet50"] {
        roundtrip(n);
    }
}

#[test]
fn vggs_and_alexnet() {
    for n in ["vgg11", "vgg16", "alexnet"] {
        roundtrip(n);
    }
}

#[test]
fn mobilenet_v2() {
    roundtrip("mobilenet_v2");
}

#[test]
fn efficientnet_lites() {
    for n in ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"] {
        roundtrip(n);
    }
}

#[test]
fn tiny_cnn() {
    roundtrip("tiny-cnn");
}

#[test]
fn every_listed_architecture_is_tested_here() {
    let mut tested = [
        "resnet18",
        "resnet34",
        "resnet50",
        "vgg11",
        "vgg16",
        "alexnet",
        "mobilenet_v2",
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
        "tiny-cnn",
    ];
    let mut listed = ARCH_NAMES.to_vec();
    tested.sort();
    listed.sort();
    assert_eq!(listed, tested);
}

#[test]
fn known_lite0_shapes() {
    let m = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    let layers = m.layers();
    let get = |n: &str| {
        layers
            .iter()
            .find(|l| l.name == n)
            .unwrap_or_else(|| panic!("{n}"))
            .shape
            .clone()
    };
    assert_eq!(get("_blocks.15"), [1, 320, 7, 7]);
    assert_eq!(get("_swish#2"), [1, 1280, 7, 7]);
    assert_eq!(get("_fc"), [1, 1000]);
    assert_eq!(
        layers
            .iter()
            .filter(|l| l.name.starts_with("_blocks.") && !l.name[8..].contains('.'))
            .count(),
        16
    );
}

#[test]
fn unrecognised_and_mismatched_weights_are_explained() {
    let dir = tmp();
    let p = dir.path().join("odd.safetensors");
    let t = vec![(
        "encoder.w".to_string(),
        Tensor::zeros([3, 3], (Kind::Float, Device::Cpu)),
    )];
    glassbox_engine::weights::save_safetensors(&p, &t, &BTreeMap::new(), StoreAs::F32).unwrap();
    let e = Model::from_file(&p, None, Device::Cpu).err().unwrap().to_string();
    assert!(
        e.contains("unrecognised") && e.contains("encoder.w") && e.contains("layer1.0.conv1.weight"),
        "{e}"
    );
    // A tiny-cnn file forced to be a ResNet: says what is missing.
    let e = Model::open(
        path_str(&asset("assets/mnist-tiny-cnn.safetensors")),
        Some(Arch::ResNet(18)),
        Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("fc.weight"), "{e}");
}
