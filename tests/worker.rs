//! The engine thread: requests in, plain data out; newer requests supersede older ones.
mod common;

use std::time::Duration;

use common::*;
use glassbox_engine::explain::{Method, Params};
use glassbox_engine::worker::{Engine, ImageSource, Request, Response};

fn wait_for(engine: &Engine, id: u64) -> Vec<Response> {
    let mut seen = Vec::new();
    loop {
        let r = engine
            .recv_timeout(Duration::from_secs(300))
            .expect("the engine answers");
        let rid = r.id();
        let done = rid == id && r.is_final();
        seen.push(r);
        if done {
            return seen;
        }
    }
}

/// An engine with the builtin model and a sample image open.
fn engine_on(sample: &str) -> Engine {
    let e = Engine::spawn(glassbox_engine::Device::Cpu);
    let open = e.send(Request::OpenModel {
        model: "efficientnet-lite0".into(),
        arch: None,
    });
    wait_for(&e, open);
    let img = e.send(Request::SetImage {
        source: ImageSource::File(asset(&format!("assets/samples/{sample}"))),
    });
    assert!(matches!(wait_for(&e, img).pop().unwrap(), Response::ImageSet { .. }));
    e
}

#[test]
fn open_set_image_predict_and_explain() {
    let e = Engine::spawn(glassbox_engine::Device::Cpu);
    let id = e.send(Request::OpenModel {
        model: "efficientnet-lite0".into(),
        arch: None,
    });
    match wait_for(&e, id).pop().unwrap() {
        Response::ModelOpened { info, .. } => {
            assert_eq!(info.arch, "efficientnet-lite0");
            assert!(info.layers.iter().any(|l| l.name == "_blocks.15"));
        }
        other => panic!("{other:?}"),
    }
    let id = e.send(Request::SetImage {
        source: ImageSource::File(asset("assets/samples/chelsea.png")),
    });
    match wait_for(&e, id).pop().unwrap() {
        Response::ImageSet { view, .. } => assert_eq!((view.width(), view.height()), (224, 224)),
        other => panic!("{other:?}"),
    }
    let id = e.send(Request::Predict { top: 3 });
    match wait_for(&e, id).pop().unwrap() {
        Response::Prediction { top, .. } => assert!((281..=285).contains(&top[0].index), "{top:?}"),
        other => panic!("{other:?}"),
    }
    let id = e.send(Request::Explain {
        slot: 0,
        method: Method::GradCam,
        params: Params::default(),
    });
    match wait_for(&e, id).pop().unwrap() {
        Response::Explained { result, .. } => {
            let (map, layer) = (result.map, result.layer);
            assert_eq!((map.w, map.h), (224, 224));
            assert_eq!(layer.as_deref(), Some("_swish#2"));
        }
        other => panic!("{other:?}"),
    }
    // A text file: a clear error, and the engine keeps its state and keeps working.
    let dir = tmp();
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    let id = e.send(Request::SetImage {
        source: ImageSource::File(txt),
    });
    match wait_for(&e, id).pop().unwrap() {
        Response::Failed { message, .. } => assert!(message.contains("not an image"), "{message}"),
        other => panic!("{other:?}"),
    }
    let id = e.send(Request::Predict { top: 1 });
    assert!(matches!(wait_for(&e, id).pop().unwrap(), Response::Prediction { .. }));
}

#[test]
fn a_newer_request_supersedes_a_long_one_and_cancel_stops_it() {
    let e = engine_on("coffee.png");
    let long = e.send(Request::Explain {
        slot: 0,
        method: Method::ScoreCam,
        params: Params::default(),
    });
    // Let it start and report progress, then ask for something else of the same kind.
    match e.recv_timeout(Duration::from_secs(120)).expect("progress") {
        Response::Progress { id, partial, .. } if id == long => {
            assert!(partial.is_some(), "Score-CAM shows its map so far")
        }
        other => panic!("{other:?}"),
    }
    let newer = e.send(Request::Explain {
        slot: 0,
        method: Method::Gradient,
        params: Params::default(),
    });
    let seen = wait_for(&e, newer);
    assert!(
        seen.iter()
            .any(|r| matches!(r, Response::Cancelled { id } if *id == long)),
        "the long one stopped"
    );
    assert!(matches!(
        seen.last().unwrap(),
        Response::Explained { result, .. } if result.method == Method::Gradient
    ));
    // Explicit cancel.
    let again = e.send(Request::Explain {
        slot: 0,
        method: Method::Occlusion,
        params: Params::default(),
    });
    e.cancel(again);
    assert!(matches!(wait_for(&e, again).pop().unwrap(), Response::Cancelled { .. }));
}

