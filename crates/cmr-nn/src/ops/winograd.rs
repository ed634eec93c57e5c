//! 3×3 convolutions with stride 1 as Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for
//! Convolutional Neural Networks", CVPR 2016): 16 multiplications per 2×2 output tile and channel pair instead of 36.
//!
//! With `d` a 4×4 input tile, `g` a 3×3 filter and `⊙` the element-wise product, one 2×2 output tile is
//!
//! ```text
//! Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        Bᵀ = ⎡1  0 −1  0⎤    G = ⎡1   0   0⎤    Aᵀ = ⎡1 1  1  0⎤
//!                                               ⎢0  1  1  0⎥        ⎢½   ½   ½⎥         ⎣0 1 −1 −1⎦
//!                                               ⎢0 −1  1  0⎥        ⎢½  −½   ½⎥
//!                                               ⎣0  1  0 −1⎦        ⎣0   0   1⎦
//! ```
//!
//! and the sum over input channels moves inside the brackets: for each of the 16 positions `ξ` of the transformed
//! tile, one gemm `M_ξ (c_out × tiles) = U_ξ (c_out × c_in) · V_ξ (c_in × tiles)`, with `U = G g Gᵀ` the transformed
//! weights and `V = Bᵀ d B` the transformed input. The constants are ±1 and ½, exact in floating point; the
//! transforms only add a few roundings of sums (the f32 tests hold it to 1e-5 of candle's direct convolution).
//!
//! The gradient with respect to the input of a 3×3, stride-1 convolution with padding `p ≤ 2` is again one: the
//! output gradient convolved, with padding `2 − p`, by the weights flipped in space and with `c_in` and `c_out`
//! swapped. So [`grad_input`] runs the same kernel. [`grad_weight`] transposes the formula: per position `ξ` one gemm
//! over the tiles, `(c_out × tiles) · (tiles × c_in)`.
//!
//! Work items are (image, band of tile rows), sized so a band's transformed input and output stay in L2; the
//! transforms run over whole tile rows on even/odd de-interleaved input rows, so that they vectorise.
//!
//! F(4×4, 3×3) (36 multiplications per 4×4 tile instead of 64) was tried and left out: with 36 gemms of a quarter as
//! many columns and 6×6 transforms, it was no faster on 64 channels at 64² and 20–40 % slower on 128 at 32² and in
//! the demo's training step (2 threads, AVX-512), and its f32 rounding (2e-5 of the output) failed the 1e-5 torch
//! goldens.

use super::cpu::{vectorized, Float};
use super::gemm::{for_each_item, matmul, sum_parts, SharedMut};
use super::im2col::Geometry;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Bytes of one band's transformed input and output together (16 × (c_in + c_out) × tiles values).
const BAND_BYTES: usize = 1 << 19;

/// Positions of a transformed 4×4 tile.
const XI: usize = 16;

/// Whether `g` is a convolution this kernel computes: 3×3, stride 1, one group, padding at most 2 (so that the input
/// gradient is one too).
pub(crate) fn applies(g: &Geometry) -> bool {
    g.k_h == 3 && g.k_w == 3 && g.stride == 1 && g.groups == 1 && g.padding <= 2
}

/// `y = x ⊛ w [+ bias]`, `bias` one value per image and output channel (`b · c_out`).
pub(crate) fn forward<T: Float>(g: &Geometry, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    run(g, x, &transform_weights(w, g.c_out, g.c_in, false), bias)
}

/// `dx = ∂⟨y, dy⟩/∂x` for `y = x ⊛ w`: `dy` convolved with the flipped, channel-swapped `w`.
pub(crate) fn grad_input<T: Float>(g: &Geometry, dy: &[T], w: &[T]) -> Vec<T> {
    let adjoint = Geometry { c_in: g.c_out, h: g.h_out(), w: g.w_out(), c_out: g.c_in, padding: 2 - g.padding, ..*g };
    run(&adjoint, dy, &transform_weights(w, g.c_out, g.c_in, true), None)
}

