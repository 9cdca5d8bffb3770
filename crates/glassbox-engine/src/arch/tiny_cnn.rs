//! A small CNN for 28x28 grayscale digits and clothes, trained by Glassbox itself.
//! conv1 -> bn1 -> relu1 -> pool1 -> conv2 -> bn2 -> relu2 -> pool2 -> fc1 -> relu3 -> fc2

use tch::{nn, Tensor};

use super::net::Net;
use crate::layers::{dropout, Act, ActFn, Bn, Conv, ConvSpec, Fwd, LayerKind, Linear};

pub const SIZE: i64 = 28;

#[derive(Debug)]
pub struct TinyCnn {
    conv1: Conv,
    bn1: Bn,
    relu1: Act,
    conv2: Conv,
    bn2: Bn,
    relu2: Act,
    fc1: Linear,
    relu3: Act,
    fc2: Linear,
}

impl TinyCnn {
    pub fn new(p: &nn::Path, in_channels: i64, classes: i64) -> Self {
        let c = |name: &str, cin, cout| {
            Conv::new(
                p,
                name,
                ConvSpec {
                    cin,
                    cout,
                    k: 3,
                    stride: 1,
                    pad: 1,
                    groups: 1,
                    bias: false,
                },
            )
        };
        TinyCnn {
            conv1: c("conv1", in_channels, 16),
            bn1: Bn::new(p, "bn1", 16, 1e-5, 0.1),
            relu1: Act::new("relu1", ActFn::Relu),
            conv2: c("conv2", 16, 32),
            bn2: Bn::new(p, "bn2", 32, 1e-5, 0.1),
            relu2: Act::new("relu2", ActFn::Relu),
            fc1: Linear::new(p, "fc1", 32 * 7 * 7, 128),
            relu3: Act::new("relu3", ActFn::Relu),
            fc2: Linear::new(p, "fc2", 128, classes),
        }
    }
}

impl Net for TinyCnn {
    fn forward(&self, x: &Tensor, f: &mut Fwd) -> Tensor {
        let x = self.conv1.fwd_bn(&self.bn1, x, f);
        let x = self.relu1.fwd(&x, f);
        let x = f.emit("pool1", LayerKind::Pool, x.max_pool2d_default(2));
        let x = self.conv2.fwd_bn(&self.bn2, &x, f);
        let x = self.relu2.fwd(&x, f);
        let x = f.emit("pool2", LayerKind::Pool, x.max_pool2d_default(2)).flatten(1, -1);
        let x = self.fc1.fwd(&x, f);
        let x = self.relu3.fwd(&x, f);
        let x = dropout(x, 0.25, f);
        self.fc2.fwd(&x, f)
    }
}
