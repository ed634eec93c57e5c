//! SSIM and MS-SSIM (issue 6, item 7) against scikit-image 0.25.2 and a numpy composition of the scales.
//!
//! `GOLDENS` is the output of `scripts/msssim-goldens.py`, pasted in; regenerate with
//! `python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install numpy==2.2.6 scipy==1.15.3 scikit-image==0.25.2 &&
//! /tmp/skvenv/bin/python scripts/msssim-goldens.py` (scikit-image is not in the oracle venv). Both sides compute in
//! float64 from the same float32 images, so they agree to ~1e-12; `TOL` leaves room for libm's `sin`/`cos`.

use std::f64::consts::PI;

use cmr_diffusion::evaluation::msssim::{ms_ssim, ssim};

const TOL: f64 = 1e-9;

/// (case, height, width, skimage SSIM, MS-SSIM).
const GOLDENS: [(&str, usize, usize, f64, f64); 8] = [
    ("noisy", 64, 64, 0.675174556660, 0.938587100432),
    ("shifted", 64, 64, 0.882621832091, 0.929669686759),
    ("unrelated", 64, 64, 0.050291819866, 0.054507594048),
    ("inverted", 64, 64, -0.596588087835, 0.000000000000),
    ("noisy", 45, 37, 0.877490695481, 0.919601163543),
    ("shifted", 45, 37, 0.783171888068, 0.810611280658),
    ("unrelated", 45, 37, 0.048308413248, 0.000000000000),
    ("inverted", 45, 37, -0.735170398949, 0.000000000000),
];

/// The script's integer "noise" in [−0.5, 0.5).
fn noise(h: usize, w: usize, salt: u64) -> Vec<f64> {
    (0..(h * w) as u64).map(|i| ((i * 7919 + salt * 104729) % 1000) as f64 / 1000.0 - 0.5).collect()
}

/// The script's smooth pattern plus a disc, its columns moved by `shift`.
fn base(h: usize, w: usize, shift: f64) -> Vec<f64> {
    let (hf, wf) = (h as f64, w as f64);
    let r = (hf.min(wf) / 4.0).powi(2);
    let mut out = Vec::with_capacity(h * w);
    for y in 0..h {
        for x in 0..w {
            let (y, x) = (y as f64, x as f64 + shift);
            let disc = if (x - wf / 2.0).powi(2) + (y - hf / 2.0).powi(2) < r { 1.0 } else { 0.0 };
            let wave = (2.0 * PI * 1.5 * x / wf + 0.3).sin() * (2.0 * PI * 2.0 * y / hf).cos();
            out.push(0.5 + 0.3 * wave + 0.15 * disc);
        }
    }
    out
}

fn pair(case: &str, h: usize, w: usize) -> (Vec<f32>, Vec<f32>) {
    let a = base(h, w, 0.0);
    let b: Vec<f64> = match case {
        "noisy" => a.iter().zip(noise(h, w, 1)).map(|(v, n)| (v + 0.2 * n).clamp(0.0, 1.0)).collect(),
        "shifted" => base(h, w, 2.0),
        "unrelated" => noise(h, w, 2).iter().map(|n| 0.5 + 0.4 * n).collect(),
        "inverted" => a.iter().map(|v| 1.0 - v).collect(),
        _ => unreachable!("{case}"),
    };
    let f32s = |x: Vec<f64>| x.into_iter().map(|v| v as f32).collect();
    (f32s(a), f32s(b))
}

#[test]
fn ssim_and_ms_ssim_match_skimage_and_numpy() {
    for (case, h, w, want_ssim, want_ms) in GOLDENS {
        let (a, b) = pair(case, h, w);
        let (got_ssim, got_ms) = (ssim(&a, &b, h, w), ms_ssim(&a, &b, h, w));
        assert!((got_ssim - want_ssim).abs() < TOL, "{case} {h}×{w}: SSIM {got_ssim}, skimage {want_ssim}");
        assert!((got_ms - want_ms).abs() < TOL, "{case} {h}×{w}: MS-SSIM {got_ms}, numpy {want_ms}");
    }
}

#[test]
fn identical_images_score_one_and_order_does_not_matter() {
    for (h, w) in [(64, 64), (45, 37), (11, 11)] {
        let (a, b) = pair("shifted", h, w);
        assert_eq!(ssim(&a, &a, h, w), 1.0, "{h}×{w}");
        assert_eq!(ms_ssim(&a, &a, h, w), 1.0, "{h}×{w}");
        assert_eq!(ssim(&a, &b, h, w), ssim(&b, &a, h, w), "{h}×{w}");
        assert_eq!(ms_ssim(&a, &b, h, w), ms_ssim(&b, &a, h, w), "{h}×{w}");
    }
}

#[test]
fn more_noise_scores_lower() {
    let (h, w) = (64, 64);
    let (a, _) = pair("noisy", h, w);
    let n = noise(h, w, 3);
    let mut last = (1.0, 1.0);
    for amplitude in [0.02, 0.05, 0.1, 0.2, 0.4] {
        let b: Vec<f32> =
            a.iter().zip(&n).map(|(&v, e)| (f64::from(v) + amplitude * e).clamp(0.0, 1.0) as f32).collect();
        let now = (ssim(&a, &b, h, w), ms_ssim(&a, &b, h, w));
        assert!(now.0 < last.0 && now.1 < last.1, "noise {amplitude}: {now:?} not below {last:?}");
        last = now;
    }
}

#[test]
#[should_panic(expected = "at least 11 pixels")]
fn images_smaller_than_the_window_are_a_programming_error() {
    ms_ssim(&[0.5; 10 * 64], &[0.5; 10 * 64], 10, 64);
}