/// `dw = ∂⟨y, dy⟩/∂w` for `y = x ⊛ w`. Transposing the forward formula, for every filter
/// `∂/∂g = Gᵀ [ Σ_tiles (A dY Aᵀ) ⊙ (Bᵀ d B) ] G`, with `dY` the 2×2 tile of `dy` and `d` the input tile under it: one
/// gemm per position `ξ`, `(c_out × tiles) · (tiles × c_in)`, summed over bands and images.
pub(crate) fn grad_weight<T: Float>(g: &Geometry, x: &[T], dy: &[T]) -> Vec<T> {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let (tiles_y, tiles_x, band, bands) = tiling::<T>(g);
    let init = || (vec![T::zero(); XI * g.c_out * g.c_in], Scratch::new());
    let partial = for_each_item(g.b * bands, init, |(acc, s), item, par| {
        let (b, ty0) = (item / bands, item % bands * band);
        let ty1 = (ty0 + band).min(tiles_y);
        let tiles = (ty1 - ty0) * tiles_x;
        s.reserve(g, tiles, tiles_x);
        let image = &x[b * g.c_in * g.h * g.w..][..g.c_in * g.h * g.w];
        let grad = &dy[b * g.c_out * h_out * w_out..][..g.c_out * h_out * w_out];
        vectorized!(transform_input(g, image, (ty0, ty1), &mut s.rows, &mut s.v));
        vectorized!(transform_grad_output(g, grad, (ty0, ty1), &mut s.sums, &mut s.m));
        for xi in 0..XI {
            // SAFETY: the three matrices lie inside acc, s.m and s.v, and acc aliases neither.
            unsafe {
                let dst = (acc[xi * g.c_out * g.c_in..].as_mut_ptr(), g.c_in, 1);
                let lhs = (s.m[xi * g.c_out * tiles..].as_ptr(), tiles, 1);
                let rhs = (s.v[xi * g.c_in * tiles..].as_ptr(), 1, tiles);
                matmul((g.c_out, g.c_in, tiles), dst, true, lhs, rhs, par);
            }
        }
    });
    let sum = sum_parts(partial.into_iter().map(|(acc, _)| acc), XI * g.c_out * g.c_in);
    untransform_weights(&sum, g.c_out, g.c_in)
}

/// `Gᵀ Z G` for every `(c_out, c_in)` pair of `z [ξ][c_out][c_in]`: the weight gradient `(c_out, c_in, 3, 3)` from
/// the gradient with respect to the transformed weights (the adjoint of [`transform_weights`]).
fn untransform_weights<T: Float>(z: &[T], c_out: usize, c_in: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    let gt_times = |v: [T; 4]| [v[0] + (v[1] + v[2]) * half, (v[1] - v[2]) * half, (v[1] + v[2]) * half + v[3]];
    let pairs = c_out * c_in;
    let mut dw = vec![T::zero(); 9 * pairs];
    for (pair, k) in dw.chunks_exact_mut(9).enumerate() {
        let zt = |a: usize, b: usize| z[(a * 4 + b) * pairs + pair];
        // Gᵀ over the columns b of each row a, then over the rows.
        let rows: [[T; 3]; 4] = std::array::from_fn(|a| gt_times([zt(a, 0), zt(a, 1), zt(a, 2), zt(a, 3)]));
        for kx in 0..3 {
            let col = gt_times([rows[0][kx], rows[1][kx], rows[2][kx], rows[3][kx]]);
            for ky in 0..3 {
                k[ky * 3 + kx] = col[ky];
            }
        }
    }
    dw
}

/// `U = G g Gᵀ` for every filter of `w (c_out, c_in, 3, 3)`, laid out `[row][ξ][col]`: for each `ξ` a gemm left
/// operand at offset `ξ·cols` with row stride `16·cols`, whose rows are output channels, or, `adjoint`, input channels
/// with each filter flipped in space. Rows are transformed in parallel, each into its own contiguous run.
fn transform_weights<T: Float>(w: &[T], c_out: usize, c_in: usize, adjoint: bool) -> Vec<T> {
    let (rows, cols) = if adjoint { (c_in, c_out) } else { (c_out, c_in) };
    let half = T::from_f64(0.5);
    let g_times = |v: [T; 3]| [v[0], (v[0] + v[1] + v[2]) * half, (v[0] - v[1] + v[2]) * half, v[2]];
    let mut u = vec![T::zero(); XI * rows * cols];
    u.par_chunks_mut(XI * cols).enumerate().for_each(|(r, u)| {
        for c in 0..cols {
            let (o, i) = if adjoint { (c, r) } else { (r, c) };
            let k = &w[(o * c_in + i) * 9..][..9];
            let at = |ky: usize, kx: usize| if adjoint { k[(2 - ky) * 3 + 2 - kx] } else { k[ky * 3 + kx] };
            // G g: the columns of each row of g, then G (G g)ᵀ for the rows.
            let gk: [[T; 4]; 3] = std::array::from_fn(|ky| g_times([at(ky, 0), at(ky, 1), at(ky, 2)]));
            for b in 0..4 {
                let col = g_times([gk[0][b], gk[1][b], gk[2][b]]);
                for a in 0..4 {
                    u[(a * 4 + b) * cols + c] = col[a];
                }
            }
        }
    });
    u
}

