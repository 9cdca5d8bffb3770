//! The tour's steps: each sets the app up through its commands, waits for the engine and
//! the layout to settle, and takes the screenshot.

use std::sync::atomic::Ordering;

use super::TOUR;
use crate::command::Command;
use crate::GlassboxApp;
use glassbox_engine::explain::Method;

impl GlassboxApp {
    pub(crate) fn run_tour(&mut self, ctx: &egui::Context) {
        // The tour's own edits and candidates are a demonstration: it goes on without them.
        if self.tour.is_some() && self.state.unsaved.question.is_some() {
            self.apply(Command::Answer(crate::unsaved::Answer::Discard));
        }
        let settled = !self.busy() && self.state.views_ready();
        let field_missing = self.state.field.is_none();
        let Some(t) = self.tour.as_mut() else { return };
        if t.step >= TOUR.len() {
            return;
        }
        ctx.request_repaint();
        if t.shot_requested {
            if t.shot_done.load(Ordering::SeqCst) {
                t.step += 1;
                t.frames = 0;
                t.shot_requested = false;
                t.shot_done.store(false, Ordering::SeqCst);
                if t.step >= TOUR.len() {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    return;
                }
                let step = t.step;
                self.tour_setup(ctx, TOUR[step]);
            }
            return;
        }
        // Wait until everything on screen has arrived, faithfulness and kernels included.
        if settled && TOUR[t.step] == "activations" && field_missing {
            // Show a receptive field: the middle of the chosen channel.
            if let (Some(ch), Some(d)) = (&self.state.channels, &self.state.channel) {
                let (layer, c, y, x) = (ch.layer.clone(), d.channel, ch.h / 2, ch.w / 2);
                self.apply(Command::RequestField {
                    layer,
                    channel: Some(c),
                    y,
                    x,
                });
            }
            return;
        }
        // The Retrain shot: the small CNN fine-tuned on MNIST for three epochs, then a cell.
        if settled && TOUR[t.step] == "retrain" {
            let tr = &self.state.training;
            let small = self.state.model.as_ref().is_some_and(|m| m.arch == "tiny-cnn");
            if small && tr.result.is_none() && tr.running.is_none() {
                let mut f = tr.form.clone();
                f.source = Some(glassbox_engine::finetune::DataSource::Dataset(
                    glassbox_engine::data::DatasetName::Mnist,
                ));
                f.mode = crate::state::TrainMode::Full;
                f.epochs = 3;
                f.per_class = 200;
                f.lr = "0.003".into();
                self.apply(Command::Train(crate::command::TrainCommand::Form(f)));
                self.apply(Command::Train(crate::command::TrainCommand::Start));
                return;
            }
            if let (Some(r), None) = (&tr.result, &tr.cell) {
                // The most confused pair of classes (else the first class).
                let c = &r.summary.confusion;
                let (truth, predicted) = (0..c.len())
                    .flat_map(|t| (0..c[t].len()).map(move |p| (t, p)))
                    .filter(|(t, p)| t != p)
                    .max_by_key(|&(t, p)| (c[t][p], std::cmp::Reverse((t, p))))
                    .filter(|&(t, p)| c[t][p] > 0)
                    .unwrap_or((0, 0));
                self.apply(Command::Train(crate::command::TrainCommand::Cell { truth, predicted }));
                return;
            }
        }
        // Steps whose content needs the views of the step before it to have arrived.
        if settled && self.tour_follow_up(TOUR[self.tour.as_ref().map_or(0, |t| t.step)]) {
            return;
        }
        let Some(t) = self.tour.as_mut() else { return };
        if !settled {
            t.frames = 0;
            return;
        }
        t.frames += 1;
        if t.frames < 10 {
            return;
        }
        let path = t.dir.join(format!("{}.png", TOUR[t.step]));
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

    /// A step's second act, once the views of its setup are there; true when it did something.
    fn tour_follow_up(&mut self, step: &str) -> bool {
        use crate::command::ExamplesCommand;
        let s = &self.state;
        match step {
            "conv" if s.unfolded.is_none() => {
                let (Some(ch), Some(d)) = (&s.channels, &s.channel) else {
                    return false;
                };
                let (layer, c, y, x) = (ch.layer.clone(), d.channel, ch.h / 2, ch.w / 2 - 3);
                self.apply(Command::RequestField {
                    layer,
                    channel: Some(c),
                    y,
                    x,
                });
                true
            }
            "neuron"
                if s.channels.as_ref().is_some_and(|c| c.layer == "relu2")
                    && s.channel.is_some()
                    && !s.examples.result.as_ref().is_some_and(|r| {
                        r.layer == "relu2" && Some(r.channel) == s.channel.as_ref().map(|d| d.channel)
                    }) =>
            {
                self.apply(Command::Examples(ExamplesCommand::Find));
                true
            }
            "neuron" if s.visual.result.is_none() && s.examples.result.is_some() => {
                let Some(d) = &s.channel else { return false };
                self.apply(Command::Visualize {
                    goal: glassbox_engine::visualize::Goal::Channel {
                        layer: "relu2".into(),
                        channel: d.channel,
                    },
                    seed: 0,
                });
                true
            }
            "sanity" if s.slots.first().is_some_and(|sl| sl.sanity.is_none()) => {
                let id = s.slots[0].id;
                self.apply(Command::SanitySlot(id));
                true
            }
            _ => false,
        }
    }

    fn tour_setup(&mut self, ctx: &egui::Context, step: &str) {
        match step {
            "methods" => {
                let want = [
                    Method::GradCam,
                    Method::IntegratedGradients,
                    Method::SmoothGrad,
                    Method::Occlusion,
                ];
                let ids: Vec<usize> = self.state.slots.iter().map(|s| s.id).collect();
                for (k, m) in want.iter().enumerate() {
                    match ids.get(k) {
                        Some(id) => self.apply(Command::SetMethod(*id, *m)),
                        None => self.apply(Command::AddSlot(*m)),
                    }
                }
            }
            "activations" => {
                let layer = self
                    .state
                    .model
                    .as_ref()
                    .and_then(|m| m.layers.iter().find(|l| l.name == "_blocks.5").map(|l| l.name.clone()))
                    .or(self.state.settings.layer.clone());
                if let Some(l) = layer {
                    self.apply(Command::SetLayer(l));
                }
            }
            "filters" => {
                if let Some(c) = self.state.model.as_ref().and_then(|m| m.convs.first().cloned()) {
                    self.apply(Command::SetFilterConv(c));
                }
                if let Some(t) = self.tour.as_mut() {
                    t.scroll = Some(true);
                }
            }
            "error" => {
                if let Some(t) = self.tour.as_mut() {
                    t.scroll = Some(false);
                }
                let path = std::env::temp_dir().join("notes.txt");
                let _ = std::fs::write(&path, "this is not an image\n");
                self.apply(Command::OpenPath(path));
            }
            "present" => {
                self.apply(Command::DismissErrors);
                self.apply(Command::Present(true));
                self.apply(Command::Focus(Some(crate::state::Focus::Explanation)));
            }
            "draw" => {
                self.apply(Command::HideField);
                self.apply(Command::Train(crate::command::TrainCommand::Discard));
                use crate::command::DrawCommand;
                for (from, to) in [((7.0, 7.5), (21.0, 7.5)), ((21.0, 7.5), (13.0, 23.0))] {
                    self.apply(Command::Draw(DrawCommand::Stroke { from, to }));
                }
                self.apply(Command::SetLayer("relu1".into()));
            }
            "conv" => {
                self.apply(Command::Focus(Some(crate::state::Focus::Activations)));
            }
            "neuron" => {
                use crate::command::ExamplesCommand;
                self.apply(Command::HideField);
                self.apply(Command::SetLayer("relu2".into()));
                self.apply(Command::Examples(ExamplesCommand::Source(
                    glassbox_engine::finetune::DataSource::Dataset(glassbox_engine::data::DatasetName::Mnist),
                )));
                self.apply(Command::Examples(ExamplesCommand::PerClass(50)));
            }
            "sanity" => {
                self.apply(Command::Focus(Some(crate::state::Focus::Explanation)));
            }
            "lesson" => {
                use crate::command::LessonCommand;
                self.apply(Command::Lesson(LessonCommand::OpenBuiltin(
                    "what-does-a-cnn-look-at".into(),
                )));
                self.apply(Command::Lesson(LessonCommand::Go(2)));
            }
            "retrain" => {
                self.apply(Command::Present(false));
                self.apply(Command::DismissErrors);
                self.apply(Command::OpenModel("mnist".into(), None));
            }
            _ => {}
        }
        ctx.request_repaint();
    }
}
