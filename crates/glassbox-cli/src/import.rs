//! `glassbox import`: a PyTorch state dict or safetensors file to Glassbox safetensors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use tch::Device;

use super::args::check_out;
use super::args::choice;
use glassbox_engine::arch::Arch;
use glassbox_engine::model::Model;
use glassbox_engine::weights::StoreAs;

/// Convert a PyTorch state dict (.pth/.pt, zip or legacy) or safetensors file to Glassbox
/// safetensors, checking that it fits the architecture. No pickle code runs.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    pub input: PathBuf,
    /// The architecture of the weights, when the file does not say.
    #[arg(long, value_parser = choice::<Arch>())]
    pub arch: Option<Arch>,
    /// The safetensors file to write (the original is never modified).
    #[arg(long)]
    pub out: PathBuf,
    /// Store weights as fp16 (half the size).
    #[arg(long)]
    pub f16: bool,
    /// Replace OUT if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: ImportArgs, _device: Device) -> Result<()> {
    check_out(&a.out, Some(&a.input), a.force)?;
    let m = Model::from_file(&a.input, a.arch, Device::Cpu)?;
    let mut meta = BTreeMap::new();
    meta.insert(
        "glassbox.imported_from".into(),
        a.input
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    m.save(&a.out, &meta, if a.f16 { StoreAs::F16 } else { StoreAs::F32 })?;
    eprintln!(
        "imported {} as {} ({} classes, {} parameters) to {}",
        a.input.display(),
        m.spec.arch,
        m.spec.classes,
        m.parameter_count(),
        a.out.display()
    );
    Ok(())
}