/// Per-thread scratch: a band's transformed input `V [ξ][c_in][tiles]` and transformed output (gradient)
/// `M [ξ][c_out][tiles]`, four de-interleaved, zero-padded input rows, and 16 rows of partial sums.
struct Scratch<T> {
    v: Vec<T>,
    m: Vec<T>,
    rows: Vec<T>,
    sums: Vec<T>,
}

impl<T: Float> Scratch<T> {
    fn new() -> Self {
        Scratch { v: Vec::new(), m: Vec::new(), rows: Vec::new(), sums: Vec::new() }
    }

    /// Sizes the buffers for a band of `tiles` tiles, `tiles_x` per tile row.
    fn reserve(&mut self, g: &Geometry, tiles: usize, tiles_x: usize) {
        self.v.resize(XI * g.c_in * tiles, T::zero());
        self.m.resize(XI * g.c_out * tiles, T::zero());
        self.rows.resize(8 * (tiles_x + 1), T::zero());
        self.sums.resize(16 * tiles_x, T::zero());
    }
}

/// `(tiles_y, tiles_x, tile rows per band, bands)` of the output of `g`: bands sized so that a band's `V` and `M`
/// hold about [`BAND_BYTES`].
fn tiling<T>(g: &Geometry) -> (usize, usize, usize, usize) {
    let (tiles_y, tiles_x) = (g.h_out().div_ceil(2), g.w_out().div_ceil(2));
    let band = (BAND_BYTES / (XI * (g.c_in + g.c_out) * tiles_x * std::mem::size_of::<T>())).clamp(1, tiles_y);
    (tiles_y, tiles_x, band, tiles_y.div_ceil(band))
}

/// The convolution of `x` with pre-transformed weights `u` (see [`transform_weights`]) for geometry `g`.
fn run<T: Float>(g: &Geometry, x: &[T], u: &[T], bias: Option<&[T]>) -> Vec<T> {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let (tiles_y, tiles_x, band, bands) = tiling::<T>(g);
    // Written by transform_output, every element exactly once, so never zeroed first.
    let mut y = Vec::with_capacity(g.output_len());
    let out = SharedMut(y.spare_capacity_mut().as_mut_ptr());
    for_each_item(g.b * bands, Scratch::new, |s: &mut Scratch<T>, item, par| {
        let (b, ty0) = (item / bands, item % bands * band);
        let ty1 = (ty0 + band).min(tiles_y);
        let tiles = (ty1 - ty0) * tiles_x;
        s.reserve(g, tiles, tiles_x);
        let image = &x[b * g.c_in * g.h * g.w..][..g.c_in * g.h * g.w];
        vectorized!(transform_input(g, image, (ty0, ty1), &mut s.rows, &mut s.v));
        for xi in 0..XI {
            let (k, n) = (g.c_in, tiles);
            // SAFETY: the three matrices lie inside u, s.v and s.m, and s.m aliases neither.
            unsafe {
                let dst = (s.m[xi * g.c_out * n..].as_mut_ptr(), n, 1);
                let lhs = (u[xi * k..].as_ptr(), XI * k, 1);
                matmul((g.c_out, n, k), dst, false, lhs, (s.v[xi * k * n..].as_ptr(), n, 1), par);
            }
        }
        let bias = bias.map(|bias| &bias[b * g.c_out..][..g.c_out]);
        let (row0, row1) = (2 * ty0, (2 * ty1).min(h_out));
        let image_out = SharedMut(out.get().wrapping_add(b * g.c_out * h_out * w_out));
        vectorized!(transform_output(g, &s.m, tiles, bias, (row0, row1), &mut s.sums, image_out));
    });
    // SAFETY: the items cover every (image, tile row band), and transform_output wrote every element of those rows
    // of every output channel.
    unsafe { y.set_len(g.output_len()) };
    y
}

