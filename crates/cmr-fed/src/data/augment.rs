//! Training-time augmentation, the four set-ups of Linardos et al. (Sci. Rep. 2022, <https://arxiv.org/abs/2107.03901>,
//! "Data augmentation"): `none`, `shape` (flips, small affine, elastic deformation), `intensity` (bias field, noise,
//! gamma) and `both`. The reference code (`Linardos/federated-HCM-diagnosis`, `data_loader.py`) used TorchIO's
//! `RandomFlip`, `RandomAffine`, `RandomElasticDeformation(num_control_points=5, max_displacement=2)`,
//! `RandomBiasField`, `RandomNoise` and `RandomGamma`; the defaults below follow those where issue 7 does not fix them.
//!
//! Every transform is in-plane and the same for every channel (ED, ES) and slice of one subject, so the two frames
//! and the stack stay consistent. Shape transforms are composed into one [`Warp`] and the image is resampled once
//! (bilinear; a mask nearest-neighbour), zero outside the field of view. Intensity transforms are multiplicative or
//! a power, so a zero background stays zero, except for the noise. Values stay in \[0, 1\], the subject tensor's range.
//! Every draw comes from the `ChaCha8Rng` passed in, in a fixed order: same stream, same output.

use std::fmt;
use std::str::FromStr;

use ndarray::Array4;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::{FedError, Result};

/// Order of the polynomial of the log bias field (TorchIO's `RandomBiasField` default).
const BIAS_ORDER: i32 = 3;

/// Which augmentations a training run applies (`--augment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Augmentation {
    /// No augmentation.
    #[default]
    None,
    /// Flips, small affine, elastic deformation.
    Shape,
    /// Bias field, Gaussian noise, gamma.
    Intensity,
    /// Shape, then intensity.
    Both,
}

impl Augmentation {
    /// Every set-up, in CLI order.
    pub const ALL: [Augmentation; 4] =
        [Augmentation::None, Augmentation::Shape, Augmentation::Intensity, Augmentation::Both];

    /// Name on the command line and in run configs.
    pub fn name(self) -> &'static str {
        match self {
            Augmentation::None => "none",
            Augmentation::Shape => "shape",
            Augmentation::Intensity => "intensity",
            Augmentation::Both => "both",
        }
    }

    fn shape(self) -> bool {
        matches!(self, Augmentation::Shape | Augmentation::Both)
    }

    fn intensity(self) -> bool {
        matches!(self, Augmentation::Intensity | Augmentation::Both)
    }
}

impl fmt::Display for Augmentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Augmentation {
    type Err = FedError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let valid: Vec<&str> = Self::ALL.iter().map(|a| a.name()).collect();
            FedError::option("augment", format!("unknown augmentation {s:?}; expected one of {}", valid.join(", ")))
        })
    }
}

/// Magnitudes of the random transforms. All zero (and `flip_probability` 0) makes every set-up the identity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AugmentConfig {
    /// Probability of mirroring the rows (up–down) and, independently, the columns (left–right); default 0.5.
    pub flip_probability: f64,
    /// Largest in-plane rotation in degrees, drawn uniformly in ±this; default 15.
    pub max_rotation_deg: f64,
    /// Largest relative change of scale: the scale is drawn uniformly in `1 ± max_scale`; default 0.1 (0.9–1.1).
    pub max_scale: f64,
    /// Largest translation as a fraction of the image size, per axis, uniform in ±this; default 0.05.
    pub max_translation: f64,
    /// Control points per side of the coarse elastic grid (at least 2); default 5, as Linardos et al.
    pub elastic_control_points: usize,
    /// Largest displacement of a control point in pixels, per axis, uniform in ±this, upsampled bilinearly to a
    /// smooth field; default 2, as Linardos et al.
    pub max_elastic_px: f64,
    /// Largest coefficient of the cubic polynomial whose exponential is the multiplicative bias field (coordinates
    /// in \[−1, 1\]); each coefficient uniform in ±this; default 0.3.
    pub bias_strength: f64,
    /// Largest standard deviation of the additive Gaussian noise; drawn uniformly in \[0, this\]; default 0.03.
    pub max_noise_std: f64,
    /// Largest |log γ| of the gamma transform `v ↦ v^γ`; log γ uniform in ±this; default 0.3 (TorchIO's).
    pub max_log_gamma: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            flip_probability: 0.5,
            max_rotation_deg: 15.0,
            max_scale: 0.1,
            max_translation: 0.05,
            elastic_control_points: 5,
            max_elastic_px: 2.0,
            bias_strength: 0.3,
            max_noise_std: 0.03,
            max_log_gamma: 0.3,
        }
    }
}

