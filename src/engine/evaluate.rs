//! How well a model does on labelled images: accuracy, per-class accuracy and the
//! confusion matrix, on a folder with one sub-folder per class (the ImageFolder convention,
//! named by label or index) or on a bundled data set. With a second model, the per-class
//! change: what an edit broke.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use super::data::{self, DatasetName, Split};
use super::error::{Error, Result};
use super::model::Model;

/// Labelled images: files with their class index, or a data set's test split.
pub enum Labelled {
    Files(Vec<(PathBuf, i64)>),
    Split(Split),
}

impl Labelled {
    pub fn len(&self) -> usize {
        match self {
            Labelled::Files(f) => f.len(),
            Labelled::Split(s) => s.len() as usize,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bundled data set's 10,000 test images.
pub fn dataset(name: DatasetName) -> Result<Labelled> {
    Ok(Labelled::Split(data::load(name, &data::data_dir())?.test))
}

/// The class a sub-folder names for `model`: a label (exactly, ignoring case, or its first
/// comma-separated name) or a class index.
pub(crate) fn class_of(model: &Model, folder: &str) -> Option<i64> {
    let f = folder.trim().to_lowercase();
    let first = |l: &str| l.split(',').next().unwrap_or(l).trim().to_lowercase();
    model
        .labels
        .iter()
        .position(|l| l.to_lowercase() == f)
        .or_else(|| model.labels.iter().position(|l| first(l) == f))
        .map(|i| i as i64)
        .or_else(|| {
            folder
                .parse::<i64>()
                .ok()
                .filter(|i| (0..model.spec.classes).contains(i))
        })
}

/// The images of `dir`'s class sub-folders, labelled for `model`.
pub fn folder(model: &Model, dir: &Path) -> Result<Labelled> {
    let subs = super::preprocess::class_folders(dir, "named by label or index")?;
    let mut files = Vec::new();
    for sub in subs {
        let name = sub
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let class = class_of(model, &name).ok_or_else(|| {
            Error::file(
                &sub,
                format!(
                    "`{name}` is neither a label of the model nor a class index 0 to {} (labels start: {})",
                    model.spec.classes - 1,
                    model.labels.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let imgs = super::preprocess::images_in(&sub)?;
        files.extend(imgs.into_iter().map(|p| (p, class)));
    }
    if files.is_empty() {
        return Err(Error::file(dir, "its class folders hold no images"));
    }
    Ok(Labelled::Files(files))
}

/// One class's result.
#[derive(Debug, Clone, Serialize)]
pub struct ClassResult {
    pub index: i64,
    pub label: String,
    pub correct: u64,
    pub total: u64,
    pub accuracy: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub model: String,
    pub images: u64,
    /// Files that could not be read (each with its error).
    pub skipped: Vec<String>,
    pub accuracy: f64,
    /// Classes with at least one image, by index.
    pub per_class: Vec<ClassResult>,
    /// confusion[true][predicted], over all classes of the model.
    pub confusion: Vec<Vec<u64>>,
}

/// Evaluates `model` on `set`, in batches; `progress(done, total)` false stops it.
pub fn evaluate(model: &Model, set: &Labelled, progress: &mut dyn FnMut(usize, usize) -> bool) -> Result<Evaluation> {
    let k = model.spec.classes as usize;
    let mut confusion = vec![vec![0u64; k]; k];
    let mut skipped = Vec::new();
    let total = set.len();
    let mut count = |truth: &[i64], pred: &Tensor| -> Result<()> {
        let pred = Vec::<i64>::try_from(&pred.to_device(Device::Cpu).to_kind(Kind::Int64)).map_err(Error::from)?;
        for (t, p) in truth.iter().zip(pred) {
            if let Some(row) = confusion.get_mut(*t as usize) {
                row[p as usize] += 1;
            }
        }
        Ok(())
    };
    match set {
        Labelled::Split(s) => {
            let n = s.len();
            let mut i = 0;
            while i < n {
                let len = 1000.min(n - i);
                let x = Split::normalised(&s.images.narrow(0, i, len));
                let pred = model.logits(&x).argmax(-1, false);
                let truth = Vec::<i64>::try_from(&s.labels.narrow(0, i, len)).map_err(Error::from)?;
                count(&truth, &pred)?;
                i += len;
                if !progress(i as usize, total) {
                    return Err(Error::Cancelled);
                }
            }
        }
        Labelled::Files(files) => {
            for (b, chunk) in files.chunks(32).enumerate() {
                let mut xs = Vec::new();
                let mut truth = Vec::new();
                for (p, c) in chunk {
                    match model.preprocess.prepare_file(p) {
                        Ok(prep) => {
                            xs.push(prep.tensor);
                            truth.push(*c);
                        }
                        Err(e) => skipped.push(e.to_string()),
                    }
                }
                if !xs.is_empty() {
                    let pred = model.logits(&Tensor::cat(&xs, 0)).argmax(-1, false);
                    count(&truth, &pred)?;
                }
                if !progress((b * 32 + chunk.len()).min(total), total) {
                    return Err(Error::Cancelled);
                }
            }
        }
    }
    let images: u64 = confusion.iter().flatten().sum();
    if images == 0 {
        return Err(Error::invalid("no image could be read: nothing to evaluate"));
    }
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let per_class = (0..k)
        .filter_map(|i| {
            let total: u64 = confusion[i].iter().sum();
            (total > 0).then(|| ClassResult {
                index: i as i64,
                label: model.labels.get(i).cloned().unwrap_or_default(),
                correct: confusion[i][i],
                total,
                accuracy: confusion[i][i] as f64 / total as f64,
            })
        })
        .collect();
    Ok(Evaluation {
        model: model.source.to_string(),
        images,
        skipped,
        accuracy: correct as f64 / images as f64,
        per_class,
        confusion,
    })
}

/// A class's accuracy in two evaluations of the same images.
#[derive(Debug, Clone, Serialize)]
pub struct ClassChange {
    pub index: i64,
    pub label: String,
    pub before: f64,
    pub after: f64,
    pub change: f64,
}

/// Per-class change from `before` to `after`, the most damaged class first.
pub fn compare(before: &Evaluation, after: &Evaluation) -> Vec<ClassChange> {
    let mut v: Vec<ClassChange> = before
        .per_class
        .iter()
        .filter_map(|b| {
            let a = after.per_class.iter().find(|a| a.index == b.index)?;
            Some(ClassChange {
                index: b.index,
                label: b.label.clone(),
                before: b.accuracy,
                after: a.accuracy,
                change: a.accuracy - b.accuracy,
            })
        })
        .collect();
    v.sort_by(|x, y| x.change.total_cmp(&y.change).then(x.index.cmp(&y.index)));
    v
}
