//! In-process timings for `make bench`: medians over repeated runs, load time, peak RSS.

use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use glassbox_engine::error::Result;
use glassbox_engine::model::Model;

mod finetune;
pub mod imprint;
mod measure;
mod soak;

pub use measure::median;
use measure::peak_rss_mib;

pub use finetune::{finetune, FinetuneSizes};
pub use imprint::imprint;
pub use soak::{soak, SOAK_GROWTH_LIMIT_PERCENT};

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub name: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub runs: usize,
}

/// Median and minimum of `runs` timed calls, after one warm-up call.
pub fn time(name: &str, runs: usize, device: Device, mut f: impl FnMut()) -> Timing {
    f();
    let mut ms: Vec<f64> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            if let Device::Cuda(_) = device {
                tch::Cuda::synchronize(0);
            }
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    Timing {
        name: name.to_owned(),
        median_ms: ms[ms.len() / 2],
        min_ms: ms[0],
        runs: ms.len(),
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub device: String,
    pub threads: i32,
    pub timings: Vec<Timing>,
    pub peak_rss_mib: Option<f64>,
}

/// The core figures: model load, forward, forward+backward to the input, at batch 1.
pub fn core(model: glassbox_engine::model::ModelSource, runs: usize, device: Device) -> Result<Report> {
    let mut timings = Vec::new();
    let mut loaded = None;
    let load = time("model load", runs.min(5), device, || {
        loaded = Some(Model::open(model.clone(), None, device));
    });
    let m = loaded.expect("timed at least once")?;
    timings.push(load);
    let s = m.preprocess.size as i64;
    let x = Tensor::randn([1, m.spec.in_channels, s, s], (Kind::Float, device));
    timings.push(time("forward (batch 1)", runs, device, || {
        let _ = m.logits(&x);
    }));
    timings.push(time("forward+backward to the input (batch 1)", runs, device, || {
        let xi = x.detach().set_requires_grad(true);
        let logits = m.forward_hooked(&xi, false, &mut |_, _, t| t);
        let target = logits.get(0).max();
        let g = Tensor::run_backward(&[target], &[&xi], false, false);
        let _ = g[0].sum(Kind::Float).double_value(&[]);
    }));
    Ok(Report {
        model: m.source.to_string(),
        device: format!("{device:?}"),
        threads: tch::get_num_threads(),
        timings,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// One method's time beside its bound: the bare libtorch passes it cannot avoid.
#[derive(Debug, Clone, Serialize)]
pub struct MethodTiming {
    pub method: String,
    pub median_ms: f64,
    pub bound_ms: f64,
    pub ratio: f64,
    pub bound: String,
    pub runs: usize,
}

/// Times every attribution method on one input beside its bound.
pub fn methods(model: &Model, input: &Tensor, runs: usize) -> Result<Vec<MethodTiming>> {
    use glassbox_engine::explain::{batch_budget, explain, resolve_layer, Method, Params, METHODS};
    let device = model.device();
    let x = input.to_device(device);
    let p = Params::default().with_window_for(model.preprocess.size as i64);
    let target = model.logits(&x).argmax(-1, false).int64_value(&[0]);
    let fwd_bwd = |b: i64| {
        let xi = x.repeat([b, 1, 1, 1]).detach().set_requires_grad(true);
        let logits = model.forward_hooked(&xi, false, &mut |_, _, t| t);
        let g = Tensor::run_backward(&[logits.select(1, target).sum(Kind::Float)], &[&xi], false, false);
        let _ = g[0].sum(Kind::Float).double_value(&[]);
    };
    let layer = resolve_layer(model, None)?;
    // Forward, then backward only as far as `layer` (what Grad-CAM cannot avoid).
    let fwd_bwd_to_layer = || {
        let mut act = None;
        let logits = model.forward_hooked(&x, false, &mut |name, _, t| {
            if name == layer {
                let leaf = t.detach().set_requires_grad(true);
                act = Some(leaf.shallow_clone());
                leaf
            } else {
                t
            }
        });
        let a = act.expect("the layer is traced");
        let g = Tensor::run_backward(&[logits.select(1, target).sum(Kind::Float)], &[&a], false, false);
        let _ = g[0].sum(Kind::Float).double_value(&[]);
    };
    let forwards = |total: i64, bs: i64| {
        let mut done = 0;
        while done < total {
            let n = bs.min(total - done);
            let _ = model.logits(&x.repeat([n, 1, 1, 1])).sum(Kind::Float).double_value(&[]);
            done += n;
        }
    };
    let side = model.preprocess.size as i64;
    let windows = (1 + (side - p.window) / p.stride).pow(2);
    // Score-CAM's forwards: one per channel that varies over the image, and one for all
    // the constant ones (their masks are all zero).
    let (channels, varying) = {
        let (_, traced) = tch::no_grad(|| model.trace(&x));
        traced.iter().find(|t| t.name == layer).map_or((1, 1), |t| {
            let a = t.output.flatten(2, 3);
            let range = a.amax([2i64].as_slice(), false) - a.amin([2i64].as_slice(), false);
            let varying = range.gt(0.0).sum(Kind::Int64).int64_value(&[]);
            (t.output.size()[1], varying)
        })
    };
    let score_cam_forwards = varying + i64::from(varying < channels);
    let mut out = Vec::new();
    for &m in METHODS {
        let (r, bound_desc): (usize, String) = match m {
            Method::ScoreCam => (
                1.max(runs / 10),
                format!("{score_cam_forwards} masked forwards (no grad): {varying} of {channels} channels vary, one for the rest"),
            ),
            Method::SmoothGrad => (3.max(runs / 4), format!("forward+backward at batch {}", p.samples)),
            Method::IntegratedGradients => (3.max(runs / 4), format!("forward+backward at batch {}", p.steps)),
            Method::Occlusion => (3.max(runs / 4), format!("{windows} window forwards (no grad) + 1")),
            Method::GuidedGradCam => (runs, "forward+backward, and forward+backward to the layer".into()),
            Method::GradCam | Method::GradCamPlusPlus => (runs, format!("forward+backward to `{layer}`")),
            _ => (runs, "forward+backward at batch 1".into()),
        };
        let mut failed = None;
        let t = time(m.name(), r, device, || {
            if let Err(e) = explain(model, &x, m, &p, &mut |_| true) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let bound = match m {
            Method::ScoreCam => time("bound", r, device, || {
                forwards(score_cam_forwards, batch_budget(model, 64) as i64)
            }),
            Method::SmoothGrad => time("bound", r, device, || fwd_bwd(p.samples as i64)),
            Method::IntegratedGradients => time("bound", r, device, || fwd_bwd(p.steps as i64)),
            Method::Occlusion => time("bound", r, device, || {
                forwards(windows, batch_budget(model, 64) as i64);
                forwards(1, 1)
            }),
            Method::GuidedGradCam => time("bound", r, device, || {
                fwd_bwd(1);
                fwd_bwd_to_layer()
            }),
            Method::GradCam | Method::GradCamPlusPlus => time("bound", r, device, fwd_bwd_to_layer),
            _ => time("bound", r, device, || fwd_bwd(1)),
        };
        out.push(MethodTiming {
            method: m.name().into(),
            median_ms: t.median_ms,
            bound_ms: bound.median_ms,
            ratio: t.median_ms / bound.median_ms,
            bound: bound_desc,
            runs: r,
        });
    }
    Ok(out)
}

/// Milliseconds of decode + preprocess + one forward and backward for each image: the
/// bound of the app's drop-to-all-views time.
pub fn decode_forward_backward(
    model_name: glassbox_engine::model::ModelSource,
    images: &[std::path::PathBuf],
    device: Device,
) -> Result<Vec<f64>> {
    let model = Model::open(model_name, None, device)?;
    images
        .iter()
        .map(|img| {
            let t0 = Instant::now();
            let x = model.preprocess.prepare_file(img)?.tensor;
            let e = glassbox_engine::explain::explain(
                &model,
                &x,
                glassbox_engine::explain::Method::Gradient,
                &glassbox_engine::explain::Params::default(),
                &mut |_| true,
            )?;
            let _ = e.attribution.sum(Kind::Float).double_value(&[]);
            Ok(t0.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

/// How live editing is: an edit followed by everything the app refreshes for it (prediction,
/// the activation layer's channels, Grad-CAM), beside forward+backward; and the undo of an
/// edit to the model's largest matrix.
#[derive(Debug, Clone, Serialize)]
pub struct EditTiming {
    pub edit_to_views_ms: f64,
    pub bound_ms: f64,
    pub ratio: f64,
    pub undo_param: String,
    pub undo_shape: Vec<i64>,
    pub undo_median_ms: f64,
}

pub fn edits(model: &mut Model, input: &Tensor, runs: usize) -> Result<EditTiming> {
    use glassbox_engine::edit::{Editor, Op, Target};
    use glassbox_engine::explain::{Method, Params};
    let device = model.device();
    let x = input.to_device(device);
    let layers = glassbox_engine::explain::spatial_layers(model);
    let layer = layers
        .iter()
        .rev()
        .find(|l| l.2[2] >= 14 && l.1 == glassbox_engine::model::LayerKind::Block)
        .or(layers.last())
        .map(|l| l.0.clone());
    let stem = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.dim() == 4)
        .min_by_key(|(k, _)| k.clone())
        .map(|(k, _)| k)
        .ok_or_else(|| glassbox_engine::Error::invalid("the model has no convolution to edit"))?;
    let mut ed = Editor::default();
    let params = Params::default();
    let mut k = 0;
    let views = time("edit + views", runs, device, || {
        k += 1;
        let op = Op::Add(
            Target {
                param: stem.clone(),
                index: vec![0, 0, 0, 0],
            },
            if k % 2 == 0 { 0.01 } else { -0.01 },
        );
        ed.apply(model, op).expect("a valid edit");
        let a = glassbox_engine::inspect::analyze(model, &x, layer.as_deref(), &[Method::GradCam], &params)
            .expect("analysis");
        let _ = a.logits.double_value(&[0, 0]);
    });
    let bound = time("forward+backward", runs, device, || {
        let xi = x.detach().set_requires_grad(true);
        let logits = model.forward_hooked(&xi, false, &mut |_, _, t| t);
        let g = Tensor::run_backward(&[logits.get(0).max()], &[&xi], false, false);
        let _ = g[0].sum(Kind::Float).double_value(&[]);
    });
    // The largest parameter: scale it, then time the undo alone.
    let (name, shape) = model
        .vs
        .variables()
        .into_iter()
        .max_by_key(|(k, v)| (v.numel(), k.clone()))
        .map(|(k, v)| (k, v.size()))
        .expect("a parameter");
    let mut ms = Vec::new();
    for _ in 0..runs.max(3) {
        ed.apply(
            model,
            Op::Scale(
                Target {
                    param: name.clone(),
                    index: vec![],
                },
                1.5,
            ),
        )?;
        let t = Instant::now();
        ed.undo(model)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    ed.reset(model)?;
    Ok(EditTiming {
        edit_to_views_ms: views.median_ms,
        bound_ms: bound.median_ms,
        ratio: views.median_ms / bound.median_ms,
        undo_param: name,
        undo_shape: shape,
        undo_median_ms: ms[ms.len() / 2],
    })
}

#[derive(Debug, Serialize)]
pub struct ExamplesBench {
    pub model: String,
    pub layer: String,
    pub images: usize,
    /// What the app does for dataset examples, timed whole: reading and decoding the
    /// images, then every channel's mean activation of the layer for every image.
    pub images_per_s: f64,
    /// The same reading and decoding, then the plain forward (logits) over the same
    /// batches, in the same run: the same work but the layer's reduction.
    pub forward_images_per_s: f64,
    /// Reading and decoding alone (in both figures), seconds.
    pub read_s: f64,
    /// The top 9 of one channel afterwards (kept activations), milliseconds.
    pub top_ms: f64,
}

/// Dataset examples over MNIST digits (`per_class` of each) on `layer`, beside the forward:
/// both sides read and decode the images and run the network over the same batches of 64.
pub fn examples(model: &Model, layer: &str, per_class: usize) -> Result<ExamplesBench> {
    use glassbox_engine::finetune::{self as ft, DataSource};
    let source = DataSource::Dataset(glassbox_engine::data::DatasetName::Mnist);
    let t0 = Instant::now();
    let a = glassbox_engine::examples::activations(model, &source, per_class, layer, &mut |_, _| true)?;
    let glassbox_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let data = ft::read_data(&model.preprocess, &source, per_class)?;
    let read_s = t0.elapsed().as_secs_f64();
    let n = data.images.size()[0];
    let mut i = 0;
    while i < n {
        let len = 64.min(n - i);
        let _ = tch::no_grad(|| model.logits(&ft::normalise(model, &data.images.narrow(0, i, len))));
        i += len;
    }
    let forward = n as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let _ = a.top(model, 0, glassbox_engine::defaults::EXAMPLES)?;
    Ok(ExamplesBench {
        model: model.source.to_string(),
        layer: layer.to_string(),
        images: n as usize,
        images_per_s: n as f64 / glassbox_s,
        forward_images_per_s: forward,
        read_s,
        top_ms: t0.elapsed().as_secs_f64() * 1e3,
    })
}
