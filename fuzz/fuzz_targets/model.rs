//! Opening a model: every check `Model::from_weights` makes of what a file claims (the
//! architecture, the preprocessing, the labels, the knock-outs, the tensors' names and
//! shapes) before libtorch runs it, then a prediction when the model was accepted.
//!
//! The input is text, one `key=value` per line, applied to the small CNN's real weights:
//! `meta:KEY=VALUE` sets a metadata entry (`glassbox.arch`, `glassbox.preprocess`,
//! `glassbox.labels`, `glassbox.knockouts`, ...), `shape:NAME=D0,D1,...` replaces a tensor
//! by zeros of that shape (or adds one), `drop:NAME=` removes a tensor, `arch=NAME` is the
//! `--arch` a user passes. So the fuzzer spends its time on the claims, not on megabytes of
//! weight data (the `weights` target covers the file formats).
#![no_main]
use std::collections::BTreeMap;

use glassbox_engine::arch::Arch;
use glassbox_engine::model::Model;
use glassbox_engine::weights::{self, Weights};
use libfuzzer_sys::fuzz_target;
use tch::{Device, Kind, Tensor};

/// The largest tensor a `shape:` line may ask for (the real model's largest is 200,704).
const MAX_NUMEL: i64 = 1 << 22;

fn base() -> Weights {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/mnist-tiny-cnn.safetensors");
    weights::load(std::path::Path::new(path)).expect("the small CNN's weights")
}

thread_local! {
    static BASE: Weights = base();
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (mut tensors, mut metadata): (BTreeMap<String, Tensor>, BTreeMap<String, String>) = BASE.with(|b| {
        (
            b.tensors.iter().map(|(n, t)| (n.clone(), t.copy())).collect(),
            b.metadata.clone(),
        )
    });
    let mut arch: Option<Arch> = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if let Some(k) = key.strip_prefix("meta:") {
            metadata.insert(k.to_owned(), value.to_owned());
        } else if let Some(name) = key.strip_prefix("shape:") {
            let Ok(shape) = value
                .split(',')
                .map(|d| d.trim().parse::<i64>())
                .collect::<Result<Vec<_>, _>>()
            else {
                continue;
            };
            let numel = shape
                .iter()
                .try_fold(1i64, |acc, d| if *d < 0 { None } else { acc.checked_mul(*d) });
            if shape.len() <= 6 && numel.is_some_and(|n| n <= MAX_NUMEL) {
                tensors.insert(
                    name.to_owned(),
                    Tensor::zeros(shape.as_slice(), (Kind::Float, Device::Cpu)),
                );
            }
        } else if let Some(name) = key.strip_prefix("drop:") {
            tensors.remove(name);
        } else if key == "arch" {
            arch = value.parse().ok();
        }
    }
    let w = Weights {
        tensors: tensors.into_iter().collect(),
        metadata,
    };
    let Ok(m) = Model::from_weights(w, arch, Device::Cpu, None) else {
        return;
    };
    let s = m.preprocess.size as i64;
    let x = Tensor::zeros([1, m.spec.in_channels, s, s], (Kind::Float, Device::Cpu));
    let top = m.top_k(&m.logits(&x), 3).expect("an accepted model predicts");
    assert!(!top[0].is_empty());
    assert_eq!(m.labels.len() as i64, m.spec.classes);
});
