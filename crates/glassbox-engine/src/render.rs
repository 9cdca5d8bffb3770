//! Pictures of what the engine computes: saliency overlays, activation grids, filters.
//! Plain RGB images (the `image` crate); the UI uploads them, the CLI writes PNGs.

use image::{imageops, DynamicImage, Rgb, RgbImage};
use tch::{Device, Kind, Tensor};

use super::error::{Error, Result};
use super::explain::Method;
use super::inspect::{Channels, ReceptiveField};
pub use super::map::{attribution_map, Map};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colormap {
    Turbo,
    Inferno,
    Viridis,
    Magma,
    Gray,
    /// Diverging: blue (negative), white (zero), red (positive).
    RedBlue,
}

pub const COLORMAPS: &[&str] = &["turbo", "inferno", "viridis", "magma", "gray", "red-blue"];

/// Every colormap, in the order of [`COLORMAPS`].
pub const ALL_COLORMAPS: &[Colormap] = &[
    Colormap::Turbo,
    Colormap::Inferno,
    Colormap::Viridis,
    Colormap::Magma,
    Colormap::Gray,
    Colormap::RedBlue,
];

impl std::str::FromStr for Colormap {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "turbo" | "jet" => Colormap::Turbo,
            "inferno" => Colormap::Inferno,
            "viridis" => Colormap::Viridis,
            "magma" => Colormap::Magma,
            "gray" | "grey" => Colormap::Gray,
            "red-blue" | "rdbu" | "diverging" => Colormap::RedBlue,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown colormap `{s}`; choose one of: {}",
                    COLORMAPS.join(", ")
                )))
            }
        })
    }
}

impl Colormap {
    pub fn name(self) -> &'static str {
        COLORMAPS[ALL_COLORMAPS.iter().position(|c| *c == self).expect("listed")]
    }

    /// The standard colormap of a method: diverging for signed maps, turbo for CAMs.
    pub fn default_for(m: Method) -> Colormap {
        if m.is_signed() {
            Colormap::RedBlue
        } else if m.is_cam() {
            Colormap::Turbo
        } else {
            Colormap::Inferno
        }
    }
    pub fn is_diverging(self) -> bool {
        self == Colormap::RedBlue
    }
    /// Colour of t in [0, 1] (diverging: 0.5 is zero).
    pub fn color(self, t: f64) -> [u8; 3] {
        let t = t.clamp(0.0, 1.0);
        let c = match self {
            Colormap::Turbo => colorous::TURBO.eval_continuous(t),
            Colormap::Inferno => colorous::INFERNO.eval_continuous(t),
            Colormap::Viridis => colorous::VIRIDIS.eval_continuous(t),
            Colormap::Magma => colorous::MAGMA.eval_continuous(t),
            Colormap::Gray => colorous::GREYS.eval_continuous(1.0 - t),
            Colormap::RedBlue => colorous::RED_BLUE.eval_continuous(1.0 - t),
        };
        [c.r, c.g, c.b]
    }
}

/// Values scaled to [0, 1] with percentile clipping (diverging: 0.5 is zero).
pub fn normalise(map: &Map, diverging: bool, clip: f64) -> Vec<f64> {
    if diverging {
        let s = map.percentile(clip, true).max(1e-12) as f64;
        map.data
            .iter()
            .map(|&v| 0.5 + 0.5 * (v as f64 / s).clamp(-1.0, 1.0))
            .collect()
    } else {
        let lo = map.data.iter().copied().fold(f32::INFINITY, f32::min).min(0.0) as f64;
        let hi = map.percentile(clip, false) as f64;
        let span = (hi - lo).max(1e-12);
        map.data
            .iter()
            .map(|&v| ((v as f64 - lo) / span).clamp(0.0, 1.0))
            .collect()
    }
}

/// The map alone, coloured.
pub fn heatmap(map: &Map, cmap: Colormap, clip: f64) -> RgbImage {
    let n = normalise(map, cmap.is_diverging(), clip);
    RgbImage::from_fn(map.w as u32, map.h as u32, |x, y| {
        Rgb(cmap.color(n[y as usize * map.w + x as usize]))
    })
}