/// Fills `v [ξ][c_in][tiles]` with `Bᵀ d B` for every input tile `d` of tile rows `[ty0, ty1)` of one image; `rows`
/// is scratch for 8 rows of `tiles_x + 1` values.
#[inline(always)]
fn transform_input<T: Float>(g: &Geometry, x: &[T], (ty0, ty1): (usize, usize), rows: &mut [T], v: &mut [T]) {
    let tiles_x = g.w_out().div_ceil(2);
    let tiles = (ty1 - ty0) * tiles_x;
    let half = tiles_x + 1;
    // Zeroed once: load_rows writes image values only into the columns inside the image, the same ones for every row,
    // and zeroes rows outside the image whole; the in-place transform below maps zero padding columns to zero. So the
    // padding columns stay zero without a memset per row.
    rows.fill(T::zero());
    for ci in 0..g.c_in {
        let plane = &x[ci * g.h * g.w..][..g.h * g.w];
        for ty in ty0..ty1 {
            load_rows(g, plane, ty, rows);
            // Bᵀ d over the tile's rows, in place, even and odd columns alike: (d0 − d2, d1 + d2, d2 − d1, d1 − d3).
            for parity in 0..2 {
                let [d0, d1, d2, d3] = rows4(&mut rows[parity * half..], half, 2 * half);
                for k in 0..half {
                    let (a, b, c, d) = (d0[k], d1[k], d2[k], d3[k]);
                    (d0[k], d1[k], d2[k], d3[k]) = (a - c, b + c, c - b, b - d);
                }
            }
            let offset = (ty - ty0) * tiles_x;
            for a in 0..4 {
                let (even, odd) = (&rows[2 * a * half..][..half], &rows[(2 * a + 1) * half..][..half]);
                // The four destinations V[4a + b][ci][offset..offset + tiles_x], b = 0..4, lie c_in · tiles apart.
                let run = g.c_in * tiles;
                let (v0, rest) = v[(4 * a * g.c_in + ci) * tiles + offset..].split_at_mut(run);
                let (v1, rest) = rest.split_at_mut(run);
                let (v2, v3) = rest.split_at_mut(run);
                let (v0, v1, v2, v3) = (&mut v0[..tiles_x], &mut v1[..tiles_x], &mut v2[..tiles_x], &mut v3[..tiles_x]);
                // (Bᵀ d) B per tile: columns (e0 − e2, e1 + e2, e2 − e1, e1 − e3), with e_{2k} = even[tx + k] and
                // e_{2k+1} = odd[tx + k].
                for tx in 0..tiles_x {
                    let (e0, e1, e2, e3) = (even[tx], odd[tx], even[tx + 1], odd[tx + 1]);
                    v0[tx] = e0 - e2;
                    v1[tx] = e1 + e2;
                    v2[tx] = e2 - e1;
                    v3[tx] = e1 - e3;
                }
            }
        }
    }
}

/// Copies rows 2ty − p … 2ty − p + 3 of the zero-padded input `plane` (`(h, w)`), columns −p … 2·tiles_x − p + 1,
/// into `rows`, split into even columns (`rows[2i·half..][..half]` for row i, `half = tiles_x + 1`) and odd ones
/// (`rows[(2i + 1)·half..][..half]`). The padding columns of `rows` must be zero already.
#[inline(always)]
fn load_rows<T: Float>(g: &Geometry, plane: &[T], ty: usize, rows: &mut [T]) {
    let half = rows.len() / 8;
    let p = g.padding;
    for i in 0..4 {
        let (even, odd) = rows[2 * i * half..][..2 * half].split_at_mut(half);
        let Some(yy) = (2 * ty + i).checked_sub(p).filter(|&yy| yy < g.h) else {
            even.fill(T::zero());
            odd.fill(T::zero());
            continue;
        };
        let line = &plane[yy * g.w..][..g.w];
        // Input columns (2k, 2k + 1) land at padded columns 2k + p and 2k + 1 + p; the other columns are padding,
        // which no row of the image writes (see transform_input).
        let (first, second) = if p % 2 == 0 {
            (&mut even[p / 2..], &mut odd[p / 2..])
        } else {
            (&mut odd[p / 2..], &mut even[p / 2 + 1..])
        };
        let pairs = line.chunks_exact(2);
        if let [last] = pairs.remainder() {
            first[g.w / 2] = *last;
        }
        for ((pair, a), b) in pairs.zip(first.iter_mut()).zip(second.iter_mut()) {
            (*a, *b) = (pair[0], pair[1]);
        }
    }
}

