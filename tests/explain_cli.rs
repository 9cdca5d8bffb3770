//! `glassbox explain`, `sanity`, `activations`, `filters` from the command line.
mod common;

use common::*;
use glassbox_engine::weights;

fn chelsea() -> String {
    path_str(&asset("assets/samples/chelsea.png")).to_owned()
}

#[test]
fn explain_writes_overlay_and_raw_with_metadata() {
    let dir = tmp();
    let png = dir.path().join("cam.png");
    let raw = dir.path().join("cam.safetensors");
    let o = glassbox(&[
        "explain",
        &chelsea(),
        "--method",
        "grad-cam",
        "--out",
        path_str(&png),
        "--save-raw",
        path_str(&raw),
        "--metrics",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("layer _swish#2") && stdout(&o).contains("deletion AUC"),
        "{}",
        stdout(&o)
    );
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (224, 224));
    let w = weights::load(&raw).unwrap();
    assert_eq!(w.get("input").unwrap().size(), [1, 3, 224, 224]);
    assert_eq!(w.get("logits").unwrap().size(), [1, 1000]);
    assert_eq!(w.get("attribution").unwrap().size(), [1, 1, 7, 7]);
    assert!(
        w.get("attribution").unwrap().min().double_value(&[]) >= 0.0,
        "CAM is after ReLU"
    );
    for k in ["method", "target", "layer", "deletion_auc", "insertion_auc"] {
        assert!(w.metadata.contains_key(k), "metadata {k}: {:?}", w.metadata);
    }
    assert_eq!(w.metadata["method"], "grad-cam");
    assert_eq!(w.metadata["target"], "282");
}

