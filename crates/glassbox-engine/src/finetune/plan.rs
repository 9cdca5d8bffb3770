//! The weights that change in a run, their snapshots (the timeline, the rollback), and the
//! memory a run takes.

use tch::{Device, Tensor};

use crate::error::{Error, Result};
use crate::model::Model;

use super::head::bias_key;
use super::settings::{Config, Optimizer, Scope};

/// At most this many bytes of timeline snapshots.
pub(super) const TIMELINE_BYTES: i64 = 1 << 30;

/// The weights that change in a run of `scope` (with the buffers of the layers that train).
pub(super) fn changing(model: &Model, scope: &Scope) -> Result<Vec<String>> {
    let vars = model.vs.variables();
    let mut names: Vec<String> = match scope {
        Scope::Full => vars.keys().cloned().collect(),
        Scope::Head => {
            let arch = model.spec.arch;
            vec![arch.classifier_key().to_string(), bias_key(arch)]
                .into_iter()
                .filter(|k| vars.contains_key(k))
                .collect()
        }
        Scope::From(from) => {
            let order: Vec<String> = model.layers().into_iter().map(|l| l.name).collect();
            let matches = |name: &str, l: &str| name == l || name.strip_prefix(l).is_some_and(|r| r.starts_with('.'));
            let start = order.iter().position(|n| matches(n, from)).ok_or_else(|| {
                Error::invalid(format!(
                    "the model has no layer `{from}` to train from; layers include {}",
                    crate::error::name_sample(&order)
                ))
            })?;
            vars.keys()
                .filter(|k| {
                    let layer = k.rsplit_once('.').map_or(k.as_str(), |(l, _)| l);
                    match order.iter().position(|n| n == layer || matches(n, layer)) {
                        Some(p) => p >= start,
                        None => true,
                    }
                })
                .cloned()
                .collect()
        }
    };
    names.sort();
    Ok(names)
}

pub(super) fn snapshot(model: &Model, names: &[String]) -> Vec<(String, Tensor)> {
    let vars = model.vs.variables();
    tch::no_grad(|| {
        names
            .iter()
            .filter_map(|n| vars.get(n).map(|t| (n.clone(), t.to_device(Device::Cpu).copy())))
            .collect()
    })
}

pub(super) fn restore(model: &Model, vars: &[(String, Tensor)]) -> Result<()> {
    let mut own = model.vs.variables();
    tch::no_grad(|| {
        for (n, t) in vars {
            let v = own
                .get_mut(n)
                .ok_or_else(|| Error::invalid(format!("the model has no weight `{n}` to restore")))?;
            v.copy_(t);
        }
        Ok(())
    })
}

/// The memory a run takes, and the batch that fits.
pub(super) fn plan_memory(
    model: &Model,
    cfg: &Config,
    scope: &Scope,
    n_images: usize,
    budget: i64,
) -> Result<(i64, i64, i64, Option<String>)> {
    let params: i64 = model.vs.variables().values().map(|v| v.numel() as i64).sum();
    let states = match cfg.optimizer {
        Optimizer::Sgd => 1,
        Optimizer::Adam => 2,
    };
    if *scope == Scope::Head {
        let feats = n_images as i64 * model.spec.arch.features() * 4;
        let head = (model.spec.classes + 64) * model.spec.arch.features() * 4 * (2 + states);
        let need = params * 4 + feats + head + model.activation_bytes() * 2 * 32;
        if need > budget {
            return Err(Error::invalid(format!(
                "training the head needs about {:.1} GiB (features of {n_images} images), more than the {:.1} GiB available; take fewer images per class",
                need as f64 / (1u64 << 30) as f64,
                budget as f64 / (1u64 << 30) as f64
            )));
        }
        return Ok((cfg.batch, need, budget, None));
    }
    let fixed = params * 4 * (2 + states);
    // Saved activations for backward, their gradients and the augmented batch.
    let per_image = model.activation_bytes() * 3;
    let need = |b: i64| fixed + b * per_image;
    if need(cfg.batch) <= budget {
        return Ok((cfg.batch, need(cfg.batch), budget, None));
    }
    let fit = (budget - fixed) / per_image.max(1);
    if fit < 1 {
        return Err(Error::invalid(format!(
            "training needs about {:.1} GiB even for one image at a time (weights, gradients, optimiser state, activations), more than the {:.1} GiB available; train the head only or from a later layer",
            need(1) as f64 / (1u64 << 30) as f64,
            budget as f64 / (1u64 << 30) as f64
        )));
    }
    Ok((
        fit,
        need(fit),
        budget,
        Some(format!(
            "batch reduced from {} to {fit}: {} images would need about {:.1} GiB, {:.1} GiB is available",
            cfg.batch,
            cfg.batch,
            need(cfg.batch) as f64 / (1u64 << 30) as f64,
            budget as f64 / (1u64 << 30) as f64
        )),
    ))
}

/// Batch-norm statistics: variables that never take a gradient.
pub(super) fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked")
}

pub(super) fn snapshot_size(model: &Model, names: &[String]) -> i64 {
    let vars = model.vs.variables();
    names
        .iter()
        .filter_map(|n| vars.get(n))
        .map(|t| t.numel() as i64 * 4)
        .sum()
}
