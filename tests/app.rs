//! The desktop app, driven headlessly by egui_kittest: real engine, real model, clicks by
//! role and label, dropped files, and frames stepped until the background work lands.
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::app::*;
use common::*;
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::{Harness, SnapshotOptions};
use glassbox_app::tiles::{Layout, Pane};
use glassbox_app::DroppedPath;
use glassbox_app::{Command, GlassboxApp, Options};
use glassbox_engine::explain::Method;
use glassbox_engine::model::Model;

/// Snapshot comparisons, in one place: kittest's default colour threshold and at most 100
/// differing pixels, so that a changed label (or number) fails.
fn snapshot_options() -> SnapshotOptions {
    SnapshotOptions::new()
        .max_failed_pixels(100)
        .output_path(root().join("tests/snapshots"))
}

#[test]
fn dropping_chelsea_names_a_cat_and_every_view_follows() {
    let mut h = app();
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png")) && a.state.views_ready() && !a.busy()
    });
    let coffee_top = h.state().state.top[0].index;
    drop_file(&mut h, asset("assets/samples/chelsea.png"));
    settle(&mut h, "chelsea", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name.ends_with("chelsea.png")) && a.state.views_ready() && !a.busy()
    });
    let s = h.state();
    // ImageNet 281-285 are the domestic cats.
    assert!((281..=285).contains(&s.state.top[0].index), "{:?}", s.state.top);
    assert_ne!(s.state.top[0].index, coffee_top);
    // The prediction panel names it, as a clickable row.
    let label = format!("{} {:.1} %", s.state.top[0].label, s.state.top[0].probability * 100.0);
    h.get_by_role_and_label(Role::Button, &label);
    assert!(h.query_all_by_label_contains("cat").count() > 0);
    // Every view follows the new image: map, activation grid, faithfulness.
    let s = h.state();
    assert!(s.state.slots.iter().all(|sl| sl.result.is_some() && sl.faith.is_some()));
    assert!(s.state.grid.is_some() && s.state.channel.is_some());
    assert!(s.state.model.as_ref().unwrap().device == "CPU");
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
            a.state.slots[0].method == want
                && a.state.slots[0].result.as_ref().is_some_and(|r| r.method == want)
                && !a.busy()
        });
    }
    let s = h.state();
    let r = s.state.slots[0].result.as_ref().unwrap();
    assert_eq!((r.map.w, r.map.h), (224, 224));
    assert_eq!(r.layer.as_deref(), Some("_swish#2"));
    let pic = s.state.slot_picture(&s.state.slots[0]).expect("an overlay");
    let input = s.state.input.as_ref().unwrap().view.to_rgb8();
    assert_ne!(pic.as_raw(), input.as_raw(), "the overlay changes the picture");
    // Click the second class: every explanation now explains it.
    let second = s.state.top[1].clone();
    let label = format!("{} {:.1} %", second.label, second.probability * 100.0);
    h.get_by_role_and_label(Role::Button, &label).click();
    h.step();
    settle(&mut h, "the new target", |a| {
        a.state.explained_target == Some(second.index)
            && a.state.slots[0]
                .result
                .as_ref()
                .is_some_and(|r| r.target == second.index)
    });
}

#[test]
fn picking_a_layer_shows_its_grid_and_a_channel_with_its_kernel() {
    let mut h = app();
    h.get_by_role_and_label(Role::Button, "_conv_stem  conv  32×112×112")
        .click();
    h.step();
    settle(&mut h, "the stem's channels", |a| {
        a.state.channels.as_ref().is_some_and(|c| c.layer == "_conv_stem")
            && a.state.channel.as_ref().is_some_and(|d| d.kernel.is_some())
    });
    let s = h.state();
    let ch = s.state.channels.as_ref().unwrap();
    assert_eq!((ch.c, ch.h, ch.w), (32, 112, 112));
    let (img, layout) = s.state.grid.as_ref().unwrap();
    assert!(layout.cols * layout.rows >= 32);
    assert!(img.width() > 0);
    let d = s.state.channel.as_ref().unwrap();
    assert_eq!(d.channel, ch.order[0].0, "the strongest channel is chosen first");
    let (conv, shape, _) = d.kernel.as_ref().unwrap();
    assert_eq!(conv, "_conv_stem");
    assert_eq!(shape, &vec![1, 3, 3, 3]);
    assert_eq!(s.state.filters.as_ref().unwrap().0, "_conv_stem");
    // The filters view follows the chosen layer: a block shows its last convolution.
    h.state_mut().apply(Command::SetLayer("_blocks.3".into()));
    settle(&mut h, "block 3", |a| {
        a.state.channels.as_ref().is_some_and(|c| c.layer == "_blocks.3") && !a.busy()
    });
    let s = h.state();
    assert_eq!(s.state.filters.as_ref().unwrap().0, "_blocks.3._project_conv");
    assert_eq!(s.state.settings.filter_conv.as_deref(), Some("_blocks.3._project_conv"));
}

#[test]
fn a_text_file_shows_an_error_and_the_app_stays_usable() {
    let mut h = app();
    let before = h.state().state.top.clone();
    let dir = tmp();
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "not a picture").unwrap();
    drop_file(&mut h, txt);
    settle(&mut h, "the error", |a| !a.state.errors.is_empty() && !a.busy());
    let msg = h.state().state.errors.join(" ");
    assert!(msg.contains("notes.txt") && msg.contains("not an image"), "{msg}");
    h.get_by_label_contains("not an image");
    // The previous state stays; the app keeps working.
    assert_eq!(h.state().state.top.len(), before.len());
    assert_eq!(h.state().state.top[0].index, before[0].index);
    h.get_by_role_and_label(Role::Button, "Dismiss").click();
    h.step();
    assert!(h.state().state.errors.is_empty());
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee after the error", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png")) && a.state.views_ready() && !a.busy()
    });
}

#[test]
fn a_long_method_shows_progress_and_cancel_stops_it() {
    let mut h = app();
    let id = h.state().state.slots[0].id;
    {
        let a = h.state_mut();
        a.state.slots[0].params.samples = 4096;
    }
    h.state_mut().apply(Command::SetMethod(id, Method::SmoothGrad));
    settle(&mut h, "progress", |a| {
        a.state.slots[0].progress.is_some_and(|p| p.0 > 0)
    });
    assert!(h.state().state.slots[0].result.is_none());
    h.get_by_role_and_label(Role::Button, "Cancel").click();
    h.step();
    settle(&mut h, "the cancel", |a| {
        a.state.slots[0].running.is_none() && !a.busy()
    });
    let s = h.state();
    assert!(s.state.slots[0].result.is_none(), "a cancelled method leaves no map");
    assert!(s.state.errors.is_empty(), "{:?}", s.state.errors);
    // And the app goes on: a new method runs to the end.
    h.state_mut().apply(Command::SetMethod(id, Method::Gradient));
    settle(&mut h, "gradient after cancel", |a| a.state.slots[0].result.is_some());
}

