//! `glassbox report`: one self-contained HTML page, rendered by a real browser.
mod common;

use common::*;

/// Fraction of a region's pixels that are not (nearly) white.
fn ink(img: &image::RgbImage, x0: u32, y0: u32, w: u32, h: u32) -> f64 {
    let mut n = 0;
    for y in y0..(y0 + h).min(img.height()) {
        for x in x0..(x0 + w).min(img.width()) {
            let p = img.get_pixel(x, y);
            if p.0.iter().any(|&c| c < 200) {
                n += 1;
            }
        }
    }
    n as f64 / (w * h) as f64
}

#[test]
fn a_report_is_one_page_that_a_browser_draws_offline() {
    let dir = tmp();
    let page = dir.path().join("lesson.html");
    let o = glassbox(&[
        "report",
        path_str(&asset("assets/samples/chelsea.png")),
        "--methods",
        "grad-cam,occlusion",
        "--title",
        "What does a CNN look at?",
        "--out",
        path_str(&page),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert_self_contained(&html);
    // Input, two maps and the activation grid as pictures; the chart as SVG; the model card.
    assert_eq!(html.matches("data:image/png;base64,").count(), 4);
    for want in [
        "What does a CNN look at?",
        "tiger cat",
        "grad-cam of tiger cat",
        "occlusion of tiger cat",
        "<svg",
        "Model card",
        "efficientnet-lite0",
        "_blocks.10",
    ] {
        assert!(html.contains(want), "{want}");
    }
    // Moved elsewhere, it still shows everything: Chromium draws the pictures.
    let moved = dir.path().join("mailed");
    std::fs::create_dir(&moved).unwrap();
    std::fs::rename(&page, moved.join("copy.html")).unwrap();
    let shot = render_html(&moved.join("copy.html"), 1280, 1400);
    assert_eq!((shot.width(), shot.height()), (1280, 1400));
    // The input photo (left, under the title) is drawn: a region full of colour, not white.
    assert!(ink(&shot, 90, 200, 200, 200) > 0.9, "the input photo is drawn");
    // The Grad-CAM overlay further down is drawn too.
    assert!(ink(&shot, 90, 780, 200, 200) > 0.9, "the map is drawn");
    // And the page is not one colour.
    assert!(ink(&shot, 0, 0, 1280, 1400) < 0.9);
}

#[test]
fn a_trained_model_brings_its_record_and_per_class_accuracy_to_the_card() {
    let dir = tmp();
    let model = dir.path().join("scratch.safetensors");
    let o = glassbox(&[
        "finetune",
        "--dataset",
        "mnist",
        "--scratch",
        "--per-class",
        "30",
        "--epochs",
        "1",
        "--out",
        path_str(&model),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let page = dir.path().join("r.html");
    let o = glassbox(&[
        "report",
        path_str(&asset("assets/samples/chelsea.png")),
        "--model",
        path_str(&model),
        "--out",
        path_str(&page),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Training record") && html.contains("data_fingerprint"));
    assert!(html.contains("Accuracy per class"));
    // Refuses to overwrite, and to write anything but .html.
    assert_clean_error(
        &glassbox(&[
            "report",
            path_str(&asset("assets/samples/chelsea.png")),
            "--out",
            path_str(&page),
        ]),
        &["already exists", "--force"],
    );
    let bad = dir.path().join("r.txt");
    assert_clean_error(
        &glassbox(&[
            "report",
            path_str(&asset("assets/samples/chelsea.png")),
            "--out",
            path_str(&bad),
        ]),
        &["written as .html"],
    );
}
