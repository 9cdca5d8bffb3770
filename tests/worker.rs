//! The engine thread: requests in, plain data out; newer requests supersede older ones.
mod common;

use std::time::Duration;

use common::*;
use glassbox::engine::explain::{Method, Params};
use glassbox::engine::worker::{Engine, ImageSource, Request, Response};
use tch::Device;

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

#[test]
fn open_set_image_predict_and_explain() {
    let e = Engine::spawn(Device::Cpu);
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
    let e = Engine::spawn(Device::Cpu);
    let open = e.send(Request::OpenModel {
        model: "efficientnet-lite0".into(),
        arch: None,
    });
    wait_for(&e, open);
    let img = e.send(Request::SetImage {
        source: ImageSource::File(asset("assets/samples/coffee.png")),
    });
    wait_for(&e, img);
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
