//! SSIM and multi-scale SSIM of single-channel images in [0, 1], the diversity measure of the evaluation (issue 6,
//! item 7): the mean MS-SSIM of pairs of generated images is low when the generator does not repeat itself.
//!
//! SSIM follows Wang et al. 2004 (<https://doi.org/10.1109/TIP.2003.819861>) as `skimage.metrics.structural_similarity(
//! gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)` computes it: local statistics under
//! an 11-tap Gaussian window (σ 1.5), averaged over the positions where the window lies inside the image.
//! MS-SSIM follows Wang, Simoncelli & Bovik 2003 (<https://doi.org/10.1109/ACSSC.2003.1292216>), eq. 7:
//!
//! > MS-SSIM(x, y) = [l_M(x, y)]^{α_M} · Π_{j=1}^{M} [c_j(x, y)]^{β_j} [s_j(x, y)]^{γ_j}
//!
//! with the contrast-structure term `cs_j` of scales 1 … M−1 and the full SSIM at the coarsest scale M, 2×2
//! average-pooling between scales and the paper's weights [`SCALE_WEIGHTS`].
//!
//! Small images: the paper's five scales need a 176-pixel side with an 11-pixel window (pytorch-msssim refuses
//! anything smaller). Here a scale is used only while both sides are at least [`WINDOW`] pixels (a 64×64 image
//! keeps 3 scales: 64, 32, 16), and the weights of the scales used are renormalised to sum to 1, so identical images
//! still score exactly 1. Odd sides drop their last row or column when pooled. A negative term is clamped to 0 before
//! its fractional power (pytorch-msssim's `relu`), so strongly anti-correlated images score 0.

/// Side of the Gaussian window, in pixels (also the smallest side a scale may have).
pub const WINDOW: usize = 11;
/// Standard deviation of the Gaussian window, in pixels.
const SIGMA: f64 = 1.5;
/// Stabiliser of the luminance term, `(K1 · data range)²` with K1 = 0.01 and data range 1.
const C1: f64 = 0.01 * 0.01;
/// Stabiliser of the contrast-structure term, `(K2 · data range)²` with K2 = 0.03.
const C2: f64 = 0.03 * 0.03;
/// Exponents β_j = γ_j (and α_M on the last scale) of the five scales, finest first (Wang et al. 2003, §3.2).
pub const SCALE_WEIGHTS: [f64; 5] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

/// Single-scale SSIM of two `height × width` row-major images in [0, 1].
///
/// # Panics
/// If a slice does not hold `height · width` values, or a side is shorter than [`WINDOW`] (programming errors).
pub fn ssim(a: &[f32], b: &[f32], height: usize, width: usize) -> f64 {
    check(a, b, height, width);
    terms(&widen(a), &widen(b), height, width).ssim
}

/// Multi-scale SSIM of two `height × width` row-major images in [0, 1], over as many scales as fit (see the module
/// docs); 1 for identical images, lower the more they differ, 0 at worst.
///
/// ```
/// use cmr_diffusion::evaluation::msssim::ms_ssim;
/// let a: Vec<f32> = (0..64 * 64).map(|i| ((i % 64) as f32 / 63.0)).collect();
/// assert!((ms_ssim(&a, &a, 64, 64) - 1.0).abs() < 1e-12);
/// ```
///
/// # Panics
/// If a slice does not hold `height · width` values, or a side is shorter than [`WINDOW`] (programming errors).
pub fn ms_ssim(a: &[f32], b: &[f32], height: usize, width: usize) -> f64 {
    check(a, b, height, width);
    let scales = (0..SCALE_WEIGHTS.len()).take_while(|&j| (height >> j).min(width >> j) >= WINDOW).count();
    let total: f64 = SCALE_WEIGHTS[..scales].iter().sum();
    let (mut a, mut b, mut h, mut w) = (widen(a), widen(b), height, width);
    let mut value = 1.0;
    for (j, weight) in SCALE_WEIGHTS[..scales].iter().enumerate() {
        let t = terms(&a, &b, h, w);
        let last = j + 1 == scales;
        value *= if last { t.ssim } else { t.cs }.max(0.0).powf(weight / total);
        if !last {
            (a, b) = (pool(&a, h, w), pool(&b, h, w));
            (h, w) = (h / 2, w / 2);
        }
    }
    value
}

