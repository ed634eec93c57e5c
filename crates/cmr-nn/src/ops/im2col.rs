//! CPU kernels of the 2D convolution family as im2col + gemm, for contiguous NCHW input and OIHW weight.
//!
//! Per image `b` and group `g`, with `M = c_out / groups`, `K = (c_in / groups)·k_h·k_w` and `N = h_out·w_out`:
//!
//! ```text
//! forward       y[b,g]  (M×N) = W[g] (M×K) · cols(x[b,g]) (K×N)
//! grad input    dx[b,g]       = col2im( W[g]ᵀ (K×M) · dy[b,g] (M×N) )
//! grad weight   dW[g]  (M×K) += dy[b,g] (M×N) · cols(x[b,g])ᵀ (N×K)
//! ```
//!
//! `cols` is never materialised whole: it is built a band of output rows at a time ([`Geometry::band_rows`]) so the
//! band stays in L2 while gemm (the crate candle-core multiplies with) packs it. Work items are (image, group, band)
//! where they write disjoint memory (forward, grad weight into per-thread accumulators) and (image, group) for grad
//! input, whose col2im of neighbouring bands overlaps. With at least as many items as candle's thread count, items
//! run in parallel on rayon and each gemm runs single-threaded; with fewer, items run in turn and gemm itself splits
//! across the threads. A pointwise convolution (1×1, stride 1, no padding) skips im2col/col2im: `cols(x) = x`.

use super::cpu::{vectorized, Float};
use super::gemm::{for_each_item, matmul, sum_parts, SharedMut};
use rayon::prelude::*;

/// Bytes of one band of `cols` (K × band columns): a quarter of a 2 MiB L2, leaving room for gemm's packed panels
/// (512 KiB measured faster than 256 KiB and 1 MiB on the benchmark shapes, 2 threads).
const BAND_BYTES: usize = 1 << 19;

/// Shape of one convolution: input `(b, c_in, h, w)`, weight `(c_out, c_in / groups, k_h, k_w)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub b: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
}

impl Geometry {
    pub fn h_out(&self) -> usize {
        (self.h + 2 * self.padding - self.k_h) / self.stride + 1
    }
    pub fn w_out(&self) -> usize {
        (self.w + 2 * self.padding - self.k_w) / self.stride + 1
    }
    /// Input channels per group.
    fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }
    /// Output channels per group: gemm's `M`.
    fn m(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of `cols`: gemm's `K`.
    fn k(&self) -> usize {
        self.cin_g() * self.k_h * self.k_w
    }
    /// Output pixels per image: gemm's `N`.
    fn n(&self) -> usize {
        self.h_out() * self.w_out()
    }
    pub fn input_len(&self) -> usize {
        self.b * self.c_in * self.h * self.w
    }
    pub fn weight_len(&self) -> usize {
        self.c_out * self.k()
    }
    pub fn output_len(&self) -> usize {
        self.b * self.c_out * self.n()
    }
    fn is_pointwise(&self) -> bool {
        self.k_h == 1 && self.k_w == 1 && self.stride == 1 && self.padding == 0
    }
    /// Output rows per band, so that a band of `cols` holds about [`BAND_BYTES`].
    fn band_rows<T>(&self) -> usize {
        let row_bytes = self.k() * self.w_out() * std::mem::size_of::<T>();
        (BAND_BYTES / row_bytes).clamp(1, self.h_out())
    }
    fn bands<T>(&self) -> usize {
        self.h_out().div_ceil(self.band_rows::<T>())
    }
    /// Output rows `[lo, hi)` of band `band`.
    fn band<T>(&self, band: usize) -> (usize, usize) {
        let rows = self.band_rows::<T>();
        (band * rows, ((band + 1) * rows).min(self.h_out()))
    }
}

/// Output positions `o` in `[lo, hi)` whose input index `o·stride + offset − padding` falls inside `[0, len)`.
fn valid(n_out: usize, len: usize, offset: usize, stride: usize, padding: usize) -> (usize, usize) {
    let lo = padding.saturating_sub(offset).div_ceil(stride).min(n_out);
    let hi = if len + padding > offset { ((len + padding - offset - 1) / stride + 1).min(n_out) } else { 0 };
    (lo, hi.max(lo))
}

