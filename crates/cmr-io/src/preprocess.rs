//! Preprocessing of one subject's ED/ES frames into the subject tensor `[2, S, H, W]` (DESIGN.md, "Subject tensor";
//! issue 2, section 3):
//!
//! 1. **Slices** — the ED mask's LV (canonical label 1) spans slices `first..=last` (NIfTI `z` as stored); `S` slice
//!    indices are spread evenly over that span, `round(first + k·(last − first)/(S − 1))`, repeating slices when the
//!    LV covers fewer than `S`. Slices are taken whole, never interpolated through-plane (short-axis slices are
//!    6–10 mm thick). They keep the stored `z` order: index 0 is taken as the base. ACDC stores its stacks base first
//!    and so does the project's phantom; a dataset stored apex first would need flipping, which is not guessed here
//!    (from LV areas or otherwise) — see the crate README.
//! 2. **Crop centre** — the in-plane centroid of all ED LV voxels, in source voxel coordinates; one centre for both
//!    frames and every slice, so the stack stays aligned.
//! 3. **Intensity** — the 0.5 and 99.5 percentiles (numpy's default linear interpolation) of every voxel of both
//!    source image volumes together; values are clipped to that window and scaled to \[0, 1\] (all 0 when the window
//!    is empty).
//! 4. **Resample + crop in one step** — output pixel `(r, c)` samples source position
//!    `x = cx + (r − (H−1)/2)·s/dx`, `y = cy + (c − (W−1)/2)·s/dy` (`s` the target spacing), bilinear for the image,
//!    nearest for the mask, 0 outside the field of view (padding). Rows follow NIfTI `x` and columns NIfTI `y` as
//!    stored — the dataset's in-plane orientation is kept, nothing is flipped.
//!
//! The tensor's `spacing_mm` is `[dz·(last − first)/(S − 1), s, s]`, the mean distance between the chosen slices
//! (`dz` when the LV lies in one slice or `S` = 1).

use std::path::PathBuf;

use cmr_core::labels;
use ndarray::{Array3, Array4, ArrayView2, Axis};

use crate::error::{Error, Result};
use crate::store::SubjectTensor;

/// Lower intensity percentile of the window.
pub const LOW_PERCENTILE: f64 = 0.5;
/// Upper intensity percentile of the window.
pub const HIGH_PERCENTILE: f64 = 99.5;

/// Output geometry of the subject tensor.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PreprocessConfig {
    /// In-plane size `H = W` in pixels (default 96).
    pub size: usize,
    /// Number of slices `S` (default 8).
    pub slices: usize,
    /// In-plane pixel spacing after resampling, in mm (default 1.5).
    pub spacing_mm: f64,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self { size: 96, slices: 8, spacing_mm: 1.5 }
    }
}

/// One subject's frames as read from disk, masks already in canonical labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSubject {
    /// ED and ES images, axes `(x, y, z)` as stored, same shape.
    pub image: [Array3<f32>; 2],
    /// ED and ES canonical masks, same shape as the images.
    pub mask: [Array3<u8>; 2],
    /// Voxel spacing along `x, y, z` in mm, all positive.
    pub spacing: [f64; 3],
    /// The ED mask file (named in errors about the LV).
    pub ed_mask_path: PathBuf,
    /// sha256 of every source file read.
    pub source_sha256: Vec<String>,
}

