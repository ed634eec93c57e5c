//! Biases and their gradients, which candle's `broadcast_add` sums with a strided reduction on one thread:
//! - a convolution's bias per image and channel gets the incoming gradient summed over each `(image, channel)` plane
//!   in one parallel pass ([`sum_planes`]; a bias shared by all images is broadcast to `(b, c)` first, and candle
//!   sums that small gradient over the images);
//! - a linear layer's bias `(n)`, added to every row of `(rows, n)` (`super::linear`), gets the column sums of the
//!   incoming gradient, accumulated row by row in parallel blocks of rows ([`sum_columns`]).

use super::cpu::{self, sum, vectorized, Float, Kernel};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `g (b, c, …) → Σ_{…} g[b, c, …]`, shape `(b, c)`.
struct PlaneSum {
    shape: Shape,
}

impl PlaneSum {
    /// `(b, c)`.
    fn planes(&self) -> (usize, usize) {
        let dims = self.shape.dims();
        (dims[0], dims[1])
    }
}

impl Kernel for PlaneSum {
    fn name(&self) -> &'static str {
        "cmr-plane-sum"
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let hw = self.shape.dims()[2..].iter().product::<usize>().max(1);
        operands[0].par_chunks(hw).map(|g| T::from_f64(vectorized!(sum(g, g, |v, _| v)))).collect()
    }
}

impl CustomOp1 for PlaneSum {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((cpu::run(self, &[(s, l, &self.shape)])?, Shape::from(self.planes())))
    }

    fn bwd(&self, _g: &Tensor, _sums: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, c) = self.planes();
        let mut dims = vec![1; self.shape.rank()];
        (dims[0], dims[1]) = (b, c);
        grad.reshape(dims)?.broadcast_as(&self.shape).map(Some)
    }
}

/// `Σ g` over the trailing dimensions of the f32/f64 CPU tensor `g (b, c, …)`, shape `(b, c)`, differentiable.
pub(super) fn sum_planes(g: &Tensor) -> Result<Tensor> {
    g.contiguous()?.apply_op1(PlaneSum { shape: g.shape().clone() })
}

/// Rows per work item of [`ColumnSum`]: partial sums of this many rows stay in `T` (so the loop vectorises) before
/// they are added up in f64, in row order, so the result does not depend on the thread count.
const ROW_BLOCK: usize = 64;

/// `g (rows, n) → Σ_rows g`, shape `(n)`.
struct ColumnSum {
    rows: usize,
    n: usize,
}

impl Kernel for ColumnSum {
    fn name(&self) -> &'static str {
        "cmr-column-sum"
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let n = self.n;
        let partials: Vec<Vec<T>> = operands[0]
            .par_chunks(n * ROW_BLOCK)
            .map(|block| {
                let mut acc = vec![T::zero(); n];
                vectorized! {
                    for row in block.chunks(n) {
                        for (a, g) in acc.iter_mut().zip(row) {
                            *a += *g;
                        }
                    }
                }
                acc
            })
            .collect();
        let mut total = vec![0f64; n];
        for part in &partials {
            total.iter_mut().zip(part).for_each(|(t, p)| *t += p.to_f64());
        }
        total.into_iter().map(T::from_f64).collect()
    }
}

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((cpu::run(self, &[(s, l, &Shape::from((self.rows, self.n)))])?, Shape::from(self.n)))
    }

    fn bwd(&self, _g: &Tensor, _sums: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        grad.unsqueeze(0)?.broadcast_as((self.rows, self.n)).map(Some)
    }
}

/// `Σ g` over the rows of the f32/f64 CPU tensor `g (rows, n)`, shape `(n)`, differentiable.
pub(super) fn sum_columns(g: &Tensor) -> Result<Tensor> {
    let (rows, n) = g.dims2()?;
    g.contiguous()?.apply_op1(ColumnSum { rows, n })
}