/// Fills `cols` (K × band columns) from `x`, the `(c_in / groups, h, w)` slice of one image and group.
#[inline(always)]
fn im2col<T: Float>(g: &Geometry, x: &[T], (oy0, oy1): (usize, usize), cols: &mut [T]) {
    let (w_out, s, p) = (g.w_out(), g.stride, g.padding);
    let width = (oy1 - oy0) * w_out;
    for (row, dst) in cols.chunks_exact_mut(width).enumerate() {
        let (ci, ky, kx) = (row / (g.k_h * g.k_w), row / g.k_w % g.k_h, row % g.k_w);
        let (ylo, yhi) = valid(g.h_out(), g.h, ky, s, p);
        let (xlo, xhi) = valid(w_out, g.w, kx, s, p);
        for (oy, line) in (oy0..oy1).zip(dst.chunks_exact_mut(w_out)) {
            if oy < ylo || oy >= yhi || xlo == xhi {
                line.fill(T::zero());
                continue;
            }
            let src = &x[(ci * g.h + oy * s + ky - p) * g.w..][..g.w];
            line[..xlo].fill(T::zero());
            line[xhi..].fill(T::zero());
            if s == 1 {
                line[xlo..xhi].copy_from_slice(&src[xlo + kx - p..xhi + kx - p]);
            } else {
                for (ox, v) in (xlo..xhi).zip(&mut line[xlo..xhi]) {
                    *v = src[ox * s + kx - p];
                }
            }
        }
    }
}

/// Adds `cols` (K × band columns) into `dx`, the `(c_in / groups, h, w)` slice of one image and group: the adjoint
/// of [`im2col`].
#[inline(always)]
fn col2im<T: Float>(g: &Geometry, cols: &[T], (oy0, oy1): (usize, usize), dx: &mut [T]) {
    let (w_out, s, p) = (g.w_out(), g.stride, g.padding);
    let width = (oy1 - oy0) * w_out;
    for (row, src) in cols.chunks_exact(width).enumerate() {
        let (ci, ky, kx) = (row / (g.k_h * g.k_w), row / g.k_w % g.k_h, row % g.k_w);
        let (ylo, yhi) = valid(g.h_out(), g.h, ky, s, p);
        let (xlo, xhi) = valid(w_out, g.w, kx, s, p);
        for (oy, line) in (oy0..oy1).zip(src.chunks_exact(w_out)) {
            if oy < ylo || oy >= yhi || xlo == xhi {
                continue;
            }
            let dst = &mut dx[(ci * g.h + oy * s + ky - p) * g.w..][..g.w];
            if s == 1 {
                let dst = &mut dst[xlo + kx - p..xhi + kx - p];
                dst.iter_mut().zip(&line[xlo..xhi]).for_each(|(d, v)| *d += *v);
            } else {
                for (ox, v) in (xlo..xhi).zip(&line[xlo..xhi]) {
                    dst[ox * s + kx - p] += *v;
                }
            }
        }
    }
}

/// `y = x ⊛ w [+ bias]`, `bias` one value per image and output channel (`b · c_out`), added by starting gemm's
/// accumulation from it.
pub(crate) fn forward<T: Float>(g: &Geometry, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let (m, k, n, bands) = (g.m(), g.k(), g.n(), g.bands::<T>());
    let mut y = vec![T::zero(); g.output_len()];
    if let Some(bias) = bias {
        y.par_chunks_mut(n).zip(bias).for_each(|(plane, b)| plane.fill(*b));
    }
    let out = SharedMut(y.as_mut_ptr());
    for_each_item(g.b * g.groups * bands, Vec::new, |cols: &mut Vec<T>, item, par| {
        let (bg, band) = (item / bands, item % bands);
        let (oy0, oy1) = g.band::<T>(band);
        let (n0, width) = (oy0 * g.w_out(), (oy1 - oy0) * g.w_out());
        let x_bg = &x[bg * g.cin_g() * g.h * g.w..][..g.cin_g() * g.h * g.w];
        let rhs = if g.is_pointwise() {
            (x_bg[n0..].as_ptr(), n, 1)
        } else {
            cols.resize(k * width, T::zero());
            vectorized!(im2col(g, x_bg, (oy0, oy1), cols));
            (cols.as_ptr(), width, 1)
        };
        // SAFETY: item (b, group, band) writes only rows [group·M, (group+1)·M) × columns of its band of image b.
        unsafe {
            let dst = out.get().add(bg * m * n + n0);
            let lhs = w[bg % g.groups * m * k..].as_ptr();
            matmul((m, width, k), (dst, n, 1), bias.is_some(), (lhs, k, 1), rhs, par);
        }
    });
    y
}

