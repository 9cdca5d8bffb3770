//! The engine: models, weights, preprocessing, training. It knows nothing of the UI.

pub mod arch;
pub mod bench;
pub mod convolution;
pub mod data;
pub mod defaults;
pub mod device;
pub mod edit;
pub mod error;
pub mod evaluate;
pub mod examples;
pub mod explain;
pub mod files;
pub mod finetune;
pub mod guard;
pub mod inspect;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod pickle;
pub mod preprocess;
pub mod render;
pub mod train;
pub mod visualize;
pub mod weights;
pub mod worker;

pub use device::Device;
pub use error::{Error, Result};
