//! What a channel wants to see: the images of a folder or data set that excite it most,
//! and an image grown from noise to excite it (or a class).

use crate::command::Command;
use crate::command::ExamplesCommand;
use crate::feature::Feature;
use crate::textures::Which;
use crate::GlassboxApp;
use glassbox_engine::worker::{Kind, Response};
use glassbox_engine::worker::{Request, RequestKind};

/// Top images and feature visualisation.
pub(crate) struct Neuron;

impl Feature for Neuron {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::VisualSeed(seed) => app.state.visual.seed = seed,
            Command::Visualize { goal, seed } => {
                let settings = glassbox_engine::visualize::Settings {
                    seed,
                    ..Default::default()
                };
                let id = app.send(Request::Visualize { goal, settings });
                app.state.visual.seed = seed;
                app.state.visual.running = Some(id);
                app.state.visual.progress = None;
            }
            Command::Examples(e) => match e {
                ExamplesCommand::Source(src) => app.state.examples.source = Some(src),
                ExamplesCommand::PerClass(n) => app.state.examples.per_class = n.max(1),
                ExamplesCommand::Find => {
                    let (Some(src), Some(ch), Some(d)) = (
                        app.state.examples.source.clone(),
                        &app.state.channels,
                        &app.state.channel,
                    ) else {
                        app.state
                            .errors
                            .push("pick a channel and the images to search (a folder or a data set) first".into());
                        return None;
                    };
                    let req = Request::Examples {
                        source: src,
                        per_class: app.state.examples.per_class,
                        layer: ch.layer.clone(),
                        channel: d.channel,
                    };
                    let id = app.send(req);
                    app.state.examples.running = Some(id);
                    app.state.examples.progress = None;
                }
            },
            other => return Some(other),
        }
        None
    }

    fn respond(&self, app: &mut GlassboxApp, job: Kind, r: Response) -> Option<Response> {
        match r {
            Response::Progress { done, total, .. } if job.request == RequestKind::Examples => {
                app.state.examples.progress = Some((done, total));
            }
            Response::Progress { done, total, .. } if job.request == RequestKind::Visualize => {
                app.state.visual.progress = Some((done, total));
            }
            Response::Visualized {
                goal,
                picture,
                objective,
                ..
            } => {
                app.tex.set(&app.ctx, Which::Visual, &picture);
                let v = &mut app.state.visual;
                v.running = None;
                v.progress = None;
                v.result = Some((
                    goal,
                    objective.first().copied().unwrap_or(0.0),
                    objective.last().copied().unwrap_or(0.0),
                ));
            }
            Response::Examples {
                layer,
                channel,
                images,
                searched,
                images_per_s,
                ..
            } => {
                for (k, img) in images.iter().enumerate() {
                    app.tex.set(&app.ctx, Which::Example(k), &img.overlay);
                }
                let e = &mut app.state.examples;
                e.running = None;
                e.progress = None;
                e.result = Some(crate::state::ExamplesResult {
                    layer,
                    channel,
                    images,
                    searched,
                    images_per_s,
                });
            }
            Response::Cancelled { .. } if job.request == RequestKind::Examples => {
                app.state.examples.running = None;
                app.state.examples.progress = None;
            }
            Response::Cancelled { .. } if job.request == RequestKind::Visualize => {
                app.state.visual.running = None;
                app.state.visual.progress = None;
            }
            Response::Failed { message, .. } if job.request == RequestKind::Examples => {
                app.state.examples.running = None;
                app.state.examples.progress = None;
                app.state.errors.push(message);
            }
            Response::Failed { message, .. } if job.request == RequestKind::Visualize => {
                app.state.visual.running = None;
                app.state.visual.progress = None;
                app.state.errors.push(message);
            }
            other => return Some(other),
        }
        None
    }

    fn cancel(&self, app: &mut GlassboxApp) {
        for id in [app.state.examples.running.take(), app.state.visual.running.take()]
            .into_iter()
            .flatten()
        {
            app.abandon(id);
        }
        app.state.examples.progress = None;
        app.state.visual.progress = None;
    }
}
