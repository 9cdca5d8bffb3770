//! One layer and one channel: the activation grid (shared scale, or the change the edits
//! made), the chosen channel with its kernel, the receptive field of a position, and the
//! filters of the convolution that made the layer.

use crate::command::Command;
use crate::feature::Feature;
use crate::state::{ChannelDetail, Field};
use crate::textures::Which;
use crate::GlassboxApp;
use glassbox_engine::inspect::Channels;
use glassbox_engine::render::{self, Colormap};
use glassbox_engine::worker::{Kind, Response};
use glassbox_engine::worker::{Request, RequestKind};

/// The layer, the channel, its kernel, field and filters.
pub(crate) struct Channel;

impl Feature for Channel {
    fn apply(&self, app: &mut GlassboxApp, cmd: Command) -> Option<Command> {
        match cmd {
            Command::SetLayer(layer) => app.set_layer(layer),
            Command::SetFilterConv(conv) => app.set_filter_conv(conv),
            Command::SetPerInput(on) => {
                app.state.settings.per_input = on;
                if let Some(conv) = app.state.settings.filter_conv.clone() {
                    app.set_filter_conv(conv);
                }
            }
            Command::SetShowChange(on) => {
                app.state.show_change = on;
                app.redraw_grid();
            }
            Command::SetSharedScale(on) => {
                app.state.settings.shared_scale = on;
                app.redraw_grid();
            }
            Command::EditFilter { conv, out } => {
                app.state.want_channel = Some(out);
                app.set_layer(conv);
                // The editor comes forward with the filter in it.
                app.layouts.show(crate::tiles::Pane::Channel);
            }
            Command::SelectChannel { channel, at } => {
                app.select_channel(channel, at);
                // Clicked in the grid: the channel view comes forward to show it.
                app.layouts.show(crate::tiles::Pane::Channel);
            }
            Command::RequestField { layer, channel, y, x } => {
                // The value there, computed in the open, beside its receptive field.
                if let Some(c) = channel {
                    app.send(Request::Unfold {
                        layer: layer.clone(),
                        channel: c,
                        y,
                        x,
                    });
                }
                app.send(Request::ReceptiveField { layer, channel, y, x });
            }
            Command::HideField => {
                app.state.field = None;
                app.state.unfolded = None;
                app.state.unfold_error = None;
            }
            other => return Some(other),
        }
        None
    }

    fn respond(&self, app: &mut GlassboxApp, job: Kind, r: Response) -> Option<Response> {
        match r {
            Response::Activations { channels, original, .. } => {
                app.state.original_channels = original;
                app.set_channels(channels)
            }
            Response::ChannelKernel {
                layer,
                channel,
                conv,
                shape,
                picture,
                values,
                channel_params,
                ..
            } => {
                let st = &mut app.state;
                let current = st.channels.as_ref().map(|c| c.layer.as_str()) == Some(layer.as_str());
                if let Some(d) = st.channel.as_mut().filter(|d| d.channel == channel && current) {
                    app.tex.set(&app.ctx, Which::Kernel, &picture);
                    d.kernel = Some((conv, shape, picture));
                    d.kernel_values = values;
                    d.channel_params = channel_params;
                }
            }
            Response::ReceptiveField { layer, y, x, field, .. } => {
                if let Some(input) = &app.state.input {
                    let pic = render::field_picture(&input.view, &field);
                    app.tex.set(&app.ctx, Which::Field, &pic);
                }
                app.state.field = Some(Field { layer, y, x, field });
            }
            Response::Filters {
                conv, shape, picture, ..
            } => {
                app.tex.set(&app.ctx, Which::Filters, &picture);
                app.state.filters = Some((conv, shape, picture));
            }
            Response::Failed { message, .. } if job.request == RequestKind::ChannelKernel => {
                if let Some(d) = app.state.channel.as_mut() {
                    d.kernel_error = Some(message);
                }
            }
            other => return Some(other),
        }
        None
    }
}