/// The map over the image the model saw. CAMs blend uniformly (pytorch-grad-cam style);
/// sparse maps blend in proportion to their strength so the picture shows through.
pub fn overlay(view: &DynamicImage, map: &Map, cmap: Colormap, opacity: f64, clip: f64, uniform: bool) -> RgbImage {
    let base = view.to_rgb8();
    let base = if (base.width() as usize, base.height() as usize) != (map.w, map.h) {
        imageops::resize(&base, map.w as u32, map.h as u32, imageops::FilterType::Triangle)
    } else {
        base
    };
    let n = normalise(map, cmap.is_diverging(), clip);
    let opacity = opacity.clamp(0.0, 1.0);
    RgbImage::from_fn(map.w as u32, map.h as u32, |x, y| {
        let v = n[y as usize * map.w + x as usize];
        let c = cmap.color(v);
        let strength = if uniform {
            1.0
        } else if cmap.is_diverging() {
            ((v - 0.5).abs() * 2.0).sqrt()
        } else {
            v.sqrt()
        };
        let a = opacity * strength;
        let p = base.get_pixel(x, y).0;
        Rgb([0, 1, 2].map(|i| (p[i] as f64 * (1.0 - a) + c[i] as f64 * a).round() as u8))
    })
}

/// Where the tiles of a channel grid are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridLayout {
    pub cols: usize,
    pub rows: usize,
    pub tile_w: usize,
    pub tile_h: usize,
    pub gap: usize,
}

impl GridLayout {
    /// The tile index (position in the order) under pixel (x, y) of the grid image, and
    /// the activation position (row, column) inside that tile at `scale` pixels per value.
    pub fn hit(&self, x: f32, y: f32, scale: usize) -> Option<(usize, usize, usize)> {
        if x < 0.0 || y < 0.0 {
            return None;
        }
        let (x, y) = (x as usize, y as usize);
        let (col, row) = (x / (self.tile_w + self.gap), y / (self.tile_h + self.gap));
        let (ix, iy) = (x % (self.tile_w + self.gap), y % (self.tile_h + self.gap));
        if col >= self.cols || row >= self.rows || ix >= self.tile_w || iy >= self.tile_h {
            return None;
        }
        Some((row * self.cols + col, iy / scale.max(1), ix / scale.max(1)))
    }
}

/// Pixels per activation value in a grid tile (tiles are about 64 pixels).
pub fn tile_scale(ch: &Channels) -> usize {
    (64 / ch.h.max(ch.w)).max(1)
}

/// A layer's channels as a grid of thumbnails in `ch.order` (largest mean first);
/// `shared` = one colour scale for all channels.
pub fn channel_grid(ch: &Channels, shared: bool, cmap: Colormap) -> (RgbImage, GridLayout) {
    let cols = ((ch.c as f64).sqrt().ceil() as usize).max(1);
    let rows = ch.c.div_ceil(cols);
    let scale = tile_scale(ch);
    let layout = GridLayout {
        cols,
        rows,
        tile_w: ch.w * scale,
        tile_h: ch.h * scale,
        gap: 2,
    };
    let (tw, th, gap) = (layout.tile_w, layout.tile_h, layout.gap);
    let mut img = RgbImage::from_pixel(
        ((tw + gap) * cols) as u32,
        ((th + gap) * rows) as u32,
        Rgb([40, 40, 40]),
    );
    let n = ch.h * ch.w;
    for (k, &(c, _)) in ch.order.iter().enumerate() {
        let v = &ch.data[c * n..(c + 1) * n];
        let (lo, hi) = if shared {
            (ch.min as f64, ch.max as f64)
        } else {
            let lo = v.iter().copied().fold(f32::INFINITY, f32::min) as f64;
            let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            (lo, hi)
        };
        let span = (hi - lo).max(1e-12);
        let (ox, oy) = ((k % cols) * (tw + gap), (k / cols) * (th + gap));
        for y in 0..th {
            for x in 0..tw {
                let val = v[(y / scale) * ch.w + x / scale] as f64;
                img.put_pixel((ox + x) as u32, (oy + y) as u32, Rgb(cmap.color((val - lo) / span)));
            }
        }
    }
    (img, layout)
}

