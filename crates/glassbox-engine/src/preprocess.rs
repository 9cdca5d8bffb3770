//! Images to model inputs. Preprocessing belongs to the model: input size, resize and
//! crop policy, channel count and normalisation.

use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::error::{Error, Result};
use super::files::read_file;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    /// Resize the shorter side to `resize`, then crop the centre `size` x `size`.
    ShorterSideThenCrop { resize: u32 },
    /// Squash the whole image to `size` x `size`.
    Squash,
}

/// How an image becomes the model's input tensor. `mean`/`std` are in pixel units (0-255).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    pub size: u32,
    pub resize: Resize,
    pub gray: bool,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Preprocess {
    pub fn imagenet(size: u32) -> Self {
        Preprocess {
            size,
            resize: Resize::ShorterSideThenCrop {
                resize: (size as f64 / 0.875).round() as u32,
            },
            gray: false,
            mean: vec![0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
            std: vec![0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
        }
    }
    /// EfficientNet-Lite: (pixel - 127) / 128.
    pub fn efficientnet_lite(size: u32) -> Self {
        Preprocess {
            mean: vec![127.0; 3],
            std: vec![128.0; 3],
            ..Preprocess::imagenet(size)
        }
    }
    /// 28x28 grayscale, (pixel - 127.5) / 127.5, white strokes on black as in MNIST.
    pub fn digits(size: u32) -> Self {
        Preprocess {
            size,
            resize: Resize::Squash,
            gray: true,
            mean: vec![127.5],
            std: vec![127.5],
        }
    }
    pub fn channels(&self) -> i64 {
        if self.gray {
            1
        } else {
            3
        }
    }

    /// The range of each normalised channel, pixel 0 and pixel 255: two [1, C, 1, 1]
    /// tensors on the CPU.
    pub fn input_range(&self) -> (Tensor, Tensor) {
        let c = self.channels() as usize;
        let per = |pixel: f64| {
            let vals: Vec<f32> = (0..c)
                .map(|i| {
                    let (m, s) = (
                        self.mean[i.min(self.mean.len() - 1)],
                        self.std[i.min(self.std.len() - 1)],
                    );
                    ((pixel - m) / s) as f32
                })
                .collect();
            Tensor::from_slice(&vals).view([1, c as i64, 1, 1])
        };
        (per(0.0), per(255.0))
    }

    /// Checks preprocessing read from a file against the model it belongs to, naming the
    /// field and the value that is wrong. Nothing unchecked reaches libtorch.
    pub fn validate(&self, in_channels: i64) -> Result<()> {
        let field = |f: &str, msg: String| Err(Error::invalid(format!("preprocessing `{f}` {msg}")));
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return field(
                "size",
                format!("is {}; it must be between {MIN_SIZE} and {MAX_SIZE} pixels", self.size),
            );
        }
        if let Resize::ShorterSideThenCrop { resize } = self.resize {
            if !(MIN_SIZE..=2 * MAX_SIZE).contains(&resize) {
                return field(
                    "resize",
                    format!("is {resize}; it must be between {MIN_SIZE} and {} pixels", 2 * MAX_SIZE),
                );
            }
        }
        if self.channels() != in_channels {
            return field(
                "gray",
                format!(
                    "is {} ({} input channel{}), but the model's first convolution takes {in_channels}",
                    self.gray,
                    self.channels(),
                    if self.gray { "" } else { "s" }
                ),
            );
        }
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if v.len() as i64 != in_channels {
                return field(
                    name,
                    format!(
                        "has {} values {v:?}; the model has {in_channels} input channel(s), one value each",
                        v.len()
                    ),
                );
            }
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return field(name, format!("holds {x}; every value must be a finite number"));
            }
        }
        if let Some(x) = self.std.iter().find(|x| **x <= 0.0) {
            return field(
                "std",
                format!("holds {x}; every value must be greater than 0 (it divides)"),
            );
        }
        Ok(())
    }
}

/// Input sides a model may declare, in pixels.
pub const MIN_SIZE: u32 = 8;
pub const MAX_SIZE: u32 = 4096;

