//! Retraining from the command line: `glassbox finetune` (a contract other checks use) in
//! each mode; imprinting against its formula computed here; a seed twice; the refusals.
mod common;

use std::path::Path;

use common::*;
use glassbox_engine::data::{self, DatasetName};
use glassbox_engine::model::Model;
use tch::{Device, Tensor};

/// A folder of Fashion-MNIST training images: `classes` (indices), `n` each, named `prefix`+label.
fn clothes(dir: &Path, prefix: &str, classes: &[usize], n: usize, skip: usize) {
    let d = data::load(DatasetName::FashionMnist, &root().join("data")).expect("run `make setup` for the data sets");
    let tmp = tmp();
    data::write_folder(DatasetName::FashionMnist, &d.train, tmp.path(), prefix, n, skip, false).unwrap();
    let names = DatasetName::FashionMnist.labels();
    for &c in classes {
        let name = format!("{prefix}{}", names[c].replace('/', "-"));
        std::fs::rename(tmp.path().join(&name), dir.join(&name)).unwrap();
    }
}

fn var(m: &Model, name: &str) -> Tensor {
    m.vs.variables()[name].shallow_clone()
}

/// `glassbox finetune --model MODEL --data DATA FLAGS... --out OUT`, which must succeed.
fn tune(model: &str, data: &Path, flags: &str, out: &Path) -> String {
    let mut args = vec!["finetune", "--model", model, "--data", path_str(data)];
    args.extend(flags.split_whitespace());
    args.extend(["--out", path_str(out)]);
    ok(&args)
}

