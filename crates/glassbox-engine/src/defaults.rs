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

/// The layer whose channels are shown first: the last block at 14 pixels or more (else the
/// last spatial layer).
pub fn default_layer(layers: &[crate::model::LayerInfo]) -> Option<String> {
    let spatial: Vec<_> = layers.iter().filter(|l| is_spatial(&l.shape)).collect();
    let mid: Vec<_> = spatial.iter().filter(|l| l.shape[2] >= 14).collect();
    let pool = if mid.is_empty() { spatial.iter().collect() } else { mid };
    pool.iter()
        .rev()
        .find(|l| l.kind == crate::layers::LayerKind::Block)
        .or(pool.last())
        .map(|l| l.name.clone())
}

/// Images shown for what a channel wants to see (dataset examples).
pub const EXAMPLES: usize = 9;
