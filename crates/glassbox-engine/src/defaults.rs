//! Defaults the command line and the app share, in one place so that both show the same
//! thing for the same request.

/// Points on the deletion and insertion curves (fractions of the pixels, 0 to 1).
pub const FAITHFULNESS_STEPS: usize = 50;
/// At most this many tiles in a picture of a convolution's kernels.
pub const FILTER_TILES: usize = 256;
/// At most this many tiles in the picture of one channel's kernel.
pub const KERNEL_TILES: usize = 64;
/// Attribution maps are scaled so that this percentile of |map| is full colour.
pub const OVERLAY_CLIP: f64 = 0.99;
/// How opaque a map is over the input.
pub const OVERLAY_OPACITY: f64 = 0.5;
/// Classes shown in a prediction.
pub const TOP_K: usize = 5;

/// A layer whose output is a picture larger than one pixel ([N, C, H, W], H > 1): the layers
/// the CAM methods can look at, and the default layer for them is the last of these.
pub fn is_spatial(shape: &[i64]) -> bool {
    shape.len() == 4 && shape[2] > 1
}

/// A layer whose output has channels of a picture ([N, C, H, W]): the layers whose
/// activations can be shown as a grid.
pub fn has_channels(shape: &[i64]) -> bool {
    shape.len() == 4
}

/// Validation images shown for one cell of a confusion matrix.
pub const CELL_IMAGES: usize = 12;

/// Images shown for what a channel wants to see (dataset examples).
pub const EXAMPLES: usize = 9;
