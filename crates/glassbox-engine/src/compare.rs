//! Two models side by side: what changed in their weights (relative L2 per tensor, largest
//! first), what each says about the same image (top-k, the change of each probability) and
//! why (the same method's map for both, their difference, how alike they are), and, on
//! labelled images, both per-class accuracies. The models may differ in their classes (a
//! model with added classes against its original): what they share is compared, and what only
//! one of them has is listed.

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::explain::{self, Method, Params};
use crate::map::{attribution_map, Map};
use crate::model::{Class, Model};

/// How one tensor changed from A to B.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorChange {
    pub name: String,
    pub shape: Vec<i64>,
    /// |B - A| / |A| (L2 norms); `None` where A is all zeros.
    pub relative_l2: Option<f64>,
    pub l2: f64,
    pub max_abs: f64,
    /// Values that differ.
    pub values: i64,
    /// Values compared: all of the tensor, or the shared classes' rows of a classifier.
    pub of: i64,
    /// For a classifier whose classes differ: the rows of the classes both models have.
    pub shared_rows: Option<i64>,
}

/// What differs between two models' weights.
#[derive(Debug, Clone, Serialize)]
pub struct WeightChanges {
    /// The tensors that changed, largest relative change first.
    pub changed: Vec<TensorChange>,
    pub unchanged: usize,
    /// Tensors only one model has, or of different shapes, or a classifier whose classes
    /// have no label in common (nothing to compare value by value).
    pub only_a: Vec<String>,
    pub only_b: Vec<String>,
    pub different_shape: Vec<String>,
    /// Classes (labels) only one model has.
    pub classes_only_a: Vec<String>,
    pub classes_only_b: Vec<String>,
    pub shared_classes: usize,
}

/// For every label of A that B has too: (index in A, index in B).
pub fn shared_classes(a: &Model, b: &Model) -> Vec<(i64, i64)> {
    let in_b: std::collections::HashMap<&str, i64> = b
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i as i64))
        .collect();
    a.labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| in_b.get(l.as_str()).map(|&j| (i as i64, j)))
        .collect()
}

fn change(name: &str, x: &Tensor, y: &Tensor, shared_rows: Option<i64>) -> TensorChange {
    let x = x.to_device(Device::Cpu).to_kind(Kind::Double);
    let d = y.to_device(Device::Cpu).to_kind(Kind::Double) - &x;
    let l2 = d.norm().double_value(&[]);
    let base = x.norm().double_value(&[]);
    TensorChange {
        name: name.to_string(),
        shape: x.size(),
        relative_l2: (base > 0.0).then(|| l2 / base).or((l2 == 0.0).then_some(0.0)),
        l2,
        max_abs: if d.numel() == 0 {
            0.0
        } else {
            d.abs().max().double_value(&[])
        },
        values: d.ne(0.0).sum(Kind::Int64).int64_value(&[]),
        of: d.numel() as i64,
        shared_rows,
    }
}

/// Every tensor both models have with the same shape, compared value by value; a
/// classifier whose classes differ, on the rows of the classes both have.
pub fn weight_changes(a: &Model, b: &Model) -> WeightChanges {
    let (va, vb) = (a.vs.variables(), b.vs.variables());
    let shared = shared_classes(a, b);
    let (ia, ib): (Vec<i64>, Vec<i64>) = shared.iter().copied().unzip();
    let heads = |m: &Model| {
        let arch = m.spec.arch;
        [arch.classifier_key().to_string(), crate::finetune::bias_key(arch)]
    };
    let (heads_a, heads_b) = (heads(a), heads(b));
    let mut names: Vec<&String> = va.keys().collect();
    names.sort();
    let mut out = WeightChanges {
        changed: Vec::new(),
        unchanged: 0,
        only_a: Vec::new(),
        only_b: Vec::new(),
        different_shape: Vec::new(),
        classes_only_a: a.labels.iter().filter(|l| !b.labels.contains(l)).cloned().collect(),
        classes_only_b: b.labels.iter().filter(|l| !a.labels.contains(l)).cloned().collect(),
        shared_classes: shared.len(),
    };
    tch::no_grad(|| {
        for n in names {
            let Some(y) = vb.get(n) else {
                out.only_a.push(n.clone());
                continue;
            };
            let x = &va[n];
            let c = if x.size() == y.size() && (shared.len() as i64 == a.spec.classes || !heads_a.contains(n)) {
                change(n, x, y, None)
            } else if heads_a.contains(n) && heads_b.contains(n) && x.size()[1..] == y.size()[1..] && !ia.is_empty() {
                let rows = |t: &Tensor, i: &[i64]| t.index_select(0, &Tensor::from_slice(i).to_device(t.device()));
                change(n, &rows(x, &ia), &rows(y, &ib), Some(ia.len() as i64))
            } else {
                out.different_shape.push(n.clone());
                continue;
            };
            if c.values == 0 {
                out.unchanged += 1;
            } else {
                out.changed.push(c);
            }
        }
    });
    out.only_b = vb.keys().filter(|n| !va.contains_key(*n)).cloned().collect();
    out.only_b.sort();
    out.changed.sort_by(|p, q| {
        let r = |c: &TensorChange| c.relative_l2.unwrap_or(f64::INFINITY);
        r(q).total_cmp(&r(p)).then_with(|| p.name.cmp(&q.name))
    });
    out
}

