//! Which map to trust: every method scored on one image by deletion and insertion AUC (the
//! target's probability as its most relevant pixels are removed, or put back into a blurred
//! image), ROAD (pytorch-grad-cam's `ROADCombined`, noisy linear imputation) and the sanity
//! check's rank correlation with the same method on the model with every layer randomised
//! (lower is better: a map that does not change with the weights does not explain them).
//! The randomised model is made once for all methods; every method explains the same class.

use serde::Serialize;
use tch::Tensor;

use crate::error::{Error, Result};
use crate::explain::{self, Method, Params};
use crate::layout;
use crate::map::attribution_map;
use crate::metrics::{self, deletion_insertion, spearman};
use crate::model::Model;
use crate::road;

/// Deletion and insertion curves' steps in the scoreboard (the faithfulness view's).
pub const STEPS: usize = crate::defaults::FAITHFULNESS_STEPS;

/// One method's (or one CAM layer's) scores on one image.
#[derive(Debug, Clone, Serialize)]
pub struct Score {
    pub method: String,
    pub layer: Option<String>,
    pub target: i64,
    /// Lower is better.
    pub deletion_auc: f64,
    /// Higher is better.
    pub insertion_auc: f64,
    /// Higher is better, in [-0.5, 0.5].
    pub road: f64,
    /// |map| against |map on the randomised model|, Spearman; nearer 0 is better (the
    /// sanity check's verdict takes its size too).
    pub sanity_spearman: f64,
}

/// The measures, with which way is better.
pub const MEASURES: [(&str, bool); 4] = [
    ("deletion_auc", false),
    ("insertion_auc", true),
    ("road", true),
    ("sanity_spearman", false),
];

impl Score {
    /// The value a measure ranks by (the sanity check's by its size).
    pub fn value(&self, measure: &str) -> f64 {
        match measure {
            "deletion_auc" => self.deletion_auc,
            "insertion_auc" => self.insertion_auc,
            "road" => self.road,
            _ => self.sanity_spearman.abs(),
        }
    }
}

/// The index of the best score for each of [`MEASURES`].
pub fn best(scores: &[Score]) -> Vec<Option<usize>> {
    MEASURES
        .iter()
        .map(|&(m, higher)| {
            (0..scores.len()).max_by(|&a, &b| {
                let (x, y) = (scores[a].value(m), scores[b].value(m));
                if higher {
                    x.total_cmp(&y)
                } else {
                    y.total_cmp(&x)
                }
            })
        })
        .collect()
}

/// What scoring shares across methods: the image, its class, the model and its randomised
/// twin (copies in channels-last on the CPU, where their many forwards run faster).
pub struct Scorer {
    model: Model,
    input: Tensor,
    target: i64,
    random: Model,
    seed: i64,
}

impl Scorer {
    /// For `input` [1, C, H, W] and `target` (the top class when `None`).
    pub fn new(model: &Model, input: &Tensor, target: Option<i64>, seed: i64) -> Result<Self> {
        let logits = model.logits(input);
        let target = explain::pick_target(model, &logits, target)?;
        let random = metrics::duplicate(model);
        metrics::randomise_all(&random, seed);
        let model = metrics::duplicate(model);
        if model.device() == tch::Device::Cpu {
            layout::set_channels_last(&model, true);
            layout::set_channels_last(&random, true);
        }
        Ok(Scorer {
            model,
            input: input.shallow_clone(),
            target,
            random,
            seed,
        })
    }

    pub fn target(&self) -> i64 {
        self.target
    }

    /// The scores of `method` (its layer in `p` for the CAM family).
    pub fn score(&self, method: Method, p: &Params, keep_going: &dyn Fn() -> bool) -> Result<Score> {
        let p = Params {
            target: Some(self.target),
            ..p.clone()
        };
        let (h, w) = (self.input.size()[2], self.input.size()[3]);
        let e = explain::explain(&self.model, &self.input, method, &p, &mut |_| keep_going())?;
        let map = attribution_map(&e.attribution, method, h, w)?;
        if !keep_going() {
            return Err(Error::Cancelled);
        }
        let (del, ins) = deletion_insertion(&self.model, &self.input, &map, self.target, STEPS, keep_going)?;
        let r = road::road(&self.model, &self.input, &map.data, self.target, road::NOISE, self.seed)?;
        if !keep_going() {
            return Err(Error::Cancelled);
        }
        let p_random = Params {
            layer: e.layer.clone(),
            ..p
        };
        let random = explain::explain(&self.random, &self.input, method, &p_random, &mut |_| keep_going())?;
        let random_map = attribution_map(&random.attribution, method, h, w)?;
        let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
        Ok(Score {
            method: method.name().to_string(),
            layer: e.layer,
            target: self.target,
            deletion_auc: del.auc,
            insertion_auc: ins.auc,
            road: r.combined,
            sanity_spearman: spearman(&abs(&map.data), &abs(&random_map.data)),
        })
    }
}

/// The layers a CAM can look at worth scoring: the last block of each stage (a block whose
/// output shape the next one changes, where the feature maps change meaning) with a spatial
/// size of at least 7 x 7, and the default layer (the last spatial one).
pub fn cam_candidates(model: &Model) -> Vec<String> {
    let blocks: Vec<(String, Vec<i64>)> = explain::spatial_layers(model)
        .into_iter()
        .filter(|(_, kind, _)| *kind == crate::layers::LayerKind::Block)
        .map(|(name, _, shape)| (name, shape))
        .collect();
    let mut out: Vec<String> = blocks
        .iter()
        .enumerate()
        .filter(|(i, (_, shape))| {
            let stage_end = blocks.get(i + 1).is_none_or(|next| next.1 != *shape);
            stage_end && shape[2] >= 7 && shape[3] >= 7
        })
        .map(|(_, (name, _))| name.clone())
        .collect();
    if let Ok(d) = explain::resolve_layer(model, None) {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(d: f64, i: f64, r: f64, rho: f64) -> Score {
        Score {
            method: String::new(),
            layer: None,
            target: 0,
            deletion_auc: d,
            insertion_auc: i,
            road: r,
            sanity_spearman: rho,
        }
    }

    #[test]
    fn the_best_is_the_lowest_deletion_the_highest_insertion_and_road_the_smallest_rho() {
        let scores = [s(0.3, 0.2, 0.1, -0.6), s(0.1, 0.1, -0.2, 0.3), s(0.2, 0.5, 0.0, 0.05)];
        assert_eq!(best(&scores), [Some(1), Some(2), Some(0), Some(2)]);
        assert_eq!(best(&[]), [None; 4]);
    }
}
