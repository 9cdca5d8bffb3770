//! The tour's steps: each sets the app up through its commands (the window's size and
//! layout among them), waits for the engine and the layout to settle, and takes the
//! screenshot.

use std::sync::atomic::Ordering;

use super::TOUR;
use crate::command::{Command, CompareCommand, DrawCommand, ExamplesCommand, LessonCommand, TrainCommand};
use crate::state::Focus;
use crate::tiles::Layout;
use crate::GlassboxApp;
use glassbox_engine::data::DatasetName;
use glassbox_engine::edit::Op;
use glassbox_engine::explain::Method;
use glassbox_engine::finetune::DataSource;
use glassbox_engine::session::PinSource;
use glassbox_engine::worker::EditRequest;

/// Frames to wait for the window to take its new size before asking again.
const RESIZE_FRAMES: usize = 30;

impl GlassboxApp {
    pub(crate) fn run_tour(&mut self, ctx: &egui::Context) {
        // The tour's own edits and candidates are a demonstration: it goes on without them.
        if self.tour.is_some() && self.state.unsaved.question.is_some() {
            self.apply(Command::Answer(crate::unsaved::Answer::Discard));
        }
        let Some(t) = self.tour.as_mut() else { return };
        if t.step >= TOUR.len() {
            return;
        }
        ctx.request_repaint();
        if !t.set_up {
            t.set_up = true;
            let step = t.step;
            self.tour_setup(ctx, TOUR[step].0);
            return;
        }
        if t.shot_requested {
            if t.shot_done.load(Ordering::SeqCst) {
                t.step += 1;
                t.frames = 0;
                t.shot_requested = false;
                t.set_up = false;
                t.shot_done.store(false, Ordering::SeqCst);
                if t.step >= TOUR.len() {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            }
            return;
        }
        let (name, size) = TOUR[t.step];
        // Steps whose content needs the views of the step before it to have arrived.
        let settled = !self.busy() && self.state.views_ready();
        if settled && self.tour_follow_up(name) {
            return;
        }
        let Some(t) = self.tour.as_mut() else { return };
        if !settled {
            t.frames = 0;
            return;
        }
        t.frames += 1;
        // The window at the step's size in pixels, whatever the zoom (asked again now and
        // then: a window manager may be slow).
        let ppp = ctx.pixels_per_point();
        let now = ctx.content_rect().size() * ppp;
        if (now.x - size[0]).abs() > 1.0 || (now.y - size[1]).abs() > 1.0 {
            if t.frames % RESIZE_FRAMES == 1 {
                ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::Vec2::from(size) / ppp));
            }
            return;
        }
        if t.frames < 10 {
            return;
        }
        let path = t.dir.join(format!("{name}.png"));
        let done = t.shot_done.clone();
        t.shot_requested = true;
        ctx.request_screenshot(move |img| {
            let (w, h) = (img.size[0] as u32, img.size[1] as u32);
            let rgb: Vec<u8> = img.pixels.iter().flat_map(|p| [p.r(), p.g(), p.b()]).collect();
            if let Some(buf) = image::RgbImage::from_raw(w, h, rgb) {
                if let Err(e) = glassbox_engine::render::save_png(&buf, &path) {
                    eprintln!("glassbox: {e}");
                } else {
                    println!("{}", path.display());
                }
            }
            done.store(true, Ordering::SeqCst);
        });
    }

    /// A step's next act, once the views of its setup are there; true when it did something.
    fn tour_follow_up(&mut self, step: &str) -> bool {
        let s = &self.state;
        let layer = s.channels.as_ref().map(|c| (c.layer.clone(), c.h, c.w));
        let channel = s.channel.as_ref().map(|d| d.channel);
        match step {
            "see-why-1280x720" if s.field.is_none() => {
                // A receptive field: the middle of the chosen channel.
                let (Some((layer, h, w)), Some(c)) = (layer, channel) else {
                    return false;
                };
                self.apply(Command::RequestField {
                    layer,
                    channel: Some(c),
                    y: h / 2,
                    x: w / 2,
                });
                true
            }
            "edit-1280x720" if s.edits.is_empty() => {
                let (Some((layer, ..)), Some(c)) = (layer, channel) else {
                    return false;
                };
                self.apply(Command::Edit(EditRequest::Apply(Op::Knockout(layer, c as i64))));
                true
            }
            "sanity" if s.slots.first().is_some_and(|sl| sl.sanity.is_none()) => {
                let id = s.slots[0].id;
                self.apply(Command::SanitySlot(id));
                true
            }
            "compare-1280x720" if s.compare.filters.is_none() => {
                // The filters of the convolution that changed most, in A and B.
                let Some(conv) = s.compare.result.as_ref().and_then(|r| {
                    let convs = &s.model.as_ref()?.convs;
                    r.weights
                        .changed
                        .iter()
                        .find_map(|t| t.name.strip_suffix(".weight").filter(|c| convs.iter().any(|x| x == c)))
                        .map(str::to_string)
                }) else {
                    return false;
                };
                self.apply(Command::Compare(CompareCommand::Filters(conv)));
                true
            }
            "retrain-1280x720" => self.tour_train(),
            "teach-1280x720" => self.tour_teach(),
            _ => false,
        }
    }

    /// The Retrain shots: the small CNN fine-tuned on MNIST for three epochs, then the
    /// images of its most confused cell.
    fn tour_train(&mut self) -> bool {
        let tr = &self.state.training;
        let small = self.state.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn");
        if small && tr.result.is_none() && tr.running.is_none() {
            let mut f = tr.form.clone();
            f.source = Some(DataSource::Dataset(DatasetName::Mnist));
            f.mode = crate::state::TrainMode::Full;
            f.epochs = 3;
            f.per_class = 200;
            f.lr = "0.003".into();
            self.apply(Command::Train(TrainCommand::Form(f)));
            self.apply(Command::Train(TrainCommand::Start));
            return true;
        }
        let (Some(r), None) = (&tr.result, &tr.cell) else {
            return false;
        };
        // The most confused pair of classes (else the first class).
        let c = &r.summary.confusion;
        let (truth, predicted) = (0..c.len())
            .flat_map(|t| (0..c[t].len()).map(move |p| (t, p)))
            .filter(|(t, p)| t != p)
            .max_by_key(|&(t, p)| (c[t][p], std::cmp::Reverse((t, p))))
            .filter(|&(t, p)| c[t][p] > 0)
            .unwrap_or((0, 0));
        self.apply(Command::Train(TrainCommand::Cell { truth, predicted }));
        true
    }

    /// The Teach shots: a drawn seven, a value of `relu2` computed in the open, the digits
    /// that excite its channel most and an image grown for it.
    fn tour_teach(&mut self) -> bool {
        let s = &self.state;
        let (Some(ch), Some(d)) = (&s.channels, &s.channel) else {
            return false;
        };
        if ch.layer != "relu2" {
            return false;
        }
        let (layer, c) = (ch.layer.clone(), d.channel);
        if s.unfolded.is_none() && s.unfold_error.is_none() {
            let (y, x) = (ch.h / 2, ch.w / 2);
            self.apply(Command::RequestField {
                layer,
                channel: Some(c),
                y,
                x,
            });
            return true;
        }
        if !s
            .examples
            .result
            .as_ref()
            .is_some_and(|r| r.layer == layer && r.channel == c)
        {
            self.apply(Command::Examples(ExamplesCommand::Find));
            return true;
        }
        if s.visual.result.is_none() {
            self.apply(Command::Visualize {
                goal: glassbox_engine::visualize::Goal::Channel { layer, channel: c },
                seed: 0,
            });
            return true;
        }
        false
    }

    fn tour_setup(&mut self, ctx: &egui::Context, step: &str) {
        match step {
            "see-why-1280x720" => {
                self.apply(Command::Layout(Layout::SeeWhy));
                self.set_methods(&[Method::GradCam, Method::IntegratedGradients]);
            }
            "see-why-1920x1080" => {
                self.set_methods(&[
                    Method::GradCam,
                    Method::IntegratedGradients,
                    Method::SmoothGrad,
                    Method::Occlusion,
                ]);
            }
            "present-1280x720" => {
                self.apply(Command::Present(true));
                self.apply(Command::Focus(Some(Focus::Explanation)));
            }
            "sanity" => {
                self.apply(Command::Present(false));
                self.set_methods(&[Method::GradCam]);
            }
            "error" => {
                let path = std::env::temp_dir().join("notes.txt");
                let _ = std::fs::write(&path, "this is not an image\n");
                self.apply(Command::OpenPath(path));
            }
            "edit-1280x720" => {
                self.apply(Command::DismissErrors);
                self.apply(Command::HideField);
                self.apply(Command::Layout(Layout::Edit));
            }
            "compare-1280x720" => {
                // A painted filter beside the knock-out, then A = the model before both.
                if let Ok(op) = "scale _conv_stem.weight[3] -2".parse::<Op>() {
                    self.apply(Command::Edit(EditRequest::Apply(op)));
                }
                self.apply(Command::Compare(CompareCommand::Pin(Some(PinSource::BeforeEdits))));
                self.apply(Command::Show(crate::tiles::Pane::Compare));
                self.apply(Command::Maximise(Some(crate::tiles::Pane::Compare)));
            }
            "retrain-1280x720" => {
                self.apply(Command::Maximise(None));
                self.apply(Command::Compare(CompareCommand::Pin(None)));
                self.apply(Command::OpenModel("mnist".into(), None));
                self.apply(Command::Layout(Layout::Retrain));
            }
            "teach-1280x720" => {
                self.apply(Command::Train(TrainCommand::Discard));
                self.apply(Command::Layout(Layout::Teach));
                for (from, to) in [((7.0, 7.5), (21.0, 7.5)), ((21.0, 7.5), (13.0, 23.0))] {
                    self.apply(Command::Draw(DrawCommand::Stroke { from, to }));
                }
                self.apply(Command::SetLayer("relu2".into()));
                self.apply(Command::Examples(ExamplesCommand::Source(DataSource::Dataset(
                    DatasetName::Mnist,
                ))));
                self.apply(Command::Examples(ExamplesCommand::PerClass(50)));
            }
            "lesson" => {
                self.apply(Command::Layout(Layout::SeeWhy));
                self.apply(Command::Lesson(LessonCommand::OpenBuiltin(
                    "what-does-a-cnn-look-at".into(),
                )));
                self.apply(Command::Lesson(LessonCommand::Go(2)));
            }
            _ => {}
        }
        ctx.request_repaint();
    }

    /// The explanation slots, one per method, in this order.
    fn set_methods(&mut self, want: &[Method]) {
        let ids: Vec<usize> = self.state.slots.iter().map(|s| s.id).collect();
        for (k, m) in want.iter().enumerate() {
            match ids.get(k) {
                Some(id) => self.apply(Command::SetMethod(*id, *m)),
                None => self.apply(Command::AddSlot(*m)),
            }
        }
        for id in ids.iter().skip(want.len()) {
            self.apply(Command::RemoveSlot(*id));
        }
    }
}
