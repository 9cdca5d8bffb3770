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
    Ok(folder_with(model, dir, false)?.0)
}

/// The same, without the sub-folders that name no class of `model` (their names returned
/// beside; perhaps none is left): comparing two models whose classes differ.
pub fn folder_known(model: &Model, dir: &Path) -> Result<(Labelled, Vec<String>)> {
    folder_with(model, dir, true)
}

fn folder_with(model: &Model, dir: &Path, skip_unknown: bool) -> Result<(Labelled, Vec<String>)> {
    let subs = super::preprocess::class_folders(dir, "named by label or index")?;
    let mut files = Vec::new();
    let mut unknown = Vec::new();
    for sub in subs {
        let name = sub
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let class = match class_of(model, &name) {
            Some(c) => c,
            None if skip_unknown => {
                unknown.push(name);
                continue;
            }
            None => {
                return Err(Error::file(
                    &sub,
                    format!(
                        "`{name}` is neither a label of the model nor a class index 0 to {} (labels start: {})",
                        model.spec.classes - 1,
                        model.labels.iter().take(4).cloned().collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        };
        let imgs = super::preprocess::images_in(&sub)?;
        files.extend(imgs.into_iter().map(|p| (p, class)));
    }
    if files.is_empty() && !skip_unknown {
        return Err(Error::file(dir, "its class folders hold no images"));
    }
    Ok((Labelled::Files(files), unknown))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    fn tiny() -> Model {
        let mut m = Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu);
        m.labels = [
            "zero",
            "One",
            "tabby, tabby cat",
            "three",
            "4",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
        ]
        .map(String::from)
        .to_vec();
        m
    }

    /// The evaluation, and the progress it reported: (done, total) after each batch.
    fn evaluated(m: &Model, set: &Labelled) -> (Evaluation, Vec<(usize, usize)>) {
        let mut calls = Vec::new();
        let e = evaluate(m, set, &mut |d, t| {
            calls.push((d, t));
            true
        })
        .unwrap();
        (e, calls)
    }

    #[test]
    fn a_folder_names_a_class_by_label_first_name_or_index() {
        let m = tiny();
        for (name, class) in [
            ("zero", Some(0)),
            ("ONE", Some(1)),
            (" one ", Some(1)),
            ("tabby, tabby cat", Some(2)),
            ("tabby", Some(2)),
            ("tabby cat", None),
            ("4", Some(4)),
            ("9", Some(9)),
            ("10", None),
            ("-1", None),
            ("cat", None),
        ] {
            assert_eq!(class_of(&m, name), class, "{name:?}");
        }
    }

    /// A folder of class sub-folders with noise pictures, `n` per class, and one file per
    /// class that is not a picture at all.
    fn folder_of(name: &str, classes: &[&str], n: usize) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("glassbox-eval-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (ci, c) in classes.iter().enumerate() {
            let sub = dir.join(c);
            std::fs::create_dir_all(&sub).unwrap();
            for i in 0..n {
                let img = image::GrayImage::from_fn(28, 28, |x, y| {
                    image::Luma([((x * 7 + y * 13 + i as u32 * 31 + ci as u32 * 57) % 256) as u8])
                });
                img.save(sub.join(format!("{i}.png"))).unwrap();
            }
            std::fs::write(sub.join("broken.png"), b"not a picture").unwrap();
        }
        dir
    }

    #[test]
    fn a_folders_counts_are_the_models_answers_one_image_at_a_time() {
        let m = tiny();
        let dir = folder_of("counts", &["zero", "tabby", "7"], 14);
        let set = folder(&m, &dir).unwrap();
        assert_eq!(set.len(), 45, "14 pictures and one broken file per class");
        let (e, calls) = evaluated(&m, &set);
        assert_eq!(calls, [(32, 45), (45, 45)]);
        assert_eq!((e.images, e.skipped.len()), (42, 3));
        assert!(e.skipped.iter().all(|s| s.contains("broken.png")), "{:?}", e.skipped);
        // The test's own count, one image at a time.
        let mut confusion = vec![vec![0u64; 10]; 10];
        let Labelled::Files(files) = &set else { unreachable!() };
        for (p, c) in files {
            if let Ok(prep) = m.preprocess.prepare_file(p) {
                let pred = m.logits(&prep.tensor).argmax(-1, false).int64_value(&[0]);
                confusion[*c as usize][pred as usize] += 1;
            }
        }
        assert_eq!(e.confusion, confusion);
        let correct = confusion[0][0] + confusion[2][2] + confusion[7][7];
        assert_eq!(e.accuracy, correct as f64 / 42.0);
        let per: Vec<(i64, &str, u64, u64)> = e
            .per_class
            .iter()
            .map(|c| (c.index, c.label.as_str(), c.correct, c.total))
            .collect();
        assert_eq!(
            per,
            [
                (0, "zero", confusion[0][0], 14),
                (2, "tabby, tabby cat", confusion[2][2], 14),
                (7, "seven", confusion[7][7], 14)
            ]
        );
        for c in &e.per_class {
            assert_eq!(c.accuracy, c.correct as f64 / 14.0);
        }
        let stopped = evaluate(&m, &set, &mut |d, _| d < 32).unwrap_err();
        assert!(matches!(stopped, Error::Cancelled));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_that_names_no_class_or_holds_nothing_readable_is_refused() {
        let m = tiny();
        let dir = folder_of("unknown", &["zero", "kitten"], 1);
        let Err(e) = folder(&m, &dir) else {
            panic!("an unknown class folder was taken")
        };
        let e = e.to_string();
        assert!(e.contains("`kitten` is neither a label") && e.contains("0 to 9"), "{e}");
        assert!(e.contains("zero, One, tabby, tabby cat, three"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let dir = folder_of("broken", &["zero"], 0);
        let set = folder(&m, &dir).unwrap();
        let e = evaluate(&m, &set, &mut |_, _| true).unwrap_err().to_string();
        assert!(e.contains("no image could be read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_split_is_counted_in_batches_of_a_thousand() {
        let m = tiny();
        tch::manual_seed(1);
        let images = Tensor::randint(256, [1500, 1, 28, 28], (Kind::Uint8, Device::Cpu));
        let labels = Tensor::randint(10, [1500], (Kind::Int64, Device::Cpu));
        let set = Labelled::Split(Split {
            images: images.shallow_clone(),
            labels: labels.shallow_clone(),
        });
        assert_eq!(set.len(), 1500);
        let (e, calls) = evaluated(&m, &set);
        assert_eq!(calls, [(1000, 1500), (1500, 1500)]);
        let pred = m
            .logits(&((images.to_kind(Kind::Float) - 127.5) / 127.5))
            .argmax(-1, false);
        let (pred, truth) = (
            Vec::<i64>::try_from(&pred).unwrap(),
            Vec::<i64>::try_from(&labels).unwrap(),
        );
        let mut confusion = vec![vec![0u64; 10]; 10];
        for (t, p) in truth.iter().zip(&pred) {
            confusion[*t as usize][*p as usize] += 1;
        }
        assert_eq!(e.confusion, confusion);
        assert_eq!(e.images, 1500);
        let right = truth.iter().zip(&pred).filter(|(t, p)| t == p).count();
        assert_eq!(e.accuracy, right as f64 / 1500.0);
        // Each class's accuracy: its right answers over its images.
        assert_eq!(e.per_class.len(), 10);
        for c in &e.per_class {
            let row = &confusion[c.index as usize];
            let total: u64 = row.iter().sum();
            assert_eq!((c.correct, c.total), (row[c.index as usize], total));
            assert_eq!(c.accuracy, c.correct as f64 / total as f64);
        }
        assert!(
            e.per_class.iter().any(|c| c.accuracy > 0.0 && c.accuracy < 1.0),
            "a class with some right answers and some wrong"
        );
        assert!(!set.is_empty() && Labelled::Files(vec![]).is_empty());
        assert!(matches!(evaluate(&m, &set, &mut |_, _| false), Err(Error::Cancelled)));
    }

    fn result(index: i64, accuracy: f64) -> ClassResult {
        ClassResult {
            index,
            label: format!("c{index}"),
            correct: 0,
            total: 1,
            accuracy,
        }
    }

    fn evaluation(per_class: Vec<ClassResult>) -> Evaluation {
        Evaluation {
            model: String::new(),
            images: 1,
            skipped: vec![],
            accuracy: 0.0,
            per_class,
            confusion: vec![],
        }
    }

    #[test]
    fn the_most_damaged_class_comes_first_and_ties_by_index() {
        let before = evaluation(vec![
            result(2, 0.75),
            result(1, 0.5),
            result(0, 1.0),
            result(3, 0.75),
            result(5, 0.5),
        ]);
        let after = evaluation(vec![
            result(0, 0.5),
            result(1, 0.75),
            result(2, 0.25),
            result(4, 0.125),
            result(5, 0.375),
        ]);
        let c = compare(&before, &after);
        let got: Vec<(i64, f64, f64, f64)> = c.iter().map(|c| (c.index, c.before, c.after, c.change)).collect();
        assert_eq!(
            got,
            [
                (0, 1.0, 0.5, -0.5),
                (2, 0.75, 0.25, -0.5),
                (5, 0.5, 0.375, -0.125),
                (1, 0.5, 0.75, 0.25)
            ],
            "class 3 has no after"
        );
        assert_eq!(c[1].label, "c2");
    }
}