/// Builds the subject tensor of `subject`.
///
/// # Errors
/// [`Error::Invalid`] (field `label`, naming the ED mask) when the ED mask has no LV voxel to centre the crop on.
///
/// # Panics
/// When `cfg.size` or `cfg.slices` is 0, `cfg.spacing_mm` is not positive, or the frames' shapes differ (the
/// loader and the CLI check these).
pub fn preprocess(subject: &LoadedSubject, cfg: &PreprocessConfig) -> Result<SubjectTensor> {
    assert!(cfg.size > 0 && cfg.slices > 0 && cfg.spacing_mm > 0.0, "invalid preprocessing config {cfg:?}");
    let shape = subject.image[0].dim();
    assert!(subject.image[1].dim() == shape && subject.mask.iter().all(|m| m.dim() == shape), "frame shapes differ");
    let [dx, dy, dz] = subject.spacing;

    // 1. slices and 2. crop centre, from the ED LV
    let lv = lv_extent(&subject.mask[0]).ok_or_else(|| {
        Error::invalid(
            &subject.ed_mask_path,
            "label",
            "LV voxels (canonical label 1) at ED to centre the crop on",
            "none",
        )
    })?;
    let slices = spread(lv.first, lv.last, cfg.slices);
    let slice_spacing = if cfg.slices > 1 && lv.last > lv.first {
        dz * (lv.last - lv.first) as f64 / (cfg.slices - 1) as f64
    } else {
        dz
    };

    // 3. intensity window over both frames
    let mut values: Vec<f32> = subject.image.iter().flat_map(|v| v.iter().copied()).collect();
    let window = Window::new(percentile(&mut values, LOW_PERCENTILE), percentile(&mut values, HIGH_PERCENTILE));

    // 4. resample + crop
    let n = cfg.size;
    let half = (n as f64 - 1.0) / 2.0;
    let xs: Vec<f64> = (0..n).map(|r| lv.centre[0] + (r as f64 - half) * cfg.spacing_mm / dx).collect();
    let ys: Vec<f64> = (0..n).map(|c| lv.centre[1] + (c as f64 - half) * cfg.spacing_mm / dy).collect();
    let mut image = Array4::<f32>::zeros((2, cfg.slices, n, n));
    let mut mask = Array4::<u8>::zeros((2, cfg.slices, n, n));
    for frame in 0..2 {
        for (k, &z) in slices.iter().enumerate() {
            let src_image = subject.image[frame].index_axis(Axis(2), z);
            let src_mask = subject.mask[frame].index_axis(Axis(2), z);
            for (r, &x) in xs.iter().enumerate() {
                for (c, &y) in ys.iter().enumerate() {
                    image[[frame, k, r, c]] = bilinear(src_image, x, y, &window);
                    mask[[frame, k, r, c]] = nearest(src_mask, x, y);
                }
            }
        }
    }
    Ok(SubjectTensor {
        image,
        mask,
        spacing_mm: [slice_spacing, cfg.spacing_mm, cfg.spacing_mm],
        source_sha256: subject.source_sha256.clone(),
    })
}

/// Where the LV is in a mask: its slice span and in-plane centroid.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LvExtent {
    /// First slice (stored `z`) with an LV voxel.
    pub first: usize,
    /// Last slice with an LV voxel.
    pub last: usize,
    /// Mean `(x, y)` voxel coordinate of all LV voxels.
    pub centre: [f64; 2],
}

/// The LV extent of a canonical mask with axes `(x, y, z)`, or `None` without LV voxels.
pub fn lv_extent(mask: &Array3<u8>) -> Option<LvExtent> {
    let (mut count, mut sum_x, mut sum_y) = (0usize, 0.0, 0.0);
    let (mut first, mut last) = (usize::MAX, 0);
    for ((x, y, z), _) in mask.indexed_iter().filter(|(_, &v)| v == labels::LV) {
        count += 1;
        sum_x += x as f64;
        sum_y += y as f64;
        first = first.min(z);
        last = last.max(z);
    }
    (count > 0).then(|| LvExtent { first, last, centre: [sum_x / count as f64, sum_y / count as f64] })
}

/// `n` indices spread evenly over `first..=last` (rounded, so they repeat when the span is shorter than `n`); the
/// middle of the span when `n` = 1.
///
/// ```
/// use cmr_io::preprocess::spread;
/// assert_eq!(spread(2, 9, 8), [2, 3, 4, 5, 6, 7, 8, 9]);
/// assert_eq!(spread(0, 4, 8), [0, 1, 1, 2, 2, 3, 3, 4]);
/// ```
pub fn spread(first: usize, last: usize, n: usize) -> Vec<usize> {
    if n == 1 {
        return vec![((first + last) as f64 / 2.0).round() as usize];
    }
    let step = (last - first) as f64 / (n - 1) as f64;
    (0..n).map(|k| (first as f64 + k as f64 * step).round() as usize).collect()
}

