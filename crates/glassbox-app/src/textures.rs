//! The pictures on screen as GPU textures, uploaded only when their picture changes.

use std::collections::HashMap;

use image::RgbImage;

/// A texture that is uploaded only when its picture changes.
#[derive(Default)]
pub struct Tex {
    pub handle: Option<egui::TextureHandle>,
    pub size: [usize; 2],
}

impl Tex {
    fn set(&mut self, ctx: &egui::Context, name: &str, img: &RgbImage, smooth: bool) {
        let size = [img.width() as usize, img.height() as usize];
        let color = egui::ColorImage::from_rgb(size, img.as_raw());
        let opts = if smooth {
            egui::TextureOptions::LINEAR
        } else {
            egui::TextureOptions::NEAREST
        };
        match &mut self.handle {
            Some(h) => h.set(color, opts),
            None => self.handle = Some(ctx.load_texture(name, color, opts)),
        }
        self.size = size;
    }

    pub fn clear(&mut self) {
        self.handle = None;
    }
}

/// Which picture a texture shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Which {
    Input,
    Field,
    Slot(usize),
    Grid,
    Channel,
    ChannelOverlay,
    Kernel,
    Filters,
    /// Image n of the confusion cell shown.
    Cell(usize),
    /// The image grown for a channel or a class.
    Visual,
    /// Image n of the top images of a channel.
    Example(usize),
    /// A slot's sanity check: map n (0: the trained model's, then each randomisation).
    Sanity(usize, usize),
    /// The comparison: picture n (0: A's map, 1: B's, 2: B - A).
    Compare(usize),
    /// The comparison: a convolution's kernels in A (0) and B (1).
    CompareFilters(usize),
}

/// Every texture of the window, with a count of uploads (a test checks that steady frames
/// upload nothing).
#[derive(Default)]
pub struct Textures {
    map: HashMap<Which, Tex>,
    pub uploads: usize,
}

impl Textures {
    pub fn set(&mut self, ctx: &egui::Context, which: Which, img: &RgbImage) {
        // Pictures of data (grids, kernels) stay sharp when zoomed; photos are smoothed.
        let smooth = matches!(
            which,
            Which::Input | Which::Field | Which::Slot(_) | Which::ChannelOverlay | Which::Compare(_)
        );
        let name = format!("{which:?}");
        self.map.entry(which).or_default().set(ctx, &name, img, smooth);
        self.uploads += 1;
    }

    pub fn get(&self, which: Which) -> Option<&Tex> {
        self.map.get(&which).filter(|t| t.handle.is_some())
    }

    pub fn clear(&mut self, which: Which) {
        if let Some(t) = self.map.get_mut(&which) {
            t.clear();
        }
    }

    pub fn remove(&mut self, which: Which) {
        self.map.remove(&which);
    }
}
