//! Layer-wise relevance propagation: the rules of Zennit 0.5 (Anders et al. 2021), per layer,
//! and the three composites Glassbox offers. No model here: `layers.rs` applies a rule to
//! each layer during a relevance forward, `explain/lrp.rs` runs one.
//!
//! How a rule runs inside one ordinary backward pass. Relevance at a tensor `a` is carried as
//! `R = a * g`, `g` being the gradient autograd brings there. A layer with output `y` and a
//! rule whose modified outputs are `z_i(x)` (its input or a part of it, `x+` or `x-`, through
//! modified weights) and whose relevance is `R_in = sum_i x_i * J_i^T (R * c_i)` (Zennit's
//! `BasicHook`: `c_i` from the forward alone, e.g. `1 / stab(z)`) returns
//! `y + (h - h.detach())`, `h = sum_i z_i * (y * c_i).detach()`: the value is `y` exactly,
//! and the gradient it passes back makes `x * g_in` that `R_in` (`x * 1[x > 0] = x+`). The
//! last layer passes `R * c_i` with `R` = the one-hot itself. The first layer's rules (flat,
//! z-box) do not multiply by the input, so that layer is computed apart, from the
//! relevance at its output (`relevance_in`). Activations pass relevance on unchanged (Zennit's
//! `Pass`), sums and average pools split it in proportion (`Norm`), max pools by the plain
//! gradient (winner takes all), as Zennit's composites do. The rule per layer kind and why:
//! TESTING.md, "Layer-wise relevance propagation".

use std::fmt;

use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Zennit's default stabiliser, and the epsilon of its epsilon rule.
pub const STABILIZER: f64 = 1e-6;
/// The gamma of `EpsilonGammaBox`.
pub const GAMMA: f64 = 0.25;

/// A composite: which rule each kind of layer gets (names as Zennit's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Composite {
    /// Epsilon on dense layers, z-plus on convolutions, flat on the first layer.
    EpsilonPlusFlat,
    /// Epsilon on dense layers, gamma 0.25 on convolutions, z-box on the first convolution.
    EpsilonGammaBox,
    /// Epsilon on dense layers, alpha 2 beta 1 on every convolution.
    EpsilonAlpha2Beta1,
}

/// One layer's rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    Epsilon(f64),
    ZPlus,
    Gamma(f64),
    AlphaBeta(f64, f64),
    Flat,
    ZBox,
}

impl Composite {
    pub fn conv_rule(self) -> Rule {
        match self {
            Composite::EpsilonPlusFlat => Rule::ZPlus,
            Composite::EpsilonGammaBox => Rule::Gamma(GAMMA),
            Composite::EpsilonAlpha2Beta1 => Rule::AlphaBeta(2.0, 1.0),
        }
    }

    pub fn dense_rule(self) -> Rule {
        Rule::Epsilon(STABILIZER)
    }

    /// The rule of the first layer (a convolution or dense layer, in forward order).
    pub fn first_rule(self, conv: bool) -> Rule {
        match self {
            Composite::EpsilonPlusFlat => Rule::Flat,
            Composite::EpsilonGammaBox if conv => Rule::ZBox,
            _ if conv => self.conv_rule(),
            _ => self.dense_rule(),
        }
    }
}

impl fmt::Display for Composite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Composite::EpsilonPlusFlat => "EpsilonPlusFlat",
            Composite::EpsilonGammaBox => "EpsilonGammaBox",
            Composite::EpsilonAlpha2Beta1 => "EpsilonAlpha2Beta1",
        })
    }
}

/// A layer's own linear map, applied with other weights: a convolution (its padding as
/// left, right, top, bottom, stride, groups) or a dense layer.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv { pad: [i64; 4], stride: i64, groups: i64 },
    Linear,
}

impl Op {
    pub fn apply(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        match self {
            Op::Linear => x.linear(w, b),
            Op::Conv { pad, stride, groups } => {
                let [l, r, t, bo] = *pad;
                if l == r && t == bo {
                    x.conv2d(w, b, [*stride, *stride], [t, l], [1, 1], *groups)
                } else {
                    x.constant_pad_nd([l, r, t, bo])
                        .conv2d(w, b, [*stride, *stride], [0, 0], [1, 1], *groups)
                }
            }
        }
    }
}