#[test]
fn one_analysis_gives_prediction_channels_and_the_shared_maps() {
    let e = engine_on("chelsea.png");
    let id = e.send(Request::Analyze {
        top: 3,
        layer: Some("_blocks.10".into()),
        methods: vec![Method::GradCam, Method::Gradient, Method::SmoothGrad],
        params: Params::default(),
    });
    let (top, target, channels, maps) = match wait_for(&e, id).pop().unwrap() {
        Response::Analyzed {
            top,
            target,
            channels,
            maps,
            ..
        } => (top, target, channels, maps),
        other => panic!("{other:?}"),
    };
    assert_eq!(top.len(), 3);
    assert_eq!(target, top[0].index);
    let ch = channels.unwrap().unwrap();
    assert_eq!((ch.layer.as_str(), ch.c, ch.h, ch.w), ("_blocks.10", 112, 14, 14));
    // Only the methods that share the backward come from the analysis.
    let maps: Vec<_> = maps.into_iter().map(Result::unwrap).collect();
    assert_eq!(
        maps.iter().map(|m| m.method).collect::<Vec<_>>(),
        [Method::GradCam, Method::Gradient]
    );
    // The same maps as separate requests.
    for m in &maps {
        let id = e.send(Request::Explain {
            slot: 0,
            method: m.method,
            params: Params::default(),
        });
        match wait_for(&e, id).pop().unwrap() {
            Response::Explained { result, .. } => {
                assert_eq!(result.target, m.target);
                let diff = result
                    .map
                    .data
                    .iter()
                    .zip(&m.map.data)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                let scale = m.map.data.iter().fold(0f32, |a, b| a.max(b.abs()));
                assert!(diff <= 1e-4 * scale.max(1e-12), "{}: {diff} of {scale}", m.method);
            }
            other => panic!("{other:?}"),
        }
    }
    // The channels are the layer's output: the receptive field at one of its pixels works.
    let id = e.send(Request::ReceptiveField {
        layer: "_blocks.10".into(),
        channel: Some(ch.order[0].0),
        y: 7,
        x: 7,
    });
    match wait_for(&e, id).pop().unwrap() {
        Response::ReceptiveField { field, .. } => {
            let (x0, y0, x1, y1) = field.bbox.unwrap();
            assert!(x0 < 7 * 16 && x1 > 7 * 16 && y0 < 7 * 16 && y1 > 7 * 16);
        }
        other => panic!("{other:?}"),
    }
}

fn top1(e: &Engine) -> i64 {
    let id = e.send(Request::Predict { top: 1 });
    match wait_for(e, id).pop().unwrap() {
        Response::Prediction { top, .. } => top[0].index,
        other => panic!("{other:?}"),
    }
}

