//! Symmetric positive definite systems on a masked grid (ROAD's imputation): each unknown
//! cell of an H x W grid is coupled to itself and its 8 neighbours by a 3 x 3 stencil.
//! Solved by conjugate gradients preconditioned with one multigrid V-cycle: cells
//! aggregated 2 x 2 per level (piecewise-constant prolongation, Galerkin coarse operators,
//! so that every level is again a 3 x 3 stencil on a grid), a symmetric Gauss-Seidel sweep
//! before and after the coarse correction, a dense Cholesky solve on the coarsest level.
//! The iterations it needs hardly grow with the region to fill, where conjugate gradients
//! with a diagonal preconditioner need ever more (measured in the tests below).

use crate::error::{Error, Result};

const NONE: u32 = u32::MAX;
/// The stencil's centre among the 9 offsets `(dr + 1) * 3 + (dc + 1)`.
const CENTRE: usize = 4;
/// No further coarsening at or below this many unknowns: solved densely.
const DENSE: usize = 256;
/// The coarse correction's weight: piecewise-constant aggregation underestimates it.
const OVER: f64 = 1.6;

/// The system on one level: per unknown, its cell and its 9 neighbours' unknown indices
/// and coefficients (a neighbour that is known or outside: the unknown itself with
/// coefficient 0, so that the loops need no branch).
struct Stencil {
    h: usize,
    w: usize,
    cells: Vec<usize>,
    nb: Vec<[u32; 9]>,
    a: Vec<[f64; 9]>,
}

fn offset(o: usize) -> (i64, i64) {
    (o as i64 / 3 - 1, o as i64 % 3 - 1)
}

impl Stencil {
    /// The unknowns of an `h` x `w` grid (`unknown[cell]`) with coefficients `coef(cell, o)`
    /// for the neighbour at offset `o` (read only where that neighbour is unknown).
    fn new(h: usize, w: usize, unknown: &[bool], coef: impl Fn(usize, usize) -> f64) -> Self {
        let mut id = vec![NONE; h * w];
        let cells: Vec<usize> = (0..h * w).filter(|&p| unknown[p]).collect();
        for (k, &p) in cells.iter().enumerate() {
            id[p] = k as u32;
        }
        let mut nb: Vec<[u32; 9]> = (0..cells.len()).map(|k| [k as u32; 9]).collect();
        let mut a = vec![[0.0; 9]; cells.len()];
        for (k, &p) in cells.iter().enumerate() {
            let (r, c) = ((p / w) as i64, (p % w) as i64);
            for o in 0..9 {
                let (dr, dc) = offset(o);
                let (rr, cc) = (r + dr, c + dc);
                if rr < 0 || cc < 0 || rr >= h as i64 || cc >= w as i64 {
                    continue;
                }
                let q = rr as usize * w + cc as usize;
                if id[q] != NONE {
                    nb[k][o] = id[q];
                    a[k][o] = coef(p, o);
                }
            }
        }
        Stencil { h, w, cells, nb, a }
    }

    fn len(&self) -> usize {
        self.cells.len()
    }

    /// `out = A v` for `m` vectors side by side (`v[k * m + j]`).
    fn apply<const M: usize>(&self, v: &[f64], out: &mut [f64]) {
        let m = M;
        for k in 0..self.len() {
            let row = &mut out[k * m..(k + 1) * m];
            row.fill(0.0);
            for (&j, &c) in self.nb[k].iter().zip(&self.a[k]) {
                let j = j as usize;
                for (o, x) in row.iter_mut().zip(&v[j * m..(j + 1) * m]) {
                    *o += c * x;
                }
            }
        }
    }

    /// One Gauss-Seidel step at unknown `k` for `m` vectors side by side.
    fn relax<const M: usize>(&self, k: usize, b: &[f64], x: &mut [f64]) {
        let m = M;
        let mut s = [0.0; M];
        s.copy_from_slice(&b[k * m..(k + 1) * m]);
        for o in (0..9).filter(|&o| o != CENTRE) {
            let (j, c) = (self.nb[k][o] as usize, self.a[k][o]);
            for (t, v) in s.iter_mut().zip(&x[j * m..(j + 1) * m]) {
                *t -= c * v;
            }
        }
        let d = self.a[k][CENTRE];
        for (v, t) in x[k * m..(k + 1) * m].iter_mut().zip(s.iter()) {
            *v = t / d;
        }
    }

