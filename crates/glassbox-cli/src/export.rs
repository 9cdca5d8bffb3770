//! `glassbox export`: the model back to PyTorch, as a TorchScript module or safetensors with
//! PyTorch's key names.

use std::path::PathBuf;

use anyhow::Result;
use glassbox_engine::export;
use glassbox_engine::model::ModelSource;
use tch::Device;

use super::args::{check_out, ModelArgs};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A TorchScript module that `torch.jit.load` runs in Python (knock-outs and added
    /// classes in its forward; preprocessing and labels in its extra file glassbox.json).
    Torchscript,
    /// The weights with PyTorch's key names, for `model.load_state_dict(load_file(F))`.
    Safetensors,
}

/// Write the model in a form PyTorch loads.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: Format,
    /// The file to write (`.pt` for TorchScript, `.safetensors`).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ExportArgs, device: Device) -> Result<()> {
    let input = match &a.model.model {
        ModelSource::File(p) => Some(p.as_path()),
        _ => None,
    };
    check_out(&a.out, input, a.force)?;
    let m = a.model.open(device)?;
    let log = glassbox_engine::edit::saved_log(&m);
    let done = match a.format {
        Format::Torchscript => export::torchscript(&m, &log, &a.out)?,
        Format::Safetensors => export::safetensors(&m, &log, &a.out)?,
    };
    if a.json {
        println!("{}", serde_json::to_string(&done)?);
        return Ok(());
    }
    println!(
        "{}: {} of {} ({} classes), {} bytes",
        done.path.display(),
        done.format,
        a.model.model,
        m.spec.classes,
        done.bytes
    );
    if let Some(d) = done.max_logit_diff {
        println!("loaded back by libtorch: max |logit difference| {d:.2e} on two seeded inputs");
        println!(
            "in Python: m = torch.jit.load(\"{}\", _extra_files=extra) with extra = {{\"{}\": \"\"}}",
            done.path.display(),
            export::EXTRA_FILE
        );
    }
    for n in &done.notes {
        println!("note: {n}");
    }
    Ok(())
}