/// Fills `m [ξ][c_out][tiles]` with `A dY Aᵀ` for every 2×2 tile `dY` of tile rows `[ty0, ty1)` of `dy`, one
/// image's output gradient `(c_out, h_out, w_out)` (zero beyond its edges); `sums` is scratch for 16 rows of
/// `tiles_x` values.
#[inline(always)]
fn transform_grad_output<T: Float>(g: &Geometry, dy: &[T], (ty0, ty1): (usize, usize), sums: &mut [T], m: &mut [T]) {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let n = w_out.div_ceil(2);
    let tiles = (ty1 - ty0) * n;
    let (split, cols) = sums.split_at_mut(4 * n);
    let [top_even, top_odd, bottom_even, bottom_odd] = rows4(split, n, n);
    for co in 0..g.c_out {
        let plane = &dy[co * h_out * w_out..][..h_out * w_out];
        for ty in ty0..ty1 {
            let oy = 2 * ty;
            deinterleave(&plane[oy * w_out..][..w_out], top_even, top_odd);
            if oy + 1 < h_out {
                deinterleave(&plane[(oy + 1) * w_out..][..w_out], bottom_even, bottom_odd);
            } else {
                bottom_even.fill(T::zero());
                bottom_odd.fill(T::zero());
            }
            // dY Aᵀ per tile row: columns (e, e + o, e − o, −o) of (even, odd).
            let [t0, t1, t2, t3, b0, b1, b2, b3] = rows8(cols, n);
            for tx in 0..n {
                let (e, o) = (top_even[tx], top_odd[tx]);
                (t0[tx], t1[tx], t2[tx], t3[tx]) = (e, e + o, e - o, -o);
                let (e, o) = (bottom_even[tx], bottom_odd[tx]);
                (b0[tx], b1[tx], b2[tx], b3[tx]) = (e, e + o, e - o, -o);
            }
            // A over the two rows: (top, top + bottom, top − bottom, −bottom), into M[4a + b][co][tile].
            let offset = (ty - ty0) * n;
            for (b, (top, bottom)) in [(&*t0, &*b0), (&*t1, &*b1), (&*t2, &*b2), (&*t3, &*b3)].into_iter().enumerate() {
                let run = 4 * g.c_out * tiles;
                let (m0, rest) = m[(b * g.c_out + co) * tiles + offset..].split_at_mut(run);
                let (m1, rest) = rest.split_at_mut(run);
                let (m2, m3) = rest.split_at_mut(run);
                let (m0, m1, m2, m3) = (&mut m0[..n], &mut m1[..n], &mut m2[..n], &mut m3[..n]);
                for tx in 0..n {
                    let (p, q) = (top[tx], bottom[tx]);
                    (m0[tx], m1[tx], m2[tx], m3[tx]) = (p, p + q, p - q, -q);
                }
            }
        }
    }
}

/// `even[k] = line[2k]`, `odd[k] = line[2k + 1]`, with `odd`'s last value 0 when `line` has odd length.
#[inline(always)]
fn deinterleave<T: Float>(line: &[T], even: &mut [T], odd: &mut [T]) {
    let pairs = line.chunks_exact(2);
    if let [last] = pairs.remainder() {
        (even[line.len() / 2], odd[line.len() / 2]) = (*last, T::zero());
    }
    for ((pair, e), o) in pairs.zip(even.iter_mut()).zip(odd.iter_mut()) {
        (*e, *o) = (pair[0], pair[1]);
    }
}