#[test]
fn explain_input_shaped_methods_and_parameters_in_metadata() {
    let dir = tmp();
    let raw = dir.path().join("ig.safetensors");
    let o = glassbox(&[
        "explain",
        &chelsea(),
        "--method",
        "ig",
        "--steps",
        "8",
        "--baseline",
        "black",
        "--target",
        "285",
        "--save-raw",
        path_str(&raw),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("completeness error"), "{}", stdout(&o));
    let w = weights::load(&raw).unwrap();
    assert_eq!(w.get("attribution").unwrap().size(), [1, 3, 224, 224]);
    assert_eq!(w.metadata["steps"], "8");
    assert_eq!(w.metadata["baseline"], "black");
    assert_eq!(w.metadata["target"], "285");
    assert!(w.metadata.contains_key("completeness_error"));
}

#[test]
fn bad_explain_input_lists_the_valid_choices() {
    let c = chelsea();
    // Arguments are typed: clap names the value, lists the choices, suggests the closest.
    let o = glassbox(&["explain", &c, "--method", "lime"]);
    assert_usage_error(
        &o,
        &["invalid value 'lime'", "--method", "grad-cam", "integrated-gradients"],
    );
    let o = glassbox(&["explain", &c, "--method", "gradcm"]);
    assert_usage_error(&o, &["invalid value 'gradcm'", "a similar value exists: 'grad-cam'"]);
    assert!(
        glassbox(&["explain", &c, "--method", "ig"]).status.success(),
        "ig is an alias"
    );
    assert_usage_error(
        &glassbox(&["explain", &c, "--method", "ig", "--steps", "0"]),
        &["--steps", "0 is not in 1..=4096"],
    );
    assert_usage_error(
        &glassbox(&["explain", &c, "--method", "smoothgrad", "--samples", "100000"]),
        &["--samples", "100000 is not in 1..=4096"],
    );
    assert_usage_error(
        &glassbox(&["explain", &c, "--method", "ig", "--baseline", "grey"]),
        &["--baseline", "zero, black or blur"],
    );
    assert_usage_error(
        &glassbox(&["explain", &c, "--method", "gradient", "--opacity", "2"]),
        &["--opacity", "between 0 and 1"],
    );
    assert_usage_error(
        &glassbox(&["explain", &c, "--method", "gradient", "--colormap", "rainbow"]),
        &["--colormap", "turbo", "viridis"],
    );
    // What only the model can tell stays the engine's one-line error.
    assert_clean_error(
        &glassbox(&["explain", &c, "--method", "grad-cam", "--layer", "nope"]),
        &["unknown layer `nope`", "_swish#2"],
    );
    assert_clean_error(
        &glassbox(&["explain", &c, "--method", "grad-cam", "--layer", "_fc"]),
        &["`_fc`", "not spatial"],
    );
    assert_clean_error(
        &glassbox(&["explain", &c, "--method", "gradient", "--target", "1000"]),
        &["0 to 999"],
    );
    assert_clean_error(
        &glassbox(&["explain", &c, "--method", "occlusion", "--window", "500"]),
        &["--window"],
    );
    assert_clean_error(
        &glassbox(&["explain", &c, "--method", "ig", "--baseline", "0.5"]),
        &["--baseline 0.5", "occlusion fill value"],
    );
}

#[test]
fn many_inputs_write_one_output_each_and_shards_partition_them() {
    let dir = tmp();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for (i, name) in ["a.png", "b.png", "c.png"].iter().enumerate() {
        let src = if i % 2 == 0 {
            "assets/samples/chelsea.png"
        } else {
            "assets/samples/coffee.png"
        };
        std::fs::copy(asset(src), imgs.join(name)).unwrap();
    }
    std::fs::write(imgs.join("broken.png"), b"not a png").unwrap();
    let all = dir.path().join("all");
    let o = glassbox(&[
        "explain",
        path_str(&imgs),
        "--method",
        "gradient",
        "--model",
        "efficientnet-lite0",
        "--save-raw",
        path_str(&all),
    ]);
    // The broken file is reported and skipped; the others are all written.
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("skipped") && stderr(&o).contains("broken.png"),
        "{}",
        stderr(&o)
    );
    let mut names: Vec<String> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "a.gradient.safetensors",
            "b.gradient.safetensors",
            "c.gradient.safetensors"
        ]
    );
    // Two shards together give the same files, byte for byte.
    let parts = dir.path().join("parts");
    for s in ["0/2", "1/2"] {
        let _ = glassbox(&[
            "explain",
            path_str(&imgs),
            "--method",
            "gradient",
            "--shard",
            s,
            "--save-raw",
            path_str(&parts),
        ]);
    }
    for n in &names {
        assert_eq!(
            std::fs::read(all.join(n)).unwrap(),
            std::fs::read(parts.join(n)).unwrap(),
            "{n}"
        );
    }
    assert_usage_error(
        &glassbox(&["explain", path_str(&imgs), "--method", "gradient", "--shard", "2/2"]),
        &["--shard", "0 <= I < N"],
    );
}