/// The `p`-th percentile (0–100) with numpy's default linear interpolation; reorders `values`. NaN sorts last.
///
/// ```
/// // numpy.percentile([4, 1, 3, 2], 50) == 2.5
/// assert_eq!(cmr_io::preprocess::percentile(&mut [4.0, 1.0, 3.0, 2.0], 50.0), 2.5);
/// ```
///
/// # Panics
/// On an empty slice.
pub fn percentile(values: &mut [f32], p: f64) -> f32 {
    let pos = p / 100.0 * (values.len() - 1) as f64;
    let below = pos.floor() as usize;
    let frac = pos - below as f64;
    let (_, &mut lo, rest) = values.select_nth_unstable_by(below, f32::total_cmp);
    if frac == 0.0 || rest.is_empty() {
        return lo;
    }
    let hi = rest.iter().copied().min_by(f32::total_cmp).expect("rest is not empty");
    (lo as f64 + frac * (hi as f64 - lo as f64)) as f32
}

/// The intensity window `[lo, hi]` mapped to \[0, 1\].
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: f32,
    scale: f32,
}

impl Window {
    fn new(lo: f32, hi: f32) -> Self {
        Self { lo, scale: if hi > lo { 1.0 / (hi - lo) } else { 0.0 } }
    }

    fn apply(&self, v: f32) -> f32 {
        ((v - self.lo) * self.scale).clamp(0.0, 1.0)
    }
}

/// Bilinear sample of the windowed `slice` at voxel position `(x, y)`; 0 more than half a voxel outside.
fn bilinear(slice: ArrayView2<'_, f32>, x: f64, y: f64, window: &Window) -> f32 {
    let (nx, ny) = slice.dim();
    let inside = |p: f64, n: usize| p >= -0.5 && p <= n as f64 - 0.5;
    if !inside(x, nx) || !inside(y, ny) {
        return 0.0;
    }
    let (x, y) = (x.clamp(0.0, (nx - 1) as f64), y.clamp(0.0, (ny - 1) as f64));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(nx - 1), (y0 + 1).min(ny - 1));
    let (fx, fy) = ((x - x0 as f64) as f32, (y - y0 as f64) as f32);
    let v = |i: usize, j: usize| window.apply(slice[[i, j]]);
    let top = v(x0, y0) * (1.0 - fy) + v(x0, y1) * fy;
    let bottom = v(x1, y0) * (1.0 - fy) + v(x1, y1) * fy;
    top * (1.0 - fx) + bottom * fx
}