impl AugmentConfig {
    /// Checks that every magnitude can be used, naming the first field that cannot.
    pub fn validate(&self) -> Result<()> {
        let magnitudes = [
            ("max_rotation_deg", self.max_rotation_deg),
            ("max_scale", self.max_scale),
            ("max_translation", self.max_translation),
            ("max_elastic_px", self.max_elastic_px),
            ("bias_strength", self.bias_strength),
            ("max_noise_std", self.max_noise_std),
            ("max_log_gamma", self.max_log_gamma),
        ];
        for (field, value) in magnitudes {
            if !(value.is_finite() && value >= 0.0) {
                return Err(FedError::option(&format!("augment.{field}"), format!("expected ≥ 0, got {value}")));
            }
        }
        if !(0.0..=1.0).contains(&self.flip_probability) {
            let got = self.flip_probability;
            return Err(FedError::option("augment.flip_probability", format!("expected a probability, got {got}")));
        }
        if self.max_scale >= 1.0 {
            return Err(FedError::option("augment.max_scale", format!("expected < 1, got {}", self.max_scale)));
        }
        if self.elastic_control_points < 2 {
            let got = self.elastic_control_points;
            return Err(FedError::option("augment.elastic_control_points", format!("expected ≥ 2, got {got}")));
        }
        Ok(())
    }
}

/// A set-up with its magnitudes, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Augmenter {
    setup: Augmentation,
    config: AugmentConfig,
}

