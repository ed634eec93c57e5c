//! The gradient of a bias per image and channel: the incoming gradient summed over each `(image, channel)` plane, in
//! one parallel pass. (A bias shared by all images is broadcast to this shape first; candle sums the small `(b, c)`
//! gradient over the images.) Candle's own reduction over broadcast dimensions runs strided on one thread.

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