/// A decoded image: the original (EXIF orientation applied) and what the model sees.
#[derive(Debug)]
pub struct Prepared {
    /// The crop the model sees, as 8-bit pixels (RGB or gray), `size` x `size`.
    pub view: DynamicImage,
    /// [1, C, size, size] normalised f32.
    pub tensor: Tensor,
    pub original_size: (u32, u32),
}

const FORMATS: &str = "PNG, JPEG, WebP, GIF, BMP or TIFF";

/// File name endings of the images Glassbox reads.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"];

/// The images of a folder (by their name's ending), sorted.
pub fn images_in(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| {
            f.is_file()
                && f.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The class sub-folders of a labelled folder (ImageFolder), sorted; none is an error that
/// says how such a folder looks (`how_named`: how its sub-folders must be named).
pub fn class_folders(dir: &Path, how_named: &str) -> Result<Vec<std::path::PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::file(
            dir,
            "is not a folder; give a folder with one sub-folder of images per class",
        ));
    }
    let mut subs: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subs.sort();
    if subs.is_empty() {
        return Err(Error::file(
            dir,
            format!("holds no class folders; give a folder with one sub-folder of images per class, {how_named}"),
        ));
    }
    Ok(subs)
}

/// The most pixels an image may have by default: 16384 x 16384 (268 megapixels).
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 16384 * 16384;

static MAX_IMAGE_PIXELS: AtomicU64 = AtomicU64::new(DEFAULT_MAX_IMAGE_PIXELS);

/// Sets the largest image (in pixels) Glassbox decodes, for the whole process
/// (`--max-image-pixels`). Decoding may allocate 4 bytes per pixel, at least 1 GiB.
pub fn set_max_image_pixels(pixels: u64) {
    MAX_IMAGE_PIXELS.store(pixels.max(1), Ordering::Relaxed);
}

pub fn max_image_pixels() -> u64 {
    MAX_IMAGE_PIXELS.load(Ordering::Relaxed)
}

/// Bytes a decoder may allocate: 4 per allowed pixel, at least 1 GiB.
pub fn max_image_bytes() -> u64 {
    max_image_pixels().saturating_mul(4).max(1 << 30)
}

/// A pixel count as people read it: "1.2 megapixels" or "1000 pixels".
fn pixels_text(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1} megapixels", n as f64 / 1e6)
    } else {
        format!("{n} pixels")
    }
}

/// Refuses an image whose declared size is over the limits, before any pixel is decoded.
pub fn check_image_size(width: u32, height: u32, bytes: u64, path: &Path) -> Result<()> {
    let pixels = width as u64 * height as u64;
    let max = max_image_pixels();
    if pixels > max {
        return Err(Error::file(
            path,
            format!(
                "the image declares {width}x{height} pixels ({}); Glassbox opens images of at most {} (pass --max-image-pixels to raise the limit)",
                pixels_text(pixels),
                pixels_text(max)
            ),
        ));
    }
    let max_bytes = max_image_bytes();
    if bytes > max_bytes {
        return Err(Error::file(
            path,
            format!(
                "the {width}x{height} image needs {:.1} GiB to decode, more than the {:.1} GiB allowed (pass --max-image-pixels to raise the limit)",
                bytes as f64 / (1u64 << 30) as f64,
                max_bytes as f64 / (1u64 << 30) as f64
            ),
        ));
    }
    Ok(())
}

