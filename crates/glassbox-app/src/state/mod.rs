//! What the app shows, without egui: the settings it remembers, the model, the image, the
//! prediction, the explanations, the activations, the filters, the errors. Panels read it;
//! only the features (`features/`) change it, by applying commands and engine responses.

use std::path::{Path, PathBuf};

use image::{DynamicImage, RgbImage};
use serde::{Deserialize, Serialize};

use glassbox_engine::defaults;
use glassbox_engine::explain::{Method, Params};
use glassbox_engine::inspect::{ChannelStats, Channels, ReceptiveField};
use glassbox_engine::metrics::{Curve, Sanity};
use glassbox_engine::model::{Class, ModelSource};
use glassbox_engine::render::{self, Colormap, GridLayout, Map};
use glassbox_engine::worker::{Explained, ModelInfo};

mod compare;
mod draw;
mod neuron;
mod retrain;
mod score;

pub use compare::Comparison;
pub use draw::{Canvas, CANVAS};
pub use neuron::{Examples, ExamplesResult, Visual};
pub use retrain::{TrainForm, TrainMode, TrainResult, Training};
pub use score::Scores;

/// At most this many explanations side by side.
pub const MAX_SLOTS: usize = 4;

/// What the app remembers between sessions (eframe storage).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Settings {
    pub model: ModelSource,
    pub image: Option<PathBuf>,
    pub layer: Option<String>,
    pub cam_layer: Option<String>,
    pub filter_conv: Option<String>,
    pub methods: Vec<String>,
    /// "auto" (each method's standard colormap) or a colormap name.
    pub colormap: String,
    pub opacity: f32,
    pub top_k: usize,
    pub shared_scale: bool,
    pub per_input: bool,
    /// The model files opened lately, the newest first (the Models menu).
    pub recent_models: Vec<PathBuf>,
}

/// At most this many recent model files are remembered.
pub const MAX_RECENT_MODELS: usize = 8;
/// A remembered path longer than this (bytes) is dropped: no real path is.
const MAX_REMEMBERED_PATH: usize = 4096;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: ModelSource::Builtin("efficientnet-lite0".into()),
            image: None,
            layer: None,
            cam_layer: None,
            filter_conv: None,
            methods: vec!["grad-cam".into()],
            colormap: "auto".into(),
            opacity: defaults::OVERLAY_OPACITY as f32,
            top_k: defaults::TOP_K,
            shared_scale: true,
            per_input: false,
            recent_models: Vec::new(),
        }
    }
}

/// The most predictions the top-k list shows (a remembered value is clamped to it).
pub const MAX_TOP_K: usize = 100;
/// A remembered name (layer, colormap, method) longer than this is dropped.
const MAX_REMEMBERED_NAME: usize = 256;

impl Settings {
    /// What the last session stored (eframe's RON text), checked: a file edited by hand or
    /// left broken gives an error (the app then starts fresh and says so), and values out
    /// of range are brought back into it (opacity 0 to 1, top-k 1 to [`MAX_TOP_K`], at most
    /// [`MAX_SLOTS`] known methods, a known colormap, names of sane length).
    pub fn from_stored(text: &str) -> std::result::Result<Settings, String> {
        let s: Settings = ron::from_str(text).map_err(|e| format!("the remembered settings are broken ({e})"))?;
        Ok(s.checked())
    }

    /// The same settings with every value in its range.
    pub fn checked(mut self) -> Settings {
        let d = Settings::default();
        self.opacity = if self.opacity.is_finite() {
            self.opacity.clamp(0.0, 1.0)
        } else {
            d.opacity
        };
        self.top_k = self.top_k.clamp(1, MAX_TOP_K);
        let sane = |n: &Option<String>| n.as_ref().is_none_or(|n| n.len() <= MAX_REMEMBERED_NAME);
        for n in [&mut self.layer, &mut self.cam_layer, &mut self.filter_conv] {
            if !sane(n) {
                *n = None;
            }
        }
        self.methods = parse_methods(&self.methods).iter().map(|m| m.to_string()).collect();
        if self.colormap != "auto" && self.colormap.parse::<Colormap>().is_err() {
            self.colormap = d.colormap;
        }
        self.recent_models
            .retain(|p| p.as_os_str().len() <= MAX_REMEMBERED_PATH);
        self.recent_models.truncate(MAX_RECENT_MODELS);
        self
    }

