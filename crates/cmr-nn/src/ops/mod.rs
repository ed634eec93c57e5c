//! Tensor operations with tested gradients that candle lacks or runs slowly on CPU.
//!
//! Candle 0.11.1's CPU convolution reaches 35–47 GFLOP/s here against PyTorch's ~300 (issue 3), and its backward
//! is two more convolutions of the same kind. [`conv2d`] runs f32/f64 CPU tensors through im2col + gemm custom ops
//! instead (`conv.rs`, `im2col.rs`) and hands every other device and dtype to candle. [`group_norm`] is one fused op
//! (`group_norm.rs`) where candle-nn's is a dozen primitives forward and twice that backward; [`silu`] and
//! [`softmax_last_dim`] are fused, multi-threaded ops with fused backward passes (`activation.rs`), where candle's are
//! single-threaded chains of primitives (or, for candle's fused softmax, record no gradient); [`add_channel_bias`]
//! replaces `broadcast_add` of a conv bias, whose backward candle reduces on one thread (`bias.rs`).

mod activation;
mod bias;
mod conv;
mod cpu;
mod group_norm;
mod im2col;
#[cfg(test)]
mod tests;

use activation::Activation;
use candle_core::{bail, DType, Module, Result, Tensor, D};

/// Geometry of a 2D convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    /// Stride in both spatial dimensions.
    pub stride: usize,
    /// Zero padding on each side in both spatial dimensions.
    pub padding: usize,
    /// Number of channel groups.
    pub groups: usize,
}

/// 2D convolution `(b, c_in, h, w) ⊛ (c_out, c_in / groups, k, k) → (b, c_out, h', w')`, differentiable in both
/// arguments. Every conv layer of the project goes through this one function, so a faster kernel lands everywhere.
pub fn conv2d(input: &Tensor, weight: &Tensor, params: ConvParams) -> Result<Tensor> {
    let ConvParams { stride, padding, groups } = params;
    let ((b, c_in, h, w), (c_out, c_in_g, k_h, k_w)) = (input.dims4()?, weight.dims4()?);
    if stride == 0 || groups == 0 || c_in % groups != 0 || c_out % groups != 0 || c_in_g * groups != c_in {
        bail!(
            "conv2d: input {:?} and weight {:?} do not fit stride {stride}, groups {groups}",
            input.shape(),
            weight.shape()
        );
    }
    if h + 2 * padding < k_h || w + 2 * padding < k_w {
        bail!("conv2d: kernel {k_h}×{k_w} is larger than the padded input {:?} (padding {padding})", input.shape());
    }
    if !fast_path(input, &[weight]) {
        return input.conv2d(weight, padding, stride, 1, groups);
    }
    let geom = im2col::Geometry { b, c_in, h, w, c_out, k_h, k_w, stride, padding, groups };
    conv::apply(conv::Kind::Conv, geom, input, weight)
}

/// GroupNorm of `x (b, c, …)` over `groups` groups of channels, with per-channel `weight` and `bias` `(c)`: the
/// computation of candle-nn's `GroupNorm` (and PyTorch's `F.group_norm`), differentiable in all three tensors.
/// f32/f64 CPU tensors take the fused op; every other device and dtype goes through candle-nn.
pub fn group_norm(x: &Tensor, groups: usize, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let dims = x.dims();
    let c = dims.get(1).copied().unwrap_or(0);
    if dims.len() < 3 || groups == 0 || c % groups != 0 || weight.dims() != [c] || bias.dims() != [c] {
        bail!(
            "group_norm: input {:?}, weight {:?} and bias {:?} do not fit {groups} groups; expected (b, c, …), (c), (c)",
            x.shape(),
            weight.shape(),
            bias.shape()
        );
    }
    if !fast_path(x, &[weight, bias]) {
        return candle_nn::GroupNorm::new(weight.clone(), bias.clone(), c, groups, eps)?.forward(x);
    }
    let norm = group_norm::Norm { b: dims[0], c, hw: dims[2..].iter().product(), groups, eps };
    group_norm::apply(norm, x, weight, bias)
}

/// SiLU `x·σ(x)`, differentiable; f32/f64 CPU tensors take the fused op, everything else candle's `silu`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if fast_path(x, &[]) {
        activation::apply(Activation::Silu, x)
    } else {
        x.silu()
    }
}

/// Softmax over the last dimension, differentiable (unlike candle-nn's fused `softmax_last_dim`); f32/f64 CPU tensors
/// take the fused op, everything else candle-nn's softmax from primitives.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fast_path(x, &[]) {
        activation::apply(Activation::Softmax, x)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

/// `x + bias` with `bias (c)` broadcast over every dimension of `x (b, c, …)` but the channel one: a conv or linear
/// layer's bias, differentiable in both. f32/f64 CPU tensors take the fused op, everything else `broadcast_add`.
pub fn add_channel_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() < 2 || bias.dims() != [dims[1]] {
        bail!(
            "add_channel_bias: bias {:?} does not fit input {:?}; expected (c) for (b, c, …)",
            bias.shape(),
            x.shape()
        );
    }
    if fast_path(x, &[bias]) {
        return bias::apply(x, bias);
    }
    let mut shape = vec![1; dims.len()];
    shape[1] = dims[1];
    x.broadcast_add(&bias.reshape(shape)?)
}

/// Makes glibc's malloc keep freed memory for reuse instead of handing it back to the kernel; call once at the start of
/// a process that trains on CPU. Candle allocates a fresh buffer for every op output and gradient; by default glibc
/// serves the large ones with `mmap` and unmaps them on free, so every op pays page faults on all of its output
/// (measured: GroupNorm forward+backward on `(4, 64, 64, 64)` 16 ms → 8 ms on 2 threads; the `scripts/bench-nn.sh`
/// table is taken with it, PyTorch with the same setting). Memory freed stays in the process, so its resident size
/// stays at its peak. A no-op on other platforms.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes allocator parameters; glibc documents both settings.
        unsafe {
            mallopt(M_MMAP_MAX, 0);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

/// Whether `x` and `others` are f32 or f64 CPU tensors of one dtype, which the custom ops here take.
fn fast_path(x: &Tensor, others: &[&Tensor]) -> bool {
    x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && others.iter().all(|t| t.dtype() == x.dtype() && t.device().is_cpu())
}
