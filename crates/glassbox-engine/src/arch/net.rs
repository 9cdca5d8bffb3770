//! What every architecture is to the rest of the engine.

use std::fmt;

use tch::Tensor;

use crate::layers::Fwd;

/// A network whose forward reports every layer through the hook in [`Fwd`].
pub trait Net: Send + fmt::Debug {
    fn forward(&self, x: &Tensor, f: &mut Fwd) -> Tensor;
}