/// How kernels with several input channels are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterMode {
    /// One tile per kernel, averaged over its input channels.
    Average,
    /// One row per output channel, one tile per input channel.
    PerInput,
}

/// Convolution kernels [out, in, k, k] as pictures: RGB when there are 3 input channels
/// (a first layer), else diverging gray-scale tiles (depthwise kernels have in = 1).
pub fn filter_grid(weight: &Tensor, mode: FilterMode, max_tiles: usize) -> Result<RgbImage> {
    let wt = weight.to_device(Device::Cpu).to_kind(Kind::Float);
    let s = wt.size();
    if s.len() != 4 {
        return Err(Error::invalid(format!("kernels must be [out, in, k, k], got {s:?}")));
    }
    let (out, cin, kh, kw) = (s[0], s[1], s[2], s[3]);
    if kh == 1 && kw == 1 && cin > 1 {
        return Ok(mixing_matrix(&wt.flatten(1, -1)));
    }
    let scale = (48 / kh.max(kw)).max(4);
    let (tw, th, gap) = (kw * scale, kh * scale, 2);
    let rgb = cin == 3;
    let (cols, rows, tiles): (i64, i64, Vec<(i64, Option<i64>)>) = if rgb || mode == FilterMode::Average || cin == 1 {
        let n = out.min(max_tiles as i64);
        let cols = (n as f64).sqrt().ceil() as i64;
        (cols, (n + cols - 1) / cols, (0..n).map(|o| (o, None)).collect())
    } else {
        let o = out.min((max_tiles as i64 / cin).max(1));
        let i = cin.min(max_tiles as i64);
        (
            i,
            o,
            (0..o).flat_map(|oo| (0..i).map(move |ii| (oo, Some(ii)))).collect(),
        )
    };
    let mut img = RgbImage::from_pixel(
        ((tw + gap) * cols) as u32,
        ((th + gap) * rows) as u32,
        Rgb([40, 40, 40]),
    );
    let cmap = Colormap::RedBlue;
    for (k, &(o, i)) in tiles.iter().enumerate() {
        let kernel = wt.get(o);
        let (ox, oy) = ((k as i64 % cols) * (tw + gap), (k as i64 / cols) * (th + gap));
        // Symmetric scale per kernel: zero is mid-gray (RGB) or white (diverging).
        let tile: Vec<[u8; 3]> = if rgb {
            let m = kernel.abs().max().double_value(&[]).max(1e-12);
            let v =
                Vec::<f32>::try_from(&kernel.permute([1, 2, 0]).contiguous().flatten(0, -1)).map_err(Error::from)?;
            v.chunks(3)
                .map(|p| [0, 1, 2].map(|c| ((0.5 + 0.5 * p[c] as f64 / m) * 255.0).round().clamp(0.0, 255.0) as u8))
                .collect()
        } else {
            let k2 = match i {
                Some(i) => kernel.get(i),
                None => kernel.mean_dim([0i64].as_slice(), false, Kind::Float),
            };
            let m = k2.abs().max().double_value(&[]).max(1e-12);
            let v = Vec::<f32>::try_from(&k2.contiguous().flatten(0, -1)).map_err(Error::from)?;
            v.iter().map(|&x| cmap.color(0.5 + 0.5 * x as f64 / m)).collect()
        };
        for y in 0..th {
            for x in 0..tw {
                img.put_pixel(
                    (ox + x) as u32,
                    (oy + y) as u32,
                    Rgb(tile[((y / scale) * kw + x / scale) as usize]),
                );
            }
        }
    }
    Ok(img)
}

/// A 1x1 convolution is a channel-mixing matrix: rows are output channels, columns
/// input channels, on one symmetric scale (red positive, blue negative).
fn mixing_matrix(m: &Tensor) -> RgbImage {
    let (rows, cols) = (m.size()[0], m.size()[1]);
    let scale = (512 / rows.max(cols)).clamp(1, 16);
    // A single row (one output channel's weights) is drawn at least 16 pixels tall.
    let scale_y = scale.max(16 / rows).max(1);
    let max = m.abs().max().double_value(&[]).max(1e-12);
    let v = Vec::<f32>::try_from(&m.contiguous().flatten(0, -1)).unwrap_or_default();
    RgbImage::from_fn((cols * scale) as u32, (rows * scale_y) as u32, |x, y| {
        let i = (y as i64 / scale_y) * cols + x as i64 / scale;
        let val = v.get(i as usize).copied().unwrap_or(0.0) as f64;
        Rgb(Colormap::RedBlue.color(0.5 + 0.5 * val / max))
    })
}

