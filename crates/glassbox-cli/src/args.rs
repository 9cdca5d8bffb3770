//! Arguments several commands share, typed so that `--help` lists the choices and a typo
//! gets clap's "did you mean": the device, the model, a method and its parameters, shards,
//! a position, and the engine's enums as choices (`choice`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::builder::{PossibleValue, PossibleValuesParser, RangedU64ValueParser, TypedValueParser};
use clap::ValueEnum;
use tch::Device;

use glassbox_engine::arch::{Arch, ALL_ARCHS};
use glassbox_engine::data::DatasetName;
use glassbox_engine::explain::{Baseline, Method, Params, MAX_SAMPLES, MAX_STEPS, METHODS};
use glassbox_engine::model::{Model, ModelSource, BUILTINS};
use glassbox_engine::render::{Colormap, ALL_COLORMAPS};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

impl DeviceArg {
    pub fn device(self) -> Result<Device> {
        Ok(match self {
            DeviceArg::Auto => glassbox_engine::Device::auto().into(),
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => {
                if !glassbox_engine::Device::cuda_available() {
                    bail!("--device cuda: libtorch sees no CUDA GPU on this machine; use --device cpu");
                }
                Device::Cuda(0)
            }
        })
    }
}

/// An engine enum as a command-line choice: `--help` lists the names (with their help and
/// aliases) and a typo gets clap's "did you mean". (clap's `ValueEnum` cannot be
/// implemented here for the engine's types, and the engine does not know clap.)
pub trait Choice: Clone + Send + Sync + 'static {
    fn variants() -> &'static [Self];
    fn possible(&self) -> PossibleValue;
    /// The variant a name (or alias, any case) stands for.
    fn from_name(name: &str) -> Option<Self> {
        Self::variants()
            .iter()
            .find(|v| v.possible().matches(name, true))
            .cloned()
    }
}

/// The value parser of a `Choice`: `#[arg(long, value_parser = choice::<Method>())]`.
pub fn choice<T: Choice>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(T::variants().iter().map(Choice::possible))
        .try_map(|name: String| T::from_name(&name).ok_or_else(|| format!("`{name}` is not one of the choices")))
}

impl Choice for Method {
    fn variants() -> &'static [Self] {
        METHODS
    }
    fn possible(&self) -> PossibleValue {
        let v = PossibleValue::new(self.name()).help(self.describe());
        match self {
            Method::Gradient => v.alias("saliency"),
            Method::InputXGradient => v.alias("ixg"),
            Method::IntegratedGradients => v.alias("ig"),
            Method::GradCam => v.alias("gradcam"),
            Method::GradCamPlusPlus => v.alias("gradcam++"),
            Method::ScoreCam => v.alias("scorecam"),
            Method::GuidedBackprop => v.alias("guided"),
            Method::LrpEpsilonPlusFlat => v.alias("lrp"),
            _ => v,
        }
    }
}

impl Choice for Colormap {
    fn variants() -> &'static [Self] {
        ALL_COLORMAPS
    }
    fn possible(&self) -> PossibleValue {
        let v = PossibleValue::new(self.name());
        match self {
            Colormap::Gray => v.alias("grey"),
            Colormap::RedBlue => v.alias("diverging"),
            _ => v,
        }
    }
}

impl Choice for Arch {
    fn variants() -> &'static [Self] {
        ALL_ARCHS
    }
    fn possible(&self) -> PossibleValue {
        let v = PossibleValue::new(self.name());
        match self {
            Arch::MobileNetV2 => v.alias("mobilenet-v2"),
            _ => v,
        }
    }
}

impl Choice for DatasetName {
    fn variants() -> &'static [Self] {
        DatasetName::ALL
    }
    fn possible(&self) -> PossibleValue {
        PossibleValue::new(self.as_str())
    }
}

impl Choice for Baseline {
    fn variants() -> &'static [Self] {
        &[Baseline::Zero, Baseline::Black, Baseline::Blur]
    }
    fn possible(&self) -> PossibleValue {
        PossibleValue::new(self.name())
    }
}

/// Which model a command uses.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// A builtin model (efficientnet-lite0, mnist, fashion-mnist) or a weights file.
    #[arg(long, short, default_value = "efficientnet-lite0", value_parser = parse_model)]
    pub model: ModelSource,
    /// Architecture, when it cannot be detected from the weights.
    #[arg(long, value_parser = choice::<Arch>())]
    pub arch: Option<Arch>,
}

