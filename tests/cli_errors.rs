//! Bad input: a clear one-line error, a non-zero exit, never a panic.
mod common;

use std::io::Cursor;

use common::*;

fn predict(path: &std::path::Path) -> std::process::Output {
    glassbox(&["predict", path_str(path)])
}

#[test]
fn bad_images() {
    let dir = tmp();
    let d = dir.path();
    assert_clean_error(&predict(&d.join("missing.png")), &["missing.png", "No such file"]);
    assert_clean_error(&predict(d), &["holds no images"]); // a directory is read as a batch of images
    std::fs::write(d.join("empty.png"), b"").unwrap();
    assert_clean_error(&predict(&d.join("empty.png")), &["empty.png", "0 bytes"]);
    std::fs::write(d.join("notes.txt"), b"this is not an image\n").unwrap();
    assert_clean_error(&predict(&d.join("notes.txt")), &["notes.txt", "not an image"]);
    let img = image::DynamicImage::new_rgb8(120, 90);
    for (name, fmt) in [
        ("cut.png", image::ImageFormat::Png),
        ("cut.jpg", image::ImageFormat::Jpeg),
    ] {
        let mut bytes = Vec::new();
        img.write_to(&mut Cursor::new(&mut bytes), fmt).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(d.join(name), &bytes).unwrap();
        assert_clean_error(&predict(&d.join(name)), &[name, "truncated"]);
    }
}

fn model_error(dir: &std::path::Path, name: &str, bytes: &[u8], expect: &[&str]) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let img = asset("assets/samples/chelsea.png");
    let o = glassbox(&["predict", "--model", path_str(&p), path_str(&img)]);
    let mut all = vec![name];
    all.extend_from_slice(expect);
    assert_clean_error(&o, &all);
}

fn safetensors_with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

#[test]
fn bad_weight_files() {
    let dir = tmp();
    let d = dir.path();
    model_error(d, "empty.safetensors", b"", &["0 bytes"]);
    let chelsea = asset("assets/samples/chelsea.png");
    assert_clean_error(
        &glassbox(&["predict", "--model", path_str(d), path_str(&chelsea)]),
        &["is a directory"],
    );
    let mut past = 1_000_000u64.to_le_bytes().to_vec();
    past.extend_from_slice(b"{}");
    model_error(d, "past-end.safetensors", &past, &["not a valid safetensors"]);
    model_error(
        d,
        "bad-json.safetensors",
        &safetensors_with_header("{not json", &[]),
        &["not a valid safetensors"],
    );
    let mismatch = safetensors_with_header(r#"{"w":{"dtype":"F32","shape":[10],"data_offsets":[0,8]}}"#, &[0u8; 8]);
    model_error(d, "mismatch.safetensors", &mismatch, &["not a valid safetensors"]);
    model_error(d, "random.pth", &[0x80, 0x02, 0xff, 0x00], &["random.pth"]);
    assert_clean_error(
        &glassbox(&[
            "predict",
            "--model",
            "no-such-model",
            path_str(&asset("assets/samples/chelsea.png")),
        ]),
        &["no-such-model", "not a builtin model", "efficientnet-lite0"],
    );
}

#[test]
fn unknown_architecture() {
    let o = glassbox(&["layers", "--arch", "resnet999"]);
    assert_usage_error(&o, &["invalid value 'resnet999'", "--arch", "resnet18", "tiny-cnn"]);
    // Metadata naming an unknown architecture is the model file's error, in one line.
    let dir = tmp();
    let w = glassbox_engine::weights::load(&asset("assets/mnist-tiny-cnn.safetensors")).unwrap();
    let mut meta = w.metadata.clone();
    meta.insert("glassbox.arch".into(), "resnet999".into());
    let p = dir.path().join("m.safetensors");
    glassbox_engine::weights::save_safetensors(&p, &w.tensors, &meta, glassbox_engine::weights::StoreAs::F32).unwrap();
    let o = glassbox(&["layers", "--model", path_str(&p)]);
    assert_clean_error(&o, &["glassbox.arch", "unknown architecture `resnet999`", "tiny-cnn"]);
}

#[test]
fn wrong_number_of_labels() {
    let dir = tmp();
    let w = dir.path().join("digits.safetensors");
    // A copy of the MNIST model without its labels metadata, with a sidecar labels.txt.
    let m = glassbox_engine::weights::load(&asset("assets/mnist-tiny-cnn.safetensors")).unwrap();
    glassbox_engine::weights::save_safetensors(
        &w,
        &m.tensors,
        &Default::default(),
        glassbox_engine::weights::StoreAs::F32,
    )
    .unwrap();
    std::fs::write(dir.path().join("labels.txt"), "zero\none\ntwo\n").unwrap();
    let o = glassbox(&["layers", "--model", path_str(&w)]);
    assert_clean_error(&o, &["labels.txt", "3 class names", "10 classes"]);
    // With the right count, the names are used.
    let names: String = (0..10).map(|i| format!("digit {i}\n")).collect();
    std::fs::write(dir.path().join("labels.txt"), names).unwrap();
    let o = glassbox(&[
        "predict",
        "--json",
        "--model",
        path_str(&w),
        path_str(&asset("assets/samples/coffee.png")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"label\":\"digit "), "{}", stdout(&o));
}

#[test]
fn bad_numbers_are_refused_with_the_allowed_range() {
    let dir = tmp();
    let out = dir.path().join("m.safetensors");
    let o = glassbox(&["train", "--dataset", "mnist", "--epochs", "0", "--out", path_str(&out)]);
    assert_usage_error(&o, &["--epochs", "0 is not in 1..=1000"]);
    let o = glassbox(&["train", "--dataset", "cifar", "--out", path_str(&out)]);
    assert_usage_error(&o, &["invalid value 'cifar'", "mnist", "fashion-mnist"]);
    let o = glassbox(&["predict", "--batch-size", "0", "x.png"]);
    assert_usage_error(&o, &["--batch-size", "0 is not in 1..=4096"]);
}
