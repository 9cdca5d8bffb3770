//! `--finetune DIR`: retraining at several sizes, imprinting two digits, and whole-network
//! throughput, on MNIST digits written as images.

use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use glassbox_engine::error::Result;
use glassbox_engine::model::Model;

use super::measure::median;

/// Head-only training at one number of images per class.
#[derive(Debug, Serialize)]
pub struct HeadRun {
    pub per_class: usize,
    pub train_images: usize,
    pub test_accuracy: f64,
    /// Reading the images and computing their features.
    pub features_s: f64,
    /// Training the head on the cached features (all epochs).
    pub head_s: f64,
    pub wall_s: f64,
}

#[derive(Debug, Serialize)]
pub struct FinetuneBench {
    pub model: String,
    pub device: String,
    pub threads: i32,
    pub epochs: usize,
    pub lr: f64,
    pub batch: i64,
    pub head: Vec<HeadRun>,
    pub test_images: usize,
    /// Imprinting two digits from `imprint_train` images each: accuracy on
    /// `imprint_test` new images of each.
    pub imprint_train: usize,
    pub imprint_test: usize,
    pub imprint_accuracy: f64,
    pub imprint_s: f64,
    /// The same, then 10 epochs of the new classes' weights (Adam, lr 0.01).
    pub refined_accuracy: f64,
    pub refined_s: f64,
    /// The sample photos' top-1 before, after imprinting, after refining.
    pub photos_top1: Vec<(String, String, String, String)>,
    /// Whole-network fine-tuning: images per second (forward, backward, optimiser step),
    /// the median of the runs.
    pub full_images_per_s: f64,
    pub full_runs_images_per_s: Vec<f64>,
    pub full_batch: i64,
    pub full_steps: usize,
}

/// How much work `glassbox-bench --finetune` does.
#[derive(Debug, Clone)]
pub struct FinetuneSizes {
    /// Test digits per class for head-only training.
    pub test_per_class: usize,
    /// Training digits per class, one head-only run each.
    pub head_per_class: Vec<usize>,
    /// Imprinting: training and test digits per new class.
    pub imprint_train: usize,
    pub imprint_test: usize,
    /// Whole-network fine-tuning: digits per class, and how many timed runs (the median).
    pub full_per_class: usize,
    pub full_runs: usize,
}

impl FinetuneSizes {
    /// The figures of BENCHMARKS.md.
    pub fn full() -> Self {
        FinetuneSizes {
            test_per_class: 100,
            head_per_class: vec![5, 20, 50],
            imprint_train: 20,
            imprint_test: 100,
            full_per_class: 20,
            full_runs: 3,
        }
    }
    /// The smallest run that exercises every part (the test of the benchmark itself).
    pub fn smallest() -> Self {
        FinetuneSizes {
            test_per_class: 3,
            head_per_class: vec![2],
            imprint_train: 3,
            imprint_test: 3,
            full_per_class: 4,
            full_runs: 1,
        }
    }
}