#[test]
fn steady_frames_upload_no_textures_and_exports_write_files() {
    let mut h = app();
    let n = h.state().uploads();
    for _ in 0..20 {
        h.step();
    }
    assert_eq!(h.state().uploads(), n, "nothing changed, nothing uploaded");
    let dir = tmp();
    use glassbox_app::ExportWhat;
    let s = h.state();
    let id = s.state.slots[0].id;
    for (what, name) in [
        (ExportWhat::Input, "input.png"),
        (ExportWhat::Overlay(id), "overlay.png"),
        (ExportWhat::Activations, "grid.png"),
        (ExportWhat::Channel, "channel.png"),
        (ExportWhat::Filters, "filters.png"),
        (ExportWhat::PredictionChart, "top.svg"),
        (ExportWhat::FaithfulnessChart(id), "faith.png"),
        (ExportWhat::Report, "report.html"),
    ] {
        let p = dir.path().join(name);
        s.state.export(what, &p).unwrap();
        // Each file shows what its view shows.
        let view = s.state.input.as_ref().unwrap().view.to_rgb8();
        match what {
            ExportWhat::Input => {
                // The model's own view of the photo, pixel for pixel: made here again.
                let m = Model::open("efficientnet-lite0", None, tch::Device::Cpu).unwrap();
                let want = m
                    .preprocess
                    .view(&image::open(asset("assets/samples/chelsea.png")).unwrap());
                assert_eq!(assert_picture(&p, 224, 224, 1000), want.to_rgb8(), "{name}");
            }
            ExportWhat::Overlay(_) => {
                // The map over the photo: changed from it, and the photo shows through.
                let img = assert_picture(&p, 224, 224, 1000);
                let (mean, _) = difference(&img, &view);
                assert!(mean > 10.0, "{name}: {mean} from the photo");
                let r = correlation(&luminance(&img), &luminance(&view));
                assert!(r > 0.3, "{name}: the photo shows through, r = {r}");
            }
            ExportWhat::Activations => {
                let ch = s.state.channels.as_ref().unwrap();
                assert_grid(&assert_picture(&p, 0, 0, 50), ch.c, ch.h, ch.w);
            }
            ExportWhat::Channel => {
                // The channel over the photo: changed most where the channel is strongest.
                let img = assert_picture(&p, 224, 224, 100);
                let ch = s.state.channels.as_ref().unwrap();
                let c = s.state.channel.as_ref().unwrap().channel;
                let (_, per) = difference(&img, &view);
                let (mut values, mut changes) = (Vec::new(), Vec::new());
                for y in 0..ch.h {
                    for x in 0..ch.w {
                        values.push(ch.data[(c * ch.h + y) * ch.w + x] as f64);
                        let (px, py) = ((x * 224 + 112) / ch.w, (y * 224 + 112) / ch.h);
                        changes.push(per[py * 224 + px]);
                    }
                }
                let r = correlation(&values, &changes);
                assert!(r > 0.6, "{name}: change against the channel's values, r = {r}");
            }
            ExportWhat::Filters => {
                let (conv, _, _) = s.state.filters.as_ref().unwrap();
                let m = Model::open("efficientnet-lite0", None, tch::Device::Cpu).unwrap();
                let w = m.vs.variables()[&format!("{conv}.weight")].shallow_clone();
                let img = image::open(&p).unwrap().to_rgb8();
                let tiles = glassbox_engine::defaults::FILTER_TILES as i64;
                assert_filters_show(&img, &w, tiles, !s.state.settings.per_input);
            }
            ExportWhat::FaithfulnessChart(_) => {
                assert_faithfulness_chart(&image::open(&p).unwrap().to_rgb8());
            }
            ExportWhat::PredictionChart => {
                let svg = std::fs::read_to_string(&p).unwrap();
                assert!(svg.starts_with("<svg"), "{name}");
                for c in &s.state.top {
                    let first = c.label.split(',').next().unwrap();
                    assert!(svg.contains(first), "{name} lacks {first}");
                }
            }
            ExportWhat::Report => {
                let html = std::fs::read_to_string(&p).unwrap();
                assert_self_contained(&html);
                assert!(html.contains(&s.state.top[0].label) && html.contains("Model card"));
            }
        }
    }
    let e = s
        .state
        .export(ExportWhat::Input, &dir.path().join("x.txt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains(".png"), "{e}");
}

#[test]
fn snapshot_of_the_main_window_and_a_changed_label_fails_it() {
    let mut h = app();
    h.run_steps(5);
    h.snapshot_options("main_window", &snapshot_options());
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        return; // writing snapshots: the check below would write over it
    }
    // The same window with one class name changed is not the snapshot any more.
    h.state_mut().state.top[1].label = "Persian cat".into();
    h.run_steps(3);
    let changed = h.try_snapshot_options("main_window", &snapshot_options());
    assert!(changed.is_err(), "a changed label must fail the snapshot");
    for suffix in ["new", "diff"] {
        let _ = std::fs::remove_file(asset(&format!("tests/snapshots/main_window.{suffix}.png")));
    }
}

#[test]
fn long_class_names_are_elided_beside_their_numbers_at_1280x720() {
    use glassbox_app::panels::prediction::{rows_id, RowRects};
    let mut h = app_sized(1280.0, 720.0);
    let longest = tch::vision::imagenet::CLASSES
        .iter()
        .max_by_key(|c| c.len())
        .unwrap()
        .to_string();
    {
        let top = &mut h.state_mut().state.top;
        top[0].label = longest.clone();
        top[1].label = "bald eagle, American eagle, Haliaeetus leucocephalus".into();
        top[2].label = "malamute, malemute, Alaskan malamute".into();
    }
    h.run_steps(3);
    let rows: RowRects = h.ctx.data(|d| d.get_temp(rows_id())).expect("the rows were drawn");
    assert_eq!(rows.0.len(), 5);
    for (k, (name, numbers)) in rows.0.iter().enumerate() {
        assert!(
            name.max.x < numbers.min.x,
            "row {k}: the name ({name:?}) runs into the numbers ({numbers:?})"
        );
    }
    // The full name stays available: in the row's accessible label (and its tooltip).
    let p = h.state().state.top[0].probability;
    h.get_by_role_and_label(Role::Button, &format!("{longest} {:.1} %", p * 100.0));
}

#[test]
fn dropping_weights_opens_the_model_and_bad_weights_keep_the_old_one() {
    let mut h = app();
    drop_file(&mut h, asset("assets/mnist-tiny-cnn.safetensors"));
    settle(&mut h, "the MNIST model", |a| {
        a.state.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn") && a.state.views_ready() && !a.busy()
    });
    let s = h.state();
    let m = s.state.model.as_ref().unwrap();
    assert_eq!((m.classes, m.input.as_str()), (10, "1x28x28"));
    // Every view follows: the image as this model sees it, its classes, its layers.
    assert_eq!(s.state.input.as_ref().unwrap().view.width(), 28);
    assert!(s.state.top.iter().all(|c| c.index < 10));
    assert!(s
        .state
        .channels
        .as_ref()
        .is_some_and(|c| m.layers.iter().any(|l| l.name == c.layer)));
    assert!(s.state.filters.as_ref().is_some_and(|f| m.convs.contains(&f.0)));
    h.snapshot_options("mnist_model", &snapshot_options());
    // A weights file that is not one: an error, and the MNIST model stays.
    let dir = tmp();
    let bad = dir.path().join("broken.pth");
    std::fs::write(&bad, b"PK\x03\x04 not really a zip").unwrap();
    drop_file(&mut h, bad);
    settle(&mut h, "the error", |a| !a.state.errors.is_empty() && !a.busy());
    let msg = h.state().state.errors.join(" ");
    assert!(
        msg.contains("broken.pth") && msg.contains("previous model stays"),
        "{msg}"
    );
    assert_eq!(h.state().state.model.as_ref().unwrap().arch, "tiny-cnn");
}

/// eframe's storage, in memory.

#[test]
fn the_app_remembers_model_image_methods_and_layer() {
    use eframe::{App as _, Storage as _};
    let mut h = app();
    let id = h.state().state.slots[0].id;
    h.state_mut().apply(Command::SetMethod(id, Method::GradCamPlusPlus));
    h.state_mut().apply(Command::SetLayer("_blocks.3".into()));
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png")) && a.state.views_ready() && !a.busy()
    });
    let mut mem = Mem::default();
    h.state_mut().save(&mut mem);
    // A new session with that storage starts where this one ended.
    let ctx = egui::Context::default();
    let opts = |fresh| Options {
        model: None,
        arch: None,
        image: None,
        device: glassbox_engine::Device::Cpu,
        fresh,
        screenshots: None,
        timings: false,
    };
    let again = GlassboxApp::new(&ctx, Some(&mem), opts(false));
    assert_eq!(again.state.settings.image, Some(asset("assets/samples/coffee.png")));
    assert_eq!(again.state.settings.layer.as_deref(), Some("_blocks.3"));
    assert_eq!(again.state.settings.methods, ["grad-cam++"]);
    assert_eq!(again.state.slots[0].method, Method::GradCamPlusPlus);
    assert_eq!(again.state.settings.model.to_string(), "efficientnet-lite0");
    // --fresh ignores it.
    let fresh = GlassboxApp::new(&ctx, Some(&mem), opts(true));
    assert_eq!(fresh.state.settings, glassbox_app::Settings::default());
    // Remembered values out of range come back into it; broken settings start fresh and
    // say so in the error bar.
    let stored = mem.get_string(eframe::APP_KEY).unwrap();
    mem.set_string(
        eframe::APP_KEY,
        stored.replacen("opacity:", "opacity: 7.5, _old_opacity:", 1),
    );
    let clamped = GlassboxApp::new(&ctx, Some(&mem), opts(false));
    assert_eq!(clamped.state.settings.opacity, 1.0);
    assert_eq!(clamped.state.settings.layer.as_deref(), Some("_blocks.3"));
    mem.set_string(eframe::APP_KEY, stored[..stored.len() / 2].to_string());
    let broken = GlassboxApp::new(&ctx, Some(&mem), opts(false));
    assert_eq!(broken.state.settings, glassbox_app::Settings::default());
    assert!(
        broken
            .state
            .errors
            .iter()
            .any(|e| e.starts_with("the remembered settings are broken")
                && e.ends_with("starting with the default settings")),
        "{:?}",
        broken.state.errors
    );
}

/// Drops `file` and waits for the red bar; returns its text and the frames it took.
fn dropped_error(h: &mut Harness<'static, GlassboxApp>, file: PathBuf) -> (String, Duration) {
    let start = Instant::now();
    drop_file(h, file);
    settle(h, "the error", |a| !a.state.errors.is_empty() && !a.busy());
    let took = start.elapsed();
    let msg = h.state().state.errors.join(" ");
    h.get_by_role_and_label(Role::Button, "Dismiss").click();
    h.step();
    (msg, took)
}

