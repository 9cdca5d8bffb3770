//! Two models side by side: pin model A (the model now, before its edits, before its
//! retraining, or a file), then every change to the current model (B) and every new image
//! compares them again; a layer's filters in both; both per-class accuracies. And the model
//! taken back to PyTorch (Export > For PyTorch).

use crate::command::{Command, CompareCommand};
use crate::feature::Feature;
use crate::textures::Which;
use crate::GlassboxApp;
use glassbox_engine::explain::Method;
use glassbox_engine::worker::{Kind, Request, Response};

/// Comparing A and B; exporting for PyTorch.
pub(crate) struct Compare;

impl Feature for Compare {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Compare(CompareCommand::Pin(source)) => {
                app.send(Request::Pin(source));
            }
            Command::Compare(CompareCommand::Refresh) => app.refresh_compare(),
            Command::Compare(CompareCommand::Filters(conv)) => {
                app.send(Request::CompareFilters {
                    conv,
                    per_input: app.state.settings.per_input,
                });
            }
            Command::Compare(CompareCommand::Accuracy(set)) => {
                app.state.compare.accuracy = None;
                app.send(Request::CompareAccuracy(set));
            }
            Command::ExportModel { path, torchscript } => {
                app.state.compare.exported = None;
                // The dialog asked before replacing a file.
                app.send(Request::Export {
                    path,
                    torchscript,
                    force: true,
                });
            }
            other => return Some(other),
        }
        None
    }

    fn respond(&self, app: &mut GlassboxApp, _job: Kind, r: Response) -> Option<Response> {
        match r {
            Response::Pinned { what, .. } => {
                let pinned = what.is_some();
                app.state.compare = crate::state::Comparison {
                    pinned: what,
                    exported: app.state.compare.exported.take(),
                    ..Default::default()
                };
                for n in 0..3 {
                    app.tex.remove(Which::Compare(n));
                }
                if pinned {
                    app.refresh_compare();
                }
            }
            Response::Compared { result, .. } => {
                for n in 0..3 {
                    match &result.pictures {
                        Some(p) => app.tex.set(&app.ctx, Which::Compare(n), &p[n]),
                        None => app.tex.remove(Which::Compare(n)),
                    }
                }
                app.state.compare.result = Some(*result);
            }
            Response::CompareFilters { conv, a, b, .. } => {
                app.tex.set(&app.ctx, Which::CompareFilters(0), &a);
                app.tex.set(&app.ctx, Which::CompareFilters(1), &b);
                app.state.compare.filters = Some((conv, a, b));
            }
            Response::CompareAccuracy { result, .. } => app.state.compare.accuracy = Some(*result),
            Response::Exported { done, .. } => {
                let text = format!(
                    "exported {} ({} for PyTorch, {:.1} MB){}",
                    done.path.display(),
                    done.format,
                    done.bytes as f64 / 1e6,
                    done.max_logit_diff
                        .map_or(String::new(), |d| format!("; loaded back, logits within {d:.1e}"))
                );
                app.state.notice = Some(text.clone());
                app.state.compare.exported = Some(
                    std::iter::once(text)
                        .chain(done.notes.iter().map(|n| format!("note: {n}")))
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
            }
            other => return Some(other),
        }
        None
    }
}

impl GlassboxApp {
    /// With a model pinned: A against the current model on the current image, again (the
    /// map of the first explanation's method, Grad-CAM without one).
    pub(crate) fn refresh_compare(&mut self) {
        if self.state.compare.pinned.is_none() || self.state.model.is_none() {
            return;
        }
        let method = self.state.slots.first().map_or(Method::GradCam, |s| s.method);
        let params = self.base_params();
        self.send(Request::Compare {
            top: self.state.settings.top_k,
            method,
            params,
        });
        if let Some(conv) = self.state.compare.filters.as_ref().map(|f| f.0.clone()) {
            self.send(Request::CompareFilters {
                conv,
                per_input: self.state.settings.per_input,
            });
        }
    }
}