fn ok(args: &[&str]) -> String {
    let o = glassbox(args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn head_only_replaces_the_classes_and_records_the_run() {
    let dir = tmp();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    clothes(&data, "", &[1, 5, 8], 30, 0);
    let out = dir.path().join("clothes.safetensors");
    let text = tune("mnist", &data, "--head-only --epochs 15 --lr 0.01 --seed 3", &out);
    assert!(text.contains("epoch 15/15: train loss"), "{text}");
    assert!(text.contains("validation accuracy"), "{text}");
    let m = Model::open(out.as_path(), None, Device::Cpu).unwrap();
    assert_eq!(m.labels, ["Bag", "Sandal", "Trouser"]);
    let base = Model::open("mnist", None, Device::Cpu).unwrap();
    assert!(
        var(&m, "conv1.weight").equal(&var(&base, "conv1.weight")),
        "the backbone is not trained"
    );
    assert!(var(&m, "fc1.weight").equal(&var(&base, "fc1.weight")));
    let r = |k: &str| {
        m.metadata
            .get(&format!("glassbox.train.{k}"))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(r("mode"), "head");
    assert_eq!(r("seed"), "3");
    assert_eq!(r("optimizer"), "adam");
    assert_eq!(r("lr"), "0.01");
    assert_eq!(r("epochs"), "15");
    assert!(
        r("data_fingerprint").starts_with("sha256:"),
        "{}",
        r("data_fingerprint")
    );
    assert_eq!(r("classes"), r#"["Bag","Sandal","Trouser"]"#);
    // The validation images are held out: 15 % of 30 per class.
    assert_eq!(r("val_images"), "15");
    let acc: f64 = r("val_accuracy").parse().unwrap();
    assert!(acc >= 0.8, "bags, sandals and trousers from digit features: {acc}");
    // What `eval` says on other images of the same classes agrees it learned them.
    let test = dir.path().join("test");
    std::fs::create_dir(&test).unwrap();
    clothes(&test, "", &[1, 5, 8], 20, 30);
    let e = ok(&["eval", "--model", path_str(&out), "--data", path_str(&test), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&e).unwrap();
    assert!(v["accuracy"].as_f64().unwrap() >= 0.8, "{e}");
}

/// The features of the small CNN (the output of `relu3`) for the images of a folder,
/// prepared as the model's preprocessing does, computed here from the traced layers.
fn traced_features(m: &Model, dir: &Path) -> Tensor {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let xs: Vec<Tensor> = files
        .iter()
        .map(|f| m.preprocess.prepare_file(f).unwrap().tensor)
        .collect();
    let (_, traced) = m.trace(&Tensor::cat(&xs, 0));
    traced.iter().find(|t| t.name == "relu3").unwrap().output.detach()
}

#[test]
fn imprinting_adds_classes_by_the_formula_and_leaves_the_old_ones() {
    let dir = tmp();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    clothes(&data, "new ", &[1, 8], 20, 0);
    let out = dir.path().join("more.safetensors");
    let text = tune("mnist", &data, "--add-classes --epochs 0 --val-split 0", &out);
    assert!(text.contains("imprinted: new Bag, new Trouser"), "{text}");
    let m = Model::open(out.as_path(), None, Device::Cpu).unwrap();
    let base = Model::open("mnist", None, Device::Cpu).unwrap();
    assert_eq!(m.spec.classes, 12);
    assert_eq!(&m.labels[..10], &base.labels[..]);
    assert_eq!(&m.labels[10..], ["new Bag", "new Trouser"]);
    let (w, b) = (var(&m, "fc2.weight"), var(&m, "fc2.bias"));
    let (w0, b0) = (var(&base, "fc2.weight"), var(&base, "fc2.bias"));
    assert!(
        w.narrow(0, 0, 10).equal(&w0) && b.narrow(0, 0, 10).equal(&b0),
        "old classes untouched"
    );
    // Recomputed here in plain arithmetic from the traced features (head.rs `imprint`):
    // the rows' mean is w_g = mean(f / |f|) / |mean(f / |f|)| * mean over old rows of |w_k|,
    // over both classes' images; each row's own part v_j = w_j - w_g has the bias
    // -v_j.mu - v_j.(mu_j - mu) / 2 (mu_j the class's mean feature, mu their mean), and both
    // share b_g = max over the images of (best old logit - w_g.f) + the margin.
    let rows64 = |t: &Tensor| -> Vec<Vec<f64>> {
        (0..t.size()[0])
            .map(|i| {
                Vec::<f32>::try_from(&t.get(i))
                    .unwrap()
                    .into_iter()
                    .map(f64::from)
                    .collect()
            })
            .collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let norm = |a: &[f64]| dot(a, a).sqrt();
    let old_w = rows64(&w0);
    let old_b: Vec<f64> = Vec::<f32>::try_from(&b0).unwrap().into_iter().map(f64::from).collect();
    let scale = old_w.iter().map(|r| norm(r)).sum::<f64>() / old_w.len() as f64;
    let feats: Vec<Vec<Vec<f64>>> = ["new Bag", "new Trouser"]
        .iter()
        .map(|c| rows64(&traced_features(&base, &data.join(c))))
        .collect();
    let all: Vec<&Vec<f64>> = feats.iter().flatten().collect();
    let mut g = vec![0f64; 128];
    for f in &all {
        for (m, x) in g.iter_mut().zip(f.iter()) {
            *m += x / norm(f) / all.len() as f64;
        }
    }
    let wg: Vec<f64> = g.iter().map(|x| x / norm(&g) * scale).collect();
    let got = rows64(&w.narrow(0, 10, 2));
    for (k, m) in wg.iter().enumerate() {
        let mean = (got[0][k] + got[1][k]) / 2.0;
        assert!((mean - m).abs() < 1e-4, "feature {k}: rows' mean {mean} vs {m}");
    }
    let best_old = |f: &[f64]| {
        old_w
            .iter()
            .zip(&old_b)
            .map(|(r, b)| dot(r, f) + b)
            .fold(f64::MIN, f64::max)
    };
    let bg = all.iter().map(|f| best_old(f) - dot(&wg, f)).fold(f64::MIN, f64::max)
        + glassbox_engine::finetune::IMPRINT_MARGIN;
    let mean_of = |fs: &[Vec<f64>]| -> Vec<f64> {
        (0..128)
            .map(|k| fs.iter().map(|f| f[k]).sum::<f64>() / fs.len() as f64)
            .collect()
    };
    let mus: Vec<Vec<f64>> = feats.iter().map(|fs| mean_of(fs)).collect();
    let mu: Vec<f64> = (0..128).map(|k| (mus[0][k] + mus[1][k]) / 2.0).collect();
    for j in 0..2 {
        let v: Vec<f64> = got[j].iter().zip(&wg).map(|(a, b)| a - b).collect();
        let d: Vec<f64> = mus[j].iter().zip(&mu).map(|(a, b)| a - b).collect();
        let want = -dot(&v, &mu) - dot(&v, &d) / 2.0 + bg;
        let have = b.double_value(&[10 + j as i64]);
        assert!(
            (have - want).abs() < 1e-3 * want.abs().max(1.0),
            "class {j}: bias {have} vs {want}"
        );
    }
    // Old classes keep working: the digits' logits of the ten old classes are the same.
    let digits = data::load(DatasetName::Mnist, &root().join("data")).unwrap();
    let x = data::Split::normalised(&digits.test.images.narrow(0, 0, 200));
    let drift = (m.logits(&x).narrow(1, 0, 10) - base.logits(&x))
        .abs()
        .max()
        .double_value(&[]);
    assert!(drift < 1e-5, "old logits moved by {drift}");
    // A few epochs of the new classes' weights keep the old rows as they were.
    let out2 = dir.path().join("more2.safetensors");
    tune("mnist", &data, "--add-classes --epochs 3", &out2);
    let m2 = Model::open(out2.as_path(), None, Device::Cpu).unwrap();
    assert!(var(&m2, "fc2.weight").narrow(0, 0, 10).equal(&w0));
    assert!(
        !var(&m2, "fc2.weight").narrow(0, 10, 2).equal(&w.narrow(0, 10, 2)),
        "the new rows trained"
    );
}

#[test]
fn a_seed_gives_the_same_weights_twice_and_from_a_layer_trains_only_from_there() {
    let dir = tmp();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    clothes(&data, "", &[0, 1, 7], 16, 0);
    let run = |name: &str, seed: &str, scope: &[&str]| {
        let out = dir.path().join(name);
        let mut args = vec![
            "finetune",
            "--model",
            "mnist",
            "--data",
            path_str(&data),
            "--epochs",
            "2",
            "--batch",
            "8",
        ];
        args.extend(scope);
        args.extend(["--seed", seed, "--out", path_str(&out)]);
        ok(&args);
        out
    };
    let a = run("a.safetensors", "5", &["--full"]);
    let b = run("b.safetensors", "5", &["--full"]);
    let c = run("c.safetensors", "6", &["--full"]);
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same seed, same bytes"
    );
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    let base = Model::open("mnist", None, Device::Cpu).unwrap();
    let full = Model::open(a.as_path(), None, Device::Cpu).unwrap();
    assert!(
        !var(&full, "conv1.weight").equal(&var(&base, "conv1.weight")),
        "--full trains the first layer"
    );
    let from = run("from.safetensors", "5", &["--from", "fc1"]);
    let from = Model::open(from.as_path(), None, Device::Cpu).unwrap();
    for frozen in [
        "conv1.weight",
        "conv2.weight",
        "bn2.weight",
        "bn2.running_mean",
        "bn1.running_var",
    ] {
        assert!(var(&from, frozen).equal(&var(&base, frozen)), "{frozen} is before fc1");
    }
    assert!(!var(&from, "fc1.weight").equal(&var(&base, "fc1.weight")));
    assert_eq!(from.metadata["glassbox.train.mode"], "from fc1");
}

#[test]
fn from_scratch_on_a_bundled_data_set() {
    let dir = tmp();
    let out = dir.path().join("scratch.safetensors");
    let text = ok(&[
        "finetune",
        "--dataset",
        "mnist",
        "--scratch",
        "--per-class",
        "60",
        "--epochs",
        "3",
        "--out",
        path_str(&out),
    ]);
    assert!(text.contains("from scratch"), "{text}");
    let m = Model::open(out.as_path(), None, Device::Cpu).unwrap();
    assert_eq!(m.labels, DatasetName::Mnist.labels());
    assert_eq!(m.metadata["glassbox.train.base"], "none (from scratch)");
    let acc: f64 = m.metadata["glassbox.train.val_accuracy"].parse().unwrap();
    assert!(acc > 0.5, "600 digits, 3 epochs: {acc}");
}

#[test]
fn a_diverging_run_is_rolled_back_and_saved_at_its_last_good_epoch() {
    let dir = tmp();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    clothes(&data, "", &[0, 1], 12, 0);
    let out = dir.path().join("x.safetensors");
    let text = tune("mnist", &data, "--full --optimizer sgd --lr 1e12 --epochs 3", &out);
    assert!(text.contains("rolled back to epoch 0"), "{text}");
    let m = Model::open(out.as_path(), None, Device::Cpu).unwrap();
    let base = Model::open("mnist", None, Device::Cpu).unwrap();
    assert!(
        var(&m, "conv1.weight").equal(&var(&base, "conv1.weight")),
        "rolled back: nothing trained"
    );
    assert!(m.metadata["glassbox.train.stopped"].contains("rolled back"));
}

#[test]
fn bad_data_and_settings_get_one_clear_line() {
    let dir = tmp();
    let out = dir.path().join("o.safetensors");
    let o = path_str(&out);
    let one = dir.path().join("one");
    std::fs::create_dir(&one).unwrap();
    clothes(&one, "", &[3], 5, 0);
    let d = path_str(&one);
    assert_clean_error(
        &glassbox(&["finetune", "--model", "mnist", "--data", d, "--out", o]),
        &["one class", "Dress"],
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join("a")).unwrap();
    clothes(&empty, "", &[3], 5, 0);
    assert_clean_error(
        &glassbox(&["finetune", "--model", "mnist", "--data", path_str(&empty), "--out", o]),
        &["holds no images", "a"],
    );
    let few = dir.path().join("few");
    std::fs::create_dir(&few).unwrap();
    clothes(&few, "", &[3], 1, 0);
    clothes(&few, "", &[4], 4, 0);
    assert_clean_error(
        &glassbox(&["finetune", "--model", "mnist", "--data", path_str(&few), "--out", o]),
        &["class `Dress` has 1 image", "validation split"],
    );
    // A broken file is skipped and reported; the run goes on.
    std::fs::write(few.join("Dress").join("broken.png"), b"not a png").unwrap();
    let text = tune("mnist", &few, "--epochs 1 --val-split 0", &out);
    assert!(text.contains("skipped:") && text.contains("broken.png"), "{text}");
    let two = path_str(&few);
    assert_clean_error(
        &glassbox(&[
            "finetune", "--model", "mnist", "--data", two, "--lr", "NaN", "--out", o, "--force",
        ]),
        &["learning rate", "NaN"],
    );
    assert_clean_error(
        &glassbox(&[
            "finetune",
            "--model",
            "mnist",
            "--data",
            two,
            "--add-classes",
            "--full",
            "--out",
            o,
            "--force",
        ]),
        &["cannot train the network"],
    );
    assert_clean_error(
        &glassbox(&[
            "finetune", "--model", "mnist", "--data", two, "--from", "nope", "--out", o, "--force",
        ]),
        &["no layer `nope`", "conv1"],
    );
    assert_clean_error(
        &glassbox(&[
            "finetune",
            "--model",
            "mnist",
            "--data",
            path_str(&dir.path().join("none")),
            "--out",
            o,
            "--force",
        ]),
        &["is not a folder"],
    );
    assert_usage_error(
        &glassbox(&[
            "finetune",
            "--model",
            "mnist",
            "--data",
            two,
            "--full",
            "--head-only",
            "--out",
            o,
        ]),
        &["--head-only"],
    );
}

/// A folder of MNIST digits as RGB images: `digit-D` for each digit given.
fn digit_folder(dir: &Path, digits: &[usize], n: usize, skip: usize) {
    let d = data::load(DatasetName::Mnist, &root().join("data")).expect("run `make setup` for the data sets");
    let tmp = tmp();
    data::write_folder(DatasetName::Mnist, &d.train, tmp.path(), "digit-", n, skip, true).unwrap();
    for &c in digits {
        let name = format!("digit-{c}");
        std::fs::rename(tmp.path().join(&name), dir.join(&name)).unwrap();
    }
}

#[test]
fn lite0_learns_two_digits_by_imprinting_and_the_photos_keep_their_class() {
    let dir = tmp();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    digit_folder(&data, &[3, 7], 20, 0);
    let test = dir.path().join("test");
    std::fs::create_dir(&test).unwrap();
    digit_folder(&test, &[3, 7], 50, 20);
    // Per new class: the share of its unseen digits classified as that class.
    let recall = |epochs: &str| {
        let out = dir.path().join(format!("lite0-digits-{epochs}.safetensors"));
        let flags = format!("--add-classes --epochs {epochs} --lr 0.01 --val-split 0");
        tune("efficientnet-lite0", &data, &flags, &out);
        let e = ok(&["eval", "--model", path_str(&out), "--data", path_str(&test), "--json"]);
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        let per_class: Vec<f64> = v["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["accuracy"].as_f64().unwrap())
            .collect();
        (out, per_class)
    };
    // 1000 old classes and two new ones: imprinting alone (BENCHMARKS: 97.5 % of the 2,038
    // test threes and sevens) and with the default ten epochs of the new rows.
    let (imprinted_model, imprinted) = recall("0");
    let (out, refined) = recall("10");
    eprintln!("new digits right per class: imprinted {imprinted:?}, refined {refined:?}");
    assert_eq!(imprinted.len(), 2);
    assert!(imprinted.iter().all(|&r| r >= 0.9), "imprinted: {imprinted:?}");
    assert!(refined.iter().all(|&r| r >= 0.94), "refined: {refined:?}");
    let photos = [
        "assets/samples/chelsea.png",
        "assets/samples/coffee.png",
        "assets/photos/astronaut.jpg",
        "assets/photos/rocket.jpg",
        "assets/photos/motorcycle.jpg",
    ];
    for photo in photos {
        let top = |m: &str| {
            let p = ok(&["predict", "--model", m, path_str(&asset(photo)), "--top", "1", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&p).unwrap();
            v["top"][0]["label"].as_str().unwrap().to_string()
        };
        let before = top("efficientnet-lite0");
        assert_eq!(before, top(path_str(&imprinted_model)), "{photo} imprinted");
        assert_eq!(before, top(path_str(&out)), "{photo} refined");
    }
}
