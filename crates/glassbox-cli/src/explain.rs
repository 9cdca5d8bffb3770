//! `glassbox explain` (a saliency map per image, over the image the model saw, with its
//! faithfulness) and `glassbox sanity` (cascading randomisation).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tch::Device;

use super::args::choice;
use super::args::{
    expand_inputs, for_each_input, output_path, parse_shard, progress_bar, unit, MethodArgs, ModelArgs, Shard,
};
use glassbox_engine::defaults;
use glassbox_engine::explain::{Method, Params};
use glassbox_engine::render::{self, Colormap};
use glassbox_engine::session::{ImageSource, Session};
use glassbox_engine::weights::{self, StoreAs};

/// Explain a prediction: a saliency map per image, drawn over the image the model saw.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// Image files or directories of images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub method: MethodArgs,
    /// Overlay PNG (one input) or a directory (several inputs: NAME.METHOD.png).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Safetensors with input, logits and attribution (file, or directory for several).
    #[arg(long)]
    pub save_raw: Option<PathBuf>,
    /// Overlay opacity, 0-1.
    #[arg(long, default_value_t = defaults::OVERLAY_OPACITY, value_parser = unit)]
    pub opacity: f64,
    /// Colormap (default: the method's standard one).
    #[arg(long, value_parser = choice::<Colormap>())]
    pub colormap: Option<Colormap>,
    /// Only this part of the inputs: I/N (0-based), `auto` in a Slurm job array, `auto/N`
    /// in a Kubernetes Indexed Job of N completions.
    #[arg(long, value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Also measure faithfulness: deletion and insertion curves and their AUC.
    #[arg(long)]
    pub metrics: bool,
    /// With --metrics: the two curves as a chart (.png or .svg; with several images, a folder).
    #[arg(long, requires = "metrics")]
    pub chart: Option<PathBuf>,
    /// The scoreboard: each method (`--method all`: every one) scored by deletion and
    /// insertion AUC, ROAD and the sanity check's rank correlation, best marked; with one CAM
    /// method and no --layer, its candidate layers instead. Over several images, the means.
    #[arg(long, conflicts_with_all = ["out", "save_raw", "metrics"])]
    pub score: bool,
    /// With --score: one JSON object per image, then one with the means.
    #[arg(long, requires = "score")]
    pub json: bool,
}

/// Sanity check (Adebayo et al. 2018): randomise layers from the top down and see whether
/// the map changes. A map that stays similar fails.
#[derive(clap::Args, Debug)]
pub struct SanityArgs {
    pub image: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub method: MethodArgs,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// The maps side by side as a PNG strip: the trained model's, then one per randomisation.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: ExplainArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let (method, params) = a.method.params(&m)?;
    let inputs = Shard::of(a.shard, expand_inputs(&a.images)?)?;
    let many = inputs.len() > 1 || a.images.iter().any(|p| p.is_dir());
    for dir in [&a.out, &a.save_raw, &a.chart].into_iter().flatten().filter(|_| many) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut one = One {
        session: Session::with_model(m),
        method,
        params: &params,
        a: &a,
        many,
    };
    for_each_input(&inputs, many, |path| one.explain(path))
}

/// Everything one input's explanation needs.
struct One<'a> {
    session: Session,
    method: Method,
    params: &'a Params,
    a: &'a ExplainArgs,
    many: bool,
}

impl One<'_> {
    fn explain(&mut self, path: &Path) -> Result<String> {
        let (a, method) = (self.a, self.method);
        let s = &mut self.session;
        s.set_image(&ImageSource::File(path.to_path_buf()))?;
        let (e, mut raw) = s.explain_raw(method, self.params, &mut |_, _, _| true)?;
        let tag = method.name().replace('+', "p");
        let mut faithfulness = None;
        if a.metrics {
            let (del, ins) = s.curves(&e.map, e.target, &|| true)?;
            raw.metadata.insert("deletion_auc".into(), format!("{:.5}", del.auc));
            raw.metadata.insert("insertion_auc".into(), format!("{:.5}", ins.auc));
            faithfulness = Some((del.auc, ins.auc));
            if let Some(c) = output_path(&a.chart, self.many, path, &format!("{tag}-faithfulness"), "svg") {
                let title = format!(
                    "{method}: {}",
                    path.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
                );
                glassbox_engine::charts::save(
                    &glassbox_engine::charts::Chart::Faithfulness {
                        title,
                        deletion: del,
                        insertion: ins,
                    },
                    &c,
                )?;
            }
        }
        let labels = &s.model()?.labels;
        let mut line = format!(
            "{}: {} for class {} ({})",
            path.display(),
            method,
            e.target,
            labels.get(e.target as usize).map(String::as_str).unwrap_or("?")
        );
        if let Some(l) = &e.layer {
            line.push_str(&format!(", layer {l}"));
        }
        if let Some(err) = e.completeness_error {
            line.push_str(&format!(", completeness error {err:.4}"));
        }
        if let Some((d, i)) = faithfulness {
            line.push_str(&format!(", deletion AUC {d:.4}, insertion AUC {i:.4}"));
        }
        if let Some(o) = output_path(&a.out, self.many, path, &tag, "png") {
            render::save_png(&s.overlay(&e.map, method, a.colormap, a.opacity)?, &o)?;
            line.push_str(&format!(" -> {}", o.display()));
        }
        if let Some(r) = output_path(&a.save_raw, self.many, path, &tag, "safetensors") {
            let tensors = vec![
                ("input".to_string(), s.input()?.shallow_clone()),
                ("logits".to_string(), s.logits()?),
                ("attribution".to_string(), raw.attribution),
            ];
            weights::save_safetensors(&r, &tensors, &raw.metadata, StoreAs::F32)?;
        }
        Ok(line)
    }
}

pub fn sanity(a: SanityArgs, device: Device) -> Result<()> {
    let m = a.model.open(device)?;
    let (method, params) = a.method.params(&m)?;
    let mut session = Session::with_model(m);
    session.set_image(&ImageSource::File(a.image.clone()))?;
    let bar = progress_bar(0, "layer groups");
    let s = session.sanity(method, &params, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        true
    })?;
    bar.finish_and_clear();
    if let Some(out) = &a.out {
        let maps: Vec<_> = s
            .original
            .iter()
            .chain(s.steps.iter().filter_map(|st| st.map.as_ref()))
            .collect();
        let tiles = maps
            .iter()
            .map(|m| session.overlay(m, method, None, defaults::OVERLAY_OPACITY))
            .collect::<glassbox_engine::Result<Vec<_>>>()?;
        let (w, h) = (tiles[0].width(), tiles[0].height());
        let mut strip = image::RgbImage::from_pixel(
            w * tiles.len() as u32 + 4 * (tiles.len() as u32 - 1),
            h,
            image::Rgb([255, 255, 255]),
        );
        for (k, t) in tiles.iter().enumerate() {
            image::imageops::replace(&mut strip, t, (k as u32 * (w + 4)) as i64, 0);
        }
        glassbox_engine::render::save_png(&strip, out)?;
        if !a.json {
            println!("{}: {} maps, the trained model's first", out.display(), tiles.len());
        }
    }
    if a.json {
        println!("{}", serde_json::to_string(&s)?);
    } else {
        println!(
            "sanity check of {method} on {} (cascading randomisation, top layer first)",
            a.image.display()
        );
        println!("{:<28} {:>10}", "randomised down to", "spearman");
        for st in &s.steps {
            println!("{:<28} {:>10.4}", st.randomised, st.spearman);
        }
        println!("{method} {}", s.verdict);
    }
    Ok(())
}