#[test]
fn hostile_files_give_a_red_bar_and_the_app_keeps_its_model_and_image() {
    let mut h = app();
    let (top, input) = (
        h.state().state.top[0].index,
        h.state().state.input.as_ref().unwrap().name.clone(),
    );
    for f in [
        "pth-legacy/hostile-dup-bomb.pth",
        "pth-legacy/hostile-nested-append.pth",
        "pth-zip/hostile-declares-4gb.pth",
        "pth-zip/hostile-stride-zero-expand.pth",
        "safetensors/hostile-shape-overflow.safetensors",
        "image/hostile-60000x60000.png",
        "image/hostile-truncated.jpg",
    ] {
        let (msg, took) = dropped_error(&mut h, asset(&format!("tests/fuzz/{f}")));
        let name = f.rsplit('/').next().unwrap();
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains("stays open"), "{msg}");
        eprintln!("{name}: red bar after {:.0} ms", took.as_secs_f64() * 1e3);
        let s = h.state();
        assert_eq!(s.state.model.as_ref().unwrap().arch, "efficientnet-lite0", "{f}");
        assert_eq!(s.state.input.as_ref().unwrap().name, input, "{f}");
        assert_eq!(s.state.top[0].index, top, "{f}");
    }
    // A model whose metadata lies about its input: refused with the field, the model stays.
    let dir = tmp();
    let w = glassbox_engine::weights::load(&asset("assets/mnist-tiny-cnn.safetensors")).unwrap();
    let mut meta = w.metadata.clone();
    meta.insert(
        "glassbox.preprocess".into(),
        r#"{"size":28,"resize":"squash","gray":true,"mean":[127.5],"std":[0.0]}"#.into(),
    );
    let p = dir.path().join("std-zero.safetensors");
    glassbox_engine::weights::save_safetensors(&p, &w.tensors, &meta, glassbox_engine::weights::StoreAs::F32).unwrap();
    let (msg, _) = dropped_error(&mut h, p);
    assert!(msg.contains("`std`") && msg.contains("greater than 0"), "{msg}");
    assert_eq!(h.state().state.model.as_ref().unwrap().arch, "efficientnet-lite0");
}

#[test]
fn a_libtorch_error_or_a_panic_in_the_engine_is_a_red_bar_and_work_goes_on() {
    use glassbox_engine::worker::Fault;
    let mut h = app();
    for fault in [Fault::TorchError, Fault::Panic] {
        h.state_mut().apply(Command::InjectFault(fault));
        settle(&mut h, "the error", |a| !a.state.errors.is_empty() && !a.busy());
        let msg = h.state().state.errors.join(" ");
        assert!(msg.contains("injected fault"), "{msg}");
        assert!(!h.state().state.engine_lost);
        h.get_by_role_and_label(Role::Button, "Dismiss").click();
        h.step();
    }
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png")) && a.state.views_ready() && !a.busy()
    });
}

#[test]
fn a_lost_engine_is_said_never_working_forever_and_a_restart_brings_everything_back() {
    use glassbox_engine::worker::Fault;
    let mut h = app();
    let top = h.state().state.top[0].index;
    // Work in flight when the engine goes: it can never finish.
    let id = h.state().state.slots[0].id;
    h.state_mut().state.slots[0].params.samples = 4096;
    h.state_mut().apply(Command::SetMethod(id, Method::SmoothGrad));
    h.state_mut().apply(Command::InjectFault(Fault::KillThread));
    settle(&mut h, "the loss", |a| a.state.engine_lost);
    assert!(!h.state().busy(), "nothing is shown as working");
    h.get_by_label("engine stopped");
    h.get_by_label_contains("the engine stopped unexpectedly");
    // What was on screen stays.
    assert_eq!(h.state().state.top[0].index, top);
    h.get_by_role_and_label(Role::Button, "Restart engine").click();
    h.step();
    h.state_mut().apply(Command::SetMethod(id, Method::GradCam));
    settle(&mut h, "the restarted engine", |a| {
        !a.state.engine_lost && a.state.views_ready() && !a.busy()
    });
    let s = h.state();
    assert_eq!(s.state.top[0].index, top);
    assert!(s.state.errors.is_empty(), "{:?}", s.state.errors);
    assert_eq!(s.state.model.as_ref().unwrap().arch, "efficientnet-lite0");
}

