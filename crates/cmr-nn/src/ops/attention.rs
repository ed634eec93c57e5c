//! Multi-head scaled dot-product attention as one CPU op each way.
//!
//! Composed from candle ops, attention copies Q, K and V into a head-major layout, writes the scores of every
//! (image, head) to memory, reads them back for the softmax and again for the product with V, and copies the result
//! back to token-major order; its backward adds as many passes again. Here the heads are read from and written to the
//! token-major `(b, t, heads·d)` projections through strides, and the scores stay in per-thread scratch buffers:
//!
//! - forward: one work item is a block of [`ROWS`] queries of one (image, head), `P = softmax(QKᵀ/√d)`, `O = P·V`;
//! - backward: one work item is one (image, head), which recomputes `P` (as FlashAttention does, Dao et al.,
//!   arXiv 2205.14135, rather than storing it) and writes
//!
//! ```text
//! dV = Pᵀ·dO,   dS = P ⊙ (dO·Vᵀ − rowsum(P ⊙ dO·Vᵀ)) / √d,   dQ = dS·K,   dK = dSᵀ·Q
//! ```
//!
//! The backward op records no gradient of its own (second derivatives fail with candle's `BackwardNotSupported`).

use super::activation::softmax_scaled_in_place;
use super::cpu::{sum, vectorized, Float};
use super::gemm::{for_each_item, matmul, SharedMut};
use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// Queries per work item of the forward pass.
const ROWS: usize = 64;

/// Sizes of one attention: `b` images, `n` queries, `m` keys, `heads` heads of `head_dim` channels.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizes {
    pub b: usize,
    pub n: usize,
    pub m: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl Sizes {
    fn inner(&self) -> usize {
        self.heads * self.head_dim
    }

    fn scale<T: Float>(&self) -> T {
        T::from_f64(1.0 / (self.head_dim as f64).sqrt())
    }
}

/// Where one operand's values lie in its storage: `(b, t, width)` with the last dimension contiguous.
#[derive(Debug, Clone, Copy)]
struct View {
    start: usize,
    image_stride: usize,
    row_stride: usize,
}

impl View {
    fn of(layout: &Layout, dims: [usize; 3], what: &str) -> Result<Self> {
        let (stride, start) = (layout.stride(), layout.start_offset());
        if layout.dims() != dims || stride[2] != 1 {
            bail!("cmr-attention: {what} must be {dims:?} with its last dimension contiguous, got {layout:?}");
        }
        Ok(View { start, image_stride: stride[0], row_stride: stride[1] })
    }

    /// Offset of (image, token, channel).
    fn at(&self, image: usize, token: usize, channel: usize) -> usize {
        self.start + image * self.image_stride + token * self.row_stride + channel
    }

    /// The matrix (tokens × channels) of one image from `token` and `channel` on, as (pointer, row stride, column
    /// stride); transposed (channels × tokens) when `transposed`.
    fn matrix<T>(
        &self,
        data: &[T],
        image: usize,
        token: usize,
        channel: usize,
        transposed: bool,
    ) -> (*const T, usize, usize) {
        let ptr = data[self.at(image, token, channel)..].as_ptr();
        if transposed {
            (ptr, 1, self.row_stride)
        } else {
            (ptr, self.row_stride, 1)
        }
    }
}

/// One pass of the attention (forward or backward) over three operands read through their views.
trait Pass {
    fn run<T: Float>(&self, first: (&[T], View), second: (&[T], View), third: (&[T], View)) -> Vec<T>;
}

/// Runs `pass` on the three operands' storage, all f32 or all f64, read through `views`.
fn dispatch(
    pass: &(impl Pass + CustomOp3),
    (s1, s2, s3): (&CpuStorage, &CpuStorage, &CpuStorage),
    [v1, v2, v3]: [View; 3],
) -> Result<CpuStorage> {
    Ok(match (s1, s2, s3) {
        (CpuStorage::F32(a), CpuStorage::F32(b), CpuStorage::F32(c)) => {
            CpuStorage::F32(pass.run((a, v1), (b, v2), (c, v3)))
        }
        (CpuStorage::F64(a), CpuStorage::F64(b), CpuStorage::F64(c)) => {
            CpuStorage::F64(pass.run((a, v1), (b, v2), (c, v3)))
        }
        _ => bail!("{}: only f32 or only f64 operands, got {:?}", pass.name(), [s1.dtype(), s2.dtype(), s3.dtype()]),
    })
}

