//! The independent judge of generated images: the ACDC-trained FC-DenseNet ("Tiramisu", Jégou et al.,
//! arXiv 1611.09326) of PyPI `myopari==0.1.6` (`myopari/Resources/tiramisu_acdc_fp32.onnx`, fetched into
//! `models/external/myopari/` by `scripts/fetch-assets.sh myopari`), run on the CPU by tract. It was trained on real
//! scans only, so how well it finds the conditioning mask in a generated image measures mask fidelity, and its
//! bottleneck activations are the fixed features of the Fréchet distance.
//!
//! Preprocessing follows `myopari/processors/functions_utils.py` (`preprocess_data_array`) where it applies to a
//! 2D subject-tensor slice, and departs from it where the subject tensor is already cropped:
//!
//! 1. **Intensity** — clipped to the 0.05 and 99.05 percentiles of the non-zero pixels (numpy's linear
//!    interpolation) and scaled to \[0, 1\] (`min_max_normalize`), per image rather than per 3D frame, so a real and a
//!    generated slice are normalised alike whatever their neighbours.
//! 2. **Geometry** — myopari resizes the whole field of view to 256 × 256; on ACDC and on the project's phantom
//!    NIfTI that puts the heart at about 1.3 mm per network pixel (e.g. 216 px × 1.57 mm / 256) in the middle of a
//!    chest-wide view. Subject tensors are already cropped on the LV (64 px × 2 mm at demo scale), so the image is
//!    resized bilinearly (half-pixel centres, edges clamped) to the side that gives [`NETWORK_SPACING_MM`] and
//!    centred on a zero canvas twice as wide, rounded up to a multiple of 32 (the network halves the grid five
//!    times): [`Geometry::for_images`], 96 px on 192 for the demo. The canvas stands for the rest of the field of
//!    view; the network fails without it. Mean Dice LV / MYO / RV on 48 heart images of 12 demo-cohort phantom
//!    subjects: 96 px alone 0.07 / 0.09 / 0.04; on a canvas of 128 0.39 / 0.36 / 0.44, of 160 0.71 / 0.60 / 0.66,
//!    of 192 0.77 / 0.67 / 0.72, of 256 0.74 / 0.68 / 0.68 (at 3.8 s instead of 2.3 s per image). No crop to the
//!    non-zero bounding box: tensors have no empty border to remove.
//! 3. **Orientation** — tensor rows follow NIfTI `x` and columns NIfTI `y` (cmr-io's preprocessing), which is the
//!    `[x, y]` plane myopari feeds; `scripts/phantom-realism.py --orientations` found this identity orientation best.
//! 4. **Output** — the network's four class maps (0 background, 1 RV, 2 MYO, 3 LV: ACDC codes) are cut to the
//!    image's part of the canvas and resampled bilinearly back to the input grid, the argmax taken there and mapped
//!    to the project's codes (1 LV, 2 MYO, 3 RV). myopari's removal of connected components under 800 voxels is a
//!    3D step tuned to its 256 grid; it is left out, so real and generated images are scored on the raw network
//!    output alike.
//!
//! Features: the global spatial average of node [`FEATURE_NODE`], the output of the bottleneck dense block (the 48
//! feature maps its four layers add, 12 each, which the first transposed convolution up-samples): the deepest,
//! lowest-resolution activation of the U-shaped network (6 × 6 on the demo's 192-pixel canvas), 48 values per image.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;
use tract_onnx::prelude::*;

use crate::error::{DiffusionError, Result};

/// Pixel size (mm) at which the network sees a heart: the myopari pipeline on ACDC-like NIfTI (see the module docs).
pub const NETWORK_SPACING_MM: f64 = 1.33;

/// ONNX node whose output, averaged over space, is the feature vector ([`Segmenter::features`]).
pub const FEATURE_NODE: &str = "/bottleneck/bottleneck/Concat_3";

/// Classes of the network's output.
const CLASSES: usize = 4;
/// Network class → project label: ACDC 1 = RV, 2 = MYO, 3 = LV → 3, 2, 1.
const TO_PROJECT_LABEL: [u8; CLASSES] = [0, 3, 2, 1];
/// Intensity window of myopari's `min_max_normalize`.
const PERCENTILES: (f64, f64) = (0.05, 99.05);

/// What the segmenter says about one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Labels in the project's codes, on the input grid (row-major, `height × width`).
    pub mask: Vec<u8>,
    /// The globally average-pooled bottleneck activation.
    pub features: Vec<f32>,
}

/// Where an image goes in the network input: resized to `content × content` pixels and centred on a
/// `canvas × canvas` zero canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Geometry {
    /// Side the image is resized to.
    pub content: usize,
    /// Side of the network input; a multiple of 32, at least `content`.
    pub canvas: usize,
}

