//! Editing a model by hand: operations on its weights (set, add, scale, zero, seeded noise,
//! re-initialisation, 3x3 kernel presets) and channel knock-outs, each undoable bit for
//! bit. Operations have one readable form, the one the command line takes and the saved
//! edit log holds: `set NAME[i,...]=V`, `add NAME[i,...] V`, `scale NAME[i,...] F`,
//! `zero NAME[i,...]`, `noise NAME[i,...] SIGMA SEED`, `randomize NAME[i,...] SEED`,
//! `preset NAME[o,i] identity|edge|blur|sharpen`, `knockout LAYER:C`, `restore LAYER:C`.
//! Indices are leading: `conv1.weight[3]` is output channel 3, `conv1.weight[3,0,1,1]` one
//! value.

use std::fmt;

use rand::{Rng, SeedableRng};
use tch::{Kind, Tensor};

use super::error::{Error, Result};
use super::model::Model;
use super::noise::seeded_normal;

/// A parameter and leading indices into it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub param: String,
    pub index: Vec<i64>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.index.is_empty() {
            f.write_str(&self.param)
        } else {
            let idx: Vec<String> = self.index.iter().map(|i| i.to_string()).collect();
            write!(f, "{}[{}]", self.param, idx.join(","))
        }
    }
}

/// A 3x3 kernel to put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Identity,
    Edge,
    Blur,
    Sharpen,
}

impl Preset {
    pub const ALL: &'static [Preset] = &[Preset::Identity, Preset::Edge, Preset::Blur, Preset::Sharpen];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Identity => "identity",
            Preset::Edge => "edge",
            Preset::Blur => "blur",
            Preset::Sharpen => "sharpen",
        }
    }

    /// The kernel, row by row.
    pub fn kernel(self) -> [f32; 9] {
        match self {
            Preset::Identity => [0., 0., 0., 0., 1., 0., 0., 0., 0.],
            Preset::Edge => [-1., -1., -1., -1., 8., -1., -1., -1., -1.],
            Preset::Blur => [1. / 9.; 9],
            Preset::Sharpen => [0., -1., 0., -1., 5., -1., 0., -1., 0.],
        }
    }
}

/// One edit.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Set(Target, f64),
    Add(Target, f64),
    Scale(Target, f64),
    Zero(Target),
    Noise(Target, f64, u64),
    /// Re-initialised as PyTorch does (the whole parameter, or the indexed part of it).
    Randomize(Target, u64),
    Preset(Target, Preset),
    /// Channel `channel` of a traced layer's output is zero in every forward and backward.
    Knockout(String, i64),
    /// Brings a knocked-out channel back.
    Restore(String, i64),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Set(t, v) => write!(f, "set {t}={v}"),
            Op::Add(t, v) => write!(f, "add {t} {v}"),
            Op::Scale(t, v) => write!(f, "scale {t} {v}"),
            Op::Zero(t) => write!(f, "zero {t}"),
            Op::Noise(t, s, seed) => write!(f, "noise {t} {s} {seed}"),
            Op::Randomize(t, seed) => write!(f, "randomize {t} {seed}"),
            Op::Preset(t, p) => write!(f, "preset {t} {}", p.name()),
            Op::Knockout(l, c) => write!(f, "knockout {l}:{c}"),
            Op::Restore(l, c) => write!(f, "restore {l}:{c}"),
        }
    }
}

/// The valid forms, for error messages.
pub const FORMS: &str = "set NAME[i,...]=V | add NAME[i,...] V | scale NAME[i,...] F | zero NAME[i,...] | noise NAME[i,...] SIGMA SEED | randomize NAME[i,...] SEED | preset NAME[o,i] identity|edge|blur|sharpen | knockout LAYER:C | restore LAYER:C";

fn parse_target(s: &str) -> std::result::Result<Target, String> {
    let s = s.trim();
    match s.find('[') {
        None => {
            if s.is_empty() || s.contains(']') {
                return Err(format!("`{s}` is not a parameter name"));
            }
            Ok(Target {
                param: s.to_owned(),
                index: Vec::new(),
            })
        }
        Some(open) => {
            let close = s
                .strip_suffix(']')
                .ok_or_else(|| format!("`{s}`: the index must end with `]`"))?;
            let param = &s[..open];
            let inner = &close[open + 1..];
            let index = inner
                .split(',')
                .map(|x| x.trim().parse::<i64>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|_| format!("`{s}`: indices are whole numbers from 0, like [3,0,1,1]"))?;
            if param.is_empty() || index.iter().any(|i| *i < 0) {
                return Err(format!("`{s}`: give NAME[i,...] with indices from 0"));
            }
            Ok(Target {
                param: param.to_owned(),
                index,
            })
        }
    }
}

fn number(s: &str, what: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{what} `{s}` is not a finite number")),
    }
}

