//! Nearest-neighbour ×2 upsampling of NCHW tensors as a multi-threaded CPU custom op, and its adjoint, the sum over
//! each 2×2 block. Built from reshape and broadcast, the forward is a strided one-thread copy and the backward candle's
//! strided one-thread reduction over the broadcast dimensions; here each is one parallel pass, plane by plane. Each
//! op's backward is the other, so gradients of any order flow.

use super::cpu::{self, Float, Kernel};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `(b, c, h, w) → (b, c, 2h, 2w)` when `up`, else its adjoint `(b, c, 2h, 2w) → (b, c, h, w)`.
#[derive(Debug, Clone, Copy)]
struct Resample {
    /// The small side `(h, w)`.
    h: usize,
    w: usize,
    up: bool,
}

impl Resample {
    fn small(&self) -> usize {
        self.h * self.w
    }

    fn shape(&self, large: bool, dims: &[usize]) -> Shape {
        let k = if large { 2 } else { 1 };
        Shape::from((dims[0], dims[1], k * self.h, k * self.w))
    }
}

impl Kernel for Resample {
    fn name(&self) -> &'static str {
        if self.up {
            "cmr-upsample-nearest-2x"
        } else {
            "cmr-sum-2x2-blocks"
        }
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let (src, w) = (operands[0], self.w);
        let mut out = vec![T::zero(); if self.up { 4 } else { 1 } * src.len()];
        if self.up {
            out.par_chunks_mut(4 * self.small()).zip(src.par_chunks(self.small())).for_each(|(dst, src)| {
                for (rows, line) in dst.chunks_mut(4 * w).zip(src.chunks(w)) {
                    let (top, bottom) = rows.split_at_mut(2 * w);
                    top.chunks_mut(2).zip(line).for_each(|(pair, v)| pair.fill(*v));
                    bottom.copy_from_slice(top);
                }
            });
        } else {
            out.par_chunks_mut(self.small()).zip(src.par_chunks(4 * self.small())).for_each(|(dst, src)| {
                for (line, rows) in dst.chunks_mut(w).zip(src.chunks(4 * w)) {
                    let (top, bottom) = rows.split_at(2 * w);
                    for ((v, t), b) in line.iter_mut().zip(top.chunks(2)).zip(bottom.chunks(2)) {
                        *v = t[0] + t[1] + b[0] + b[1];
                    }
                }
            });
        }
        out
    }
}

impl CustomOp1 for Resample {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let dims = l.shape().dims();
        let (input, output) = (self.shape(!self.up, dims), self.shape(self.up, dims));
        Ok((cpu::run(self, &[(s, l, &input)])?, output))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        g.contiguous()?.apply_op1(Resample { up: !self.up, ..*self }).map(Some)
    }
}

/// Nearest ×2 upsampling of an f32/f64 CPU tensor `(b, c, h, w)`, recording it for backprop.
pub(super) fn upsample_nearest_2x(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.contiguous()?.apply_op1(Resample { h, w, up: true })
}