impl Geometry {
    /// The geometry for images of `height × width` pixels of `spacing_mm`: a content side giving
    /// [`NETWORK_SPACING_MM`] per pixel, on a canvas twice as wide rounded up to a multiple of 32.
    ///
    /// ```
    /// use cmr_diffusion::evaluation::segmenter::Geometry;
    /// assert_eq!(Geometry::for_images(64, 64, 2.0), Geometry { content: 96, canvas: 192 });
    /// ```
    pub fn for_images(height: usize, width: usize, spacing_mm: f64) -> Geometry {
        let content = (height.max(width) as f64 * spacing_mm / NETWORK_SPACING_MM).round().max(1.0) as usize;
        Geometry { content, canvas: (2 * content).div_ceil(32) * 32 }
    }

    /// Offset of the content from the canvas' top-left corner, along both axes.
    fn offset(self) -> usize {
        (self.canvas - self.content) / 2
    }
}

/// myopari's Tiramisu, optimised for one [`Geometry`].
#[derive(Debug, Clone)]
pub struct Segmenter {
    path: PathBuf,
    geometry: Geometry,
    plan: Arc<TypedRunnableModel>,
}

impl Segmenter {
    /// Loads the ONNX file at `path` with a fixed `(1, 1, canvas, canvas)` input (a symbolic batch runs 3–4×
    /// slower), the class maps and the [`FEATURE_NODE`] activation as outputs, optimised.
    pub fn load(path: &Path, geometry: Geometry) -> Result<Self> {
        let Geometry { content, canvas } = geometry;
        if canvas == 0 || canvas % 32 != 0 || content == 0 || content > canvas {
            let message = format!("{geometry:?}: the canvas must be a positive multiple of 32 holding the content");
            return Err(DiffusionError::option("segmenter geometry", message));
        }
        if !path.is_file() {
            let fetch = cmr_nn::resolve::MYOPARI.fetch_command;
            let message = format!("no such file; fetch the segmenter with `{fetch}` (from the repository root)");
            return Err(DiffusionError::input(path, message));
        }
        let fail = |e: TractError| DiffusionError::input(path, format!("cannot load the segmenter: {e:#}"));
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(fail)?;
        let output = model.output_outlets().map_err(fail)?.first().copied().ok_or_else(|| {
            DiffusionError::input(path, "the ONNX model has no output; expected myopari's tiramisu_acdc_fp32.onnx")
        })?;
        let feature = model.node_id_by_name(FEATURE_NODE).map_err(|_| {
            let message = format!("has no node {FEATURE_NODE}; expected myopari's tiramisu_acdc_fp32.onnx");
            DiffusionError::input(path, message)
        })?;
        model.select_output_outlets(&[output, OutletId::new(feature, 0)]).map_err(fail)?;
        let plan = model
            .with_input_fact(0, f32::fact([1, 1, canvas, canvas]).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(fail)?;
        Ok(Self { path: path.into(), geometry, plan })
    }

    /// The ONNX file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where images go in the network input.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Segments and describes every image of `images` (each `height × width`, row-major), in parallel.
    pub fn analyse<I: AsRef<[f32]> + Sync>(&self, images: &[I], height: usize, width: usize) -> Result<Vec<Analysis>> {
        images.par_iter().map(|image| self.analyse_one(image.as_ref(), height, width)).collect()
    }

    /// Labels (project codes) of every image; see [`Segmenter::analyse`].
    pub fn segment<I: AsRef<[f32]> + Sync>(&self, images: &[I], height: usize, width: usize) -> Result<Vec<Vec<u8>>> {
        Ok(self.analyse(images, height, width)?.into_iter().map(|a| a.mask).collect())
    }

    /// Bottleneck features of every image; see [`Segmenter::analyse`].
    pub fn features<I: AsRef<[f32]> + Sync>(&self, images: &[I], height: usize, width: usize) -> Result<Vec<Vec<f32>>> {
        Ok(self.analyse(images, height, width)?.into_iter().map(|a| a.features).collect())
    }

    fn analyse_one(&self, image: &[f32], height: usize, width: usize) -> Result<Analysis> {
        // 1. intensity, 2. geometry
        assert_eq!(image.len(), height * width, "image of {} values is not {height}×{width}", image.len());
        let Geometry { content, canvas } = self.geometry;
        let resized = resize_bilinear(&min_max_normalize(image), (height, width), (content, content));
        let (offset, mut input) = (self.geometry.offset(), vec![0f32; canvas * canvas]);
        for (r, row) in resized.chunks(content).enumerate() {
            input[(offset + r) * canvas + offset..][..content].copy_from_slice(row);
        }
        let fail = |e: TractError| DiffusionError::input(&self.path, format!("running the segmenter: {e:#}"));
        let input = Tensor::from_shape(&[1, 1, canvas, canvas], &input).map_err(fail)?;
        // 3. network: (1, 4, canvas, canvas) class maps, (1, 48, s, s) bottleneck
        let outputs = self.plan.run(tvec![input.into()]).map_err(fail)?;
        // Logical (row-major) order whatever the memory layout.
        let classes: Vec<f32> = outputs[0].to_plain_array_view::<f32>().map_err(fail)?.iter().copied().collect();
        let bottleneck = outputs[1].to_plain_array_view::<f32>().map_err(fail)?;
        let features = bottleneck
            .index_axis(tract_ndarray::Axis(0), 0)
            .outer_iter()
            .map(|channel| channel.mean().unwrap_or(0.0))
            .collect();
        // 4. class maps: the content's part, back to the input grid; argmax; project codes
        let maps: Vec<Vec<f32>> = classes
            .chunks(canvas * canvas)
            .map(|map| {
                let part: Vec<f32> = map
                    .chunks(canvas)
                    .skip(offset)
                    .take(content)
                    .flat_map(|row| &row[offset..offset + content])
                    .copied()
                    .collect();
                resize_bilinear(&part, (content, content), (height, width))
            })
            .collect();
        let mask = (0..height * width)
            .map(|p| {
                let best = (0..CLASSES).max_by(|&a, &b| maps[a][p].total_cmp(&maps[b][p])).expect("four classes");
                TO_PROJECT_LABEL[best]
            })
            .collect();
        Ok(Analysis { mask, features })
    }
}

/// myopari's `min_max_normalize`: clip to the [`PERCENTILES`] of the non-zero values, scale to \[0, 1\].
fn min_max_normalize(image: &[f32]) -> Vec<f32> {
    let mut nonzero: Vec<f32> = image.iter().copied().filter(|&v| v > 0.0).collect();
    if nonzero.is_empty() {
        return vec![0.0; image.len()];
    }
    let lo = cmr_io::preprocess::percentile(&mut nonzero, PERCENTILES.0);
    let hi = cmr_io::preprocess::percentile(&mut nonzero, PERCENTILES.1);
    let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
    image.iter().map(|&v| (v.clamp(lo, hi) - lo) * scale).collect()
}

/// Bilinear resize of a row-major `from` grid to `to`, pixel centres aligned (`align_corners = False`), edges
/// clamped.
fn resize_bilinear(image: &[f32], from: (usize, usize), to: (usize, usize)) -> Vec<f32> {
    let axis = |n_from: usize, n_to: usize| -> Vec<(usize, usize, f32)> {
        let scale = n_from as f64 / n_to as f64;
        (0..n_to)
            .map(|i| {
                let x = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_from - 1) as f64);
                let x0 = x.floor() as usize;
                (x0, (x0 + 1).min(n_from - 1), (x - x0 as f64) as f32)
            })
            .collect()
    };
    let (rows, cols) = (axis(from.0, to.0), axis(from.1, to.1));
    let at = |r: usize, c: usize| image[r * from.1 + c];
    let mut out = Vec::with_capacity(to.0 * to.1);
    for &(r0, r1, fr) in &rows {
        for &(c0, c1, fc) in &cols {
            let top = at(r0, c0) * (1.0 - fc) + at(r0, c1) * fc;
            let bottom = at(r1, c0) * (1.0 - fc) + at(r1, c1) * fc;
            out.push(top * (1.0 - fr) + bottom * fr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizing_keeps_constants_and_linear_ramps() {
        assert_eq!(resize_bilinear(&[2.0; 6], (2, 3), (4, 5)), vec![2.0; 20]);
        // A ramp 0, 1, 2, 3 doubled: centres at −0.25, 0.25, 0.75, … clamp at the ends.
        let up = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], (1, 4), (1, 8));
        assert_eq!(up, vec![0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]);
        assert_eq!(resize_bilinear(&up, (1, 8), (1, 4)), vec![0.125, 1.0, 2.0, 2.875]);
    }

    #[test]
    fn normalisation_windows_the_nonzero_values() {
        let image: Vec<f32> = (0..=100).map(|v| v as f32).collect();
        let out = min_max_normalize(&image);
        assert_eq!(out[0], 0.0);
        assert_eq!(out[100], 1.0);
        assert!((out[50] - 0.4994).abs() < 1e-3, "{}", out[50]);
        assert_eq!(min_max_normalize(&[0.0, 0.0]), vec![0.0, 0.0]);
    }

    #[test]
    fn the_geometry_puts_the_image_at_the_network_scale_on_a_canvas_twice_as_wide() {
        assert_eq!(Geometry::for_images(64, 64, 2.0), Geometry { content: 96, canvas: 192 });
        assert_eq!(Geometry::for_images(16, 16, 1.5), Geometry { content: 18, canvas: 64 });
        assert_eq!(Geometry::for_images(96, 96, 1.5), Geometry { content: 108, canvas: 224 });
        assert_eq!(Geometry { content: 96, canvas: 192 }.offset(), 48);
    }
}