/// A seeded random walk through the app: clicks on whatever buttons, combos, checkboxes
/// and pictures are on screen, drops of good and bad files, keys, cancels, layer, channel
/// and method changes, without waiting for the engine between actions. It must end
/// without a panic and with the app answering.
#[test]
fn a_random_walk_of_1200_actions_ends_with_the_app_responsive() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("WALK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2026);
    let actions: usize = std::env::var("WALK_ACTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let dir = tmp();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not an image").unwrap();
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let files: Vec<PathBuf> = vec![
        asset("assets/samples/chelsea.png"),
        asset("assets/samples/coffee.png"),
        asset("tests/fuzz/image/seed-gray16.png"),
        asset("tests/fuzz/image/seed-exif-rotated.jpg"),
        asset("assets/mnist-tiny-cnn.safetensors"),
        asset("assets/fashion-mnist-tiny-cnn.safetensors"),
        asset("tests/fuzz/pth-legacy/hostile-dup-bomb.pth"),
        asset("tests/fuzz/pth-zip/hostile-zip-bomb.pth"),
        asset("tests/fuzz/image/hostile-60000x60000.png"),
        asset("tests/refs/statedict-zip.pth"),
        text,
        empty,
        dir.path().to_path_buf(),
    ];
    // Buttons that open the desktop's file dialogs are left out (no portal here).
    let skip = |label: &str| label.ends_with('…') || label.contains("(PNG)") || label.contains("(SVG)");
    let clickable = [
        Role::Button,
        Role::CheckBox,
        Role::ComboBox,
        Role::RadioButton,
        Role::MenuItem,
    ];
    let mut h = app();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..actions {
        let roll = rng.random_range(0..100);
        let kind = match roll {
            0..=39 => {
                let nodes: Vec<(String, egui::Rect)> = h
                    .query_all_by(|n| clickable.contains(&n.role()))
                    .filter_map(|n| {
                        let label = n.accesskit_node().label().unwrap_or_default();
                        (!skip(&label)).then(|| (label, n.rect()))
                    })
                    .collect();
                if let Some((_, rect)) = nodes.get(rng.random_range(0..nodes.len().max(1))) {
                    click_at(&mut h, rect.center());
                }
                "click a widget"
            }
            40..=54 => {
                let pictures: Vec<egui::Rect> = h.query_all_by_role(Role::Image).map(|n| n.rect()).collect();
                if let Some(r) = pictures.get(rng.random_range(0..pictures.len().max(1))) {
                    let p = egui::pos2(
                        rng.random_range(r.left()..=r.right().max(r.left())),
                        rng.random_range(r.top()..=r.bottom().max(r.top())),
                    );
                    click_at(&mut h, p);
                }
                "click a picture"
            }
            55..=64 => {
                let f = files[rng.random_range(0..files.len())].clone();
                h.input_mut().dropped_files.push(Arc::new(DroppedPath(f)));
                "drop a file"
            }
            65..=72 => {
                let keys = [
                    (egui::Key::Escape, egui::Modifiers::NONE),
                    (egui::Key::Num1, egui::Modifiers::NONE),
                    (egui::Key::Num3, egui::Modifiers::NONE),
                    (egui::Key::N, egui::Modifiers::COMMAND),
                    (egui::Key::F1, egui::Modifiers::NONE),
                ];
                let (key, modifiers) = keys[rng.random_range(0..keys.len())];
                for pressed in [true, false] {
                    h.input_mut().events.push(egui::Event::Key {
                        key,
                        physical_key: None,
                        pressed,
                        repeat: false,
                        modifiers,
                    });
                }
                "press a key"
            }
            73..=89 => {
                let a = h.state_mut();
                let layers: Vec<String> = a
                    .state
                    .model
                    .as_ref()
                    .map(|m| {
                        m.layers
                            .iter()
                            .filter(|l| l.shape.len() == 4)
                            .map(|l| l.name.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                match rng.random_range(0..4) {
                    0 if !layers.is_empty() => {
                        a.apply(Command::SetLayer(layers[rng.random_range(0..layers.len())].clone()))
                    }
                    1 => {
                        let c = a.state.channels.as_ref().map_or(1, |c| c.c);
                        a.apply(Command::SelectChannel {
                            channel: rng.random_range(0..c + 2),
                            at: Some((rng.random_range(0..8), 0)),
                        });
                    }
                    _ => {
                        let methods = glassbox_engine::explain::METHODS;
                        let m = methods[rng.random_range(0..methods.len())];
                        let ids: Vec<usize> = a.state.slots.iter().map(|s| s.id).collect();
                        a.apply(Command::SetMethod(ids[rng.random_range(0..ids.len())], m));
                    }
                }
                "change layer, channel or method"
            }
            90..=95 => {
                h.state_mut().apply(Command::CancelAll);
                "cancel"
            }
            _ => {
                for _ in 0..rng.random_range(5..60) {
                    h.step();
                    std::thread::sleep(Duration::from_millis(2));
                }
                "wait"
            }
        };
        *counts.entry(kind).or_default() += 1;
        for _ in 0..rng.random_range(1..4) {
            h.step();
        }
        let a = h.state();
        assert!(!a.state.engine_lost, "the engine died during the walk");
    }
    eprintln!("walk of {actions} actions (seed {seed}): {counts:?}");
    // Everything pending finishes or was superseded; then the app still answers.
    settle(&mut h, "the end of the walk", |a| !a.busy());
    h.state_mut().state.errors.clear();
    h.state_mut()
        .apply(Command::OpenModel("efficientnet-lite0".into(), None));
    // The walk's own edits or retrained model, if any, are not worth keeping.
    if h.state().state.unsaved.question.is_some() {
        h.state_mut()
            .apply(Command::Answer(glassbox_app::unsaved::Answer::Discard));
    }
    drop_file(&mut h, asset("assets/samples/chelsea.png"));
    settle(&mut h, "chelsea after the walk", |a| {
        a.state.model.as_ref().is_some_and(|m| m.arch == "efficientnet-lite0")
            && a.state.input.as_ref().is_some_and(|i| i.name.ends_with("chelsea.png"))
            && a.state.views_ready()
            && !a.busy()
    });
    assert!(
        (281..=285).contains(&h.state().state.top[0].index),
        "{:?}",
        h.state().state.top
    );
}

#[test]
fn an_image_dropped_while_a_model_opens_is_the_one_shown() {
    // Found by the random walk: the opened model re-sent the previous image, which
    // superseded the one just dropped.
    let mut h = app();
    h.state_mut().apply(Command::OpenModel("mnist".into(), None));
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee on the MNIST model", |a| {
        a.state.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn")
            && a.state.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png"))
            && a.state.views_ready()
            && !a.busy()
    });
    assert_eq!(h.state().state.input.as_ref().unwrap().view.width(), 28);
}

/// The app on the MNIST model with `conv1`'s channels shown and the strongest one's kernel.
#[test]
fn painting_a_first_layer_kernel_changes_the_prediction_and_undo_restores_it_exactly() {
    let mut h = mnist_app_on_conv1();
    let before = h.state().state.top.clone();
    let c = h.state().state.channel.as_ref().unwrap().channel;
    // Brush: set to 5 (the default brush sets), then click the kernel's middle value.
    h.state_mut()
        .apply(Command::Edit(glassbox_engine::worker::EditRequest::Apply(
            "set conv1.weight[0,0,0,0]=0".parse().unwrap(),
        )));
    settle(&mut h, "a first edit", |a| a.state.edits.len() == 1 && !a.busy());
    let kernel = format!("kernel conv1.weight[{c},0]");
    h.get_by_label(&kernel).scroll_to_me();
    h.run_steps(3);
    h.get_by_label(&kernel).click();
    h.step();
    settle(&mut h, "the painted value", |a| {
        a.state.edits.len() == 2 && a.state.views_ready() && !a.busy()
    });
    let s = &h.state().state;
    assert_eq!(s.edits[1], format!("set conv1.weight[{c},0,1,1]=0"));
    let kernel = &s.channel.as_ref().unwrap().kernel_values;
    assert_eq!(kernel[4], 0.0, "the middle value is now the brush value");
    assert!(
        s.original_top.is_some(),
        "the original probabilities are there as ghost bars"
    );
    let painted = s.top.clone();
    assert!(
        painted.iter().zip(&before).any(|(a, b)| a.probability != b.probability),
        "the prediction follows the edit"
    );
    // Undo twice: the logits are bit for bit what they were.
    for _ in 0..2 {
        h.get_by_role_and_label(Role::Button, "Undo").click();
        h.step();
        settle(&mut h, "the undo", |a| a.state.views_ready() && !a.busy());
    }
    settle(&mut h, "no edits", |a| {
        a.state.edits.is_empty() && a.state.views_ready() && !a.busy()
    });
    let after = &h.state().state.top;
    for (a, b) in after.iter().zip(&before) {
        assert_eq!((a.index, a.logit.to_bits()), (b.index, b.logit.to_bits()));
    }
}

#[test]
fn a_knocked_out_channel_is_zero_shown_saved_and_reloaded_with_its_log() {
    let mut h = mnist_app_on_conv1();
    let c = h.state().state.channel.as_ref().unwrap().channel;
    h.get_by_role_and_label(Role::Button, &format!("Knock out channel {c}"))
        .scroll_to_me();
    h.run_steps(3);
    h.get_by_role_and_label(Role::Button, &format!("Knock out channel {c}"))
        .click();
    h.step();
    settle(&mut h, "the knock-out", |a| {
        a.state.knockouts.contains(&("conv1".to_string(), c as i64)) && a.state.views_ready() && !a.busy()
    });
    let s = &h.state().state;
    let ch = s.channels.as_ref().unwrap();
    let n = ch.h * ch.w;
    assert!(
        ch.data[c * n..(c + 1) * n].iter().all(|v| *v == 0.0),
        "the channel's activation is zero"
    );
    h.get_by_role_and_label(Role::Button, &format!("Bring channel back {c}"));
    // What the knock-out changed: only that channel, by minus its original activation.
    let diff = ch
        .minus(s.original_channels.as_ref().expect("the original channels"))
        .unwrap();
    for k in 0..ch.c {
        let changed = diff.data[k * n..(k + 1) * n].iter().any(|v| *v != 0.0);
        assert_eq!(changed, k == c, "channel {k}");
    }
    let grid_before = s.grid.as_ref().unwrap().0.clone();
    let top = s.top.clone();
    h.get_by_role_and_label(Role::CheckBox, "show the change").click();
    h.step();
    let s = &h.state().state;
    assert!(s.show_change);
    assert_ne!(
        s.grid.as_ref().unwrap().0.as_raw(),
        grid_before.as_raw(),
        "the grid shows the change"
    );
    // Save it (what the dialog's answer does), open it again: same logits, same log.
    let dir = tmp();
    let path = dir.path().join("knocked.safetensors");
    save_model_as(&mut h, &path);
    settle(&mut h, "the save", |a| a.state.notice.is_some() && !a.busy());
    let original = std::fs::read(asset("assets/mnist-tiny-cnn.safetensors")).unwrap();
    drop_file(&mut h, path.clone());
    settle(&mut h, "the saved model", |a| {
        a.state
            .model
            .as_ref()
            .is_some_and(|m| m.source.to_string().ends_with("knocked.safetensors"))
            && a.state.views_ready()
            && !a.busy()
    });
    let again = h.state().state.top.clone();
    for (a, b) in again.iter().zip(&top) {
        assert_eq!((a.index, a.logit.to_bits()), (b.index, b.logit.to_bits()));
    }
    // The reopened file shows the edit log it was saved with.
    assert_eq!(
        h.state().state.model.as_ref().unwrap().saved_edits,
        [format!("knockout conv1:{c}")]
    );
    h.get_by_label_contains("made before this file was saved (1)");
    let m = glassbox_engine::model::Model::open(path.as_path(), None, tch::Device::Cpu).unwrap();
    assert_eq!(glassbox_engine::edit::saved_log(&m), [format!("knockout conv1:{c}")]);
    assert!(m.knockouts.contains(&("conv1".to_string(), c as i64)));
    assert_eq!(
        std::fs::read(asset("assets/mnist-tiny-cnn.safetensors")).unwrap(),
        original
    );
}

#[test]
fn a_channels_batch_norm_numbers_and_a_whole_layer_can_be_edited() {
    let mut h = mnist_app_on_conv1();
    let d = h.state().state.channel.as_ref().unwrap();
    let c = d.channel;
    let names: Vec<&str> = d.channel_params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.weight"]);
    // A batch-norm weight set through the editor, then a whole-layer operation.
    h.state_mut()
        .apply(Command::Edit(glassbox_engine::worker::EditRequest::Apply(
            format!("set bn1.weight[{c}]=0").parse().unwrap(),
        )));
    settle(&mut h, "the bn edit", |a| {
        a.state.edits.len() == 1 && a.state.views_ready() && !a.busy()
    });
    let ch = h.state().state.channels.as_ref().unwrap();
    assert_eq!(ch.layer, "conv1", "conv1 is before the batch norm: unchanged by it");
    h.get_by_label("Zero layer").scroll_to_me();
    h.run_steps(3);
    h.get_by_role_and_label(Role::Button, "Zero layer").click();
    h.step();
    settle(&mut h, "the layer zeroed", |a| {
        a.state.edits.len() == 2 && a.state.views_ready() && !a.busy()
    });
    let s = &h.state().state;
    assert_eq!(s.edits[1], "zero conv1.weight");
    let ch = s.channels.as_ref().unwrap();
    assert!(ch.data.iter().all(|v| *v == 0.0), "a zeroed convolution outputs zeros");
}

#[test]
fn a_filter_picked_in_the_filters_view_opens_in_the_editor() {
    let mut h = app();
    drop_file(&mut h, asset("assets/mnist-tiny-cnn.safetensors"));
    settle(&mut h, "the MNIST model", |a| {
        a.state.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn") && a.state.views_ready() && !a.busy()
    });
    h.state_mut().apply(Command::SetFilterConv("conv2".into()));
    settle(&mut h, "conv2's filters", |a| {
        a.state.filters.as_ref().is_some_and(|f| f.0 == "conv2") && !a.busy()
    });
    h.state_mut().apply(Command::EditFilter {
        conv: "conv2".into(),
        out: 7,
    });
    settle(&mut h, "filter 7 in the editor", |a| {
        a.state.channels.as_ref().is_some_and(|c| c.layer == "conv2")
            && a.state
                .channel
                .as_ref()
                .is_some_and(|d| d.channel == 7 && d.kernel_values.len() == 16 * 9)
            && !a.busy()
    });
    // The filters view offers it for any filter number.
    h.state_mut().apply(Command::Show(Pane::Filters));
    h.run_steps(2);
    h.get_by_role_and_label(Role::Button, "Edit this filter");
}

/// Sets the Retrain panel's form through its command (the folder dialog cannot be driven).
fn train_form(h: &mut Harness<'static, GlassboxApp>, f: impl FnOnce(&mut glassbox_app::state::TrainForm)) {
    let mut form = h.state().state.training.form.clone();
    f(&mut form);
    h.state_mut()
        .apply(Command::Train(glassbox_app::TrainCommand::Form(form)));
    h.step();
}

fn open_retrain(h: &mut Harness<'static, GlassboxApp>) {
    h.get_by_label("Retrain").click();
    h.run_steps(2);
    assert_eq!(h.state().layouts.current, Layout::Retrain);
}

fn trained(h: &mut Harness<'static, GlassboxApp>) {
    settle(h, "the training run", |a| {
        a.state.training.running.is_none() && a.state.training.result.is_some() && a.state.views_ready() && !a.busy()
    });
}

#[test]
fn teaching_two_classes_from_a_folder_puts_them_in_the_prediction() {
    use glassbox_engine::data::{self, DatasetName};
    use glassbox_engine::finetune::DataSource;
    let dir = tmp();
    let d = data::load(DatasetName::Mnist, &root().join("data")).expect("run `make setup` for the data sets");
    let all = dir.path().join("all");
    data::write_folder(DatasetName::Mnist, &d.train, &all, "digit-", 21, 0, true).unwrap();
    let teach = dir.path().join("teach");
    std::fs::create_dir(&teach).unwrap();
    for c in ["digit-3", "digit-7"] {
        std::fs::rename(all.join(c), teach.join(c)).unwrap();
    }
    // The last image of each class is kept out of the folder, to show the model afterwards.
    let probe = teach
        .join("digit-7")
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let shown = dir.path().join("a-seven.png");
    std::fs::rename(&probe, &shown).unwrap();
    std::fs::remove_file(
        teach
            .join("digit-3")
            .read_dir()
            .unwrap()
            .map(|e| e.unwrap().path())
            .max()
            .unwrap(),
    )
    .unwrap();
    let mut h = app();
    open_retrain(&mut h);
    h.state_mut()
        .apply(Command::Train(glassbox_app::TrainCommand::Data(DataSource::Folder(
            teach.clone(),
        ))));
    h.step();
    h.get_by_label("Add its classes").click();
    train_form(&mut h, |f| {
        f.epochs = 10;
        f.lr = "0.01".into();
        f.val_split = 0.0;
    });
    h.get_by_role_and_label(Role::Button, "Start training").click();
    h.step();
    trained(&mut h);
    let s = &h.state().state;
    let labels = &s.model.as_ref().unwrap().labels;
    assert_eq!(labels.len(), 1002);
    assert_eq!(&labels[1000..], ["digit-3", "digit-7"]);
    assert_eq!(
        s.training.result.as_ref().unwrap().summary.imprinted,
        ["digit-3", "digit-7"]
    );
    // The cat keeps its class; a seven the model never saw is a `digit-7`.
    assert!((281..=285).contains(&s.top[0].index), "{:?}", s.top);
    drop_file(&mut h, shown.clone());
    settle(&mut h, "the seven", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name.ends_with("a-seven.png")) && a.state.views_ready() && !a.busy()
    });
    assert_eq!(h.state().state.top[0].label, "digit-7", "{:?}", h.state().state.top);
    layout(&mut h, Layout::SeeWhy);
    h.get_by_role_and_label(
        Role::Button,
        &format!("digit-7 {:.1} %", h.state().state.top[0].probability * 100.0),
    );
    // Neither kept nor discarded yet: opening another model asks first; Cancel keeps it.
    asked_before_another_model(&mut h, "not kept or discarded yet");
    assert!(h.state().state.training.result.is_some());
    // Kept, the candidate is the model; the Retrain panel has no candidate any more.
    layout(&mut h, Layout::Retrain);
    h.get_by_role_and_label(Role::Button, "Keep it").click();
    h.step();
    settle(&mut h, "the kept model", |a| {
        a.state.training.result.is_none() && a.state.views_ready() && !a.busy()
    });
    assert_eq!(h.state().state.model.as_ref().unwrap().classes, 1002);
    assert_eq!(h.state().state.top[0].label, "digit-7");
    // Kept but in no file: opening another model asks first.
    asked_before_another_model(&mut h, "you kept (it is in no file yet)");
    // Saved, the file holds the new classes and the training record.
    let saved = dir.path().join("taught.safetensors");
    save_model_as(&mut h, &saved);
    settle(&mut h, "the save", |a| a.state.notice.is_some() && !a.busy());
    let m = glassbox_engine::model::Model::open(saved.as_path(), None, tch::Device::Cpu).unwrap();
    assert_eq!(&m.labels[1000..], ["digit-3", "digit-7"]);
    assert_eq!(m.metadata["glassbox.train.mode"], "imprint + new classes' weights");
    assert_eq!(m.metadata["glassbox.train.epochs"], "10");
    assert!(m.metadata["glassbox.train.data_fingerprint"].starts_with("sha256:"));
}

