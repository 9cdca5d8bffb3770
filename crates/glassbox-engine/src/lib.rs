//! Glassbox's engine: models, weights, preprocessing, the methods, editing, training, and
//! the files it writes (charts, the HTML report) and reads (lessons). It cannot name the UI:
//! egui is not among this crate's dependencies.
//!
//! Its front door is [`session::Session`]: a model, an image and what the user did to them,
//! with a method per job. The command line calls it directly; [`worker::Engine`] runs one on
//! its own thread for the app. The modules below are the session's types and the tools the
//! command line's batch jobs use; helpers only the engine needs are private to it.

pub mod arch;
pub mod charts;
pub mod compare;
pub mod convolution;
pub mod data;
pub mod defaults;
pub(crate) mod device;
pub mod edit;
pub mod error;
pub mod evaluate;
pub mod examples;
pub mod explain;
pub mod export;
pub mod files;
pub mod finetune;
pub mod gridsolve;
pub mod guard;
pub mod inspect;
pub(crate) mod layers;
pub mod layout;
pub mod lesson;
pub mod lrp;
pub(crate) mod map;
pub mod metrics;
pub mod model;
pub(crate) mod noise;
pub(crate) mod pickle;
pub mod preprocess;
pub mod render;
pub mod report;
pub mod road;
pub mod samples;
pub mod score;
pub mod session;
pub mod train;
pub mod visualize;
pub mod weights;
pub mod worker;

pub use device::Device;
pub use error::{Error, Result};

/// The libtorch this build links (PyTorch's version string), for `glassbox --version`.
pub const LIBTORCH_VERSION: &str = env!("GLASSBOX_LIBTORCH_VERSION");
