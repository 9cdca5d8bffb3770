//! The model and the image: opening them by any path (the Models menu, a file dialog, a
//! dropped file, the clipboard), what every view does when a new one arrives, the engine
//! restarted after it was lost, exports and the error bar.

use crate::command::Command;
use crate::feature::Feature;
use crate::GlassboxApp;
use glassbox_engine::worker::{Kind, Response};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::command::{CompareCommand, DialogKind, ExamplesCommand, LessonCommand, TrainCommand};
use crate::state::Input;
use crate::textures::Which;
use crate::Picked;
use glassbox_engine::arch::Arch;
use glassbox_engine::model::ModelSource;
use glassbox_engine::session::PinSource;
use glassbox_engine::worker::{EditRequest, Engine, EvalSet, ImageSource, ModelInfo, Request, RequestKind};

/// Opening models and images, dialogs, the clipboard, exports, errors.
pub(crate) struct Files;

impl Feature for Files {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::SetImage(source) => {
                app.set_image(source);
            }
            Command::OpenPath(path) => app.open_path(path),
            Command::OpenModel(model, arch) => app.open_model(model, arch),
            Command::Dialog(kind) => app.dialog(kind),
            Command::Paste => app.paste(),
            Command::Export(what, path) => {
                if let Err(e) = app.state.export(what, &path) {
                    app.state.errors.push(format!("{e:#}"));
                }
            }
            Command::DismissErrors => app.state.errors.clear(),
            Command::ToggleHelp => app.state.show_help = !app.state.show_help,
            Command::RestartEngine => app.restart_engine(),
            Command::InjectFault(fault) => {
                app.send(Request::InjectFault(fault));
            }
            other => return Some(other),
        }
        None
    }

    fn respond(&self, app: &mut GlassboxApp, job: Kind, r: Response) -> Option<Response> {
        let id = r.id();
        match r {
            Response::ModelOpened { info, .. } => {
                // A model opened: any retrained candidate is gone with the one before it.
                app.state.training.result = None;
                app.state.training.cell = None;
                app.on_model(info)
            }
            Response::ImageSet {
                name, view, original, ..
            } => {
                app.tex.set(&app.ctx, Which::Input, &view.to_rgb8());
                if let Some(src) = app.sent_source.take() {
                    app.state.settings.image = match &src {
                        ImageSource::File(p) => Some(p.clone()),
                        _ => None,
                    };
                    app.image_source = Some(src);
                }
                let st = &mut app.state;
                st.input = Some(Input { name, view, original });
                st.target = None;
                st.top.clear();
                st.channel = None;
                st.field = None;
                for s in &mut st.slots {
                    s.result = None;
                    s.partial = None;
                    s.overlay_dirty = true;
                }
                app.tex.clear(Which::Field);
                if app.analysed_ahead.take() != Some(id) {
                    app.analyze_all(true);
                }
            }
            Response::Prediction { top, .. } => app.state.top = top,
            Response::Failed { message, .. } if job.request == RequestKind::SetImage => {
                // The engine still holds the previous image.
                app.sent_source = None;
                app.state
                    .errors
                    .push(format!("{message}. The previous image stays open."));
            }
            Response::Failed { message, .. } if job.request == RequestKind::OpenModel => app
                .state
                .errors
                .push(format!("{message}. The previous model stays open.")),
            other => return Some(other),
        }
        None
    }
}

impl GlassboxApp {
    /// Opens a model, by any path; asked first when something unsaved would be lost.
    pub(crate) fn open_model(&mut self, model: ModelSource, arch: Option<Arch>) {
        if self.ask_first(crate::unsaved::Then::Open(model.clone(), arch)) {
            return;
        }
        self.send_open_model(model, arch);
    }

    /// Opens a model without asking (the user answered, or nothing would be lost).
    pub(crate) fn send_open_model(&mut self, model: ModelSource, arch: Option<Arch>) {
        self.cancel_slot_work();
        self.send(Request::OpenModel { model, arch });
    }

    /// Sends an image to the engine; its views are analysed when it comes back (unless
    /// the caller analysed them ahead). Returns the request's id.
    pub(crate) fn set_image(&mut self, source: ImageSource) -> u64 {
        self.image_requested = Some(Instant::now());
        self.all_views_after = None;
        self.analysed_ahead = None;
        // Long maps of the old image would delay the new one: stop them.
        self.cancel_slot_work();
        let id = self.send(Request::SetImage { source: source.clone() });
        self.sent_source = Some(source);
        id
    }

    /// Opens a dropped or chosen file: a weights file by its extension, else an image.
    pub(crate) fn open_path(&mut self, path: PathBuf) {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if matches!(ext.as_str(), "safetensors" | "pth" | "pt" | "bin") {
            self.open_model(ModelSource::File(path), None);
        } else {
            self.set_image(ImageSource::File(path));
        }
    }

    /// A new engine thread, opening the model and image again (after the engine was lost).
    pub(crate) fn restart_engine(&mut self) {
        self.engine = Engine::spawn_waking(self.device, Some(crate::waker(&self.ctx)));
        self.state.engine_lost = false;
        self.pending.clear();
        self.state.errors.clear();
        let model = self.state.settings.model.clone();
        self.send_open_model(model, None);
        if self.image_source.is_none() {
            self.image_source = self.sent_source.take();
        }
        if let Some(src) = self.image_source.clone() {
            self.set_image(src);
        }
    }