/// Opening another model asks first, naming `lose`; Cancel keeps the model shown.
fn asked_before_another_model(h: &mut Harness<'static, GlassboxApp>, lose: &str) {
    let before = h.state().state.model.as_ref().unwrap().source.clone();
    h.state_mut().apply(Command::OpenModel(
        glassbox_engine::model::ModelSource::Builtin("mnist".into()),
        None,
    ));
    h.run_steps(2);
    let q = h.state().state.unsaved.question.clone().expect("asked first");
    assert!(q.lose.iter().any(|l| l.contains(lose)), "{:?}", q.lose);
    h.get_by_role_and_label(Role::Button, "Cancel").click();
    h.run_steps(2);
    assert!(h.state().state.unsaved.question.is_none());
    assert_eq!(h.state().state.model.as_ref().unwrap().source, before);
}

#[test]
fn fine_tuning_the_small_cnn_draws_curves_the_timeline_scrubs_and_a_confusion_cell_opens() {
    use glassbox_app::state::TrainMode;
    use glassbox_app::TrainCommand;
    use glassbox_engine::data::DatasetName;
    use glassbox_engine::finetune::DataSource;
    let mut h = mnist_app_on_conv1();
    h.state_mut().apply(Command::SetFilterConv("conv1".into()));
    open_retrain(&mut h);
    // The Retrain panel's (the channel view has its own, for the data to search).
    h.query_all_by_role_and_label(Role::Button, "mnist")
        .next()
        .unwrap()
        .click();
    h.get_by_label("Replace: whole network").click();
    train_form(&mut h, |f| {
        f.epochs = 2;
        f.per_class = 40;
        f.lr = "0.003".into();
        f.val_split = 0.25;
    });
    assert_eq!(
        h.state().state.training.form.source,
        Some(DataSource::Dataset(DatasetName::Mnist))
    );
    assert_eq!(h.state().state.training.form.mode, TrainMode::Full);
    h.get_by_role_and_label(Role::Button, "Start training").click();
    h.step();
    trained(&mut h);
    let tr = &h.state().state.training;
    assert_eq!(tr.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(
        tr.losses.len() >= 2 && tr.losses.iter().all(|l| l[1].is_finite()),
        "{:?}",
        tr.losses
    );
    let r = tr.result.as_ref().unwrap();
    assert_eq!(r.timeline, [0, 1, 2]);
    assert_eq!(r.summary.plan.val_images, 100);
    assert_eq!(r.summary.confusion.iter().flatten().sum::<u64>(), 100);
    // The curves' plots and the timeline are on screen.
    h.get_by_role_and_label(Role::Slider, "Timeline");
    let last = h.state().state.filters.clone().unwrap().2;
    let last_top = h.state().state.top.clone();
    // Scrubbed back to the start: the filters and the prediction are the model's before training.
    h.state_mut().apply(Command::Train(TrainCommand::Scrub(0)));
    settle(&mut h, "point 0", |a| a.state.views_ready() && !a.busy());
    let first = h.state().state.filters.clone().unwrap();
    assert_eq!(first.0, "conv1");
    assert_ne!(
        first.2.as_raw(),
        last.as_raw(),
        "the first-layer filters moved during training"
    );
    assert_ne!(
        h.state().state.top.iter().map(|c| c.probability).collect::<Vec<_>>(),
        last_top.iter().map(|c| c.probability).collect::<Vec<_>>()
    );
    // Back at the end, the filters are the trained ones again, bit for bit.
    h.state_mut().apply(Command::Train(TrainCommand::Scrub(2)));
    settle(&mut h, "point 2", |a| a.state.views_ready() && !a.busy());
    assert_eq!(h.state().state.filters.clone().unwrap().2.as_raw(), last.as_raw());
    // A confusion cell's images, each with its map; one opens as the input.
    h.state_mut()
        .apply(Command::Train(TrainCommand::Cell { truth: 1, predicted: 1 }));
    settle(&mut h, "the cell's images", |a| {
        a.state.training.cell.is_some() && !a.busy()
    });
    let (_, _, images) = h.state().state.training.cell.clone().unwrap();
    assert!(!images.is_empty() && images.len() <= 12);
    assert!(images.iter().all(|i| i.overlay.width() == 28 && i.predicted == "1"));
    h.query_all_by_label("Open").next().unwrap().click();
    h.step();
    settle(&mut h, "the validation image as the input", |a| {
        a.state
            .input
            .as_ref()
            .is_some_and(|i| i.name.starts_with("validation image"))
            && a.state.views_ready()
            && !a.busy()
    });
    // Discarded: the model before training is back, with its prediction.
    h.get_by_role_and_label(Role::Button, "Discard").click();
    h.step();
    settle(&mut h, "the model before", |a| {
        a.state.training.result.is_none() && a.state.views_ready() && !a.busy()
    });
    assert_eq!(
        h.state().state.model.as_ref().unwrap().source.to_string(),
        h.state().state.settings.model.to_string()
    );
}

#[test]
fn cancel_mid_epoch_leaves_the_model_as_it_was_and_a_nan_learning_rate_is_refused() {
    use glassbox_engine::finetune::DataSource;
    let mut h = mnist_app_on_conv1();
    let before = h.state().state.top.clone();
    open_retrain(&mut h);
    // The Retrain panel's (the channel view has its own, for the data to search).
    h.query_all_by_role_and_label(Role::Button, "mnist")
        .next()
        .unwrap()
        .click();
    h.get_by_label("Replace: whole network").click();
    // A learning rate that is not a number is refused before anything runs.
    h.get_by_label("Learning rate").click();
    h.step();
    h.get_by_label("Learning rate").type_text("nan");
    h.step();
    h.get_by_role_and_label(Role::Button, "Start training").click();
    h.step();
    assert!(h.state().state.training.running.is_none());
    assert!(
        h.state().state.errors.iter().any(|e| e.contains("learning rate")),
        "{:?}",
        h.state().state.errors
    );
    h.state_mut().apply(Command::DismissErrors);
    train_form(&mut h, |f| {
        f.lr = "0.001".into();
        f.epochs = 50;
        f.batch = 4;
        f.per_class = 400;
    });
    assert_eq!(
        h.state().state.training.form.source,
        Some(DataSource::Dataset(glassbox_engine::data::DatasetName::Mnist))
    );
    h.get_by_role_and_label(Role::Button, "Start training").click();
    h.step();
    settle(&mut h, "the first steps", |a| {
        a.state.training.step.is_some_and(|s| s.1 >= 2)
    });
    // Paused, it reports no step; resumed, it goes on; cancelled, nothing changed.
    h.get_by_role_and_label(Role::Button, "Pause").click();
    h.run_steps(2);
    assert!(h.state().state.training.paused);
    h.get_by_role_and_label(Role::Button, "Resume").click();
    h.step();
    h.get_by_role_and_label(Role::Button, "Cancel training").click();
    h.step();
    settle(&mut h, "the cancel", |a| {
        a.state.training.running.is_none() && !a.busy()
    });
    let s = &h.state().state;
    assert!(s.training.result.is_none());
    assert!(
        s.training.note.as_deref().is_some_and(|n| n.contains("cancelled")),
        "{:?}",
        s.training.note
    );
    assert_eq!(s.model.as_ref().unwrap().arch, "tiny-cnn");
    // The same prediction, bit for bit, from the model that was there before.
    h.state_mut().apply(Command::SetTarget(Some(before[1].index)));
    settle(&mut h, "the prediction again", |a| {
        a.state.explained_target == Some(before[1].index) && a.state.views_ready() && !a.busy()
    });
    let after = &h.state().state.top;
    assert_eq!(
        after.iter().map(|c| (c.index, c.probability)).collect::<Vec<_>>(),
        before.iter().map(|c| (c.index, c.probability)).collect::<Vec<_>>()
    );
}

#[test]
fn the_report_export_holds_the_view_the_edits_and_their_effect() {
    use glassbox_app::ExportWhat;
    let mut h = mnist_app_on_conv1();
    h.state_mut()
        .apply(Command::Edit(glassbox_engine::worker::EditRequest::Apply(
            "scale fc2.weight[3] 0.5".parse().unwrap(),
        )));
    settle(&mut h, "the edit's views", |a| {
        a.state.edits.len() == 1 && a.state.original_top.is_some() && a.state.views_ready() && !a.busy()
    });
    // The Export menu offers it first.
    h.get_by_label("Export").click();
    h.run_steps(2);
    h.get_by_label("Report to take home (HTML)");
    h.key_press(egui::Key::Escape);
    h.run_steps(2);
    let dir = tmp();
    let page = dir.path().join("report.html");
    h.state_mut().apply(Command::Export(ExportWhat::Report, page.clone()));
    h.step();
    assert!(h.state().state.errors.is_empty(), "{:?}", h.state().state.errors);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_self_contained(&html);
    for want in [
        "Edits made by hand",
        "scale fc2.weight[3] 0.5",
        "before the edits",
        "tiny-cnn",
        "conv1",
    ] {
        assert!(html.contains(want), "{want}");
    }
    // The input, the map and the activation grid.
    assert_eq!(html.matches("data:image/png;base64,").count(), 3);
}

#[test]
fn drawing_a_one_is_read_as_a_one_and_every_stroke_updates_the_views() {
    let mut h = mnist_app_on_conv1();
    layout(&mut h, Layout::Teach);
    // The canvas: the first picture under the "Draw a digit" heading (below its tab).
    let heading = h
        .query_all_by_label("Draw a digit")
        .map(|n| n.rect())
        .max_by(|a, b| a.top().total_cmp(&b.top()))
        .expect("the heading");
    let canvas = h.get_by_label("Clear").rect();
    let (top, bottom) = (heading.bottom() + 4.0, canvas.top() - 4.0);
    let x = heading.left() + (bottom - top) / 2.0;
    // A vertical stroke down the middle.
    let points: Vec<egui::Pos2> = (0..=12)
        .map(|i| egui::pos2(x, top + (bottom - top) * (0.15 + 0.7 * i as f32 / 12.0)))
        .collect();
    drag_through(&mut h, &points);
    settle(&mut h, "the drawing's views", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name == "your drawing") && a.state.views_ready() && !a.busy()
    });
    let s = &h.state().state;
    assert!(!s.canvas.is_empty());
    // The stroke is a vertical line in the middle columns.
    let col = |c: usize| (0..28).map(|r| s.canvas.pixels[r * 28 + c]).sum::<f32>();
    assert!(
        col(14) > 10.0 && col(3) == 0.0 && col(25) == 0.0,
        "{} {} {}",
        col(14),
        col(3),
        col(25)
    );
    assert_eq!(s.top[0].label, "1", "{:?}", s.top);
    assert_eq!(s.channels.as_ref().unwrap().layer, "conv1");
    let ones = s.top[0].probability;
    // A horizontal stroke across makes it something else; the views follow each stroke.
    let mid = (top + bottom) / 2.0;
    let across: Vec<egui::Pos2> = (0..=12)
        .map(|i| egui::pos2(x - (bottom - top) * 0.35 + (bottom - top) * 0.7 * i as f32 / 12.0, mid))
        .collect();
    drag_through(&mut h, &across);
    settle(&mut h, "the second stroke's views", |a| {
        a.state.views_ready()
            && !a.busy()
            && a.state
                .top
                .first()
                .is_some_and(|c| c.label != "1" || c.probability != ones)
    });
    // The eraser and Clear.
    h.get_by_label("Clear").click();
    h.step();
    settle(&mut h, "the empty canvas", |a| {
        a.state.canvas.is_empty() && a.state.views_ready() && !a.busy()
    });
    h.get_by_label("Eraser").click();
    h.step();
    assert!(h.state().state.canvas.erase);
}

