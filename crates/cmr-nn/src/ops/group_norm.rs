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
//! in one more pass. With SiLU after the norm, its gradient `du` takes the place of `dy`, computed in the pass of the
//! per-channel sums (kept in `dx` until the last pass overwrites it). The backward op records no gradient of its own
//! (second derivatives through GroupNorm fail with candle's `BackwardNotSupported`).

use super::activation::{silu_grad_one, silu_one};
use super::cpu::{self, sum, vectorized, Float, Kernel, LANES};
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
    /// Whether SiLU follows the normalisation.
    pub silu: bool,
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
    // Every element is written once below, so the output is never zeroed first.
    let mut y = Vec::with_capacity(x.len());
    y.spare_capacity_mut().par_chunks_mut(p.n()).zip(x.par_chunks(p.n())).enumerate().for_each(|(bg, (y, x))| {
        vectorized! {
            let (mean, rstd) = stats(x, p.eps);
            let c0 = bg % p.groups * (p.c / p.groups);
            if p.hw == 1 {
                // One value per channel (a LayerNorm row): γ and β run along the group.
                let (m, r) = (T::from_f64(mean), T::from_f64(rstd));
                for ((y, x), (g, b)) in y.iter_mut().zip(x).zip(gamma[c0..].iter().zip(&beta[c0..])) {
                    y.write(activate((*x - m) * r * *g + *b, p.silu));
                }
                return;
            }
            for (c, (y, x)) in (c0..).zip(y.chunks_mut(p.hw).zip(x.chunks(p.hw))) {
                let (a, b) = affine(gamma[c], beta[c], mean, rstd);
                for (y, x) in y.iter_mut().zip(x) {
                    y.write(activate(*x * a + b, p.silu));
                }
            }
        }
    });
    // SAFETY: the chunks cover all x.len() elements of the capacity, and each was written above.
    unsafe { y.set_len(x.len()) };
    y
}

