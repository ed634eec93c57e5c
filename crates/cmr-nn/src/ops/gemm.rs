//! The gemm call and the parallel loop over work items that the convolution kernels ([`super::im2col`],
//! [`super::winograd`]) share.

use super::cpu::Float;
use gemm::Parallelism;
use rayon::prelude::*;

/// A raw pointer that parallel work items share, each writing only its own disjoint part.
#[derive(Clone, Copy)]
pub(super) struct SharedMut<T>(pub *mut T);
// SAFETY: every user below writes through the pointer only at offsets no other concurrent item touches.
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer; a method, so that closures capture the whole `Sync` wrapper rather than its field.
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`, every operand given as (pointer, row stride, column stride).
///
/// # Safety
/// The pointers must address matrices of the given shapes and strides, and `dst` must not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul<T: Float>(
    (m, n, k): (usize, usize, usize),
    dst: (*mut T, usize, usize),
    accumulate: bool,
    lhs: (*const T, usize, usize),
    rhs: (*const T, usize, usize),
    par: Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        dst.2 as isize,
        dst.1 as isize,
        accumulate,
        lhs.0,
        lhs.2 as isize,
        lhs.1 as isize,
        rhs.0,
        rhs.2 as isize,
        rhs.1 as isize,
        T::one(),
        T::one(),
        false,
        false,
        false,
        par,
    )
}

/// gemm's parallelism over all of candle's threads (none when there is one).
pub(super) fn all_threads() -> Parallelism {
    match candle_core::utils::get_num_threads() {
        threads if threads > 1 => Parallelism::Rayon(threads),
        _ => Parallelism::None,
    }
}

/// Runs `f(state, item, gemm parallelism)` for every item in `0..items`: in parallel with single-threaded gemm when
/// there are enough items to feed candle's threads, else in turn with gemm using all of them. `init` makes the
/// per-thread scratch state, which is returned for a reduction.
pub(super) fn for_each_item<S: Send>(
    items: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize, Parallelism) + Sync + Send,
) -> Vec<S> {
    let threads = candle_core::utils::get_num_threads();
    if threads > 1 && items >= threads {
        // One contiguous run of items per thread: one scratch state (and one accumulator to reduce) each.
        (0..items)
            .into_par_iter()
            .with_min_len(items.div_ceil(threads))
            .fold(&init, |mut state, i| {
                f(&mut state, i, Parallelism::None);
                state
            })
            .collect()
    } else {
        let par = all_threads();
        let mut state = init();
        (0..items).for_each(|i| f(&mut state, i, par));
        vec![state]
    }
}

/// The element-wise sum of the per-thread accumulators `parts`, each of `len` values (zeros when there are none).
pub(super) fn sum_parts<T: Float>(mut parts: impl Iterator<Item = Vec<T>>, len: usize) -> Vec<T> {
    let mut sum = parts.next().unwrap_or_else(|| vec![T::zero(); len]);
    for part in parts {
        sum.iter_mut().zip(&part).for_each(|(a, b)| *a += *b);
    }
    sum
}