/// `dx = ∂⟨y, dy⟩/∂x` for `y = x ⊛ w`.
pub(crate) fn grad_input<T: Float>(g: &Geometry, dy: &[T], w: &[T]) -> Vec<T> {
    let (m, k, n, bands) = (g.m(), g.k(), g.n(), g.bands::<T>());
    let slice = g.cin_g() * g.h * g.w;
    let mut dx = vec![T::zero(); g.input_len()];
    let out = SharedMut(dx.as_mut_ptr());
    for_each_item(g.b * g.groups, Vec::new, |cols: &mut Vec<T>, bg, par| {
        let lhs = (w[bg % g.groups * m * k..].as_ptr(), 1, k);
        // SAFETY: item (b, group) owns the (c_in / groups, h, w) slice of dx for its image and group.
        let dx_bg = unsafe { std::slice::from_raw_parts_mut(out.get().add(bg * slice), slice) };
        for band in 0..bands {
            let (oy0, oy1) = g.band::<T>(band);
            let (n0, width) = (oy0 * g.w_out(), (oy1 - oy0) * g.w_out());
            let rhs = (dy[bg * m * n + n0..].as_ptr(), n, 1);
            // SAFETY: dst is either this item's dx slice or its own scratch, neither aliasing w or dy.
            unsafe {
                if g.is_pointwise() {
                    matmul((k, width, m), (dx_bg[n0..].as_mut_ptr(), n, 1), false, lhs, rhs, par);
                } else {
                    cols.resize(k * width, T::zero());
                    matmul((k, width, m), (cols.as_mut_ptr(), width, 1), false, lhs, rhs, par);
                    vectorized!(col2im(g, cols, (oy0, oy1), dx_bg));
                }
            }
        }
    });
    dx
}

/// `dw = ∂⟨y, dy⟩/∂w` for `y = x ⊛ w`.
pub(crate) fn grad_weight<T: Float>(g: &Geometry, x: &[T], dy: &[T]) -> Vec<T> {
    let (m, k, n, bands) = (g.m(), g.k(), g.n(), g.bands::<T>());
    let init = || (vec![T::zero(); g.weight_len()], Vec::new());
    let partial = for_each_item(g.b * g.groups * bands, init, |(dw, cols), item, par| {
        let (bg, band) = (item / bands, item % bands);
        let (oy0, oy1) = g.band::<T>(band);
        let (n0, width) = (oy0 * g.w_out(), (oy1 - oy0) * g.w_out());
        let x_bg = &x[bg * g.cin_g() * g.h * g.w..][..g.cin_g() * g.h * g.w];
        let rhs = if g.is_pointwise() {
            (x_bg[n0..].as_ptr(), 1, n)
        } else {
            cols.resize(k * width, T::zero());
            vectorized!(im2col(g, x_bg, (oy0, oy1), cols));
            (cols.as_ptr(), 1, width)
        };
        // SAFETY: dw is this thread's own accumulator.
        unsafe {
            let dst = (dw[bg % g.groups * m * k..].as_mut_ptr(), k, 1);
            matmul((m, k, width), dst, true, (dy[bg * m * n + n0..].as_ptr(), n, 1), rhs, par);
        }
    });
    sum_parts(partial.into_iter().map(|(dw, _)| dw), g.weight_len())
}