/// A layer as a rule sees it: its map, weights and bias (batch norm merged in), input, output.
pub struct Layer<'a> {
    pub op: &'a Op,
    pub w: &'a Tensor,
    pub b: Option<&'a Tensor>,
}

/// Zennit's `stabilize`: `z + eps` where `z >= 0`, `z - eps` below.
fn stab(z: &Tensor, eps: f64) -> Tensor {
    z + (z.ge(0.0).to_kind(z.kind()) * 2.0 - 1.0) * eps
}

fn pos(t: &Tensor) -> Tensor {
    t.clamp_min(0.0)
}

fn neg(t: &Tensor) -> Tensor {
    t.clamp_max(0.0)
}

/// One term of a rule: a modified output `z` (with its gradient to the input), the factor
/// `c` its relevance is scaled by (`R * c`, from the forward alone) and the part of `z` that
/// is bias (no input's share), broadcast like `z`.
struct Term {
    z: Tensor,
    c: Tensor,
    bias: Option<Tensor>,
}

/// The rule's terms for input `x` and true output `y` (gamma keeps the units by its sign).
/// Terms on `x-` are skipped where the input has no negative value (after a ReLU), as they
/// are zero.
fn terms(rule: Rule, x: &Tensor, l: &Layer, y: &Tensor) -> Vec<Term> {
    let f = |t: &Tensor, w: &Tensor, b: Option<&Tensor>| l.op.apply(t, w, b);
    let negatives = x.min().double_value(&[]) < 0.0;
    // Without negative inputs, x+ is x (the gradient at x = 0 is multiplied by 0 anyway).
    let (xp, xn) = if negatives {
        (pos(x), Some(neg(x)))
    } else {
        (x.shallow_clone(), None)
    };
    // z(x+; wa, ba) + z(x-; wb, 0)
    let two = |wa: &Tensor, ba: Option<&Tensor>, wb: &Tensor| {
        let z = f(&xp, wa, ba);
        match &xn {
            Some(xn) => z + f(xn, wb, None),
            None => z,
        }
    };
    let shape = |b: Tensor| match l.op {
        Op::Linear => b.view([1, -1]),
        Op::Conv { .. } => b.view([1, -1, 1, 1]),
    };
    // `sign`: the sign every value of `z` has by construction (z-plus and alpha-beta sum
    // products of one sign), where Zennit's stabiliser is one addition.
    let term = |z: Tensor, scale: f64, mask: Option<Tensor>, bias: Option<Tensor>, eps: f64, sign: Option<bool>| {
        let d = z.detach();
        let c = match sign {
            Some(true) => d + eps,
            // z <= 0: z - eps, where Zennit adds eps at exactly 0; there every product
            // of the term is 0, so its relevance is 0 either way.
            Some(false) => d - eps,
            None => stab(&d, eps),
        }
        .reciprocal();
        let c = if scale == 1.0 { c } else { c * scale };
        let c = match mask {
            Some(m) => c * m,
            None => c,
        };
        Term {
            z,
            c,
            bias: bias.map(shape),
        }
    };
    let (w, b) = (l.w, l.b);
    match rule {
        Rule::Epsilon(eps) => vec![term(f(x, w, b), 1.0, None, b.map(|b| b.shallow_clone()), eps, None)],
        Rule::ZPlus => {
            let bp = b.map(pos);
            vec![term(
                two(&pos(w), bp.as_ref(), &neg(w)),
                1.0,
                None,
                bp,
                STABILIZER,
                Some(true),
            )]
        }
        Rule::AlphaBeta(alpha, beta) => {
            let (bp, bn) = (b.map(pos), b.map(neg));
            let zp = two(&pos(w), bp.as_ref(), &neg(w));
            let zn = two(&neg(w), bn.as_ref(), &pos(w));
            vec![
                term(zp, alpha, None, bp, STABILIZER, Some(true)),
                term(zn, -beta, None, bn, STABILIZER, Some(false)),
            ]
        }
        Rule::Gamma(g) => {
            let (up, down) = (w + pos(w) * g, w + neg(w) * g);
            let (bu, bd) = (b.map(|b| b + pos(b) * g), b.map(|b| b + neg(b) * g));
            let zpos = two(&up, bu.as_ref(), &down);
            let zneg = two(&down, bd.as_ref(), &up);
            let (above, below) = (y.gt(0.0).to_kind(Kind::Float), y.lt(0.0).to_kind(Kind::Float));
            vec![
                term(zpos, 1.0, Some(above), bu, STABILIZER, None),
                term(zneg, 1.0, Some(below), bd, STABILIZER, None),
            ]
        }
        Rule::Flat | Rule::ZBox => unreachable!("the first layer's rules run in relevance_in"),
    }
}