/// A 2-pixel rectangle outline.
pub fn draw_box(img: &mut RgbImage, (x0, y0, x1, y1): (usize, usize, usize, usize), c: [u8; 3]) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    for t in 0..2 {
        for x in x0..=x1.min(w - 1) {
            for y in [y0 + t, y1.saturating_sub(t)] {
                if y < h {
                    img.put_pixel(x as u32, y as u32, image::Rgb(c));
                }
            }
        }
        for y in y0..=y1.min(h - 1) {
            for x in [x0 + t, x1.saturating_sub(t)] {
                if x < w {
                    img.put_pixel(x as u32, y as u32, image::Rgb(c));
                }
            }
        }
    }
}

/// One channel of a layer drawn large (viridis) and over the input (inferno), at the
/// input's size: the app's channel view and `glassbox channel`.
pub fn channel_pictures(view: &DynamicImage, ch: &Channels, channel: usize) -> (RgbImage, RgbImage) {
    let big = ch
        .channel(channel)
        .resized(view.width() as usize, view.height() as usize);
    let heat = heatmap(&big, Colormap::Viridis, 1.0);
    let over = overlay(view, &big, Colormap::Inferno, 0.6, 1.0, false);
    (heat, over)
}

/// A receptive field over the input: the gradient's strength and the box of its support.
pub fn field_picture(view: &DynamicImage, field: &ReceptiveField) -> RgbImage {
    let mut pic = overlay(view, &field.map, Colormap::Inferno, 0.7, 0.995, false);
    if let Some(b) = field.bbox {
        draw_box(&mut pic, b, [255, 230, 0]);
    }
    pic
}