/// `(q (b, n, h·d), k (b, m, h·d), v (b, m, h·d)) → softmax(QKᵀ/√d)·V (b, n, h·d)`, heads side by side.
pub(super) struct FusedAttention(pub Sizes);

fn forward<T: Float>(s: &Sizes, (q, qv): (&[T], View), (k, kv): (&[T], View), (v, vv): (&[T], View)) -> Vec<T> {
    let (n, m, d, inner) = (s.n, s.m, s.head_dim, s.inner());
    let (blocks, scale) = (n.div_ceil(ROWS), s.scale::<T>());
    let mut out = vec![T::zero(); s.b * n * inner];
    let dst = SharedMut(out.as_mut_ptr());
    for_each_item(s.b * s.heads * blocks, Vec::new, |scores: &mut Vec<T>, item, par| {
        let (image, head, row0) = (item / (s.heads * blocks), item / blocks % s.heads, item % blocks * ROWS);
        let (rows, channel) = (ROWS.min(n - row0), head * d);
        scores.resize(rows * m, T::zero());
        // SAFETY: the views were checked against the operands' layouts, so Q (rows × d), Kᵀ (d × m) and V (m × d)
        // lie inside q, k and v; scores is rows × m; the output block (rows × d at row stride h·d) lies inside out
        // and no other item writes it.
        unsafe {
            let (q, k) = (qv.matrix(q, image, row0, channel, false), kv.matrix(k, image, 0, channel, true));
            matmul((rows, m, d), (scores.as_mut_ptr(), m, 1), false, q, k, par);
        }
        vectorized! {
            for row in scores.chunks_mut(m) {
                softmax_scaled_in_place(row, scale);
            }
        }
        unsafe {
            let block = dst.get().wrapping_add((image * n + row0) * inner + channel);
            let v = vv.matrix(v, image, 0, channel, false);
            matmul((rows, d, m), (block, inner, 1), false, (scores.as_ptr(), m, 1), v, par);
        }
    });
    out
}

impl Pass for FusedAttention {
    fn run<T: Float>(&self, q: (&[T], View), k: (&[T], View), v: (&[T], View)) -> Vec<T> {
        forward(&self.0, q, k, v)
    }
}

