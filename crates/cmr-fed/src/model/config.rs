//! The architecture of the foundation model: a 3D ViT encoder over the subject tensor `[2, S, H, W]` (ED/ES as
//! channels) and the light decoder of its masked-autoencoder pretraining (He et al., arXiv 2111.06377, §3: "the MAE
//! decoder is only used during pre-training … a lightweight decoder"). Saved as the JSON sidecar of
//! `fm.safetensors`, so a model folder rebuilds its network.

use serde::{Deserialize, Serialize};

use crate::error::{FedError, Result};

/// Architecture of the 3D ViT and its MAE decoder. `Default` is [`ViTConfig::tiny`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ViTConfig {
    /// Token width of the encoder. Tiny `192`, small `384`.
    pub dim: usize,
    /// Encoder blocks. Tiny `6`, small `12`.
    pub depth: usize,
    /// Encoder attention heads; must divide `dim`. Tiny `3`, small `6`.
    pub heads: usize,
    /// MLP hidden width as a multiple of the token width. Default `4.0`.
    pub mlp_ratio: f64,
    /// Input channels of the pretrained encoder. Default `2` (ED, ES).
    pub in_channels: usize,
    /// Volume `(S, H, W)` the model is built for (the position embedding has one entry per patch). Default
    /// `(8, 96, 96)`, the subject tensor of `cmr-debias ingest`'s defaults.
    pub volume: [usize; 3],
    /// Slices per patch. Default `2`.
    pub patch_depth: usize,
    /// In-plane side of a patch in pixels. Default `16`: `(8/2)·(96/16)·(96/16)` = 144 tokens.
    pub patch_size: usize,
    /// Token width of the MAE decoder. Default `128`.
    pub decoder_dim: usize,
    /// MAE decoder blocks. Default `2`.
    pub decoder_depth: usize,
    /// MAE decoder attention heads; must divide `decoder_dim`. Default `4`.
    pub decoder_heads: usize,
    /// Epsilon of every layer norm. Default `1e-6` (timm's ViT).
    pub norm_eps: f64,
}

impl Default for ViTConfig {
    fn default() -> Self {
        Self::tiny()
    }
}

impl ViTConfig {
    /// ViT-Tiny widths (dim 192, 6 blocks, 3 heads) over `(8, 96, 96)` in `2×16×16` patches: 144 tokens.
    pub fn tiny() -> Self {
        Self {
            dim: 192,
            depth: 6,
            heads: 3,
            mlp_ratio: 4.0,
            in_channels: 2,
            volume: [8, 96, 96],
            patch_depth: 2,
            patch_size: 16,
            decoder_dim: 128,
            decoder_depth: 2,
            decoder_heads: 4,
            norm_eps: 1e-6,
        }
    }

    /// ViT-Small widths (dim 384, 12 blocks, 6 heads), otherwise as [`ViTConfig::tiny`].
    pub fn small() -> Self {
        Self { dim: 384, depth: 12, heads: 6, ..Self::tiny() }
    }

    /// The preset called `name` (`tiny` or `small`), or the configuration in the JSON file `name` (fields as this
    /// struct, missing ones from `tiny`: e.g. `{"dim": 32, "depth": 2, "heads": 2, "volume": [2, 16, 16],
    /// "patch_depth": 1, "patch_size": 8}` for a test cohort). Errors name the option `config` or the file.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "small" => Ok(Self::small()),
            _ if name.ends_with(".json") => {
                let path = std::path::Path::new(name);
                let text = std::fs::read_to_string(path).map_err(|e| cmr_core::CoreError::io(path, e))?;
                let config: Self = serde_json::from_str(&text).map_err(|e| FedError::input(path, e.to_string()))?;
                config.validate()?;
                Ok(config)
            }
            _ => Err(FedError::option(
                "config",
                format!("unknown preset `{name}`; expected tiny, small or a JSON file (*.json)"),
            )),
        }
    }

    /// Checks that every size is positive, heads divide widths and the volume is a whole number of patches; each
    /// error names the field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("dim", self.dim),
            ("depth", self.depth),
            ("heads", self.heads),
            ("in_channels", self.in_channels),
            ("patch_depth", self.patch_depth),
            ("patch_size", self.patch_size),
            ("decoder_dim", self.decoder_dim),
            ("decoder_depth", self.decoder_depth),
            ("decoder_heads", self.decoder_heads),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(FedError::option(name, "must be at least 1"));
        }
        if self.volume.contains(&0) {
            return Err(FedError::option("volume", format!("{:?} has an empty axis", self.volume)));
        }
        if self.dim % self.heads != 0 {
            return Err(FedError::option("heads", format!("{} heads do not divide dim {}", self.heads, self.dim)));
        }
        if self.decoder_dim % self.decoder_heads != 0 {
            let msg = format!("{} heads do not divide decoder_dim {}", self.decoder_heads, self.decoder_dim);
            return Err(FedError::option("decoder_heads", msg));
        }
        if !(self.mlp_ratio > 0.0 && self.mlp_ratio.is_finite()) {
            return Err(FedError::option("mlp_ratio", format!("must be positive, got {}", self.mlp_ratio)));
        }
        let [s, h, w] = self.volume;
        let (d, p) = (self.patch_depth, self.patch_size);
        if s % d != 0 || h % p != 0 || w % p != 0 {
            return Err(FedError::option(
                "volume",
                format!("{s}×{h}×{w} is not a whole number of {d}×{p}×{p} patches (patch_depth × patch_size²)"),
            ));
        }
        Ok(())
    }

    /// Patches per axis `(S/d, H/p, W/p)`.
    pub fn grid(&self) -> [usize; 3] {
        let [s, h, w] = self.volume;
        [s / self.patch_depth, h / self.patch_size, w / self.patch_size]
    }

    /// Number of patch tokens (without the cls token).
    pub fn tokens(&self) -> usize {
        self.grid().iter().product()
    }

    /// Values in one flattened patch of a `channels`-channel input: `channels · d · p · p`.
    pub fn patch_len(&self, channels: usize) -> usize {
        channels * self.patch_depth * self.patch_size * self.patch_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_sizes_of_issue_7() {
        let tiny = ViTConfig::tiny();
        tiny.validate().unwrap();
        assert_eq!((tiny.dim, tiny.depth, tiny.heads, tiny.tokens()), (192, 6, 3, 144));
        let small = ViTConfig::preset("small").unwrap();
        small.validate().unwrap();
        assert_eq!((small.dim, small.depth, small.heads), (384, 12, 6));
        let err = ViTConfig::preset("base").unwrap_err().to_string();
        assert!(err.contains("option `config`: unknown preset `base`"), "{err}");
    }

    #[test]
    fn a_volume_that_is_not_whole_patches_names_the_option() {
        let cfg = ViTConfig { volume: [8, 100, 96], ..ViTConfig::tiny() };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("option `volume`: 8×100×96 is not a whole number of 2×16×16 patches"), "{err}");
        let cfg = ViTConfig { heads: 5, ..ViTConfig::tiny() };
        assert!(cfg.validate().unwrap_err().to_string().contains("option `heads`"));
    }
}
