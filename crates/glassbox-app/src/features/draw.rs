//! Draw a digit: the small models' canvas is the input; every stroke goes to the engine
//! with its analysis.

use crate::command::Command;
use crate::command::DrawCommand;
use crate::feature::Feature;
use crate::GlassboxApp;

/// The drawing canvas.
pub(crate) struct Draw;

impl Feature for Draw {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::Draw(d) => {
                let c = &mut app.state.canvas;
                match d {
                    DrawCommand::Stroke { from, to } => c.stroke(from, to),
                    DrawCommand::Brush(r) => {
                        c.brush = r.clamp(0.3, 4.0);
                        return None;
                    }
                    DrawCommand::Erase(on) => {
                        c.erase = on;
                        return None;
                    }
                    DrawCommand::Clear => c.pixels.iter_mut().for_each(|v| *v = 0.0),
                }
                // The drawing is the input: every view follows it. A drawing is always a
                // valid image, so its analysis goes to the engine with it (the engine takes
                // requests in order) instead of after the image comes back: one round trip
                // per stroke, not two.
                let img = app.state.canvas.image();
                let id = app.set_image(img);
                if app.state.model.is_some() && app.state.input.is_some() && !app.model_on_its_way() {
                    app.state.target = None;
                    app.analyze_all(true);
                    app.analysed_ahead = Some(id);
                }
            }
            other => return Some(other),
        }
        None
    }
}