/// Saves a PNG atomically.
pub fn save_png(img: &RgbImage, path: &std::path::Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| Error::file(path, format!("cannot encode PNG: {e}")))?;
    super::files::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_zero_is_the_middle() {
        let m = Map {
            w: 3,
            h: 1,
            data: vec![-2.0, 0.0, 2.0],
        };
        let n = normalise(&m, true, 1.0);
        assert_eq!(n, [0.0, 0.5, 1.0]);
        assert_eq!(Colormap::RedBlue.color(0.5), Colormap::RedBlue.color(0.5));
        let red = Colormap::RedBlue.color(1.0);
        assert!(red[0] > red[2], "positive is red: {red:?}");
    }

    #[test]
    fn channel_grid_orders_by_mean_and_hits_find_tiles() {
        let a = Tensor::from_slice(&[0.0f32, 0.0, 0.0, 0.0, 5.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0]).view([1, 3, 2, 2]);
        let ch = Channels::from_tensor("x", &a).unwrap();
        assert_eq!(ch.order.iter().map(|o| o.0).collect::<Vec<_>>(), [1, 2, 0]);
        let (img, layout) = channel_grid(&ch, true, Colormap::Viridis);
        assert_eq!((layout.cols, layout.rows), (2, 2));
        assert_eq!(img.width() as usize, 2 * (layout.tile_w + layout.gap));
        let scale = tile_scale(&ch);
        // The first tile is the strongest channel, drawn at the top of the colour scale.
        assert_eq!(img.get_pixel(0, 0).0, Colormap::Viridis.color(1.0));
        // Second column, bottom-right value of its tile.
        let x = (layout.tile_w + layout.gap + layout.tile_w - 1) as f32;
        let y = (layout.tile_h - 1) as f32;
        assert_eq!(layout.hit(x, y, scale), Some((1, 1, 1)));
        // In the gap between tiles: nothing.
        assert_eq!(layout.hit(layout.tile_w as f32, 0.0, scale), None);
    }

    #[test]
    fn resized_map_keeps_constant_values() {
        let m = Map {
            w: 2,
            h: 2,
            data: vec![3.0; 4],
        };
        let r = m.resized(8, 6);
        assert_eq!((r.w, r.h, r.data.len()), (8, 6, 48));
        assert!(r.data.iter().all(|v| (v - 3.0).abs() < 1e-5));
    }

    fn map(w: usize, h: usize, data: &[f32]) -> Map {
        Map {
            w,
            h,
            data: data.to_vec(),
        }
    }

    #[test]
    fn a_map_from_a_tensor_is_row_major_and_two_dimensional() {
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]);
        let m = Map::from_tensor(&t).unwrap();
        assert_eq!((m.w, m.h, m.data), (3, 2, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let e = Map::from_tensor(&t.view([1, 2, 3])).unwrap_err().to_string();
        assert!(e.contains("a map must be 2-D, got [1, 2, 3]"), "{e}");
    }

    #[test]
    fn resizing_is_pytorchs_bilinear_without_aligned_corners() {
        let values: Vec<f32> = (0..35).map(|i| ((i * 7919) % 23) as f32 - 11.0).collect();
        let m = map(7, 5, &values);
        let t = Tensor::from_slice(&values).view([1, 1, 5, 7]);
        for (w, h) in [(224, 160), (3, 2), (7, 9), (20, 5)] {
            let r = m.resized(w, h);
            let want = t
                .upsample_bilinear2d([h as i64, w as i64], false, None, None)
                .view([-1]);
            let want = Vec::<f32>::try_from(&want).unwrap();
            assert_eq!((r.w, r.h, r.data.len()), (w, h, w * h));
            let worst = r
                .data
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-4, "{w}x{h}: off by {worst}");
        }
        assert_eq!(m.resized(7, 5).data, values, "same size: the same values");
    }

    #[test]
    fn a_percentile_is_the_rounded_rank_of_the_sorted_values() {
        let m = map(5, 1, &[3.0, -9.0, 1.0, 7.0, -2.0]);
        assert_eq!(m.percentile(0.0, false), -9.0);
        assert_eq!(m.percentile(1.0, false), 7.0);
        assert_eq!(m.percentile(0.5, false), 1.0);
        assert_eq!(m.percentile(0.6, false), 1.0, "rank 2.4 of 0-4 rounds to 2");
        assert_eq!(m.percentile(0.65, false), 3.0, "rank 2.6 rounds to 3");
        assert_eq!(m.percentile(1.0, true), 9.0);
        assert_eq!(m.percentile(0.25, true), 2.0);
        assert_eq!(map(0, 0, &[]).percentile(0.5, true), 0.0);
    }

    #[test]
    fn attribution_maps_per_kind_of_method() {
        let a = Tensor::from_slice(&[1.0f32, -4.0, 2.0, 0.5, -3.0, 1.0, 2.0, -1.0]).view([1, 2, 2, 2]);
        // Gradient: the largest |value| over channels.
        let m = attribution_map(&a, Method::Gradient, 2, 2).unwrap();
        assert_eq!(m.data, [3.0, 4.0, 2.0, 1.0]);
        // Signed: the channels' sum.
        let m = attribution_map(&a, Method::InputXGradient, 2, 2).unwrap();
        assert_eq!(m.data, [-2.0, -3.0, 4.0, -0.5]);
        // CAM: one channel upsampled to the input's size.
        let cam = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 3.0]).view([1, 1, 2, 2]);
        let m = attribution_map(&cam, Method::GradCam, 6, 4).unwrap();
        let want = cam.upsample_bilinear2d([6, 4], false, None, None).view([-1]);
        assert_eq!((m.w, m.h), (4, 6));
        assert_eq!(m.data, Vec::<f32>::try_from(&want).unwrap());
    }

    #[test]
    fn normalising_clips_at_the_percentile_from_zero_or_the_minimum() {
        // Unsigned: from min(0, lowest) to the clip percentile.
        let m = map(5, 1, &[1.0, 2.0, 3.0, 4.0, 100.0]);
        let n = normalise(&m, false, 0.75);
        assert_eq!(n, [0.25, 0.5, 0.75, 1.0, 1.0]);
        let m = map(3, 1, &[-2.0, 0.0, 6.0]);
        assert_eq!(normalise(&m, false, 1.0), [0.0, 0.25, 1.0]);
        // Diverging: zero in the middle, scaled by the clip percentile of |value|.
        let m = map(4, 1, &[-1.0, 0.5, 2.0, -8.0]);
        assert_eq!(normalise(&m, true, 0.5), [0.25, 0.625, 1.0, 0.0]);
        // All zero: no division by zero.
        assert_eq!(normalise(&map(2, 1, &[0.0, 0.0]), false, 1.0), [0.0, 0.0]);
        assert_eq!(normalise(&map(2, 1, &[0.0, 0.0]), true, 1.0), [0.5, 0.5]);
    }

    #[test]
    fn a_heatmap_colours_each_value() {
        let m = map(3, 2, &[0.0, 1.0, 2.0, 3.0, 4.0, 8.0]);
        let img = heatmap(&m, Colormap::Viridis, 1.0);
        assert_eq!(img.dimensions(), (3, 2));
        assert_eq!(img.get_pixel(0, 0).0, Colormap::Viridis.color(0.0));
        assert_eq!(img.get_pixel(1, 1).0, Colormap::Viridis.color(0.5));
        assert_eq!(img.get_pixel(2, 1).0, Colormap::Viridis.color(1.0));
        let img = heatmap(&map(2, 1, &[-1.0, 1.0]), Colormap::RedBlue, 1.0);
        assert_eq!(img.get_pixel(0, 0).0, Colormap::RedBlue.color(0.0));
    }

    #[test]
    fn an_overlay_blends_by_opacity_and_strength() {
        let view = DynamicImage::ImageRgb8(RgbImage::from_pixel(2, 1, Rgb([100, 50, 200])));
        let m = map(2, 1, &[0.25, 1.0]);
        let blend = |p: [u8; 3], c: [u8; 3], a: f64| {
            (0..3)
                .map(|i| (p[i] as f64 * (1.0 - a) + c[i] as f64 * a).round() as u8)
                .collect::<Vec<u8>>()
        };
        let base = [100, 50, 200];
        // Uniform (CAMs): the opacity everywhere.
        let img = overlay(&view, &m, Colormap::Turbo, 0.6, 1.0, true);
        assert_eq!(
            img.get_pixel(0, 0).0.to_vec(),
            blend(base, Colormap::Turbo.color(0.25), 0.6)
        );
        // Sparse maps: opacity times the square root of the value.
        let img = overlay(&view, &m, Colormap::Inferno, 0.8, 1.0, false);
        assert_eq!(
            img.get_pixel(0, 0).0.to_vec(),
            blend(base, Colormap::Inferno.color(0.25), 0.8 * 0.5)
        );
        assert_eq!(
            img.get_pixel(1, 0).0.to_vec(),
            blend(base, Colormap::Inferno.color(1.0), 0.8)
        );
        // Diverging: the square root of the distance from the middle.
        let m = map(2, 1, &[-1.0, 0.0]);
        let img = overlay(&view, &m, Colormap::RedBlue, 1.0, 1.0, false);
        assert_eq!(img.get_pixel(0, 0).0, Colormap::RedBlue.color(0.0));
        assert_eq!(img.get_pixel(1, 0).0, base, "zero leaves the picture");
        // Each pixel its own value, row by row.
        let square = DynamicImage::ImageRgb8(RgbImage::from_pixel(2, 2, Rgb([9, 9, 9])));
        let img = overlay(
            &square,
            &map(2, 2, &[0.0, 0.25, 0.5, 1.0]),
            Colormap::Viridis,
            1.0,
            1.0,
            true,
        );
        for (x, y, v) in [(0, 0, 0.0), (1, 0, 0.25), (0, 1, 0.5), (1, 1, 1.0)] {
            assert_eq!(img.get_pixel(x, y).0, Colormap::Viridis.color(v), "({x}, {y})");
        }
        // Opacity beyond 1 counts as 1; a view of another size is resized to the map's.
        let img = overlay(&view, &map(4, 2, &[1.0; 8]), Colormap::Magma, 3.0, 1.0, true);
        assert_eq!(img.dimensions(), (4, 2));
        assert_eq!(img.get_pixel(3, 1).0, Colormap::Magma.color(1.0));
    }
}