/// One class's probability under A and B (`None` where that model lacks the class).
#[derive(Debug, Clone, Serialize)]
pub struct ProbabilityChange {
    pub label: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// B - A, where both have the class.
    pub change: Option<f64>,
}

/// Two models on one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageComparison {
    pub top_a: Vec<Class>,
    pub top_b: Vec<Class>,
    /// The classes in either top-k, A's order first, with both probabilities.
    pub changes: Vec<ProbabilityChange>,
    /// The class both maps explain (A's top-1; B's top-1 where B lacks it).
    pub target: String,
    pub method: String,
    /// 1 - Pearson correlation of the two maps (0: the same map, up to scale).
    pub one_minus_pearson: f64,
    /// Spearman rank correlation of the two maps.
    pub spearman: f64,
    #[serde(skip)]
    pub maps: Option<(Map, Map)>,
}

/// The probabilities of every class of a model for one input (batch 1).
fn probabilities(m: &Model, x: &Tensor) -> Result<Vec<f64>> {
    let p = m.logits(x).softmax(-1, Kind::Double).to_device(Device::Cpu);
    Ok(Vec::<f64>::try_from(p.get(0))?)
}

/// Compares A and B on one preprocessed input [1, C, H, W] (both models take the same
/// input), with `method`'s map of the same class for both.
pub fn image(a: &Model, b: &Model, x: &Tensor, top: usize, method: Method, params: &Params) -> Result<ImageComparison> {
    if a.preprocess != b.preprocess || a.spec.in_channels != b.spec.in_channels {
        return Err(Error::invalid(format!(
            "the two models take different inputs ({} x {} px against {} x {} px, or other preprocessing): \
             their answers on one image cannot be compared",
            a.preprocess.size, a.preprocess.size, b.preprocess.size, b.preprocess.size
        )));
    }
    let top_a = a.top_k(&a.logits(x), top)?.remove(0);
    let top_b = b.top_k(&b.logits(x), top)?.remove(0);
    let (pa, pb) = (probabilities(a, x)?, probabilities(b, x)?);
    let index = |m: &Model, l: &str| m.labels.iter().position(|x| x == l);
    let mut labels: Vec<&str> = top_a.iter().chain(&top_b).map(|c| c.label.as_str()).collect();
    let mut seen = std::collections::HashSet::new();
    labels.retain(|l| seen.insert(*l));
    let changes = labels
        .into_iter()
        .map(|l| {
            let (x, y) = (index(a, l).map(|i| pa[i]), index(b, l).map(|i| pb[i]));
            ProbabilityChange {
                label: l.to_string(),
                a: x,
                b: y,
                change: x.zip(y).map(|(x, y)| y - x),
            }
        })
        .collect();
    let target = top_a[0].label.clone();
    let target_b = index(b, &target).map(|i| i as i64).unwrap_or(top_b[0].index);
    let size = a.preprocess.size as i64;
    let map = |m: &Model, t: i64| -> Result<Map> {
        let p = Params {
            target: Some(t),
            ..params.clone()
        };
        let e = explain::explain(m, x, method, &p, &mut |_| true)?;
        attribution_map(&e.attribution, method, size, size)
    };
    let (ma, mb) = (map(a, top_a[0].index)?, map(b, target_b)?);
    Ok(ImageComparison {
        one_minus_pearson: 1.0 - pearson(&ma.data, &mb.data),
        spearman: crate::metrics::spearman(&ma.data, &mb.data),
        top_a,
        top_b,
        changes,
        target,
        method: method.name().to_string(),
        maps: Some((ma, mb)),
    })
}

/// Pearson correlation of two equally long series (0 where one is constant).
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        num += x * y;
        da += x * x;
        db += y * y;
    }
    if da == 0.0 || db == 0.0 {
        return 0.0;
    }
    num / (da * db).sqrt()
}

/// B's map minus A's, each first scaled to its largest |value| (so that two maps of
/// different scales compare by shape): in -1..1 per pixel.
pub fn difference(a: &Map, b: &Map) -> Map {
    let peak = |m: &Map| m.data.iter().fold(0f32, |p, v| p.max(v.abs())).max(1e-12);
    let (pa, pb) = (peak(a), peak(b));
    Map {
        w: a.w,
        h: a.h,
        data: a.data.iter().zip(&b.data).map(|(x, y)| y / pb - x / pa).collect(),
    }
}