    /// A model file opened: the newest of the recent ones.
    pub fn opened_model_file(&mut self, path: &Path) {
        self.recent_models.retain(|p| p != path);
        self.recent_models.insert(0, path.to_path_buf());
        self.recent_models.truncate(MAX_RECENT_MODELS);
    }
}

/// One explanation panel: a method with its parameters (target and CAM layer are shared
/// by all) and what it shows.
#[derive(Debug, Clone)]
pub struct Slot {
    pub id: usize,
    pub method: Method,
    pub params: Params,
    pub result: Option<Explained>,
    pub partial: Option<Map>,
    pub progress: Option<(usize, usize)>,
    pub running: Option<u64>,
    pub error: Option<String>,
    pub faith: Option<(Curve, Curve)>,
    pub sanity: Option<Sanity>,
    pub sanity_running: Option<u64>,
    /// Its picture must be drawn again (new map, colormap or opacity).
    pub overlay_dirty: bool,
}

/// The open image.
pub struct Input {
    pub name: String,
    pub view: DynamicImage,
    pub original: (u32, u32),
}

/// The chosen channel of the activation layer.
pub struct ChannelDetail {
    pub channel: usize,
    pub stats: ChannelStats,
    pub kernel: Option<(String, Vec<i64>, RgbImage)>,
    /// The kernel's values, [1, in, kh, kw] flattened.
    pub kernel_values: Vec<f32>,
    /// The channel's bias and batch-norm numbers (parameter, value).
    pub channel_params: Vec<(String, f32)>,
    pub kernel_error: Option<String>,
}

/// A receptive field on the input.
pub struct Field {
    pub layer: String,
    pub y: usize,
    pub x: usize,
    pub field: ReceptiveField,
}

/// What can be exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportWhat {
    Input,
    Overlay(usize),
    Activations,
    Channel,
    Filters,
    PredictionChart,
    FaithfulnessChart(usize),
    /// Everything on screen as one self-contained HTML page.
    Report,
}

/// Everything on screen.
#[derive(Default)]
pub struct State {
    pub settings: Settings,
    pub model: Option<ModelInfo>,
    pub input: Option<Input>,
    pub top: Vec<Class>,
    /// The class every explanation explains; None = the top-1 class.
    pub target: Option<i64>,
    /// The class the current maps explain.
    pub explained_target: Option<i64>,
    pub slots: Vec<Slot>,
    pub next_slot: usize,
    pub channels: Option<Channels>,
    pub grid: Option<(RgbImage, GridLayout)>,
    pub channel: Option<ChannelDetail>,
    pub field: Option<Field>,
    pub filters: Option<(String, Vec<i64>, RgbImage)>,
    pub errors: Vec<String>,
    /// The engine thread ended (it never should): nothing pending can finish; the error bar
    /// offers a restart.
    pub engine_lost: bool,
    pub show_help: bool,
    /// The edits in force (readable form), how many can be redone, the knocked-out channels.
    pub edits: Vec<String>,
    pub redoable: usize,
    pub knockouts: Vec<(String, i64)>,
    /// With edits in force: every class's probability in the original model (ghost bars).
    pub original_top: Option<Vec<Class>>,
    /// The last comparison of the edited model with the original on labelled images.
    pub evaluation: Option<Evaluated>,
    /// A line of news for the status bar (a file saved).
    pub notice: Option<String>,
    /// With edits in force: the original model's channels of the shown layer.
    pub original_channels: Option<Channels>,
    /// The grid shows the change from the original (edited minus original).
    pub show_change: bool,
    /// The channel to choose once the shown layer's channels arrive (a filter picked in the
    /// filters view).
    pub want_channel: Option<usize>,
    /// Retraining: the form, the run's reports, its result.
    pub training: Training,
    /// Draw a digit: the canvas of the small models.
    pub canvas: Canvas,
    /// The "Explain this" window's topic.
    pub explain_this: Option<Topic>,
    /// Presentation mode: large type, high contrast, a pointer highlight.
    pub present: bool,
    /// One view alone, full window (presentation mode's PageDown / PageUp walk through them).
    pub focus: Option<Focus>,
    /// The lesson being run.
    pub lesson: Option<LessonRun>,
    /// What the chosen channel wants to see: the data to search, the run, the top images.
    pub examples: Examples,
    /// Feature visualisation: the run and its image.
    pub visual: Visual,
    /// The value clicked in the channel, computed in the open.
    pub unfolded: Option<glassbox_engine::convolution::Unfolded>,
    /// Why it could not be (the layer is not a convolution's output, say).
    pub unfold_error: Option<String>,
    /// What no file holds yet, and the question asked before it would be lost.
    pub unsaved: crate::unsaved::Unsaved,
    /// Model A pinned beside the current one, and what differs.
    pub compare: Comparison,
    /// The scoreboard of the current image.
    pub scores: Scores,
}