/// Nearest-neighbour sample of `slice` at `(x, y)`; background outside.
fn nearest(slice: ArrayView2<'_, u8>, x: f64, y: f64) -> u8 {
    let (nx, ny) = slice.dim();
    let (i, j) = ((x + 0.5).floor(), (y + 0.5).floor());
    if i < 0.0 || j < 0.0 || i >= nx as f64 || j >= ny as f64 {
        return labels::BACKGROUND;
    }
    slice[[i as usize, j as usize]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subject whose LV is a disc of radius `r_mm` around voxel `(cx, cy)` in slices 1..=3 of 5, a circle in mm
    /// although the in-plane spacing is anisotropic; MYO is a 3 mm ring; ES equals ED.
    fn disc_subject(cx: f64, cy: f64, r_mm: f64, spacing: [f64; 3]) -> LoadedSubject {
        let shape = (80, 60, 5);
        let mask = Array3::from_shape_fn(shape, |(x, y, z)| {
            let d = (((x as f64 - cx) * spacing[0]).powi(2) + ((y as f64 - cy) * spacing[1]).powi(2)).sqrt();
            match (z, d) {
                (1..=3, d) if d <= r_mm => labels::LV,
                (1..=3, d) if d <= r_mm + 3.0 => labels::MYO,
                _ => labels::BACKGROUND,
            }
        });
        let image = mask.mapv(|l| [20.0, 300.0, 80.0, 250.0][l as usize]);
        LoadedSubject {
            image: [image.clone(), image],
            mask: [mask.clone(), mask],
            spacing,
            ed_mask_path: "ed_gt.nii.gz".into(),
            source_sha256: vec![],
        }
    }

    fn centroid(mask: ndarray::ArrayView2<'_, u8>) -> ([f64; 2], usize) {
        let lv: Vec<_> = mask.indexed_iter().filter(|(_, &v)| v == labels::LV).map(|(p, _)| p).collect();
        let mean = |f: fn(&(usize, usize)) -> usize| lv.iter().map(f).sum::<usize>() as f64 / lv.len() as f64;
        ([mean(|p| p.0), mean(|p| p.1)], lv.len())
    }

    #[test]
    fn the_crop_is_centred_on_the_lv_and_resampled_to_the_target_spacing() {
        let subject = disc_subject(30.0, 22.0, 12.0, [0.75, 1.25, 8.0]);
        let cfg = PreprocessConfig { size: 40, slices: 3, spacing_mm: 1.5 };
        let t = preprocess(&subject, &cfg).unwrap();
        assert_eq!(t.image.shape(), [2, 3, 40, 40]);
        assert_eq!(t.spacing_mm, [8.0, 1.5, 1.5]);
        for k in 0..3 {
            let ([r, c], area) = centroid(t.mask.slice(ndarray::s![0, k, .., ..]));
            // Centre of a 40-pixel crop is 19.5; the disc is a circle of radius 12 mm = 8 px.
            assert!((r - 19.5).abs() < 0.3 && (c - 19.5).abs() < 0.3, "slice {k}: centroid ({r}, {c})");
            let expected = std::f64::consts::PI * 8.0 * 8.0;
            assert!((area as f64 - expected).abs() < 0.08 * expected, "slice {k}: area {area} vs {expected}");
        }
        assert_eq!(t.image.slice(ndarray::s![0, .., .., ..]), t.image.slice(ndarray::s![1, .., .., ..]));
    }

    #[test]
    fn outside_the_field_of_view_is_padded_with_zeros() {
        // The LV sits at the image border, so half the crop falls outside.
        let subject = disc_subject(2.0, 30.0, 6.0, [1.5, 1.5, 8.0]);
        let t = preprocess(&subject, &PreprocessConfig { size: 64, slices: 2, spacing_mm: 1.5 }).unwrap();
        let outside = t.image.slice(ndarray::s![0, 0, ..28, ..]);
        assert!(outside.iter().all(|&v| v == 0.0));
        assert!(t.mask.slice(ndarray::s![0, 0, ..28, ..]).iter().all(|&v| v == 0));
        assert!(t.image.iter().any(|&v| v == 1.0));
    }

    #[test]
    fn intensities_are_clipped_to_the_percentile_window() {
        let mut subject = disc_subject(30.0, 22.0, 12.0, [1.5, 1.5, 8.0]);
        // One extreme voxel must not squash the rest: it is clipped at the 99.5th percentile.
        subject.image[1][[30, 22, 2]] = 1e6;
        let t = preprocess(&subject, &PreprocessConfig { size: 32, slices: 3, spacing_mm: 1.5 }).unwrap();
        assert!(t.image.iter().all(|v| (0.0..=1.0).contains(v)));
        // The blood pool at the crop centre stays at the top of the window.
        for (f, k) in [(0, 0), (0, 2), (1, 1)] {
            assert_eq!(t.image[[f, k, 15, 16]], 1.0);
        }
    }

    #[test]
    fn percentiles_match_numpy_linear() {
        // numpy.percentile(np.arange(101), [0.5, 99.5]) == [0.5, 99.5]; numpy.percentile([4, 1, 3, 2], 50) == 2.5
        let mut v: Vec<f32> = (0..=100).rev().map(|i| i as f32).collect();
        assert_eq!(percentile(&mut v, LOW_PERCENTILE), 0.5);
        assert_eq!(percentile(&mut v, HIGH_PERCENTILE), 99.5);
        assert_eq!(percentile(&mut [4.0, 1.0, 3.0, 2.0], 50.0), 2.5);
        assert_eq!(percentile(&mut [7.0], 99.5), 7.0);
    }

    #[test]
    fn slices_spread_over_the_lv_span() {
        assert_eq!(spread(2, 9, 8), (2..=9).collect::<Vec<_>>());
        assert_eq!(spread(0, 4, 8), [0, 1, 1, 2, 2, 3, 3, 4]);
        assert_eq!(spread(3, 3, 4), [3, 3, 3, 3]);
        assert_eq!(spread(0, 14, 3), [0, 7, 14]);
        assert_eq!(spread(2, 5, 1), [4]);
    }

    #[test]
    fn a_mask_without_lv_names_the_ed_mask() {
        let mut subject = disc_subject(30.0, 22.0, 12.0, [1.5, 1.5, 8.0]);
        subject.mask[0].mapv_inplace(|v| if v == labels::LV { labels::MYO } else { v });
        let err = preprocess(&subject, &PreprocessConfig::default()).unwrap_err().to_string();
        assert!(err.contains("ed_gt.nii.gz") && err.contains("`label`"), "{err}");
    }
}
