//! A linear layer with a bias, `y = x·Wᵀ + b`, as one op: the output starts as the bias in every row and one gemm adds
//! `x·Wᵀ` to it. Candle's `matmul` then `broadcast_add` write the output twice, and the bias gradient is a strided
//! reduction on one thread; here it is [`super::bias::sum_columns`]. The input and weight gradients are candle
//! matmuls, so gradients of any order flow.

use super::bias::sum_columns;
use super::cpu::{self, Float, Kernel};
use super::gemm::{all_threads, matmul};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// `(x (rows, k), w (n, k), b (n)) → x·wᵀ + b`, shape `(rows, n)`.
struct BiasedLinear {
    rows: usize,
    k: usize,
    n: usize,
}

impl Kernel for BiasedLinear {
    fn name(&self) -> &'static str {
        "cmr-linear-biased"
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let [x, w, bias] = operands else { unreachable!("three operands") };
        let (rows, k, n) = (self.rows, self.k, self.n);
        let mut y = Vec::with_capacity(rows * n);
        (0..rows).for_each(|_| y.extend_from_slice(bias));
        // SAFETY: y is rows × n (row stride n), x is rows × k (row stride k), and wᵀ is read from w (n × k) with row
        // stride 1 and column stride k; y aliases neither.
        unsafe {
            matmul((rows, n, k), (y.as_mut_ptr(), n, 1), true, (x.as_ptr(), k, 1), (w.as_ptr(), 1, k), all_threads())
        };
        y
    }
}

impl CustomOp3 for BiasedLinear {
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
        let (x, w, b) = (Shape::from((self.rows, self.k)), Shape::from((self.n, self.k)), Shape::from(self.n));
        Ok((cpu::run(self, &[(s1, l1, &x), (s2, l2, &w), (s3, l3, &b)])?, Shape::from((self.rows, self.n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = g.contiguous()?;
        let dx = x.track_op().then(|| g.matmul(w)).transpose()?;
        let dw = w.track_op().then(|| g.t()?.matmul(x)).transpose()?;
        let dbias = bias.track_op().then(|| sum_columns(&g)).transpose()?;
        Ok((dx, dw, dbias))
    }
}

/// `x (rows, k) · w (n, k)ᵀ + bias (n)` for f32/f64 CPU tensors of one dtype, recording it for backprop.
pub(super) fn apply(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let ((rows, k), n) = (x.dims2()?, w.dim(0)?);
    x.contiguous()?.apply_op3(&w.contiguous()?, &bias.contiguous()?, BiasedLinear { rows, k, n })
}
