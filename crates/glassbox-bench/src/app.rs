//! Timings of the app itself, headless (no window, no GPU needed): the time to build a
//! frame in each of the four layouts, and the time from dropping an image to all its views,
//! beside its bound (decode + forward + backward) measured in the same run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::engine::median;
use glassbox_app::tiles::Layout;
use glassbox_app::{Command, DroppedPath, GlassboxApp, Options};
use glassbox_engine::explain::Method;
use glassbox_engine::model::ModelSource;

#[derive(Debug, Clone, Serialize)]
pub struct UiBench {
    pub frames: usize,
    pub frame_median_ms: f64,
    pub frame_p99_ms: f64,
    pub drops: usize,
    pub drop_to_views_median_ms: f64,
    pub bound_median_ms: f64,
    pub ratio: f64,
    pub device: String,
}

struct Headless {
    ctx: egui::Context,
    app: GlassboxApp,
    t: f64,
    /// The earliest frame anything asked for, set by egui's repaint callback: now for an
    /// engine answer (through the app's waker), later for the app's own timers (the working
    /// spinner, the check that the engine is alive). How eframe's event loop learns to draw.
    wake: Arc<(std::sync::Mutex<Option<Instant>>, std::sync::Condvar)>,
}

/// When nothing asked for a frame, the loop still looks this often (a bound on waiting for
/// a wake-up that never comes; eframe would sleep).
const IDLE_LOOK: Duration = Duration::from_millis(250);
/// One refresh of a 60 Hz display: with vsync no two frames are closer.
const REFRESH: Duration = Duration::from_micros(16_667);

impl Headless {
    /// The app on a builtin model (and an image, else the sample), settled on its first views.
    fn start(model: &str, image: Option<PathBuf>, device: glassbox_engine::Device) -> Result<Headless> {
        let ctx = egui::Context::default();
        let wake = Arc::new((std::sync::Mutex::new(None::<Instant>), std::sync::Condvar::new()));
        let w = wake.clone();
        ctx.set_request_repaint_callback(move |info| {
            let at = Instant::now() + info.delay;
            if let Ok(mut next) = w.0.lock() {
                *next = Some(next.map_or(at, |n| n.min(at)));
            }
            w.1.notify_all();
        });
        let app = GlassboxApp::new(
            &ctx,
            None,
            Options {
                model: Some(ModelSource::Builtin(model.into())),
                arch: None,
                image,
                device,
                fresh: true,
                screenshots: None,
                timings: true,
            },
        );
        let mut h = Headless { ctx, app, t: 0.0, wake };
        h.until("the first image", |a| a.state.views_ready() && !a.busy())?;
        Ok(h)
    }

    fn frame(&mut self, dropped: Option<PathBuf>, wiggle: bool) -> Duration {
        let mut raw = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1600.0, 1000.0))),
            time: Some(self.t),
            ..Default::default()
        };
        self.t += 1.0 / 60.0;
        if wiggle {
            // The pointer moves over the window, as when a user looks around.
            let x = 300.0 + 900.0 * ((self.t * 3.0).sin() * 0.5 + 0.5) as f32;
            raw.events.push(egui::Event::PointerMoved(egui::pos2(x, 500.0)));
        }
        if let Some(p) = dropped {
            raw.dropped_files.push(Arc::new(DroppedPath(p)));
        }
        let t0 = Instant::now();
        let app = &mut self.app;
        let mut out = self.ctx.run_ui(raw, |ui| app.frame(ui));
        // No renderer here: the texture uploads are dropped on purpose.
        out.textures_delta.clear();
        let _ = self.ctx.tessellate(out.shapes, out.pixels_per_point);
        t0.elapsed()
    }

    /// Frames as eframe draws them on a 60 Hz display until `done`: one when something asks
    /// for a frame (an engine answer now, the app's timers later), never two within one
    /// display refresh (vsync).
    fn until(&mut self, what: &str, done: impl Fn(&GlassboxApp) -> bool) -> Result<()> {
        let start = Instant::now();
        while !done(&self.app) {
            if start.elapsed() > Duration::from_secs(600) {
                bail!(
                    "the app did not finish {what} in 10 minutes: {:?}",
                    self.app.state.errors
                );
            }
            let t0 = Instant::now();
            self.frame(None, false);
            if let Some(rest) = REFRESH.checked_sub(t0.elapsed()) {
                std::thread::sleep(rest);
            }
            let (next, cv) = &*self.wake;
            let mut next = next
                .lock()
                .map_err(|_| anyhow::anyhow!("the repaint time is poisoned"))?;
            let give_up = Instant::now() + IDLE_LOOK;
            loop {
                let now = Instant::now();
                let until = next.unwrap_or(give_up).min(give_up);
                if until <= now {
                    break;
                }
                next = cv
                    .wait_timeout(next, until - now)
                    .map_err(|_| anyhow::anyhow!("the repaint time is poisoned"))?
                    .0;
            }
            *next = None;
        }
        Ok(())
    }
}