/// `sum_i z_i(x) * (base * c_i)`, `base` and `c_i` without gradient: its gradient with
/// respect to `x`, times `x`, is the rule's relevance at the input for a relevance `base`
/// at the output (see the module note).
fn rule_sum(terms: &[Term], base: &Tensor) -> Tensor {
    let mut sum: Option<Tensor> = None;
    for t in terms {
        let h = &t.z * (base * &t.c).detach();
        sum = Some(match sum {
            Some(s) => s + h,
            None => h,
        });
    }
    sum.expect("every rule has a term")
}

/// The share of a unit's relevance its rule hands to no input: to the bias, to the
/// stabiliser, and (gamma) all of it where the output is exactly 0. What a layer does not
/// conserve is exactly this, times the relevance at its output.
fn kept_share(terms: &[Term], y: &Tensor) -> Tensor {
    let mut handed = y.zeros_like();
    for t in terms {
        let z = t.z.detach();
        let inputs = match &t.bias {
            Some(b) => &z - b,
            None => z,
        };
        handed += inputs * &t.c;
    }
    handed.ones_like() - handed
}

/// The layer's output for the one-pass backward: the value `y`, the gradient of `rule`.
/// `last`: the network's output layer, whose relevance is the gradient it receives (the
/// one-hot at the target), not the output times it. `kept`, when asked for: the share of
/// each unit's relevance that the rule gives no input (see [`Pass::account`]).
fn through(rule: Rule, x: &Tensor, l: &Layer, y: &Tensor, last: bool, account: bool) -> (Tensor, Option<Tensor>) {
    let y = y.detach();
    let base = if last { y.ones_like() } else { y.shallow_clone() };
    let t = terms(rule, x, l, &y);
    let h = rule_sum(&t, &base);
    (&y + (&h - h.detach()), account.then(|| kept_share(&t, &y)))
}

/// An activation: relevance passes on unchanged (Zennit's `Pass`), `y` out.
pub fn pass(x: &Tensor, y: &Tensor) -> Tensor {
    let y = y.detach();
    let ratio = (&y / x.detach()).masked_fill(&x.eq(0.0), 0.0);
    let h = x * ratio;
    &y + (&h - h.detach())
}

/// A sum or an average pool `z` (with its gradient to its inputs): relevance split in
/// proportion to each input's part (Zennit's `Norm`).
pub fn norm(z: &Tensor) -> Tensor {
    let y = z.detach();
    let h = z * (&y / stab(&y, STABILIZER));
    &y + (&h - h.detach())
}

/// The relevance at the input of a layer from the relevance `r` at its output (the first
/// layer: every rule, flat and z-box included). `bounds`: the lowest and highest input
/// values per channel ([1, C, 1, 1]), for z-box.
pub fn relevance_in(
    rule: Rule,
    x: &Tensor,
    l: &Layer,
    y: &Tensor,
    r: &Tensor,
    bounds: Option<&(Tensor, Tensor)>,
) -> Result<Tensor> {
    let r = r.detach();
    match rule {
        Rule::Flat => {
            let ones = x.detach().ones_like().set_requires_grad(true);
            let o = l.op.apply(&ones, &l.w.ones_like(), None);
            let s = (&o * (&r / stab(&o.detach(), STABILIZER))).sum(Kind::Float);
            Ok(Tensor::run_backward(&[s], &[&ones], false, false).remove(0))
        }
        Rule::ZBox => {
            let (low, high) = bounds.ok_or_else(|| Error::invalid("z-box needs the input's range"))?;
            let x = x.detach().set_requires_grad(true);
            let low = low.expand_as(&x).contiguous().set_requires_grad(true);
            let high = high.expand_as(&x).contiguous().set_requires_grad(true);
            let (w, b) = (l.w, l.b);
            let z = l.op.apply(&x, w, b)
                - l.op.apply(&low, &pos(w), b.map(pos).as_ref())
                - l.op.apply(&high, &neg(w), b.map(neg).as_ref());
            let s = (&z * (&r / stab(&z.detach(), STABILIZER))).sum(Kind::Float);
            let g = Tensor::run_backward(&[s], &[&x, &low, &high], false, false);
            Ok(&x.detach() * &g[0] + low.detach() * &g[1] + high.detach() * &g[2])
        }
        _ => {
            let xl = x.detach().set_requires_grad(true);
            let s = rule_sum(&terms(rule, &xl, l, y), &r).sum(Kind::Float);
            let g = Tensor::run_backward(&[s], &[&xl], false, false).remove(0);
            Ok(x.detach() * g)
        }
    }
}