/// Decodes image bytes, honouring JPEG/TIFF EXIF orientation. The size the file declares is
/// checked against the limits before anything is decoded, and the decoder runs under
/// `image`'s allocation limit.
pub fn decode(bytes: &[u8], path: &Path) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(Error::file(
            path,
            format!("is empty (0 bytes); expected an image ({FORMATS})"),
        ));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::file(path, e.to_string()))?;
    if reader.format().is_none() {
        return Err(Error::file(
            path,
            format!("is not an image Glassbox can read (expected {FORMATS})"),
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_image_bytes());
    reader.limits(limits);
    let bad = |e: image::ImageError| {
        let what = match e {
            image::ImageError::Limits(_) => "it needs more memory than Glassbox allows for an image".to_string(),
            e => e.to_string(),
        };
        Error::file(
            path,
            format!("cannot decode the image ({what}); the file may be truncated or damaged"),
        )
    };
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let (w, h) = decoder.dimensions();
    check_image_size(w, h, decoder.total_bytes(), path)?;
    let orientation = decoder.orientation().map_err(bad)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    Ok(img)
}

pub fn load_image(path: &Path) -> Result<DynamicImage> {
    // A compressed image is smaller than its pixels; the pixel limit bounds the file too.
    let bytes = read_file(path, max_image_bytes())?;
    decode(&bytes, path)
}

/// The longest side kept before the shorter side is resized, in multiples of the shorter.
/// Only the centre of a long picture reaches the crop; resizing all of it first made a
/// 432-byte PNG of 60000x2 pixels (found by the `image` fuzz target in its slowest input) an
/// intermediate of 6.7 million by 256 pixels: 6.4 GB and two minutes for one prediction.
pub const MAX_SIDE_RATIO: u32 = 4;

/// The centre of a picture whose long side is more than [`MAX_SIDE_RATIO`] times its short
/// one, cut to that ratio; any other picture as it is. What the centre crop sees is the
/// same up to a fraction of a pixel (the scale along the long side is unchanged).
fn centre_of_long_side(img: DynamicImage) -> DynamicImage {
    let (w, h) = (img.width(), img.height());
    let keep = |long: u32, short: u32| (short.max(1) as u64 * MAX_SIDE_RATIO as u64).min(long as u64) as u32;
    if w as u64 > h.max(1) as u64 * MAX_SIDE_RATIO as u64 {
        let k = keep(w, h);
        img.crop_imm((w - k) / 2, 0, k, h)
    } else if h as u64 > w.max(1) as u64 * MAX_SIDE_RATIO as u64 {
        let k = keep(h, w);
        img.crop_imm(0, (h - k) / 2, w, k)
    } else {
        img
    }
}

impl Preprocess {
    /// The crop the model sees (8-bit RGB or gray, `size` x `size`).
    pub fn view(&self, img: &DynamicImage) -> DynamicImage {
        let img = if self.gray {
            DynamicImage::ImageLuma8(img.to_luma8())
        } else {
            DynamicImage::ImageRgb8(img.to_rgb8())
        };
        let s = self.size;
        match self.resize {
            Resize::Squash => img.resize_exact(s, s, FilterType::Triangle),
            Resize::ShorterSideThenCrop { resize } => {
                let img = centre_of_long_side(img);
                let (w, h) = (img.width().max(1), img.height().max(1));
                let (nw, nh) = if w <= h {
                    (resize, ((resize as u64 * h as u64) / w as u64).max(1) as u32)
                } else {
                    (((resize as u64 * w as u64) / h as u64).max(1) as u32, resize)
                };
                let r = img.resize_exact(nw, nh, FilterType::Triangle);
                let (cw, ch) = (s.min(nw), s.min(nh));
                // Half a pixel rounds to even, as torchvision's CenterCrop (Python's round).
                let left = ((nw - cw) as f64 / 2.0).round_ties_even() as u32;
                let top = ((nh - ch) as f64 / 2.0).round_ties_even() as u32;
                let c = r.crop_imm(left, top, cw, ch);
                if cw == s && ch == s {
                    c
                } else {
                    c.resize_exact(s, s, FilterType::Triangle)
                }
            }
        }
    }

    /// The normalised [1, C, H, W] tensor of a view from [`Preprocess::view`].
    pub fn to_tensor(&self, view: &DynamicImage) -> Tensor {
        let (w, h) = (view.width() as i64, view.height() as i64);
        let c = self.channels();
        let raw: Vec<u8> = if self.gray {
            view.to_luma8().into_raw()
        } else {
            view.to_rgb8().into_raw()
        };
        let t = Tensor::from_slice(&raw)
            .view([h, w, c])
            .permute([2, 0, 1])
            .to_kind(Kind::Float);
        let mean = Tensor::from_slice(&self.mean).to_kind(Kind::Float).view([c, 1, 1]);
        let std = Tensor::from_slice(&self.std).to_kind(Kind::Float).view([c, 1, 1]);
        ((t - mean) / std).unsqueeze(0)
    }

    pub fn prepare(&self, img: &DynamicImage) -> Prepared {
        let view = self.view(img);
        let tensor = self.to_tensor(&view);
        Prepared {
            view,
            tensor,
            original_size: (img.width(), img.height()),
        }
    }

    pub fn prepare_file(&self, path: &Path) -> Result<Prepared> {
        Ok(self.prepare(&load_image(path)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorter_side_then_centre_crop() {
        let img = DynamicImage::new_rgb8(400, 300);
        let p = Preprocess::imagenet(224);
        let v = p.view(&img);
        assert_eq!((v.width(), v.height()), (224, 224));
        assert_eq!(p.to_tensor(&v).size(), [1, 3, 224, 224]);
    }

    /// The old path: the whole picture resized, then the centre cropped.
    fn resized_then_cropped(img: &DynamicImage, resize: u32, s: u32) -> image::RgbImage {
        let (w, h) = (img.width(), img.height());
        let (nw, nh) = if w <= h {
            (resize, ((resize as u64 * h as u64) / w as u64) as u32)
        } else {
            (((resize as u64 * w as u64) / h as u64) as u32, resize)
        };
        let r = img.resize_exact(nw, nh, FilterType::Triangle);
        let left = ((nw - s) as f64 / 2.0).round_ties_even() as u32;
        let top = ((nh - s) as f64 / 2.0).round_ties_even() as u32;
        r.crop_imm(left, top, s, s).to_rgb8()
    }

    #[test]
    fn a_long_picture_is_cut_to_its_centre_first_and_the_crop_is_the_same() {
        // Smooth content (what photos are at this scale), 25:1 and 1:25.
        let wide = DynamicImage::ImageRgb8(image::RgbImage::from_fn(2500, 100, |x, y| {
            let v = |f: f64| (127.0 + 120.0 * f.sin()) as u8;
            image::Rgb([v(x as f64 / 37.0), v(y as f64 / 11.0), v((x + y) as f64 / 23.0)])
        }));
        let p = Preprocess::imagenet(224);
        let Resize::ShorterSideThenCrop { resize } = p.resize else {
            panic!("ImageNet preprocessing resizes the shorter side")
        };
        for img in [wide.clone(), wide.rotate90()] {
            let new = p.view(&img).to_rgb8();
            let old = resized_then_cropped(&img, resize, 224);
            let diffs: Vec<i32> = new
                .as_raw()
                .iter()
                .zip(old.as_raw())
                .map(|(a, b)| (*a as i32 - *b as i32).abs())
                .collect();
            let max = *diffs.iter().max().unwrap();
            let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
            assert!(
                max <= 6 && mean < 1.0,
                "{}x{}: max {max}, mean {mean}",
                img.width(),
                img.height()
            );
        }
        // The fuzz finding: 60000x2 now costs a 8x2 cut, not 6.7 million by 256 pixels.
        let cut = centre_of_long_side(DynamicImage::new_rgb8(60_000, 2));
        assert_eq!((cut.width(), cut.height()), (8, 2));
        assert_eq!(p.view(&DynamicImage::new_rgb8(60_000, 2)).width(), 224);
        // Pictures up to the ratio are untouched.
        let four = centre_of_long_side(DynamicImage::new_rgb8(400, 100));
        assert_eq!((four.width(), four.height()), (400, 100));
    }

    #[test]
    fn gray_and_rgba_and_16_bit_inputs() {
        let p = Preprocess::efficientnet_lite(224);
        for img in [
            DynamicImage::new_luma8(50, 60),
            DynamicImage::new_rgba8(50, 60),
            DynamicImage::new_rgb16(50, 60),
            DynamicImage::new_luma_a16(10, 600),
        ] {
            assert_eq!(p.prepare(&img).tensor.size(), [1, 3, 224, 224]);
        }
        let d = Preprocess::digits(28).prepare(&DynamicImage::new_rgb8(100, 80));
        assert_eq!(d.tensor.size(), [1, 1, 28, 28]);
        // black pixels map to -1
        assert!((d.tensor.min().double_value(&[]) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn not_an_image_and_truncated_png() {
        let e = decode(b"hello, I am text", Path::new("a.txt")).unwrap_err().to_string();
        assert!(e.contains("a.txt") && e.contains("not an image"), "{e}");
        let mut png = Vec::new();
        DynamicImage::new_rgb8(64, 64)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png.truncate(png.len() / 2);
        let e = decode(&png, Path::new("t.png")).unwrap_err().to_string();
        assert!(e.contains("t.png") && e.contains("cannot decode"), "{e}");
    }

    #[test]
    fn the_presets_are_torchvisions_and_the_papers() {
        let p = Preprocess::imagenet(224);
        assert_eq!(p.resize, Resize::ShorterSideThenCrop { resize: 256 });
        assert_eq!((p.size, p.gray, p.channels()), (224, false, 3));
        assert_eq!(p.mean, [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0]);
        assert_eq!(p.std, [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0]);
        assert_eq!(
            Preprocess::imagenet(240).resize,
            Resize::ShorterSideThenCrop { resize: 274 }
        );
        let l = Preprocess::efficientnet_lite(280);
        assert_eq!(
            (l.size, l.mean.clone(), l.std.clone()),
            (280, vec![127.0; 3], vec![128.0; 3])
        );
        assert_eq!(l.resize, Resize::ShorterSideThenCrop { resize: 320 });
        let d = Preprocess::digits(28);
        assert_eq!((d.size, d.resize, d.gray, d.channels()), (28, Resize::Squash, true, 1));
        assert_eq!((d.mean.clone(), d.std.clone()), (vec![127.5], vec![127.5]));
    }

    #[test]
    fn validation_names_the_wrong_field_at_each_bound() {
        let ok = Preprocess::imagenet(224);
        assert!(ok.validate(3).is_ok());
        let err = |p: &Preprocess, c: i64| p.validate(c).unwrap_err().to_string();
        for (size, good) in [(7, false), (8, true), (4096, true), (4097, false)] {
            let p = Preprocess {
                size,
                resize: Resize::Squash,
                ..ok.clone()
            };
            assert_eq!(p.validate(3).is_ok(), good, "size {size}");
            if !good {
                assert!(err(&p, 3).contains(&format!("`size` is {size}; it must be between 8 and 4096")));
            }
        }
        for (resize, good) in [(7, false), (8, true), (8192, true), (8193, false)] {
            let p = Preprocess {
                resize: Resize::ShorterSideThenCrop { resize },
                ..ok.clone()
            };
            assert_eq!(p.validate(3).is_ok(), good, "resize {resize}");
            if !good {
                assert!(err(&p, 3).contains(&format!("`resize` is {resize}; it must be between 8 and 8192")));
            }
        }
        let e = err(&ok, 1);
        assert!(
            e.contains("`gray` is false (3 input channels), but the model's first convolution takes 1"),
            "{e}"
        );
        let e = err(&Preprocess::digits(28), 3);
        assert!(e.contains("`gray` is true (1 input channel), but"), "{e}");
        let short = Preprocess {
            mean: vec![1.0, 2.0],
            ..ok.clone()
        };
        assert!(err(&short, 3).contains("`mean` has 2 values [1.0, 2.0]; the model has 3 input channel(s)"));
        let short = Preprocess {
            std: vec![1.0; 4],
            ..ok.clone()
        };
        assert!(err(&short, 3).contains("`std` has 4 values"));
        let nan = Preprocess {
            mean: vec![1.0, f64::NAN, 2.0],
            ..ok.clone()
        };
        assert!(err(&nan, 3).contains("`mean` holds NaN; every value must be a finite number"));
        let inf = Preprocess {
            std: vec![1.0, 1.0, f64::INFINITY],
            ..ok.clone()
        };
        assert!(err(&inf, 3).contains("`std` holds inf"));
        for (v, good) in [(0.0, false), (-1.0, false), (1e-9, true)] {
            let p = Preprocess {
                std: vec![1.0, v, 1.0],
                ..ok.clone()
            };
            assert_eq!(p.validate(3).is_ok(), good, "std {v}");
            if !good {
                assert!(err(&p, 3).contains(&format!("`std` holds {v}; every value must be greater than 0")));
            }
        }
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("glassbox-pre-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_folders_images_by_their_ending_sorted_and_its_class_folders() {
        let d = temp_dir("folders");
        for f in ["b.PNG", "a.jpg", "c.txt", "d.tiff", "e", "f.webp.bak"] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        std::fs::create_dir(d.join("z.png")).unwrap();
        let names: Vec<String> = images_in(&d)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.jpg", "b.PNG", "d.tiff"]);
        std::fs::create_dir(d.join("cat")).unwrap();
        let subs = class_folders(&d, "named by label").unwrap();
        assert_eq!(subs, [d.join("cat"), d.join("z.png")]);
        let e = class_folders(&d.join("a.jpg"), "x").unwrap_err().to_string();
        assert!(e.contains("is not a folder"), "{e}");
        let empty = d.join("cat");
        let e = class_folders(&empty, "named by label").unwrap_err().to_string();
        assert!(
            e.contains("holds no class folders") && e.contains("named by label"),
            "{e}"
        );
        assert!(images_in(&d.join("missing")).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_limits_in_pixels_and_bytes() {
        // The process-wide limit: other tests decode pictures of at most 64x64 meanwhile,
        // so it never goes below a megapixel here, and it ends at its default.
        set_max_image_pixels(1_000_000);
        assert_eq!(
            (max_image_pixels(), max_image_bytes()),
            (1_000_000, 1 << 30),
            "at least 1 GiB"
        );
        set_max_image_pixels(2 * DEFAULT_MAX_IMAGE_PIXELS);
        assert_eq!(max_image_bytes(), 8 * DEFAULT_MAX_IMAGE_PIXELS, "4 bytes per pixel");
        set_max_image_pixels(DEFAULT_MAX_IMAGE_PIXELS);
        assert_eq!(max_image_pixels(), 16384 * 16384);
        assert_eq!(max_image_bytes(), 1 << 30, "4 bytes per pixel, at least 1 GiB");
        assert_eq!(pixels_text(999_999), "999999 pixels");
        assert_eq!(pixels_text(1_000_000), "1.0 megapixels");
        assert_eq!(pixels_text(268_435_456), "268.4 megapixels");
        let p = Path::new("big.png");
        assert!(check_image_size(16384, 16384, 1 << 30, p).is_ok());
        let e = check_image_size(16384, 16385, 1 << 30, p).unwrap_err().to_string();
        assert!(
            e.contains("declares 16384x16385 pixels (268.5 megapixels)") && e.contains("at most 268.4 megapixels"),
            "{e}"
        );
        let e = check_image_size(100, 100, (1 << 30) + 1, p).unwrap_err().to_string();
        assert!(
            e.contains("the 100x100 image needs 1.0 GiB to decode, more than the 1.0 GiB"),
            "{e}"
        );
        let e = decode(b"", Path::new("nothing.png")).unwrap_err().to_string();
        assert!(e.contains("nothing.png") && e.contains("is empty (0 bytes)"), "{e}");
    }

    #[test]
    fn a_picture_is_cut_to_four_to_one_at_its_centre() {
        let ramp = |w: u32, h: u32| {
            DynamicImage::ImageLuma8(image::GrayImage::from_fn(w, h, |x, y| {
                image::Luma([((x + 3 * y) % 256) as u8])
            }))
        };
        let same = centre_of_long_side(ramp(400, 100));
        assert_eq!((same.width(), same.height()), (400, 100));
        let cut = centre_of_long_side(ramp(1001, 100));
        assert_eq!((cut.width(), cut.height()), (400, 100));
        assert_eq!(
            cut.to_luma8().get_pixel(0, 0).0[0],
            (300 % 256) as u8,
            "from column 300"
        );
        let cut = centre_of_long_side(ramp(100, 1000));
        assert_eq!((cut.width(), cut.height()), (100, 400));
        assert_eq!(
            cut.to_luma8().get_pixel(0, 0).0[0],
            ((3 * 300) % 256) as u8,
            "from row 300"
        );
        let same = centre_of_long_side(ramp(100, 400));
        assert_eq!((same.width(), same.height()), (100, 400));
    }

    fn smooth(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            let v = |f: f64| (127.0 + 120.0 * f.sin()) as u8;
            image::Rgb([v(x as f64 / 7.0), v(y as f64 / 5.0), v((x * y) as f64 / 300.0)])
        }))
    }

    #[test]
    fn the_view_is_the_shorter_side_resized_then_the_centre_rounded_half_to_even() {
        let p = Preprocess::imagenet(224);
        // Landscape, portrait, and odd margins (257 - 224 = 33: the left edge is 16, not 17).
        for (w, h) in [(300, 200), (200, 300), (257, 256), (256, 257)] {
            let img = smooth(w, h);
            let got = p.view(&img).to_rgb8();
            assert!(got == resized_then_cropped(&img, 256, 224), "{w}x{h}");
        }
        // A resize below the size: the crop is as much as there is of each side (up to the
        // size), scaled to the size.
        let small = Preprocess {
            resize: Resize::ShorterSideThenCrop { resize: 100 },
            ..p.clone()
        };
        let img = smooth(150, 300);
        let got = small.view(&img);
        assert_eq!((got.width(), got.height()), (224, 224));
        let r = img.resize_exact(100, 200, FilterType::Triangle);
        let expected = r.crop_imm(0, 0, 100, 200).resize_exact(224, 224, FilterType::Triangle);
        assert!(got.to_rgb8() == expected.to_rgb8(), "a resize below the size");
        let img = smooth(300, 150);
        let r = img.resize_exact(200, 100, FilterType::Triangle);
        let expected = r.crop_imm(0, 0, 200, 100).resize_exact(224, 224, FilterType::Triangle);
        assert!(
            small.view(&img).to_rgb8() == expected.to_rgb8(),
            "landscape, below the size"
        );
        // Squash: the whole picture, any shape.
        let d = Preprocess::digits(28);
        let img = smooth(90, 30);
        assert!(d.view(&img).to_luma8() == img.to_luma8().pipe_squash(), "squashed");
    }

    trait Squash {
        fn pipe_squash(self) -> image::GrayImage;
    }
    impl Squash for image::GrayImage {
        fn pipe_squash(self) -> image::GrayImage {
            DynamicImage::ImageLuma8(self)
                .resize_exact(28, 28, FilterType::Triangle)
                .to_luma8()
        }
    }

    #[test]
    fn the_tensor_is_each_channels_pixel_less_its_mean_over_its_std() {
        let p = Preprocess {
            size: 6,
            resize: Resize::Squash,
            gray: false,
            mean: vec![10.0, 20.0, 30.0],
            std: vec![2.0, 4.0, 8.0],
        };
        let view = smooth(6, 4);
        let t = p.to_tensor(&view);
        assert_eq!(t.size(), [1, 3, 4, 6]);
        let rgb = view.to_rgb8();
        for (x, y) in [(0, 0), (5, 1), (2, 3)] {
            for c in 0..3 {
                let want = (rgb.get_pixel(x, y).0[c] as f64 - p.mean[c]) / p.std[c];
                let got = t.double_value(&[0, c as i64, y as i64, x as i64]);
                assert!((got - want).abs() < 1e-5, "({x}, {y}) channel {c}: {got} vs {want}");
            }
        }
        let d = Preprocess::digits(28);
        let prep = d.prepare(&smooth(50, 40));
        assert_eq!(prep.original_size, (50, 40));
        let px = prep.view.to_luma8().get_pixel(3, 7).0[0] as f64;
        assert!((prep.tensor.double_value(&[0, 0, 7, 3]) - (px - 127.5) / 127.5).abs() < 1e-6);
    }

    #[test]
    fn a_file_is_read_and_prepared() {
        let d = temp_dir("file");
        let path = d.join("p.png");
        smooth(64, 48).save(&path).unwrap();
        let p = Preprocess::imagenet(32);
        let prep = p.prepare_file(&path).unwrap();
        assert_eq!(prep.original_size, (64, 48));
        assert!(prep.tensor.equal(&p.prepare(&smooth(64, 48)).tensor));
        let e = p.prepare_file(&d.join("none.png")).unwrap_err().to_string();
        assert!(e.contains("none.png"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
