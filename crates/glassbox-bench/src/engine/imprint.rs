//! `--imprint DIR`: how well imprinting teaches new classes, Glassbox's calibration beside the
//! plain baseline (each new row the normalised mean feature scaled to the old rows' mean norm,
//! its bias the old biases' mean), on MNIST digits added to an ImageNet model as new classes:
//! every pair of digits and all ten at once, from `train` digits each, tested on the whole
//! test set, while photos must keep their top-1 class; and the trade-off when the new
//! classes' biases move.

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use glassbox_engine::data::{self, DatasetName};
use glassbox_engine::error::Result;
use glassbox_engine::finetune::{self as ft, DataSource};
use glassbox_engine::model::Model;

/// One calibration on one set of new classes.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Per new class, the share of its test images classified as that class.
    pub recall: Vec<f64>,
    /// The share of the new classes' test images classified as their own class.
    pub accuracy: f64,
    /// The share sent to any new class rather than an old one.
    pub to_new: f64,
    /// Photos whose top-1 class is still the original model's.
    pub photos_kept: usize,
    /// The smallest gap (logits) between a photo's best old class and its best new one.
    pub photo_margin: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PairSummary {
    pub pairs: usize,
    /// Mean and smallest per-class recall over all pairs.
    pub mean_recall: f64,
    pub min_recall: f64,
    /// Pairs where both classes reach 95 %.
    pub pairs_at_95: usize,
    /// Pairs where every photo keeps its class.
    pub pairs_photos_kept: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Calibrated {
    pub name: String,
    pub zero_one: Outcome,
    pub three_seven: Outcome,
    pub pairs: PairSummary,
    pub ten: Outcome,
    /// (bias offset added to every new class, ten digits' accuracy, share to new, photos kept).
    pub tradeoff: Vec<(f64, f64, f64, usize)>,
}

#[derive(Debug, Serialize)]
pub struct ImprintBench {
    pub model: String,
    pub train_per_class: usize,
    pub test_images: usize,
    pub photos: Vec<String>,
    pub calibrations: Vec<Calibrated>,
    /// `--add-classes` with the default epochs on digits 3 and 7: per-class recall.
    pub default_epochs: usize,
    pub default_epochs_recall: Vec<f64>,
    pub default_epochs_photos_kept: usize,
}

type Calibration = fn(&[Tensor], &Tensor, &Tensor) -> (Tensor, Tensor);

/// The plain baseline: normalised mean of normalised features, scaled to the old rows' mean
/// norm; bias the old biases' mean.
fn plain(classes: &[Tensor], old_w: &Tensor, old_b: &Tensor) -> (Tensor, Tensor) {
    let scale = old_w.norm_scalaropt_dim(2, [1], false).mean(Kind::Float);
    let rows: Vec<Tensor> = classes
        .iter()
        .map(|f| {
            let unit = f / f.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
            let m = unit.mean_dim([0i64].as_slice(), false, Kind::Float);
            &m / m.norm().clamp_min(1e-12) * &scale
        })
        .collect();
    let b = old_b.mean(Kind::Float).repeat([classes.len() as i64]);
    (Tensor::stack(&rows, 0), b)
}

/// Features (CPU) and labels of a folder of class sub-folders, read as a user's would be.
fn folder_features(base: &Model, dir: &std::path::Path) -> Result<(Tensor, Tensor)> {
    let d = ft::read_data(&base.preprocess, &DataSource::Folder(dir.to_path_buf()), 0)?;
    let f = ft::features_of(base, &d.images, &mut |_| true)?.to_device(Device::Cpu);
    let y = Tensor::from_slice(&d.labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
    Ok((f, y))
}

struct Scene<'a> {
    w: &'a Tensor,
    b: &'a Tensor,
    train: &'a (Tensor, Tensor),
    test: &'a (Tensor, Tensor),
    photos: &'a Tensor,
    photo_top: &'a Tensor,
}

impl Scene<'_> {
    fn outcome(&self, classes: &[i64], nw: &Tensor, nb: &Tensor) -> Outcome {
        let k = self.w.size()[0];
        let (w2, b2) = (Tensor::cat(&[self.w, nw], 0), Tensor::cat(&[self.b, nb], 0));
        let (tf, ty) = self.test;
        let mut right = 0i64;
        let mut to_new = 0i64;
        let mut total = 0i64;
        let mut recall = Vec::new();
        for (j, &c) in classes.iter().enumerate() {
            let rows = ty.eq(c).nonzero().squeeze_dim(1);
            let pred = (tf.index_select(0, &rows).matmul(&w2.tr()) + &b2).argmax(1, false);
            let n = rows.size()[0];
            let r = pred.eq(k + j as i64).sum(Kind::Int64).int64_value(&[]);
            right += r;
            to_new += pred.ge(k).sum(Kind::Int64).int64_value(&[]);
            total += n;
            recall.push(r as f64 / n.max(1) as f64);
        }
        let pl = self.photos.matmul(&w2.tr()) + &b2;
        let kept = pl
            .argmax(1, false)
            .eq_tensor(self.photo_top)
            .sum(Kind::Int64)
            .int64_value(&[]);
        let margin = (pl.narrow(1, 0, k).amax([1i64].as_slice(), false)
            - pl.narrow(1, k, nw.size()[0]).amax([1i64].as_slice(), false))
        .min()
        .double_value(&[]);
        Outcome {
            recall,
            accuracy: right as f64 / total.max(1) as f64,
            to_new: to_new as f64 / total.max(1) as f64,
            photos_kept: kept as usize,
            photo_margin: margin,
        }
    }

    /// The calibration's rows for these digits, from the training features.
    fn rows(&self, cal: Calibration, classes: &[i64]) -> (Tensor, Tensor) {
        let (f, y) = self.train;
        let per: Vec<Tensor> = classes
            .iter()
            .map(|&c| f.index_select(0, &y.eq(c).nonzero().squeeze_dim(1)))
            .collect();
        cal(&per, self.w, self.b)
    }

    fn run(&self, cal: Calibration, classes: &[i64]) -> Outcome {
        let (nw, nb) = self.rows(cal, classes);
        self.outcome(classes, &nw, &nb)
    }

    fn calibrated(&self, name: &str, cal: Calibration) -> Calibrated {
        let mut recalls = Vec::new();
        let (mut at95, mut kept, mut pairs) = (0, 0, 0);
        for a in 0..10 {
            for b in a + 1..10 {
                let o = self.run(cal, &[a, b]);
                pairs += 1;
                at95 += usize::from(o.recall.iter().all(|&r| r >= 0.95));
                kept += usize::from(o.photos_kept == self.photos.size()[0] as usize);
                recalls.extend(o.recall);
            }
        }
        let ten: Vec<i64> = (0..10).collect();
        let (nw, nb) = self.rows(cal, &ten);
        let tradeoff = [-8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0]
            .into_iter()
            .map(|d| {
                let o = self.outcome(&ten, &nw, &(&nb + d));
                (d, o.accuracy, o.to_new, o.photos_kept)
            })
            .collect();
        Calibrated {
            name: name.to_string(),
            zero_one: self.run(cal, &[0, 1]),
            three_seven: self.run(cal, &[3, 7]),
            pairs: PairSummary {
                pairs,
                mean_recall: recalls.iter().sum::<f64>() / recalls.len() as f64,
                min_recall: recalls.iter().copied().fold(f64::INFINITY, f64::min),
                pairs_at_95: at95,
                pairs_photos_kept: kept,
            },
            ten: self.outcome(&ten, &nw, &nb),
            tradeoff,
        }
    }
}

