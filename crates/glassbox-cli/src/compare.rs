//! `glassbox compare A B IMAGE...`: two models side by side: their weights (relative change
//! per tensor), their answers and maps on each image (and the maps' difference), and with
//! labelled data both per-class accuracies.

use std::path::{Path, PathBuf};

use anyhow::Result;
use glassbox_engine::compare::{self, ImageComparison, WeightChanges};
use glassbox_engine::data::DatasetName;
use glassbox_engine::evaluate::{self, Evaluation};
use glassbox_engine::explain::{Method, Params};
use glassbox_engine::model::{Model, ModelSource};
use glassbox_engine::render;
use serde_json::json;
use tch::Device;

use super::args::{choice, expand_inputs};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// The first model (builtin name or weights file): the "before".
    #[arg(value_parser = super::args::parse_model)]
    pub a: ModelSource,
    /// The second model: the "after".
    #[arg(value_parser = super::args::parse_model)]
    pub b: ModelSource,
    /// Images (or folders of images) both models see.
    pub images: Vec<PathBuf>,
    /// The method whose maps are compared.
    #[arg(long, default_value = "grad-cam", value_parser = choice::<Method>())]
    pub method: Method,
    /// Layer for the CAM methods (default: the last layer with a spatial output).
    #[arg(long)]
    pub layer: Option<String>,
    /// Classes shown per model and image.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub top: u16,
    /// A labelled folder (one sub-folder per class) both models are evaluated on; a class
    /// only one model has counts for that model only.
    #[arg(long, conflicts_with = "dataset")]
    pub data: Option<PathBuf>,
    /// A bundled data set's 10,000 test images, for both models.
    #[arg(long, value_parser = choice::<DatasetName>())]
    pub dataset: Option<DatasetName>,
    /// Where the pictures go: per image A's map, B's map and their difference.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Both models' accuracy on the labelled data.
struct Accuracy {
    /// `None` where the data holds no image of that model's classes.
    a: Option<Evaluation>,
    b: Option<Evaluation>,
    only_a: Vec<String>,
    only_b: Vec<String>,
}

fn evaluate_both(
    a: &Model,
    b: &Model,
    data: &Option<PathBuf>,
    dataset: Option<DatasetName>,
) -> Result<Option<Accuracy>> {
    // A data set is labelled by index, the same for both: read once.
    let ((la, only_a), b_side) = match (data, dataset) {
        (Some(dir), _) => (evaluate::folder_known(a, dir)?, Some(evaluate::folder_known(b, dir)?)),
        (None, Some(d)) => ((evaluate::dataset(d)?, vec![]), None),
        (None, None) => return Ok(None),
    };
    let (lb, only_b) = match &b_side {
        Some((l, only)) => (l, only.clone()),
        None => (&la, Vec::new()),
    };
    let one = |m: &Model, set: &evaluate::Labelled| -> Result<Option<Evaluation>> {
        if set.is_empty() {
            return Ok(None);
        }
        super::edit::evaluate_one(m, set).map(Some)
    };
    Ok(Some(Accuracy {
        a: one(a, &la)?,
        b: one(b, lb)?,
        only_a: only_b_of(&only_b, &only_a),
        only_b: only_b_of(&only_a, &only_b),
    }))
}

impl Accuracy {
    fn per_class(&self) -> Vec<compare::AccuracyChange> {
        match (&self.a, &self.b) {
            (Some(a), Some(b)) => compare::accuracies(a, b),
            _ => Vec::new(),
        }
    }
}

/// Sub-folders that one model knows and the other does not.
fn only_b_of(unknown_to_b: &[String], unknown_to_a: &[String]) -> Vec<String> {
    unknown_to_b
        .iter()
        .filter(|n| !unknown_to_a.contains(n))
        .cloned()
        .collect()
}

/// A file name in `dir` for `stem` and `tag` not used by an earlier image of this run.
fn picture_path(dir: &Path, stem: &str, tag: &str, used: &mut std::collections::HashSet<String>) -> PathBuf {
    let mut name = stem.to_string();
    let mut n = 2;
    while used.contains(&format!("{name}-{tag}")) {
        name = format!("{stem}-{n}");
        n += 1;
    }
    used.insert(format!("{name}-{tag}"));
    dir.join(format!("{name}-{tag}.png"))
}

