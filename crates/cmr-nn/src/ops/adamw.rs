//! AdamW's update of one parameter (`crate::optim::AdamW`) in two passes over memory instead of a dozen candle ops,
//! each into a fresh tensor:
//! 1. `(m, v, g) → [m′, v′]`, one new buffer for both moments (they may be shared with a caller, so they are never
//!    written in place);
//! 2. `θ` updated in place from `m′` and `v′`, as `Var::set` would.
//!
//! Every value is the one the candle ops give, bit for bit: the same operations in the same order in the parameter's
//! dtype, with the `+ 0` of candle's `affine` kept (it turns `−0` into `+0`).

use super::cpu::{self, vectorized, Float, Kernel};
use candle_core::{bail, CpuStorage, CustomOp3, InplaceOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

/// The constants of one step, as the candle ops apply them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamWStep {
    /// β1 and β2.
    pub betas: (f64, f64),
    /// `1 − γ·λ`: decoupled weight decay.
    pub decay: f64,
    /// `γ / (1 − β1ᵗ)`.
    pub step_size: f64,
    /// `1 / √(1 − β2ᵗ)`.
    pub inv_sqrt_bias_correction2: f64,
    /// ε.
    pub eps: f64,
}

/// `(m, v, g) → [β1·m + (1 − β1)·g, β2·v + (1 − β2)·g²]`.
struct Moments {
    step: AdamWStep,
    len: usize,
}

impl Kernel for Moments {
    fn name(&self) -> &'static str {
        "cmr-adamw-moments"
    }

    fn run<T: Float>(&self, operands: &[&[T]]) -> Vec<T> {
        let [m, v, g] = operands else { unreachable!("three operands") };
        let (b1, b2) = self.step.betas;
        let [b1, c1, b2, c2, zero] = [b1, 1.0 - b1, b2, 1.0 - b2, 0.0].map(T::from_f64);
        let mut out = vec![T::zero(); 2 * self.len];
        let (m_out, v_out) = out.split_at_mut(self.len);
        m_out.par_chunks_mut(CHUNK).zip(v_out.par_chunks_mut(CHUNK)).enumerate().for_each(|(i, (m_out, v_out))| {
            let at = i * CHUNK..i * CHUNK + m_out.len();
            let (m, v, g) = (&m[at.clone()], &v[at.clone()], &g[at]);
            vectorized! {
                let outs = m_out.iter_mut().zip(v_out.iter_mut());
                for ((m_out, v_out), ((m, v), g)) in outs.zip(m.iter().zip(v).zip(g)) {
                    *m_out = (*m * b1 + zero) + (*g * c1 + zero);
                    *v_out = (*v * b2 + zero) + ((*g * *g) * c2 + zero);
                }
            }
        });
        out
    }
}

impl CustomOp3 for Moments {
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
        let shape = l1.shape();
        Ok((cpu::run(self, &[(s1, l1, shape), (s2, l2, shape), (s3, l3, shape)])?, Shape::from(2 * self.len)))
    }
}

/// `θ ← θ·(1 − γλ) − (m / (√v / √(1 − β2ᵗ) + ε))·γ/(1 − β1ᵗ)`, in place.
struct Update(AdamWStep);

impl Update {
    fn apply<T: Float>(&self, theta: &mut [T], m: &[T], v: &[T]) {
        let s = self.0;
        let [decay, a, eps, step_size, zero] =
            [s.decay, s.inv_sqrt_bias_correction2, s.eps, s.step_size, 0.0].map(T::from_f64);
        theta.par_chunks_mut(CHUNK).enumerate().for_each(|(i, theta)| {
            let at = i * CHUNK..i * CHUNK + theta.len();
            let (m, v) = (&m[at.clone()], &v[at]);
            vectorized! {
                for (theta, (m, v)) in theta.iter_mut().zip(m.iter().zip(v)) {
                    let denom = v.sqrt() * a + eps;
                    *theta = (*theta * decay + zero) - ((*m / denom) * step_size + zero);
                }
            }
        });
    }
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        "cmr-adamw-update"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let ranges = [l1, l2, l3].map(|l| l.contiguous_offsets().filter(|_| l.shape() == l1.shape()));
        let [Some((t0, t1)), Some((m0, m1)), Some((v0, v1))] = ranges else {
            bail!("cmr-adamw-update: θ, m and v must be contiguous and of one shape")
        };
        match (s1, s2, s3) {
            (CpuStorage::F32(t), CpuStorage::F32(m), CpuStorage::F32(v)) => {
                self.apply(&mut t[t0..t1], &m[m0..m1], &v[v0..v1])
            }
            (CpuStorage::F64(t), CpuStorage::F64(m), CpuStorage::F64(v)) => {
                self.apply(&mut t[t0..t1], &m[m0..m1], &v[v0..v1])
            }
            _ => bail!("cmr-adamw-update: θ, m and v must all be f32 or all f64"),
        }
        Ok(())
    }
}

/// One AdamW step of the f32/f64 CPU parameter `theta` (updated in place) with gradient `g` and moments `m`, `v` (all
/// of one shape and dtype); returns the new moments.
pub(crate) fn step(theta: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, s: AdamWStep) -> Result<(Tensor, Tensor)> {
    let len = theta.elem_count();
    let packed = m.contiguous()?.apply_op3(&v.contiguous()?, &g.contiguous()?, Moments { step: s, len })?;
    let (m, v) =
        (packed.narrow(0, 0, len)?.reshape(theta.shape())?, packed.narrow(0, len, len)?.reshape(theta.shape())?);
    theta.inplace_op3(&m, &v, &Update(s))?;
    Ok((m, v))
}