impl GlassboxApp {
    /// Chooses the layer whose channels are shown; the filters follow it (the convolution
    /// that made its channels).
    pub(crate) fn set_layer(&mut self, layer: String) {
        let conv = self.state.model.as_ref().and_then(|m| m.producers.get(&layer).cloned());
        if let Some(c) = conv.filter(|c| self.state.settings.filter_conv.as_ref() != Some(c)) {
            self.set_filter_conv(c);
        }
        self.state.settings.layer = Some(layer.clone());
        self.state.channel = None;
        self.state.field = None;
        self.tex.clear(Which::Field);
        if self.state.input.is_some() && !self.model_on_its_way() {
            self.send(Request::Activations { layer });
        }
    }

    pub(crate) fn set_filter_conv(&mut self, conv: String) {
        self.state.settings.filter_conv = Some(conv.clone());
        if self.model_on_its_way() {
            return;
        }
        let per_input = self.state.settings.per_input;
        self.send(Request::Filters { conv, per_input });
    }

    /// Chooses a channel of the activation layer; with a position, also its receptive field.
    pub(crate) fn select_channel(&mut self, channel: usize, at: Option<(usize, usize)>) {
        let Some(ch) = &self.state.channels else { return };
        if channel >= ch.c {
            return;
        }
        let stats = ch.stats(channel);
        let layer = ch.layer.clone();
        self.state.channel = Some(ChannelDetail {
            channel,
            stats,
            kernel: None,
            kernel_values: Vec::new(),
            channel_params: Vec::new(),
            kernel_error: None,
        });
        if let Some((heat, over)) = self.state.channel_pictures() {
            self.tex.set(&self.ctx, Which::Channel, &heat);
            self.tex.set(&self.ctx, Which::ChannelOverlay, &over);
        }
        self.send(Request::ChannelKernel {
            layer: layer.clone(),
            channel,
        });
        if let Some((y, x)) = at {
            let (h, w) = ch_dims(&self.state.channels);
            self.apply(Command::RequestField {
                layer,
                channel: Some(channel),
                y: y.min(h.saturating_sub(1)),
                x: x.min(w.saturating_sub(1)),
            });
        }
    }

    pub(crate) fn set_channels(&mut self, ch: Channels) {
        let change = self
            .state
            .original_channels
            .as_ref()
            .filter(|_| self.state.show_change)
            .and_then(|o| ch.minus(o));
        let grid = match &change {
            Some(d) => render::channel_grid(d, true, Colormap::RedBlue),
            None => render::channel_grid(&ch, self.state.settings.shared_scale, Colormap::Viridis),
        };
        self.tex.set(&self.ctx, Which::Grid, &grid.0);
        self.state.grid = Some(grid);
        let keep = self
            .state
            .want_channel
            .take()
            .or(self.state.channel.as_ref().map(|d| d.channel))
            .filter(|c| *c < ch.c);
        let first = ch.order.first().map(|o| o.0);
        self.state.channels = Some(ch);
        if let Some(c) = keep.or(first) {
            self.select_channel(c, None);
        }
    }

    /// Redraws the activation grid (the colour-scale option changed).
    pub(crate) fn redraw_grid(&mut self) {
        if let Some(ch) = self.state.channels.take() {
            self.set_channels(ch);
        }
    }

    /// Every view follows a model that changed in place (an edit, a timeline point).
    pub(crate) fn refresh_views(&mut self) {
        self.analyze_all(true);
        if let Some(conv) = self.state.settings.filter_conv.clone() {
            self.set_filter_conv(conv);
        }
        if let Some(c) = self.state.channel.as_ref().map(|d| d.channel) {
            self.select_channel(c, None);
        }
    }
}

fn ch_dims(ch: &Option<Channels>) -> (usize, usize) {
    ch.as_ref().map_or((1, 1), |c| (c.h, c.w))
}