fn layer_channel(s: &str) -> std::result::Result<(String, i64), String> {
    let (l, c) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}`: give LAYER:CHANNEL, like _blocks.3:7"))?;
    let c = c
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|c| *c >= 0)
        .ok_or_else(|| format!("`{s}`: the channel is a whole number from 0"))?;
    Ok((l.trim().to_owned(), c))
}

impl std::str::FromStr for Op {
    type Err = Error;
    fn from_str(s: &str) -> Result<Op> {
        let bad = |why: String| Error::invalid(format!("edit `{s}`: {why}; the forms are: {FORMS}"));
        let words: Vec<&str> = s.split_whitespace().collect();
        let op = match words.as_slice() {
            ["set", rest @ ..] => {
                let joined = rest.join("");
                let (t, v) = joined
                    .split_once('=')
                    .ok_or_else(|| bad("set needs NAME[i,...]=V".into()))?;
                Op::Set(parse_target(t).map_err(bad)?, number(v, "the value").map_err(bad)?)
            }
            ["add", t, v] => Op::Add(parse_target(t).map_err(bad)?, number(v, "the value").map_err(bad)?),
            ["scale", t, v] => Op::Scale(parse_target(t).map_err(bad)?, number(v, "the factor").map_err(bad)?),
            ["zero", t] => Op::Zero(parse_target(t).map_err(bad)?),
            ["noise", t, sigma, seed] => {
                let sigma = number(sigma, "sigma").map_err(bad)?;
                if sigma <= 0.0 {
                    return Err(bad("sigma must be greater than 0".into()));
                }
                let seed = seed
                    .parse::<u64>()
                    .map_err(|_| bad("the seed is a whole number".into()))?;
                Op::Noise(parse_target(t).map_err(bad)?, sigma, seed)
            }
            ["randomize", t, seed] => {
                let seed = seed
                    .parse::<u64>()
                    .map_err(|_| bad("the seed is a whole number".into()))?;
                Op::Randomize(parse_target(t).map_err(bad)?, seed)
            }
            ["preset", t, name] => {
                let p = Preset::ALL
                    .iter()
                    .copied()
                    .find(|p| p.name() == *name)
                    .ok_or_else(|| bad(format!("unknown preset `{name}` (identity, edge, blur, sharpen)")))?;
                let t = parse_target(t).map_err(bad)?;
                if t.index.len() != 2 {
                    return Err(bad("a preset replaces one 3x3 kernel: NAME[o,i]".into()));
                }
                Op::Preset(t, p)
            }
            ["knockout", lc] => {
                let (l, c) = layer_channel(lc).map_err(bad)?;
                Op::Knockout(l, c)
            }
            ["restore", lc] => {
                let (l, c) = layer_channel(lc).map_err(bad)?;
                Op::Restore(l, c)
            }
            _ => return Err(bad("not an edit".into())),
        };
        Ok(op)
    }
}

/// What an applied edit replaced, to undo it bit for bit.
#[derive(Debug)]
enum Before {
    /// The values of a region of a parameter.
    Values(Target, Tensor),
    /// Whether the channel was knocked out.
    Knocked(bool),
}

/// The region of `t` that a target names, checked against the parameter's shape.
fn region(model: &Model, t: &Target) -> Result<Tensor> {
    let vars = model.vs.variables();
    let p = vars.get(&t.param).ok_or_else(|| {
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        let sample: Vec<&str> = names.iter().take(6).map(|s| s.as_str()).collect();
        Error::invalid(format!(
            "`{}` is not a parameter of this model; parameters are named like: {} (`glassbox layers` lists the layers)",
            t.param,
            sample.join(", ")
        ))
    })?;
    let shape = p.size();
    if t.index.len() > shape.len() {
        return Err(Error::invalid(format!(
            "`{t}`: {} indices for a parameter of shape {shape:?}",
            t.index.len()
        )));
    }
    let mut r = p.shallow_clone();
    for (d, &i) in t.index.iter().enumerate() {
        if i >= shape[d] {
            return Err(Error::invalid(format!(
                "`{t}`: index {i} is out of range for dimension {d} of size {}; `{}` has shape {shape:?}",
                shape[d], t.param
            )));
        }
        r = r.select(0, i);
    }
    Ok(r)
}

/// Uniform noise in [-bound, bound] of `shape`, from `seed`.
fn seeded_uniform(shape: &[i64], bound: f64, seed: u64) -> Tensor {
    let n = shape.iter().product::<i64>() as usize;
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(seed);
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..=bound) as f32).collect();
    Tensor::from_slice(&v).view(shape)
}

/// The values PyTorch's default initialisation gives `name` (uniform in ±1/sqrt(fan-in)
/// for convolution and linear weights and their biases; ones and zeros for batch norm).
fn initial(model: &Model, name: &str, t: &Tensor, seed: u64) -> Tensor {
    let shape = t.size();
    let vars = model.vs.variables();
    let fan_in = |w: &Tensor| {
        let s = w.size();
        (s.iter().skip(1).product::<i64>()).max(1) as f64
    };
    if shape.len() >= 2 {
        return seeded_uniform(&shape, 1.0 / fan_in(t).sqrt(), seed);
    }
    let base = name.rsplit_once('.').map_or("", |(b, _)| b);
    let weight = vars.get(&format!("{base}.weight"));
    let is_bn = weight.is_some_and(|w| w.dim() == 1);
    if name.ends_with("running_var") || (is_bn && name.ends_with(".weight")) {
        Tensor::ones(&shape, (Kind::Float, tch::Device::Cpu))
    } else if name.ends_with("running_mean") || is_bn {
        Tensor::zeros(&shape, (Kind::Float, tch::Device::Cpu))
    } else {
        let b = weight.map_or(1.0, |w| 1.0 / fan_in(w).sqrt());
        seeded_uniform(&shape, b, seed)
    }
}

/// The edits made to a model, undoable and redoable without limit, bit for bit.
#[derive(Debug, Default)]
pub struct Editor {
    done: Vec<(Op, Before)>,
    undone: Vec<Op>,
}

impl Editor {
    /// Applies `op` to `model`; a new edit forgets what was undone.
    pub fn apply(&mut self, model: &mut Model, op: Op) -> Result<()> {
        let before = apply_op(model, &op)?;
        self.done.push((op, before));
        self.undone.clear();
        Ok(())
    }

    /// Undoes the last edit: the values it changed are exactly what they were.
    pub fn undo(&mut self, model: &mut Model) -> Result<bool> {
        let Some((op, before)) = self.done.pop() else {
            return Ok(false);
        };
        restore(model, &op, before)?;
        self.undone.push(op);
        Ok(true)
    }

    /// Applies again the last undone edit.
    pub fn redo(&mut self, model: &mut Model) -> Result<bool> {
        let Some(op) = self.undone.pop() else {
            return Ok(false);
        };
        let before = apply_op(model, &op)?;
        self.done.push((op, before));
        Ok(true)
    }

    /// Undoes every edit: the original model.
    pub fn reset(&mut self, model: &mut Model) -> Result<()> {
        while self.undo(model)? {}
        Ok(())
    }

    /// Goes back (or forward) to the point after the first `n` edits of the log.
    pub fn go_to(&mut self, model: &mut Model, n: usize) -> Result<()> {
        while self.done.len() > n {
            self.undo(model)?;
        }
        while self.done.len() < n && self.redo(model)? {}
        Ok(())
    }

    /// The edits in force, in order, in their readable form.
    pub fn log(&self) -> Vec<String> {
        self.done.iter().map(|(op, _)| op.to_string()).collect()
    }

    /// Edits that can be redone.
    pub fn redoable(&self) -> usize {
        self.undone.len()
    }
}

fn apply_op(model: &mut Model, op: &Op) -> Result<Before> {
    match op {
        Op::Knockout(layer, c) | Op::Restore(layer, c) => {
            super::model::check_channel(model, layer, *c)?;
            let key = (layer.clone(), *c);
            let was = model.knockouts.contains(&key);
            if matches!(op, Op::Knockout(..)) {
                model.knockouts.insert(key);
            } else {
                model.knockouts.remove(&key);
            }
            return Ok(Before::Knocked(was));
        }
        Op::Randomize(t, seed) => {
            let whole = region(
                model,
                &Target {
                    param: t.param.clone(),
                    index: Vec::new(),
                },
            )?;
            let r = region(model, t)?;
            let before = r.detach().copy();
            // The whole parameter's initial values, then the part the target names.
            let mut init = initial(model, &t.param, &whole, *seed);
            for &i in &t.index {
                init = init.select(0, i);
            }
            tch::no_grad(|| r.shallow_clone().copy_(&init.to_device(r.device()).to_kind(r.kind())));
            return Ok(Before::Values(t.clone(), before));
        }
        _ => {}
    }
    let t = match op {
        Op::Set(t, _) | Op::Add(t, _) | Op::Scale(t, _) | Op::Zero(t) | Op::Noise(t, _, _) | Op::Preset(t, _) => t,
        _ => unreachable!("handled above"),
    };
    let r = region(model, t)?;
    // A number the weights' type cannot hold is refused here: libtorch's conversion of it
    // fails (and tch turns that failure into a panic).
    let number = match op {
        Op::Set(_, v) => Some(("the value", *v)),
        Op::Add(_, v) => Some(("the value", *v)),
        Op::Scale(_, v) => Some(("the factor", *v)),
        Op::Noise(_, sigma, _) => Some(("sigma", *sigma)),
        _ => None,
    };
    if let Some((what, v)) = number {
        let max = largest_of(r.kind());
        if v.abs() > max {
            return Err(Error::invalid(format!(
                "edit `{op}`: {what} {v:e} is beyond what `{}`'s {:?} values hold (at most {max:e} in size); give a smaller number",
                t.param,
                r.kind()
            )));
        }
    }
    if let Op::Preset(..) = op {
        if r.size() != [3, 3] {
            return Err(Error::invalid(format!(
                "`{t}` is a kernel of shape {:?}; presets are 3x3",
                r.size()
            )));
        }
    }
    let before = r.detach().copy();
    tch::no_grad(|| {
        let mut r = r.shallow_clone();
        match op {
            Op::Set(_, v) => {
                let _ = r.fill_(*v);
            }
            Op::Add(_, v) => {
                let _ = r.g_add_scalar_(*v);
            }
            Op::Scale(_, v) => {
                let _ = r.g_mul_scalar_(*v);
            }
            Op::Zero(_) => {
                let _ = r.zero_();
            }
            Op::Noise(_, sigma, seed) => {
                // Viewed as the target: a single value is a 0-d tensor, the draw [1].
                let n = seeded_normal(&r.size(), *seed as i64, 0).view(r.size().as_slice()) * *sigma;
                let _ = r.g_add_(&n.to_device(r.device()).to_kind(r.kind()));
            }
            Op::Preset(_, p) => {
                let k = Tensor::from_slice(&p.kernel()).view([3, 3]);
                r.copy_(&k.to_device(r.device()).to_kind(r.kind()));
            }
            _ => unreachable!("handled above"),
        }
    });
    Ok(Before::Values(t.clone(), before))
}

/// The largest finite value a tensor of `kind` holds.
fn largest_of(kind: tch::Kind) -> f64 {
    match kind {
        tch::Kind::Half => 65504.0,
        tch::Kind::BFloat16 => 3.389_531_389_251_535e38,
        tch::Kind::Double => f64::MAX,
        _ => f32::MAX as f64,
    }
}

fn restore(model: &mut Model, op: &Op, before: Before) -> Result<()> {
    match before {
        Before::Knocked(was) => {
            let (Op::Knockout(l, c) | Op::Restore(l, c)) = op else {
                unreachable!("knock-outs record their state")
            };
            if was {
                model.knockouts.insert((l.clone(), *c));
            } else {
                model.knockouts.remove(&(l.clone(), *c));
            }
        }
        Before::Values(t, values) => {
            let r = region(model, &t)?;
            tch::no_grad(|| r.shallow_clone().copy_(&values));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    #[test]
    fn ops_read_and_write_their_one_form() {
        for s in [
            "set conv1.weight[3,0,1,1]=0.5",
            "add conv1.weight[3] -0.25",
            "scale fc2.weight 2",
            "zero bn1.bias[4]",
            "noise conv2.weight[1,2] 0.1 7",
            "randomize conv1.weight 3",
            "randomize conv2.weight[1,2] 4",
            "preset conv1.weight[0,0] edge",
            "knockout relu1:5",
            "restore relu1:5",
        ] {
            let op: Op = s.parse().unwrap();
            assert_eq!(op.to_string(), s);
        }
        let e = "set conv1.weight[a]=1".parse::<Op>().unwrap_err().to_string();
        assert!(e.contains("whole numbers") && e.contains("knockout LAYER:C"), "{e}");
        assert!("preset conv1.weight[0] blur".parse::<Op>().is_err());
        assert!("noise w 0 1".parse::<Op>().is_err());
        assert!("set w=inf".parse::<Op>().is_err());
    }

    #[test]
    fn every_edit_undoes_bit_for_bit_and_redoes() {
        let mut m = Model::new_random(Arch::TinyCnn, 10, 1, tch::Device::Cpu);
        let snapshot = |m: &Model| -> Vec<(String, Tensor)> {
            let mut v: Vec<(String, Tensor)> = m.vs.variables().into_iter().map(|(k, t)| (k, t.copy())).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let original = snapshot(&m);
        let mut ed = Editor::default();
        for s in [
            "set conv1.weight[3,0,1,1]=0.5",
            "add conv1.weight[3] 0.1",
            "scale fc2.weight 1.7",
            "zero bn1.bias[4]",
            "noise conv2.weight[1] 0.3 9",
            "randomize fc1.weight 2",
            "randomize bn2.weight 2",
            "preset conv1.weight[0,0] sharpen",
            "knockout relu1:5",
        ] {
            ed.apply(&mut m, s.parse().unwrap()).unwrap();
        }
        assert_eq!(ed.log().len(), 9);
        assert!(m.knockouts.contains(&("relu1".to_string(), 5)));
        let edited = snapshot(&m);
        assert!(edited.iter().zip(&original).any(|(a, b)| !a.1.equal(&b.1)));
        ed.reset(&mut m).unwrap();
        for ((n, a), (_, b)) in snapshot(&m).iter().zip(&original) {
            assert!(a.equal(b), "{n} is not bit for bit the original");
        }
        assert!(m.knockouts.is_empty());
        ed.go_to(&mut m, 9).unwrap();
        for ((n, a), (_, b)) in snapshot(&m).iter().zip(&edited) {
            assert!(a.equal(b), "{n}: redo differs");
        }
        // Errors name the valid range and the shape; nothing is changed.
        let e = ed
            .apply(&mut m, "zero conv1.weight[16]".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("index 16") && e.contains("[16, 1, 3, 3]"), "{e}");
        let e = ed
            .apply(&mut m, "knockout relu1:16".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 to 15"), "{e}");
        assert_eq!(ed.log().len(), 9);
    }

    #[test]
    fn a_knocked_out_channel_is_zero_in_the_forward() {
        let mut m = Model::new_random(Arch::TinyCnn, 10, 1, tch::Device::Cpu);
        m.knockouts.insert(("relu1".into(), 3));
        let x = Tensor::randn([2, 1, 28, 28], (Kind::Float, tch::Device::Cpu));
        let (_, traced) = m.trace(&x);
        let relu1 = traced.iter().find(|t| t.name == "relu1").unwrap();
        assert_eq!(relu1.output.get(0).get(3).abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert!(relu1.output.get(0).get(2).abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}

/// How one tensor differs between two models.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TensorDiff {
    pub name: String,
    /// Values that differ, of `of`.
    pub values: i64,
    pub of: i64,
    pub max_abs: f64,
    pub l2: f64,
}

/// What differs between two models of the same architecture: the tensors that changed, and
/// both edit logs and knock-outs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diff {
    pub changed: Vec<TensorDiff>,
    pub unchanged: usize,
    pub edits_a: Vec<String>,
    pub edits_b: Vec<String>,
    pub knockouts_a: Vec<String>,
    pub knockouts_b: Vec<String>,
}

/// The metadata that records an edit log in a saved file.
pub fn log_metadata(log: &[String]) -> std::collections::BTreeMap<String, String> {
    std::collections::BTreeMap::from([(
        super::model::meta::EDITS.to_string(),
        serde_json::to_string(log).expect("strings serialise"),
    )])
}

/// The edit log saved in a model's metadata.
pub fn saved_log(model: &Model) -> Vec<String> {
    model
        .metadata
        .get(super::model::meta::EDITS)
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default()
}

pub fn diff(a: &Model, b: &Model) -> Result<Diff> {
    if a.spec != b.spec {
        return Err(Error::invalid(format!(
            "the models differ in architecture or shape ({} with {} classes, {} with {} classes): there is nothing to compare value by value",
            a.spec.arch, a.spec.classes, b.spec.arch, b.spec.classes
        )));
    }
    let (va, vb) = (a.vs.variables(), b.vs.variables());
    let mut names: Vec<&String> = va.keys().collect();
    names.sort();
    let mut changed = Vec::new();
    let mut unchanged = 0;
    for n in names {
        let (x, y) = (&va[n], &vb[n]);
        let d = (x.to_kind(Kind::Double) - y.to_kind(Kind::Double).to_device(x.device())).to_device(tch::Device::Cpu);
        let values = d.ne(0.0).sum(Kind::Int64).int64_value(&[]);
        if values == 0 {
            unchanged += 1;
            continue;
        }
        changed.push(TensorDiff {
            name: n.clone(),
            values,
            of: x.numel() as i64,
            max_abs: d.abs().max().double_value(&[]),
            l2: d.norm().double_value(&[]),
        });
    }
    let knocked = |m: &Model| m.knockouts.iter().map(|(l, c)| format!("{l}:{c}")).collect();
    Ok(Diff {
        changed,
        unchanged,
        edits_a: saved_log(a),
        edits_b: saved_log(b),
        knockouts_a: knocked(a),
        knockouts_b: knocked(b),
    })
}

/// The values each edit writes, its errors, and the editor's history (the integration test
/// `tests/edit_values.rs` checks the same values through the public API).
#[cfg(test)]
mod value_tests {
    use super::*;
    use crate::arch::Arch;
    use tch::Device;

    fn tiny() -> Model {
        Model::new_random(Arch::TinyCnn, 10, 1, Device::Cpu)
    }

    fn var(m: &Model, name: &str) -> Tensor {
        m.vs.variables()[name].copy()
    }

    fn apply(m: &mut Model, s: &str) -> Result<()> {
        Editor::default().apply(m, s.parse()?)
    }

    #[test]
    fn the_presets_kernels_and_names() {
        let k: Vec<[f32; 9]> = Preset::ALL.iter().map(|p| p.kernel()).collect();
        assert_eq!(k[0], [0., 0., 0., 0., 1., 0., 0., 0., 0.]);
        assert_eq!(k[1], [-1., -1., -1., -1., 8., -1., -1., -1., -1.]);
        assert_eq!(k[2], [1. / 9.; 9]);
        assert_eq!(k[3], [0., -1., 0., -1., 5., -1., 0., -1., 0.]);
        let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["identity", "edge", "blur", "sharpen"]);
        let mut m = tiny();
        for p in Preset::ALL {
            apply(&mut m, &format!("preset conv2.weight[4,7] {}", p.name())).unwrap();
            let got = Vec::<f32>::try_from(&var(&m, "conv2.weight").get(4).get(7).view([-1])).unwrap();
            assert_eq!(got, p.kernel(), "{}", p.name());
        }
        let e = apply(&mut m, "preset fc1.weight[0,0] blur").unwrap_err().to_string();
        assert!(
            e.contains("`fc1.weight[0,0]` is a kernel of shape []; presets are 3x3"),
            "{e}"
        );
    }

    #[test]
    fn targets_and_numbers_read_strictly() {
        let t = |s: &str| parse_target(s);
        assert_eq!(
            t(" w ").unwrap(),
            Target {
                param: "w".into(),
                index: vec![]
            }
        );
        assert_eq!(
            t("w[ 1 , 2 ]").unwrap(),
            Target {
                param: "w".into(),
                index: vec![1, 2]
            }
        );
        assert_eq!(t("w[1,2]").unwrap().to_string(), "w[1,2]");
        assert_eq!(t("w").unwrap().to_string(), "w");
        for (bad, says) in [
            ("", "is not a parameter name"),
            ("w]", "is not a parameter name"),
            ("w[1", "must end with `]`"),
            ("w[a]", "indices are whole numbers"),
            ("[1]", "give NAME[i,...] with indices from 0"),
            ("w[-1]", "give NAME[i,...] with indices from 0"),
        ] {
            let e = t(bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        assert_eq!(number(" 2.5 ", "x"), Ok(2.5));
        for bad in ["nan", "inf", "-inf", "two"] {
            assert_eq!(
                number(bad, "the value"),
                Err(format!("the value `{bad}` is not a finite number"))
            );
        }
        assert_eq!(layer_channel("a:b: 3 "), Ok(("a:b".to_string(), 3)));
        assert!(layer_channel("relu1").unwrap_err().contains("give LAYER:CHANNEL"));
        assert!(layer_channel("relu1:-1").unwrap_err().contains("a whole number from 0"));
        assert!(layer_channel("relu1:x").unwrap_err().contains("a whole number from 0"));
    }

    #[test]
    fn each_form_refuses_what_it_cannot_read() {
        let e = |s: &str| s.parse::<Op>().unwrap_err().to_string();
        assert_eq!(
            "set w[1] = 2".parse::<Op>().unwrap(),
            Op::Set(parse_target("w[1]").unwrap(), 2.0)
        );
        assert!(e("set w 2").contains("set needs NAME[i,...]=V"));
        assert!(e("noise w 0 1").contains("sigma must be greater than 0"));
        assert!(e("noise w -1 1").contains("sigma must be greater than 0"));
        assert!(e("noise w 1 x").contains("the seed is a whole number"));
        assert!(e("randomize w -3").contains("the seed is a whole number"));
        assert!(e("preset w[0,0] fancy").contains("unknown preset `fancy`"));
        assert!(e("preset w[0,0,1] blur").contains("a preset replaces one 3x3 kernel"));
        assert!(e("frobnicate w").contains("not an edit"));
        assert!(e("add w").contains("not an edit"));
        assert!(e("scale w two").contains("the factor `two` is not a finite number"));
        assert!(e("knockout relu1").contains("LAYER:CHANNEL"));
        assert!(e("restore relu1:x").contains("whole number"));
        assert!(e("zero w[").contains("must end with"));
    }

    #[test]
    fn set_add_scale_zero_and_noise_write_their_values_there_only() {
        let mut m = tiny();
        let w0 = var(&m, "conv2.weight");
        apply(&mut m, "set conv2.weight[3,1,2,0]=0.75").unwrap();
        let w = var(&m, "conv2.weight");
        assert_eq!(w.double_value(&[3, 1, 2, 0]), 0.75);
        let _ = w0.get(3).get(1).get(2).get(0).shallow_clone().fill_(0.75);
        assert!(w.equal(&w0), "only that value");
        let w0 = var(&m, "conv2.weight");
        apply(&mut m, "add conv2.weight[5] 0.5").unwrap();
        let w = var(&m, "conv2.weight");
        assert!(w.get(5).equal(&(w0.get(5) + 0.5)));
        assert!(w.get(4).equal(&w0.get(4)) && w.get(6).equal(&w0.get(6)));
        apply(&mut m, "scale conv2.weight[6,2] -3").unwrap();
        let w1 = var(&m, "conv2.weight");
        assert!(w1.get(6).get(2).equal(&(w.get(6).get(2) * -3.0)));
        assert!(w1.get(6).get(1).equal(&w.get(6).get(1)));
        apply(&mut m, "zero bn1.bias[4]").unwrap();
        assert_eq!(var(&m, "bn1.bias").double_value(&[4]), 0.0);
        let w0 = var(&m, "fc2.weight");
        apply(&mut m, "noise fc2.weight[2] 0.3 9").unwrap();
        let want = &w0.get(2) + seeded_normal(&[128], 9, 0) * 0.3;
        assert!(var(&m, "fc2.weight").get(2).allclose(&want, 1e-6, 1e-7, false));
        assert!(var(&m, "fc2.weight").get(3).equal(&w0.get(3)));
        // One value: a 0-d target, its draw the first of the stream.
        let b0 = var(&m, "fc2.bias").double_value(&[1]);
        apply(&mut m, "noise fc2.bias[1] 2 5").unwrap();
        let n = seeded_normal(&[1], 5, 0).double_value(&[0]);
        assert!((var(&m, "fc2.bias").double_value(&[1]) - (b0 + 2.0 * n)).abs() < 1e-6);
    }

    #[test]
    fn randomize_draws_pytorchs_default_ranges_seeded() {
        let mut m = tiny();
        tch::no_grad(|| {
            for (n, mut v) in m.vs.variables() {
                if n.starts_with("bn") {
                    let _ = v.fill_(0.3);
                }
            }
        });
        apply(&mut m, "randomize conv2.weight 7").unwrap();
        let w = var(&m, "conv2.weight");
        // fan-in 16 x 3 x 3 = 144: uniform in +-1/12, drawn by the seed.
        assert!(w.equal(&seeded_uniform(&[32, 16, 3, 3], 1.0 / 12.0, 7)));
        let max = w.abs().max().double_value(&[]);
        assert!(max <= 1.0 / 12.0 + 1e-7 && max > 0.9 / 12.0, "{max}");
        let (lo, hi) = (w.min().double_value(&[]), w.max().double_value(&[]));
        assert!(lo < -0.9 / 12.0 && hi > 0.9 / 12.0, "both signs: {lo} {hi}");
        // Part of a parameter: that part of the whole parameter's draw.
        let mut m2 = tiny();
        apply(&mut m2, "randomize conv2.weight[5,3] 7").unwrap();
        assert!(var(&m2, "conv2.weight").get(5).get(3).equal(&w.get(5).get(3)));
        // A bias: uniform in +-1/sqrt(fan-in of its weight), 1568 for fc1.
        apply(&mut m, "randomize fc1.bias 2").unwrap();
        assert!(var(&m, "fc1.bias").equal(&seeded_uniform(&[128], 1.0 / 1568f64.sqrt(), 2)));
        // Batch norm: weight and running variance ones, bias and running mean zeros.
        for (name, value) in [
            ("bn1.weight", 1.0),
            ("bn1.bias", 0.0),
            ("bn1.running_var", 1.0),
            ("bn1.running_mean", 0.0),
        ] {
            apply(&mut m, &format!("randomize {name} 1")).unwrap();
            assert!(
                var(&m, name).equal(&Tensor::full([16], value, (Kind::Float, Device::Cpu))),
                "{name}"
            );
        }
        apply(&mut m, "randomize bn2.weight[3] 1").unwrap();
        let bn2 = var(&m, "bn2.weight");
        assert_eq!((bn2.double_value(&[3]), bn2.double_value(&[2])), (1.0, 0.3f32 as f64));
    }

    #[test]
    fn numbers_beyond_the_weights_type_and_indices_beyond_the_shape_are_refused() {
        assert_eq!(largest_of(Kind::Half), 65504.0);
        assert_eq!(largest_of(Kind::BFloat16), 3.389_531_389_251_535e38);
        assert_eq!(largest_of(Kind::Double), f64::MAX);
        assert_eq!(largest_of(Kind::Float), f32::MAX as f64);
        let mut m = tiny();
        assert!(apply(&mut m, "set conv1.weight[0,0,0,0]=3e38").is_ok());
        // The largest value itself fits.
        assert!(apply(&mut m, &format!("set conv1.weight[0,0,0,0]={:e}", f32::MAX as f64)).is_ok());
        assert_eq!(
            m.vs.variables()["conv1.weight"].double_value(&[0, 0, 0, 0]),
            f32::MAX as f64
        );
        let e = apply(&mut m, "set conv1.weight[0,0,0,0]=-1e39")
            .unwrap_err()
            .to_string();
        assert!(e.contains("the value -1e39 is beyond"), "{e}");
        let e = apply(&mut m, "add conv1.weight[0] -4e38").unwrap_err().to_string();
        assert!(
            e.contains("the value -4e38 is beyond what `conv1.weight`'s Float values hold"),
            "{e}"
        );
        let e = apply(&mut m, "scale conv1.weight 1e39").unwrap_err().to_string();
        assert!(e.contains("the factor 1e39"), "{e}");
        let e = apply(&mut m, "noise conv1.weight 1e39 1").unwrap_err().to_string();
        assert!(e.contains("sigma 1e39"), "{e}");
        let e = apply(&mut m, "zero conv9.weight").unwrap_err().to_string();
        assert!(
            e.contains("`conv9.weight` is not a parameter of this model; parameters are named like: bn1.bias, "),
            "{e}"
        );
        assert_eq!(e.matches(", ").count(), 5, "six names: {e}");
        let e = apply(&mut m, "zero bn1.bias[1,2]").unwrap_err().to_string();
        assert!(e.contains("2 indices for a parameter of shape [16]"), "{e}");
        let e = apply(&mut m, "zero conv1.weight[15,1]").unwrap_err().to_string();
        assert!(e.contains("index 1 is out of range for dimension 1 of size 1"), "{e}");
        assert!(apply(&mut m, "zero conv1.weight[15,0]").is_ok());
    }

    #[test]
    fn the_history_undoes_redoes_and_forgets_the_undone_on_a_new_edit() {
        let mut m = tiny();
        let mut ed = Editor::default();
        assert!(!ed.undo(&mut m).unwrap() && !ed.redo(&mut m).unwrap());
        for s in [
            "zero bn1.bias[1]",
            "knockout relu1:2",
            "knockout relu1:2",
            "restore relu1:3",
        ] {
            ed.apply(&mut m, s.parse().unwrap()).unwrap();
        }
        assert_eq!(
            ed.log(),
            [
                "zero bn1.bias[1]",
                "knockout relu1:2",
                "knockout relu1:2",
                "restore relu1:3"
            ]
        );
        // Undoing the second knock-out keeps the first.
        ed.go_to(&mut m, 2).unwrap();
        assert!(m.knockouts.contains(&("relu1".into(), 2)));
        assert_eq!((ed.log().len(), ed.redoable()), (2, 2));
        ed.go_to(&mut m, 1).unwrap();
        assert!(m.knockouts.is_empty());
        ed.go_to(&mut m, 3).unwrap();
        assert_eq!((ed.log().len(), ed.redoable()), (3, 1));
        ed.apply(&mut m, "set bn1.bias[0]=2".parse().unwrap()).unwrap();
        assert_eq!(ed.redoable(), 0, "a new edit forgets what was undone");
        ed.go_to(&mut m, 10).unwrap();
        assert_eq!(ed.log().len(), 4, "no further than the log");
        // Restoring a channel that was knocked out, then undoing: knocked out again.
        ed.apply(&mut m, "restore relu1:2".parse().unwrap()).unwrap();
        assert!(m.knockouts.is_empty());
        assert!(ed.undo(&mut m).unwrap());
        assert!(m.knockouts.contains(&("relu1".into(), 2)));
        ed.reset(&mut m).unwrap();
        assert!(m.knockouts.is_empty() && ed.log().is_empty() && ed.redoable() == 5);
        let e = crate::model::check_channel(&m, "relu9", 0).unwrap_err().to_string();
        assert!(e.contains("unknown layer `relu9`; traced layers: conv1"), "{e}");
        assert!(crate::model::check_channel(&m, "relu1", 15).is_ok());
        let e = crate::model::check_channel(&m, "relu1", 16).unwrap_err().to_string();
        assert!(e.contains("`relu1` has channels 0 to 15, not 16"), "{e}");
    }

    #[test]
    fn a_diff_counts_the_values_that_differ_and_their_size() {
        let a = tiny();
        let mut b = crate::metrics::duplicate(&a);
        apply(&mut b, "add conv1.weight[2] 0.5").unwrap();
        apply(&mut b, "set fc2.bias[3]=-2").unwrap();
        b.knockouts.insert(("relu2".into(), 7));
        b.metadata.insert(
            crate::model::meta::EDITS.into(),
            r#"["add conv1.weight[2] 0.5"]"#.into(),
        );
        let d = diff(&a, &b).unwrap();
        let names: Vec<&str> = d.changed.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["conv1.weight", "fc2.bias"]);
        let c = &d.changed[0];
        assert_eq!((c.values, c.of), (9, 144));
        assert!((c.max_abs - 0.5).abs() < 1e-6 && (c.l2 - 1.5).abs() < 1e-5, "{c:?}");
        let f = &d.changed[1];
        let was = a.vs.variables()["fc2.bias"].double_value(&[3]);
        assert_eq!((f.values, f.of), (1, 10));
        assert!((f.max_abs - (was + 2.0).abs()).abs() < 1e-6);
        assert_eq!(d.unchanged, a.vs.variables().len() - 2);
        assert_eq!(
            (d.edits_a.len(), d.edits_b.clone()),
            (0, vec!["add conv1.weight[2] 0.5".to_string()])
        );
        assert_eq!(
            (d.knockouts_a.len(), d.knockouts_b.clone()),
            (0, vec!["relu2:7".to_string()])
        );
        let other = Model::new_random(Arch::TinyCnn, 12, 1, Device::Cpu);
        let e = diff(&a, &other).unwrap_err().to_string();
        assert!(e.contains("with 10 classes, ") && e.contains("with 12 classes)"), "{e}");
    }
}