/// `[dx (all of x), dγ (c), dβ (c)]` in one vector; `params` is `[γ, β]` (`2c`), `β` read only with SiLU.
fn backward<T: Float>(p: &Norm, x: &[T], params: &[T], dy: &[T]) -> Vec<T> {
    let (n, cg) = (p.n(), p.c / p.groups);
    let (gamma, beta) = params.split_at(p.c);
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
                // Per channel, Σ du and Σ du·x of the gradient `du` reaching the normalised output: `dy` itself, or
                // with SiLU its gradient through SiLU at `u = x·a_c + b_c`, kept in dx until the last pass
                // overwrites it. Then Σ γ·du and Σ γ·du·x̂ over the group.
                let (mut a, mut bsum) = (0.0, 0.0);
                if p.hw == 1 {
                    // One value per channel (a LayerNorm row).
                    let du: &[T] = if p.silu { silu_grad_of_row(x, dy, &gamma[c0..], &beta[c0..], mean, rstd, dx) } else { dy };
                    for ((part, g), (x, du)) in partial.iter_mut().zip(&gamma[c0..]).zip(x.iter().zip(du)) {
                        let (du, g) = (du.to_f64(), g.to_f64());
                        let dgamma = du * (x.to_f64() - mean) * rstd;
                        *part = (dgamma, du);
                        a += g * du;
                        bsum += g * dgamma;
                    }
                } else {
                    let channels = dx.chunks_mut(p.hw).zip(x.chunks(p.hw).zip(dy.chunks(p.hw)));
                    for (ci, (du, (x, dy))) in channels.enumerate() {
                        let (s1, s2) = if p.silu {
                            silu_grad_and_sums(x, dy, affine(gamma[c0 + ci], beta[c0 + ci], mean, rstd), du)
                        } else {
                            (sum(dy, dy, |d, _| d), sum(dy, x, |d, x| d * x))
                        };
                        let dgamma = rstd * (s2 - mean * s1);
                        partial[ci] = (dgamma, s1);
                        a += gamma[c0 + ci].to_f64() * s1;
                        bsum += gamma[c0 + ci].to_f64() * dgamma;
                    }
                }
                let (a, bm) = (a / n as f64, bsum / n as f64);
                let q = T::from_f64(-rstd * rstd * bm);
                let r = T::from_f64(rstd * (mean * rstd * bm - a));
                if p.hw == 1 && !p.silu {
                    let rho = T::from_f64(rstd);
                    for ((d, g), (x, dy)) in dx.iter_mut().zip(&gamma[c0..]).zip(x.iter().zip(dy)) {
                        *d = *dy * rho * *g + *x * q + r;
                    }
                    return;
                }
                for (c, (dx, x)) in (c0..).zip(dx.chunks_mut(p.hw).zip(x.chunks(p.hw))) {
                    let s = T::from_f64(rstd * gamma[c].to_f64());
                    if p.silu {
                        for (d, x) in dx.iter_mut().zip(x) {
                            *d = *d * s + *x * q + r;
                        }
                    } else {
                        let dy = &dy[(c - c0) * p.hw..][..p.hw];
                        for (d, (x, dy)) in dx.iter_mut().zip(x.iter().zip(dy)) {
                            *d = *dy * s + *x * q + r;
                        }
                    }
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

/// SiLU of `u` when `silu`, else `u`.
#[inline(always)]
fn activate<T: Float>(u: T, silu: bool) -> T {
    if silu {
        silu_one(u)
    } else {
        u
    }
}

/// `(a, b)` of the channel's map `x ↦ x·a + b = γ·(x − μ)·ρ + β`.
#[inline(always)]
fn affine<T: Float>(gamma: T, beta: T, mean: f64, rstd: f64) -> (T, T) {
    let a = rstd * gamma.to_f64();
    (T::from_f64(a), T::from_f64(beta.to_f64() - mean * a))
}

/// `du ← SiLU′(u)·dy` at `u = x·a + b` over one channel (`affine` is `(a, b)`), returning `(Σ du, Σ du·x)`: one pass
/// that accumulates in [`LANES`] lanes of `T` (so that it vectorises) and sums them up in f64.
#[inline(always)]
fn silu_grad_and_sums<T: Float>(x: &[T], dy: &[T], (a, b): (T, T), du: &mut [T]) -> (f64, f64) {
    let (mut s1, mut s2) = ([T::zero(); LANES], [T::zero(); LANES]);
    let whole = x.len() / LANES * LANES;
    let blocks =
        du[..whole].chunks_exact_mut(LANES).zip(x[..whole].chunks_exact(LANES).zip(dy[..whole].chunks_exact(LANES)));
    for (du, (x, dy)) in blocks {
        for l in 0..LANES {
            let d = silu_grad_one(x[l] * a + b, dy[l]);
            du[l] = d;
            s1[l] += d;
            s2[l] += d * x[l];
        }
    }
    for (du, (x, dy)) in du[whole..].iter_mut().zip(x[whole..].iter().zip(&dy[whole..])) {
        *du = silu_grad_one(*x * a + b, *dy);
        s1[0] += *du;
        s2[0] += *du * *x;
    }
    let total = |lanes: [T; LANES]| lanes.iter().map(|v| v.to_f64()).sum();
    (total(s1), total(s2))
}

/// `du ← SiLU′(u)·dy` at `u = x·a_c + b_c` along a row of one value per channel (a LayerNorm row); returns `du`.
#[inline(always)]
fn silu_grad_of_row<'a, T: Float>(
    x: &[T],
    dy: &[T],
    gamma: &[T],
    beta: &[T],
    mean: f64,
    rstd: f64,
    du: &'a mut [T],
) -> &'a [T] {
    for ((du, (x, dy)), (g, b)) in du.iter_mut().zip(x.iter().zip(dy)).zip(gamma.iter().zip(beta)) {
        let (a, b) = affine(*g, *b, mean, rstd);
        *du = silu_grad_one(*x * a + b, *dy);
    }
    du
}

/// `(x, γ, β) → y` when `backward` is false, `(x, [γ, β], dy) → [dx, dγ, dβ]` when true.
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
        let [x, params, third] = operands else { unreachable!("three operands") };
        if self.backward {
            backward(&self.norm, x, params, third)
        } else {
            forward(&self.norm, x, params, third)
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
        let (params, third) = if self.backward { (Shape::from(2 * self.norm.c), &self.shape) } else { (c.clone(), &c) };
        let storage = cpu::run(self, &[(s1, l1, &self.shape), (s2, l2, &params), (s3, l3, third)])?;
        let len = self.shape.elem_count();
        Ok((storage, if self.backward { Shape::from(len + 2 * self.norm.c) } else { self.shape.clone() }))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = GroupNormOp { norm: self.norm, shape: self.shape.clone(), backward: true };
        let params = Tensor::cat(&[gamma, beta], 0)?.detach();
        let packed = x.apply_op3(&params, &dy.contiguous()?, op)?;
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
