//! Taking a model back to PyTorch: a TorchScript module (`torch.jit.load`) traced from
//! Glassbox's own forward, knock-outs and added classes included, with the preprocessing and
//! labels inside the file as the extra file `glassbox.json`; or safetensors with PyTorch's key
//! names, ready for `load_state_dict`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tch::{CModule, Device, Tensor};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::weights::{self, StoreAs};

/// The name of the extra file inside an exported TorchScript module:
/// `torch.jit.load(F, _extra_files={"glassbox.json": ""})` reads it.
pub const EXTRA_FILE: &str = "glassbox.json";

/// The largest logit difference allowed between the exported module and Glassbox's forward.
pub const TOLERANCE: f64 = 1e-4;

/// What a user needs beside the weights to use an exported model: the input it expects and
/// what its outputs mean.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Sidecar {
    pub exported_by: String,
    pub arch: String,
    /// The input: `N x channels x size x size` float32, each pixel (0-255) as
    /// `(p - mean[c]) / std[c]`, after the resize in `preprocess`.
    pub input: String,
    pub preprocess: crate::preprocess::Preprocess,
    /// Output `i` is the logit of `labels[i]`.
    pub labels: Vec<String>,
    /// Channels zeroed in the module's forward (`layer:channel`).
    pub knockouts: Vec<String>,
    /// The edit log the model carries.
    pub edits: Vec<String>,
}

impl Sidecar {
    /// What to say of `model`, whose edits so far are `edits`.
    pub fn of(model: &Model, edits: &[String]) -> Sidecar {
        let p = &model.preprocess;
        Sidecar {
            exported_by: format!("Glassbox {}", env!("CARGO_PKG_VERSION")),
            arch: model.spec.arch.to_string(),
            input: format!(
                "float32 N x {} x {} x {}, pixel p (0-255) as (p - mean) / std per channel",
                p.channels(),
                p.size,
                p.size
            ),
            preprocess: p.clone(),
            labels: model.labels.clone(),
            knockouts: model.knockouts.iter().map(|(l, c)| format!("{l}:{c}")).collect(),
            edits: edits.to_vec(),
        }
    }
}

/// What an export wrote and checked.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub path: PathBuf,
    pub format: &'static str,
    pub bytes: u64,
    /// The largest |logit difference| between the written file, loaded back by libtorch,
    /// and Glassbox's forward, on two seeded inputs (TorchScript only).
    pub max_logit_diff: Option<f64>,
    /// What the file does not carry, in words.
    pub notes: Vec<String>,
}

/// Writes `model` (whose edit log is `edits`) as a TorchScript module at `path`
/// (atomically) once libtorch has loaded it back and given the model's logits on two seeded
/// inputs (batch 2).
pub fn torchscript(model: &Model, edits: &[String], path: &Path) -> Result<Exported> {
    // Traced on the CPU with frozen copies of the weights: the module loads anywhere, and
    // a tensor that requires grad cannot be a traced constant.
    let mut cpu = crate::metrics::duplicate_on(model, Device::Cpu);
    cpu.vs.freeze();
    let p = &model.preprocess;
    let (c, s) = (p.channels(), p.size as i64);
    let example = crate::noise::seeded_normal(&[1, c, s, s], 19, 0);
    let module = crate::guard::catch("tracing the model for TorchScript", || {
        CModule::create_by_tracing("Glassbox", "forward", &[example], &mut |xs| {
            vec![tch::no_grad(|| cpu.logits(&xs[0]))]
        })
        .map_err(Error::from)
    })?;
    // Written and checked in a temporary file first; only a module that passed gets the
    // user's name (atomically, as every save).
    // (libtorch names the archive's folder after the file: no leading dot.)
    let tmp = tempfile::Builder::new()
        .prefix("glassbox-export-")
        .suffix(".pt")
        .tempfile()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    module.save(tmp.path())?;
    add_extra_file(
        tmp.path(),
        &serde_json::to_vec_pretty(&Sidecar::of(model, edits)).expect("sidecar"),
    )?;
    let x = crate::noise::seeded_normal(&[2, c, s, s], 19, 1);
    let back = CModule::load(tmp.path())?;
    let got = back.forward_ts(&[x.shallow_clone()])?;
    let want = tch::no_grad(|| cpu.logits(&x));
    if got.size() != want.size() {
        return Err(Error::invalid(format!(
            "the TorchScript module gives logits of shape {:?} where the model gives {:?}",
            got.size(),
            want.size()
        )));
    }
    let diff = (got - want).abs().max().double_value(&[]);
    if diff.is_nan() || diff > TOLERANCE {
        return Err(Error::invalid(format!(
            "the TorchScript module's logits differ from the model's by {diff:.2e} (more than {TOLERANCE:.0e}); nothing was written"
        )));
    }
    crate::files::write_atomic(path, &crate::files::read_file(tmp.path(), u64::MAX)?)?;
    Ok(Exported {
        path: path.to_path_buf(),
        format: "torchscript",
        bytes: std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len(),
        max_logit_diff: Some(diff),
        notes: Vec::new(),
    })
}

