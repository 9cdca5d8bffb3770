//! `glassbox report`: a self-contained HTML page for images (the prediction, the maps, the
//! activations, the edits and training record, a model card), to take home or mail.

use std::path::PathBuf;

use anyhow::Result;
use tch::Device;

use super::args::choice;
use super::args::{expand_inputs, ModelArgs};
use glassbox_engine::defaults;
use glassbox_engine::explain::{Method, Params};
use glassbox_engine::finetune;
use glassbox_engine::model::Model;
use glassbox_engine::render::{self, Colormap};
use glassbox_engine::report::{self, ModelCard, Report, ReportImage};
use glassbox_engine::session::{ImageSource, Session};

/// A self-contained HTML report of images: prediction, maps, activations, model card.
#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// Images (or folders of images).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Attribution methods shown for each image (comma-separated).
    #[arg(long, value_parser = choice::<Method>(), value_delimiter = ',', default_value = "grad-cam")]
    pub methods: Vec<Method>,
    /// The layer whose channels are shown (default: the app's first choice).
    #[arg(long)]
    pub layer: Option<String>,
    /// How many classes each image's prediction lists.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=50))]
    pub top: u16,
    /// The page's title.
    #[arg(long, default_value = "Why the model says what it says")]
    pub title: String,
    /// The page to write (.html).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// The model card of an open model.
pub fn card(m: &Model) -> ModelCard {
    let p = &m.preprocess;
    ModelCard {
        source: m.source.to_string(),
        arch: m.spec.arch.to_string(),
        classes: m.spec.classes,
        parameters: m.parameter_count(),
        input: format!("{}x{}x{}", p.channels(), p.size, p.size),
        labels: m.labels.clone(),
        edits: glassbox_engine::edit::saved_log(m),
        knockouts: m.knockouts.iter().map(|(l, c)| format!("{l}:{c}")).collect(),
        training: finetune::record_of(m),
    }
}

pub fn run(a: ReportArgs, device: Device) -> Result<()> {
    if a.out.exists() && !a.force {
        anyhow::bail!("{} already exists; pass --force to replace it", a.out.display());
    }
    let m = a.model.open(device)?;
    let layer = match &a.layer {
        Some(l) => l.clone(),
        None => glassbox_engine::model::default_layer(&m.layers())
            .ok_or_else(|| anyhow::anyhow!("the model has no layer with channels to show; give --layer"))?,
    };
    let size = m.preprocess.size as i64;
    let card = card(&m);
    let mut session = Session::with_model(m);
    let mut images = Vec::new();
    for path in expand_inputs(&a.images)? {
        let set = session.set_image(&ImageSource::File(path.clone()))?;
        let top = session.predict(a.top as usize)?;
        let mut maps = Vec::new();
        for &method in &a.methods {
            let params = Params::default().with_window_for(size);
            let e = session.explain(method, &params, &mut |_, _, _| true)?;
            let pic = session.overlay(&e.map, method, None, defaults::OVERLAY_OPACITY)?;
            let what = session
                .model()?
                .labels
                .get(e.target as usize)
                .cloned()
                .unwrap_or_default();
            maps.push((method.to_string(), what, pic));
        }
        let (ch, _) = session.activations(&layer)?;
        let (grid, _) = render::channel_grid(&ch, true, Colormap::Viridis);
        images.push(ReportImage {
            name: path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            input: set.view.to_rgb8(),
            top,
            original_top: None,
            maps,
            activations: Some((layer.clone(), grid)),
        });
    }
    let n = images.len();
    report::save(
        &Report {
            title: a.title.clone(),
            comparison: None,
            images,
            model: card,
        },
        &a.out,
    )?;
    println!(
        "{}: {n} image(s), {} method(s), layer {layer}",
        a.out.display(),
        a.methods.len()
    );
    Ok(())
}