pub fn parse_model(s: &str) -> Result<ModelSource, String> {
    if s.is_empty() {
        return Err(format!("give a weights file or one of: {}", BUILTINS.join(", ")));
    }
    Ok(ModelSource::from(s))
}

impl ModelArgs {
    pub fn open(&self, device: Device) -> Result<Model> {
        Ok(Model::open(self.model.clone(), self.arch, device)?)
    }
}

/// `--steps`, `--samples`: whole numbers in a range, refused by clap outside it.
fn count(max: usize) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::<usize>::new().range(1..=max as u64)
}

/// `--method`: one method, or `all` (`explain --score`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodSel {
    One(Method),
    All,
}

static METHOD_SELS: std::sync::LazyLock<Vec<MethodSel>> = std::sync::LazyLock::new(|| {
    METHODS
        .iter()
        .map(|m| MethodSel::One(*m))
        .chain([MethodSel::All])
        .collect()
});

impl Choice for MethodSel {
    fn variants() -> &'static [Self] {
        &METHOD_SELS
    }
    fn possible(&self) -> PossibleValue {
        match self {
            MethodSel::One(m) => m.possible(),
            MethodSel::All => PossibleValue::new("all").help("Every method (with explain --score: the scoreboard)"),
        }
    }
}

/// A method and its parameters (explain, sanity).
#[derive(clap::Args, Debug, Clone)]
pub struct MethodArgs {
    /// The attribution method.
    #[arg(long, value_parser = choice::<MethodSel>())]
    pub method: MethodSel,
    /// Class index to explain (default: the top-1 class).
    #[arg(long)]
    pub target: Option<i64>,
    /// Layer for the CAM methods (default: the last layer with a spatial output).
    #[arg(long)]
    pub layer: Option<String>,
    /// Integrated Gradients steps.
    #[arg(long, default_value_t = 32, value_parser = count(MAX_STEPS))]
    pub steps: usize,
    /// SmoothGrad samples.
    #[arg(long, default_value_t = 16, value_parser = count(MAX_SAMPLES))]
    pub samples: usize,
    /// SmoothGrad noise, as a fraction of the input's range, in (0, 1].
    #[arg(long, default_value_t = 0.15, value_parser = fraction)]
    pub sigma: f64,
    /// Occlusion window side in pixels (default: 1/7 of the input side, 32 at 224).
    #[arg(long, value_parser = RangedU64ValueParser::<i64>::new().range(1..=4096))]
    pub window: Option<i64>,
    /// Occlusion stride in pixels (default: half the window).
    #[arg(long, value_parser = RangedU64ValueParser::<i64>::new().range(1..=4096))]
    pub stride: Option<i64>,
    /// IG baseline (zero, black, blur) or, for occlusion, the fill value (a number, model space).
    #[arg(long, value_parser = parse_baseline)]
    pub baseline: Option<BaselineArg>,
    /// Seed of the random parts of a method (SmoothGrad's noise): the same seed, the same map.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
}

/// `--baseline`: a baseline image for Integrated Gradients or a fill value for occlusion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BaselineArg {
    Image(Baseline),
    Value(f64),
}

fn parse_baseline(s: &str) -> Result<BaselineArg, String> {
    if let Some(b) = Baseline::from_name(s) {
        return Ok(BaselineArg::Image(b));
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(BaselineArg::Value(v)),
        _ => Err("choose zero, black or blur (Integrated Gradients), or a number (the occlusion fill value)".into()),
    }
}

/// A number in (0, 1].
fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err("a number greater than 0 and at most 1".into()),
    }
}

/// A number in [0, 1] (opacity).
pub fn unit(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("a number between 0 and 1".into()),
    }
}

impl MethodArgs {
    /// The method and its parameters, with defaults that fit the model's input size.
    pub fn params(&self, model: &Model) -> Result<(Method, Params)> {
        let method = match self.method {
            MethodSel::One(m) => m,
            MethodSel::All => bail!("--method all scores every method: use it with `glassbox explain --score`"),
        };
        self.params_for(model, method).map(|p| (method, p))
    }

    /// The methods asked for: one, or every one (`all`).
    pub fn methods(&self) -> Vec<Method> {
        match self.method {
            MethodSel::One(m) => vec![m],
            MethodSel::All => METHODS.to_vec(),
        }
    }

