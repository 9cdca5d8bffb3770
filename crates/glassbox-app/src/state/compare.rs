//! Comparing two models: model A pinned (the current model is B), the last comparison on
//! the current image, a layer's filters in both, both per-class accuracies.

use glassbox_engine::session::{Compared, ComparedAccuracy};
use image::RgbImage;

#[derive(Default)]
pub struct Comparison {
    /// What model A is, in words (None: nothing pinned).
    pub pinned: Option<String>,
    /// A against B on the current image (its pictures are textures).
    pub result: Option<Compared>,
    /// The convolution whose kernels are shown for both, and both pictures.
    pub filters: Option<(String, RgbImage, RgbImage)>,
    pub accuracy: Option<ComparedAccuracy>,
    /// Where the last export went (or why it could not).
    pub exported: Option<String>,
}
