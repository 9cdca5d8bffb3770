//! The CLI contract other checks rely on.
mod common;

use common::*;
use glassbox_engine::model::Model;
use tch::Device;

#[test]
fn predict_json_and_save_raw() {
    let dir = tmp();
    let raw = dir.path().join("raw.safetensors");
    let imgs = [asset("assets/samples/coffee.png"), asset("assets/samples/chelsea.png")];
    let o = glassbox(&[
        "predict",
        "--json",
        "--top",
        "4",
        "--save-raw",
        path_str(&raw),
        path_str(&imgs[0]),
        path_str(&imgs[1]),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for (line, img) in lines.iter().zip(&imgs) {
        assert_eq!(line["image"], path_str(img));
        let top = line["top"].as_array().unwrap();
        assert_eq!(top.len(), 4);
        let p: Vec<f64> = top.iter().map(|c| c["probability"].as_f64().unwrap()).collect();
        assert!(p.windows(2).all(|w| w[0] >= w[1]), "sorted: {p:?}");
        assert!(p.iter().sum::<f64>() <= 1.0 + 1e-6);
        assert!(top[0]["label"].is_string() && top[0]["index"].is_i64());
    }
    // The raw file holds the exact input (batch in argument order) and the logits.
    let w = glassbox_engine::weights::load(&raw).unwrap();
    let input = w.get("input").unwrap();
    let logits = w.get("logits").unwrap();
    assert_eq!(input.size(), [2, 3, 224, 224]);
    assert_eq!(logits.size(), [2, 1000]);
    let m = Model::open("efficientnet-lite0", None, Device::Cpu).unwrap();
    assert!(m.logits(input).allclose(logits, 1e-4, 1e-4, false));
    assert_eq!(
        logits.argmax(-1, false).int64_value(&[0]),
        lines[0]["top"][0]["index"].as_i64().unwrap()
    );
}

#[test]
fn layers_lists_every_traced_layer() {
    let o = glassbox(&["layers", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let layers: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "_conv_stem");
    assert_eq!(*names.last().unwrap(), "_fc");
    assert!(names.contains(&"_blocks.15"));
    let stem = &layers[0];
    assert_eq!(stem["kind"], "conv");
    assert_eq!(stem["params"], 32 * 3 * 3 * 3);
    assert_eq!(stem["shape"], serde_json::json!([1, 32, 112, 112]));
    let o = glassbox(&["layers", "--model", "mnist"]);
    assert!(
        stdout(&o).contains("conv2") && stdout(&o).contains("tiny-cnn"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn exif_orientation_is_honoured() {
    // A 40x20 JPEG whose EXIF says "rotate 90° clockwise" (orientation 6) is 20 wide, 40 high.
    let img = image::DynamicImage::new_rgb8(40, 20);
    let mut jpg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg)
        .unwrap();
    let tiff: Vec<u8> = [
        &b"II*\0"[..],
        &8u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &0x0112u16.to_le_bytes(),
        &3u16.to_le_bytes(),
        &1u32.to_le_bytes(),
        &6u16.to_le_bytes(),
        &[0, 0],
        &0u32.to_le_bytes(),
    ]
    .concat();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpg[2..]);
    let decoded = glassbox_engine::preprocess::decode(&out, std::path::Path::new("rotated.jpg")).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (20, 40));
}

#[test]
fn predict_shards_union_equals_the_whole_run() {
    let dir = tmp();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for i in 0..5 {
        let src = if i % 2 == 0 {
            "assets/samples/chelsea.png"
        } else {
            "assets/samples/coffee.png"
        };
        std::fs::copy(asset(src), imgs.join(format!("{i}.png"))).unwrap();
    }
    let run = |extra: &[&str]| {
        let mut args = vec!["predict", "--json", "--batch-size", "2", path_str(&imgs)];
        args.extend_from_slice(extra);
        let o = glassbox(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let whole = run(&[]);
    assert_eq!(whole.len(), 5);
    let mut union: Vec<String> = ["0/3", "1/3", "2/3"]
        .iter()
        .flat_map(|s| run(&["--shard", s]))
        .collect();
    union.sort();
    let mut sorted = whole.clone();
    sorted.sort();
    assert_eq!(union, sorted, "byte for byte");
}

#[test]
fn activations_for_a_directory_write_one_grid_per_image() {
    let dir = tmp();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    std::fs::copy(asset("assets/samples/chelsea.png"), imgs.join("a.png")).unwrap();
    std::fs::copy(asset("assets/samples/coffee.png"), imgs.join("b.png")).unwrap();
    let out = dir.path().join("grids");
    let o = glassbox(&[
        "activations",
        path_str(&imgs),
        "--layer",
        "relu2",
        "--model",
        "mnist",
        "--out",
        path_str(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // One grid per image: relu2's 32 channels of 7x7, and the two photos give different grids.
    let a = assert_picture(&out.join("a.relu2.png"), 0, 0, 20);
    let b = assert_picture(&out.join("b.relu2.png"), 0, 0, 20);
    assert_grid(&a, 32, 14, 14);
    assert_grid(&b, 32, 14, 14);
    assert_ne!(a.as_raw(), b.as_raw());
}

#[test]
fn version_names_libtorch_and_cuda_and_completions_are_printed() {
    let o = glassbox(&["--version"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = stdout(&o);
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
    assert!(v.contains("libtorch 2.11.0"), "{v}");
    assert!(v.contains("CUDA: "), "{v}");
    let o = glassbox(&["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = stdout(&o);
    for word in [
        "glassbox",
        "receptive-field",
        "--max-image-pixels",
        "integrated-gradients",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let o = glassbox(&["completions", "tcsh"]);
    assert_usage_error(&o, &["invalid value 'tcsh'", "bash", "zsh", "fish"]);
}