    /// The parameters for `method`, with defaults that fit the model's input size.
    pub fn params_for(&self, model: &Model, method: Method) -> Result<Params> {
        let mut p = Params {
            target: self.target,
            layer: self.layer.clone(),
            steps: self.steps,
            samples: self.samples,
            sigma: self.sigma,
            seed: self.seed,
            ..Params::default()
        }
        .with_window_for(model.preprocess.size as i64);
        if let Some(w) = self.window {
            p.window = w;
            p.stride = (w / 2).max(1);
        }
        if let Some(s) = self.stride {
            p.stride = s;
        }
        match self.baseline {
            Some(BaselineArg::Value(v)) if method == Method::Occlusion => p.occlusion_value = v,
            Some(BaselineArg::Value(v)) => bail!(
                "--baseline {v}: a number is the occlusion fill value; Integrated Gradients takes zero, black or blur"
            ),
            Some(BaselineArg::Image(b)) => p.baseline = b,
            None => {}
        }
        Ok(p)
    }
}

/// `--shard`: this process's part of the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shard {
    /// Part `index` of `count` (0-based).
    Part { index: usize, count: usize },
    /// From the cluster's scheduler: a Slurm job array (SLURM_ARRAY_TASK_ID, _COUNT, _MIN),
    /// or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) with the count given as `auto/N`.
    Auto { count: Option<usize> },
}

pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let bad = || {
        format!("give I/N with 0 <= I < N (like 0/4), `auto` (a Slurm job array) or `auto/N` (a Kubernetes Indexed Job of N), not `{s}`")
    };
    let (a, b) = match s.split_once('/') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (s.trim(), None),
    };
    let count = match b {
        Some(b) => Some(b.parse::<usize>().map_err(|_| bad())?),
        None => None,
    };
    if count == Some(0) {
        return Err(bad());
    }
    if a == "auto" {
        return Ok(Shard::Auto { count });
    }
    match (a.parse::<usize>(), count) {
        (Ok(index), Some(count)) if index < count => Ok(Shard::Part { index, count }),
        _ => Err(bad()),
    }
}

impl Shard {
    /// The part of this process, reading the scheduler's variables for `auto`.
    pub fn resolve(self) -> Result<(usize, usize)> {
        self.resolve_with(|k| std::env::var(k).ok())
    }

    pub fn resolve_with(self, var: impl Fn(&str) -> Option<String>) -> Result<(usize, usize)> {
        let num = |k: &str| -> Result<Option<usize>> {
            match var(k) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<usize>() {
                    Ok(n) => Ok(Some(n)),
                    Err(_) => bail!("--shard auto: {k}={v} is not a whole number"),
                },
            }
        };
        let (index, count) = match self {
            Shard::Part { index, count } => (index, count),
            Shard::Auto { count: Some(count) } => match num("JOB_COMPLETION_INDEX")? {
                Some(i) => (i, count),
                None => match (num("SLURM_ARRAY_TASK_ID")?, num("SLURM_ARRAY_TASK_MIN")?) {
                    (Some(id), min) => (id - min.unwrap_or(0).min(id), count),
                    (None, _) => bail!(
                        "--shard auto/{count}: neither JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (a Slurm job array) is set"
                    ),
                },
            },
            Shard::Auto { count: None } => match (
                num("SLURM_ARRAY_TASK_ID")?,
                num("SLURM_ARRAY_TASK_COUNT")?,
                num("SLURM_ARRAY_TASK_MIN")?,
            ) {
                (Some(id), Some(count), min) => (id - min.unwrap_or(0).min(id), count),
                (None, _, _) if num("JOB_COMPLETION_INDEX")?.is_some() => bail!(
                    "--shard auto: in a Kubernetes Indexed Job give the job's completions as auto/N (JOB_COMPLETION_INDEX is set, the count is not)"
                ),
                _ => bail!(
                    "--shard auto: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not both set (not in a Slurm job array); give I/N, or auto/N in a Kubernetes Indexed Job"
                ),
            },
        };
        if count == 0 || index >= count {
            bail!("--shard: part {index} of {count} does not exist (parts are 0 to count - 1)");
        }
        Ok((index, count))
    }

    /// The items of this part: those whose position modulo the count is the index.
    pub fn of<T>(shard: Option<Shard>, items: Vec<T>) -> Result<Vec<T>> {
        let Some(s) = shard else { return Ok(items) };
        let (index, count) = s.resolve()?;
        Ok(items
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % count == index)
            .map(|(_, x)| x)
            .collect())
    }
}

/// `--at ROW,COL`: a position in a layer's output, from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub row: usize,
    pub col: usize,
}