/// Batch norm merged into the convolution before it (Zennit's `MergeBatchNorm`):
/// `w' = w * gamma / sqrt(var + eps)` per output channel, `b' = (b - mean) * gamma /
/// sqrt(var + eps) + beta`.
pub fn merge_batch_norm(w: &Tensor, b: Option<&Tensor>, bn: &BatchNormParams) -> (Tensor, Tensor) {
    let scale = match &bn.weight {
        Some(g) => g / (&bn.var + bn.eps).sqrt(),
        None => (&bn.var + bn.eps).sqrt().reciprocal(),
    };
    let mut shape = vec![1i64; w.dim()];
    shape[0] = -1;
    let w2 = w * scale.view(shape.as_slice());
    let b0 = match b {
        Some(b) => b - &bn.mean,
        None => -&bn.mean,
    };
    let b2 = match &bn.bias {
        Some(beta) => b0 * &scale + beta,
        None => b0 * &scale,
    };
    (w2, b2)
}

/// What merging needs of a batch norm (no gradient: weights are detached copies).
pub struct BatchNormParams {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub mean: Tensor,
    pub var: Tensor,
    pub eps: f64,
}

/// The first layer of a relevance forward, kept to compute its relevance apart.
pub struct First {
    pub rule: Rule,
    pub x: Tensor,
    pub op: Op,
    pub w: Tensor,
    pub b: Option<Tensor>,
    pub y: Tensor,
    /// Its output as a leaf: the gradient there, times `y`, is the relevance there.
    pub leaf: Tensor,
}

/// One relevance forward's settings and what it keeps.
pub struct Pass {
    pub composite: Composite,
    /// The output layer's name (its weight-key prefix), from the model.
    pub output: String,
    /// Channels knocked out at a convolution's output, before its batch norm: their rows of
    /// the merged weights are zero (the bias stays, as the layer computes it).
    pub knocked_convs: Vec<(String, i64)>,
    /// The input's range per channel, [1, C, 1, 1] each, for z-box, from the model.
    pub bounds: Option<(Tensor, Tensor)>,
    /// Values from the merged layers (a convolution with its batch norm folded in), as the
    /// canonised model of Zennit computes them, instead of the model's own: the merge is
    /// checked with it (the logits must not change).
    pub canonized: bool,
    /// Keep, per layer, its output and the share of its relevance it gives no input
    /// (biases, stabilisers), for [`Pass::ledger`].
    pub account: bool,
    kept: Vec<(Tensor, Tensor, bool)>,
    pub first: Option<First>,
}

/// Where the relevance of one explanation went: it starts as 1 at the target.
#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    /// At the network's input.
    pub input: f64,
    /// At the first layer's output.
    pub first_output: f64,
    /// Kept by the layers after the first (their biases and stabilisers).
    pub kept: f64,
    /// Kept by the first layer.
    pub kept_first: f64,
}

impl Pass {
    /// A pass under `composite`; `Model::forward_lrp` fills in what it needs of the model.
    pub fn new(composite: Composite) -> Self {
        Pass {
            composite,
            output: String::new(),
            knocked_convs: Vec::new(),
            bounds: None,
            canonized: false,
            account: false,
            kept: Vec::new(),
            first: None,
        }
    }