/// A lesson being run: which step, whether its answer is shown, and the model it put in place.
#[derive(Debug, Clone)]
pub struct LessonRun {
    pub lesson: glassbox_engine::lesson::Lesson,
    pub step: usize,
    pub answer_shown: bool,
    /// The model the lesson put in place, and the model that stands for it now.
    pub model: Option<LessonModel>,
}

/// The model a lesson's steps name, and what stands for it now: the same model, or what the
/// lesson's own training made of it (the candidate, then the kept model). A step that names
/// `named` leaves `now` in place instead of opening `named` again: the lesson changed it.
/// (Edits change the model in place, so they are kept anyway.)
#[derive(Debug, Clone, PartialEq)]
pub struct LessonModel {
    pub named: ModelSource,
    pub now: ModelSource,
}

/// A view shown alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The input and the prediction.
    Prediction,
    Explanation,
    Activations,
    Filters,
    Retrain,
}

impl Focus {
    /// The view a lesson names (`lesson::VIEWS`).
    pub fn from_name(name: &str) -> Option<Focus> {
        Some(match name {
            "prediction" => Focus::Prediction,
            "explanation" => Focus::Explanation,
            "activations" => Focus::Activations,
            "filters" => Focus::Filters,
            "retrain" => Focus::Retrain,
            _ => return None,
        })
    }

    pub const ALL: [Focus; 5] = [
        Focus::Prediction,
        Focus::Explanation,
        Focus::Activations,
        Focus::Filters,
        Focus::Retrain,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Focus::Prediction => "Input and prediction",
            Focus::Explanation => "Explanation",
            Focus::Activations => "Activations",
            Focus::Filters => "Filters",
            Focus::Retrain => "Retrain",
        }
    }
    /// The next (or previous) view, from none.
    pub fn step(current: Option<Focus>, forward: bool) -> Focus {
        let n = Focus::ALL.len();
        let i = current.and_then(|f| Focus::ALL.iter().position(|x| *x == f));
        let j = match (i, forward) {
            (None, true) => 0,
            (None, false) => n - 1,
            (Some(i), true) => (i + 1) % n,
            (Some(i), false) => (i + n - 1) % n,
        };
        Focus::ALL[j]
    }
}

/// What "Explain this" explains: a view or a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Input,
    Draw,
    Prediction,
    Explanation,
    Activations,
    Filters,
    Layers,
    Edits,
    Retrain,
    Model,
    Method(Method),
}

impl Topic {
    /// Every topic: the views, then every method.
    pub fn all() -> Vec<Topic> {
        let mut v = vec![
            Topic::Input,
            Topic::Draw,
            Topic::Prediction,
            Topic::Explanation,
            Topic::Activations,
            Topic::Filters,
            Topic::Layers,
            Topic::Edits,
            Topic::Retrain,
            Topic::Model,
        ];
        v.extend(glassbox_engine::explain::METHODS.iter().map(|m| Topic::Method(*m)));
        v
    }
}

