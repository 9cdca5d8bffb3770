//! Helpers of the app's kittest tests (`tests/app.rs`, `tests/app_lessons.rs`): the app in
//! a window, frames stepped until the background work lands, a dropped file, a click at a
//! point, a drag.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use glassbox_app::DroppedPath;
use glassbox_app::{Command, GlassboxApp, Options};

use super::asset;

pub fn app() -> Harness<'static, GlassboxApp> {
    app_sized(1600.0, 1000.0)
}

/// The app in a window of this size, settled on its first image.
pub fn app_sized(w: f32, h: f32) -> Harness<'static, GlassboxApp> {
    let mut h = Harness::builder().with_size(egui::Vec2::new(w, h)).build_eframe(|cc| {
        GlassboxApp::new(
            &cc.egui_ctx,
            None,
            Options {
                model: None,
                arch: None,
                image: None,
                device: glassbox_engine::Device::Cpu,
                fresh: true,
                screenshots: None,
                timings: false,
            },
        )
    });
    settle(&mut h, "the first image's views", |a| {
        a.state.views_ready() && !a.busy()
    });
    h
}

/// Shows one of the four layouts, as its tab or Ctrl+1..4 does.
pub fn layout(h: &mut Harness<'static, GlassboxApp>, l: glassbox_app::tiles::Layout) {
    h.state_mut().apply(Command::Layout(l));
    h.run_steps(3);
}

/// Steps frames until `done` holds (the engine works on its own thread meanwhile).
pub fn settle(h: &mut Harness<'static, GlassboxApp>, what: &str, done: impl Fn(&GlassboxApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(settle_limit()),
            "timed out waiting for {what}; errors: {:?}; {}",
            h.state().state.errors,
            h.state().describe_work()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.step();
}

/// How long a test waits for background work (SETTLE_SECONDS, default 600).
pub fn settle_limit() -> u64 {
    std::env::var("SETTLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600)
}

pub fn drop_file(h: &mut Harness<'static, GlassboxApp>, p: PathBuf) {
    h.input_mut().dropped_files.push(Arc::new(DroppedPath(p)));
    h.step();
}

/// A click (press and release) at a point of the window.
pub fn click_at(h: &mut Harness<'static, GlassboxApp>, pos: egui::Pos2) {
    let ev = &mut h.input_mut().events;
    ev.push(egui::Event::PointerMoved(pos));
    for pressed in [true, false] {
        ev.push(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    }
}

/// A drag with the mouse through these points (pressed at the first, released at the last).
pub fn drag_through(h: &mut Harness<'static, GlassboxApp>, points: &[egui::Pos2]) {
    let press = |h: &mut Harness<'static, GlassboxApp>, pos, pressed| {
        h.input_mut().events.push(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: egui::Modifiers::NONE,
        });
    };
    h.input_mut().events.push(egui::Event::PointerMoved(points[0]));
    h.step();
    press(h, points[0], true);
    h.step();
    for p in &points[1..] {
        h.input_mut().events.push(egui::Event::PointerMoved(*p));
        h.step();
    }
    press(h, *points.last().unwrap(), false);
    h.step();
}

/// The app on the MNIST model (dropped, as a user opens a file), its first layer shown
/// with a channel and its kernel, in the Edit layout.
pub fn mnist_app_on_conv1() -> Harness<'static, GlassboxApp> {
    let mut h = app();
    drop_file(&mut h, asset("assets/mnist-tiny-cnn.safetensors"));
    settle(&mut h, "the MNIST model", |a| {
        a.state.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn") && a.state.views_ready() && !a.busy()
    });
    h.state_mut().apply(Command::SetLayer("conv1".into()));
    settle(&mut h, "conv1 and a kernel", |a| {
        a.state.channels.as_ref().is_some_and(|c| c.layer == "conv1")
            && a.state.channel.as_ref().is_some_and(|d| !d.kernel_values.is_empty())
            && !a.busy()
    });
    layout(&mut h, glassbox_app::tiles::Layout::Edit);
    h
}

/// What the Save dialog's answer does: the model (with its edits) saved as `path`.
pub fn save_model_as(h: &mut Harness<'static, GlassboxApp>, path: &std::path::Path) {
    h.state_mut()
        .apply(Command::Edit(glassbox_engine::worker::EditRequest::Save {
            path: path.to_path_buf(),
            force: false,
        }));
}

/// eframe storage in memory: what the app remembers between two sessions in one test.
#[derive(Default)]
pub struct Mem(pub std::collections::HashMap<String, String>);

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