    /// The output of a convolution or dense layer named `name` with input `x`, map `op`,
    /// (merged) weights `w`, `b` and true output `y`, for the one-pass backward: the first
    /// such layer becomes a leaf kept in `first`, the others go `through` their rule.
    pub fn layer(&mut self, name: &str, x: &Tensor, op: Op, w: Tensor, b: Option<Tensor>, y: &Tensor) -> Tensor {
        let conv = matches!(op, Op::Conv { .. });
        let w = self.knock(name, w);
        if self.first.is_none() {
            let leaf = y.detach().set_requires_grad(true);
            self.first = Some(First {
                rule: self.composite.first_rule(conv),
                x: x.detach(),
                op,
                w,
                b,
                y: y.detach(),
                leaf: leaf.shallow_clone(),
            });
            return leaf;
        }
        let rule = if conv {
            self.composite.conv_rule()
        } else {
            self.composite.dense_rule()
        };
        let l = Layer {
            op: &op,
            w: &w,
            b: b.as_ref(),
        };
        let last = name == self.output;
        let (out, kept) = through(rule, x, &l, y, last, self.account);
        if let Some(k) = kept {
            self.kept.push((out.shallow_clone(), k, last));
        }
        out
    }

    fn knock(&self, name: &str, w: Tensor) -> Tensor {
        let rows: Vec<i64> = self
            .knocked_convs
            .iter()
            .filter(|(l, _)| l == name)
            .map(|(_, c)| *c)
            .filter(|c| (0..w.size()[0]).contains(c))
            .collect();
        if rows.is_empty() {
            return w;
        }
        let w = w.copy();
        for c in rows {
            let _ = w.narrow(0, c, 1).fill_(0.0);
        }
        w
    }

