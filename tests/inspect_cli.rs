//! The command line for what the app shows: one channel, a receptive field, charts, and
//! the app itself refusing to start without a display.
mod common;

use std::process::Command;

use common::*;

/// `glassbox receptive-field chelsea.png --layer L --at AT` with more arguments.
fn receptive_field(layer: &str, at: &str, more: &[&str]) -> std::process::Output {
    let img = asset("assets/samples/chelsea.png");
    let mut args = vec!["receptive-field", path_str(&img), "--layer", layer, "--at", at];
    args.extend_from_slice(more);
    glassbox(&args)
}

#[test]
fn channel_prints_stats_and_writes_its_pictures() {
    let dir = tmp();
    let out = dir.path().join("ch");
    let o = glassbox(&[
        "channel",
        path_str(&asset("assets/samples/chelsea.png")),
        "--layer",
        "_blocks.0._bn2",
        "--channel",
        "3",
        "--out",
        path_str(&out),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["channels"], 16);
    assert_eq!(v["conv"], "_blocks.0._project_conv");
    assert_eq!(v["kernel"], serde_json::json!([1, 32, 1, 1]));
    assert!(v["min"].as_f64().unwrap() <= v["mean"].as_f64().unwrap());
    // The channel (56x56 values) large, over the 224-pixel input, and its 32 weights.
    let heat = assert_picture(&out.join("channel.png"), 224, 224, 50);
    let over = assert_picture(&out.join("overlay.png"), 224, 224, 50);
    // Both show the same channel: the overlay changes the photo most where the heat map
    // (viridis: brighter is stronger) is brightest.
    let m = glassbox_engine::model::Model::open("efficientnet-lite0", None, tch::Device::Cpu).unwrap();
    let view = m
        .preprocess
        .view(&image::open(asset("assets/samples/chelsea.png")).unwrap())
        .to_rgb8();
    let (_, change) = difference(&over, &view);
    let r = correlation(&luminance(&heat), &change);
    // (Not one to one: the overlay's strength is the square root of the value, and its
    // change depends on the photo's colour under it; 0.58 measured.)
    assert!(r > 0.45, "overlay change against the heat map, r = {r}");
    // The kernel: output channel 3's 32 weights as a one-row mixing matrix, signs in place.
    let w = m.vs.variables()["_blocks.0._project_conv.weight"].narrow(0, 3, 1);
    assert_filters_show(
        &image::open(out.join("kernel.png")).unwrap().to_rgb8(),
        &w,
        glassbox_engine::defaults::KERNEL_TILES as i64,
        false,
    );
    let o = glassbox(&[
        "channel",
        path_str(&asset("assets/samples/chelsea.png")),
        "--layer",
        "_blocks.0._bn2",
        "--channel",
        "16",
    ]);
    assert_clean_error(&o, &["channel 16 does not exist", "0 to 15"]);
}

#[test]
fn receptive_field_grows_with_depth() {
    let side = |layer: &str| -> u64 {
        let o = receptive_field(layer, "3,3", &["--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        v["bbox"]["x1"].as_u64().unwrap() - v["bbox"]["x0"].as_u64().unwrap() + 1
    };
    // The stem is a 3x3 convolution with stride 2: 3 pixels (the first row/col are padding).
    assert_eq!(side("_conv_stem"), 3);
    assert!(side("_blocks.3") > side("_blocks.0") && side("_blocks.0") > 3);
    let dir = tmp();
    let png = dir.path().join("rf.png");
    let o = receptive_field("_blocks.15", "0,0", &["--out", path_str(&png)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("depends on input pixels"), "{}", stdout(&o));
    assert_eq!(image::open(&png).unwrap().width(), 224);
    assert_clean_error(&receptive_field("_blocks.15", "7,0", &[]), &["outside", "7x7"]);
    assert_usage_error(&receptive_field("_blocks.15", "three", &[]), &["--at", "ROW,COL"]);
}

#[test]
fn predict_and_explain_write_charts() {
    let dir = tmp();
    let top = dir.path().join("top.svg");
    let o = glassbox(&[
        "predict",
        path_str(&asset("assets/samples/chelsea.png")),
        "--chart",
        path_str(&top),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&top).unwrap();
    assert!(svg.contains("<svg") && svg.contains("cat"));
    let faith = dir.path().join("faith.png");
    let o = glassbox(&[
        "explain",
        path_str(&asset("assets/samples/chelsea.png")),
        "--method",
        "grad-cam",
        "--metrics",
        "--chart",
        path_str(&faith),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_faithfulness_chart(&image::open(&faith).unwrap().to_rgb8());
    // --chart without --metrics is refused by the parser, naming what is missing.
    let o = glassbox(&[
        "explain",
        path_str(&asset("assets/samples/chelsea.png")),
        "--chart",
        path_str(&faith),
    ]);
    assert_usage_error(&o, &["--metrics"]);
}

#[test]
fn the_app_without_a_display_says_so_in_one_line() {
    let o = Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .arg("gui")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .unwrap();
    assert_clean_error(&o, &["no display", "xvfb-run"]);
    let o = Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(["gui", "/no/such/photo.png"])
        .output()
        .unwrap();
    assert_clean_error(&o, &["/no/such/photo.png", "no such image"]);
}
