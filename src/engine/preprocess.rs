//! Images to model inputs. Preprocessing belongs to the model: input size, resize and
//! crop policy, channel count and normalisation.

use std::io::Cursor;
use std::path::Path;

use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageReader};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::error::{read_file, Error, Result};

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
}

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

/// Decodes image bytes, honouring JPEG/TIFF EXIF orientation.
pub fn decode(bytes: &[u8], path: &Path) -> Result<DynamicImage> {
    if bytes.is_empty() {
        return Err(Error::file(
            path,
            format!("is empty (0 bytes); expected an image ({FORMATS})"),
        ));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::file(path, e.to_string()))?;
    if reader.format().is_none() {
        return Err(Error::file(
            path,
            format!("is not an image Glassbox can read (expected {FORMATS})"),
        ));
    }
    let bad = |e: image::ImageError| {
        Error::file(
            path,
            format!("cannot decode the image ({e}); the file may be truncated or damaged"),
        )
    };
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder.orientation().map_err(bad)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    Ok(img)
}

pub fn load_image(path: &Path) -> Result<DynamicImage> {
    let bytes = read_file(path)?;
    decode(&bytes, path)
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
                let (w, h) = (img.width().max(1), img.height().max(1));
                let (nw, nh) = if w <= h {
                    (resize, ((resize as u64 * h as u64) / w as u64).max(1) as u32)
                } else {
                    (((resize as u64 * w as u64) / h as u64).max(1) as u32, resize)
                };
                let r = img.resize_exact(nw, nh, FilterType::Triangle);
                let (cw, ch) = (s.min(nw), s.min(nh));
                let left = ((nw - cw) as f64 / 2.0).round() as u32;
                let top = ((nh - ch) as f64 / 2.0).round() as u32;
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
}