pub fn parse_at(s: &str) -> Result<At, String> {
    s.split_once(',')
        .and_then(|(a, b)| {
            Some(At {
                row: a.trim().parse().ok()?,
                col: b.trim().parse().ok()?,
            })
        })
        .ok_or_else(|| format!("give ROW,COL with whole numbers from 0, like 3,4 (not `{s}`)"))
}

/// `--out` for a weights file: refuses to overwrite silently or to write over the input.
pub fn check_out(out: &std::path::Path, input: Option<&std::path::Path>, force: bool) -> Result<()> {
    if let Some(i) = input {
        if i.canonicalize()
            .ok()
            .is_some_and(|c| Some(c) == out.canonicalize().ok())
        {
            bail!(
                "--out {} is the input file; originals are never modified: choose another path",
                out.display()
            );
        }
    }
    if out.is_dir() {
        bail!(
            "--out {} is a directory; give a file name ending in .safetensors",
            out.display()
        );
    }
    if out.exists() && !force {
        bail!("{} already exists; pass --force to replace it", out.display());
    }
    Ok(())
}

/// Files named on the command line, and the images inside directories (sorted).
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let ext = glassbox_engine::preprocess::IMAGE_EXTENSIONS;
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let found = glassbox_engine::preprocess::images_in(p)?;
            if found.is_empty() {
                bail!("directory {} holds no images ({})", p.display(), ext.join(", "));
            }
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// The output for one input: `target` itself for a single input, else `target/NAME.TAG.EXT`.
pub fn output_path(
    target: &Option<PathBuf>,
    many: bool,
    input: &std::path::Path,
    tag: &str,
    ext: &str,
) -> Option<PathBuf> {
    let t = target.as_ref()?;
    if !many {
        return Some(t.clone());
    }
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    Some(t.join(format!("{stem}.{tag}.{ext}")))
}

pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!("[{{bar:30}}] {{pos}}/{{len}} {what}, {{eta}} left  {{msg}}"))
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Runs `one` on every input with a progress bar, printing each result line; with many
/// inputs a failing one is reported and skipped, a single input fails the command.
pub fn for_each_input(
    inputs: &[PathBuf],
    many: bool,
    mut one: impl FnMut(&std::path::Path) -> Result<String>,
) -> Result<()> {
    let bar = if many {
        progress_bar(inputs.len() as u64, "images")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut failed = 0;
    for path in inputs {
        bar.set_message(path.display().to_string());
        match one(path) {
            Ok(line) => bar.suspend(|| println!("{line}")),
            Err(e) if !many => return Err(e),
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("glassbox: skipped {}: {e:#}", path.display()));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if failed > 0 {
        bail!("{failed} of {} inputs failed (reported above)", inputs.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_from_slurm_and_kubernetes() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let auto = parse_shard("auto").unwrap();
        assert_eq!(
            auto.resolve_with(env(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")]))
                .unwrap(),
            (2, 4)
        );
        // An array 1-4 numbers its tasks from 1.
        assert_eq!(
            auto.resolve_with(env(&[
                ("SLURM_ARRAY_TASK_ID", "4"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "1")
            ]))
            .unwrap(),
            (3, 4)
        );
        let k8s = parse_shard("auto/3").unwrap();
        assert_eq!(k8s.resolve_with(env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap(), (1, 3));
        let e = auto
            .resolve_with(env(&[("JOB_COMPLETION_INDEX", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("auto/N"), "{e}");
        let e = auto.resolve_with(env(&[])).unwrap_err().to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_ID"), "{e}");
        assert!(k8s.resolve_with(env(&[("JOB_COMPLETION_INDEX", "3")])).is_err());
        assert_eq!(parse_shard("1/4").unwrap(), Shard::Part { index: 1, count: 4 });
        assert!(parse_shard("4/4").is_err() && parse_shard("x").is_err() && parse_shard("1/0").is_err());
    }

    #[test]
    fn positions_and_baselines_parse() {
        assert_eq!(parse_at(" 3, 4").unwrap(), At { row: 3, col: 4 });
        assert!(parse_at("three").unwrap_err().contains("ROW,COL"));
        assert_eq!(parse_baseline("blur").unwrap(), BaselineArg::Image(Baseline::Blur));
        assert_eq!(parse_baseline("-1.5").unwrap(), BaselineArg::Value(-1.5));
        assert!(parse_baseline("grey").is_err());
    }
}