/// `glassbox-bench --finetune DIR`: MNIST digits as RGB images written into DIR (and the
/// features Glassbox computes of them, for the PyTorch side of scripts/bench-finetune.sh),
/// head-only training at 5, 20 and 50 digits per class tested on 1,000 others, imprinting
/// two new classes, and whole-network fine-tuning throughput (the median of three runs).
pub fn finetune(
    base: &Model,
    dir: &std::path::Path,
    photos: &[std::path::PathBuf],
    sizes: &FinetuneSizes,
) -> Result<FinetuneBench> {
    use glassbox_engine::data::{self, DatasetName};
    use glassbox_engine::finetune::{self as ft, Config, Control, DataSource, Event, Hooks, Scope};
    let d = data::load(DatasetName::Mnist, &data::data_dir())?;
    let test_dir = dir.join("test");
    if !test_dir.exists() {
        data::write_folder(
            DatasetName::Mnist,
            &d.test,
            &test_dir,
            "",
            sizes.test_per_class,
            0,
            true,
        )?;
    }
    let test = ft::read_data(&base.preprocess, &DataSource::Folder(test_dir.clone()), 0)?;
    let feats = |images: &Tensor| -> Result<Tensor> {
        Ok(ft::features_of(base, images, &mut |_| true)?.to_device(Device::Cpu))
    };
    let labels = |d: &ft::Data| Tensor::from_slice(&d.labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let test_feats = feats(&test.images)?;
    let mut exported = vec![
        ("test.features".to_string(), test_feats.shallow_clone()),
        ("test.labels".to_string(), labels(&test)),
    ];
    let (epochs, lr, batch) = (30, 0.01, 32);
    let control = Control::default();
    let mut quiet = |_: Event| true;
    let mut head = Vec::new();
    for &per_class in &sizes.head_per_class {
        let folder = dir.join(format!("train-{per_class}"));
        if !folder.exists() {
            data::write_folder(DatasetName::Mnist, &d.train, &folder, "", per_class, 0, true)?;
        }
        let t0 = Instant::now();
        let data = ft::read_data(&base.preprocess, &DataSource::Folder(folder), 0)?;
        let cfg = Config {
            epochs,
            lr,
            batch,
            val_split: 0.0,
            scope: Scope::Head,
            ..Config::default()
        };
        let mut head_start = None;
        let mut on = |e: Event| {
            if matches!(e, Event::Epoch(ref s) if s.epoch == 0) {
                head_start = Some(Instant::now());
            }
            true
        };
        let out = ft::run(
            base,
            &data,
            &cfg,
            &mut Hooks {
                event: &mut on,
                control: &control,
            },
        )?;
        let wall = t0.elapsed().as_secs_f64();
        let head_s = head_start.map_or(0.0, |t| t.elapsed().as_secs_f64());
        // Test accuracy of the trained head on the test digits' features.
        let pred = tch::no_grad(|| ft::head_logits(&out.model, &test_feats)).argmax(-1, false);
        let correct = pred
            .to_device(Device::Cpu)
            .eq_tensor(&labels(&test))
            .sum(Kind::Int64)
            .int64_value(&[]);
        head.push(HeadRun {
            per_class,
            train_images: data.labels.len(),
            test_accuracy: correct as f64 / test.labels.len() as f64,
            features_s: wall - head_s,
            head_s,
            wall_s: wall,
        });
        exported.push((format!("train{per_class}.features"), feats(&data.images)?));
        exported.push((format!("train{per_class}.labels"), labels(&data)));
    }
    glassbox_engine::weights::save_safetensors(
        &dir.join("features.safetensors"),
        &exported,
        &Default::default(),
        glassbox_engine::weights::StoreAs::F32,
    )?;

    // Imprinting two digits (as new classes) from 20 images each.
    let (new_dir, new_test) = imprint_folders(dir, &d, sizes)?;
    // Imprinting only, then with 10 epochs of the new rows: the model, its accuracy, seconds.
    let mut add = |epochs: usize, lr: f64| -> Result<(Model, f64, f64)> {
        let t0 = Instant::now();
        let out = ft::finetune(
            base,
            &DataSource::Folder(new_dir.clone()),
            &Config {
                add_classes: true,
                epochs,
                lr,
                val_split: 0.0,
                ..Config::default()
            },
            &mut Hooks {
                event: &mut quiet,
                control: &control,
            },
        )?;
        let s = t0.elapsed().as_secs_f64();
        let labelled = glassbox_engine::evaluate::folder(&out.model, &new_test)?;
        let acc = glassbox_engine::evaluate::evaluate(&out.model, &labelled, &mut |_, _| true)?.accuracy;
        Ok((out.model, acc, s))
    };
    let (imprinted, imprint_accuracy, imprint_s) = add(0, 1e-3)?;
    let (refined, refined_accuracy, refined_s) = add(10, 0.01)?;
    let photos_top1 = photos_top1(photos, [base, &imprinted, &refined])?;

    let full_batch = 16;
    let (full_runs, full_steps) = full_throughput(base, dir, &d, sizes, full_batch, &control)?;
    let full_images_per_s = {
        let mut v = full_runs.clone();
        median(&mut v)
    };
    Ok(FinetuneBench {
        model: base.source.to_string(),
        device: glassbox_engine::Device::from(base.device()).to_string(),
        threads: tch::get_num_threads(),
        epochs,
        lr,
        batch,
        head,
        test_images: test.labels.len(),
        imprint_train: sizes.imprint_train,
        imprint_test: sizes.imprint_test,
        imprint_accuracy,
        imprint_s,
        refined_accuracy,
        refined_s,
        photos_top1,
        full_images_per_s,
        full_runs_images_per_s: full_runs,
        full_batch,
        full_steps,
    })
}

/// Whole-network fine-tuning throughput: images per second of each run, and the steps timed.
fn full_throughput(
    base: &Model,
    dir: &std::path::Path,
    d: &glassbox_engine::data::Dataset,
    sizes: &FinetuneSizes,
    full_batch: i64,
    control: &glassbox_engine::finetune::Control,
) -> Result<(Vec<f64>, usize)> {
    use glassbox_engine::data::{self, DatasetName};
    use glassbox_engine::finetune::{self as ft, Config, DataSource, Event, Hooks, Scope};
    // Whole-network fine-tuning throughput (200 digits, batch 16, no augmentation): full
    // batches after the first (warm-up) step, without the last, partial one; each run
    // anew from the base model, the median of the runs.
    let folder = dir.join(format!("full-{}", sizes.full_per_class));
    if !folder.exists() {
        data::write_folder(DatasetName::Mnist, &d.train, &folder, "", sizes.full_per_class, 0, true)?;
    }
    let data = ft::read_data(&base.preprocess, &DataSource::Folder(folder), 0)?;
    let mut full_runs = Vec::new();
    let mut full_steps = 0;
    for _ in 0..sizes.full_runs.max(1) {
        let mut steps: Vec<f64> = Vec::new();
        let mut on = |e: Event| {
            if let Event::Step { elapsed, .. } = e {
                steps.push(elapsed);
            }
            true
        };
        ft::run(
            base,
            &data,
            &Config {
                scope: Scope::Full,
                epochs: 1,
                batch: full_batch,
                val_split: 0.0,
                augment: false,
                ..Config::default()
            },
            &mut Hooks {
                event: &mut on,
                control,
            },
        )?;
        // Step k's time is steps[k] - steps[k-1]: steps 1 .. len-2 are full batches after
        // the warm-up (the last may be partial).
        if steps.len() < 3 {
            return Err(glassbox_engine::Error::invalid(format!(
                "whole-network timing needs at least 3 steps of {full_batch}; {} digits make {}",
                data.labels.len(),
                steps.len()
            )));
        }
        full_steps = steps.len() - 2;
        let span = steps[steps.len() - 2] - steps[0];
        full_runs.push(full_steps as f64 * full_batch as f64 / span);
    }
    Ok((full_runs, full_steps))
}

/// The two digits taught as new classes: their training and test folders (written once).
fn imprint_folders(
    dir: &std::path::Path,
    d: &glassbox_engine::data::Dataset,
    sizes: &FinetuneSizes,
) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    use glassbox_engine::data::{self, DatasetName};
    let new_dir = dir.join("new-classes");
    let new_test = dir.join("new-classes-test");
    if !new_dir.exists() {
        let (n_train, n_test) = (sizes.imprint_train, sizes.imprint_test);
        for (folder, n, skip, from) in [(&new_dir, n_train, 0, &d.train), (&new_test, n_test, 100, &d.test)] {
            let all = dir.join("all-tmp");
            let _ = std::fs::remove_dir_all(&all);
            data::write_folder(DatasetName::Mnist, from, &all, "digit-", n, skip, true)?;
            std::fs::create_dir_all(folder).map_err(|e| glassbox_engine::error::Error::io(folder, e))?;
            for c in ["digit-3", "digit-7"] {
                std::fs::rename(all.join(c), folder.join(c))
                    .map_err(|e| glassbox_engine::error::Error::io(folder, e))?;
            }
            let _ = std::fs::remove_dir_all(&all);
        }
    }
    Ok((new_dir, new_test))
}

/// Each photo's top-1 class on the base, the imprinted and the refined model.
fn photos_top1(
    photos: &[std::path::PathBuf],
    [base, imprinted, refined]: [&Model; 3],
) -> Result<Vec<(String, String, String, String)>> {
    let mut out = Vec::new();
    for p in photos {
        let x = base.preprocess.prepare_file(p)?.tensor;
        let top = |m: &Model| -> Result<String> { Ok(m.top_k(&m.logits(&x), 1)?[0][0].label.clone()) };
        out.push((p.display().to_string(), top(base)?, top(imprinted)?, top(refined)?));
    }
    Ok(out)
}
