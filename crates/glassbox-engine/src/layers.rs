//! Building blocks shared by the architectures. Every block reports its output
//! through [`Fwd::emit`], named with the weight-key prefix users know from PyTorch,
//! so one forward both computes and traces (or edits) every layer.

use serde::Serialize;
use tch::{nn, Tensor};

use crate::lrp;

/// What a traced layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerKind {
    Conv,
    BatchNorm,
    Activation,
    Pool,
    Block,
    Linear,
}

impl LayerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::Conv => "conv",
            LayerKind::BatchNorm => "bn",
            LayerKind::Activation => "activation",
            LayerKind::Pool => "pool",
            LayerKind::Block => "block",
            LayerKind::Linear => "linear",
        }
    }
}

/// The forward pass context: training flag and the hook every layer output goes through.
/// The hook returns the tensor the forward continues with (the same one to observe,
/// a changed one to edit the network).
/// Where a convolution's kernel sits on its input: stride, padding before the first row
/// and column (TensorFlow "SAME" padding is computed per input), groups, kernel side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub k: i64,
    pub stride: i64,
    pub pad_top: i64,
    pub pad_left: i64,
    pub groups: i64,
}

/// What sees each convolution's input (before padding) with its geometry.
pub type ConvInputHook<'h> = &'h mut dyn FnMut(&str, &Tensor, Geometry);

pub struct Fwd<'h> {
    pub train: bool,
    conv_input: Option<ConvInputHook<'h>>,
    /// Training from this layer on (fine-tuning from a block): the layers before it run as
    /// at inference (batch norm with its running statistics), the rest in training mode.
    train_from: Option<String>,
    /// An inference forward that ends after this layer: once it is out, every later layer
    /// passes its input on without computing (`Model::layer_output`).
    stop_after: Option<String>,
    stopped: bool,
    /// A relevance forward (LRP): each layer's output carries its rule's gradient.
    lrp: Option<&'h mut lrp::Pass>,
    hook: &'h mut dyn FnMut(&str, LayerKind, Tensor) -> Tensor,
}

impl<'h> Fwd<'h> {
    pub fn new(train: bool, hook: &'h mut dyn FnMut(&str, LayerKind, Tensor) -> Tensor) -> Self {
        Fwd {
            train,
            train_from: None,
            conv_input: None,
            stop_after: None,
            stopped: false,
            lrp: None,
            hook,
        }
    }

    /// An inference forward for layer-wise relevance propagation under `pass`.
    pub fn with_lrp(mut self, pass: &'h mut lrp::Pass) -> Self {
        self.lrp = Some(pass);
        self
    }

    /// The same, also showing every convolution's input to `conv_input`.
    pub fn with_conv_input(mut self, conv_input: ConvInputHook<'h>) -> Self {
        self.conv_input = Some(conv_input);
        self
    }

    /// A training forward in which only `from` and the layers after it train.
    pub fn training_from(from: &str, hook: &'h mut dyn FnMut(&str, LayerKind, Tensor) -> Tensor) -> Self {
        Fwd {
            train: false,
            train_from: Some(from.to_owned()),
            conv_input: None,
            stop_after: None,
            stopped: false,
            lrp: None,
            hook,
        }
    }

    /// Whether layer `name` runs in training mode (layers come in forward order).
    pub fn training(&mut self, name: &str) -> bool {
        if let Some(from) = &self.train_from {
            if name == from || name.strip_prefix(from.as_str()).is_some_and(|r| r.starts_with('.')) {
                self.train_from = None;
                self.train = true;
            }
        }
        self.train
    }
    /// The same, ending after layer `name`: the layers after it compute nothing.
    pub fn stopping_after(mut self, name: &str) -> Self {
        self.stop_after = Some(name.to_owned());
        self
    }

    /// Whether the layer to stop after is out: a layer then passes its input on.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// A residual connection, `y + skip`; once stopped, `y` alone (the two sides may
    /// differ in shape then: the layers that would have matched them computed nothing).
    pub fn residual(&self, y: &Tensor, skip: &Tensor) -> Tensor {
        if self.stopped {
            y.shallow_clone()
        } else if self.lrp.is_some() {
            lrp::norm(&(y + skip))
        } else {
            y + skip
        }
    }

    /// Adaptive average pooling to `side` x `side` (in a relevance forward, relevance is
    /// split in proportion to each input, as Zennit's `Norm` rule does).
    pub fn avg_pool(&self, x: &Tensor, side: i64) -> Tensor {
        let y = x.adaptive_avg_pool2d([side, side]);
        if self.lrp.is_some() && !self.stopped {
            lrp::norm(&y)
        } else {
            y
        }
    }

