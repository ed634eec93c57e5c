//! GroupNorm (Wu & He, arXiv 1803.08494) as one fused CPU custom op with a fused backward.
//!
//! Built from candle primitives (candle-nn's `GroupNorm`), the forward makes about ten passes over the activation,
//! each into a fresh tensor, and the backward about twice that. Here one image-group (`c / groups` channels of
//! `h·w` pixels, contiguous in NCHW) is one work item that stays in cache: the forward reads it twice (mean and
//! variance) and writes `y = x·a_c + b_c` once; the backward reads `x` and `dy` for the statistics and per-channel
//! sums and writes
//!
//! ```text
//! dx = ρ·(γ·dy − mean(γ·dy) − x̂·mean(γ·dy·x̂)),   dγ_c = Σ dy·x̂,   dβ_c = Σ dy,   x̂ = (x − μ)·ρ,  ρ = 1/√(σ² + ε)
//! ```
//!
//! in one more pass. The backward op records no gradient of its own (second derivatives through GroupNorm fail with
//! candle's `BackwardNotSupported`).

use super::cpu::{self, sum, vectorized, Float, Kernel};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Sizes of one GroupNorm: `x` is `(b, c, hw…)`, groups of `c / groups` channels.
#[derive(Debug, Clone, Copy)]
pub(super) struct Norm {
    pub b: usize,
    pub c: usize,
    pub hw: usize,
    pub groups: usize,
    pub eps: f64,
}

impl Norm {
    /// Elements of one image-group.
    fn n(&self) -> usize {
        self.c / self.groups * self.hw
    }
}

/// Mean and `1/√(var + ε)` of one image-group.
#[inline(always)]
fn stats<T: Float>(x: &[T], eps: f64) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = sum(x, x, |a, _| a) / n;
    let m = T::from_f64(mean);
    let var = sum(x, x, |a, _| (a - m) * (a - m)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

fn forward<T: Float>(p: &Norm, x: &[T], gamma: &[T], beta: &[T]) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(p.n()).zip(x.par_chunks(p.n())).enumerate().for_each(|(bg, (y, x))| {
        vectorized! {
            let (mean, rstd) = stats(x, p.eps);
            let c0 = bg % p.groups * (p.c / p.groups);
            for (c, (y, x)) in (c0..).zip(y.chunks_mut(p.hw).zip(x.chunks(p.hw))) {
                let a = rstd * gamma[c].to_f64();
                let (a, b) = (T::from_f64(a), T::from_f64(beta[c].to_f64() - mean * a));
                y.iter_mut().zip(x).for_each(|(y, x)| *y = *x * a + b);
            }
        }
    });
    y
}

/// `[dx (all of x), dγ (c), dβ (c)]` in one vector.
fn backward<T: Float>(p: &Norm, x: &[T], gamma: &[T], dy: &[T]) -> Vec<T> {
    let (n, cg) = (p.n(), p.c / p.groups);
    let mut out = vec![T::zero(); x.len() + 2 * p.c];
    let (dx, _) = out.split_at_mut(x.len());
    // Per (image, channel): (dγ, dβ) contributions, summed over images below.
    let mut partial = vec![(0.0, 0.0); p.b * p.c];
    dx.par_chunks_mut(n)
        .zip(partial.par_chunks_mut(cg))
        .zip(x.par_chunks(n).zip(dy.par_chunks(n)))
        .enumerate()
        .for_each(|(bg, ((dx, partial), (x, dy)))| {
            vectorized! {
                let (mean, rstd) = stats(x, p.eps);
                let c0 = bg % p.groups * cg;
                // Σ γ·dy and Σ γ·dy·x̂ over the group.
                let (mut a, mut bsum) = (0.0, 0.0);
                for (ci, (x, dy)) in x.chunks(p.hw).zip(dy.chunks(p.hw)).enumerate() {
                    let s1 = sum(dy, dy, |d, _| d);
                    let s2 = sum(dy, x, |d, x| d * x);
                    let dgamma = rstd * (s2 - mean * s1);
                    partial[ci] = (dgamma, s1);
                    a += gamma[c0 + ci].to_f64() * s1;
                    bsum += gamma[c0 + ci].to_f64() * dgamma;
                }
                let (a, bm) = (a / n as f64, bsum / n as f64);
                let q = T::from_f64(-rstd * rstd * bm);
                let r = T::from_f64(rstd * (mean * rstd * bm - a));
                for (c, ((dx, x), dy)) in (c0..).zip(dx.chunks_mut(p.hw).zip(x.chunks(p.hw)).zip(dy.chunks(p.hw))) {
                    let s = T::from_f64(rstd * gamma[c].to_f64());
                    dx.iter_mut().zip(x.iter().zip(dy)).for_each(|(dx, (x, dy))| *dx = *dy * s + *x * q + r);
                }
            }
        });
    let mut sums = vec![(0.0, 0.0); p.c];
    for image in partial.chunks(p.c) {
        sums.iter_mut().zip(image).for_each(|(s, (dg, db))| *s = (s.0 + dg, s.1 + db));
    }
    let (dgamma, dbeta) = out[x.len()..].split_at_mut(p.c);
    for ((dg, db), (sg, sb)) in dgamma.iter_mut().zip(dbeta).zip(sums) {
        (*dg, *db) = (T::from_f64(sg), T::from_f64(sb));
    }
    out
}

/// `(x, γ, β) → y` when `backward` is false, `(x, γ, dy) → [dx, dγ, dβ]` when true.
struct GroupNormOp {
    norm: Norm,
    shape: Shape,
    backward: bool,
}

impl Kernel for GroupNormOp {
    fn name(&self) -> &'static str {
        if self.backward {
            "cmr-group-norm-backward"
        } else {
            "cmr-group-norm"
        }
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let [x, gamma, third] = operands else { unreachable!("three operands") };
        if self.backward {
            backward(&self.norm, x, gamma, third)
        } else {
            forward(&self.norm, x, gamma, third)
        }
    }
}

impl CustomOp3 for GroupNormOp {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let c = Shape::from(self.norm.c);
        let third = if self.backward { &self.shape } else { &c };
        let storage = cpu::run(self, &[(s1, l1, &self.shape), (s2, l2, &c), (s3, l3, third)])?;
        let len = self.shape.elem_count();
        Ok((storage, if self.backward { Shape::from(len + 2 * self.norm.c) } else { self.shape.clone() }))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = GroupNormOp { norm: self.norm, shape: self.shape.clone(), backward: true };
        let packed = x.apply_op3(gamma, &dy.contiguous()?, op)?;
        let (len, c) = (x.elem_count(), self.norm.c);
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        Ok((Some(dx), Some(packed.narrow(0, len, c)?), Some(packed.narrow(0, len + c, c)?)))
    }
}

/// Applies the fused GroupNorm to f32/f64 CPU tensors `x (b, c, …)`, `γ (c)`, `β (c)` of one dtype.
pub(super) fn apply(norm: Norm, x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Result<Tensor> {
    let op = GroupNormOp { norm, shape: x.shape().clone(), backward: false };
    x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}
