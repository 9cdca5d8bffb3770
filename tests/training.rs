//! The small models: trained by Glassbox, committed with their training record.
mod common;

use common::*;
use glassbox_engine::data::{self, DatasetName};
use glassbox_engine::model::Model;
use tch::Device;

fn check_builtin(name: &str, dataset: DatasetName, at_least: f64) {
    let m = Model::open(name, None, Device::Cpu).unwrap();
    let d = data::load(dataset, &root().join("data")).expect("run `make setup` for the data sets");
    assert_eq!(d.test.len(), 10_000);
    // Counted here, by another path than the trainer's (see count_accuracy).
    let acc = count_accuracy(&m, &d.test);
    assert!(acc >= at_least, "{name}: test accuracy {acc}");
    assert_eq!(m.metadata["glassbox.train.dataset"], dataset.as_str());
    let recorded: f64 = m.metadata["glassbox.train.test_accuracy"].parse().unwrap();
    assert!((recorded - acc).abs() < 1e-3, "recorded {recorded}, measured {acc}");
    assert!(m.metadata.contains_key("glassbox.train.epochs") && m.metadata.contains_key("glassbox.train.seed"));
    assert_eq!(m.labels, dataset.labels());
}

#[test]
fn committed_mnist_model_reaches_98_5_percent() {
    check_builtin("mnist", DatasetName::Mnist, 0.985);
}

#[test]
fn committed_fashion_mnist_model_reaches_88_percent() {
    check_builtin("fashion-mnist", DatasetName::FashionMnist, 0.88);
}

#[test]
fn train_command_learns_and_records_what_it_did() {
    let dir = tmp();
    let out = dir.path().join("small.safetensors");
    let o = glassbox(&[
        "train",
        "--dataset",
        "mnist",
        "--epochs",
        "1",
        "--seed",
        "3",
        "--limit",
        "4000",
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = Model::open(path_str(&out), None, Device::Cpu).unwrap();
    assert_eq!(m.metadata["glassbox.train.seed"], "3");
    assert_eq!(m.metadata["glassbox.train.train_images"], "4000");
    // Measured here on the 10,000 test digits, not read from what the trainer wrote.
    let d = data::load(DatasetName::Mnist, &root().join("data")).expect("run `make setup` for the data sets");
    let acc = count_accuracy(&m, &d.test);
    assert!(acc > 0.85, "one epoch on 4,000 digits: {acc}");
    let recorded: f64 = m.metadata["glassbox.train.test_accuracy"].parse().unwrap();
    assert!((recorded - acc).abs() < 1e-3, "recorded {recorded}, measured {acc}");
    let again = glassbox(&["train", "--dataset", "mnist", "--out", path_str(&out)]);
    assert_clean_error(&again, &["already exists"]);
}