#[test]
fn every_explain_this_button_opens_a_paragraph_and_a_formula() {
    let mut h = app();
    // Every view alone (maximised) in turn, and each of its "?" clicked.
    let mut seen = std::collections::BTreeSet::new();
    let mut buttons = 0;
    for pane in Pane::ALL {
        h.state_mut().apply(Command::Maximise(Some(pane)));
        h.run_steps(2);
        let n = h.query_all_by_role_and_label(Role::Button, "?").count();
        buttons += n;
        for k in 0..n {
            // (The explanation's panel takes room while it is open: a button can scroll away.)
            let Some(b) = h.query_all_by_role_and_label(Role::Button, "?").nth(k) else {
                continue;
            };
            b.click();
            h.run_steps(2);
            let topic = h.state().state.explain_this.expect("the window's topic");
            seen.insert(format!("{topic:?}"));
            // The explanation is up, with its title; Close closes it.
            h.get_by_label_contains("Explain this: ");
            h.get_by_role_and_label(Role::Button, "Close explanation").click();
            h.run_steps(4);
        }
    }
    assert!(buttons >= 10, "{buttons} buttons");
    for want in [
        "Input",
        "Prediction",
        "Edits",
        "Model",
        "Retrain",
        "Explanation",
        "Method(GradCam)",
        "Activations",
        "Filters",
        "Layers",
    ] {
        assert!(seen.contains(want), "{want}: {seen:?}");
    }
    // Every topic's text is drawn (a character without a glyph would stop the app here).
    use glassbox_app::state::Topic;
    for t in Topic::all() {
        h.state_mut().apply(Command::ExplainThis(Some(t)));
        h.run_steps(2);
        h.get_by_label_contains("Explain this: ");
    }
    // The formula is shown, e.g. Grad-CAM's.
    h.state_mut()
        .apply(Command::ExplainThis(Some(glassbox_app::state::Topic::Method(
            Method::GradCam,
        ))));
    h.run_steps(2);
    assert!(h.query_by_label_contains("ReLU(Σ_k α_k A^k)").is_some());
    // And LRP's, with its superscripts.
    h.state_mut()
        .apply(Command::ExplainThis(Some(glassbox_app::state::Topic::Method(
            Method::LrpEpsilonPlusFlat,
        ))));
    h.run_steps(2);
    assert!(h.query_by_label_contains("x_j w⁺_jk").is_some());
}

