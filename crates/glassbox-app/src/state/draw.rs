//! Draw a digit's slice of the state: the canvas.

/// Side of the drawing canvas, in the model's pixels (MNIST's 28).
pub const CANVAS: usize = 28;

/// A digit drawn by hand: white strokes on black, as in MNIST.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Intensity per pixel, 0 to 1, row by row.
    pub pixels: Vec<f32>,
    /// Brush radius in canvas pixels.
    pub brush: f32,
    pub erase: bool,
}

impl Default for Canvas {
    fn default() -> Self {
        Canvas {
            pixels: vec![0.0; CANVAS * CANVAS],
            brush: 1.4,
            erase: false,
        }
    }
}

impl Canvas {
    /// One dab of the brush at (x, y) in canvas pixels: a soft disc, as a pen stroke in MNIST.
    pub fn dab(&mut self, x: f32, y: f32) {
        let r = self.brush.max(0.3);
        let reach = (r + 1.5).ceil() as i64;
        for py in (y as i64 - reach)..=(y as i64 + reach) {
            for px in (x as i64 - reach)..=(x as i64 + reach) {
                if !(0..CANVAS as i64).contains(&px) || !(0..CANVAS as i64).contains(&py) {
                    continue;
                }
                let d = ((px as f32 + 0.5 - x).powi(2) + (py as f32 + 0.5 - y).powi(2)).sqrt();
                let a = (1.0 - (d - r).max(0.0) / 1.2).clamp(0.0, 1.0);
                let v = &mut self.pixels[py as usize * CANVAS + px as usize];
                *v = if self.erase { (*v - a).max(0.0) } else { v.max(a) };
            }
        }
    }

    /// A stroke from one point to the next, dabbed every half pixel.
    pub fn stroke(&mut self, from: (f32, f32), to: (f32, f32)) {
        let len = ((to.0 - from.0).powi(2) + (to.1 - from.1).powi(2)).sqrt();
        let n = (len * 2.0).ceil().max(1.0) as usize;
        for i in 0..=n {
            let t = i as f32 / n as f32;
            self.dab(from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.iter().all(|&v| v == 0.0)
    }

    /// The drawing as an image for the engine.
    pub fn image(&self) -> glassbox_engine::worker::ImageSource {
        let rgba = self
            .pixels
            .iter()
            .flat_map(|&v| {
                let g = (v * 255.0).round() as u8;
                [g, g, g, 255]
            })
            .collect();
        glassbox_engine::worker::ImageSource::Pixels {
            name: "your drawing".into(),
            width: CANVAS as u32,
            height: CANVAS as u32,
            rgba,
        }
    }
}
