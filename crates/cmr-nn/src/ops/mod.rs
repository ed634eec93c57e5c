//! Tensor operations with tested gradients that candle lacks or runs slowly on CPU.
//!
//! Candle 0.11.1's CPU convolution reaches 35–47 GFLOP/s here against PyTorch's ~300 (issue 3), and its backward is two
//! more convolutions of the same kind. [`conv2d`] runs f32/f64 CPU tensors through custom ops instead (`conv.rs`):
//! Winograd's F(2×2, 3×3) for the forward pass and input gradient of 3×3, stride-1 convolutions (most of a UNet's work;
//! `winograd.rs`), im2col + gemm for everything else (`im2col.rs`); every other device and dtype goes to candle.
//! [`group_norm`] is one fused op (`group_norm.rs`) where candle-nn's is a dozen primitives forward and twice that
//! backward, and [`group_norm_silu`] the same op with SiLU applied in its passes, [`layer_norm`] with one value per
//! channel; [`silu`], [`gelu`], [`geglu`] and [`softmax_last_dim`] are fused, multi-threaded ops with fused backward
//! passes (`activation.rs`), where candle's are single-threaded chains of primitives (or, for candle's fused softmax,
//! record no gradient); [`conv2d_biased`] adds a conv's bias inside the convolution op, and its gradient is one
//! parallel reduction (`bias.rs`) where `broadcast_add`'s is strided on one thread; [`linear_biased`] does the same for
//! a linear layer (`linear.rs`). [`attention`] is one op each way whose scores stay in cache (`attention.rs`).

mod activation;
mod adamw;
mod attention;
mod bias;
mod conv;
mod cpu;
mod gemm;
mod group_norm;
mod im2col;
mod linear;
mod resample;
#[cfg(test)]
mod tests;
mod winograd;

use activation::Activation;
pub(crate) use adamw::AdamWStep;
use candle_core::{bail, DType, Module, Result, Tensor, Var, D};

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
/// arguments. Every conv layer of the project goes through this one function (or [`conv2d_biased`]), so a faster
/// kernel lands everywhere.
pub fn conv2d(input: &Tensor, weight: &Tensor, params: ConvParams) -> Result<Tensor> {
    let geom = conv_geometry(input, weight, params)?;
    if !fast_path(input, &[weight]) {
        return input.conv2d(weight, params.padding, params.stride, 1, params.groups);
    }
    conv::apply(conv::Kind::Conv, geom, input, weight)
}

/// [`conv2d`] plus a bias, `(c_out)` for every image or `(b, c_out)` per image (a conv bias with a ResNet block's time
/// embedding folded in), differentiable in all three; on f32/f64 CPU tensors one op, the bias added inside the gemm.
pub fn conv2d_biased(input: &Tensor, weight: &Tensor, bias: &Tensor, params: ConvParams) -> Result<Tensor> {
    let geom = conv_geometry(input, weight, params)?;
    let per_image = match bias.dims() {
        [c] if *c == geom.c_out => bias.unsqueeze(0)?.broadcast_as((geom.b, geom.c_out))?,
        [b, c] if *b == geom.b && *c == geom.c_out => bias.clone(),
        _ => bail!(
            "conv2d: bias {:?} does not fit {} output channels of {} images; expected (c_out) or (b, c_out)",
            bias.shape(),
            geom.c_out,
            geom.b
        ),
    };
    if !fast_path(input, &[weight, bias]) {
        let ys = input.conv2d(weight, params.padding, params.stride, 1, params.groups)?;
        return ys.broadcast_add(&per_image.unsqueeze(2)?.unsqueeze(3)?);
    }
    conv::apply_biased(geom, input, weight, &per_image)
}

/// The geometry of `input ⊛ weight`, or an error naming both shapes.
fn conv_geometry(input: &Tensor, weight: &Tensor, params: ConvParams) -> Result<im2col::Geometry> {
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
    Ok(im2col::Geometry { b, c_in, h, w, c_out, k_h, k_w, stride, padding, groups })
}

/// GroupNorm of `x (b, c, …)` over `groups` groups of channels, with per-channel `weight` and `bias` `(c)`: the
/// computation of candle-nn's `GroupNorm` (and PyTorch's `F.group_norm`), differentiable in all three tensors.
/// f32/f64 CPU tensors take the fused op; every other device and dtype goes through candle-nn.
pub fn group_norm(x: &Tensor, groups: usize, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    normalize(x, groups, weight, bias, eps, false)
}

/// [`group_norm`] followed by [`silu`], as one fused op on f32/f64 CPU tensors (the norm → activation pair of every
/// ResNet block): one pass each way and no intermediate tensor.
pub fn group_norm_silu(x: &Tensor, groups: usize, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    normalize(x, groups, weight, bias, eps, true)
}

fn normalize(x: &Tensor, groups: usize, weight: &Tensor, bias: &Tensor, eps: f64, with_silu: bool) -> Result<Tensor> {
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
        let normed = candle_nn::GroupNorm::new(weight.clone(), bias.clone(), c, groups, eps)?.forward(x)?;
        return if with_silu { normed.silu() } else { Ok(normed) };
    }
    let norm = group_norm::Norm { b: dims[0], c, hw: dims[2..].iter().product(), groups, eps, silu: with_silu };
    group_norm::apply(norm, x, weight, bias)
}

