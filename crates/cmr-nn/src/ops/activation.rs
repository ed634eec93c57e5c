//! SiLU, exact GELU and last-dimension softmax as fused, multi-threaded CPU custom ops with fused backward passes.
//!
//! Candle's CPU element-wise ops run on one thread, `exp` is a libm call per element, and their backward passes are
//! chains of primitives (SiLU: ~8 passes; GELU: ~5 forward around a one-thread libm `erf`; softmax from
//! primitives: ~5 forward, more backward), while candle's fused
//! `softmax_last_dim` records no gradient. Here each direction is one pass (softmax: one per row, in cache):
//!
//! ```text
//! silu      y = x·s,  s = 1/(1 + e⁻ˣ)            dx = g·s·(1 + x·(1 − s))
//! gelu      y = x·Φ(x), Φ(x) = ½·erfc(−x/√2)      dx = g·(Φ(x) + x·e^(−x²/2)/√(2π))
//! softmax   y = eˣ⁻ᵐᵃˣ / Σ eˣ⁻ᵐᵃˣ                 dx = y·(g − Σ g·y)
//! geglu     y = a·gelu(b), [a | b] = x            da = g·gelu(b),  db = g·a·gelu′(b)
//! ```
//!
//! GEGLU (a transformer feed-forward's activation) reads both halves of the last dimension in place, where
//! `narrow` + GELU + `mul` copy the gate, and the backward of each `narrow` pads its gradient with zeros to the full
//! width before the two are added.
//!
//! The backward ops record no gradient of their own (second derivatives fail with `BackwardNotSupported`).

use super::cpu::{self, lanes, sum, vectorized, Float, Kernel};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};

/// Elements per parallel work item.
const CHUNK: usize = 1 << 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activation {
    Silu,
    /// Exact GELU `x·Φ(x)`.
    Gelu,
    /// Over the last dimension.
    Softmax,
}

/// The forward (`x → y`) or the backward (`(saved, g) → dx`, saved = `x` for SiLU and GELU, `y` for softmax) of one
/// activation.
struct ActivationOp {
    act: Activation,
    shape: Shape,
    backward: bool,
}

impl ActivationOp {
    /// Length of one independent unit: a softmax row, or any chunk of SiLU's elements.
    fn row(&self) -> usize {
        match self.act {
            Activation::Silu | Activation::Gelu => CHUNK,
            Activation::Softmax => self.shape.dims().last().copied().unwrap_or(1).max(1),
        }
    }
}

#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).fast_exp())
}

#[inline(always)]
fn silu<T: Float>(x: &[T], y: &mut [T]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y = silu_one(*x));
}

/// `x·σ(x)`.
#[inline(always)]
pub(super) fn silu_one<T: Float>(x: T) -> T {
    x * sigmoid(x)
}

/// `g·σ(x)·(1 + x·(1 − σ(x)))`: the gradient of SiLU at `x` given the gradient `g` of its output.
#[inline(always)]
pub(super) fn silu_grad_one<T: Float>(x: T, g: T) -> T {
    let s = sigmoid(x);
    g * s * (T::one() + x * (T::one() - s))
}

#[inline(always)]
fn silu_grad<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    for (dx, (x, g)) in dx.iter_mut().zip(x.iter().zip(g)) {
        *dx = silu_grad_one(*x, *g);
    }
}

/// `Φ(x) = ½·erfc(−x/√2)`, from `erfc` of `|x|/√2` so that neither tail cancels.
#[inline(always)]
fn normal_cdf<T: Float>(x: T) -> T {
    let half_tail = T::from_f64(0.5) * (if x < T::zero() { -x } else { x } * T::from_f64(FRAC_1_SQRT_2)).erfc_nonneg();
    if x < T::zero() {
        half_tail
    } else {
        T::one() - half_tail
    }
}

/// `x·Φ(x)`.
#[inline(always)]
fn gelu_one<T: Float>(x: T) -> T {
    x * normal_cdf(x)
}

