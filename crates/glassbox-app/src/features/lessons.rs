//! Lessons: a script of steps, each putting a model, an image, methods, a view and
//! settings in place, with a question and its answer.

use crate::command::Command;
use crate::command::LessonCommand;
use crate::feature::Feature;
use crate::GlassboxApp;
use glassbox_engine::explain::Method;
use glassbox_engine::model::ModelSource;
use glassbox_engine::worker::{ImageSource, RequestKind};

/// Running a lesson.
pub(crate) struct Lessons;

impl Feature for Lessons {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Lesson(l) => app.lesson(l),
            other => return Some(other),
        }
        None
    }
}

impl GlassboxApp {
    /// Lessons: open, go to a step (its model, image, methods, view and settings), again,
    /// answer, close.
    pub(crate) fn lesson(&mut self, c: LessonCommand) {
        let opened = match c {
            LessonCommand::OpenBuiltin(name) => glassbox_engine::lesson::Lesson::builtin(&name),
            LessonCommand::OpenFile(path) => glassbox_engine::lesson::Lesson::read(&path),
            LessonCommand::Go(n) => {
                if let Some(run) = self.state.lesson.as_mut() {
                    run.step = n.min(run.lesson.steps.len() - 1);
                    run.answer_shown = false;
                    self.lesson_step();
                }
                return;
            }
            LessonCommand::Again => {
                self.lesson_step();
                return;
            }
            LessonCommand::Answer => {
                if let Some(run) = self.state.lesson.as_mut() {
                    run.answer_shown = true;
                }
                return;
            }
            LessonCommand::Close => {
                self.state.lesson = None;
                self.state.focus = None;
                self.lesson_deferred = None;
                return;
            }
        };
        match opened {
            Ok(lesson) => {
                self.state.lesson = Some(crate::state::LessonRun {
                    lesson,
                    step: 0,
                    answer_shown: false,
                    model: None,
                });
                self.lesson_step();
            }
            Err(e) => self.state.errors.push(format!("{e:#}")),
        }
    }

    /// Puts the current lesson step in place: the model and image it names (opened if they
    /// differ, unless the lesson's own training changed that model: see `LessonModel`), its
    /// methods, its view alone, the Retrain settings; its layer, filter and target once the
    /// model and image are there.
    pub(crate) fn lesson_step(&mut self) {
        let Some(run) = &self.state.lesson else { return };
        let l = run.lesson.clone();
        let k = run.step;
        let step = l.steps[k].clone();
        let placed = run.model.clone();
        if let Some(name) = l.model_at(k) {
            let src = if glassbox_engine::model::BUILTINS.contains(&name.as_str()) {
                ModelSource::Builtin(name)
            } else {
                ModelSource::File(l.path(&name))
            };
            let current = self.state.settings.model.clone();
            let changed_here = placed.is_some_and(|m| m.named == src && m.now == current);
            let now = if current == src || changed_here {
                current
            } else {
                self.open_model(src.clone(), None);
                src.clone()
            };
            if let Some(run) = self.state.lesson.as_mut() {
                run.model = Some(crate::state::LessonModel { named: src, now });
            }
        }
        if let Some(img) = &step.image {
            let source = match img.strip_prefix("sample:") {
                Some(name) => glassbox_engine::samples::SAMPLES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(n, b)| ImageSource::Bytes {
                        name: n.to_string(),
                        bytes: b.to_vec(),
                    }),
                None => Some(ImageSource::File(l.path(img))),
            };
            if let Some(src) = source {
                self.set_image(src);
            }
        }
        if let Some(methods) = &step.methods {
            let want: Vec<Method> = methods.iter().filter_map(|m| m.parse().ok()).collect();
            let ids: Vec<usize> = self.state.slots.iter().map(|s| s.id).collect();
            for (i, m) in want.iter().enumerate() {
                match ids.get(i) {
                    Some(id) if self.state.slot(*id).is_some_and(|s| s.method == *m) => {}
                    Some(id) => self.apply(Command::SetMethod(*id, *m)),
                    None => self.apply(Command::AddSlot(*m)),
                }
            }
            for id in ids.iter().skip(want.len().max(1)) {
                self.apply(Command::RemoveSlot(*id));
            }
        }
        self.state.focus = step.view.as_deref().and_then(crate::state::Focus::from_name);
        if let Some(t) = &step.train {
            use crate::state::TrainMode;
            let mut f = self.state.training.form.clone();
            f.source = Some(match t.data.strip_prefix("dataset:") {
                Some(d) => glassbox_engine::finetune::DataSource::Dataset(
                    d.parse().unwrap_or(glassbox_engine::data::DatasetName::Mnist),
                ),
                None => glassbox_engine::finetune::DataSource::Folder(l.path(&t.data)),
            });
            f.mode = match t.mode.as_str() {
                "add-classes" => TrainMode::AddClasses,
                "full" => TrainMode::Full,
                "scratch" => TrainMode::Scratch,
                _ => TrainMode::Head,
            };
            if let Some(e) = t.epochs {
                f.epochs = e;
            }
            if let Some(lr) = &t.lr {
                f.lr = lr.clone();
            }
            if let Some(v) = t.val_split {
                f.val_split = v;
            }
            if let Some(p) = t.per_class {
                f.per_class = p;
            }
            self.state.training.form = f;
        }
        self.lesson_deferred = Some(step);
        self.lesson_deferred_now();
    }

    /// The deferred layer, filter and target of a lesson step, once no model or image is
    /// on its way.
    pub(crate) fn lesson_deferred_now(&mut self) {
        let waiting = self
            .pending
            .values()
            .any(|j| matches!(j.request, RequestKind::OpenModel | RequestKind::SetImage));
        if waiting || self.state.model.is_none() {
            return;
        }
        let Some(step) = self.lesson_deferred.take() else {
            return;
        };
        // A layer already shown stays as it is, with the channel the student chose there.
        let st = &self.state;
        let shown =
            |l: &String| st.settings.layer.as_ref() == Some(l) && st.channels.as_ref().is_some_and(|c| c.layer == *l);
        if let Some(l) = step.layer.filter(|l| !shown(l)) {
            self.set_layer(l);
        }
        if let Some(f) = step.filter {
            self.set_filter_conv(f);
        }
        if let Some(t) = step.target {
            self.apply(Command::SetTarget(Some(t)));
        }
    }

    /// Training replaced the model in place (a candidate, the kept or the discarded one): if it
    /// was the lesson's model, the lesson's model is now the new one (see `LessonModel`).
    pub(crate) fn lesson_model_follows(&mut self, new: &ModelSource) {
        let current = &self.state.settings.model;
        if let Some(m) = self.state.lesson.as_mut().and_then(|r| r.model.as_mut()) {
            if m.now == *current {
                m.now = new.clone();
            }
        }
    }
}