    pub fn emit(&mut self, name: &str, kind: LayerKind, t: Tensor) -> Tensor {
        if self.stopped {
            return t;
        }
        let t = (self.hook)(name, kind, t);
        if self.stop_after.as_deref() == Some(name) {
            self.stopped = true;
        }
        t
    }
}

/// A 2-D convolution; `same` = Some((kernel, stride)) pads like TensorFlow's "SAME"
/// from the input size at each forward (EfficientNet-Lite).
#[derive(Debug)]
pub struct Conv {
    pub name: String,
    conv: nn::Conv2D,
    same: Option<(i64, i64)>,
    /// Kernel side, stride, padding, groups as built.
    k: i64,
    stride: i64,
    pad: i64,
    groups: i64,
}

pub struct ConvSpec {
    pub cin: i64,
    pub cout: i64,
    pub k: i64,
    pub stride: i64,
    pub pad: i64,
    pub groups: i64,
    pub bias: bool,
}

impl Conv {
    pub fn new(p: &nn::Path, name: &str, s: ConvSpec) -> Self {
        let cfg = nn::ConvConfig {
            stride: s.stride,
            padding: s.pad,
            groups: s.groups,
            bias: s.bias,
            ..Default::default()
        };
        Conv {
            name: name.to_owned(),
            conv: nn::conv2d(child(p, name), s.cin, s.cout, s.k, cfg),
            same: None,
            k: s.k,
            stride: s.stride,
            pad: s.pad,
            groups: s.groups,
        }
    }

    /// A convolution with TensorFlow "SAME" padding and no bias.
    pub fn same(p: &nn::Path, name: &str, cin: i64, cout: i64, k: i64, stride: i64, groups: i64) -> Self {
        let mut c = Conv::new(
            p,
            name,
            ConvSpec {
                cin,
                cout,
                k,
                stride,
                pad: 0,
                groups,
                bias: false,
            },
        );
        c.same = Some((k, stride));
        c
    }

    /// Padding (left, right, top, bottom) for an input `x`: TensorFlow's "SAME" computed
    /// from its size, or the built padding.
    fn padding(&self, x: &Tensor) -> [i64; 4] {
        match self.same {
            Some((k, s)) => {
                let pad = |n: i64| (((n + s - 1) / s - 1) * s + k - n).max(0);
                let (ph, pw) = (pad(x.size()[2]), pad(x.size()[3]));
                [pw / 2, pw - pw / 2, ph / 2, ph - ph / 2]
            }
            None => [self.pad; 4],
        }
    }

    /// The convolution as a map other weights can go through (LRP's rules).
    fn op(&self, x: &Tensor) -> lrp::Op {
        lrp::Op::Conv {
            pad: self.padding(x),
            stride: self.stride,
            groups: self.groups,
        }
    }

    /// The convolution alone, as built.
    fn plain(&self, x: &Tensor) -> Tensor {
        let [l, r, t, b] = self.padding(x);
        if self.same.is_some() && (l > 0 || r > 0 || t > 0 || b > 0) {
            x.constant_pad_nd([l, r, t, b]).apply(&self.conv)
        } else {
            x.apply(&self.conv)
        }
    }

    pub fn fwd(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        if f.stopped() {
            return x.shallow_clone();
        }
        if let Some(hook) = f.conv_input.as_mut() {
            let [pad_left, _, pad_top, _] = self.padding(x);
            hook(
                &self.name,
                x,
                Geometry {
                    k: self.k,
                    stride: self.stride,
                    pad_top,
                    pad_left,
                    groups: self.groups,
                },
            );
        }
        let y = match f.lrp.as_mut() {
            Some(pass) => {
                let y = tch::no_grad(|| self.plain(x));
                let (w, b) = (self.conv.ws.detach(), self.conv.bs.as_ref().map(|b| b.detach()));
                pass.layer(&self.name, x, self.op(x), w, b, &y)
            }
            None => self.plain(x),
        };
        f.emit(&self.name, LayerKind::Conv, y)
    }

