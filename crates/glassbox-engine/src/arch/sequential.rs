//! VGG-11/16 and AlexNet with torchvision key names: `features.N` and `classifier.N`,
//! where N is the module's index in the `nn.Sequential` (ReLU, pooling and dropout
//! modules take indices too, exactly as in PyTorch).

use tch::{nn, Tensor};

use super::net::Net;
use crate::layers::{dropout, Act, ActFn, Conv, ConvSpec, Fwd, LayerKind, Linear};

#[derive(Debug)]
enum Op {
    Conv(Conv),
    Relu(Act),
    MaxPool { name: String, k: i64, s: i64 },
    Linear(Linear),
    Dropout(f64),
}

#[derive(Debug)]
pub struct Sequential {
    features: Vec<Op>,
    pool: (String, i64),
    classifier: Vec<Op>,
}

/// VGG feature configurations: channel counts, 0 = max pool.
pub fn vgg_config(depth: u8) -> Option<&'static [i64]> {
    Some(match depth {
        11 => &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        13 => &[64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        16 => &[
            64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
        ],
        19 => &[
            64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0,
        ],
        _ => return None,
    })
}

fn head(p: &nn::Path, cin: i64, classes: i64, alexnet: bool) -> Vec<Op> {
    let n = |i: usize| format!("classifier.{i}");
    if alexnet {
        vec![
            Op::Dropout(0.5),
            Op::Linear(Linear::new(p, &n(1), cin, 4096)),
            Op::Relu(Act::new(n(2), ActFn::Relu)),
            Op::Dropout(0.5),
            Op::Linear(Linear::new(p, &n(4), 4096, 4096)),
            Op::Relu(Act::new(n(5), ActFn::Relu)),
            Op::Linear(Linear::new(p, &n(6), 4096, classes)),
        ]
    } else {
        vec![
            Op::Linear(Linear::new(p, &n(0), cin, 4096)),
            Op::Relu(Act::new(n(1), ActFn::Relu)),
            Op::Dropout(0.5),
            Op::Linear(Linear::new(p, &n(3), 4096, 4096)),
            Op::Relu(Act::new(n(4), ActFn::Relu)),
            Op::Dropout(0.5),
            Op::Linear(Linear::new(p, &n(6), 4096, classes)),
        ]
    }
}

impl Sequential {
    pub fn vgg(p: &nn::Path, depth: u8, classes: i64) -> Self {
        let mut features = Vec::new();
        let mut cin = 3;
        for &c in vgg_config(depth).unwrap_or(&[]) {
            let i = features.len();
            let name = format!("features.{i}");
            if c == 0 {
                features.push(Op::MaxPool { name, k: 2, s: 2 });
            } else {
                let spec = ConvSpec {
                    cin,
                    cout: c,
                    k: 3,
                    stride: 1,
                    pad: 1,
                    groups: 1,
                    bias: true,
                };
                features.push(Op::Conv(Conv::new(p, &name, spec)));
                features.push(Op::Relu(Act::new(format!("features.{}", i + 1), ActFn::Relu)));
                cin = c;
            }
        }
        Sequential {
            features,
            pool: ("avgpool".into(), 7),
            classifier: head(p, 512 * 49, classes, false),
        }
    }

    pub fn alexnet(p: &nn::Path, classes: i64) -> Self {
        let f = |i: usize| format!("features.{i}");
        let c = |i, cin, cout, k, stride, pad| {
            Op::Conv(Conv::new(
                p,
                &f(i),
                ConvSpec {
                    cin,
                    cout,
                    k,
                    stride,
                    pad,
                    groups: 1,
                    bias: true,
                },
            ))
        };
        let r = |i| Op::Relu(Act::new(f(i), ActFn::Relu));
        let m = |i| Op::MaxPool { name: f(i), k: 3, s: 2 };
        let features = vec![
            c(0, 3, 64, 11, 4, 2),
            r(1),
            m(2),
            c(3, 64, 192, 5, 1, 2),
            r(4),
            m(5),
            c(6, 192, 384, 3, 1, 1),
            r(7),
            c(8, 384, 256, 3, 1, 1),
            r(9),
            c(10, 256, 256, 3, 1, 1),
            r(11),
            m(12),
        ];
        Sequential {
            features,
            pool: ("avgpool".into(), 6),
            classifier: head(p, 256 * 36, classes, true),
        }
    }
}

fn run(ops: &[Op], mut x: Tensor, f: &mut Fwd) -> Tensor {
    for op in ops {
        x = match op {
            Op::Conv(c) => c.fwd(&x, f),
            Op::Relu(a) => a.fwd(&x, f),
            Op::MaxPool { name, k, s } => {
                let y = x.max_pool2d([*k, *k], [*s, *s], [0, 0], [1, 1], false);
                f.emit(name, LayerKind::Pool, y)
            }
            Op::Linear(l) => l.fwd(&x, f),
            Op::Dropout(p) => dropout(x, *p, f),
        }
    }
    x
}

impl Net for Sequential {
    fn forward(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        let x = run(&self.features, x.shallow_clone(), f);
        let s = self.pool.1;
        let x = f.emit(&self.pool.0, LayerKind::Pool, f.avg_pool(&x, s)).flatten(1, -1);
        run(&self.classifier, x, f)
    }
}
