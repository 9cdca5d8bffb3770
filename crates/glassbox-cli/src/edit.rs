//! Changing a model by hand and seeing what it did: `glassbox edit`, `diff`, `eval`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use tch::Device;

use super::args::choice;
use super::args::{check_out, progress_bar, ModelArgs};
use glassbox_engine::data::DatasetName;
use glassbox_engine::edit::{self, Editor, Op};
use glassbox_engine::evaluate::{self, Evaluation};
use glassbox_engine::model::{Model, ModelSource};
use glassbox_engine::weights::StoreAs;

/// Edit a model: apply operations in order and save a new safetensors file with the edit
/// log in its metadata (the original is never modified).
#[derive(clap::Args, Debug)]
pub struct EditArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// An edit, applied in order (repeat --op): set NAME[i,...]=V, add NAME[i,...] V,
    /// scale NAME[i,...] F, zero NAME[i,...], noise NAME[i,...] SIGMA SEED,
    /// randomize NAME[i,...] SEED, preset NAME[o,i] identity|edge|blur|sharpen, knockout LAYER:C,
    /// restore LAYER:C. NAME[3] is output channel 3; NAME[3,0,1,1] one value.
    #[arg(long = "op", required = true)]
    pub ops: Vec<String>,
    /// The edited model, a new safetensors file with the edit log (the original is never modified).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Which tensors differ between two models (how many values, max abs and L2), and both
/// edit logs.
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    #[arg(value_parser = super::args::parse_model)]
    pub a: ModelSource,
    #[arg(value_parser = super::args::parse_model)]
    pub b: ModelSource,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Accuracy, per-class accuracy and the confusion matrix on labelled images.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A folder with one sub-folder of images per class, named by label or class index.
    #[arg(long, conflicts_with = "dataset", required_unless_present = "dataset")]
    pub data: Option<PathBuf>,
    /// A bundled data set's 10,000 test images.
    #[arg(long, value_parser = choice::<DatasetName>())]
    pub dataset: Option<DatasetName>,
    /// Also evaluate this model on the same images and show the per-class change.
    #[arg(long, value_parser = super::args::parse_model)]
    pub compare: Option<ModelSource>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run_edit(a: EditArgs, device: Device) -> Result<()> {
    let input = match &a.model.model {
        ModelSource::File(p) => Some(p.as_path()),
        _ => None,
    };
    check_out(&a.out, input, a.force)?;
    let ops: Vec<Op> = a.ops.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    let mut m = a.model.open(device)?;
    let mut editor = Editor::default();
    for op in ops {
        editor.apply(&mut m, op)?;
    }
    let mut log = edit::saved_log(&m);
    log.extend(editor.log());
    m.save(&a.out, &edit::log_metadata(&log), StoreAs::F32)?;
    println!(
        "{}: {} edit(s) applied to {} ({} in its log)",
        a.out.display(),
        editor.log().len(),
        a.model.model,
        log.len()
    );
    for l in editor.log() {
        println!("  {l}");
    }
    Ok(())
}

pub fn run_diff(a: DiffArgs, device: Device) -> Result<()> {
    let ma = Model::open(a.a.clone(), None, device)?;
    let mb = Model::open(a.b.clone(), None, device)?;
    let d = edit::diff(&ma, &mb)?;
    if a.json {
        println!("{}", serde_json::to_string(&d)?);
        return Ok(());
    }
    println!(
        "{} tensor(s) differ, {} are the same ({} vs {})",
        d.changed.len(),
        d.unchanged,
        a.a,
        a.b
    );
    for t in &d.changed {
        println!(
            "  {:<36} {:>9} of {:>9} values, max |diff| {:.6}, L2 {:.6}",
            t.name, t.values, t.of, t.max_abs, t.l2
        );
    }
    for (which, log, knocked) in [("A", &d.edits_a, &d.knockouts_a), ("B", &d.edits_b, &d.knockouts_b)] {
        if log.is_empty() {
            println!("edit log of {which}: none");
        } else {
            println!("edit log of {which}:");
        }
        for l in log {
            println!("  {l}");
        }
        if !knocked.is_empty() {
            println!("knocked out in {which}: {}", knocked.join(", "));
        }
    }
    Ok(())
}

/// Evaluates `m` on `set` with a progress bar.
pub(crate) fn evaluate_one(m: &Model, set: &evaluate::Labelled) -> Result<Evaluation> {
    let bar = progress_bar(set.len() as u64, "images");
    let e = evaluate::evaluate(m, set, &mut |done, _| {
        bar.set_position(done as u64);
        true
    })?;
    bar.finish_and_clear();
    Ok(e)
}

pub fn run_eval(a: EvalArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let set = match (&a.data, a.dataset) {
        (Some(dir), _) => evaluate::folder(&m, dir)?,
        (None, Some(d)) => evaluate::dataset(d)?,
        (None, None) => bail!("give --data DIR (one sub-folder per class) or --dataset mnist|fashion-mnist"),
    };
    let e = evaluate_one(&m, &set)?;
    let other = match &a.compare {
        Some(src) => {
            let m2 = Model::open(src.clone(), a.model.arch, device)?;
            if m2.spec.classes != m.spec.classes {
                bail!(
                    "--compare {src}: it has {} classes, {} has {}",
                    m2.spec.classes,
                    a.model.model,
                    m.spec.classes
                );
            }
            Some(evaluate_one(&m2, &set)?)
        }
        None => None,
    };
    let changes = other.as_ref().map(|o| evaluate::compare(&e, o));
    if a.json {
        let mut v = serde_json::to_value(&e)?;
        if let (Some(o), Some(c)) = (&other, &changes) {
            v["compare"] = serde_json::json!({ "model": o.model, "accuracy": o.accuracy, "per_class_change": c });
        }
        println!("{v}");
        return Ok(());
    }
    for s in &e.skipped {
        eprintln!("glassbox: skipped {s}");
    }
    println!(
        "{}: accuracy {:.2} % on {} images ({} classes present)",
        e.model,
        e.accuracy * 100.0,
        e.images,
        e.per_class.len()
    );
    match (&other, &changes) {
        (Some(o), Some(c)) => {
            println!(
                "{}: accuracy {:.2} % ({:+.2} points)",
                o.model,
                o.accuracy * 100.0,
                (o.accuracy - e.accuracy) * 100.0
            );
            println!("per class, most damaged first:");
            for ch in c {
                println!(
                    "  {:>4} {:<32} {:>7.2} % -> {:>7.2} %  ({:+.2})",
                    ch.index,
                    ch.label,
                    ch.before * 100.0,
                    ch.after * 100.0,
                    ch.change * 100.0
                );
            }
        }
        _ => {
            println!("per class:");
            for c in &e.per_class {
                println!(
                    "  {:>4} {:<32} {:>7.2} %  ({}/{})",
                    c.index,
                    c.label,
                    c.accuracy * 100.0,
                    c.correct,
                    c.total
                );
            }
        }
    }
    Ok(())
}
