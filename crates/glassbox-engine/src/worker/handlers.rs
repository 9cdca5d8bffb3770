//! The worker as a thin executor: each request is one call to the engine session, its
//! result wrapped as the response that names the request.

use tch::Tensor;

use super::outbox::Outbox;
use super::protocol::{EditRequest, Fault, Request, Response, TrainRequest};
use crate::error::Result;
use crate::map::Map;
use crate::session::Session;

/// What a request needs besides itself: its id, the channel for progress reports, and
/// whether it went stale (superseded, cancelled, or the engine is closing).
pub(super) struct Ctx<'a> {
    pub id: u64,
    pub out: &'a Outbox,
    pub stale: &'a dyn Fn() -> bool,
}

impl Ctx<'_> {
    /// Reports progress; false when the request should stop.
    fn progress(&self, done: usize, total: usize, partial: Option<Map>) -> bool {
        if (self.stale)() {
            return false;
        }
        let _ = self.out.send(Response::Progress {
            id: self.id,
            done,
            total,
            partial,
        });
        true
    }

    fn keep_going(&self) -> bool {
        !(self.stale)()
    }
}

pub(super) fn run(s: &mut Session, req: Request, cx: &Ctx) -> Result<Response> {
    let id = cx.id;
    let mut progress = |d, t| cx.progress(d, t, None);
    Ok(match req {
        Request::OpenModel { model, arch } => Response::ModelOpened {
            id,
            info: s.open_model(model, arch)?,
        },
        Request::SetImage { source } => {
            let set = s.set_image(&source)?;
            Response::ImageSet {
                id,
                name: set.name,
                view: set.view,
                original: set.original,
            }
        }
        Request::Predict { top } => Response::Prediction {
            id,
            top: s.predict(top)?,
        },
        Request::Analyze {
            top,
            layer,
            methods,
            params,
        } => {
            let a = s.analyze(top, layer.as_deref(), &methods, &params)?;
            Response::Analyzed {
                id,
                top: a.top,
                original_top: a.original_top,
                target: a.target,
                channels: a.channels,
                original_channels: a.original_channels,
                maps: a.maps,
            }
        }
        Request::Activations { layer } => {
            let (channels, original) = s.activations(&layer)?;
            Response::Activations { id, channels, original }
        }
        Request::Explain { slot, method, params } => Response::Explained {
            id,
            slot,
            result: s.explain(method, &params, &mut |d, t, partial| cx.progress(d, t, partial))?,
        },
        Request::Faithfulness { slot, target, map } => {
            let (deletion, insertion) = s.curves(&map, target, &|| cx.keep_going())?;
            Response::Faithfulness {
                id,
                slot,
                deletion,
                insertion,
            }
        }
        Request::Sanity { slot, method, params } => Response::Sanity {
            id,
            slot,
            result: s.sanity(method, &params, &mut progress)?,
        },
        Request::Score { layers_of, params } => Response::Scored {
            id,
            result: Box::new(match layers_of {
                Some(m) => s.cam_layers(m, &params, &mut progress, &|| cx.keep_going())?,
                None => s.scoreboard(crate::explain::METHODS, &params, &mut progress, &|| cx.keep_going())?,
            }),
        },
        Request::ChannelKernel { layer, channel } => {
            let k = s.channel_kernel(&layer, channel)?;
            Response::ChannelKernel {
                id,
                layer,
                channel,
                conv: k.conv,
                shape: k.shape,
                picture: k.picture,
                values: k.values,
                channel_params: k.channel_params,
            }
        }
        Request::ReceptiveField { layer, channel, y, x } => Response::ReceptiveField {
            field: s.receptive_field(&layer, channel, y, x)?,
            id,
            layer,
            y,
            x,
        },
        Request::Filters { conv, per_input } => {
            let (shape, picture) = s.filters(&conv, per_input)?;
            Response::Filters {
                id,
                conv,
                shape,
                picture,
            }
        }
        Request::Visualize { goal, settings } => {
            let v = s.visualize(&goal, &settings, &mut progress)?;
            Response::Visualized {
                id,
                goal,
                picture: v.picture,
                objective: v.objective,
            }
        }
        Request::Unfold { layer, channel, y, x } => Response::Unfolded {
            id,
            result: Box::new(s.unfold(&layer, channel, y, x)?),
        },
        Request::Examples {
            source,
            per_class,
            layer,
            channel,
        } => {
            let e = s.examples(&source, per_class, &layer, channel, &mut progress)?;
            Response::Examples {
                id,
                layer,
                channel,
                images: e.images,
                searched: e.searched,
                images_per_s: e.images_per_s,
            }
        }
        r @ (Request::Pin(_)
        | Request::Compare { .. }
        | Request::CompareFilters { .. }
        | Request::CompareAccuracy(_)
        | Request::Export { .. }) => compare(s, cx, r)?,
        Request::Edit(e) => edit(s, cx, e)?,
        Request::Train(t) => train(s, cx, t)?,
        Request::InjectFault(fault) => inject_fault(s, fault),
    })
}