/// The edited model against the original on labelled images.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub edited: f64,
    pub original: f64,
    pub images: u64,
    /// Per class, the most damaged first.
    pub changes: Vec<glassbox_engine::evaluate::ClassChange>,
}

/// The methods of the remembered names, at most [`MAX_SLOTS`], at least Grad-CAM.
pub fn parse_methods(names: &[String]) -> Vec<Method> {
    let mut v: Vec<Method> = names
        .iter()
        .filter(|n| n.len() <= MAX_REMEMBERED_NAME)
        .filter_map(|n| n.parse().ok())
        .collect();
    v.dedup();
    v.truncate(MAX_SLOTS);
    if v.is_empty() {
        v.push(Method::GradCam);
    }
    v
}

impl State {
    /// Every view of the current image has its content (AUC curves excepted).
    pub fn views_ready(&self) -> bool {
        self.model.is_some()
            && self.input.is_some()
            && !self.top.is_empty()
            && self.channels.is_some()
            && self.slots.iter().all(|s| s.result.is_some() || s.error.is_some())
    }

    /// The model's input side in pixels (224 before a model is open).
    pub fn model_side(&self) -> u32 {
        self.model
            .as_ref()
            .and_then(|m| m.input.rsplit('x').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(224)
    }

    /// A new slot for `method`, with parameters for the model's input size.
    pub fn push_slot(&mut self, method: Method) -> usize {
        let id = self.next_slot;
        self.next_slot += 1;
        self.slots.push(Slot {
            id,
            method,
            params: Params::default().with_window_for(self.model_side() as i64),
            result: None,
            partial: None,
            progress: None,
            running: None,
            error: None,
            faith: None,
            sanity: None,
            sanity_running: None,
            overlay_dirty: true,
        });
        id
    }

    pub fn slot(&self, id: usize) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id == id)
    }

    pub fn slot_mut(&mut self, id: usize) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.id == id)
    }

    /// Layers the CAM methods can look at.
    pub fn spatial_layers(&self) -> Vec<String> {
        self.model
            .as_ref()
            .map(|m| {
                m.layers
                    .iter()
                    .filter(|l| defaults::is_spatial(&l.shape))
                    .map(|l| l.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The layer whose channels are shown first: the last block at 14 pixels or more.
    pub fn default_layer(info: &ModelInfo) -> Option<String> {
        glassbox_engine::model::default_layer(&info.layers)
    }

    pub fn colormap_for(&self, m: Method) -> Colormap {
        if self.settings.colormap == "auto" {
            Colormap::default_for(m)
        } else {
            self.settings.colormap.parse().unwrap_or(Colormap::default_for(m))
        }
    }

    /// The overlay picture of a slot (final map, else the map so far).
    pub fn slot_picture(&self, slot: &Slot) -> Option<RgbImage> {
        let input = self.input.as_ref()?;
        let map = slot.result.as_ref().map(|r| &r.map).or(slot.partial.as_ref())?;
        Some(render::overlay(
            &input.view,
            map,
            self.colormap_for(slot.method),
            self.settings.opacity as f64,
            defaults::OVERLAY_CLIP,
            slot.method.is_cam(),
        ))
    }

    /// The chosen channel large, and over the input.
    pub fn channel_pictures(&self) -> Option<(RgbImage, RgbImage)> {
        let (ch, sel, input) = (self.channels.as_ref()?, self.channel.as_ref()?, self.input.as_ref()?);
        Some(render::channel_pictures(&input.view, ch, sel.channel))
    }

    /// The report of what is on screen: the image, its prediction (beside the model before
    /// the edits), every map, the activation grid, and the model card.
    pub fn report(&self) -> anyhow::Result<glassbox_engine::report::Report> {
        use glassbox_engine::report::{ModelCard, Report, ReportImage};
        let (Some(input), Some(m)) = (&self.input, &self.model) else {
            anyhow::bail!("nothing to report yet: open a model and an image");
        };
        if self.top.is_empty() {
            anyhow::bail!("nothing to report yet: the prediction has not arrived");
        }
        let label = |i: i64| {
            m.labels
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("class {i}"))
        };
        let maps = self
            .slots
            .iter()
            .filter_map(|s| {
                let r = s.result.as_ref()?;
                Some((s.method.to_string(), label(r.target), self.slot_picture(s)?))
            })
            .collect();
        let mut edits = m.saved_edits.clone();
        edits.extend(self.edits.iter().cloned());
        Ok(Report {
            title: format!("Why {} says what it says", m.source.short_name()),
            comparison: self.compare.result.clone(),
            images: vec![ReportImage {
                name: input.name.rsplit('/').next().unwrap_or(&input.name).to_string(),
                input: input.view.to_rgb8(),
                top: self.top.clone(),
                original_top: self.original_top.clone(),
                maps,
                activations: match (&self.channels, &self.grid) {
                    (Some(c), Some((g, _))) => Some((c.layer.clone(), g.clone())),
                    _ => None,
                },
            }],
            model: ModelCard {
                source: m.source.to_string(),
                arch: m.arch.clone(),
                classes: m.classes,
                parameters: m.parameters,
                input: m.input.clone(),
                labels: m.labels.clone(),
                edits,
                knockouts: self.knockouts.iter().map(|(l, c)| format!("{l}:{c}")).collect(),
                training: m.training.clone(),
            },
        })
    }

    /// Writes a view as PNG or a chart as PNG/SVG, atomically.
    pub fn export(&self, what: ExportWhat, path: &Path) -> anyhow::Result<()> {
        use anyhow::anyhow;
        let nothing = || anyhow!("nothing to export yet: that view is empty");
        let png = |img: &RgbImage| -> anyhow::Result<()> {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if ext != "png" {
                anyhow::bail!("{}: pictures are exported as .png", path.display());
            }
            render::save_png(img, path)?;
            Ok(())
        };
        match what {
            ExportWhat::Input => png(&self.input.as_ref().ok_or_else(nothing)?.view.to_rgb8()),
            ExportWhat::Overlay(id) => {
                let s = self.slot(id).ok_or_else(nothing)?;
                png(&self.slot_picture(s).ok_or_else(nothing)?)
            }
            ExportWhat::Activations => png(&self.grid.as_ref().ok_or_else(nothing)?.0),
            ExportWhat::Channel => png(&self.channel_pictures().ok_or_else(nothing)?.1),
            ExportWhat::Filters => png(&self.filters.as_ref().ok_or_else(nothing)?.2),
            ExportWhat::PredictionChart => {
                if self.top.is_empty() {
                    return Err(nothing());
                }
                let title = self.input.as_ref().map(|i| i.name.clone()).unwrap_or_default();
                glassbox_engine::charts::save(
                    &glassbox_engine::charts::Chart::Prediction {
                        title,
                        top: self.top.clone(),
                    },
                    path,
                )
            }
            ExportWhat::Report => glassbox_engine::report::save(&self.report()?, path),
            ExportWhat::FaithfulnessChart(id) => {
                let s = self.slot(id).ok_or_else(nothing)?;
                let (d, i) = s.faith.clone().ok_or_else(nothing)?;
                glassbox_engine::charts::save(
                    &glassbox_engine::charts::Chart::Faithfulness {
                        title: format!("{} faithfulness", s.method),
                        deletion: d,
                        insertion: i,
                    },
                    path,
                )
            }
        }
    }
}

impl State {
    /// What opening another model or quitting would lose now, in words (empty: nothing).
    pub fn at_risk(&self) -> Vec<String> {
        let s = self;
        let mut lose = Vec::new();
        let tr = &s.training;
        if tr.running.is_some() {
            lose.push("the retraining under way".to_string());
        }
        if tr.result.is_some() {
            lose.push("the retrained model you have not kept or discarded yet".to_string());
        } else if s.unsaved.retrained {
            lose.push("the retrained model you kept (it is in no file yet)".to_string());
        }
        if !s.edits.is_empty() && s.unsaved.saved_edits.as_ref() != Some(&s.edits) {
            let n = s.edits.len();
            let first = s.edits.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            let more = if n > 3 { ", …" } else { "" };
            lose.push(format!(
                "{n} edit{} not saved ({first}{more})",
                if n == 1 { "" } else { "s" }
            ));
        }
        lose
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_settings_round_trip_and_come_back_in_range() {
        let d = Settings::default();
        let text = ron::to_string(&d).unwrap();
        assert_eq!(Settings::from_stored(&text).unwrap(), d);

        let hostile = Settings {
            opacity: f32::NAN,
            top_k: usize::MAX,
            methods: vec![
                "smoothgrad".into(),
                "nope".into(),
                "x".repeat(10_000),
                "gradient".into(),
            ],
            colormap: "plaid".into(),
            layer: Some("l".repeat(MAX_REMEMBERED_NAME + 1)),
            cam_layer: Some("_blocks.15".into()),
            ..d.clone()
        };
        let s = Settings::from_stored(&ron::to_string(&hostile).unwrap()).unwrap();
        assert_eq!(s.opacity, d.opacity, "NaN opacity is the default");
        assert_eq!(s.top_k, MAX_TOP_K);
        assert_eq!(s.methods, ["smoothgrad", "gradient"]);
        assert_eq!(s.colormap, "auto");
        assert_eq!(s.layer, None, "an overlong name is dropped");
        assert_eq!(s.cam_layer.as_deref(), Some("_blocks.15"), "a sane name is kept");

        let low = Settings {
            opacity: -3.0,
            top_k: 0,
            methods: vec![],
            colormap: "viridis".into(),
            ..d
        };
        let s = Settings::from_stored(&ron::to_string(&low).unwrap()).unwrap();
        assert_eq!((s.opacity, s.top_k, s.colormap.as_str()), (0.0, 1, "viridis"));
        assert_eq!(s.methods, ["grad-cam"], "no method left is Grad-CAM");
    }

    #[test]
    fn recent_model_files_newest_first_bounded_and_checked_when_read() {
        let mut s = Settings::default();
        for i in 0..MAX_RECENT_MODELS + 3 {
            s.opened_model_file(Path::new(&format!("/m/{i}.safetensors")));
        }
        s.opened_model_file(Path::new("/m/5.safetensors"));
        assert_eq!(s.recent_models.len(), MAX_RECENT_MODELS);
        assert_eq!(s.recent_models[0], Path::new("/m/5.safetensors"), "the newest first");
        assert_eq!(
            s.recent_models.iter().filter(|p| p.ends_with("5.safetensors")).count(),
            1
        );
        assert_eq!(
            s.recent_models[1],
            Path::new(&format!("/m/{}.safetensors", MAX_RECENT_MODELS + 2))
        );
        let hostile = Settings {
            recent_models: (0..100)
                .map(|i| {
                    PathBuf::from(if i == 0 {
                        "x".repeat(MAX_REMEMBERED_PATH + 1)
                    } else {
                        format!("/r/{i}")
                    })
                })
                .collect(),
            ..Settings::default()
        };
        let read = Settings::from_stored(&ron::to_string(&hostile).unwrap()).unwrap();
        assert_eq!(read.recent_models.len(), MAX_RECENT_MODELS);
        assert_eq!(read.recent_models[0], Path::new("/r/1"), "an overlong path is dropped");
    }

    #[test]
    fn broken_stored_settings_are_an_error_not_a_panic() {
        for text in ["", "(", "(opacity: \"x\")", "(top_k: -1)", "[1, 2]", "\u{0}"] {
            let e = Settings::from_stored(text).unwrap_err();
            assert!(e.starts_with("the remembered settings are broken"), "{text:?}: {e}");
        }
        // Unknown fields from an older or newer version are ignored, missing ones defaulted.
        let s = Settings::from_stored("(top_k: 7, future_field: 3)").unwrap();
        assert_eq!(s.top_k, 7);
    }
}