fn check(a: &[f32], b: &[f32], height: usize, width: usize) {
    assert_eq!(a.len(), height * width, "first image: {} values for {height}×{width}", a.len());
    assert_eq!(b.len(), height * width, "second image: {} values for {height}×{width}", b.len());
    assert!(height.min(width) >= WINDOW, "{height}×{width} image: SSIM needs sides of at least {WINDOW} pixels");
}

fn widen(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// Mean SSIM and mean contrast-structure term over the valid window positions.
struct Terms {
    ssim: f64,
    cs: f64,
}

fn terms(a: &[f64], b: &[f64], h: usize, w: usize) -> Terms {
    let kernel = gaussian_kernel();
    let product = |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(p, q)| p * q).collect() };
    let [mu_a, mu_b, aa, bb, ab] =
        [a.to_vec(), b.to_vec(), product(a, a), product(b, b), product(a, b)].map(|x| filter_valid(&x, h, w, &kernel));
    let (mut ssim, mut cs) = (0.0, 0.0);
    for i in 0..mu_a.len() {
        let (ma, mb) = (mu_a[i], mu_b[i]);
        // population (co)variances under the window: E[xy] − E[x]E[y]
        let (va, vb, cov) = (aa[i] - ma * ma, bb[i] - mb * mb, ab[i] - ma * mb);
        let luminance = (2.0 * ma * mb + C1) / (ma * ma + mb * mb + C1);
        let contrast_structure = (2.0 * cov + C2) / (va + vb + C2);
        ssim += luminance * contrast_structure;
        cs += contrast_structure;
    }
    let n = mu_a.len() as f64;
    Terms { ssim: ssim / n, cs: cs / n }
}

/// The [`WINDOW`]-tap Gaussian of σ [`SIGMA`], normalised to sum 1 (scipy's `gaussian_filter` with `truncate=3.5`).
fn gaussian_kernel() -> [f64; WINDOW] {
    let r = (WINDOW / 2) as f64;
    let mut k: [f64; WINDOW] = std::array::from_fn(|i| (-0.5 * ((i as f64 - r) / SIGMA).powi(2)).exp());
    let sum: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= sum);
    k
}

/// Separable filtering of an `h × w` image keeping only positions where the window fits: `(h − 10) × (w − 10)`.
fn filter_valid(x: &[f64], h: usize, w: usize, k: &[f64; WINDOW]) -> Vec<f64> {
    let (oh, ow) = (h - WINDOW + 1, w - WINDOW + 1);
    let mut rows = vec![0.0; h * ow]; // (h, ow)
    for y in 0..h {
        for xo in 0..ow {
            rows[y * ow + xo] = k.iter().enumerate().map(|(t, kv)| kv * x[y * w + xo + t]).sum();
        }
    }
    let mut out = vec![0.0; oh * ow]; // (oh, ow)
    for yo in 0..oh {
        for xo in 0..ow {
            out[yo * ow + xo] = k.iter().enumerate().map(|(t, kv)| kv * rows[(yo + t) * ow + xo]).sum();
        }
    }
    out
}

/// 2×2 average pooling; an odd last row or column is dropped.
fn pool(x: &[f64], h: usize, w: usize) -> Vec<f64> {
    let (ph, pw) = (h / 2, w / 2);
    let mut out = Vec::with_capacity(ph * pw);
    for y in 0..ph {
        for xo in 0..pw {
            let (r0, r1) = ((2 * y) * w + 2 * xo, (2 * y + 1) * w + 2 * xo);
            out.push(0.25 * (x[r0] + x[r0 + 1] + x[r1] + x[r1 + 1]));
        }
    }
    out
}