    /// After a relevance forward, the relevance at the network's input for the target's
    /// `score` (one backward from it, then the first layer's rule), and where the rest went.
    /// With `account` on, Σ input + kept + kept_first = 1 is conservation up to the biases,
    /// checked by the tests; without it, `kept` and `kept_first` are 0.
    pub fn ledger(&self, score: &Tensor) -> Result<(Tensor, Ledger)> {
        let first = self
            .first
            .as_ref()
            .ok_or_else(|| Error::invalid("LRP: the network has no convolution or dense layer"))?;
        let mut inputs: Vec<&Tensor> = vec![&first.leaf];
        inputs.extend(self.kept.iter().map(|(out, _, _)| out));
        let g = Tensor::run_backward(&[score], &inputs, false, false);
        let mut kept = 0.0;
        for ((out, share, last), g) in self.kept.iter().zip(&g[1..]) {
            let r = if *last { g.shallow_clone() } else { out.detach() * g };
            kept += (share * r).sum(Kind::Double).double_value(&[]);
        }
        let r_first = &first.y * &g[0];
        let l = Layer {
            op: &first.op,
            w: &first.w,
            b: first.b.as_ref(),
        };
        let kept_first = match first.rule {
            Rule::Flat | Rule::ZBox => 0.0,
            _ if !self.account => 0.0,
            rule => (kept_share(&terms(rule, &first.x, &l, &first.y), &first.y) * &r_first)
                .sum(Kind::Double)
                .double_value(&[]),
        };
        let r_in = relevance_in(first.rule, &first.x, &l, &first.y, &r_first, self.bounds.as_ref())?;
        let ledger = Ledger {
            input: r_in.sum(Kind::Double).double_value(&[]),
            first_output: r_first.sum(Kind::Double).double_value(&[]),
            kept,
            kept_first,
        };
        Ok((r_in, ledger))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    /// The one-pass form gives the rule's relevance: for a dense layer under z-plus, the
    /// gradient at the input times the input is `x+ w+^T s + x- w-^T s`, `s = R / z+`.
    #[test]
    fn the_one_pass_form_is_the_rule() {
        let x = t(&[1.0, -2.0, 0.5], &[1, 3]).set_requires_grad(true);
        let w = t(&[0.5, -1.0, 2.0, -0.3, 0.8, 0.1], &[2, 3]);
        let b = t(&[0.2, -0.4], &[2]);
        let y = x.detach().linear(&w, Some(&b));
        let l = Layer {
            op: &Op::Linear,
            w: &w,
            b: Some(&b),
        };
        let (out, _) = through(Rule::ZPlus, &x, &l, &y, false, false);
        assert!(out.allclose(&y, 0.0, 0.0, false), "the value is the layer's output");
        let r_out = t(&[0.7, -0.2], &[1, 2]);
        // R = y * g at the output: the gradient that carries r_out.
        let g_out = &r_out / &y;
        let g = Tensor::run_backward(&[(&out * &g_out).sum(Kind::Float)], &[&x], false, false).remove(0);
        let got = Vec::<f64>::try_from((&x.detach() * g).flatten(0, -1)).unwrap();
        // By hand, in f64.
        let xs = [1.0f64, -2.0, 0.5];
        let ws = [[0.5f64, -1.0, 2.0], [-0.3, 0.8, 0.1]];
        let (bs, rs) = ([0.2f64, -0.4], [0.7f64, -0.2]);
        let mut want = [0.0f64; 3];
        for k in 0..2 {
            let mut z = bs[k].max(0.0);
            for i in 0..3 {
                z += if xs[i] > 0.0 {
                    xs[i] * ws[k][i].max(0.0)
                } else {
                    xs[i] * ws[k][i].min(0.0)
                };
            }
            let s = rs[k] / (z + STABILIZER);
            for i in 0..3 {
                want[i] += if xs[i] > 0.0 {
                    xs[i] * ws[k][i].max(0.0)
                } else {
                    xs[i] * ws[k][i].min(0.0)
                } * s;
            }
        }
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} against {want:?}");
        }
    }

    #[test]
    fn activations_pass_relevance_and_sums_split_it() {
        let x = t(&[-1.0, 0.0, 3.0, 8.0], &[1, 4]).set_requires_grad(true);
        let y = x.detach().relu6();
        let out = pass(&x, &y);
        let g = Tensor::run_backward(&[out.sum(Kind::Float)], &[&x], false, false).remove(0);
        // R_in = x * g = y * 1 = R_out: 0, 0, 3, 6.
        let r = Vec::<f64>::try_from((&x.detach() * g).flatten(0, -1)).unwrap();
        assert_eq!(r, [0.0, 0.0, 3.0, 6.0]);

        let a = t(&[2.0], &[1]).set_requires_grad(true);
        let b = t(&[-0.5], &[1]).set_requires_grad(true);
        let s = norm(&(&a + &b));
        let g = Tensor::run_backward(&[s.sum(Kind::Float)], &[&a, &b], false, false);
        // R_out = 1.5: a gets 2 / 1.5 of it, b -0.5 / 1.5.
        let (ra, rb) = (
            (&a.detach() * &g[0]).double_value(&[0]),
            (&b.detach() * &g[1]).double_value(&[0]),
        );
        assert!((ra - 2.0).abs() < 1e-5 && (rb + 0.5).abs() < 1e-5, "{ra} {rb}");
    }

    #[test]
    fn merging_batch_norm_keeps_the_output() {
        tch::manual_seed(3);
        let x = Tensor::randn([1, 2, 5, 5], (Kind::Float, Device::Cpu));
        let w = Tensor::randn([3, 2, 3, 3], (Kind::Float, Device::Cpu));
        let bn = BatchNormParams {
            weight: Some(Tensor::randn([3], (Kind::Float, Device::Cpu))),
            bias: Some(Tensor::randn([3], (Kind::Float, Device::Cpu))),
            mean: Tensor::randn([3], (Kind::Float, Device::Cpu)),
            var: Tensor::rand([3], (Kind::Float, Device::Cpu)) + 0.5,
            eps: 1e-3,
        };
        let op = Op::Conv {
            pad: [1, 1, 1, 1],
            stride: 1,
            groups: 1,
        };
        let plain = op.apply(&x, &w, None).batch_norm(
            bn.weight.as_ref(),
            bn.bias.as_ref(),
            Some(&bn.mean),
            Some(&bn.var),
            false,
            0.1,
            bn.eps,
            false,
        );
        let (w2, b2) = merge_batch_norm(&w, None, &bn);
        let merged = op.apply(&x, &w2, Some(&b2));
        assert!(merged.allclose(&plain, 1e-5, 1e-5, false));
    }
}