/// The pictures of a comparison: A's map and B's over the image the models saw (the
/// method's own colormap), and B - A (red where B looks more, blue where less).
pub fn pictures(view: &image::DynamicImage, c: &ImageComparison, method: Method) -> Option<[image::RgbImage; 3]> {
    use crate::render::{self, Colormap};
    let (a, b) = c.maps.as_ref()?;
    let over = |m: &Map| {
        render::overlay(
            view,
            m,
            Colormap::default_for(method),
            crate::defaults::OVERLAY_OPACITY,
            crate::defaults::OVERLAY_CLIP,
            method.is_cam(),
        )
    };
    Some([
        over(a),
        over(b),
        render::heatmap(&difference(a, b), Colormap::RedBlue, 1.0),
    ])
}

/// Both models' accuracy per shared class on the same labelled images.
#[derive(Debug, Clone, Serialize)]
pub struct AccuracyChange {
    pub label: String,
    pub images: u64,
    pub a: f64,
    pub b: f64,
    pub change: f64,
}

/// Per shared class (present in the data), A's and B's accuracy, most changed first.
pub fn accuracies(a: &crate::evaluate::Evaluation, b: &crate::evaluate::Evaluation) -> Vec<AccuracyChange> {
    let mut out: Vec<AccuracyChange> = a
        .per_class
        .iter()
        .filter_map(|ca| {
            let cb = b.per_class.iter().find(|c| c.label == ca.label)?;
            Some(AccuracyChange {
                label: ca.label.clone(),
                images: ca.total,
                a: ca.accuracy,
                b: cb.accuracy,
                change: cb.accuracy - ca.accuracy,
            })
        })
        .collect();
    out.sort_by(|p, q| {
        q.change
            .abs()
            .total_cmp(&p.change.abs())
            .then_with(|| p.label.cmp(&q.label))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    fn tiny(seed: i64) -> Model {
        tch::manual_seed(seed);
        Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu)
    }

    #[test]
    fn the_same_model_changes_nothing() {
        let a = tiny(1);
        let c = weight_changes(&a, &a);
        assert!(c.changed.is_empty() && c.unchanged > 0 && c.shared_classes == 10);
    }

    #[test]
    fn relative_change_is_the_ratio_of_norms_and_sorts_largest_first() {
        let a = tiny(1);
        let b = crate::metrics::duplicate(&a);
        let vb = b.vs.variables();
        tch::no_grad(|| {
            let mut w = vb["conv1.weight"].shallow_clone();
            let _ = w.g_mul_scalar_(3.0); // relative change 2
            let f = vb["fc2.weight"].shallow_clone();
            let _ = f.get(0).get(0).g_add_scalar_(0.5);
        });
        let c = weight_changes(&a, &b);
        assert_eq!(c.changed.len(), 2);
        assert_eq!(c.changed[0].name, "conv1.weight");
        assert!(
            (c.changed[0].relative_l2.unwrap() - 2.0).abs() < 1e-6,
            "{:?}",
            c.changed[0]
        );
        assert_eq!(c.changed[1].values, 1);
        assert!((c.changed[1].l2 - 0.5).abs() < 1e-6);
    }

    #[test]
    fn models_with_different_classes_compare_the_shared_rows() {
        let a = tiny(1);
        let mut b = Model::new_random(Arch::TinyCnn, 11, 1, Device::Cpu);
        let (va, vb) = (a.vs.variables(), b.vs.variables());
        tch::no_grad(|| {
            for (k, mut v) in vb {
                let s = &va[&k];
                if v.size() == s.size() {
                    v.copy_(s);
                } else {
                    v.narrow(0, 0, 10).copy_(s);
                }
            }
        });
        b.labels = a.labels.iter().cloned().chain(["new".to_string()]).collect();
        let c = weight_changes(&a, &b);
        assert!(c.changed.is_empty(), "{:?}", c.changed);
        assert_eq!(c.classes_only_b, ["new"]);
        assert_eq!(c.shared_classes, 10);
        assert!(c.different_shape.is_empty());
    }

    #[test]
    fn classifiers_without_a_shared_label_are_not_compared_row_by_row() {
        let a = tiny(1);
        let mut b = crate::metrics::duplicate(&a);
        b.labels = (0..10).map(|i| format!("other {i}")).collect();
        let c = weight_changes(&a, &b);
        assert_eq!(c.shared_classes, 0);
        assert_eq!(c.different_shape, ["fc2.bias", "fc2.weight"]);
        assert_eq!(c.classes_only_a.len(), 10);
    }

    #[test]
    fn pearson_and_difference() {
        let a = [1.0f32, 2.0, 3.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&a, &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        let m = |d: &[f32]| Map {
            w: 3,
            h: 1,
            data: d.to_vec(),
        };
        let d = difference(&m(&a), &m(&[2.0, 4.0, 6.0]));
        assert!(d.data.iter().all(|v| v.abs() < 1e-6), "{:?}", d.data);
    }
}