/// Model A pinned beside the current one, the comparisons, the export for PyTorch.
fn compare(s: &mut Session, cx: &Ctx, req: Request) -> Result<Response> {
    let id = cx.id;
    let mut progress = |d, t| cx.progress(d, t, None);
    Ok(match req {
        Request::Pin(Some(source)) => Response::Pinned {
            id,
            what: Some(s.pin(&source)?),
        },
        Request::Pin(None) => {
            s.unpin();
            Response::Pinned { id, what: None }
        }
        Request::Compare { top, method, params } => Response::Compared {
            id,
            result: Box::new(s.compare(top, method, &params)?),
        },
        Request::CompareFilters { conv, per_input } => {
            let (a, b) = s.compare_filters(&conv, per_input)?;
            Response::CompareFilters { id, conv, a, b }
        }
        Request::CompareAccuracy(set) => Response::CompareAccuracy {
            id,
            result: Box::new(s.compare_accuracy(&set, &mut progress)?),
        },
        Request::Export {
            path,
            torchscript,
            force,
        } => Response::Exported {
            id,
            done: s.export(&path, torchscript, force)?,
        },
        other => unreachable!("not a comparison: {}", other.describe()),
    })
}

fn edit(s: &mut Session, cx: &Ctx, e: EditRequest) -> Result<Response> {
    let id = cx.id;
    let state = match e {
        EditRequest::Apply(op) => s.apply(op)?,
        EditRequest::Undo => s.undo()?,
        EditRequest::Redo => s.redo()?,
        EditRequest::GoTo(n) => s.go_to(n)?,
        EditRequest::Reset => s.reset()?,
        EditRequest::Save { path, force } => {
            s.save(&path, force)?;
            return Ok(Response::Saved { id, path });
        }
        EditRequest::Evaluate(set) => {
            let e = s.evaluate(&set, &mut |d, t| cx.progress(d, t, None))?;
            return Ok(Response::Evaluated {
                id,
                edited: e.edited,
                original: e.original,
                changes: e.changes,
            });
        }
    };
    Ok(Response::Edited {
        id,
        log: state.log,
        redoable: state.redoable,
        knockouts: state.knockouts,
    })
}

fn train(s: &mut Session, cx: &Ctx, t: TrainRequest) -> Result<Response> {
    use crate::finetune::Event;
    let id = cx.id;
    Ok(match t {
        TrainRequest::Start {
            source,
            config,
            control,
        } => {
            // Reports at most every 50 ms (a head-only step takes a fraction of that).
            let mut last = std::time::Instant::now() - std::time::Duration::from_secs(1);
            let mut on_event = |e: Event| {
                let throttled = matches!(e, Event::Step { step, steps, .. } if step < steps)
                    || matches!(e, Event::Features { done, total } if done < total)
                    || matches!(e, Event::Paused);
                if !throttled || last.elapsed().as_millis() >= 50 {
                    last = std::time::Instant::now();
                    let _ = cx.out.send(Response::Training { id, event: e });
                }
                cx.keep_going()
            };
            let t = s.train(&source, &config, &control, &mut on_event)?;
            Response::Trained {
                id,
                summary: t.summary,
                timeline: t.timeline,
                info: t.info,
                probe: t.probe,
            }
        }
        TrainRequest::Scrub(point) => Response::Scrubbed {
            id,
            point,
            epoch: s.scrub(point)?,
        },
        TrainRequest::Cell { truth, predicted } => Response::Cell {
            id,
            truth,
            predicted,
            images: s.cell(truth, predicted, &|| cx.keep_going())?,
        },
        TrainRequest::Accept | TrainRequest::Discard => {
            let accepted = matches!(t, TrainRequest::Accept);
            Response::TrainingClosed {
                id,
                accepted,
                info: s.close_training(accepted)?,
            }
        }
    })
}

fn inject_fault(s: &Session, fault: Fault) -> Response {
    match fault {
        Fault::TorchError => {
            let t = Tensor::zeros([2, 3], (tch::Kind::Float, s.device()));
            let _ = t.view([7, 7]);
            unreachable!("libtorch refuses a [2, 3] tensor viewed as [7, 7]")
        }
        Fault::Panic => panic!("injected panic"),
        Fault::KillThread => unreachable!("handled by the engine loop"),
    }
}
