//! ResNet-18/34/50 with torchvision key names (`conv1`, `layer1.0.conv1`, `fc`).

use tch::{nn, Tensor};

use super::net::Net;
use crate::layers::{join, Act, ActFn, Bn, Conv, ConvSpec, Fwd, LayerKind, Linear};

pub(crate) const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;

/// Blocks per stage and whether they are bottlenecks.
pub fn layout(depth: u8) -> Option<([usize; 4], bool)> {
    Some(match depth {
        18 => ([2, 2, 2, 2], false),
        34 => ([3, 4, 6, 3], false),
        50 => ([3, 4, 6, 3], true),
        101 => ([3, 4, 23, 3], true),
        152 => ([3, 8, 36, 3], true),
        _ => return None,
    })
}

fn conv(p: &nn::Path, name: &str, cin: i64, cout: i64, k: i64, stride: i64) -> Conv {
    Conv::new(
        p,
        name,
        ConvSpec {
            cin,
            cout,
            k,
            stride,
            pad: k / 2,
            groups: 1,
            bias: false,
        },
    )
}

#[derive(Debug)]
struct Block {
    name: String,
    convs: Vec<(Conv, Bn)>,
    acts: Vec<Act>,
    down: Option<(Conv, Bn, String)>,
}

#[derive(Debug)]
pub struct ResNet {
    conv1: Conv,
    bn1: Bn,
    relu: Act,
    blocks: Vec<Block>,
    fc: Linear,
}

impl ResNet {
    pub fn new(p: &nn::Path, depth: u8, classes: i64) -> Self {
        let (counts, bottleneck) = layout(depth).unwrap_or(([2, 2, 2, 2], false));
        let expansion = if bottleneck { 4 } else { 1 };
        let mut cin = 64;
        let mut blocks = Vec::new();
        for (stage, &n) in counts.iter().enumerate() {
            let width = 64 << stage;
            for i in 0..n {
                let name = format!("layer{}.{i}", stage + 1);
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let cout = width * expansion;
                let n = |s: &str| join(&name, s);
                let convs = if bottleneck {
                    vec![
                        (
                            conv(p, &n("conv1"), cin, width, 1, 1),
                            Bn::new(p, &n("bn1"), width, EPS, MOMENTUM),
                        ),
                        (
                            conv(p, &n("conv2"), width, width, 3, stride),
                            Bn::new(p, &n("bn2"), width, EPS, MOMENTUM),
                        ),
                        (
                            conv(p, &n("conv3"), width, cout, 1, 1),
                            Bn::new(p, &n("bn3"), cout, EPS, MOMENTUM),
                        ),
                    ]
                } else {
                    vec![
                        (
                            conv(p, &n("conv1"), cin, width, 3, stride),
                            Bn::new(p, &n("bn1"), width, EPS, MOMENTUM),
                        ),
                        (
                            conv(p, &n("conv2"), width, width, 3, 1),
                            Bn::new(p, &n("bn2"), width, EPS, MOMENTUM),
                        ),
                    ]
                };
                // torchvision reuses one `relu` module; repeated uses get `#2`, `#3`.
                // One use per conv; the last is after the residual add.
                let acts = (1..=convs.len())
                    .map(|j| {
                        Act::new(
                            if j == 1 {
                                n("relu")
                            } else {
                                format!("{}#{j}", n("relu"))
                            },
                            ActFn::Relu,
                        )
                    })
                    .collect();
                let down = (stride != 1 || cin != cout).then(|| {
                    (
                        conv(p, &n("downsample.0"), cin, cout, 1, stride),
                        Bn::new(p, &n("downsample.1"), cout, EPS, MOMENTUM),
                        n("downsample"),
                    )
                });
                blocks.push(Block {
                    name,
                    convs,
                    acts,
                    down,
                });
                cin = cout;
            }
        }
        ResNet {
            conv1: Conv::new(
                p,
                "conv1",
                ConvSpec {
                    cin: 3,
                    cout: 64,
                    k: 7,
                    stride: 2,
                    pad: 3,
                    groups: 1,
                    bias: false,
                },
            ),
            bn1: Bn::new(p, "bn1", 64, EPS, MOMENTUM),
            relu: Act::new("relu", ActFn::Relu),
            blocks,
            fc: Linear::new(p, "fc", cin, classes),
        }
    }
}

impl Net for ResNet {
    fn forward(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        let x = self.conv1.fwd_bn(&self.bn1, x, f);
        let x = self.relu.fwd(&x, f);
        let mut x = f.emit(
            "maxpool",
            LayerKind::Pool,
            x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false),
        );
        for b in &self.blocks {
            let mut y = x.shallow_clone();
            let last = b.convs.len() - 1;
            for (i, (c, bn)) in b.convs.iter().enumerate() {
                y = c.fwd_bn(bn, &y, f);
                if i < last {
                    y = b.acts[i].fwd(&y, f);
                }
            }
            let identity = match &b.down {
                Some((c, bn, name)) => {
                    let d = c.fwd_bn(bn, &x, f);
                    f.emit(name, LayerKind::Block, d)
                }
                None => x,
            };
            let y = f.residual(&y, &identity);
            let y = b.acts[last].fwd(&y, f);
            x = f.emit(&b.name, LayerKind::Block, y);
        }
        let x = f.emit("avgpool", LayerKind::Pool, f.avg_pool(&x, 1)).flatten(1, -1);
        self.fc.fwd(&x, f)
    }
}
