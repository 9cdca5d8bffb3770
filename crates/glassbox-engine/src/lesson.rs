//! Lessons: small TOML files (`assets/lessons/`), a list of steps, each with a title, a
//! short text, the model, image, layer, methods, view and settings to show, and optionally
//! a question (with its answer). The app runs them with next and back; `glassbox lesson
//! check` validates one (every model, image, layer, method, view and folder it names).
//!
//! Paths in a lesson are relative to its own file; `sample:NAME` is a photo bundled with
//! Glassbox, `dataset:mnist` a bundled data set.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The lessons that come with Glassbox, by file name.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "what-does-a-cnn-look-at.toml",
        include_str!("../../../assets/lessons/what-does-a-cnn-look-at.toml"),
    ),
    (
        "what-does-a-filter-do.toml",
        include_str!("../../../assets/lessons/what-does-a-filter-do.toml"),
    ),
    (
        "teach-it-something-new.toml",
        include_str!("../../../assets/lessons/teach-it-something-new.toml"),
    ),
];

/// Where the builtin lessons' own files (pictures, folders) are.
pub fn builtin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/lessons")
}

/// The views a step can show alone.
pub const VIEWS: &[&str] = &["prediction", "explanation", "activations", "filters", "retrain"];
/// What a training step can do.
pub const TRAIN_MODES: &[&str] = &["add-classes", "head", "full", "scratch"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lesson {
    pub title: String,
    #[serde(default)]
    pub about: String,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
    /// The folder its relative paths start from (set when read).
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub title: String,
    pub text: String,
    /// A builtin model or a weights file.
    pub model: Option<String>,
    /// `sample:NAME` or an image file.
    pub image: Option<String>,
    /// The layer whose channels are shown.
    pub layer: Option<String>,
    /// The convolution whose kernels the filters view shows.
    pub filter: Option<String>,
    /// The explanation methods side by side.
    pub methods: Option<Vec<String>>,
    /// The class every map explains.
    pub target: Option<i64>,
    /// The view shown alone (one of [`VIEWS`]).
    pub view: Option<String>,
    /// Settings of the Retrain panel.
    pub train: Option<TrainStep>,
    pub question: Option<String>,
    pub answer: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainStep {
    /// A folder (one sub-folder per class) or `dataset:NAME`.
    pub data: String,
    pub mode: String,
    pub epochs: Option<usize>,
    pub lr: Option<String>,
    pub val_split: Option<f64>,
    pub per_class: Option<usize>,
}

impl Lesson {
    pub fn parse(text: &str, dir: &Path, name: &str) -> Result<Lesson> {
        let mut l: Lesson = toml::from_str(text).map_err(|e| {
            // Where and what, without the echoed source line (it may be a megabyte long).
            let at = e.span().map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(" at line {line}, column {col}")
            });
            anyhow::anyhow!("{name}: not a lesson{}: {}", at.unwrap_or_default(), e.message().trim())
        })?;
        if l.steps.is_empty() {
            bail!("{name}: a lesson needs at least one [[step]]");
        }
        l.dir = dir.to_path_buf();
        Ok(l)
    }

    /// A lesson file (at most 1 MiB).
    pub fn read(path: &Path) -> Result<Lesson> {
        let bytes = crate::files::read_file(path, 1 << 20)?;
        let text = String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8 text", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Lesson::parse(&text, &dir, &path.display().to_string())
    }

    /// A builtin lesson by file name.
    pub fn builtin(name: &str) -> Result<Lesson> {
        let (n, text) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name || n.trim_end_matches(".toml") == name)
            .ok_or_else(|| anyhow::anyhow!("no builtin lesson `{name}`"))?;
        Lesson::parse(text, &builtin_dir(), n)
    }

    /// A path of the lesson, relative to its file.
    pub fn path(&self, rel: &str) -> PathBuf {
        let p = Path::new(rel);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// The model a step shows: its own, else the last one an earlier step named.
    pub fn model_at(&self, step: usize) -> Option<String> {
        self.steps[..=step.min(self.steps.len() - 1)]
            .iter()
            .rev()
            .find_map(|s| s.model.clone())
    }

    /// Every problem of the lesson: models, images, layers, methods, views and folders that
    /// do not exist. Empty when it is fine.
    pub fn check(&self, device: tch::Device) -> Vec<String> {
        use crate::model::{Model, ModelSource, BUILTINS};
        let mut problems = Vec::new();
        let mut models: std::collections::HashMap<String, std::result::Result<Model, String>> = Default::default();
        for (k, s) in self.steps.iter().enumerate() {
            let at = |what: String| format!("step {} ({}): {what}", k + 1, s.title);
            let model = self.model_at(k);
            if let Some(name) = &model {
                let m = models.entry(name.clone()).or_insert_with(|| {
                    let src = if BUILTINS.contains(&name.as_str()) {
                        ModelSource::Builtin(name.clone())
                    } else {
                        ModelSource::File(self.path(name))
                    };
                    Model::open(src, None, device).map_err(|e| e.to_string())
                });
                match m {
                    Err(e) if s.model.is_some() => problems.push(at(format!("model `{name}`: {e}"))),
                    Err(_) => {}
                    Ok(m) => {
                        let layers: Vec<String> = m.layers().into_iter().map(|l| l.name).collect();
                        for (what, l) in [("layer", &s.layer), ("filter", &s.filter)] {
                            if let Some(l) = l {
                                if !layers.contains(l) {
                                    problems.push(at(format!("{what} `{l}` is not a layer of `{name}`")));
                                } else if what == "filter" && crate::inspect::conv_weight(m, l).is_err() {
                                    problems.push(at(format!("filter `{l}` is not a convolution of `{name}`")));
                                }
                            }
                        }
                        if let Some(t) = s.target {
                            if !(0..m.spec.classes).contains(&t) {
                                problems.push(at(format!(
                                    "target {t} is not a class of `{name}` (0 to {})",
                                    m.spec.classes - 1
                                )));
                            }
                        }
                    }
                }
            } else if s.layer.is_some() || s.filter.is_some() || s.target.is_some() {
                problems.push(at(
                    "a layer, filter or target needs a model in this step or an earlier one".into(),
                ));
            }
            if let Some(img) = &s.image {
                match img.strip_prefix("sample:") {
                    Some(name) => {
                        if !crate::samples::SAMPLES.iter().any(|(n, _)| *n == name) {
                            problems.push(at(format!("no bundled sample `{name}`")));
                        }
                    }
                    None => {
                        let p = self.path(img);
                        if let Err(e) = crate::preprocess::load_image(&p) {
                            problems.push(at(format!("image: {e}")));
                        }
                    }
                }
            }
            for m in s.methods.iter().flatten() {
                if m.parse::<crate::explain::Method>().is_err() {
                    problems.push(at(format!("unknown method `{m}`")));
                }
            }
            if let Some(v) = &s.view {
                if !VIEWS.contains(&v.as_str()) {
                    problems.push(at(format!("unknown view `{v}`; views are {}", VIEWS.join(", "))));
                }
            }
            if let Some(t) = &s.train {
                if !TRAIN_MODES.contains(&t.mode.as_str()) {
                    problems.push(at(format!(
                        "unknown training mode `{}`; modes are {}",
                        t.mode,
                        TRAIN_MODES.join(", ")
                    )));
                }
                match t.data.strip_prefix("dataset:") {
                    Some(d) => {
                        if d.parse::<crate::data::DatasetName>().is_err() {
                            problems.push(at(format!("no bundled data set `{d}`")));
                        }
                    }
                    None => {
                        if let Err(e) = crate::preprocess::class_folders(&self.path(&t.data), "named by label") {
                            problems.push(at(format!("training data: {e}")));
                        }
                    }
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_lessons_parse_and_a_bad_one_says_where() {
        for (name, _) in BUILTIN {
            let l = Lesson::builtin(name).unwrap();
            assert!(l.steps.len() >= 4, "{name}");
        }
        let e = Lesson::parse(
            "title = \"x\"\n[[step]]\ntitle = \"a\"\ntext = \"b\"\ncolour = 3\n",
            Path::new("."),
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("x.toml") && e.contains("colour"), "{e}");
        let e = Lesson::parse("title = \"x\"\nstep = []\n", Path::new("."), "y.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one [[step]]"), "{e}");
    }
}