/// Writes `Aᵀ m A` (+ bias) for every tile of `m [ξ][c_out][tiles]` into output rows `[row0, row1)` of `y`, the
/// start of one image's `(c_out, h_out, w_out)`, which no other thread writes in those rows: every element of them,
/// so the buffer may start uninitialised. `sums` is scratch for 16 rows of `tiles_x` values.
#[inline(always)]
fn transform_output<T: Float>(
    g: &Geometry,
    m: &[T],
    tiles: usize,
    bias: Option<&[T]>,
    (row0, row1): (usize, usize),
    sums: &mut [T],
    y: SharedMut<MaybeUninit<T>>,
) {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let n = w_out.div_ceil(2);
    for co in 0..g.c_out {
        let beta = bias.map_or(T::zero(), |bias| bias[co]);
        // SAFETY: rows [row0, row1) of the plane of channel co lie inside the output and belong to this caller only.
        let band =
            unsafe { std::slice::from_raw_parts_mut(y.get().add((co * h_out + row0) * w_out), (row1 - row0) * w_out) };
        for (band_row, oy) in (0..row1 - row0).step_by(2).enumerate() {
            let at = |xi: usize| &m[(xi * g.c_out + co) * tiles + band_row * n..][..n];
            // m A per tile row a: columns (m0 + m1 + m2, m1 − m2 − m3), into sums[2a] and sums[2a + 1].
            let mut rows = sums.chunks_exact_mut(n);
            for a in 0..4 {
                let (left, right) = (rows.next().expect("row"), rows.next().expect("row"));
                let (m0, m1, m2, m3) = (at(4 * a), at(4 * a + 1), at(4 * a + 2), at(4 * a + 3));
                for tx in 0..n {
                    left[tx] = m0[tx] + m1[tx] + m2[tx];
                    right[tx] = m1[tx] - m2[tx] - m3[tx];
                }
            }
            // Aᵀ over the tile rows: output rows (s0 + s1 + s2, s1 − s2 − s3), each in even and odd columns.
            let (partial, out) = sums.split_at_mut(8 * n);
            let [s00, s01, s10, s11, s20, s21, s30, s31] = rows8(partial, n);
            let [top_even, top_odd, bottom_even, bottom_odd, ..] = rows8(out, n);
            for tx in 0..n {
                top_even[tx] = s00[tx] + s10[tx] + s20[tx] + beta;
                top_odd[tx] = s01[tx] + s11[tx] + s21[tx] + beta;
                bottom_even[tx] = s10[tx] - s20[tx] - s30[tx] + beta;
                bottom_odd[tx] = s11[tx] - s21[tx] - s31[tx] + beta;
            }
            interleave(top_even, top_odd, &mut band[oy * w_out..][..w_out]);
            if row0 + oy + 1 < h_out {
                interleave(bottom_even, bottom_odd, &mut band[(oy + 1) * w_out..][..w_out]);
            }
        }
    }
}

/// The first 8 rows of `n` values in `rows`.
#[inline(always)]
fn rows8<T>(rows: &mut [T], n: usize) -> [&mut [T]; 8] {
    let (a, b) = rows[..8 * n].split_at_mut(4 * n);
    let [r0, r1, r2, r3] = rows4(a, n, n);
    let [r4, r5, r6, r7] = rows4(b, n, n);
    [r0, r1, r2, r3, r4, r5, r6, r7]
}

/// The first 4 rows of `len` values in `rows`, `stride ≥ len` apart (even and odd column rows as laid out by
/// [`load_rows`]: `stride = 2·len`, from offset 0 or `len`).
#[inline(always)]
fn rows4<T>(rows: &mut [T], len: usize, stride: usize) -> [&mut [T]; 4] {
    let (r0, rest) = rows.split_at_mut(stride);
    let (r1, rest) = rest.split_at_mut(stride);
    let (r2, r3) = rest.split_at_mut(stride);
    [&mut r0[..len], &mut r1[..len], &mut r2[..len], &mut r3[..len]]
}

/// `line[2k] = even[k]`, `line[2k + 1] = odd[k]`, every element of `line` (`even` has `⌈len/2⌉` values or more,
/// `odd` `⌊len/2⌋` or more).
#[inline(always)]
fn interleave<T: Copy>(even: &[T], odd: &[T], line: &mut [MaybeUninit<T>]) {
    let mut pairs = line.chunks_exact_mut(2);
    for ((pair, &e), &o) in (&mut pairs).zip(even).zip(odd) {
        pair[0].write(e);
        pair[1].write(o);
    }
    if let [last] = pairs.into_remainder() {
        last.write(even[even.len() - 1]);
    }
}