    /// A new model (opened, retrained, or the one before training back): settings that
    /// name its layers checked, every view emptied, the image prepared for it again.
    pub(crate) fn on_model(&mut self, info: ModelInfo) {
        let names: Vec<&str> = info.layers.iter().map(|l| l.name.as_str()).collect();
        let st = &mut self.state;
        if !st.settings.layer.as_deref().is_some_and(|l| names.contains(&l)) {
            st.settings.layer = crate::state::State::default_layer(&info);
        }
        if !st.settings.cam_layer.as_deref().is_some_and(|l| names.contains(&l)) {
            st.settings.cam_layer = None;
        }
        if !st.settings.filter_conv.as_ref().is_some_and(|c| info.convs.contains(c)) {
            st.settings.filter_conv = info.convs.first().cloned();
        }
        st.settings.model = info.source.clone();
        if let ModelSource::File(p) = &info.source {
            st.settings.opened_model_file(p);
        }
        st.model = Some(info);
        st.unsaved.saved_edits = None;
        st.unsaved.retrained = false;
        st.edits.clear();
        st.redoable = 0;
        st.knockouts.clear();
        st.original_top = None;
        st.evaluation = None;
        let side = st.model_side() as i64;
        for s in &mut st.slots {
            s.params = s.params.clone().with_window_for(side);
        }
        st.target = None;
        st.top.clear();
        st.channels = None;
        st.channel = None;
        st.field = None;
        st.filters = None;
        if let Some(conv) = st.settings.filter_conv.clone() {
            self.set_filter_conv(conv);
        }
        // The view depends on the model's input size: prepare the image again, unless
        // a newer image is already on its way (it will be prepared for this model;
        // sending the old one again would supersede it and lose the user's drop).
        if self.sent_source.is_none() {
            if let Some(src) = self.image_source.clone() {
                self.set_image(src);
            }
        }
    }

    /// A file dialog off the UI thread; its answer arrives through `poll`.
    pub(crate) fn dialog(&self, kind: DialogKind) {
        let tx = self.picked_tx.clone();
        let start = self
            .state
            .settings
            .image
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        std::thread::spawn(move || {
            let mut d = rfd::FileDialog::new();
            if let Some(dir) = start {
                d = d.set_directory(dir);
            }
            let picked = match kind {
                DialogKind::Image => d
                    .add_filter("images", &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"])
                    .pick_file()
                    .map(Command::OpenPath),
                DialogKind::Model => d
                    .add_filter("weights", &["safetensors", "pth", "pt", "bin"])
                    .pick_file()
                    .map(Command::OpenPath),
                DialogKind::Export(what, name) => d.set_file_name(name).save_file().map(|p| Command::Export(what, p)),
                DialogKind::SaveModel => d
                    .add_filter("safetensors", &["safetensors"])
                    .set_file_name("edited.safetensors")
                    .save_file()
                    .map(|path| Command::Edit(EditRequest::Save { path, force: true })),
                DialogKind::EvalFolder => d
                    .pick_folder()
                    .map(|dir| Command::Edit(EditRequest::Evaluate(EvalSet::Folder(dir)))),
                DialogKind::ExamplesFolder => d.pick_folder().map(|dir| {
                    Command::Examples(ExamplesCommand::Source(glassbox_engine::finetune::DataSource::Folder(
                        dir,
                    )))
                }),
                DialogKind::Lesson => d
                    .add_filter("lessons", &["toml"])
                    .pick_file()
                    .map(|p| Command::Lesson(LessonCommand::OpenFile(p))),
                DialogKind::PinFile => d
                    .add_filter("weights", &["safetensors", "pth", "pt", "bin"])
                    .pick_file()
                    .map(|p| Command::Compare(CompareCommand::Pin(Some(PinSource::File(p))))),
                DialogKind::CompareFolder => d
                    .pick_folder()
                    .map(|dir| Command::Compare(CompareCommand::Accuracy(EvalSet::Folder(dir)))),
                DialogKind::ExportModel { torchscript } => {
                    let (ext, name) = if torchscript {
                        ("pt", "model.pt")
                    } else {
                        ("safetensors", "model-for-pytorch.safetensors")
                    };
                    d.add_filter(ext, &[ext])
                        .set_file_name(name)
                        .save_file()
                        .map(|path| Command::ExportModel { path, torchscript })
                }
                DialogKind::TrainFolder => d
                    .pick_folder()
                    .map(|dir| Command::Train(TrainCommand::Data(glassbox_engine::finetune::DataSource::Folder(dir)))),
            };
            if let Some(c) = picked {
                let _ = tx.send(Picked::Command(c));
            }
        });
    }

    /// An image from the clipboard (off the UI thread).
    pub(crate) fn paste(&self) {
        let tx = self.picked_tx.clone();
        std::thread::spawn(move || {
            let msg = match arboard::Clipboard::new().and_then(|mut c| c.get_image()) {
                Ok(img) => Picked::Command(Command::SetImage(ImageSource::Pixels {
                    name: "pasted image".into(),
                    width: img.width as u32,
                    height: img.height as u32,
                    rgba: img.bytes.into_owned(),
                })),
                Err(e) => Picked::Error(format!(
                    "the clipboard holds no image ({e}); copy an image first, or drop a file on the window"
                )),
            };
            let _ = tx.send(msg);
        });
    }
}