#[test]
fn presentation_mode_at_1280x720_walks_the_views_full_window_with_the_keyboard() {
    use glassbox_app::state::Focus;
    let mut h = app_sized(1280.0, 720.0);
    h.key_press(egui::Key::F5);
    h.run_steps(3);
    assert!(h.state().state.present);
    assert!((h.ctx.zoom_factor() - 1.5).abs() < 1e-3, "large type");
    let screen = h.ctx.content_rect();
    let mut walked = Vec::new();
    for _ in 0..Focus::ALL.len() {
        h.key_press(egui::Key::PageDown);
        h.run_steps(3);
        let f = h.state().state.focus.expect("a view alone");
        walked.push(f);
        // Its title is on screen, and nothing of the other views is drawn.
        let title = h.query_all_by_label(f.name()).next().expect("the view's title").rect();
        assert!(screen.contains_rect(title), "{f:?} {title:?} in {screen:?}");
        assert!(h.query_by_label("Layers").is_none(), "the side panels are hidden");
    }
    assert_eq!(walked, Focus::ALL);
    // The prediction, alone: every class row fits in 1280x720 at 1.5x.
    h.key_press(egui::Key::PageDown);
    h.run_steps(3);
    assert_eq!(h.state().state.focus, Some(Focus::Prediction));
    let top = h.state().state.top.clone();
    for c in &top {
        let label = format!("{} {:.1} %", c.label, c.probability * 100.0);
        let r = h.get_by_role_and_label(Role::Button, &label).rect();
        assert!(screen.contains_rect(r), "{label}: {r:?}");
    }
    h.key_press(egui::Key::PageUp);
    h.run_steps(3);
    assert_eq!(h.state().state.focus, Some(Focus::Retrain));
    // Esc: all views again; F5: the normal look.
    h.key_press(egui::Key::Escape);
    h.run_steps(3);
    assert_eq!(h.state().state.focus, None);
    assert!(h.query_all_by_label("Layers").next().is_some(), "the layout is back");
    h.key_press(egui::Key::F5);
    h.run_steps(3);
    assert!(!h.state().state.present && (h.ctx.zoom_factor() - 1.0).abs() < 1e-3);
}

#[test]
fn a_lesson_runs_from_start_to_end_and_a_student_can_leave_and_come_back() {
    use glassbox_app::state::Focus;
    let mut h = app();
    drop_file(&mut h, asset("assets/samples/coffee.png"));
    settle(&mut h, "coffee", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name.ends_with("coffee.png")) && a.state.views_ready() && !a.busy()
    });
    // From the Lessons menu.
    h.get_by_label("Lessons").click();
    h.run_steps(2);
    h.get_by_label("What does a CNN look at?").click();
    h.run_steps(2);
    let ready = |a: &GlassboxApp| a.state.views_ready() && !a.busy();
    settle(&mut h, "step 1", ready);
    let s = &h.state().state;
    assert_eq!(s.lesson.as_ref().unwrap().step, 0);
    assert_eq!(s.input.as_ref().unwrap().name, "chelsea.png", "the step's image");
    assert_eq!(s.focus, Some(Focus::Prediction));
    h.get_by_label("Question: Which classes are in the top five, and what do they have in common?");
    h.get_by_role_and_label(Role::Button, "Show the answer").click();
    h.run_steps(2);
    assert!(h.query_by_label_contains("Answer: Tiger cat").is_some());
    let methods = |a: &GlassboxApp| a.state.slots.iter().map(|s| s.method.name()).collect::<Vec<_>>();
    // Next through every step: each puts its view and methods in place.
    let want: [(&str, &[&str], Option<i64>); 4] = [
        ("explanation", &["grad-cam"], None),
        ("explanation", &["grad-cam", "occlusion"], None),
        ("explanation", &["grad-cam", "occlusion"], Some(285)),
        ("explanation", &["grad-cam", "guided-backprop"], None),
    ];
    for (k, (view, ms, target)) in want.iter().enumerate() {
        h.get_by_role_and_label(Role::Button, "Next >").click();
        h.run_steps(2);
        settle(&mut h, "the next step", |a| {
            ready(a)
                && a.state.slots.iter().all(|s| s.result.is_some())
                && target.is_none_or(|t| a.state.explained_target == Some(t))
        });
        let a = h.state();
        assert_eq!(a.state.lesson.as_ref().unwrap().step, k + 1);
        assert_eq!(a.state.focus, Focus::from_name(view));
        assert_eq!(methods(a), *ms, "step {}", k + 2);
    }
    // The last step: Next is disabled.
    assert!(h
        .get_by_role_and_label(Role::Button, "Next >")
        .accesskit_node()
        .is_disabled());
    // Off the script (all views, another layer), then back to the step as it was.
    h.get_by_role_and_label(Role::Button, "All views").click();
    h.run_steps(2);
    let first = h.state().state.slots[0].id;
    h.state_mut().apply(Command::SetMethod(first, Method::Gradient));
    settle(&mut h, "exploring", ready);
    assert_eq!(h.state().state.focus, None);
    h.get_by_role_and_label(Role::Button, "Show this step again").click();
    h.run_steps(2);
    settle(&mut h, "the step again", ready);
    assert_eq!(methods(h.state()), ["grad-cam", "guided-backprop"]);
    assert_eq!(h.state().state.focus, Some(Focus::Explanation));
    // PageUp goes back a step; Close ends the lesson.
    h.key_press(egui::Key::PageUp);
    h.run_steps(2);
    assert_eq!(h.state().state.lesson.as_ref().unwrap().step, 3);
    h.get_by_role_and_label(Role::Button, "Close lesson").click();
    h.run_steps(2);
    assert!(h.state().state.lesson.is_none() && h.state().state.focus.is_none());
}

#[test]
fn the_sanity_check_shows_each_map_as_the_layers_are_randomised() {
    let mut h = mnist_app_on_conv1();
    layout(&mut h, Layout::SeeWhy);
    h.get_by_role_and_label(Role::Button, "Sanity check").click();
    h.step();
    settle(&mut h, "the sanity check", |a| {
        a.state.slots[0].sanity.is_some() && !a.busy()
    });
    let s = h.state().state.slots[0].sanity.clone().unwrap();
    assert!(s.steps.len() >= 3, "{:?}", s.steps.len());
    assert!(s.original.is_some() && s.steps.iter().all(|st| st.map.is_some()));
    // The first randomisation is the top layer; the maps drift from the trained one.
    assert_eq!(s.steps[0].randomised, "fc2");
    assert!(s.steps.last().unwrap().spearman < 0.9);
    h.run_steps(2);
    h.get_by_label("trained model");
    assert_eq!(
        h.query_all_by_label_contains("ρ = ").count(),
        s.steps.len(),
        "a caption under each randomised map"
    );
    // The maps differ: the trained model's and the fully random one's.
    let maps = [
        s.original.as_ref().unwrap(),
        s.steps.last().unwrap().map.as_ref().unwrap(),
    ];
    assert_ne!(maps[0].data, maps[1].data);
}

