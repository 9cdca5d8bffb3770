//! MobileNetV2 with torchvision key names (`features.0.0`, `features.3.conv.1.0`, `classifier.1`).

use tch::{nn, Tensor};

use super::net::Net;
use crate::layers::{dropout, join, Act, ActFn, Bn, Conv, ConvSpec, Fwd, LayerKind, Linear};

pub(crate) const EPS: f64 = 1e-5;
const MOMENTUM: f64 = 0.1;
/// (expand t, channels c, repeats n, stride s)
const SETTINGS: [(i64, i64, i64, i64); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Conv + BN + ReLU6 as torchvision's `Conv2dNormActivation` (`.0`, `.1`, `.2`).
#[derive(Debug)]
struct Cba {
    name: String,
    conv: Conv,
    bn: Bn,
    act: Act,
}

impl Cba {
    fn new(p: &nn::Path, name: &str, cin: i64, cout: i64, k: i64, stride: i64, groups: i64) -> Self {
        let spec = ConvSpec {
            cin,
            cout,
            k,
            stride,
            pad: (k - 1) / 2,
            groups,
            bias: false,
        };
        Cba {
            name: name.to_owned(),
            conv: Conv::new(p, &join(name, "0"), spec),
            bn: Bn::new(p, &join(name, "1"), cout, EPS, MOMENTUM),
            act: Act::new(join(name, "2"), ActFn::Relu6),
        }
    }
    fn fwd(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        let y = self.conv.fwd_bn(&self.bn, x, f);
        let y = self.act.fwd(&y, f);
        f.emit(&self.name, LayerKind::Block, y)
    }
}

#[derive(Debug)]
struct Block {
    name: String,
    cbas: Vec<Cba>,
    project: Conv,
    bn: Bn,
    residual: bool,
}

#[derive(Debug)]
pub struct MobileNetV2 {
    stem: Cba,
    blocks: Vec<Block>,
    last: Cba,
    fc: Linear,
}

impl MobileNetV2 {
    pub fn new(p: &nn::Path, classes: i64) -> Self {
        let stem = Cba::new(p, "features.0", 3, 32, 3, 2, 1);
        let mut cin = 32;
        let mut blocks = Vec::new();
        for (t, c, n, s) in SETTINGS {
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let name = format!("features.{}", blocks.len() + 1);
                let hidden = cin * t;
                let mut cbas = Vec::new();
                if t != 1 {
                    cbas.push(Cba::new(p, &format!("{name}.conv.0"), cin, hidden, 1, 1, 1));
                }
                cbas.push(Cba::new(
                    p,
                    &format!("{name}.conv.{}", cbas.len()),
                    hidden,
                    hidden,
                    3,
                    stride,
                    hidden,
                ));
                let j = cbas.len();
                let pspec = ConvSpec {
                    cin: hidden,
                    cout: c,
                    k: 1,
                    stride: 1,
                    pad: 0,
                    groups: 1,
                    bias: false,
                };
                let project = Conv::new(p, &format!("{name}.conv.{j}"), pspec);
                let bn = Bn::new(p, &format!("{name}.conv.{}", j + 1), c, EPS, MOMENTUM);
                blocks.push(Block {
                    residual: stride == 1 && cin == c,
                    name,
                    cbas,
                    project,
                    bn,
                });
                cin = c;
            }
        }
        let last = Cba::new(p, &format!("features.{}", blocks.len() + 1), cin, 1280, 1, 1, 1);
        MobileNetV2 {
            stem,
            blocks,
            last,
            fc: Linear::new(p, "classifier.1", 1280, classes),
        }
    }
}

impl Net for MobileNetV2 {
    fn forward(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        let mut x = self.stem.fwd(x, f);
        for b in &self.blocks {
            let mut y = x.shallow_clone();
            for c in &b.cbas {
                y = c.fwd(&y, f);
            }
            y = b.project.fwd_bn(&b.bn, &y, f);
            if b.residual {
                y = f.residual(&y, &x); // not in place: the traced BN output shares y
            }
            x = f.emit(&b.name, LayerKind::Block, y);
        }
        let x = self.last.fwd(&x, f);
        let x = f.emit("avgpool", LayerKind::Pool, f.avg_pool(&x, 1)).flatten(1, -1);
        let x = dropout(x, 0.2, f);
        self.fc.fwd(&x, f)
    }
}
