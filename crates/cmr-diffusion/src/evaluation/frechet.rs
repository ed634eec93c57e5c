//! Fréchet distance between two sets of feature vectors, each summarised as a Gaussian (mean, covariance): the FID
//! of Heusel et al. (arXiv 1706.08500, Eq. 6) computed on whatever features the caller gives (here the bottleneck of
//! an ACDC-trained segmenter, not Inception):
//!
//! ```text
//! d² = |μ₁ − μ₂|² + tr(Σ₁) + tr(Σ₂) − 2·tr((Σ₁^½ Σ₂ Σ₁^½)^½)
//! ```
//!
//! The trace term uses the symmetric form: `Σ₁^½ Σ₂ Σ₁^½` is symmetric positive semi-definite, so both square roots
//! come from symmetric eigendecompositions (eigenvalues clamped at 0 against round-off) and nothing complex appears —
//! unlike `scipy.linalg.sqrtm(Σ₁ Σ₂)` of pytorch-fid, whose product is not symmetric. The two are equal in exact
//! arithmetic (`Σ₁Σ₂` is similar to `Σ₁^½ Σ₂ Σ₁^½`). Covariances use the unbiased `n − 1` denominator, as
//! `numpy.cov`.
//!
//! ```
//! use cmr_diffusion::evaluation::frechet::frechet_distance;
//! // 1-D: (μ₁ − μ₂)² + (σ₁ − σ₂)²; both sets have variance 1.
//! let a = vec![vec![0.0f32], vec![2.0]];
//! let b = vec![vec![3.0f32], vec![5.0]];
//! let d = frechet_distance(&a, &b).unwrap();
//! assert!((d - 9.0).abs() < 1e-9);
//! ```

use nalgebra::{DMatrix, DVector};

/// Fréchet distance (the squared form `d²`, as FID reports it) between the Gaussians fitted to `a` and `b`; `None`
/// when either set has fewer than two vectors (no covariance).
///
/// # Panics
/// If the vectors do not all have one length (a programming error: both sets come from one feature extractor).
pub fn frechet_distance(a: &[Vec<f32>], b: &[Vec<f32>]) -> Option<f64> {
    let (mu_a, cov_a) = gaussian(a)?;
    let (mu_b, cov_b) = gaussian(b)?;
    assert_eq!(mu_a.len(), mu_b.len(), "feature vectors of different lengths");
    let sqrt_a = psd_sqrt(&cov_a);
    let middle = &sqrt_a * &cov_b * &sqrt_a;
    let trace_sqrt: f64 = symmetric_eigenvalues(&middle).iter().map(|&l| l.max(0.0).sqrt()).sum();
    let d2 = (&mu_a - &mu_b).norm_squared() + cov_a.trace() + cov_b.trace() - 2.0 * trace_sqrt;
    // Round-off can leave a tiny negative value for identical sets.
    Some(d2.max(0.0))
}

/// Mean and unbiased covariance of `set`; `None` under two vectors.
fn gaussian(set: &[Vec<f32>]) -> Option<(DVector<f64>, DMatrix<f64>)> {
    let n = set.len();
    if n < 2 {
        return None;
    }
    let dim = set[0].len();
    // (n, dim), one vector per row.
    let x = DMatrix::from_fn(n, dim, |i, j| {
        assert_eq!(set[i].len(), dim, "feature vectors of different lengths");
        f64::from(set[i][j])
    });
    let mean = x.row_mean().transpose();
    let centred = DMatrix::from_fn(n, dim, |i, j| x[(i, j)] - mean[j]);
    let cov = centred.transpose() * &centred / (n - 1) as f64;
    Some((mean, cov))
}

/// Square root of a symmetric positive semi-definite matrix: `V · diag(√max(λ, 0)) · Vᵀ`.
fn psd_sqrt(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eigen = symmetrise(m).symmetric_eigen();
    let roots = eigen.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eigen.eigenvectors * DMatrix::from_diagonal(&roots) * eigen.eigenvectors.transpose()
}

fn symmetric_eigenvalues(m: &DMatrix<f64>) -> DVector<f64> {
    symmetrise(m).symmetric_eigenvalues()
}

/// `(M + Mᵀ) / 2`: products of symmetric matrices are symmetric only up to round-off.
fn symmetrise(m: &DMatrix<f64>) -> DMatrix<f64> {
    (m + m.transpose()) / 2.0
}