    /// The next level: 2 x 2 cells become one, its coefficients the sums of theirs
    /// (`P^T A P`), and each unknown's coarse index.
    fn coarsen(&self) -> (Stencil, Vec<u32>) {
        let (hc, wc) = (self.h.div_ceil(2), self.w.div_ceil(2));
        let parent = |p: usize| (p / self.w / 2) * wc + (p % self.w) / 2;
        let mut unknown = vec![false; hc * wc];
        for &p in &self.cells {
            unknown[parent(p)] = true;
        }
        let mut sums = vec![[0.0; 9]; hc * wc];
        for (k, &p) in self.cells.iter().enumerate() {
            let pc = parent(p);
            for o in 0..9 {
                let j = self.nb[k][o];
                if o != CENTRE && j as usize == k {
                    continue;
                }
                let qc = parent(self.cells[j as usize]);
                let dr = (qc / wc) as i64 - (pc / wc) as i64;
                let dc = (qc % wc) as i64 - (pc % wc) as i64;
                sums[pc][((dr + 1) * 3 + dc + 1) as usize] += self.a[k][o];
            }
        }
        let coarse = Stencil::new(hc, wc, &unknown, |p, o| sums[p][o]);
        let mut id = vec![NONE; hc * wc];
        for (k, &p) in coarse.cells.iter().enumerate() {
            id[p] = k as u32;
        }
        let up = self.cells.iter().map(|&p| id[parent(p)]).collect();
        (coarse, up)
    }

    /// The matrix, dense and row-major.
    fn dense(&self) -> Vec<f64> {
        let n = self.len();
        let mut m = vec![0.0; n * n];
        for k in 0..n {
            for o in 0..9 {
                m[k * n + self.nb[k][o] as usize] += self.a[k][o];
            }
        }
        m
    }
}

/// Cholesky factor (lower, row-major) of an n x n matrix, or None if it is not positive
/// definite (a pivot below 1e-10 of its diagonal counts as singular).
fn cholesky(mut m: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for j in 0..n {
        let mut d = m[j * n + j];
        let floor = 1e-10 * d.abs();
        for k in 0..j {
            d -= m[j * n + k] * m[j * n + k];
        }
        if d <= floor || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        m[j * n + j] = d;
        for i in j + 1..n {
            let mut s = m[i * n + j];
            for k in 0..j {
                s -= m[i * n + k] * m[j * n + k];
            }
            m[i * n + j] = s / d;
        }
    }
    Some(m)
}

fn cholesky_solve(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= l[i * n + k] * y[k];
        }
        y[i] /= l[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= l[k * n + i] * y[k];
        }
        y[i] /= l[i * n + i];
    }
    y
}

/// A system `A x = b` on a masked grid, ready to solve for any `b`.
pub struct Grid {
    levels: Vec<Stencil>,
    /// For each level but the last, its unknowns' indices on the next.
    up: Vec<Vec<u32>>,
    coarsest: Vec<f64>,
}

impl Grid {
    /// The unknown cells of an `h` x `w` grid and their couplings: `coef(cell, o)` to the
    /// neighbour at offset `o` = `(dr + 1) * 3 + (dc + 1)` (4: the cell itself), read where
    /// that neighbour is unknown too. The matrix must be symmetric positive definite.
    pub fn new(h: usize, w: usize, unknown: &[bool], coef: impl Fn(usize, usize) -> f64) -> Result<Self> {
        if h.checked_mul(w) != Some(unknown.len()) {
            return Err(Error::invalid(format!(
                "a {h} x {w} grid with {} cells marked",
                unknown.len()
            )));
        }
        let mut levels = vec![Stencil::new(h, w, unknown, coef)];
        let mut up = Vec::new();
        while levels.last().is_some_and(|l| l.len() > DENSE && (l.h > 1 || l.w > 1)) {
            let (next, ids) = levels.last().expect("a level").coarsen();
            levels.push(next);
            up.push(ids);
        }
        let last = levels.last().expect("a level");
        let coarsest = cholesky(last.dense(), last.len())
            .ok_or_else(|| Error::invalid("the system to solve is not positive definite"))?;
        Ok(Grid { levels, up, coarsest })
    }

    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One V-cycle from zero on level `l` for `m` right-hand sides side by side.
    fn cycle<const M: usize>(&self, l: usize, b: &[f64]) -> Vec<f64> {
        let m = M;
        let s = &self.levels[l];
        let n = s.len();
        if l + 1 == self.levels.len() {
            let mut x = vec![0.0; n * m];
            for j in 0..m {
                let col: Vec<f64> = (0..n).map(|k| b[k * m + j]).collect();
                for (k, v) in cholesky_solve(&self.coarsest, n, &col).into_iter().enumerate() {
                    x[k * m + j] = v;
                }
            }
            return x;
        }
        let mut x = vec![0.0; n * m];
        for k in 0..n {
            s.relax::<M>(k, b, &mut x);
        }
        let mut r = vec![0.0; n * m];
        s.apply::<M>(&x, &mut r);
        let mut rc = vec![0.0; self.levels[l + 1].len() * m];
        for k in 0..n {
            let i = self.up[l][k] as usize;
            for j in 0..m {
                rc[i * m + j] += b[k * m + j] - r[k * m + j];
            }
        }
        let ec = self.cycle::<M>(l + 1, &rc);
        for k in 0..n {
            let i = self.up[l][k] as usize;
            for j in 0..m {
                x[k * m + j] += OVER * ec[i * m + j];
            }
        }
        for k in (0..n).rev() {
            s.relax::<M>(k, b, &mut x);
        }
        x
    }