/// LayerNorm of `x (…, size)` over its last dimension with per-element `weight` and `bias` `(size)`, as
/// `torch.nn.functional.layer_norm`, differentiable in all three: on f32/f64 CPU tensors the fused GroupNorm op over
/// `(rows, size, 1)` with one group; elsewhere candle primitives (candle's fused `layer_norm` records no gradient).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let size = x.dim(D::Minus1)?;
    if weight.dims() != [size] || bias.dims() != [size] {
        bail!(
            "layer_norm: weight {:?} and bias {:?} do not fit input {:?}; expected ({size})",
            weight.shape(),
            bias.shape(),
            x.shape()
        );
    }
    if !fast_path(x, &[weight, bias]) {
        return normalize_last(x, eps)?.broadcast_mul(weight)?.broadcast_add(bias);
    }
    let rows = x.elem_count() / size.max(1);
    let norm = group_norm::Norm { b: rows, c: size, hw: 1, groups: 1, eps, silu: false };
    group_norm::apply(norm, &x.reshape((rows, size, 1))?, weight, bias)?.reshape(x.shape())
}

/// `(x − mean) / √(var + eps)` over the last dimension, with the biased variance (divide by n, as torch). Half
/// precision is computed in f32: the sum of squares of a group overflows f16 long before the values do.
pub(crate) fn normalize_last(xs: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = xs.dtype();
    let work = match dtype {
        DType::F16 | DType::BF16 => xs.to_dtype(DType::F32)?,
        _ => xs.clone(),
    };
    let centered = work.broadcast_sub(&work.mean_keepdim(D::Minus1)?)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)
}

/// SiLU `x·σ(x)`, differentiable; f32/f64 CPU tensors take the fused op, everything else candle's `silu`.
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if fast_path(x, &[]) {
        activation::apply(Activation::Silu, x)
    } else {
        x.silu()
    }
}

/// Exact GELU `x·Φ(x) = ½·x·(1 + erf(x/√2))`, differentiable; f32/f64 CPU tensors take the fused op, everything else
/// candle primitives (not candle's fused `gelu_erf`, whose backward uses 6-digit constants).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if fast_path(x, &[]) {
        activation::apply(Activation::Gelu, x)
    } else {
        let cdf = ((x / std::f64::consts::SQRT_2)?.erf()? + 1.0)?; // 2·Φ(x)
        (x * 0.5)?.mul(&cdf)
    }
}

/// GEGLU (Shazeer 2020) over the last dimension: `x (…, 2n) = [a | b] → a·GELU(b)`, shape `(…, n)`, with the exact
/// GELU, differentiable; f32/f64 CPU tensors take one fused op each way, everything else `narrow` + [`gelu`] + `mul`.
pub fn geglu(x: &Tensor) -> Result<Tensor> {
    let width = x.dim(D::Minus1)?;
    if width % 2 != 0 {
        bail!("geglu: the last dimension of {:?} must be even (hidden | gate)", x.shape());
    }
    let n = width / 2;
    if !fast_path(x, &[]) || n == 0 {
        return x.narrow(D::Minus1, 0, n)?.mul(&gelu(&x.narrow(D::Minus1, n, n)?)?);
    }
    let mut dims = x.dims().to_vec();
    let rows = x.elem_count() / width.max(1);
    *dims.last_mut().expect("rank ≥ 1") = n;
    activation::apply_geglu(&x.reshape((rows, width))?)?.reshape(dims)
}

/// Nearest-neighbour ×2 upsampling `(b, c, h, w) → (b, c, 2h, 2w)`, differentiable (the gradient sums each 2×2
/// block); f32/f64 CPU tensors take the parallel op, everything else reshape + broadcast.
pub fn upsample_nearest_2x(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if fast_path(x, &[]) {
        return resample::upsample_nearest_2x(x);
    }
    x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))? // each pixel repeated over a 2×2 block
        .reshape((b, c, 2 * h, 2 * w))
}

