//! Hostile and broken files, each as a user would give it to the command line: one clear
//! line, a non-zero exit, no panic, no abort, bounded memory, no freeze. (The app side of
//! the same files is in tests/app.rs; the fuzz targets in tests/fuzz.rs.)
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use glassbox_engine::weights;

/// The most memory (peak resident) a refused file may cost the whole process, libtorch
/// included: about twice what loading libtorch alone takes.
const MAX_RSS_MIB: f64 = 1024.0;

fn fuzz_file(target: &str, name: &str) -> PathBuf {
    asset(&format!("tests/fuzz/{target}/{name}"))
}

/// `predict` with a model file: must fail with one line naming the file and `expect`.
fn refuse_model(model: &Path, expect: &[&str]) {
    let img = asset("assets/samples/chelsea.png");
    let run = glassbox_measured(&["predict", "--model", path_str(model), path_str(&img)]);
    let mut all = vec![model.file_name().unwrap().to_str().unwrap()];
    all.extend_from_slice(expect);
    assert_clean_error(&run.output, &all);
    assert!(
        run.max_rss_mib < MAX_RSS_MIB,
        "{}: {:.0} MiB resident",
        model.display(),
        run.max_rss_mib
    );
    assert!(run.seconds < 30.0, "{}: took {:.1} s", model.display(), run.seconds);
}

#[test]
fn a_pickle_that_copies_a_list_into_itself_is_refused() {
    // 114 bytes; a copying unpickler would build 2^40 objects.
    refuse_model(
        &fuzz_file("pth-legacy", "hostile-dup-bomb.pth"),
        &["refused", "objects"],
    );
    refuse_model(
        &fuzz_file("pth-legacy", "hostile-memo-bomb.pth"),
        &["refused", "objects"],
    );
    refuse_model(
        &fuzz_file("pth-legacy", "hostile-string-copies.pth"),
        &["refused", "objects"],
    );
}

#[test]
fn a_pickle_nesting_200000_lists_is_refused() {
    refuse_model(
        &fuzz_file("pth-legacy", "hostile-nested-append.pth"),
        &["nests", "levels"],
    );
    refuse_model(
        &fuzz_file("pth-legacy", "hostile-nested-marks.pth"),
        &["nests", "levels"],
    );
}

#[test]
fn zip_records_are_read_by_their_real_size() {
    refuse_model(
        &fuzz_file("pth-zip", "hostile-declares-4gb.pth"),
        &["declares 4294967294 bytes", "holds"],
    );
    refuse_model(
        &fuzz_file("pth-zip", "hostile-zip-bomb.pth"),
        &["decompresses to more than"],
    );
}

#[test]
fn strided_views_are_checked_before_anything_is_allocated() {
    refuse_model(
        &fuzz_file("pth-zip", "hostile-stride-zero-expand.pth"),
        &["larger than the file"],
    );
    refuse_model(&fuzz_file("pth-zip", "hostile-offset-overflow.pth"), &["overflows"]);
    refuse_model(&fuzz_file("pth-zip", "hostile-many-dims.pth"), &["300 dimensions"]);
    refuse_model(
        &fuzz_file("pth-legacy", "hostile-storage-count-overflow.pth"),
        &["storage"],
    );
}

#[test]
fn hostile_safetensors_headers_are_refused() {
    for f in [
        "hostile-header-length-max.safetensors",
        "hostile-shape-overflow.safetensors",
        "hostile-shape-product-wraps.safetensors",
        "hostile-offsets-past-end.safetensors",
    ] {
        refuse_model(&fuzz_file("safetensors", f), &[]);
    }
}

/// A change to a model's metadata map and its preprocessing (as JSON).
type Change = dyn Fn(&mut BTreeMap<String, String>, &mut serde_json::Value);

/// The MNIST model saved again with one metadata field changed.
fn mnist_with(
    dir: &Path,
    name: &str,
    change: &dyn Fn(&mut BTreeMap<String, String>, &mut serde_json::Value),
) -> PathBuf {
    let w = weights::load(&asset("assets/mnist-tiny-cnn.safetensors")).unwrap();
    let mut meta = w.metadata.clone();
    let mut pre: serde_json::Value = serde_json::from_str(&meta["glassbox.preprocess"]).unwrap();
    change(&mut meta, &mut pre);
    meta.insert("glassbox.preprocess".into(), pre.to_string());
    let p = dir.join(name);
    weights::save_safetensors(&p, &w.tensors, &meta, weights::StoreAs::F32).unwrap();
    p
}

