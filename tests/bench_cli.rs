//! Every `glassbox-bench` mode runs, at its smallest size, and prints the fields its
//! sentence in BENCHMARKS.md quotes: the benchmarks cannot rot unseen. (The figures
//! themselves are `make bench`'s, from the release build; nothing here is timed.)
mod common;

use common::*;

fn chelsea() -> String {
    path_str(&asset("assets/samples/chelsea.png")).to_owned()
}

/// Runs the real `glassbox-bench` binary with the data folder of the checkout.
fn bench(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_glassbox-bench"))
        .args(args)
        .env("GLASSBOX_DATA", root().join("data"))
        .output()
        .expect("the glassbox-bench binary runs")
}

fn bench_json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let o = bench(&all);
    assert!(o.status.success(), "bench {args:?}: {}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("bench {args:?}: {e}: {}", stdout(&o)))
}

/// A JSON array of strings.
fn strings<'a>(v: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("`{field}` missing: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

fn positive(v: &serde_json::Value, field: &str) -> f64 {
    let x = v[field].as_f64().unwrap_or_else(|| panic!("`{field}` missing: {v}"));
    assert!(x.is_finite() && x > 0.0, "`{field}` = {x}");
    x
}

#[test]
fn core_and_methods() {
    let v = bench_json(&["--runs", "1", "--model", "mnist", "--methods", &chelsea()]);
    let timings = v["core"]["timings"].as_array().unwrap();
    assert!(timings.len() >= 3, "{v}");
    let methods = v["methods"].as_array().unwrap();
    assert_eq!(methods.len(), glassbox_engine::explain::METHODS.len(), "{v}");
    for m in methods {
        positive(m, "median_ms");
        positive(m, "bound_ms");
    }
}

#[test]
fn the_app_headless_drop_and_frames() {
    let v = bench_json(&["--ui", &chelsea(), "--runs", "1"]);
    for f in [
        "frame_median_ms",
        "frame_p99_ms",
        "drop_to_views_median_ms",
        "bound_median_ms",
        "ratio",
    ] {
        positive(&v, f);
    }
}

#[test]
fn an_edit_through_the_app_beside_the_same_requests_on_the_engine() {
    let v = bench_json(&["--edits", &chelsea(), "--runs", "1"]);
    for f in [
        "app_edit_to_views_ms",
        "bound_ms",
        "ratio",
        "engine_edit_to_views_ms",
        "undo_median_ms",
    ] {
        positive(&v, f);
    }
    // The bound replays what the app refreshed: the analysis (prediction, channels, maps),
    // both maps' curves, the channel's kernel and the filters, after the edit itself.
    let views = strings(&v, "views");
    for kind in [
        "Edit x1",
        "Analyze x1",
        "Faithfulness x2",
        "ChannelKernel x1",
        "Filters x1",
    ] {
        assert!(views.contains(&kind), "{kind} not among {views:?}");
    }
}

#[test]
fn dataset_examples_beside_the_forward() {
    let v = bench_json(&["--examples", "10", "--model", "mnist"]);
    assert_eq!(v["images"], 10);
    for f in ["images_per_s", "forward_images_per_s", "read_s", "top_ms"] {
        positive(&v, f);
    }
}

#[test]
fn draw_a_digit() {
    let v = bench_json(&["--draw", "2"]);
    assert_eq!(v["strokes"], 2);
    positive(&v, "stroke_to_views_median_ms");
}

#[test]
fn retraining_at_the_smallest_sizes() {
    let dir = tmp();
    let v = bench_json(&["--finetune", path_str(dir.path()), "--smallest", "--photos", &chelsea()]);
    assert_eq!(v["head"].as_array().unwrap().len(), 1, "{v}");
    positive(&v["head"][0], "wall_s");
    positive(&v, "full_images_per_s");
    assert_eq!(v["full_runs_images_per_s"].as_array().unwrap().len(), 1);
    assert_eq!(v["photos_top1"][0][1], "tiger cat", "{v}");
    // The features the PyTorch side of scripts/bench-finetune.sh reads.
    assert!(dir.path().join("features.safetensors").exists());
}

#[test]
fn imprinting_at_the_smallest_sizes() {
    let dir = tmp();
    let v = bench_json(&["--imprint", path_str(dir.path()), "--smallest", "--photos", &chelsea()]);
    let cals = v["calibrations"].as_array().unwrap();
    assert_eq!(cals.len(), 2, "Glassbox's and the plain baseline: {v}");
    for c in cals {
        assert_eq!(c["pairs"]["pairs"], 45);
        assert_eq!(c["ten"]["recall"].as_array().unwrap().len(), 10);
        assert_eq!(c["tradeoff"].as_array().unwrap().len(), 7);
    }
    assert_eq!(v["test_images"], 30);
    assert_eq!(v["default_epochs_recall"].as_array().unwrap().len(), 2);
}

#[test]
fn a_soak_sends_every_kind_of_request_and_every_method_and_its_exit_code_follows_the_growth() {
    let o = bench(&[
        "--soak",
        "15",
        "--soak-images",
        &chelsea(),
        path_str(&asset("assets/samples/coffee.png")),
        "--model",
        "mnist",
        "--json",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    let kinds = strings(&v, "request_kinds");
    for k in [
        "SetImage",
        "Predict",
        "Analyze",
        "Activations",
        "Explain",
        "Faithfulness",
        "ChannelKernel",
        "Filters",
        "ReceptiveField",
        "Unfold",
        "Sanity",
        "Edit",
        "Edit(Undo)",
        "Visualize",
        "Examples",
        "Train(Start)",
        "Train(Discard)",
    ] {
        assert!(kinds.contains(&k), "{k} not among {kinds:?}");
    }
    // Fifteen cycles: each of the thirteen attribution methods at least once, in the warm-up.
    assert_eq!(v["cycles"], 15);
    assert_eq!(v["warm_up_cycles"], glassbox_engine::explain::METHODS.len());
    let (start, end) = (positive(&v, "rss_start_mib"), positive(&v, "rss_end_mib"));
    let growth = v["growth_percent"].as_f64().unwrap();
    assert!((growth - (end - start) / start * 100.0).abs() < 1e-6, "{v}");
    // Each figure is read once free memory is given back: at most what was held just before.
    let held = v["rss_before_trim_mib"].as_array().unwrap();
    for r in v["rss_mib"].as_array().unwrap() {
        let h = held
            .iter()
            .find(|h| h[0] == r[0])
            .unwrap_or_else(|| panic!("no held figure at {r}: {v}"));
        assert!(r[1].as_f64().unwrap() <= h[1].as_f64().unwrap() + 1.0, "{r} above {h}");
    }
    // 5 % or more after the warm-up fails the run, with the figures in one line.
    if growth >= 5.0 {
        assert_clean_error(&o, &["resident memory grew", "a leak"]);
    } else {
        assert!(o.status.success(), "{}", stderr(&o));
    }
}