impl Augmenter {
    /// An augmenter of `setup` with `config`'s magnitudes; fails on a magnitude that cannot be used.
    pub fn new(setup: Augmentation, config: AugmentConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { setup, config })
    }

    /// The set-up.
    pub fn setup(&self) -> Augmentation {
        self.setup
    }

    /// Draws one random transform from `rng` and applies it to a subject's `image` `[C, S, H, W]` (values in
    /// \[0, 1\]) and, when given, its `mask` (same shape). Shape transforms move the mask with the image (nearest
    /// neighbour); intensity transforms leave it as it is.
    ///
    /// # Panics
    /// If the mask's shape differs from the image's (a programmer error: the tensor store guarantees equal shapes).
    pub fn apply(
        &self,
        image: &Array4<f32>,
        mask: Option<&Array4<u8>>,
        rng: &mut ChaCha8Rng,
    ) -> (Array4<f32>, Option<Array4<u8>>) {
        if let Some(mask) = mask {
            assert_eq!(image.shape(), mask.shape(), "image and mask shapes differ");
        }
        let (_, _, rows, cols) = image.dim();
        let (mut image, mask) = if self.setup.shape() {
            let warp = self.shape_warp(rows, cols, rng);
            (warp.apply_image(image), mask.map(|m| warp.apply_mask(m)))
        } else {
            (image.clone(), mask.cloned())
        };
        if self.setup.intensity() {
            self.intensity(&mut image, rng);
        }
        (image, mask)
    }

    /// One random shape transform: the image is flipped, then scaled, rotated and shifted about its centre, then
    /// elastically deformed; the warp maps each output pixel back through the three in reverse order.
    fn shape_warp(&self, rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Warp {
        let c = &self.config;
        let flip_rows = rng.random_bool(c.flip_probability);
        let flip_cols = rng.random_bool(c.flip_probability);
        let angle = symmetric(rng, c.max_rotation_deg).to_radians();
        let scale = 1.0 + symmetric(rng, c.max_scale);
        let shift = [symmetric(rng, c.max_translation) * rows as f64, symmetric(rng, c.max_translation) * cols as f64];
        let n = c.elastic_control_points;
        let control: Vec<[f64; 2]> =
            (0..n * n).map(|_| [symmetric(rng, c.max_elastic_px), symmetric(rng, c.max_elastic_px)]).collect();
        let centre = [(rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0];
        let (sin, cos) = angle.sin_cos();
        Warp::from_fn(rows, cols, |r, col| {
            // 1. elastic: the displacement at this pixel, bilinear between control points
            let d = bilinear_control(&control, n, [grid_position(r, rows, n), grid_position(col, cols, n)]);
            let (r, col) = (r + d[0], col + d[1]);
            // 2. affine, inverted: x_in = c + R(−θ)·(x_out − c − t) / s
            let (dr, dc) = (r - centre[0] - shift[0], col - centre[1] - shift[1]);
            let r = centre[0] + (cos * dr + sin * dc) / scale;
            let col = centre[1] + (cos * dc - sin * dr) / scale;
            // 3. flips
            let r = if flip_rows { rows as f64 - 1.0 - r } else { r };
            let col = if flip_cols { cols as f64 - 1.0 - col } else { col };
            [r, col]
        })
    }

    /// One random intensity transform in place: bias field, gamma, noise, each value clamped to \[0, 1\].
    fn intensity(&self, image: &mut Array4<f32>, rng: &mut ChaCha8Rng) {
        let c = &self.config;
        let (_, _, rows, cols) = image.dim();
        let terms: Vec<(i32, i32)> = (0..=BIAS_ORDER).flat_map(|i| (0..=BIAS_ORDER - i).map(move |j| (i, j))).collect();
        let coefficients: Vec<f64> = terms.iter().map(|_| symmetric(rng, c.bias_strength)).collect();
        let gamma = symmetric(rng, c.max_log_gamma).exp() as f32;
        let noise_std = rng.random::<f64>() * c.max_noise_std;
        let unit = |k: usize, n: usize| if n > 1 { 2.0 * k as f64 / (n - 1) as f64 - 1.0 } else { 0.0 };
        let field: Vec<f32> = (0..rows * cols)
            .map(|p| {
                let (y, x) = (unit(p / cols, rows), unit(p % cols, cols));
                let log: f64 = terms.iter().zip(&coefficients).map(|(&(i, j), c)| c * x.powi(i) * y.powi(j)).sum();
                log.exp() as f32
            })
            .collect();
        for (k, v) in image.iter_mut().enumerate() {
            *v = (*v * field[k % field.len()]).clamp(0.0, 1.0).powf(gamma);
        }
        if noise_std > 0.0 {
            for v in image.iter_mut() {
                let z: f64 = rng.sample(StandardNormal);
                *v = (*v + (noise_std * z) as f32).clamp(0.0, 1.0);
            }
        }
    }
}

/// Uniform in \[−a, a\].
fn symmetric(rng: &mut ChaCha8Rng, a: f64) -> f64 {
    (2.0 * rng.random::<f64>() - 1.0) * a
}

/// Position of pixel `k` of `size` on a grid of `n` control points spanning the image (corners aligned).
fn grid_position(k: f64, size: usize, n: usize) -> f64 {
    if size > 1 {
        k * (n - 1) as f64 / (size - 1) as f64
    } else {
        0.0
    }
}

/// Bilinear interpolation of the `n × n` control displacements at grid position `[gr, gc]`.
fn bilinear_control(control: &[[f64; 2]], n: usize, [gr, gc]: [f64; 2]) -> [f64; 2] {
    let (r0, c0) = ((gr.floor() as usize).min(n - 2), (gc.floor() as usize).min(n - 2));
    let (fr, fc) = (gr - r0 as f64, gc - c0 as f64);
    let at = |r: usize, c: usize, axis: usize| control[r * n + c][axis];
    let mix = |axis| {
        let top = at(r0, c0, axis) * (1.0 - fc) + at(r0, c0 + 1, axis) * fc;
        let bottom = at(r0 + 1, c0, axis) * (1.0 - fc) + at(r0 + 1, c0 + 1, axis) * fc;
        top * (1.0 - fr) + bottom * fr
    };
    [mix(0), mix(1)]
}

/// An in-plane resampling: for each output pixel `(r, c)` of an `H × W` plane, the (fractional) input position it
/// takes its value from. Applied alike to every channel and slice.
#[derive(Debug, Clone, PartialEq)]
pub struct Warp {
    rows: usize,
    cols: usize,
    /// Input `[row, col]` of each output pixel, row-major.
    source: Vec<[f64; 2]>,
}

impl Warp {
    /// The warp whose output pixel `(r, c)` samples the input at `position(r, c)`.
    pub fn from_fn(rows: usize, cols: usize, position: impl Fn(f64, f64) -> [f64; 2]) -> Self {
        let source = (0..rows * cols).map(|p| position((p / cols) as f64, (p % cols) as f64)).collect();
        Self { rows, cols, source }
    }

    /// Mirrors the rows (up–down) and/or the columns (left–right) of an `rows × cols` plane.
    pub fn flip(rows: usize, cols: usize, flip_rows: bool, flip_cols: bool) -> Self {
        let mirror = |k: f64, n: usize, on: bool| if on { n as f64 - 1.0 - k } else { k };
        Self::from_fn(rows, cols, |r, c| [mirror(r, rows, flip_rows), mirror(c, cols, flip_cols)])
    }

    /// The image resampled bilinearly, zero outside the input. At integer positions the value is copied exactly.
    ///
    /// # Panics
    /// If the image's planes are not `rows × cols` (a programmer error).
    pub fn apply_image(&self, image: &Array4<f32>) -> Array4<f32> {
        self.apply(image, |plane, [y, x]| {
            let (y0, x0) = (y.floor(), x.floor());
            let (fy, fx) = (y - y0, x - x0);
            let mut value = 0.0f64;
            for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                    let weight = wy * wx;
                    // Zero-weight taps are skipped so an integer position copies the value exactly.
                    if weight > 0.0 {
                        if let Some(v) = self.at(plane, y0 + dy as f64, x0 + dx as f64) {
                            value += weight * f64::from(v);
                        }
                    }
                }
            }
            value as f32
        })
    }

    /// The mask resampled by nearest neighbour, background (0) outside the input.
    ///
    /// # Panics
    /// If the mask's planes are not `rows × cols` (a programmer error).
    pub fn apply_mask(&self, mask: &Array4<u8>) -> Array4<u8> {
        self.apply(mask, |plane, [y, x]| self.at(plane, y.round(), x.round()).unwrap_or(0))
    }

    /// The value of `plane` at integer position `(r, c)`, or `None` outside it.
    fn at<T: Copy>(&self, plane: &[T], r: f64, c: f64) -> Option<T> {
        let inside = r >= 0.0 && c >= 0.0 && r < self.rows as f64 && c < self.cols as f64;
        inside.then(|| plane[r as usize * self.cols + c as usize])
    }

    fn apply<T: Copy>(&self, input: &Array4<T>, sample: impl Fn(&[T], [f64; 2]) -> T) -> Array4<T> {
        let (_, _, rows, cols) = input.dim();
        assert_eq!((rows, cols), (self.rows, self.cols), "warp and image planes differ");
        if input.is_empty() {
            return input.clone();
        }
        let input = input.as_standard_layout();
        let values = input.as_slice().expect("standard layout is contiguous");
        let mut out = Vec::with_capacity(values.len());
        for plane in values.chunks(rows * cols) {
            out.extend(self.source.iter().map(|&position| sample(plane, position)));
        }
        Array4::from_shape_vec(input.raw_dim(), out).expect("same number of values")
    }
}