/// `x (rows, k) · w (n, k)ᵀ + bias (n)`, a linear layer with its bias, differentiable in all three; on f32/f64 CPU
/// tensors one op (the bias added inside the gemm, its gradient a parallel column sum), elsewhere candle's `matmul`
/// and `broadcast_add`.
pub fn linear_biased(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let ((_, k), (n, k_w)) = (x.dims2()?, w.dims2()?);
    if k != k_w || bias.dims() != [n] {
        bail!(
            "linear: input {:?}, weight {:?} and bias {:?} do not fit; expected (rows, k), (n, k), (n)",
            x.shape(),
            w.shape(),
            bias.shape()
        );
    }
    if fast_path(x, &[w, bias]) && n > 0 {
        linear::apply(x, w, bias)
    } else {
        x.matmul(&w.t()?)?.broadcast_add(bias)
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

/// Multi-head scaled dot-product attention `softmax(QKᵀ/√d)·V` (Vaswani et al., arXiv 1706.03762, §3.2) of queries
/// `q (b, n, heads·d)` over keys and values `k`, `v` `(b, m, heads·d)`, each head's `d` channels side by side in the
/// last dimension as the projections produce them; the output `(b, n, heads·d)` has the heads concatenated.
///
/// `key_mask (b, m)`, any dtype: nonzero marks a real key, zero a padding key that receives no attention (a tokenizer's
/// attention mask); a row whose keys are all padding attends uniformly instead of producing NaN.
///
/// Differentiable. Without a mask, on f32/f64 CPU tensors, one fused op each way (`attention.rs`); otherwise
/// [`attention_from_primitives`].
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize, key_mask: Option<&Tensor>) -> Result<Tensor> {
    let (b, n, inner) = q.dims3()?;
    let m = k.dim(1)?;
    if heads == 0 || inner % heads != 0 || k.dims() != [b, m, inner] || v.dims() != [b, m, inner] {
        bail!(
            "attention: queries {:?}, keys {:?} and values {:?} do not fit {heads} heads; expected (b, n, heads·d), \
             (b, m, heads·d), (b, m, heads·d)",
            q.shape(),
            k.shape(),
            v.shape()
        );
    }
    if key_mask.is_none() && m > 0 && fast_path(q, &[k, v]) {
        let sizes = attention::Sizes { b, n, m, heads, head_dim: inner / heads };
        return q.apply_op3(k, v, attention::FusedAttention(sizes));
    }
    attention_from_primitives(q, k, v, heads, key_mask)
}

/// [`attention`] as candle matmuls and [`softmax_last_dim`], for every device and dtype and with a key mask.
pub(crate) fn attention_from_primitives(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    key_mask: Option<&Tensor>,
) -> Result<Tensor> {
    let ((b, n, inner), m) = (q.dims3()?, k.dim(1)?);
    let head_dim = inner / heads;
    let split_heads = |t: &Tensor| t.reshape((b, t.dim(1)?, heads, head_dim))?.transpose(1, 2)?.contiguous();
    let (q, k, v) = (split_heads(q)?, split_heads(k)?, split_heads(v)?); // (b, h, t, d)

    // scores QKᵀ/√d (q scaled: n·d values rather than n·m), padding keys masked out
    let scores = (q * (1.0 / (head_dim as f64).sqrt()))?.matmul(&k.t()?)?; // (b, h, n, m)
    let scores = match key_mask {
        Some(mask) => {
            if mask.dims() != [b, m] {
                bail!("attention: key mask must be (batch {b}, keys {m}), got {:?}", mask.shape());
            }
            let shape = scores.shape().clone();
            let keep = mask.ne(0u8)?.reshape((b, 1, 1, m))?.broadcast_as(&shape)?;
            let fill = Tensor::new(lowest(scores.dtype()), scores.device())?.to_dtype(scores.dtype())?;
            keep.where_cond(&scores, &fill.broadcast_as(&shape)?)?
        }
        None => scores,
    };
    let attended = softmax_last_dim(&scores)?.matmul(&v)?; // (b, h, n, d)
    attended.transpose(1, 2)?.reshape((b, n, inner))
}

/// The most negative finite value of `dtype`: a masked score that `exp` turns into exactly 0 without the NaN that
/// `−∞ − (−∞)` gives when a whole row is masked.
fn lowest(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65504.0,
        DType::BF16 => -3.38e38,
        DType::F32 => f64::from(f32::MIN),
        _ => f64::MIN,
    }
}

/// One AdamW update of `var` with gradient `g` and moments `m`, `v` (one shape and dtype; see `crate::optim::AdamW`):
/// sets the variable and returns the new moments. f32/f64 CPU variables take two fused passes (`adamw.rs`), anything
/// else [`adamw_step_from_primitives`]; both give the same values bit for bit.
pub(crate) fn adamw_step(var: &Var, g: &Tensor, m: &Tensor, v: &Tensor, s: AdamWStep) -> Result<(Tensor, Tensor)> {
    if fast_path(var.as_tensor(), &[g, m, v]) {
        adamw::step(var.as_tensor(), g, m, v, s)
    } else {
        adamw_step_from_primitives(var, g, m, v, s)
    }
}

/// [`adamw_step`] as candle ops, for every device and dtype.
pub(crate) fn adamw_step_from_primitives(
    var: &Var,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    s: AdamWStep,
) -> Result<(Tensor, Tensor)> {
    let (beta1, beta2) = s.betas;
    let theta = var.as_tensor().detach().affine(s.decay, 0.)?;
    let m = (m.affine(beta1, 0.)? + g.affine(1.0 - beta1, 0.)?)?;
    let v = (v.affine(beta2, 0.)? + g.sqr()?.affine(1.0 - beta2, 0.)?)?;
    let denom = v.sqrt()?.affine(s.inv_sqrt_bias_correction2, s.eps)?;
    var.set(&(theta - (m.div(&denom)?).affine(s.step_size, 0.)?)?)?;
    Ok((m, v))
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