/// Runs the app headless on `images` (dropped in turn) and times it.
pub fn run(images: &[PathBuf], frames: usize, drops: usize, device: glassbox_engine::Device) -> Result<UiBench> {
    if images.is_empty() {
        bail!("give at least one image to drop");
    }
    let mut h = Headless::start("efficientnet-lite0", Some(images[0].clone()), device)?;
    let ready = |a: &GlassboxApp| a.state.views_ready() && !a.busy();
    if !h.app.state.errors.is_empty() {
        bail!("{}", h.app.state.errors.join("; "));
    }
    // Drop to all views (prediction, map, activation grid and channel), then its bound.
    let mut drop_ms = Vec::new();
    for k in 0..drops.max(1) {
        let img = images[(k + 1) % images.len()].clone();
        h.frame(Some(img.clone()), false);
        let name = img.display().to_string();
        h.until("a dropped image", |a| {
            a.state.input.as_ref().is_some_and(|i| i.name == name) && a.all_views_after.is_some()
        })?;
        drop_ms.push(h.app.all_views_after.expect("measured").as_secs_f64() * 1e3);
        h.until("its faithfulness curves", ready)?;
    }
    // Frame-building time with all content present, in each of the four layouts in turn
    // (a quarter of the frames each): See why with four methods side by side and the
    // activation grid, Edit with the channel, its kernel editor and the edit list, Retrain,
    // Teach.
    for m in [Method::IntegratedGradients, Method::SmoothGrad, Method::Occlusion] {
        h.app.apply(Command::AddSlot(m));
    }
    h.until("four methods", ready)?;
    let per_layout = frames.max(12) / Layout::ALL.len();
    let mut ft = Vec::new();
    for l in Layout::ALL {
        h.app.apply(Command::Layout(l));
        // The layout's first frame lays its tiles out; the measured ones follow.
        h.frame(None, true);
        ft.extend((0..per_layout).map(|_| h.frame(None, true).as_secs_f64() * 1e3));
    }
    let frame_median = median(&mut ft);
    let p99 = ft[((ft.len() as f64 * 0.99).ceil() as usize).min(ft.len()) - 1];
    let dev = h.app.state.model.as_ref().map(|m| m.device.clone()).unwrap_or_default();
    drop(h);
    let order: Vec<PathBuf> = (0..drops.max(1))
        .map(|k| images[(k + 1) % images.len()].clone())
        .collect();
    let mut bound = crate::engine::decode_forward_backward(
        ModelSource::Builtin("efficientnet-lite0".into()),
        &order,
        device.into(),
    )?;
    let drop_median = median(&mut drop_ms);
    let bound_median = median(&mut bound);
    Ok(UiBench {
        frames: ft.len(),
        frame_median_ms: frame_median,
        frame_p99_ms: p99,
        drops: drop_ms.len(),
        drop_to_views_median_ms: drop_median,
        bound_median_ms: bound_median,
        ratio: drop_median / bound_median,
        device: dev,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct DrawBench {
    pub strokes: usize,
    /// From a stroke on the canvas to every view refreshed (prediction, activations, map).
    pub stroke_to_views_median_ms: f64,
    pub stroke_to_views_p90_ms: f64,
    pub device: String,
}

/// Draw a digit on the small MNIST model, headless: the time from each stroke to all views.
pub fn draw(strokes: usize, device: glassbox_engine::Device) -> Result<DrawBench> {
    use glassbox_app::command::DrawCommand;
    let mut h = Headless::start("mnist", None, device)?;
    let mut ms = Vec::new();
    for k in 0..strokes.max(2) {
        // Short strokes along a figure eight, as a hand draws.
        let t = k as f32 * 0.35;
        let at = |t: f32| (14.0 + 6.0 * t.sin(), 14.0 + 9.0 * (t * 0.5).sin());
        h.app.apply(Command::Draw(DrawCommand::Stroke {
            from: at(t),
            to: at(t + 0.35),
        }));
        h.until("the stroke's views", |a| a.all_views_after.is_some() && !a.busy())?;
        ms.push(h.app.all_views_after.expect("measured").as_secs_f64() * 1e3);
    }
    let dev = h.app.state.model.as_ref().map(|m| m.device.clone()).unwrap_or_default();
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(DrawBench {
        strokes: ms.len(),
        stroke_to_views_median_ms: ms[ms.len() / 2],
        stroke_to_views_p90_ms: ms[(ms.len() * 9 / 10).min(ms.len() - 1)],
        device: dev,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct EditBench {
    pub model: String,
    pub edits: usize,
    /// From the edit command to every view it refreshes (prediction, every open map with
    /// its deletion and insertion curves, the channel grid, the channel's kernel, the
    /// filters), through the headless app: median over `edits`.
    pub app_edit_to_views_ms: f64,
    /// The same requests the app sent and took answers for, run one after the other
    /// directly on the engine's handlers (`worker::Direct`): median.
    pub bound_ms: f64,
    pub ratio: f64,
    /// The same requests sent to an engine thread of its own without the app, each awaited
    /// before the next: median. Between the bound and the app: the cost of the thread alone.
    pub engine_thread_ms: f64,
    /// What each edit's views were: the kinds of the requests replayed, with counts.
    pub views: Vec<String>,
    /// Requests the app sent per edit (median), answered or superseded: more than the
    /// replayed ones is work the bound does not do.
    pub requests_sent: usize,
    pub device: String,
}

/// An edit in the app, as a user makes it with the views open (two maps with their curves,
/// a channel with its kernel, the filters of the stem): the time from the edit command to
/// every view refreshed, beside the same requests run directly on the engine.
pub fn edits(image: &Path, runs: usize, device: glassbox_engine::Device) -> Result<EditBench> {
    use glassbox_engine::edit::{Op, Target};
    use glassbox_engine::worker::{Direct, EditRequest, ImageSource, Request};
    let model = "efficientnet-lite0";
    let mut h = Headless::start(model, Some(image.to_path_buf()), device)?;
    let ready = |a: &GlassboxApp| a.state.views_ready() && !a.busy();
    if !h.app.state.errors.is_empty() {
        bail!("{}", h.app.state.errors.join("; "));
    }
    let stem = h
        .app
        .state
        .model
        .as_ref()
        .and_then(|m| m.convs.first().cloned())
        .ok_or_else(|| anyhow::anyhow!("the model has no convolution"))?;
    h.app.apply(Command::AddSlot(Method::Gradient));
    h.app.apply(Command::SetFilterConv(stem.clone()));
    h.until("two maps and the filters", ready)?;
    h.app.apply(Command::SelectChannel { channel: 0, at: None });
    h.until("a channel and its kernel", ready)?;
    if h.app.state.channel.is_none() || h.app.state.slots.len() < 2 {
        bail!("the views to refresh did not open: {}", h.app.describe_work());
    }
    let mut app_ms = Vec::new();
    let mut replays = Vec::new();
    let mut sent = Vec::new();
    for k in 0..runs.max(1) {
        h.app.answered.clear();
        let sent_before = h.app.sent_count;
        let op = Op::Scale(
            Target {
                param: format!("{stem}.weight"),
                index: vec![k as i64 % 8],
            },
            0.5,
        );
        let t0 = Instant::now();
        h.app.apply(Command::Edit(EditRequest::Apply(op)));
        h.until("the edit's views", ready)?;
        app_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        if !h.app.state.errors.is_empty() {
            bail!("{}", h.app.state.errors.join("; "));
        }
        replays.push(std::mem::take(&mut h.app.answered));
        sent.push(h.app.sent_count - sent_before);
    }
    let dev = h.app.state.model.as_ref().map(|m| m.device.clone()).unwrap_or_default();
    drop(h);
    // The kinds of the first edit's requests (the variant's name), in order, with counts.
    let kinds: Vec<String> = replays[0]
        .iter()
        .map(|r| {
            format!("{r:?}")
                .split([' ', '(', '{'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let mut counted: Vec<String> = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        if !kinds[..i].contains(k) {
            counted.push(format!("{k} x{}", kinds.iter().filter(|w| *w == k).count()));
        }
    }
    // The bound: the engine's handlers in this thread, on the same model and image, each
    // edit's requests in the order the app's answers came.
    let mut d = Direct::new(device);
    d.run(Request::OpenModel {
        model: ModelSource::Builtin(model.into()),
        arch: None,
    })?;
    d.run(Request::SetImage {
        source: ImageSource::File(image.to_path_buf()),
    })?;
    let mut bound = Vec::new();
    for reqs in &replays {
        let t0 = Instant::now();
        for r in reqs {
            d.run(r.clone())?;
        }
        bound.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    drop(d);
    // The same again on an engine thread of its own, without the app: what the thread
    // itself costs, apart from the window's frames.
    let engine = glassbox_engine::worker::Engine::spawn(device);
    let call = |req: Request| engine.call(req, Duration::from_secs(600));
    call(Request::OpenModel {
        model: ModelSource::Builtin(model.into()),
        arch: None,
    })?;
    call(Request::SetImage {
        source: ImageSource::File(image.to_path_buf()),
    })?;
    let mut threaded = Vec::new();
    for reqs in &replays {
        let t0 = Instant::now();
        for r in reqs {
            call(r.clone())?;
        }
        threaded.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    drop(engine);
    let app_median = median(&mut app_ms);
    let bound_median = median(&mut bound);
    Ok(EditBench {
        engine_thread_ms: median(&mut threaded),
        model: model.into(),
        edits: app_ms.len(),
        app_edit_to_views_ms: app_median,
        bound_ms: bound_median,
        ratio: app_median / bound_median,
        views: counted,
        requests_sent: {
            sent.sort_unstable();
            sent[sent.len() / 2]
        },
        device: dev,
    })
}
