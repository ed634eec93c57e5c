//! Per-channel bias `y[b, c, …] = x[b, c, …] + β[c]` (every conv layer's bias) as a multi-threaded CPU custom op.
//!
//! Candle's `broadcast_add` runs on one thread, and its backward for `β` sums the gradient over the broadcast
//! dimensions (batch and space) with a strided, single-threaded reduction. Here the forward is one parallel pass, the
//! gradient of `x` is the incoming gradient itself, and that of `β` one parallel pass of per-channel sums
//! ([`ChannelSum`], whose own backward is a broadcast).

use super::cpu::{self, sum, vectorized, Float, Kernel};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `x (b, c, hw…)`: its shape, and `(b, c, hw)`.
#[derive(Debug, Clone)]
struct Channels {
    shape: Shape,
    c: usize,
    hw: usize,
}

/// `(x, β) → x + β[c]`.
struct AddBias(Channels);

/// `g → Σ_{b, hw} g[b, c, hw]`, shape `(c)`.
struct ChannelSum(Channels);

impl Kernel for AddBias {
    fn name(&self) -> &'static str {
        "cmr-add-channel-bias"
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let (x, bias, hw) = (operands[0], operands[1], self.0.hw);
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(hw).zip(x.par_chunks(hw)).enumerate().for_each(|(i, (y, x))| {
            let b = bias[i % self.0.c];
            vectorized! {
                for (y, x) in y.iter_mut().zip(x) {
                    *y = *x + b;
                }
            }
        });
        y
    }
}

impl Kernel for ChannelSum {
    fn name(&self) -> &'static str {
        "cmr-channel-sum"
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let (g, Channels { c, hw, .. }) = (operands[0], &self.0);
        let plane_sums: Vec<f64> = g.par_chunks(*hw).map(|g| vectorized!(sum(g, g, |v, _| v))).collect();
        (0..*c).map(|ch| T::from_f64(plane_sums.iter().skip(ch).step_by(*c).sum())).collect()
    }
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let c = Shape::from(self.0.c);
        Ok((cpu::run(self, &[(s1, l1, &self.0.shape), (s2, l2, &c)])?, self.0.shape.clone()))
    }

    fn bwd(&self, x: &Tensor, bias: &Tensor, _y: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.track_op().then(|| g.clone());
        let dbias = bias.track_op().then(|| g.contiguous()?.apply_op1(ChannelSum(self.0.clone()))).transpose()?;
        Ok((dx, dbias))
    }
}

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        Kernel::name(self)
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((cpu::run(self, &[(s, l, &self.0.shape)])?, Shape::from(self.0.c)))
    }

    fn bwd(&self, _g: &Tensor, _sums: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let mut dims = vec![1; self.0.shape.rank()];
        dims[1] = self.0.c;
        grad.reshape(dims)?.broadcast_as(&self.0.shape).map(Some)
    }
}

/// Applies the op to f32/f64 CPU tensors `x (b, c, …)` and `β (c)` of one dtype.
pub(super) fn apply(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    let channels = Channels { shape: x.shape().clone(), c: dims[1], hw: dims[2..].iter().product() };
    x.contiguous()?.apply_op2(&bias.contiguous()?, AddBias(channels))
}
