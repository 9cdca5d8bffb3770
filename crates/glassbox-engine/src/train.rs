//! Training the small CNN on MNIST / Fashion-MNIST, with progress reports and a
//! record of what was done (data set, epochs, seed, test accuracy).

use std::collections::BTreeMap;

use tch::{nn, nn::OptimizerConfig, Device, Kind, Tensor};

use super::arch::Arch;
use super::data::{Dataset, DatasetName, Split};
use super::error::Result;
use super::model::Model;

#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub dataset: DatasetName,
    pub epochs: usize,
    pub seed: i64,
    pub batch_size: i64,
    pub lr: f64,
    /// Use only the first N training images (0 = all).
    pub limit: i64,
}

/// What the trainer reports while it runs.
pub enum Progress {
    Step {
        epoch: usize,
        step: i64,
        steps: i64,
        loss: f64,
    },
    Epoch {
        epoch: usize,
        test_accuracy: f64,
    },
}

pub struct Trained {
    pub model: Model,
    pub test_accuracy: f64,
    pub record: BTreeMap<String, String>,
}

/// Accuracy of `model` on a split, in batches, without gradients.
pub fn accuracy(model: &Model, split: &Split) -> f64 {
    let n = split.len();
    if n == 0 {
        return 0.0;
    }
    let mut correct = 0i64;
    let bs = 1000;
    let mut i = 0;
    while i < n {
        let len = bs.min(n - i);
        let x = Split::normalised(&split.images.narrow(0, i, len));
        let pred = model.logits(&x).argmax(-1, false).to_device(Device::Cpu);
        correct += pred
            .eq_tensor(&split.labels.narrow(0, i, len))
            .sum(Kind::Int64)
            .int64_value(&[]);
        i += len;
    }
    correct as f64 / n as f64
}

pub fn train_tiny_cnn(
    data: &Dataset,
    cfg: &TrainConfig,
    device: Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<Trained> {
    tch::manual_seed(cfg.seed);
    let mut model = Model::new_random(Arch::TinyCnn, 10, 1, device);
    model.labels = cfg.dataset.labels();
    let train = if cfg.limit > 0 {
        data.train.head(cfg.limit)
    } else {
        data.train.head(data.train.len())
    };
    let mut opt = nn::Adam::default().build(&model.vs, cfg.lr)?;
    let n = train.len();
    let steps = (n + cfg.batch_size - 1) / cfg.batch_size;
    let mut test_accuracy = 0.0;
    for epoch in 1..=cfg.epochs {
        // Step the learning rate down for the last epochs.
        let lr = if cfg.epochs > 2 && epoch > cfg.epochs * 2 / 3 {
            cfg.lr * 0.2
        } else {
            cfg.lr
        };
        opt.set_lr(lr);
        let perm = Tensor::randperm(n, (Kind::Int64, Device::Cpu));
        for step in 0..steps {
            let start = step * cfg.batch_size;
            let len = cfg.batch_size.min(n - start);
            let idx = perm.narrow(0, start, len);
            let x = Split::normalised(&train.images.index_select(0, &idx)).to_device(device);
            let y = train.labels.index_select(0, &idx).to_device(device);
            let logits = model.forward_hooked(&x, true, &mut |_, _, t| t);
            let loss = logits.cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            if step % 20 == 0 || step + 1 == steps {
                progress(Progress::Step {
                    epoch,
                    step: step + 1,
                    steps,
                    loss: loss.double_value(&[]),
                });
            }
        }
        test_accuracy = accuracy(&model, &data.test);
        progress(Progress::Epoch { epoch, test_accuracy });
    }
    let mut record = BTreeMap::new();
    record.insert("glassbox.train.dataset".into(), cfg.dataset.as_str().into());
    record.insert("glassbox.train.epochs".into(), cfg.epochs.to_string());
    record.insert("glassbox.train.seed".into(), cfg.seed.to_string());
    record.insert("glassbox.train.batch_size".into(), cfg.batch_size.to_string());
    record.insert("glassbox.train.lr".into(), cfg.lr.to_string());
    record.insert("glassbox.train.train_images".into(), n.to_string());
    record.insert("glassbox.train.test_accuracy".into(), format!("{test_accuracy:.4}"));
    model.metadata.extend(record.clone());
    Ok(Trained {
        model,
        test_accuracy,
        record,
    })
}