impl CustomOp3 for FusedAttention {
    fn name(&self) -> &'static str {
        "cmr-attention"
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
        let (s, inner) = (&self.0, self.0.inner());
        let q = View::of(l1, [s.b, s.n, inner], "queries")?;
        let (k, v) = (View::of(l2, [s.b, s.m, inner], "keys")?, View::of(l3, [s.b, s.m, inner], "values")?);
        let out = dispatch(self, (s1, s2, s3), [q, k, v])?;
        Ok((out, Shape::from((s.b, s.n, inner))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _out: &Tensor,
        dout: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let s = self.0;
        let (queries, keys) = (s.b * s.n * s.inner(), s.b * s.m * s.inner());
        let kv = Tensor::cat(&[k, v], 2)?;
        let packed = q.apply_op3_no_bwd(&kv, &dout.contiguous()?, &AttentionBackward(s))?;
        let dq = packed.narrow(0, 0, queries)?.reshape(q.shape())?;
        let dk = packed.narrow(0, queries, keys)?.reshape(k.shape())?;
        let dv = packed.narrow(0, queries + keys, keys)?.reshape(v.shape())?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// `(q (b, n, h·d), [k, v] (b, m, 2·h·d), dO (b, n, h·d)) → [dQ (b, n, h·d), dK (b, m, h·d), dV (b, m, h·d)]` in one
/// vector.
struct AttentionBackward(Sizes);

fn backward<T: Float>(s: &Sizes, (q, qv): (&[T], View), (kv, kvv): (&[T], View), (dout, gv): (&[T], View)) -> Vec<T> {
    let (n, m, d, inner) = (s.n, s.m, s.head_dim, s.inner());
    let (queries, keys, scale) = (s.b * n * inner, s.b * m * inner, s.scale::<T>());
    let mut out = vec![T::zero(); queries + 2 * keys];
    let base = SharedMut(out.as_mut_ptr());
    for_each_item(
        s.b * s.heads,
        || (Vec::new(), Vec::new()),
        |(p, dp): &mut (Vec<T>, Vec<T>), item, par| {
            let (image, channel) = (item / s.heads, item % s.heads * d);
            p.resize(n * m, T::zero());
            dp.resize(n * m, T::zero());
            // The (image, head) blocks of dQ, dK and dV: rows of d values at row stride h·d.
            let dq = base.get().wrapping_add(image * n * inner + channel);
            let dk = base.get().wrapping_add(queries + image * m * inner + channel);
            let dv = base.get().wrapping_add(queries + keys + image * m * inner + channel);
            let mat_q = |transposed| qv.matrix(q, image, 0, channel, transposed);
            let mat_k = |transposed| kvv.matrix(kv, image, 0, channel, transposed);
            let mat_v = |transposed| kvv.matrix(kv, image, 0, inner + channel, transposed);
            let mat_g = |transposed| gv.matrix(dout, image, 0, channel, transposed);
            // SAFETY: the views were checked against the operands' layouts, so every (image, head) matrix of q, k, v
            // and dO lies inside its operand; p and dp are n × m; the output blocks lie inside out, and no other item
            // writes this (image, head)'s channels.
            unsafe {
                matmul((n, m, d), (p.as_mut_ptr(), m, 1), false, mat_q(false), mat_k(true), par);
                // S = QKᵀ
            }
            vectorized! {
                for row in p.chunks_mut(m) {
                    softmax_scaled_in_place(row, scale);
                }
            }
            unsafe {
                matmul((m, d, n), (dv, inner, 1), false, (p.as_ptr(), 1, m), mat_g(false), par); // dV = Pᵀ·dO
                matmul((n, m, d), (dp.as_mut_ptr(), m, 1), false, mat_g(false), mat_v(true), par);
                // dP = dO·Vᵀ
            }
            vectorized! {
                for (p, dp) in p.chunks(m).zip(dp.chunks_mut(m)) {
                    let row_dot = T::from_f64(sum(p, dp, |p, g| p * g));
                    for (p, g) in p.iter().zip(dp.iter_mut()) {
                        *g = *p * (*g - row_dot) * scale;
                    }
                }
            }
            unsafe {
                matmul((n, d, m), (dq, inner, 1), false, (dp.as_ptr(), m, 1), mat_k(false), par); // dQ = dS·K
                matmul((m, d, n), (dk, inner, 1), false, (dp.as_ptr(), 1, m), mat_q(false), par);
                // dK = dSᵀ·Q
            }
        },
    );
    out
}

impl Pass for AttentionBackward {
    fn run<T: Float>(&self, q: (&[T], View), kv: (&[T], View), dout: (&[T], View)) -> Vec<T> {
        backward(&self.0, q, kv, dout)
    }
}

impl CustomOp3 for AttentionBackward {
    fn name(&self) -> &'static str {
        "cmr-attention-backward"
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
        let (s, inner) = (&self.0, self.0.inner());
        let q = View::of(l1, [s.b, s.n, inner], "queries")?;
        let kv = View::of(l2, [s.b, s.m, 2 * inner], "keys and values")?;
        let dout = View::of(l3, [s.b, s.n, inner], "output gradient")?;
        let out = dispatch(self, (s1, s2, s3), [q, kv, dout])?;
        Ok((out, Shape::from(s.b * (s.n + 2 * s.m) * inner)))
    }
}