fn failed(e: &Engine, req: Request) -> String {
    let id = e.send(req);
    match wait_for(e, id).pop().unwrap() {
        Response::Failed { message, .. } => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn the_engine_survives_libtorch_errors_panics_and_hostile_files_keeping_its_model_and_image() {
    use glassbox_engine::worker::Fault;
    let e = engine_on("chelsea.png");
    let before = top1(&e);
    let m = failed(&e, Request::InjectFault(Fault::TorchError));
    assert!(
        m.contains("injected fault") && m.contains("libtorch refused it") && m.contains("[7, 7]"),
        "{m}"
    );
    assert_eq!(m.lines().count(), 1, "{m}");
    let m = failed(&e, Request::InjectFault(Fault::Panic));
    assert!(m.contains("injected panic"), "{m}");
    for f in [
        "pth-legacy/hostile-dup-bomb.pth",
        "pth-legacy/hostile-nested-append.pth",
        "pth-zip/hostile-declares-4gb.pth",
        "safetensors/hostile-shape-overflow.safetensors",
    ] {
        let path = asset(&format!("tests/fuzz/{f}"));
        let m = failed(
            &e,
            Request::OpenModel {
                model: path.into(),
                arch: None,
            },
        );
        assert!(m.starts_with("opening model") && m.contains(f), "{m}");
    }
    let m = failed(
        &e,
        Request::SetImage {
            source: ImageSource::File(asset("tests/fuzz/image/hostile-60000x60000.png")),
        },
    );
    assert!(m.contains("60000x60000"), "{m}");
    // The model and image it had are still there.
    assert_eq!(top1(&e), before);
    assert!(e.alive());
}

#[test]
fn an_engine_whose_thread_ended_says_so() {
    use glassbox_engine::worker::Fault;
    let e = Engine::spawn(glassbox_engine::Device::Cpu);
    assert!(e.alive());
    e.send(Request::InjectFault(Fault::KillThread));
    let start = std::time::Instant::now();
    while e.alive() {
        assert!(start.elapsed() < Duration::from_secs(30), "the thread did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(e.recv_timeout(Duration::from_millis(10)).is_none());
}

#[test]
fn training_through_the_engine_reports_changes_its_rate_cancels_and_keeps_or_discards() {
    use glassbox_engine::data::DatasetName;
    use glassbox_engine::finetune::{Config, Control, DataSource, Event, Scope};
    use glassbox_engine::worker::TrainRequest;
    use std::sync::Arc;
    let e = Engine::spawn(glassbox_engine::Device::Cpu);
    let open = e.send(Request::OpenModel {
        model: "mnist".into(),
        arch: None,
    });
    wait_for(&e, open);
    let img = e.send(Request::SetImage {
        source: ImageSource::File(asset("assets/samples/chelsea.png")),
    });
    wait_for(&e, img);
    let predict = |e: &Engine| {
        let id = e.send(Request::Predict { top: 10 });
        match wait_for(e, id).pop().unwrap() {
            Response::Prediction { top, .. } => top.iter().map(|c| (c.index, c.probability)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        }
    };
    let before = predict(&e);
    let cfg = Config {
        scope: Scope::Full,
        epochs: 2,
        batch: 8,
        per_class: 20,
        ..Config::default()
    };
    let source = DataSource::Dataset(DatasetName::Mnist);
    // A run whose learning rate changes on the way, not before it starts: on its first
    // step the test pauses it, sets the new rate while it waits mid-run, and resumes it.
    // The steps before use the old rate, the ones after the new, and the record says
    // from which step.
    let control = Arc::new(Control::default());
    let id = e.send(Request::Train(TrainRequest::Start {
        source: source.clone(),
        config: cfg.clone(),
        control: control.clone(),
    }));
    let mut seen = Vec::new();
    let mut last_step = None;
    let mut changed_after: Option<(usize, usize)> = None;
    loop {
        let r = e.recv_timeout(Duration::from_secs(300)).expect("the engine answers");
        match &r {
            Response::Training {
                event: Event::Step { epoch, step, .. },
                ..
            } => {
                last_step = Some((*epoch, *step));
                if changed_after.is_none() && !control.paused() {
                    control.pause(true);
                }
            }
            Response::Training {
                event: Event::Paused, ..
            } if changed_after.is_none() => {
                control.set_lr(0.0005).unwrap();
                changed_after = last_step;
                control.pause(false);
            }
            _ => {}
        }
        let done = r.id() == id && r.is_final();
        seen.push(r);
        if done {
            break;
        }
    }
    let (seen_epoch, seen_step) = changed_after.expect("the run paused mid-run, after a step");
    let rates: Vec<(usize, usize, f64)> = seen
        .iter()
        .filter_map(|r| match r {
            Response::Training {
                event: Event::Step { epoch, step, lr, .. },
                ..
            } => Some((*epoch, *step, *lr)),
            _ => None,
        })
        .collect();
    let first_new = rates
        .iter()
        .position(|&(_, _, lr)| lr == 0.0005)
        .expect("some step ran at the new rate");
    assert!(first_new > 0, "the first steps ran at the old rate: {rates:?}");
    assert!(rates[..first_new].iter().all(|&(_, _, lr)| lr == cfg.lr), "{rates:?}");
    assert!(rates[first_new..].iter().all(|&(_, _, lr)| lr == 0.0005), "{rates:?}");
    let (e1, s1, _) = rates[first_new];
    assert!(
        (e1, s1) > (seen_epoch, seen_step),
        "the new rate applies after the step it was set at: ({e1}, {s1}) vs ({seen_epoch}, {seen_step})"
    );
    let epochs = seen
        .iter()
        .filter(|r| {
            matches!(
                r,
                Response::Training {
                    event: Event::Epoch(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(epochs, 3, "epoch 0 and two epochs");
    assert!(seen
        .iter()
        .any(|r| matches!(r, Response::Training { event: Event::Plan(p), .. } if p.train_images == 170)));
    let Response::Trained { summary, timeline, .. } = seen.last().unwrap() else {
        panic!("{:?}", seen.last())
    };
    assert_eq!(timeline, &[0, 1, 2]);
    let changes = &summary.record["glassbox.train.lr_changes"];
    assert_eq!(changes, &format!("[\"0.0005 from epoch {e1} step {s1}\"]"), "{changes}");
    // Edits wait for the candidate to be kept or discarded.
    let edit = e.send(Request::Edit(glassbox_engine::worker::EditRequest::Undo));
    assert!(
        matches!(wait_for(&e, edit).pop().unwrap(), Response::Failed { message, .. } if message.contains("Accept"))
    );
    // Discarded: the model before, bit for bit.
    let d = e.send(Request::Train(TrainRequest::Discard));
    assert!(matches!(
        wait_for(&e, d).pop().unwrap(),
        Response::TrainingClosed { accepted: false, .. }
    ));
    assert_eq!(predict(&e), before);
    // Cancelled mid-run: nothing changes, and the engine goes on.
    let control = Arc::new(Control::default());
    let id = e.send(Request::Train(TrainRequest::Start {
        source,
        config: Config { epochs: 100, ..cfg },
        control,
    }));
    loop {
        let r = e.recv_timeout(Duration::from_secs(300)).expect("the engine answers");
        if matches!(
            r,
            Response::Training {
                event: Event::Step { .. },
                ..
            }
        ) {
            break;
        }
    }
    e.cancel(id);
    assert!(matches!(wait_for(&e, id).pop().unwrap(), Response::Cancelled { .. }));
    assert_eq!(predict(&e), before);
    let none = e.send(Request::Train(TrainRequest::Accept));
    assert!(
        matches!(wait_for(&e, none).pop().unwrap(), Response::Failed { message, .. } if message.contains("no retrained model"))
    );
}