#[test]
fn sanity_prints_a_correlation_per_step_and_a_verdict() {
    let o = glassbox(&[
        "sanity",
        &chelsea(),
        "--method",
        "grad-cam",
        "--model",
        "mnist",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let steps = v["steps"].as_array().unwrap();
    let groups: Vec<&str> = steps.iter().map(|s| s["randomised"].as_str().unwrap()).collect();
    assert_eq!(
        groups,
        ["fc2", "fc1", "bn2", "conv2", "bn1", "conv1"],
        "top layer first"
    );
    let rho: Vec<f64> = steps.iter().map(|s| s["spearman"].as_f64().unwrap()).collect();
    // Grad-CAM depends on what the model learned: randomising even the top layer alone
    // leaves little of the map's ranking (measured -0.13 to -0.32 at every step).
    assert!(rho.iter().all(|r| r.is_finite() && r.abs() < 0.5), "{rho:?}");
    // The verdict follows the last step (every layer random) and quotes it.
    let last = *rho.last().unwrap();
    assert_eq!(v["passed"], last.abs() < 0.5);
    let verdict = v["verdict"].as_str().unwrap();
    assert!(
        verdict.starts_with("passes") && verdict.contains(&format!("{last:.2}")),
        "{verdict}"
    );
    // The maps side by side: the trained model's and one per step, 4 pixels apart.
    let dir = tmp();
    let strip = dir.path().join("strip.png");
    let o = glassbox(&[
        "sanity",
        &chelsea(),
        "--method",
        "grad-cam",
        "--model",
        "mnist",
        "--out",
        path_str(&strip),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = assert_picture(&strip, 7 * 28 + 6 * 4, 28, 50);
    let tile = |k: u32| image::imageops::crop_imm(&img, k * 32, 0, 28, 28).to_image();
    assert_ne!(
        tile(0).as_raw(),
        tile(6).as_raw(),
        "the fully random model's map differs"
    );
}

#[test]
fn activations_and_filters_grids() {
    let dir = tmp();
    let act = dir.path().join("act.png");
    let raw = dir.path().join("act.safetensors");
    let o = glassbox(&[
        "activations",
        &chelsea(),
        "--layer",
        "_blocks.2",
        "--out",
        path_str(&act),
        "--save-raw",
        path_str(&raw),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("24 channels"), "{}", stdout(&o));
    assert_grid(&assert_picture(&act, 0, 0, 50), 24, 56, 56);
    assert_eq!(
        weights::load(&raw).unwrap().get("activation").unwrap().size(),
        [1, 24, 56, 56]
    );
    let o = glassbox(&["activations", &chelsea(), "--layer", "_fc", "--out", path_str(&act)]);
    assert_clean_error(&o, &["`_fc`", "not channels"]);

    let f = dir.path().join("f.png");
    let lite0 = glassbox_engine::model::Model::open("efficientnet-lite0", None, tch::Device::Cpu).unwrap();
    for layer in ["_conv_stem", "_blocks.3._depthwise_conv", "_blocks.3._project_conv"] {
        let o = glassbox(&["filters", "--layer", layer, "--out", path_str(&f)]);
        assert!(o.status.success(), "{layer}: {}", stderr(&o));
        // The layout's size, and every clear weight's sign in its cell.
        let img = image::open(&f).unwrap().to_rgb8();
        let w = lite0.vs.variables()[&format!("{layer}.weight")].shallow_clone();
        assert_filters_show(&img, &w, glassbox_engine::defaults::FILTER_TILES as i64, true);
    }
    // A deeper 3x3 kernel, one tile per input channel (the small CNN's second convolution),
    // and at most 40 tiles.
    let o = glassbox(&[
        "filters",
        "--model",
        "mnist",
        "--layer",
        "conv2",
        "--per-input",
        "--max-tiles",
        "40",
        "--out",
        path_str(&f),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mnist = glassbox_engine::model::Model::open("mnist", None, tch::Device::Cpu).unwrap();
    let w = mnist.vs.variables()["conv2.weight"].shallow_clone();
    assert_filters_show(&image::open(&f).unwrap().to_rgb8(), &w, 40, false);
    let o = glassbox(&["filters", "--layer", "_bn0", "--out", path_str(&f)]);
    assert_clean_error(&o, &["not a convolution", "_conv_stem"]);
}

/// The three LRP methods from the command line: an overlay and the raw map with its
/// composite in the metadata, the faithfulness curves, a folder in two shards, and the
/// sanity check (on the MNIST model: LRP depends on what the model learned).
#[test]
fn lrp_from_the_command_line_with_curves_shards_and_the_sanity_check() {
    let dir = tmp();
    for (method, composite) in [
        ("lrp-epsilon-plus-flat", "EpsilonPlusFlat"),
        ("lrp-epsilon-gamma-box", "EpsilonGammaBox"),
        ("lrp-alpha2-beta1", "EpsilonAlpha2Beta1"),
    ] {
        let png = dir.path().join(format!("{method}.png"));
        let raw = dir.path().join(format!("{method}.safetensors"));
        let o = glassbox(&[
            "explain",
            &chelsea(),
            "--method",
            method,
            "--out",
            path_str(&png),
            "--save-raw",
            path_str(&raw),
            "--metrics",
        ]);
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        assert!(stdout(&o).contains("deletion AUC"), "{}", stdout(&o));
        let img = image::open(&png).unwrap();
        assert_eq!((img.width(), img.height()), (224, 224));
        let w = weights::load(&raw).unwrap();
        assert_eq!(w.metadata["method"], method);
        assert_eq!(w.metadata["composite"], composite);
        assert!(w.metadata.contains_key("deletion_auc"), "{:?}", w.metadata);
        assert_eq!(w.get("attribution").unwrap().size(), [1, 3, 224, 224]);
    }
    // A folder in two shards: the same files as in one run.
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for n in ["a", "b"] {
        std::fs::copy(asset("assets/samples/chelsea.png"), imgs.join(format!("{n}.png"))).unwrap();
    }
    let (all, parts) = (dir.path().join("all"), dir.path().join("parts"));
    let run = |out: &std::path::Path, shard: Option<&str>| {
        let mut args = vec![
            "explain",
            path_str(&imgs),
            "--method",
            "lrp",
            "--save-raw",
            path_str(out),
        ];
        if let Some(s) = shard {
            args.extend(["--shard", s]);
        }
        let o = glassbox(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run(&all, None);
    run(&parts, Some("0/2"));
    run(&parts, Some("1/2"));
    for n in [
        "a.lrp-epsilon-plus-flat.safetensors",
        "b.lrp-epsilon-plus-flat.safetensors",
    ] {
        assert_eq!(
            std::fs::read(all.join(n)).unwrap(),
            std::fs::read(parts.join(n)).unwrap(),
            "{n}"
        );
    }
    let o = glassbox(&[
        "sanity",
        &chelsea(),
        "--method",
        "lrp-epsilon-plus-flat",
        "--model",
        "mnist",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let rho: Vec<f64> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["spearman"].as_f64().unwrap())
        .collect();
    assert_eq!(rho.len(), 6, "every layer group of the MNIST model");
    assert!(rho.iter().all(|r| r.is_finite()), "{rho:?}");
}

/// The scoreboard: every method scored on an image (the MNIST model, so that thirteen
/// methods and their randomised twins take seconds), as JSON, and over a folder the means;
/// one CAM method without --layer scores its candidate layers (Lite0) and names the best.
#[test]
fn explain_score_ranks_every_method_and_a_cams_layers() {
    let dir = tmp();
    let imgs = dir.path().join("imgs");
    std::fs::create_dir(&imgs).unwrap();
    for n in ["chelsea", "coffee"] {
        std::fs::copy(asset(&format!("assets/samples/{n}.png")), imgs.join(format!("{n}.png"))).unwrap();
    }
    let o = glassbox(&[
        "explain",
        path_str(&imgs),
        "--model",
        "mnist",
        "--method",
        "all",
        "--score",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "one object per image, then the means");
    for v in &lines[..2] {
        let methods = v["methods"].as_array().unwrap();
        let failed = v["failed"].as_array().unwrap();
        assert_eq!(
            methods.len() + failed.len(),
            glassbox_engine::explain::METHODS.len(),
            "{v}"
        );
        assert!(methods.len() >= 12, "{v}");
        let roads: Vec<f64> = methods.iter().map(|m| m["road"].as_f64().unwrap()).collect();
        assert!(roads.windows(2).all(|w| w[0] >= w[1]), "best ROAD first: {roads:?}");
        for m in methods {
            for k in ["deletion_auc", "insertion_auc"] {
                let x = m[k].as_f64().unwrap();
                assert!((0.0..=1.0).contains(&x), "{k} {x}");
            }
            assert!(m["road"].as_f64().unwrap().abs() <= 0.5);
            assert!(m["sanity_spearman"].as_f64().unwrap().abs() <= 1.0);
            assert!(m["method"].is_string());
        }
        assert_eq!(v["best"]["road"], methods[0]["method"], "{v}");
    }
    assert_eq!(lines[2]["images"], 2);
    assert!(lines[2]["means"].as_array().unwrap().len() >= 12);

    let o = glassbox(&["explain", &chelsea(), "--method", "grad-cam", "--score"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("layer") && text.contains("best layer by ROAD: "),
        "{text}"
    );
    let best = text
        .lines()
        .last()
        .unwrap()
        .rsplit("--layer ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert!(best.starts_with("_blocks.") || best == "_swish#2", "{text}");
    // `all` is the scoreboard's alone.
    assert_clean_error(
        &glassbox(&["explain", &chelsea(), "--method", "all"]),
        &["--method all", "--score"],
    );
}