/// The MNIST app showing `relu2` with a channel chosen.
fn mnist_app_on_relu2() -> Harness<'static, GlassboxApp> {
    let mut h = mnist_app_on_conv1();
    h.state_mut().apply(Command::SetLayer("relu2".into()));
    settle(&mut h, "relu2", |a| {
        a.state.channels.as_ref().is_some_and(|c| c.layer == "relu2") && a.state.channel.is_some() && !a.busy()
    });
    h.run_steps(2);
    h
}

#[test]
fn a_channels_top_images_come_from_the_data_and_another_channel_comes_at_once() {
    use glassbox_app::ExamplesCommand;
    use glassbox_engine::finetune::DataSource;
    let mut h = mnist_app_on_relu2();
    layout(&mut h, Layout::Teach);
    // The section sits under the channel, below the fold: scrolled into view first.
    h.get_by_label("What does this channel want to see?").scroll_to_me();
    h.run_steps(3);
    h.get_by_role_and_label(Role::Button, "mnist").click();
    h.step();
    h.state_mut().apply(Command::Examples(ExamplesCommand::PerClass(30)));
    h.step();
    assert_eq!(
        h.state().state.examples.source,
        Some(DataSource::Dataset(glassbox_engine::data::DatasetName::Mnist))
    );
    h.get_by_role_and_label(Role::Button, "Find the top 9 images").click();
    h.step();
    settle(&mut h, "the top images", |a| {
        a.state.examples.result.is_some() && !a.busy()
    });
    let r = h.state().state.examples.result.clone().unwrap();
    let first = r.channel;
    assert_eq!((r.layer.as_str(), r.images.len(), r.searched), ("relu2", 9, 300));
    assert!(r.images_per_s.is_some_and(|v| v > 0.0));
    assert!(
        r.images.windows(2).all(|w| w[0].activation >= w[1].activation),
        "strongest first"
    );
    assert!(r.images.iter().all(|i| i.overlay.width() == 28));
    // Another channel of the same layer: the activations are kept, so no new pass.
    let other = (first + 1) % 32;
    h.state_mut().apply(Command::SelectChannel {
        channel: other,
        at: None,
    });
    settle(&mut h, "the other channel", |a| {
        a.state.channel.as_ref().is_some_and(|d| d.channel == other) && !a.busy()
    });
    h.run_steps(2);
    h.get_by_role_and_label(Role::Button, "Find the top 9 images")
        .scroll_to_me();
    h.run_steps(3);
    h.get_by_role_and_label(Role::Button, "Find the top 9 images").click();
    h.step();
    settle(&mut h, "its top images", |a| {
        a.state.examples.result.as_ref().is_some_and(|r| r.channel == other) && !a.busy()
    });
    let r2 = h.state().state.examples.result.clone().unwrap();
    assert!(r2.images_per_s.is_none(), "kept from the first search");
    assert_ne!(
        r.images.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
        r2.images.iter().map(|i| i.name.clone()).collect::<Vec<_>>()
    );
    // One of them opens as the input.
    h.run_steps(2);
    let name = r2.images[0].name.clone();
    h.query_all_by_role_and_label(Role::Button, "Open")
        .next()
        .unwrap()
        .scroll_to_me();
    h.run_steps(3);
    h.query_all_by_role_and_label(Role::Button, "Open")
        .next()
        .unwrap()
        .click();
    h.step();
    settle(&mut h, "the example as the input", |a| {
        a.state.input.as_ref().is_some_and(|i| i.name == name) && a.state.views_ready() && !a.busy()
    });
}

#[test]
fn a_clicked_value_is_computed_in_the_open_and_the_arrow_keys_move_it() {
    let mut h = mnist_app_on_conv1();
    layout(&mut h, Layout::Teach);
    h.state_mut().apply(Command::SetLayer("relu1".into()));
    settle(&mut h, "relu1", |a| {
        a.state.channels.as_ref().is_some_and(|c| c.layer == "relu1") && a.state.channel.is_some() && !a.busy()
    });
    let c = h.state().state.channel.as_ref().unwrap().channel;
    // A click on the channel, large (its middle).
    let big = h
        .query_all_by_role(Role::Image)
        .find(|n| {
            n.accesskit_node()
                .description()
                .is_some_and(|d| d.starts_with("The channel, large"))
                || n.accesskit_node()
                    .label()
                    .is_some_and(|l| l.starts_with("The channel, large"))
        })
        .map(|n| n.rect())
        .expect("the channel, large, is shown as an image to click (a missing widget fails the test)");
    click_at(&mut h, big.center());
    h.step();
    settle(&mut h, "the value in the open", |a| {
        a.state.unfolded.is_some() && !a.busy()
    });
    let u = h.state().state.unfolded.clone().unwrap();
    assert_eq!((u.conv.as_str(), u.layer.as_str(), u.channel), ("conv1", "relu1", c));
    assert!(
        (u.conv_out - u.network_conv_out).abs() < 1e-4,
        "{} {}",
        u.conv_out,
        u.network_conv_out
    );
    let bn = u.batch_norm.as_ref().expect("bn1 between");
    assert!((u.result - bn.out.max(0.0)).abs() < 1e-5);
    assert_eq!(u.inputs.len(), 1);
    assert_eq!(u.inputs[0].products.len(), 9);
    h.run_steps(2);
    h.get_by_label_contains("Inside `relu1` channel");
    h.get_by_label_contains("batch norm `bn1`");
    // The arrow keys step to the next position.
    let (y, x) = (u.y, u.x);
    h.key_press(egui::Key::ArrowRight);
    h.step();
    settle(&mut h, "the next position", |a| {
        a.state.unfolded.as_ref().is_some_and(|u| u.x == x + 1) && !a.busy()
    });
    h.key_press(egui::Key::ArrowDown);
    h.step();
    settle(&mut h, "the row below", |a| {
        a.state.unfolded.as_ref().is_some_and(|u| (u.y, u.x) == (y + 1, x + 1)) && !a.busy()
    });
    // A depthwise convolution of Lite0 opens the same way: one input channel, its own.
    drop_file(&mut h, asset("assets/efficientnet-lite0.safetensors"));
    settle(&mut h, "Lite0", |a| {
        a.state
            .model
            .as_ref()
            .is_some_and(|m| m.arch.starts_with("efficientnet"))
            && a.state.views_ready()
            && !a.busy()
    });
    h.state_mut().apply(Command::RequestField {
        layer: "_blocks.2._depthwise_conv".into(),
        channel: Some(17),
        y: 10,
        x: 20,
    });
    settle(&mut h, "the depthwise value", |a| {
        a.state
            .unfolded
            .as_ref()
            .is_some_and(|u| u.conv == "_blocks.2._depthwise_conv")
            && !a.busy()
    });
    let u = h.state().state.unfolded.clone().unwrap();
    assert_eq!((u.input_channels, u.inputs[0].channel), (1, 17));
    assert!((u.conv_out - u.network_conv_out).abs() < 1e-3);
}

#[test]
fn an_image_grown_for_a_channel_and_for_a_class_excites_them() {
    use glassbox_engine::visualize::Goal;
    let mut h = mnist_app_on_relu2();
    layout(&mut h, Layout::Teach);
    h.get_by_label("Grow an image for this channel").scroll_to_me();
    h.run_steps(3);
    h.get_by_label("Grow an image for this channel").click();
    h.step();
    settle(&mut h, "the grown image", |a| {
        a.state.visual.result.is_some() && !a.busy()
    });
    let c = h.state().state.channel.as_ref().unwrap().channel;
    let (goal, first, last) = h.state().state.visual.result.clone().unwrap();
    assert_eq!(
        goal,
        Goal::Channel {
            layer: "relu2".into(),
            channel: c
        }
    );
    assert!(last > first, "{first} -> {last}");
    h.run_steps(2);
    h.get_by_label_contains("wants to see\n(its value");
    // For the class the maps explain.
    let class = h.state().state.explained_target.unwrap();
    h.state_mut().apply(Command::Visualize {
        goal: Goal::Class(class),
        seed: 3,
    });
    settle(&mut h, "the class's image", |a| {
        a.state
            .visual
            .result
            .as_ref()
            .is_some_and(|r| r.0 == Goal::Class(class))
            && !a.busy()
    });
    let (_, first, last) = h.state().state.visual.result.clone().unwrap();
    assert!(last > first);
}
