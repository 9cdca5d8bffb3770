//! What the methods share: the target class, the layer a CAM looks at, finite values, and
//! how many inputs fit in one batch.

use tch::Tensor;

use crate::device::memory_for_batches;
use crate::error::{name_sample, Error, Result};
use crate::layers::LayerKind;
use crate::model::Model;

/// Layers whose output is spatial ([N, C, H, W]), in forward order.
pub fn spatial_layers(model: &Model) -> Vec<(String, LayerKind, Vec<i64>)> {
    model
        .layers()
        .into_iter()
        .filter(|l| crate::defaults::is_spatial(&l.shape))
        .map(|l| (l.name, l.kind, l.shape))
        .collect()
}

/// The layer a CAM method uses: the one asked for, else the last spatial one.
pub fn resolve_layer(model: &Model, layer: Option<&str>) -> Result<String> {
    let spatial = spatial_layers(model);
    match layer {
        None => spatial
            .last()
            .map(|l| l.0.clone())
            .ok_or_else(|| Error::invalid("this model has no layer with a spatial output")),
        Some(name) => {
            if spatial.iter().any(|l| l.0 == name) {
                return Ok(name.to_owned());
            }
            let all = model.layers();
            let names: Vec<&str> = spatial.iter().map(|l| l.0.as_str()).collect();
            let sample = name_sample(&names);
            if let Some(l) = all.iter().find(|l| l.name == name) {
                Err(Error::invalid(format!(
                    "layer `{name}` has output {:?}, which is not spatial; CAM methods need a layer with a [N, C, H, W] output such as: {sample} (default: the last, {})",
                    l.shape,
                    names.last().unwrap_or(&"")
                )))
            } else {
                Err(Error::invalid(format!(
                    "unknown layer `{name}`; layers with a spatial output: {sample} (`glassbox layers` lists all)"
                )))
            }
        }
    }
}

/// Checks a target class index.
pub fn check_target(model: &Model, target: i64) -> Result<()> {
    if target < 0 || target >= model.spec.classes {
        return Err(Error::invalid(format!(
            "target class {target} does not exist: the model has classes 0 to {}",
            model.spec.classes - 1
        )));
    }
    Ok(())
}

pub(crate) fn check_finite(t: &Tensor, what: &str) -> Result<()> {
    let bad = t.isfinite().logical_not().any().int64_value(&[]) != 0;
    if bad {
        return Err(Error::invalid(format!(
            "{what} contains NaN or Inf; the model or its weights are numerically broken there"
        )));
    }
    Ok(())
}

/// How many copies of one input fit in memory at once for forward+backward.
pub fn batch_budget(model: &Model, want: usize) -> usize {
    // Saved activations for backward: about every traced output, twice over.
    let per_sample = model.activation_bytes() * 2;
    let free = memory_for_batches(model.device());
    let fit = (free / per_sample.max(1)).max(1) as usize;
    want.clamp(1, fit.min(256))
}

/// The class to explain: the one asked for, or the top-1 of these logits (first row).
pub(crate) fn pick_target(model: &Model, logits: &Tensor, target: Option<i64>) -> Result<i64> {
    check_finite(logits, "the model output")?;
    match target {
        Some(t) => {
            check_target(model, t)?;
            Ok(t)
        }
        None => Ok(logits.get(0).argmax(-1, false).int64_value(&[])),
    }
}