    /// The convolution and the batch norm after it. In a relevance forward they are one
    /// layer, the batch norm merged into the convolution (Zennit's canonizers do the same).
    pub fn fwd_bn(&self, bn: &Bn, x: &Tensor, f: &mut Fwd) -> Tensor {
        if f.lrp.is_none() || f.stopped() {
            let y = self.fwd(x, f);
            return bn.fwd(&y, f);
        }
        let (w, b) = tch::no_grad(|| {
            lrp::merge_batch_norm(
                &self.conv.ws.detach(),
                self.conv.bs.as_ref().map(|b| b.detach()).as_ref(),
                &bn.params(),
            )
        });
        // The true output, every hook on the way (a knocked-out channel included).
        let y = tch::no_grad(|| {
            let c = self.plain(x);
            let c = f.emit(&self.name, LayerKind::Conv, c);
            match f.lrp.as_ref() {
                Some(p) if p.canonized => self.op(x).apply(x, &w, Some(&b)),
                _ => c.apply_t(&bn.bn, false),
            }
        });
        let pass = f.lrp.as_mut().expect("a relevance forward");
        let y = pass.layer(&self.name, x, self.op(x), w, Some(b), &y);
        f.emit(&bn.name, LayerKind::BatchNorm, y)
    }
}

#[derive(Debug)]
pub struct Bn {
    pub name: String,
    bn: nn::BatchNorm,
    eps: f64,
}

impl Bn {
    pub fn new(p: &nn::Path, name: &str, dim: i64, eps: f64, momentum: f64) -> Self {
        let cfg = nn::BatchNormConfig {
            eps,
            momentum,
            ..Default::default()
        };
        Bn {
            name: name.to_owned(),
            bn: nn::batch_norm2d(child(p, name), dim, cfg),
            eps,
        }
    }

    /// Its parameters and statistics, detached (merging it into a convolution).
    fn params(&self) -> lrp::BatchNormParams {
        lrp::BatchNormParams {
            weight: self.bn.ws.as_ref().map(|t| t.detach()),
            bias: self.bn.bs.as_ref().map(|t| t.detach()),
            mean: self.bn.running_mean.detach(),
            var: self.bn.running_var.detach(),
            eps: self.eps,
        }
    }
    pub fn fwd(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        if f.stopped() {
            return x.shallow_clone();
        }
        let y = x.apply_t(&self.bn, f.training(&self.name));
        f.emit(&self.name, LayerKind::BatchNorm, y)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActFn {
    Relu,
    Relu6,
}

#[derive(Debug)]
pub struct Act {
    pub name: String,
    f: ActFn,
}

impl Act {
    pub fn new(name: impl Into<String>, f: ActFn) -> Self {
        Act { name: name.into(), f }
    }
    pub fn fwd(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        if f.stopped() {
            return x.shallow_clone();
        }
        let y = match self.f {
            ActFn::Relu => x.relu(),
            // at::relu6 = hardtanh(0, 6), as nn.ReLU6: no gradient at exactly 0 or 6.
            ActFn::Relu6 => x.relu6(),
        };
        // Relevance passes through unchanged (Zennit's `Pass`): for ReLU that is its own
        // gradient (1 where x > 0, where y = x), so only ReLU6 needs the rule.
        let y = if f.lrp.is_some() && self.f == ActFn::Relu6 {
            lrp::pass(x, &y)
        } else {
            y
        };
        f.emit(&self.name, LayerKind::Activation, y)
    }
}

#[derive(Debug)]
pub struct Linear {
    pub name: String,
    lin: nn::Linear,
}

impl Linear {
    pub fn new(p: &nn::Path, name: &str, cin: i64, cout: i64) -> Self {
        Linear {
            name: name.to_owned(),
            lin: nn::linear(child(p, name), cin, cout, Default::default()),
        }
    }
    pub fn fwd(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        if f.stopped() {
            return x.shallow_clone();
        }
        let y = match f.lrp.as_mut() {
            Some(pass) => {
                let y = tch::no_grad(|| x.apply(&self.lin));
                let (w, b) = (self.lin.ws.detach(), self.lin.bs.as_ref().map(|b| b.detach()));
                pass.layer(&self.name, x, lrp::Op::Linear, w, b, &y)
            }
            None => x.apply(&self.lin),
        };
        f.emit(&self.name, LayerKind::Linear, y)
    }
}

/// Dropout between layers (identity at inference); not traced, it changes nothing there.
pub fn dropout(x: Tensor, p: f64, f: &Fwd) -> Tensor {
    if f.train && p > 0.0 {
        x.dropout(p, true)
    } else {
        x
    }
}

/// Path with the dotted key of a child module (`features.3`, `_blocks.15`).
pub fn child<'a>(p: &nn::Path<'a>, name: &str) -> nn::Path<'a> {
    let mut parts = name.split('.');
    let first = parts.next().unwrap_or(name);
    parts.fold(p / first, |acc, part| &acc / part)
}

/// The name of a nested module: `prefix.name`, or `name` at the top.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}
