//! The desktop app, driven headlessly by egui_kittest: real engine, real model, clicks by
//! role and label, dropped files, and frames stepped until the background work lands.
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use egui::accesskit::Role;
use egui_kittest::kittest::Queryable;
use egui_kittest::{Harness, SnapshotOptions};
use glassbox::app::bench::DroppedPath;
use glassbox::app::{GlassboxApp, Options};
use glassbox::engine::explain::Method;

fn app() -> Harness<'static, GlassboxApp> {
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1600.0, 1000.0))
        .build_eframe(|cc| {
            GlassboxApp::new(
                &cc.egui_ctx,
                None,
                Options {
                    model: None,
                    arch: None,
                    image: None,
                    device: tch::Device::Cpu,
                    fresh: true,
                    screenshots: None,
                    timings: false,
                },
            )
        });
    settle(&mut h, "the first image's views", |a| a.views_ready() && !a.busy());
    h
}

/// Steps frames until `done` holds (the engine works on its own thread meanwhile).
fn settle(h: &mut Harness<'static, GlassboxApp>, what: &str, done: impl Fn(&GlassboxApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "timed out waiting for {what}; errors: {:?}",
            h.state().errors
        );
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.step();
}

fn drop_file(h: &mut Harness<'static, GlassboxApp>, p: PathBuf) {
    h.input_mut().dropped_files.push(Arc::new(DroppedPath(p)));
    h.step();
}

#[test]
fn dropping_chelsea_names_a_cat_and_every_view_follows() {
    let mut h = app();
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee", |a| {
        a.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png")) && a.views_ready() && !a.busy()
    });
    let coffee_top = h.state().top[0].index;
    drop_file(&mut h, asset("assets/samples/chelsea.png"));
    settle(&mut h, "chelsea", |a| {
        a.input.as_ref().is_some_and(|i| i.name.ends_with("chelsea.png")) && a.views_ready() && !a.busy()
    });
    let s = h.state();
    // ImageNet 281-285 are the domestic cats.
    assert!((281..=285).contains(&s.top[0].index), "{:?}", s.top);
    assert_ne!(s.top[0].index, coffee_top);
    // The prediction panel names it, as a clickable row.
    let label = format!("{} {:.1} %", s.top[0].label, s.top[0].probability * 100.0);
    h.get_by_role_and_label(Role::Button, &label);
    assert!(h.query_all_by_label_contains("cat").count() > 0);
    // Every view follows the new image: map, activation grid, faithfulness.
    let s = h.state();
    assert!(s.slots.iter().all(|sl| sl.result.is_some() && sl.faith.is_some()));
    assert!(s.grid.is_some() && s.channel.is_some());
    assert!(s.model.as_ref().unwrap().device == "CPU");
}

#[test]
fn choosing_grad_cam_draws_an_overlay_and_clicking_a_class_retargets() {
    let mut h = app();
    // Switch the method to gradient and back to Grad-CAM through the combo box.
    for (current, name) in [("grad-cam", "gradient"), ("gradient", "grad-cam")] {
        h.get_by_value(current).click();
        h.run_steps(3);
        h.get_by_label(name).click();
        h.step();
        let want: Method = name.parse().unwrap();
        settle(&mut h, name, |a| {
            a.slots[0].method == want && a.slots[0].result.as_ref().is_some_and(|r| r.method == want) && !a.busy()
        });
    }
    let s = h.state();
    let r = s.slots[0].result.as_ref().unwrap();
    assert_eq!((r.map.w, r.map.h), (224, 224));
    assert_eq!(r.layer.as_deref(), Some("_swish#2"));
    let pic = s.slot_picture(&s.slots[0]).expect("an overlay");
    let input = s.input.as_ref().unwrap().view.to_rgb8();
    assert_ne!(pic.as_raw(), input.as_raw(), "the overlay changes the picture");
    // Click the second class: every explanation now explains it.
    let second = s.top[1].clone();
    let label = format!("{} {:.1} %", second.label, second.probability * 100.0);
    h.get_by_role_and_label(Role::Button, &label).click();
    h.step();
    settle(&mut h, "the new target", |a| {
        a.explained_target == Some(second.index) && a.slots[0].result.as_ref().is_some_and(|r| r.target == second.index)
    });
}