/// Writes `model` as safetensors with PyTorch's key names (batch norms' `num_batches_tracked`
/// included, as `load_state_dict` expects them) and Glassbox's metadata.
pub fn safetensors(model: &Model, edits: &[String], path: &Path) -> Result<Exported> {
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    let counters: Vec<(String, Tensor)> = vars
        .iter()
        .filter_map(|(n, _)| n.strip_suffix(".running_mean"))
        .map(|prefix| (format!("{prefix}.num_batches_tracked"), Tensor::from(0i64)))
        .collect();
    vars.extend(counters);
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = model.file_metadata(&crate::edit::log_metadata(edits));
    weights::save_safetensors(path, &vars, &metadata, StoreAs::F32)?;
    let mut notes = Vec::new();
    if !model.knockouts.is_empty() {
        let knocked: Vec<String> = model.knockouts.iter().map(|(l, c)| format!("{l}:{c}")).collect();
        notes.push(format!(
            "the knock-outs ({}) are in the metadata only: PyTorch's load_state_dict does not apply them; \
             --format torchscript carries them in the forward",
            knocked.join(", ")
        ));
    }
    Ok(Exported {
        path: path.to_path_buf(),
        format: "safetensors",
        bytes: std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len(),
        max_logit_diff: None,
        notes,
    })
}

/// Appends `extra/glassbox.json` to a TorchScript archive, beside the records PyTorch wrote
/// (the same folder prefix, stored uncompressed, as `torch.jit.save(_extra_files=...)` does);
/// the records already there are not touched.
fn add_extra_file(archive: &Path, json: &[u8]) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(archive)
        .map_err(|e| Error::io(archive, e))?;
    let zip_err = |e: zip::result::ZipError| Error::file(archive, format!("TorchScript archive: {e}"));
    let prefix = {
        let mut z = zip::ZipArchive::new(&file).map_err(zip_err)?;
        let first = z.by_index(0).map_err(zip_err)?.name().to_string();
        first.split('/').next().unwrap_or("archive").to_string()
    };
    let mut w = zip::ZipWriter::new_append(file).map_err(zip_err)?;
    let opts = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file(format!("{prefix}/extra/{EXTRA_FILE}"), opts)
        .map_err(zip_err)?;
    w.write_all(json).map_err(|e| Error::io(archive, e))?;
    w.finish().map_err(zip_err)?;
    Ok(())
}

/// The extra file of an exported TorchScript module, read back.
pub fn read_sidecar(path: &Path) -> Result<Sidecar> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let zip_err = |e: zip::result::ZipError| Error::file(path, format!("is not a TorchScript archive: {e}"));
    let mut z = zip::ZipArchive::new(file).map_err(zip_err)?;
    let name = z
        .file_names()
        .find(|n| n.ends_with(&format!("/extra/{EXTRA_FILE}")))
        .map(str::to_string)
        .ok_or_else(|| {
            Error::file(
                path,
                format!("has no extra file {EXTRA_FILE}: it was not exported by Glassbox"),
            )
        })?;
    let entry = z.by_name(&name).map_err(zip_err)?;
    if entry.size() > 64 << 20 {
        return Err(Error::file(
            path,
            format!("its {EXTRA_FILE} claims {} bytes", entry.size()),
        ));
    }
    serde_json::from_reader(entry).map_err(|e| Error::file(path, format!("{EXTRA_FILE}: {e}")))
}
