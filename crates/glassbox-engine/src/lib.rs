//! Glassbox's engine: models, weights, preprocessing, the methods, editing, training, and
//! the files it writes (charts, the HTML report) and reads (lessons). It cannot name the UI:
//! egui is not among this crate's dependencies.

pub mod arch;
pub mod charts;
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
pub mod lesson;
pub mod map;
pub mod metrics;
pub mod model;
pub mod noise;
pub mod pickle;
pub mod preprocess;
pub mod render;
pub mod report;
pub mod samples;
pub mod train;
pub mod visualize;
pub mod weights;
pub mod worker;

pub use device::Device;
pub use error::{Error, Result};

/// The libtorch this build links (PyTorch's version string), for `glassbox --version`.
pub const LIBTORCH_VERSION: &str = env!("GLASSBOX_LIBTORCH_VERSION");