    /// `A x = b` to a residual of `tolerance` times `|b|` for each of the `b.len() / len()`
    /// (at most [`MAX_SIDE`]) right-hand sides in `b`, one after the other; the solutions
    /// in the same order, and the iterations it took.
    pub fn solve(&self, b: &[f64], tolerance: f64) -> Result<(Vec<f64>, usize)> {
        let n = self.len();
        let m = b.len().checked_div(n).unwrap_or(0);
        if m * n != b.len() || m > MAX_SIDE {
            return Err(Error::invalid(format!(
                "{} values are not at most {MAX_SIDE} right-hand sides of {n}",
                b.len()
            )));
        }
        match m {
            0 => Ok((Vec::new(), 0)),
            1 => self.solve_side_by_side::<1>(b, tolerance),
            2 => self.solve_side_by_side::<2>(b, tolerance),
            3 => self.solve_side_by_side::<3>(b, tolerance),
            _ => self.solve_side_by_side::<4>(b, tolerance),
        }
    }

    fn solve_side_by_side<const M: usize>(&self, b: &[f64], tolerance: f64) -> Result<(Vec<f64>, usize)> {
        let (n, m) = (self.len(), M);
        let s = &self.levels[0];
        // Side by side: value k of right-hand side j at k * m + j.
        let mut r = vec![0.0; n * m];
        for j in 0..m {
            for k in 0..n {
                r[k * m + j] = b[j * n + k];
            }
        }
        // Per right-hand side: sum over k of a[k * m + j] * c[k * m + j].
        let dots = |a: &[f64], c: &[f64]| {
            let mut d = [0.0; MAX_SIDE];
            for (ra, rc) in a.chunks_exact(m).zip(c.chunks_exact(m)) {
                for j in 0..m {
                    d[j] += ra[j] * rc[j];
                }
            }
            d
        };
        let goal: Vec<f64> = dots(&r, &r)[..m].iter().map(|v| tolerance * v.sqrt()).collect();
        let mut x = vec![0.0; n * m];
        let mut z = self.cycle::<M>(0, &r);
        let mut p = z.clone();
        let mut rz = dots(&r, &z);
        let mut ap = vec![0.0; n * m];
        for it in 0..MAX_ITERATIONS {
            let rr = dots(&r, &r);
            let open: Vec<bool> = (0..m).map(|j| rr[j].sqrt() > goal[j]).collect();
            if !open.contains(&true) {
                let mut out = vec![0.0; n * m];
                for j in 0..m {
                    for k in 0..n {
                        out[j * n + k] = x[k * m + j];
                    }
                }
                return Ok((out, it));
            }
            s.apply::<M>(&p, &mut ap);
            let pap = dots(&p, &ap);
            let mut alpha = [0.0; MAX_SIDE];
            for j in (0..m).filter(|&j| open[j]) {
                if pap[j] <= 0.0 || !pap[j].is_finite() {
                    return Err(Error::invalid("the system to solve is not positive definite"));
                }
                alpha[j] = rz[j] / pap[j];
            }
            for k in 0..n {
                for j in 0..m {
                    x[k * m + j] += alpha[j] * p[k * m + j];
                    r[k * m + j] -= alpha[j] * ap[k * m + j];
                }
            }
            z = self.cycle::<M>(0, &r);
            let rz_new = dots(&r, &z);
            let mut beta = [0.0; MAX_SIDE];
            for j in (0..m).filter(|&j| open[j]) {
                beta[j] = rz_new[j] / rz[j];
            }
            rz = rz_new;
            for k in 0..n {
                for j in 0..m {
                    p[k * m + j] = z[k * m + j] + beta[j] * p[k * m + j];
                }
            }
        }
        Err(Error::invalid(format!(
            "the solve did not reach its tolerance in {MAX_ITERATIONS} iterations"
        )))
    }
}

/// The most right-hand sides [`Grid::solve`] takes at once (an image's colour channels).
pub const MAX_SIDE: usize = 4;