/// `glassbox-bench --imprint DIR`: MNIST digits written as images into DIR (`train_per_class`
/// per digit from the training set, `test_per_class` per digit from the test set, 0 for all),
/// their features, and both calibrations measured on them.
pub fn imprint(
    base: &Model,
    dir: &std::path::Path,
    photos: &[std::path::PathBuf],
    train_per_class: usize,
    test_per_class: usize,
) -> Result<ImprintBench> {
    let d = data::load(DatasetName::Mnist, &data::data_dir())?;
    let (train_dir, test_dir) = (dir.join("imprint-train"), dir.join("imprint-test"));
    if !train_dir.exists() {
        data::write_folder(DatasetName::Mnist, &d.train, &train_dir, "", train_per_class, 0, true)?;
    }
    if !test_dir.exists() {
        let n = if test_per_class == 0 { 10_000 } else { test_per_class };
        data::write_folder(DatasetName::Mnist, &d.test, &test_dir, "", n, 0, true)?;
    }
    let train = folder_features(base, &train_dir)?;
    let test = folder_features(base, &test_dir)?;
    let mut ph = Vec::new();
    for p in photos {
        ph.push(base.preprocess.prepare_file(p)?.tensor);
    }
    let photos_f = tch::no_grad(|| ft::features(base, &Tensor::cat(&ph, 0)))?.to_device(Device::Cpu);
    let vars = base.vs.variables();
    let arch = base.spec.arch;
    let w = vars[arch.classifier_key()].to_device(Device::Cpu).detach();
    let b = vars[&ft::bias_key(arch)].to_device(Device::Cpu).detach();
    let photo_top = (photos_f.matmul(&w.tr()) + &b).argmax(1, false);
    let scene = Scene {
        w: &w,
        b: &b,
        train: &train,
        test: &test,
        photos: &photos_f,
        photo_top: &photo_top,
    };
    let calibrations = tch::no_grad(|| {
        vec![
            scene.calibrated("Glassbox (shared part + discriminant)", ft::imprint),
            scene.calibrated("plain (mean feature, mean old bias)", plain),
        ]
    });
    // `--add-classes` as a user runs it, default epochs, on the training threes and sevens.
    let folder = dir.join("imprint-3-7");
    if !folder.exists() {
        for c in ["3", "7"] {
            copy_dir(&train_dir.join(c), &folder.join(format!("digit-{c}")))?;
        }
    }
    let cfg = ft::Config {
        add_classes: true,
        ..ft::Config::default()
    };
    let control = ft::Control::default();
    let out = ft::finetune(
        base,
        &DataSource::Folder(folder),
        &cfg,
        &mut ft::Hooks {
            event: &mut |_| true,
            control: &control,
        },
    )?;
    let k = base.spec.classes;
    let nw = out.model.vs.variables()[arch.classifier_key()]
        .narrow(0, k, 2)
        .to_device(Device::Cpu);
    let nb = out.model.vs.variables()[&ft::bias_key(arch)]
        .narrow(0, k, 2)
        .to_device(Device::Cpu);
    let refined = tch::no_grad(|| scene.outcome(&[3, 7], &nw.detach(), &nb.detach()));
    Ok(ImprintBench {
        model: base.source.to_string(),
        train_per_class,
        test_images: test.1.size()[0] as usize,
        photos: photos.iter().map(|p| p.display().to_string()).collect(),
        calibrations,
        default_epochs: cfg.epochs,
        default_epochs_recall: refined.recall,
        default_epochs_photos_kept: refined.photos_kept,
    })
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let io = |e| glassbox_engine::error::Error::io(to, e);
    std::fs::create_dir_all(to).map_err(io)?;
    for e in std::fs::read_dir(from).map_err(io)? {
        let p = e.map_err(io)?.path();
        std::fs::copy(&p, to.join(p.file_name().expect("a file"))).map_err(io)?;
    }
    Ok(())
}
