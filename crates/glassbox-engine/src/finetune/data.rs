//! The first phase: labelled images read for the model, split into training and validation
//! images per class, and augmented while training.

use std::path::PathBuf;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

use crate::data::{self};
use crate::error::{Error, Result};
use crate::preprocess::{self, Preprocess};

use super::settings::DataSource;

/// Labelled images read for a model: u8 [N, C, S, S] as its preprocessing makes them.
pub struct Data {
    pub classes: Vec<String>,
    pub images: Tensor,
    pub labels: Vec<usize>,
    pub files: Vec<Option<PathBuf>>,
    pub skipped: Vec<String>,
    /// sha256 over every image's class, name and bytes (a folder) or the data set's name and
    /// the images taken (a bundled set).
    pub fingerprint: String,
    pub source: String,
}

/// At most this many bytes of images held for a run.
/// (A run holds them twice: as read, and split into training and validation images.)
pub(super) const MAX_DATA_BYTES: i64 = 2 << 30;

/// Reads the labelled images of `source` for `model`'s preprocessing. Unreadable files are
/// skipped (listed); empty classes, a single class and too much data are refused.
pub fn read_data(model_pre: &Preprocess, source: &DataSource, per_class: usize) -> Result<Data> {
    let c = model_pre.channels();
    let s = model_pre.size as i64;
    let per_image = c * s * s;
    match source {
        DataSource::Folder(dir) => {
            // A folder of images without class sub-folders is one class, named by the folder.
            let subs = match preprocess::class_folders(dir, "named by its label") {
                Ok(s) => s,
                Err(_) if dir.is_dir() && preprocess::images_in(dir).is_ok_and(|v| !v.is_empty()) => {
                    vec![dir.clone()]
                }
                Err(e) => return Err(e),
            };
            let mut lists = Vec::new();
            for sub in &subs {
                let mut imgs = preprocess::images_in(sub)?;
                if per_class > 0 {
                    imgs.truncate(per_class);
                }
                if imgs.is_empty() {
                    return Err(Error::file(
                        sub,
                        "holds no images (png, jpg, webp, gif, bmp, tiff); add some or remove the folder",
                    ));
                }
                lists.push(imgs);
            }
            let total: usize = lists.iter().map(Vec::len).sum();
            check_data_bytes(total as i64 * per_image)?;
            use sha2::Digest;
            let mut hash = sha2::Sha256::new();
            let mut classes = Vec::new();
            let mut views = Vec::new();
            let mut labels = Vec::new();
            let mut files = Vec::new();
            let mut skipped = Vec::new();
            for (k, (sub, imgs)) in subs.iter().zip(lists).enumerate() {
                let name = sub
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let before = labels.len();
                for f in imgs {
                    let read = preprocess::max_image_bytes();
                    let bytes = match crate::files::read_file(&f, read) {
                        Ok(b) => b,
                        Err(e) => {
                            skipped.push(e.to_string());
                            continue;
                        }
                    };
                    match preprocess::decode(&bytes, &f) {
                        Ok(img) => {
                            hash.update(name.as_bytes());
                            hash.update(
                                f.file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default(),
                            );
                            hash.update(&bytes);
                            views.push(view_tensor(model_pre, &img));
                            labels.push(k);
                            files.push(Some(f));
                        }
                        Err(e) => skipped.push(e.to_string()),
                    }
                }
                if labels.len() == before {
                    return Err(Error::file(
                        sub,
                        "has no image that could be read; see the files skipped",
                    ));
                }
                classes.push(name);
            }
            Ok(Data {
                classes,
                images: Tensor::stack(&views, 0),
                labels,
                files,
                skipped,
                fingerprint: format!("sha256:{:x}", hash.finalize()),
                source: dir.display().to_string(),
            })
        }
        DataSource::Dataset(name) => {
            let d = data::load(*name, &data::data_dir())?;
            let labels_all = Vec::<i64>::try_from(&d.train.labels).map_err(Error::from)?;
            let mut count = [0usize; 10];
            let mut take = Vec::new();
            for (i, l) in labels_all.iter().enumerate() {
                let l = *l as usize;
                if l < 10 && (per_class == 0 || count[l] < per_class) {
                    count[l] += 1;
                    take.push(i as i64);
                }
            }
            check_data_bytes(take.len() as i64 * per_image)?;
            let idx = Tensor::from_slice(&take);
            let raw = d.train.images.index_select(0, &idx);
            let direct = model_pre.gray && s == raw.size()[2] && model_pre.resize == preprocess::Resize::Squash;
            let images = if direct {
                raw
            } else {
                let n = raw.size()[0];
                let views: Vec<Tensor> = (0..n)
                    .map(|i| -> Result<Tensor> {
                        let px = Vec::<u8>::try_from(&raw.get(i).flatten(0, -1)).map_err(Error::from)?;
                        let (h, w) = (raw.size()[2] as u32, raw.size()[3] as u32);
                        let img = image::GrayImage::from_raw(w, h, px)
                            .ok_or_else(|| Error::invalid("a data set image has the wrong size"))?;
                        Ok(view_tensor(model_pre, &image::DynamicImage::ImageLuma8(img)))
                    })
                    .collect::<Result<_>>()?;
                Tensor::stack(&views, 0)
            };
            let labels: Vec<usize> = take.iter().map(|&i| labels_all[i as usize] as usize).collect();
            use sha2::Digest;
            let mut hash = sha2::Sha256::new();
            hash.update(name.as_str());
            for i in &take {
                hash.update(i.to_le_bytes());
            }
            Ok(Data {
                classes: name.labels(),
                files: vec![None; labels.len()],
                images,
                labels,
                skipped: Vec::new(),
                fingerprint: format!("sha256:{:x}", hash.finalize()),
                source: name.as_str().to_string(),
            })
        }
    }
}

