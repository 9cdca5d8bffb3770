//! `--soak N`: a long session of every kind of request the app sends, and its memory.

use std::time::Instant;

use serde::Serialize;
use tch::Device;

use glassbox_engine::error::Result;

use super::measure::{live_rss_mib, rss_mib};

/// A long session held in one process: cycles of every kind of request the app sends,
/// through the engine thread (the app's path), with the resident memory read along the way.
#[derive(Debug, Clone, Serialize)]
pub struct Soak {
    pub model: String,
    pub cycles: usize,
    /// The request kinds the first cycle sent (the names of `worker::Request`'s variants;
    /// every cycle sends them all but `Score`, sent every tenth).
    pub request_kinds: Vec<String>,
    /// Resident memory after the warm-up (a tenth of the cycles, at least one round of the
    /// thirteen methods, never the whole run).
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
/// channel computed in the open, the sanity check (and every tenth cycle, the first
/// included, the scoreboard of Grad-CAM's layers), an edit and its undo, a grown image,
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
    use glassbox_engine::explain::{Params, METHODS};

    use glassbox_engine::worker::{Engine, Request, Response};
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
        cycle(
            i,
            &Setup {
                images,
                layer: &layer,
                conv: &conv,
                shape: &shape,
                cheap: &cheap,
            },
            &mut send,
        )?;
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

/// What every cycle works on.
struct Setup<'a> {
    images: &'a [std::path::PathBuf],
    layer: &'a str,
    conv: &'a str,
    shape: &'a [i64],
    cheap: &'a glassbox_engine::explain::Params,
}

/// One cycle of the soak: every kind of request, in the order the app sends them.
fn cycle(
    i: usize,
    s: &Setup,
    send: &mut dyn FnMut(&'static str, glassbox_engine::worker::Request) -> Result<glassbox_engine::worker::Response>,
) -> Result<()> {
    use glassbox_engine::edit::{Op, Target};
    use glassbox_engine::explain::{Method, METHODS};
    use glassbox_engine::worker::{EditRequest, ImageSource, Request, Response};
    use glassbox_engine::Error;
    let channel = i % s.shape.get(1).copied().unwrap_or(1).max(1) as usize;
    send(
        "SetImage",
        Request::SetImage {
            source: ImageSource::File(s.images[i % s.images.len()].clone()),
        },
    )?;
    send("Predict", Request::Predict { top: 5 })?;
    send(
        "Analyze",
        Request::Analyze {
            top: 5,
            layer: Some(s.layer.to_string()),
            methods: vec![Method::GradCam, Method::Gradient],
            params: s.cheap.clone(),
        },
    )?;
    send(
        "Activations",
        Request::Activations {
            layer: s.layer.to_string(),
        },
    )?;
    let method = METHODS[i % METHODS.len()];
    let Response::Explained { result, .. } = send(
        "Explain",
        Request::Explain {
            slot: 0,
            method,
            params: s.cheap.clone(),
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
            layer: s.layer.to_string(),
            channel,
        },
    )?;
    send(
        "Filters",
        Request::Filters {
            conv: s.conv.to_string(),
            per_input: false,
        },
    )?;
    let (h, w) = (
        s.shape.get(2).copied().unwrap_or(1),
        s.shape.get(3).copied().unwrap_or(1),
    );
    let (y, x) = ((i * 7) % h as usize, (i * 5) % w as usize);
    send(
        "ReceptiveField",
        Request::ReceptiveField {
            layer: s.layer.to_string(),
            channel: Some(channel),
            y,
            x,
        },
    )?;
    send(
        "Unfold",
        Request::Unfold {
            layer: s.layer.to_string(),
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
            params: s.cheap.clone(),
        },
    )?;
    // The scoreboard, every tenth cycle from the first: many explanations, curves and
    // imputations in one request, and the one that copies the model twice (Grad-CAM's
    // candidate layers: the board of every method would take a minute a cycle).
    if i.is_multiple_of(10) {
        send(
            "Score",
            Request::Score {
                layers_of: Some(Method::GradCam),
                params: s.cheap.clone(),
            },
        )?;
    }
    let target = Target {
        param: format!("{}.weight", s.conv),
        index: vec![channel as i64],
    };
    send("Edit", Request::Edit(EditRequest::Apply(Op::Scale(target, 0.5))))?;
    send("Edit(Undo)", Request::Edit(EditRequest::Undo))?;
    grow_and_train(i, s, channel, send)
}

/// The end of a cycle: a grown image, dataset examples of a channel, and a short head-only
/// training run scrubbed to its start and discarded.
fn grow_and_train(
    i: usize,
    s: &Setup,
    channel: usize,
    send: &mut dyn FnMut(&'static str, glassbox_engine::worker::Request) -> Result<glassbox_engine::worker::Response>,
) -> Result<()> {
    use glassbox_engine::data::DatasetName;
    use glassbox_engine::finetune::{Config, Control, DataSource, Scope};
    use glassbox_engine::visualize::{Goal, Settings};
    use glassbox_engine::worker::{Request, TrainRequest};
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
            layer: s.layer.to_string(),
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
    Ok(())
}
