//! Shape priors (Linardos et al., "Federated learning for multi-center imaging diagnostics: a simulation study in
//! cardiovascular disease", Sci. Rep. 2022, <https://arxiv.org/abs/2107.03901>): the segmentation mask, which the
//! study found to help HCM diagnosis, is given to the classifier by masking the image with it.
//!
//! - `none` — the image as it is, `[2, S, H, W]`;
//! - `heart` — the image × the whole-heart mask (any label > 0), `[2, S, H, W]`;
//! - `fragmented` — the image × each structure's mask as separate channels, `[6, S, H, W]`.

use std::fmt;
use std::str::FromStr;

use cmr_core::labels;
use ndarray::{s, Array4, Zip};

use crate::error::FedError;

/// Structures of the `fragmented` prior, in channel order within a frame.
const STRUCTURES: [u8; 3] = [labels::LV, labels::MYO, labels::RV];

/// How the mask is given to the classifier (`--shape-prior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapePrior {
    /// No prior: the input is the image `[2, S, H, W]` (channel 0 ED, 1 ES).
    #[default]
    None,
    /// Image × whole-heart mask (label > 0), `[2, S, H, W]`: the background is zeroed.
    Heart,
    /// Image × LV, × MYO, × RV masks as channels, `[6, S, H, W]`, **frame-major**:
    /// `(ED·LV, ED·MYO, ED·RV, ES·LV, ES·MYO, ES·RV)`, i.e. channel `3·frame + (label − 1)`.
    ///
    /// A patch embedding made for the two-channel image (a pretrained foundation model) matches this input by
    /// tiling: the weights of image channel `f` serve channels `3f`, `3f + 1` and `3f + 2`.
    Fragmented,
}

impl ShapePrior {
    /// Every prior, in CLI order.
    pub const ALL: [ShapePrior; 3] = [ShapePrior::None, ShapePrior::Heart, ShapePrior::Fragmented];

    /// Name on the command line and in run configs.
    pub fn name(self) -> &'static str {
        match self {
            ShapePrior::None => "none",
            ShapePrior::Heart => "heart",
            ShapePrior::Fragmented => "fragmented",
        }
    }

    /// Channels of the model input: 2, or 6 for [`ShapePrior::Fragmented`].
    pub fn channels(self) -> usize {
        match self {
            ShapePrior::None | ShapePrior::Heart => 2,
            ShapePrior::Fragmented => 2 * STRUCTURES.len(),
        }
    }

    /// The model input of an image `[2, S, H, W]` and its mask (same shape, canonical labels):
    /// `[self.channels(), S, H, W]`.
    ///
    /// # Panics
    /// If the image and mask shapes differ (a programmer error: the tensor store guarantees equal shapes).
    pub fn apply(self, image: &Array4<f32>, mask: &Array4<u8>) -> Array4<f32> {
        assert_eq!(image.shape(), mask.shape(), "image and mask shapes differ");
        match self {
            ShapePrior::None => image.clone(),
            ShapePrior::Heart => Zip::from(image).and(mask).map_collect(|&v, &m| if m > 0 { v } else { 0.0 }),
            ShapePrior::Fragmented => {
                let (frames, slices, rows, cols) = image.dim();
                let mut out = Array4::zeros((frames * STRUCTURES.len(), slices, rows, cols));
                for frame in 0..frames {
                    for (k, &label) in STRUCTURES.iter().enumerate() {
                        let channel = STRUCTURES.len() * frame + k;
                        Zip::from(out.slice_mut(s![channel, .., .., ..]))
                            .and(image.slice(s![frame, .., .., ..]))
                            .and(mask.slice(s![frame, .., .., ..]))
                            .for_each(|o, &v, &m| *o = if m == label { v } else { 0.0 });
                    }
                }
                out
            }
        }
    }
}

impl fmt::Display for ShapePrior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ShapePrior {
    type Err = FedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let valid: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
            FedError::option("shape-prior", format!("unknown shape prior {s:?}; expected one of {}", valid.join(", ")))
        })
    }
}