pub(super) fn check_data_bytes(bytes: i64) -> Result<()> {
    if bytes > MAX_DATA_BYTES {
        return Err(Error::invalid(format!(
            "the images would take {:.1} GiB as the model sees them, more than the {} GiB a run may hold; take fewer images per class",
            bytes as f64 / (1u64 << 30) as f64,
            MAX_DATA_BYTES >> 30
        )));
    }
    Ok(())
}

/// u8 [C, S, S]: the image as the model sees it, before normalisation.
pub(super) fn view_tensor(p: &Preprocess, img: &image::DynamicImage) -> Tensor {
    let v = p.view(img);
    let (w, h) = (v.width() as i64, v.height() as i64);
    let raw = if p.gray {
        v.to_luma8().into_raw()
    } else {
        v.to_rgb8().into_raw()
    };
    Tensor::from_slice(&raw)
        .view([h, w, p.channels()])
        .permute([2, 0, 1])
        .contiguous()
}

/// A u8 [C, S, S] tensor as a picture.
pub fn picture(t: &Tensor) -> Result<image::DynamicImage> {
    let (c, h, w) = (t.size()[0], t.size()[1] as u32, t.size()[2] as u32);
    let raw = Vec::<u8>::try_from(&t.permute([1, 2, 0]).contiguous().flatten(0, -1)).map_err(Error::from)?;
    let bad = || Error::invalid("an image of the wrong size");
    Ok(if c == 1 {
        image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, raw).ok_or_else(bad)?)
    } else {
        image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, raw).ok_or_else(bad)?)
    })
}

/// The training and validation indices: per class, a seeded shuffle, `split` held out.
pub(super) fn split(data: &Data, split: f64, seed: i64) -> Result<(Vec<i64>, Vec<i64>)> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed as u64);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (k, name) in data.classes.iter().enumerate() {
        let mut idx: Vec<i64> = (0..data.labels.len())
            .filter(|&i| data.labels[i] == k)
            .map(|i| i as i64)
            .collect();
        if split > 0.0 && idx.len() < 2 {
            return Err(Error::invalid(format!(
                "class `{name}` has {} image(s): holding out a validation split needs at least 2 per class (add images, or use a validation split of 0)",
                idx.len()
            )));
        }
        idx.shuffle(&mut rng);
        let mut n_val = (idx.len() as f64 * split).round() as usize;
        if split > 0.0 {
            n_val = n_val.clamp(1, idx.len() - 1);
        }
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort();
    val.sort();
    Ok((train, val))
}

/// Random horizontal flips and crops (padding by an eighth, reflected) of a float batch.
pub(super) fn augment(x: &Tensor) -> Result<Tensor> {
    let (n, s) = (x.size()[0], x.size()[3]);
    let pad = (s / 8).max(1);
    let flip = Vec::<f32>::try_from(&Tensor::rand([n], (Kind::Float, Device::Cpu)))?;
    let offs = Vec::<i64>::try_from(&Tensor::randint(2 * pad + 1, [n * 2], (Kind::Int64, Device::Cpu)))?;
    let padded = x.reflection_pad2d([pad, pad, pad, pad]);
    let parts: Vec<Tensor> = (0..n)
        .map(|i| {
            let (dy, dx) = (offs[2 * i as usize], offs[2 * i as usize + 1]);
            let p = padded.get(i).narrow(1, dy, s).narrow(2, dx, s);
            if flip[i as usize] < 0.5 {
                p.flip([2])
            } else {
                p
            }
        })
        .collect();
    Ok(Tensor::stack(&parts, 0))
}
