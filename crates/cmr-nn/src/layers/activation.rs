//! Activations and softmax whose backward is exact, so their gradients hold in f64: SiLU, exact GELU and softmax run
//! as [`crate::ops`]' fused CPU ops (candle primitives elsewhere), the tanh GELU from candle primitives.
//!
//! - SiLU / swish `x·σ(x)` (Elfwing et al., arXiv 1702.03118; diffusers `"silu"`);
//! - GELU `x·Φ(x)` exact (`0.5·x·(1 + erf(x/√2))`) and its tanh approximation
//!   (`0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`), Hendrycks & Gimpel, arXiv 1606.08415; torch
//!   `F.gelu(approximate="none" | "tanh")`;
//! - softmax as `exp(x − max) / Σ exp(x − max)`.
//!
//! Why not candle's own: the fused `candle_nn::ops::softmax_last_dim` records no gradient on CPU (candle 0.11.1), and
//! the backward of the fused `gelu` / `gelu_erf` unary ops uses 6-digit constants (`0.797885`, `0.398942`), so their
//! gradients are off by up to ~2e-7 absolute (4.5e-5 relative on small entries) — visible to an f64
//! finite-difference check (`tests/suite/candle_gaps.rs`).

use candle_core::shape::Dim;
use candle_core::{Module, Result, Tensor};

/// √(2/π), the slope of the tanh approximation of GELU.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;

/// An elementwise activation, named as diffusers' `get_activation` / `FeedForward` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// `x·σ(x)` (`"silu"`, `"swish"`); the default of every diffusers ResNet and time-embedding block.
    #[default]
    Silu,
    /// Exact GELU `0.5·x·(1 + erf(x/√2))` (`"gelu"`, torch `approximate="none"`).
    Gelu,
    /// Tanh-approximated GELU (`"gelu-approximate"`, torch `approximate="tanh"`).
    GeluTanh,
}

impl Module for Activation {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::Silu => silu(xs),
            Self::Gelu => gelu_erf(xs),
            Self::GeluTanh => gelu_tanh(xs),
        }
    }
}

/// SiLU `x·σ(x)`: [`crate::ops::silu`], a fused multi-threaded op on CPU with a fused backward, candle's `silu`
/// (whose backward is exact too) elsewhere.
pub fn silu(xs: &Tensor) -> Result<Tensor> {
    crate::ops::silu(xs)
}

/// Exact GELU `0.5·x·(1 + erf(x/√2))`, differentiated through `erf` (whose backward `2/√π·e^(−x²)` is exact).
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    crate::ops::gelu(xs)
}

/// Tanh-approximated GELU `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh(xs: &Tensor) -> Result<Tensor> {
    let inner = ((xs + (xs.powf(3.0)? * 0.044715)?)? * SQRT_2_OVER_PI)?;
    (xs * 0.5)?.mul(&(inner.tanh()? + 1.0)?)
}

/// Softmax along `dim`, `exp(x − max) / Σ exp(x − max)`. Subtracting the maximum keeps `exp` finite; softmax is
/// invariant to that shift, so the maximum is detached and contributes no gradient (its own backward would route
/// the gradient to the arg-max entries only, which is correct in sum but needless work).
/// Along the last dimension this is [`crate::ops::softmax_last_dim`], one fused op forward and backward.
pub fn softmax<D: Dim>(xs: &Tensor, dim: D) -> Result<Tensor> {
    let dim = dim.to_index(xs.shape(), "softmax")?;
    if dim + 1 == xs.rank() {
        return crate::ops::softmax_last_dim(xs);
    }
    let max = xs.max_keepdim(dim)?.detach();
    let exp = xs.broadcast_sub(&max)?.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(dim)?)
}