const MAX_ITERATIONS: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// ROAD's couplings: edges 1/6, diagonals 1/12; the centre the sum over the cell's
    /// in-image neighbours (so a region touching a known cell is positive definite).
    fn road_like(h: usize, w: usize, unknown: &[bool]) -> Result<Grid> {
        Grid::new(h, w, unknown, |p, o| {
            let (r, c) = ((p / w) as i64, (p % w) as i64);
            if o != CENTRE {
                let (dr, dc) = offset(o);
                return -if dr == 0 || dc == 0 { 1.0 / 6.0 } else { 1.0 / 12.0 };
            }
            (0..9)
                .filter(|&o| o != CENTRE)
                .map(offset)
                .filter(|(dr, dc)| (0..h as i64).contains(&(r + dr)) && (0..w as i64).contains(&(c + dc)))
                .map(|(dr, dc)| if dr == 0 || dc == 0 { 1.0 / 6.0 } else { 1.0 / 12.0 })
                .sum()
        })
    }

    #[test]
    fn equals_a_dense_solve_on_a_random_mask() {
        let (h, w) = (37, 41);
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(3);
        let unknown: Vec<bool> = (0..h * w).map(|_| rng.random_bool(0.8)).collect();
        let g = road_like(h, w, &unknown).unwrap();
        assert!(g.levels.len() >= 3, "coarsened {} times", g.levels.len() - 1);
        // Three right-hand sides at once, one of them zero: each as its own dense solve.
        let n = g.len();
        let mut b: Vec<f64> = (0..3 * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        b[n..2 * n].fill(0.0);
        let (x, it) = g.solve(&b, 1e-10).unwrap();
        let l = cholesky(g.levels[0].dense(), n).unwrap();
        for j in 0..3 {
            let want = cholesky_solve(&l, n, &b[j * n..(j + 1) * n]);
            let err = x[j * n..(j + 1) * n]
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                err < 1e-7,
                "right-hand side {j}: max difference {err} after {it} iterations"
            );
        }
        assert!(g.solve(&b[..n + 1], 1e-10).is_err(), "a partial right-hand side");
    }

    /// Conjugate gradients with a diagonal (Jacobi) preconditioner: the iterations to reach
    /// `tolerance`.
    fn jacobi_iterations(s: &Stencil, b: &[f64], tolerance: f64) -> usize {
        let n = s.len();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let (mut x, mut r) = (vec![0.0; n], b.to_vec());
        let mut z: Vec<f64> = (0..n).map(|k| r[k] / s.a[k][CENTRE]).collect();
        let (mut p, mut rz, mut ap) = (z.clone(), dot(&r, &z), vec![0.0; n]);
        for it in 0..100_000 {
            if dot(&r, &r).sqrt() <= tolerance * dot(b, b).sqrt() {
                return it;
            }
            s.apply::<1>(&p, &mut ap);
            let alpha = rz / dot(&p, &ap);
            for k in 0..n {
                x[k] += alpha * p[k];
                r[k] -= alpha * ap[k];
                z[k] = r[k] / s.a[k][CENTRE];
            }
            let rz_new = dot(&r, &z);
            for k in 0..n {
                p[k] = z[k] + rz_new / rz * p[k];
            }
            rz = rz_new;
        }
        usize::MAX
    }

    #[test]
    fn a_large_region_takes_few_iterations() {
        // A 224 x 224 image with a disc of radius 100 to fill (31,000 unknowns), the case
        // plain conjugate gradients needed hundreds of iterations for.
        let (h, w) = (224, 224);
        let unknown: Vec<bool> = (0..h * w)
            .map(|p| {
                let (r, c) = ((p / w) as f64 - 112.0, (p % w) as f64 - 112.0);
                r * r + c * c < 100.0 * 100.0
            })
            .collect();
        let g = road_like(h, w, &unknown).unwrap();
        let b: Vec<f64> = (0..g.len()).map(|k| ((k % 97) as f64).sin()).collect();
        let (x, it) = g.solve(&b, 1e-7).unwrap();
        let mut ax = vec![0.0; g.len()];
        g.levels[0].apply::<1>(&x, &mut ax);
        let res = ax.iter().zip(&b).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        let nb = b.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(res <= 1e-7 * nb, "residual {res}");
        let jacobi = jacobi_iterations(&g.levels[0], &b, 1e-7);
        eprintln!(
            "{} unknowns, {} levels: {it} iterations, {jacobi} with a diagonal preconditioner",
            g.len(),
            g.levels.len()
        );
        assert!(it <= 40 && it * 10 < jacobi, "{it} iterations, {jacobi} with Jacobi");
    }

    #[test]
    fn a_region_touching_nothing_known_is_refused() {
        assert!(road_like(8, 8, &[true; 63]).is_err(), "a mask of another size");
        // Every cell unknown: the rows sum to zero, the matrix is singular.
        assert!(road_like(8, 8, &[true; 64]).is_err());
        assert!(road_like(40, 40, &[true; 1600]).is_err());
    }
}