#[test]
fn picking_a_layer_shows_its_grid_and_a_channel_with_its_kernel() {
    let mut h = app();
    h.get_by_role_and_label(Role::Button, "_conv_stem  conv  32×112×112")
        .click();
    h.step();
    settle(&mut h, "the stem's channels", |a| {
        a.channels.as_ref().is_some_and(|c| c.layer == "_conv_stem")
            && a.channel.as_ref().is_some_and(|d| d.kernel.is_some())
    });
    let s = h.state();
    let ch = s.channels.as_ref().unwrap();
    assert_eq!((ch.c, ch.h, ch.w), (32, 112, 112));
    let (img, layout) = s.grid.as_ref().unwrap();
    assert!(layout.cols * layout.rows >= 32);
    assert!(img.width() > 0);
    let d = s.channel.as_ref().unwrap();
    assert_eq!(d.channel, ch.order[0].0, "the strongest channel is chosen first");
    let (conv, shape, _) = d.kernel.as_ref().unwrap();
    assert_eq!(conv, "_conv_stem");
    assert_eq!(shape, &vec![1, 3, 3, 3]);
    assert_eq!(s.filters.as_ref().unwrap().0, "_conv_stem");
    // The filters view follows the chosen layer: a block shows its last convolution.
    h.state_mut().set_layer("_blocks.3".into());
    settle(&mut h, "block 3", |a| {
        a.channels.as_ref().is_some_and(|c| c.layer == "_blocks.3") && !a.busy()
    });
    let s = h.state();
    assert_eq!(s.filters.as_ref().unwrap().0, "_blocks.3._project_conv");
    assert_eq!(s.settings.filter_conv.as_deref(), Some("_blocks.3._project_conv"));
}

#[test]
fn a_text_file_shows_an_error_and_the_app_stays_usable() {
    let mut h = app();
    let before = h.state().top.clone();
    let dir = tmp();
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "not a picture").unwrap();
    drop_file(&mut h, txt);
    settle(&mut h, "the error", |a| !a.errors.is_empty() && !a.busy());
    let msg = h.state().errors.join(" ");
    assert!(msg.contains("notes.txt") && msg.contains("not an image"), "{msg}");
    h.get_by_label_contains("not an image");
    // The previous state stays; the app keeps working.
    assert_eq!(h.state().top.len(), before.len());
    assert_eq!(h.state().top[0].index, before[0].index);
    h.get_by_role_and_label(Role::Button, "Dismiss").click();
    h.step();
    assert!(h.state().errors.is_empty());
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee after the error", |a| {
        a.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png")) && a.views_ready() && !a.busy()
    });
}

#[test]
fn a_long_method_shows_progress_and_cancel_stops_it() {
    let mut h = app();
    let id = h.state().slots[0].id;
    {
        let a = h.state_mut();
        a.slots[0].params.samples = 4096;
    }
    h.state_mut().set_method(id, Method::SmoothGrad);
    settle(&mut h, "progress", |a| a.slots[0].progress.is_some_and(|p| p.0 > 0));
    assert!(h.state().slots[0].result.is_none());
    h.get_by_role_and_label(Role::Button, "Cancel").click();
    h.step();
    settle(&mut h, "the cancel", |a| a.slots[0].running.is_none() && !a.busy());
    let s = h.state();
    assert!(s.slots[0].result.is_none(), "a cancelled method leaves no map");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    // And the app goes on: a new method runs to the end.
    h.state_mut().set_method(id, Method::Gradient);
    settle(&mut h, "gradient after cancel", |a| a.slots[0].result.is_some());
}