pub fn run(a: CompareArgs, device: Device) -> Result<()> {
    let inputs = expand_inputs(&a.images)?;
    if inputs.is_empty() && a.data.is_none() && a.dataset.is_none() {
        anyhow::bail!("give images to compare the models on, or --data DIR / --dataset D for their accuracies");
    }
    let ma = Model::open(a.a.clone(), None, device)?;
    let mb = Model::open(a.b.clone(), None, device)?;
    if ma.spec.arch != mb.spec.arch {
        anyhow::bail!(
            "{} is {} and {} is {}: compare two versions of one architecture",
            a.a,
            ma.spec.arch,
            a.b,
            mb.spec.arch
        );
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("--out {}: cannot create it: {e}", dir.display()))?;
    }
    let weights = compare::weight_changes(&ma, &mb);
    let params = Params {
        layer: a.layer.clone(),
        ..Params::default()
    };
    let mut images = Vec::new();
    let mut used = std::collections::HashSet::new();
    for path in &inputs {
        let prepared = ma.preprocess.prepare_file(path)?;
        let c = compare::image(&ma, &mb, &prepared.tensor, a.top as usize, a.method, &params)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut files = Vec::new();
        if let (Some(dir), Some(pics)) = (&a.out, compare::pictures(&prepared.view, &c, a.method)) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            for (pic, tag) in pics.iter().zip(["a", "b", "difference"]) {
                let p = picture_path(dir, &stem, tag, &mut used);
                render::save_png(pic, &p)?;
                files.push(p);
            }
        }
        images.push((path.clone(), c, files));
    }
    let acc = evaluate_both(&ma, &mb, &a.data, a.dataset)?;
    if a.json {
        println!("{}", to_json(&a, &weights, &images, acc.as_ref()));
    } else {
        print_text(&a, &weights, &images, acc.as_ref());
    }
    Ok(())
}

fn to_json(
    a: &CompareArgs,
    w: &WeightChanges,
    images: &[(PathBuf, ImageComparison, Vec<PathBuf>)],
    acc: Option<&Accuracy>,
) -> serde_json::Value {
    let images: Vec<_> = images
        .iter()
        .map(|(p, c, files)| {
            let mut v = serde_json::to_value(c).expect("comparison serialises");
            v["image"] = json!(p.display().to_string());
            v["pictures"] = json!(files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>());
            v
        })
        .collect();
    let data = acc.map(|x| {
        json!({
            "images_a": x.a.as_ref().map_or(0, |e| e.images), "images_b": x.b.as_ref().map_or(0, |e| e.images),
            "accuracy_a": x.a.as_ref().map(|e| e.accuracy), "accuracy_b": x.b.as_ref().map(|e| e.accuracy),
            "per_class": x.per_class(),
            "classes_only_a": x.only_a, "classes_only_b": x.only_b,
        })
    });
    json!({
        "a": a.a.to_string(), "b": a.b.to_string(), "method": a.method.name(),
        "weights": w, "images": images, "data": data,
    })
}

fn pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{:.2} %", p * 100.0))
}

fn print_text(
    a: &CompareArgs,
    w: &WeightChanges,
    images: &[(PathBuf, ImageComparison, Vec<PathBuf>)],
    acc: Option<&Accuracy>,
) {
    println!("A = {}, B = {}", a.a, a.b);
    println!(
        "weights: {} tensor(s) changed, {} the same; {} shared class(es)",
        w.changed.len(),
        w.unchanged,
        w.shared_classes
    );
    for t in w.changed.iter().take(20) {
        let rows = t
            .shared_rows
            .map_or(String::new(), |r| format!(" (the {r} shared classes' rows)"));
        let rel = t.relative_l2.map_or("new".into(), |r| format!("{:.4}", r));
        println!(
            "  {:<40} relative L2 {rel:>8}, {} of {} values{rows}",
            t.name, t.values, t.of
        );
    }
    if w.changed.len() > 20 {
        println!("  ... and {} more (--json lists all)", w.changed.len() - 20);
    }
    for (which, list) in [
        ("classes only in A", &w.classes_only_a),
        ("classes only in B", &w.classes_only_b),
        ("tensors only in A", &w.only_a),
        ("tensors only in B", &w.only_b),
        ("tensors of different shapes", &w.different_shape),
    ] {
        if !list.is_empty() {
            println!("{which}: {}", list.join(", "));
        }
    }
    for (p, c, files) in images {
        println!("{}", p.display());
        println!("  {:<32} {:>9} {:>9} {:>9}", "class", "A", "B", "change");
        for ch in &c.changes {
            let change = ch.change.map_or("-".into(), |d| format!("{:+.2}", d * 100.0));
            println!("  {:<32} {:>9} {:>9} {:>9}", ch.label, pct(ch.a), pct(ch.b), change);
        }
        println!(
            "  {} of `{}`: 1 - Pearson {:.4}, rank correlation {:.4}",
            c.method, c.target, c.one_minus_pearson, c.spearman
        );
        for f in files {
            println!("  wrote {}", f.display());
        }
    }
    if let Some(x) = acc {
        let side = |e: &Option<Evaluation>| match e {
            Some(e) => format!("{:.2} % on {} images", e.accuracy * 100.0, e.images),
            None => "no image of its classes".to_string(),
        };
        println!("accuracy: A {}, B {}", side(&x.a), side(&x.b));
        let per_class = x.per_class();
        if !per_class.is_empty() {
            println!("per shared class, most changed first:");
        }
        for c in per_class {
            println!(
                "  {:<32} {:>8.2} % {:>8.2} %  ({:+.2})",
                c.label,
                c.a * 100.0,
                c.b * 100.0,
                c.change * 100.0
            );
        }
        if !x.only_a.is_empty() || !x.only_b.is_empty() {
            println!(
                "classes of the data only A knows: {}; only B knows: {}",
                if x.only_a.is_empty() {
                    "none".into()
                } else {
                    x.only_a.join(", ")
                },
                if x.only_b.is_empty() {
                    "none".into()
                } else {
                    x.only_b.join(", ")
                }
            );
        }
    }
}