#[test]
fn preprocessing_metadata_is_checked_against_the_weights() {
    let dir = tmp();
    let d = dir.path();
    let cases: Vec<(&str, Box<Change>, &[&str])> = vec![
        (
            "mean-length.safetensors",
            Box::new(|_, p| p["mean"] = serde_json::json!([1.0, 2.0, 3.0])),
            &["`mean`", "3 values", "1 input channel"],
        ),
        (
            "size-0.safetensors",
            Box::new(|_, p| p["size"] = serde_json::json!(0)),
            &["`size`", "is 0", "between 8 and 4096"],
        ),
        (
            "size-huge.safetensors",
            Box::new(|_, p| p["size"] = serde_json::json!(4_000_000_000u64)),
            &["`size`", "4000000000"],
        ),
        (
            "gray-contradicts.safetensors",
            Box::new(|_, p| {
                p["gray"] = serde_json::json!(false);
                p["mean"] = serde_json::json!([0.0, 0.0, 0.0]);
                p["std"] = serde_json::json!([1.0, 1.0, 1.0]);
            }),
            &["`gray`", "first convolution takes 1"],
        ),
        (
            "std-0.safetensors",
            Box::new(|_, p| p["std"] = serde_json::json!([0.0])),
            &["`std`", "greater than 0"],
        ),
        (
            "std-nan.safetensors",
            Box::new(|_, p| p["std"] = serde_json::json!("NaN")),
            &["glassbox.preprocess"],
        ),
        (
            "labels-count.safetensors",
            Box::new(|m, _| {
                m.insert("glassbox.labels".into(), r#"["a","b"]"#.into());
            }),
            &["2 class names", "10 classes"],
        ),
        (
            "arch-unknown.safetensors",
            Box::new(|m, _| {
                m.insert("glassbox.arch".into(), "transformer".into());
            }),
            &["glassbox.arch", "unknown architecture `transformer`"],
        ),
        (
            "resize-0.safetensors",
            Box::new(|_, p| p["resize"] = serde_json::json!({"shorter_side_then_crop": {"resize": 0}})),
            &["`resize`", "is 0"],
        ),
    ];
    for (name, change, expect) in cases {
        let p = mnist_with(d, name, &*change);
        refuse_model(&p, expect);
    }
    // A size the network cannot run at: the one forward at load says so, in one line.
    let p = mnist_with(d, "size-64.safetensors", &|_, p| p["size"] = serde_json::json!(64));
    refuse_model(&p, &["tiny-cnn cannot run on a 1x64x64 input", "libtorch refused it"]);
}

#[test]
fn weights_that_do_not_fit_the_architecture_are_refused_before_building() {
    let dir = tmp();
    let d = dir.path();
    let w = weights::load(&asset("assets/mnist-tiny-cnn.safetensors")).unwrap();
    let save = |name: &str, tensors: Vec<(String, tch::Tensor)>| {
        let p = d.join(name);
        weights::save_safetensors(&p, &tensors, &w.metadata, weights::StoreAs::F32).unwrap();
        p
    };
    let swap = |key: &str, t: tch::Tensor| -> Vec<(String, tch::Tensor)> {
        w.tensors
            .iter()
            .map(|(n, v)| (n.clone(), if n == key { t.shallow_clone() } else { v.shallow_clone() }))
            .collect()
    };
    let opts = (tch::Kind::Float, tch::Device::Cpu);
    // A classifier that claims 10^9 classes of zero features: nothing that size is built.
    let p = save(
        "classes-huge.safetensors",
        swap("fc2.weight", tch::Tensor::zeros([1_000_000_000, 0], opts)),
    );
    refuse_model(&p, &["`fc2.weight`", "[1000000000, 0]", "[classes, 128]"]);
    let p = save(
        "no-class.safetensors",
        swap("fc2.weight", tch::Tensor::zeros([0, 128], opts)),
    );
    refuse_model(&p, &["no class"]);
    let p = save(
        "conv-channels.safetensors",
        swap("conv1.weight", tch::Tensor::zeros([16, 1_000_000, 0, 3], opts)),
    );
    refuse_model(&p, &["`conv1.weight`", "1 or 3"]);
    let nan = w.get("fc1.weight").unwrap().copy();
    let _ = nan.get(0).get(0).fill_(f64::NAN);
    let p = save("nan.safetensors", swap("fc1.weight", nan));
    refuse_model(&p, &["`fc1.weight`", "1 NaN or infinite"]);
}

#[test]
fn an_image_declaring_60000x60000_pixels_is_refused_before_decoding() {
    let img = fuzz_file("image", "hostile-60000x60000.png");
    let run = glassbox_measured(&["predict", path_str(&img)]);
    assert_clean_error(
        &run.output,
        &["hostile-60000x60000.png", "60000x60000", "--max-image-pixels"],
    );
    assert!(run.max_rss_mib < MAX_RSS_MIB, "{:.0} MiB", run.max_rss_mib);
    for f in [
        "hostile-bmp-60000.bmp",
        "hostile-gif-65535.gif",
        "hostile-1x4000000000.png",
    ] {
        let run = glassbox_measured(&["predict", path_str(&fuzz_file("image", f))]);
        assert_clean_error(&run.output, &[f]);
        assert!(run.max_rss_mib < MAX_RSS_MIB, "{f}: {:.0} MiB", run.max_rss_mib);
    }
    // The limit is the user's to change: a lower one refuses the sample photo, saying so.
    let chelsea = asset("assets/samples/chelsea.png");
    let o = glassbox(&["predict", "--max-image-pixels", "1000", path_str(&chelsea)]);
    assert_clean_error(&o, &["451x300", "at most 1000 pixels"]);
}

#[test]
fn a_libtorch_error_in_a_command_is_one_line_not_an_internal_error() {
    // A layer name that exists but whose kernel cannot be shown would be a bug; a model whose
    // forward fails at an input size is the user's file: the one-line error of the rest.
    let dir = tmp();
    let p = mnist_with(dir.path(), "size-40.safetensors", &|_, p| {
        p["size"] = serde_json::json!(40)
    });
    let o = glassbox(&["layers", "--model", path_str(&p)]);
    assert_clean_error(&o, &["size-40.safetensors", "cannot run on a 1x40x40 input"]);
}

#[test]
fn devices_and_pipes_are_not_read_forever() {
    let chelsea = asset("assets/samples/chelsea.png");
    let o = glassbox(&["predict", "--model", "/dev/zero", path_str(&chelsea)]);
    assert_clean_error(&o, &["/dev/zero", "not a regular file"]);
    let o = glassbox(&["predict", "/dev/zero"]);
    assert_clean_error(&o, &["/dev/zero", "not a regular file"]);
}
