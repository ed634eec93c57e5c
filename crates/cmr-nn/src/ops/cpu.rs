//! Plumbing shared by the CPU custom ops: dtype dispatch from candle's `CpuStorage` to generic kernels, runtime SIMD
//! selection for their loops ([`vectorized!`]), and an `exp` the compiler can vectorise.
//!
//! Without `-C target-cpu`, Rust compiles for baseline x86-64 (SSE2), and `f32::exp` is a libm call per element.
//! [`vectorized!`] runs a kernel's loops compiled for AVX-512 or AVX2+FMA when the CPU has them (pulp, already in the
//! tree through gemm), and [`Float::fast_exp`] is branch-free so those loops vectorise.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Shape, WithDType};

/// The element types the CPU kernels run on: f32 (training) and f64 (gradient tests).
pub(super) trait Float: WithDType + std::ops::Neg<Output = Self> {
    /// `eˣ`; for f32 Cephes' `expf` (range reduction + degree-6 polynomial, ~1 ulp on [-87, 88], 0 below, ∞ above),
    /// for f64 the standard library's.
    fn fast_exp(self) -> Self;
    /// `erfc(x) = 1 − erf(x)` for `x ≥ 0`; for f32 Numerical Recipes' Chebyshev fit (`erfcc`, fractional error
    /// below 1.2e-7 everywhere) on [`Float::fast_exp`], branch-free so loops vectorise; for f64 libm's.
    fn erfc_nonneg(self) -> Self;
    /// `√x`, correctly rounded (the standard library's).
    fn sqrt(self) -> Self;
}

impl Float for f32 {
    #[inline(always)]
    fn fast_exp(self) -> f32 {
        let x = self.clamp(-87.0, 88.0);
        let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
        // ln 2 split in two (Cody–Waite): 0.693359375 = 355/512 exactly, plus the remainder.
        let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
        let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 0.166_666_65)
            * r
            + 0.5)
            * (r * r)
            + r
            + 1.0;
        // 2ⁿ built in the exponent bits. n ∈ [-126, 127] after the clamp; adding 1.5·2²³ + 127 leaves n + 127 in the
        // low mantissa bits, which the shift moves into the exponent. (`n as i32` would not vectorise: Rust's
        // saturating float-to-int cast becomes 16 scalar conversions.)
        p * f32::from_bits((n + 12_583_039.0).to_bits() << 23)
    }

    #[inline(always)]
    fn erfc_nonneg(self) -> f32 {
        let t = 1.0 / (1.0 + 0.5 * self);
        let poly = -1.265_512_2
            + t * (1.000_023_7
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_204 + t * (1.488_515_9 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
        t * (poly - self * self).fast_exp()
    }

    #[inline(always)]
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
}

impl Float for f64 {
    #[inline(always)]
    fn fast_exp(self) -> f64 {
        self.exp()
    }

    #[inline(always)]
    fn erfc_nonneg(self) -> f64 {
        libm::erfc(self)
    }

    #[inline(always)]
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
}

/// Runs the block compiled for the best SIMD level of this CPU (pulp's dispatch), so that its loops vectorise.
/// Everything the block calls in its loops must be `#[inline(always)]`: code left out of line keeps SSE2.
macro_rules! vectorized {
    ($($body:tt)*) => {
        pulp::Arch::new().dispatch($crate::ops::cpu::Vectorize(#[inline(always)] || { $($body)* }))
    };
}
pub(super) use vectorized;

/// The block of [`vectorized!`] as pulp's `WithSimd`. It calls the closure through `FnMut::call_mut`, which for a
/// closure that writes its output is the `#[inline(always)]` body itself; pulp's own closure support goes through the
/// `FnOnce::call_once` shim, which is not inlined into pulp's `#[target_feature]` functions and so stays SSE2.
pub(super) struct Vectorize<F>(pub F);

impl<R, F: FnMut() -> R> pulp::WithSimd for Vectorize<F> {
    type Output = R;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(mut self, _: S) -> R {
        (self.0)()
    }
}

/// Folds `f(acc, xᵢ, yᵢ)` over 16 independent accumulators, so that the compiler vectorises the loop; the tail folds
/// into accumulator 0. `xs` and `ys` have one length.
#[inline(always)]
pub(super) fn lanes<T: Float>(xs: &[T], ys: &[T], init: T, f: impl Fn(T, T, T) -> T) -> [T; LANES] {
    let mut acc = [init; LANES];
    let (xc, yc) = (xs.chunks_exact(LANES), ys.chunks_exact(LANES));
    for (x, y) in xc.remainder().iter().zip(yc.remainder()) {
        acc[0] = f(acc[0], *x, *y);
    }
    for (x, y) in xc.zip(yc) {
        for l in 0..LANES {
            acc[l] = f(acc[l], x[l], y[l]);
        }
    }
    acc
}

/// Independent accumulators of the vectorised reductions.
pub(super) const LANES: usize = 16;

/// `Σ f(xᵢ, yᵢ)`, accumulated in 16 lanes of `T` and summed up in f64.
#[inline(always)]
pub(super) fn sum<T: Float>(xs: &[T], ys: &[T], f: impl Fn(T, T) -> T) -> f64 {
    lanes(xs, ys, T::zero(), |a, x, y| a + f(x, y)).iter().map(|a| a.to_f64()).sum()
}

/// A kernel generic over the element type; [`run`] picks the type from the operands' storage.
pub(super) trait Kernel {
    fn name(&self) -> &'static str;
    /// Computes the result from contiguous operands of the shapes the op was built for.
    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T>;
}

fn slices<'a, T: Float>(name: &str, operands: &[(&'a CpuStorage, &Layout, &Shape)]) -> Result<Vec<&'a [T]>> {
    operands
        .iter()
        .map(|(s, l, expected)| match l.contiguous_offsets() {
            Some((start, end)) if l.shape() == *expected => Ok(&T::cpu_storage_as_slice(s)?[start..end]),
            Some(_) => bail!("{name}: operand has shape {:?}, expected {expected:?}", l.shape()),
            None => bail!("{name}: operand must be contiguous"),
        })
        .collect()
}

/// Runs `kernel` on operands given as (storage, layout, expected shape), all f32 or all f64 and contiguous.
pub(super) fn run<K: Kernel>(kernel: &K, operands: &[(&CpuStorage, &Layout, &Shape)]) -> Result<CpuStorage> {
    let name = kernel.name();
    if operands.iter().all(|(s, ..)| matches!(s, CpuStorage::F32(_))) {
        Ok(CpuStorage::F32(kernel.run(&slices::<f32>(name, operands)?)))
    } else if operands.iter().all(|(s, ..)| matches!(s, CpuStorage::F64(_))) {
        Ok(CpuStorage::F64(kernel.run(&slices::<f64>(name, operands)?)))
    } else {
        let dtypes: Vec<_> = operands.iter().map(|(s, ..)| s.dtype()).collect();
        bail!("{name}: only f32 or only f64 operands, got {dtypes:?}")
    }
}