#[test]
fn steady_frames_upload_no_textures_and_exports_write_files() {
    let mut h = app();
    let n = h.state().uploads;
    for _ in 0..20 {
        h.step();
    }
    assert_eq!(h.state().uploads, n, "nothing changed, nothing uploaded");
    let dir = tmp();
    use glassbox::app::ExportWhat;
    let s = h.state();
    let id = s.slots[0].id;
    for (what, name) in [
        (ExportWhat::Input, "input.png"),
        (ExportWhat::Overlay(id), "overlay.png"),
        (ExportWhat::Activations, "grid.png"),
        (ExportWhat::Channel, "channel.png"),
        (ExportWhat::Filters, "filters.png"),
        (ExportWhat::PredictionChart, "top.svg"),
        (ExportWhat::FaithfulnessChart(id), "faith.png"),
    ] {
        let p = dir.path().join(name);
        s.export(what, &p).unwrap();
        assert!(std::fs::metadata(&p).unwrap().len() > 100, "{name}");
    }
    let e = s
        .export(ExportWhat::Input, &dir.path().join("x.txt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains(".png"), "{e}");
}

#[test]
fn snapshot_of_the_main_window() {
    let mut h = app();
    h.run_steps(5);
    h.snapshot_options(
        "main_window",
        &SnapshotOptions::new().threshold(1.5).max_failed_pixels(4000),
    );
}

#[test]
fn dropping_weights_opens_the_model_and_bad_weights_keep_the_old_one() {
    let mut h = app();
    drop_file(&mut h, asset("assets/mnist-tiny-cnn.safetensors"));
    settle(&mut h, "the MNIST model", |a| {
        a.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn") && a.views_ready() && !a.busy()
    });
    let s = h.state();
    let m = s.model.as_ref().unwrap();
    assert_eq!((m.classes, m.input.as_str()), (10, "1x28x28"));
    // Every view follows: the image as this model sees it, its classes, its layers.
    assert_eq!(s.input.as_ref().unwrap().view.width(), 28);
    assert!(s.top.iter().all(|c| c.index < 10));
    assert!(s
        .channels
        .as_ref()
        .is_some_and(|c| m.layers.iter().any(|l| l.name == c.layer)));
    assert!(s.filters.as_ref().is_some_and(|f| m.convs.contains(&f.0)));
    h.snapshot_options(
        "mnist_model",
        &SnapshotOptions::new().threshold(1.5).max_failed_pixels(4000),
    );
    // A weights file that is not one: an error, and the MNIST model stays.
    let dir = tmp();
    let bad = dir.path().join("broken.pth");
    std::fs::write(&bad, b"PK\x03\x04 not really a zip").unwrap();
    drop_file(&mut h, bad);
    settle(&mut h, "the error", |a| !a.errors.is_empty() && !a.busy());
    let msg = h.state().errors.join(" ");
    assert!(
        msg.contains("broken.pth") && msg.contains("previous model stays"),
        "{msg}"
    );
    assert_eq!(h.state().model.as_ref().unwrap().arch, "tiny-cnn");
}

/// eframe's storage, in memory.
#[derive(Default)]
struct Mem(std::collections::HashMap<String, String>);

impl eframe::Storage for Mem {
    fn get_string(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn set_string(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
    fn remove_string(&mut self, key: &str) {
        self.0.remove(key);
    }
    fn flush(&mut self) {}
}

#[test]
fn the_app_remembers_model_image_methods_and_layer() {
    use eframe::App as _;
    let mut h = app();
    let id = h.state().slots[0].id;
    h.state_mut().set_method(id, Method::GradCamPlusPlus);
    h.state_mut().set_layer("_blocks.3".into());
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee", |a| {
        a.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png")) && a.views_ready() && !a.busy()
    });
    let mut mem = Mem::default();
    h.state_mut().save(&mut mem);
    // A new session with that storage starts where this one ended.
    let ctx = egui::Context::default();
    let opts = |fresh| Options {
        model: None,
        arch: None,
        image: None,
        device: tch::Device::Cpu,
        fresh,
        screenshots: None,
        timings: false,
    };
    let again = GlassboxApp::new(&ctx, Some(&mem), opts(false));
    assert_eq!(again.settings.image, Some(asset("assets/samples/coffee.png")));
    assert_eq!(again.settings.layer.as_deref(), Some("_blocks.3"));
    assert_eq!(again.settings.methods, ["grad-cam++"]);
    assert_eq!(again.slots[0].method, Method::GradCamPlusPlus);
    assert_eq!(again.settings.model, "efficientnet-lite0");
    // --fresh ignores it.
    let fresh = GlassboxApp::new(&ctx, Some(&mem), opts(true));
    assert_eq!(fresh.settings, glassbox::app::Settings::default());
}