/// GELU and its derivative at `x`, `(x·Φ(x), Φ(x) + x·φ(x))` with `φ(x) = e^(−x²/2)/√(2π)`, sharing one `Φ(x)`.
#[inline(always)]
fn gelu_and_slope<T: Float>(x: T) -> (T, T) {
    let (minus_half, inv_sqrt_2pi) = (T::from_f64(-0.5), T::from_f64(0.5 * FRAC_2_SQRT_PI * FRAC_1_SQRT_2));
    let (cdf, density) = (normal_cdf(x), (minus_half * x * x).fast_exp() * inv_sqrt_2pi);
    (x * cdf, cdf + x * density)
}

#[inline(always)]
fn gelu<T: Float>(x: &[T], y: &mut [T]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y = gelu_one(*x));
}

/// `dx = g·(Φ(x) + x·φ(x))`.
#[inline(always)]
fn gelu_grad<T: Float>(x: &[T], g: &[T], dx: &mut [T]) {
    for (dx, (x, g)) in dx.iter_mut().zip(x.iter().zip(g)) {
        *dx = *g * gelu_and_slope(*x).1;
    }
}

#[inline(always)]
fn softmax<T: Float>(x: &[T], y: &mut [T]) {
    let max = row_max(x);
    y.iter_mut().zip(x).for_each(|(y, x)| *y = (*x - max).fast_exp());
    divide_by_sum(y);
}

/// `row ← softmax(scale·row)` in place, as `exp(scale·(x − max)) / Σ` (`scale > 0`).
#[inline(always)]
pub(super) fn softmax_scaled_in_place<T: Float>(row: &mut [T], scale: T) {
    let max = row_max(row);
    for x in row.iter_mut() {
        *x = ((*x - max) * scale).fast_exp();
    }
    divide_by_sum(row);
}

/// `e ← e / Σ e`: the normalisation that ends a softmax.
#[inline(always)]
fn divide_by_sum<T: Float>(e: &mut [T]) {
    let inv = T::from_f64(1.0 / sum(e, e, |e, _| e));
    for e in e.iter_mut() {
        *e *= inv;
    }
}

/// The largest value of a non-empty row.
#[inline(always)]
fn row_max<T: Float>(x: &[T]) -> T {
    let max = lanes(x, x, x[0], |a, x, _| if x > a { x } else { a });
    max.into_iter().fold(max[0], |a, x| if x > a { x } else { a })
}

#[inline(always)]
fn softmax_grad<T: Float>(y: &[T], g: &[T], dx: &mut [T]) {
    let dot = T::from_f64(sum(y, g, |y, g| y * g));
    dx.iter_mut().zip(y.iter().zip(g)).for_each(|(dx, (y, g))| *dx = *y * (*g - dot));
}

impl Kernel for ActivationOp {
    fn name(&self) -> &'static str {
        match (self.act, self.backward) {
            (Activation::Silu, false) => "cmr-silu",
            (Activation::Silu, true) => "cmr-silu-backward",
            (Activation::Gelu, false) => "cmr-gelu",
            (Activation::Gelu, true) => "cmr-gelu-backward",
            (Activation::Softmax, false) => "cmr-softmax-last-dim",
            (Activation::Softmax, true) => "cmr-softmax-last-dim-backward",
        }
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let a = operands[0];
        let mut out = vec![T::zero(); a.len()];
        let row = self.row();
        let chunk = row * (CHUNK / row).max(1);
        let units = out.par_chunks_mut(chunk).zip(a.par_chunks(chunk));
        match (self.act, operands.get(1)) {
            (Activation::Silu, None) => units.for_each(|(y, x)| vectorized!(silu(x, y))),
            (Activation::Silu, Some(g)) => {
                units.zip(g.par_chunks(chunk)).for_each(|((dx, x), g)| vectorized!(silu_grad(x, g, dx)));
            }
            (Activation::Gelu, None) => units.for_each(|(y, x)| vectorized!(gelu(x, y))),
            (Activation::Gelu, Some(g)) => {
                units.zip(g.par_chunks(chunk)).for_each(|((dx, x), g)| vectorized!(gelu_grad(x, g, dx)));
            }
            (Activation::Softmax, None) => units.for_each(|(y, x)| {
                vectorized! {
                    for (y, x) in y.chunks_mut(row).zip(x.chunks(row)) {
                        softmax(x, y);
                    }
                }
            }),
            (Activation::Softmax, Some(g)) => units.zip(g.par_chunks(chunk)).for_each(|((dx, y), g)| {
                vectorized! {
                    for (dx, (y, g)) in dx.chunks_mut(row).zip(y.chunks(row).zip(g.chunks(row))) {
                        softmax_grad(y, g, dx);
                    }
                }
            }),
        }
        out
    }
}

