//! The memory layout of a model's convolutions. On the CPU, oneDNN's convolutions are
//! faster in channels-last (NHWC) than in the standard layout (NCHW): about half the time
//! of a whole-network fine-tuning run, and 0.65x the time of a Lite0 forward at batch 16
//! (BENCHMARKS.md). The values are the same; sums may run in another order (float
//! rounding). Not measured on a GPU, so only used on the CPU.

use tch::Tensor;

use crate::model::Model;

/// A 4-D tensor with the same values in channels-last (`true`) or the standard layout.
pub fn in_layout(t: &Tensor, channels_last: bool) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    if channels_last {
        t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        t.contiguous()
    }
}

/// Every 4-D weight of `m` (the convolutions' kernels) in channels-last or the standard
/// layout; the convolutions' outputs follow their kernels' layout.
pub fn set_channels_last(m: &Model, channels_last: bool) {
    tch::no_grad(|| {
        for (_, mut v) in m.vs.variables() {
            if v.dim() == 4 {
                let t = in_layout(&v, channels_last);
                v.set_data(&t);
            }
        }
    });
}
