//! In-process timings for `make bench`: medians over repeated runs, load time, peak RSS.

use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use glassbox_engine::error::Result;
use glassbox_engine::model::Model;

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

/// Peak resident set size of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
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
    let channels = {
        let (_, traced) = tch::no_grad(|| model.trace(&x));
        traced
            .iter()
            .find(|t| t.name == layer)
            .map_or(1, |t| t.output.size()[1])
    };
    let mut out = Vec::new();
    for &m in METHODS {
        let (r, bound_desc): (usize, String) = match m {
            Method::ScoreCam => (1.max(runs / 10), format!("{channels} masked forwards (no grad)")),
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
                forwards(channels, batch_budget(model, 64) as i64)
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

/// Resident set size of this process now, in MiB (Linux `VmRSS`).
pub fn rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resident memory once glibc has returned the free memory it holds to the system
/// (`malloc_trim(0)`): the memory in use, where [`rss_mib`] also counts blocks kept for reuse.
pub fn live_rss_mib() -> Option<f64> {
    // SAFETY: malloc_trim only releases free memory of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
    rss_mib()
}

/// A long session held in one process: cycles of every kind of request the app sends,
/// through the engine thread (the app's path), with the resident memory read along the way.
#[derive(Debug, Clone, Serialize)]
pub struct Soak {
    pub model: String,
    pub cycles: usize,
    /// The request kinds every cycle sent (the names of `worker::Request`'s variants).
    pub request_kinds: Vec<String>,
    /// Resident memory after the warm-up (a tenth of the cycles, at least one round of the
    /// ten methods, never the whole run).
    pub rss_start_mib: f64,
    pub warm_up_cycles: usize,
    /// Resident memory after the last cycle.
    pub rss_end_mib: f64,
    /// From `rss_start_mib` to `rss_end_mib`, in percent.
    pub growth_percent: f64,
    /// (cycles so far, resident MiB) after each tenth of the run, once the allocator has
    /// given back the free memory it holds (`malloc_trim`): what the session keeps alive.
    pub rss_mib: Vec<(usize, f64)>,
    /// The same moments before the trim: what the process holds, free memory included (with
    /// one arena and a 1 GiB trim threshold it keeps the largest blocks ever freed).
    pub rss_before_trim_mib: Vec<(usize, f64)>,
    pub seconds: f64,
}

/// Growth after warm-up at which `glassbox-bench --soak` fails (exit 1): a leak.
pub const SOAK_GROWTH_LIMIT_PERCENT: f64 = 5.0;

/// `n` cycles on `model`, each sending every kind of request the app sends, as the app
/// sends them, through the engine thread: a new image (alternating `images`), a prediction,
/// the analysis of a drop (prediction, activations, two maps), the activations of a layer,
/// one attribution method (the next of all of them, cheap settings), its deletion and
/// insertion curves, a channel's kernel, the filters, a receptive field, a value of a
/// channel computed in the open, the sanity check, an edit and its undo, a grown image,
/// dataset examples of a channel (new MNIST digits each cycle), and a short head-only
/// training run scrubbed to its start and discarded. Opening a model (once, at the start),
/// saving and evaluating a whole data set are left out: they are files and data-set passes
/// the user starts now and then, not a session's stream of requests.
pub fn soak(
    model: glassbox_engine::model::ModelSource,
    images: &[std::path::PathBuf],
    n: usize,
    device: Device,
) -> Result<Soak> {
    use glassbox_engine::data::DatasetName;
    use glassbox_engine::edit::{Op, Target};
    use glassbox_engine::explain::{Method, Params, METHODS};
    use glassbox_engine::finetune::{Config, Control, DataSource, Scope};
    use glassbox_engine::visualize::{Goal, Settings};
    use glassbox_engine::worker::{EditRequest, Engine, ImageSource, Request, Response, TrainRequest};
    use glassbox_engine::Error;
    use std::time::Duration;
    if images.is_empty() || n < 2 {
        return Err(Error::invalid("a soak needs at least one image and two cycles"));
    }
    let engine = Engine::spawn(device.into());
    // Sends a request and waits for its final answer (an error if the engine failed it).
    let call = |req: Request| engine.call(req, Duration::from_secs(600));
    let Response::ModelOpened { info, .. } = call(Request::OpenModel {
        model: model.clone(),
        arch: None,
    })?
    else {
        return Err(Error::invalid("the model did not open"));
    };
    let layer = glassbox_engine::model::default_layer(&info.layers)
        .ok_or_else(|| Error::invalid("the model has no layer with channels to soak"))?;
    let conv = info
        .producers
        .get(&layer)
        .cloned()
        .ok_or_else(|| Error::invalid(format!("no convolution makes `{layer}`")))?;
    let shape = info
        .layers
        .iter()
        .find(|l| l.name == layer)
        .map(|l| l.shape.clone())
        .unwrap_or_default();
    let (h, w) = (shape.get(2).copied().unwrap_or(1), shape.get(3).copied().unwrap_or(1));
    // The model's input side (`ModelInfo::input` is CxHxW), for the occlusion window the
    // app uses at that size.
    let side: i64 = info
        .input
        .rsplit('x')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(224);
    let cheap = Params {
        steps: 4,
        samples: 4,
        ..Params::default()
    }
    .with_window_for(side);
    let mut kinds: Vec<&'static str> = Vec::new();
    let start = Instant::now();
    // Warm-up: a tenth of the cycles, and at least one round of the methods (each has its
    // own largest allocation, which the heap keeps once made), and never the whole run.
    let warm_up = (n / 10).max(METHODS.len()).min(n - 1);
    let marks: Vec<usize> = (1..=10).map(|k| n * k / 10).collect();
    let mut rss = Vec::new();
    let mut held = Vec::new();
    let mut rss_start = 0.0;
    for i in 0..n {
        let mut send = |kind: &'static str, req: Request| -> Result<Response> {
            if i == 0 {
                kinds.push(kind);
            }
            call(req).map_err(|e| Error::invalid(format!("cycle {} of the soak, {kind}: {e}", i + 1)))
        };
        let channel = i % shape.get(1).copied().unwrap_or(1).max(1) as usize;
        send(
            "SetImage",
            Request::SetImage {
                source: ImageSource::File(images[i % images.len()].clone()),
            },
        )?;
        send("Predict", Request::Predict { top: 5 })?;
        send(
            "Analyze",
            Request::Analyze {
                top: 5,
                layer: Some(layer.clone()),
                methods: vec![Method::GradCam, Method::Gradient],
                params: cheap.clone(),
            },
        )?;
        send("Activations", Request::Activations { layer: layer.clone() })?;
        let method = METHODS[i % METHODS.len()];
        let Response::Explained { result, .. } = send(
            "Explain",
            Request::Explain {
                slot: 0,
                method,
                params: cheap.clone(),
            },
        )?
        else {
            return Err(Error::invalid("Explain answered something else"));
        };
        send(
            "Faithfulness",
            Request::Faithfulness {
                slot: 0,
                target: result.target,
                map: result.map,
            },
        )?;
        send(
            "ChannelKernel",
            Request::ChannelKernel {
                layer: layer.clone(),
                channel,
            },
        )?;
        send(
            "Filters",
            Request::Filters {
                conv: conv.clone(),
                per_input: false,
            },
        )?;
        let (y, x) = ((i * 7) % h as usize, (i * 5) % w as usize);
        send(
            "ReceptiveField",
            Request::ReceptiveField {
                layer: layer.clone(),
                channel: Some(channel),
                y,
                x,
            },
        )?;
        send(
            "Unfold",
            Request::Unfold {
                layer: layer.clone(),
                channel,
                y,
                x,
            },
        )?;
        send(
            "Sanity",
            Request::Sanity {
                slot: 1,
                method: Method::GradCam,
                params: cheap.clone(),
            },
        )?;
        let target = Target {
            param: format!("{conv}.weight"),
            index: vec![channel as i64],
        };
        send("Edit", Request::Edit(EditRequest::Apply(Op::Scale(target, 0.5))))?;
        send("Edit(Undo)", Request::Edit(EditRequest::Undo))?;
        send(
            "Visualize",
            Request::Visualize {
                goal: Goal::Class(0),
                settings: Settings {
                    steps: 2,
                    seed: i as i64,
                    ..Settings::default()
                },
            },
        )?;
        send(
            "Examples",
            Request::Examples {
                source: DataSource::Dataset(DatasetName::Mnist),
                per_class: 2 + i % 3,
                layer: layer.clone(),
                channel,
            },
        )?;
        send(
            "Train(Start)",
            Request::Train(TrainRequest::Start {
                source: DataSource::Dataset(DatasetName::Mnist),
                config: Config {
                    scope: Scope::Head,
                    epochs: 1,
                    batch: 8,
                    per_class: 4,
                    val_split: 0.25,
                    seed: i as i64,
                    ..Config::default()
                },
                control: std::sync::Arc::new(Control::default()),
            }),
        )?;
        send("Train(Scrub)", Request::Train(TrainRequest::Scrub(0)))?;
        send("Train(Discard)", Request::Train(TrainRequest::Discard))?;
        if i + 1 == warm_up || marks.contains(&(i + 1)) {
            held.push((i + 1, rss_mib().unwrap_or(0.0)));
            let live = live_rss_mib().unwrap_or(0.0);
            if i + 1 == warm_up {
                rss_start = live;
            }
            if marks.contains(&(i + 1)) {
                rss.push((i + 1, live));
            }
        }
    }
    let rss_end = rss.last().map_or(0.0, |r| r.1);
    Ok(Soak {
        model: model.to_string(),
        cycles: n,
        request_kinds: kinds.iter().map(|k| k.to_string()).collect(),
        rss_start_mib: rss_start,
        warm_up_cycles: warm_up,
        rss_end_mib: rss_end,
        growth_percent: if rss_start > 0.0 {
            (rss_end - rss_start) / rss_start * 100.0
        } else {
            0.0
        },
        rss_mib: rss,
        rss_before_trim_mib: held,
        seconds: start.elapsed().as_secs_f64(),
    })
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
        .find(|l| l.2[2] >= 14 && l.1 == glassbox_engine::layers::LayerKind::Block)
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

/// Head-only training at one number of images per class.
#[derive(Debug, Serialize)]
pub struct HeadRun {
    pub per_class: usize,
    pub train_images: usize,
    pub test_accuracy: f64,
    /// Reading the images and computing their features.
    pub features_s: f64,
    /// Training the head on the cached features (all epochs).
    pub head_s: f64,
    pub wall_s: f64,
}

#[derive(Debug, Serialize)]
pub struct FinetuneBench {
    pub model: String,
    pub device: String,
    pub threads: i32,
    pub epochs: usize,
    pub lr: f64,
    pub batch: i64,
    pub head: Vec<HeadRun>,
    pub test_images: usize,
    /// Imprinting two digits from `imprint_train` images each: accuracy on
    /// `imprint_test` new images of each.
    pub imprint_train: usize,
    pub imprint_test: usize,
    pub imprint_accuracy: f64,
    pub imprint_s: f64,
    /// The same, then 10 epochs of the new classes' weights (Adam, lr 0.01).
    pub refined_accuracy: f64,
    pub refined_s: f64,
    /// The sample photos' top-1 before, after imprinting, after refining.
    pub photos_top1: Vec<(String, String, String, String)>,
    /// Whole-network fine-tuning: images per second (forward, backward, optimiser step),
    /// the median of the runs.
    pub full_images_per_s: f64,
    pub full_runs_images_per_s: Vec<f64>,
    pub full_batch: i64,
    pub full_steps: usize,
}

/// The middle value (the upper one of an even count); `v` is sorted on the way.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// How much work `glassbox-bench --finetune` does.
#[derive(Debug, Clone)]
pub struct FinetuneSizes {
    /// Test digits per class for head-only training.
    pub test_per_class: usize,
    /// Training digits per class, one head-only run each.
    pub head_per_class: Vec<usize>,
    /// Imprinting: training and test digits per new class.
    pub imprint_train: usize,
    pub imprint_test: usize,
    /// Whole-network fine-tuning: digits per class, and how many timed runs (the median).
    pub full_per_class: usize,
    pub full_runs: usize,
}

impl FinetuneSizes {
    /// The figures of BENCHMARKS.md.
    pub fn full() -> Self {
        FinetuneSizes {
            test_per_class: 100,
            head_per_class: vec![5, 20, 50],
            imprint_train: 20,
            imprint_test: 100,
            full_per_class: 20,
            full_runs: 3,
        }
    }
    /// The smallest run that exercises every part (the test of the benchmark itself).
    pub fn smallest() -> Self {
        FinetuneSizes {
            test_per_class: 3,
            head_per_class: vec![2],
            imprint_train: 3,
            imprint_test: 3,
            full_per_class: 4,
            full_runs: 1,
        }
    }
}

/// `glassbox-bench --finetune DIR`: MNIST digits as RGB images written into DIR (and the
/// features Glassbox computes of them, for the PyTorch side of scripts/bench-finetune.sh),
/// head-only training at 5, 20 and 50 digits per class tested on 1,000 others, imprinting
/// two new classes, and whole-network fine-tuning throughput (the median of three runs).
pub fn finetune(
    base: &Model,
    dir: &std::path::Path,
    photos: &[std::path::PathBuf],
    sizes: &FinetuneSizes,
) -> Result<FinetuneBench> {
    use glassbox_engine::data::{self, DatasetName};
    use glassbox_engine::finetune::{self as ft, Config, Control, DataSource, Event, Hooks, Scope};
    let d = data::load(DatasetName::Mnist, &data::data_dir())?;
    let test_dir = dir.join("test");
    if !test_dir.exists() {
        data::write_folder(
            DatasetName::Mnist,
            &d.test,
            &test_dir,
            "",
            sizes.test_per_class,
            0,
            true,
        )?;
    }
    let test = ft::read_data(&base.preprocess, &DataSource::Folder(test_dir.clone()), 0)?;
    let feats = |images: &Tensor| -> Result<Tensor> {
        Ok(ft::features_of(base, images, &mut |_| true)?.to_device(Device::Cpu))
    };
    let labels = |d: &ft::Data| Tensor::from_slice(&d.labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let test_feats = feats(&test.images)?;
    let mut exported = vec![
        ("test.features".to_string(), test_feats.shallow_clone()),
        ("test.labels".to_string(), labels(&test)),
    ];
    let (epochs, lr, batch) = (30, 0.01, 32);
    let control = Control::default();
    let mut quiet = |_: Event| true;
    let mut head = Vec::new();
    for &per_class in &sizes.head_per_class {
        let folder = dir.join(format!("train-{per_class}"));
        if !folder.exists() {
            data::write_folder(DatasetName::Mnist, &d.train, &folder, "", per_class, 0, true)?;
        }
        let t0 = Instant::now();
        let data = ft::read_data(&base.preprocess, &DataSource::Folder(folder), 0)?;
        let cfg = Config {
            epochs,
            lr,
            batch,
            val_split: 0.0,
            scope: Scope::Head,
            ..Config::default()
        };
        let mut head_start = None;
        let mut on = |e: Event| {
            if matches!(e, Event::Epoch(ref s) if s.epoch == 0) {
                head_start = Some(Instant::now());
            }
            true
        };
        let out = ft::run(
            base,
            &data,
            &cfg,
            &mut Hooks {
                event: &mut on,
                control: &control,
            },
        )?;
        let wall = t0.elapsed().as_secs_f64();
        let head_s = head_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
        // Test accuracy of the trained head on the test digits' features.
        let pred = tch::no_grad(|| ft::head_logits(&out.model, &test_feats)).argmax(-1, false);
        let correct = pred
            .to_device(Device::Cpu)
            .eq_tensor(&labels(&test))
            .sum(Kind::Int64)
            .int64_value(&[]);
        head.push(HeadRun {
            per_class,
            train_images: data.labels.len(),
            test_accuracy: correct as f64 / test.labels.len() as f64,
            features_s: wall - head_s,
            head_s,
            wall_s: wall,
        });
        exported.push((format!("train{per_class}.features"), feats(&data.images)?));
        exported.push((format!("train{per_class}.labels"), labels(&data)));
    }
    glassbox_engine::weights::save_safetensors(
        &dir.join("features.safetensors"),
        &exported,
        &Default::default(),
        glassbox_engine::weights::StoreAs::F32,
    )?;

    // Imprinting two digits (as new classes) from 20 images each.
    let new_dir = dir.join("new-classes");
    let new_test = dir.join("new-classes-test");
    if !new_dir.exists() {
        let (n_train, n_test) = (sizes.imprint_train, sizes.imprint_test);
        for (folder, n, skip, from) in [(&new_dir, n_train, 0, &d.train), (&new_test, n_test, 100, &d.test)] {
            let all = dir.join("all-tmp");
            let _ = std::fs::remove_dir_all(&all);
            data::write_folder(DatasetName::Mnist, from, &all, "digit-", n, skip, true)?;
            std::fs::create_dir_all(folder).map_err(|e| glassbox_engine::error::Error::io(folder, e))?;
            for c in ["digit-3", "digit-7"] {
                std::fs::rename(all.join(c), folder.join(c))
                    .map_err(|e| glassbox_engine::error::Error::io(folder, e))?;
            }
            let _ = std::fs::remove_dir_all(&all);
        }
    }
    // Imprinting only, then with 10 epochs of the new rows: the model, its accuracy, seconds.
    let mut add = |epochs: usize, lr: f64| -> Result<(Model, f64, f64)> {
        let t0 = Instant::now();
        let out = ft::finetune(
            base,
            &DataSource::Folder(new_dir.clone()),
            &Config {
                add_classes: true,
                epochs,
                lr,
                val_split: 0.0,
                ..Config::default()
            },
            &mut Hooks {
                event: &mut quiet,
                control: &control,
            },
        )?;
        let s = t0.elapsed().as_secs_f64();
        let labelled = glassbox_engine::evaluate::folder(&out.model, &new_test)?;
        let acc = glassbox_engine::evaluate::evaluate(&out.model, &labelled, &mut |_, _| true)?.accuracy;
        Ok((out.model, acc, s))
    };
    let (imprinted, imprint_accuracy, imprint_s) = add(0, 1e-3)?;
    let (refined, refined_accuracy, refined_s) = add(10, 0.01)?;
    let mut photos_top1 = Vec::new();
    for p in photos {
        let x = base.preprocess.prepare_file(p)?.tensor;
        let top = |m: &Model| -> Result<String> { Ok(m.top_k(&m.logits(&x), 1)?[0][0].label.clone()) };
        photos_top1.push((p.display().to_string(), top(base)?, top(&imprinted)?, top(&refined)?));
    }

    // Whole-network fine-tuning throughput (200 digits, batch 16, no augmentation): full
    // batches after the first (warm-up) step, without the last, partial one; each run
    // anew from the base model, the median of the runs.
    let full_batch = 16;
    let folder = dir.join(format!("full-{}", sizes.full_per_class));
    if !folder.exists() {
        data::write_folder(DatasetName::Mnist, &d.train, &folder, "", sizes.full_per_class, 0, true)?;
    }
    let data = ft::read_data(&base.preprocess, &DataSource::Folder(folder), 0)?;
    let mut full_runs = Vec::new();
    let mut full_steps = 0;
    for _ in 0..sizes.full_runs.max(1) {
        let mut steps: Vec<f64> = Vec::new();
        let mut on = |e: Event| {
            if let Event::Step { elapsed, .. } = e {
                steps.push(elapsed);
            }
            true
        };
        ft::run(
            base,
            &data,
            &Config {
                scope: Scope::Full,
                epochs: 1,
                batch: full_batch,
                val_split: 0.0,
                augment: false,
                ..Config::default()
            },
            &mut Hooks {
                event: &mut on,
                control: &control,
            },
        )?;
        // Step k's time is steps[k] - steps[k-1]: steps 1 .. len-2 are full batches after
        // the warm-up (the last may be partial).
        if steps.len() < 3 {
            return Err(glassbox_engine::Error::invalid(format!(
                "whole-network timing needs at least 3 steps of {full_batch}; {} digits make {}",
                data.labels.len(),
                steps.len()
            )));
        }
        full_steps = steps.len() - 2;
        let span = steps[steps.len() - 2] - steps[0];
        full_runs.push(full_steps as f64 * full_batch as f64 / span);
    }
    let full_images_per_s = {
        let mut v = full_runs.clone();
        median(&mut v)
    };
    Ok(FinetuneBench {
        model: base.source.to_string(),
        device: glassbox_engine::Device::from(base.device()).to_string(),
        threads: tch::get_num_threads(),
        epochs,
        lr,
        batch,
        head,
        test_images: test.labels.len(),
        imprint_train: sizes.imprint_train,
        imprint_test: sizes.imprint_test,
        imprint_accuracy,
        imprint_s,
        refined_accuracy,
        refined_s,
        photos_top1,
        full_images_per_s,
        full_runs_images_per_s: full_runs,
        full_batch,
        full_steps,
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