impl CustomOp1 for ActivationOp {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((cpu::run(self, &[(s, l, &self.shape)])?, self.shape.clone()))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let op = ActivationOp { act: self.act, shape: self.shape.clone(), backward: true };
        let saved = match self.act {
            Activation::Silu | Activation::Gelu => x,
            Activation::Softmax => y,
        };
        saved.apply_op2(&g.contiguous()?, op).map(Some)
    }
}

impl CustomOp2 for ActivationOp {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((cpu::run(self, &[(s1, l1, &self.shape), (s2, l2, &self.shape)])?, self.shape.clone()))
    }
}

/// Applies `act` to an f32/f64 CPU tensor (softmax: over its last dimension), recording it for backprop.
pub(super) fn apply(act: Activation, x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(ActivationOp { act, shape: x.shape().clone(), backward: false })
}

/// GEGLU over the last dimension `2n` of `rows` rows: `[a | b] → a·gelu(b)` (forward), `(x, g) → dx` (backward).
#[derive(Debug, Clone, Copy)]
struct Geglu {
    rows: usize,
    n: usize,
    backward: bool,
}

impl Kernel for Geglu {
    fn name(&self) -> &'static str {
        if self.backward {
            "cmr-geglu-backward"
        } else {
            "cmr-geglu"
        }
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let (x, n) = (operands[0], self.n);
        let rows = (CHUNK / n).max(1); // per work item
        let Some(g) = operands.get(1) else {
            let mut y = vec![T::zero(); self.rows * n];
            y.par_chunks_mut(rows * n).zip(x.par_chunks(rows * 2 * n)).for_each(|(y, x)| {
                vectorized! {
                    for (y, x) in y.chunks_mut(n).zip(x.chunks(2 * n)) {
                        let (a, b) = x.split_at(n);
                        for (y, (a, b)) in y.iter_mut().zip(a.iter().zip(b)) {
                            *y = *a * gelu_one(*b);
                        }
                    }
                }
            });
            return y;
        };
        let mut dx = vec![T::zero(); self.rows * 2 * n];
        let units = dx.par_chunks_mut(rows * 2 * n).zip(x.par_chunks(rows * 2 * n));
        units.zip(g.par_chunks(rows * n)).for_each(|((dx, x), g)| {
            vectorized! {
                for ((dx, x), g) in dx.chunks_mut(2 * n).zip(x.chunks(2 * n)).zip(g.chunks(n)) {
                    let ((da, db), (a, b)) = (dx.split_at_mut(n), x.split_at(n));
                    for ((da, db), ((a, b), g)) in da.iter_mut().zip(db).zip(a.iter().zip(b).zip(g)) {
                        let (gelu, slope) = gelu_and_slope(*b);
                        *da = *g * gelu;
                        *db = (*g * *a) * slope;
                    }
                }
            }
        });
        dx
    }
}

impl CustomOp1 for Geglu {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((cpu::run(self, &[(s, l, &Shape::from((self.rows, 2 * self.n)))])?, Shape::from((self.rows, self.n))))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        x.apply_op2(&g.contiguous()?, Geglu { backward: true, ..*self }).map(Some)
    }
}

impl CustomOp2 for Geglu {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (Shape::from((self.rows, 2 * self.n)), Shape::from((self.rows, self.n)));
        Ok((cpu::run(self, &[(s1, l1, &x), (s2, l2, &g)])?, x))
    }
}

/// GEGLU of an f32/f64 CPU tensor `x (rows, 2n)` → `(rows, n)`, recording it for backprop.
pub(super) fn apply_geglu(x: &Tensor) -> Result<Tensor> {
    let (rows, width) = x.dims2()?;
    x.contiguous()?.apply_op1(Geglu { rows, n: width / 2, backward: false })
}
