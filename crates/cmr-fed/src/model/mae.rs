//! Masked-autoencoder pretraining of the encoder (He et al., "Masked Autoencoders Are Scalable Vision Learners",
//! arXiv 2111.06377), in 3D:
//!
//! > "We randomly sample a subset of patches and mask (i.e., remove) the remaining ones … Our MAE encoder … is
//! > applied only on visible, unmasked patches … The input to the MAE decoder is the full set of tokens consisting of
//! > (i) encoded visible patches, and (ii) mask tokens … Our loss function computes the mean squared error (MSE)
//! > between the reconstructed and original images in the pixel space. We compute the loss only on masked patches."
//! > (§3)
//!
//! with the per-patch normalised target of §3 ("normalized pixels … the mean and standard deviation of all pixels
//! in a patch") as an option. Decoder tensors: `decoder_embed`, `mask_token`, `decoder_blocks.{i}`, `decoder_norm`,
//! `decoder_pred`; its position embedding is fixed sin-cos as the encoder's (see [`super::encoder`]).
//! Upstream: <https://github.com/facebookresearch/mae/blob/efb2a8062c206524e35e47d04501ed4f544c0ae8/models_mae.py>.

use candle_core::{bail, DType, Device, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use cmr_nn::layers::{LayerNorm, LayerNormConfig, Linear, LinearConfig, ViTBlock, ViTBlockConfig};
use rand::seq::SliceRandom;
use rand::Rng;

use super::config::ViTConfig;
use super::encoder::{sincos_3d, VitEncoder};

/// Which patch tokens each sample keeps: MAE's per-sample random shuffle (`random_masking`), as index tensors.
#[derive(Debug, Clone)]
pub struct Masking {
    batch: usize,
    tokens: usize,
    kept: usize,
    /// (b·kept,) u32: rows of the flattened `(b·n, dim)` tokens that stay visible, sample by sample.
    keep: Tensor,
    /// (b·n,) u32: for each token in order, its row in the flattened `(b·n, dim)` sequence `[visible…, masked…]`.
    restore: Tensor,
    /// (b, n) f32: 1 for a masked token, 0 for a visible one.
    mask: Tensor,
}

impl Masking {
    /// Keeps `⌊tokens · (1 − ratio)⌋` tokens of each sample (MAE's `len_keep`), the first ones of a shuffle of
    /// `0..tokens` drawn from `rng` (one shuffle per sample, in batch order), and masks the others.
    ///
    /// # Errors
    /// `ratio` not in (0, 1), or it leaves no visible or no masked token (the message names `mask_ratio`).
    pub fn random(batch: usize, tokens: usize, ratio: f64, rng: &mut impl Rng, device: &Device) -> Result<Self> {
        let kept = (tokens as f64 * (1.0 - ratio)) as usize;
        if !(ratio > 0.0 && ratio < 1.0) || kept == 0 || kept == tokens {
            bail!("option `mask_ratio`: {ratio} of {tokens} tokens must leave at least one visible and one masked");
        }
        let (mut keep, mut restore, mut mask) = (Vec::new(), vec![0u32; batch * tokens], vec![0f32; batch * tokens]);
        for i in 0..batch {
            let mut order: Vec<usize> = (0..tokens).collect();
            order.shuffle(rng);
            for (rank, &token) in order.iter().enumerate() {
                restore[i * tokens + token] = (i * tokens + rank) as u32;
                if rank < kept {
                    keep.push((i * tokens + token) as u32);
                } else {
                    mask[i * tokens + token] = 1.0;
                }
            }
        }
        Ok(Self {
            batch,
            tokens,
            kept,
            keep: Tensor::from_vec(keep, batch * kept, device)?,
            restore: Tensor::from_vec(restore, batch * tokens, device)?,
            mask: Tensor::from_vec(mask, (batch, tokens), device)?,
        })
    }

    /// Visible tokens per sample.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// `(b, n)` f32: 1 where a token is masked.
    pub fn mask(&self) -> &Tensor {
        &self.mask
    }
}

/// The encoder and the light decoder of MAE pretraining.
#[derive(Debug, Clone)]
pub struct Mae {
    encoder: VitEncoder,
    decoder_embed: Linear,
    /// (1, 1, decoder_dim)
    mask_token: Tensor,
    /// (1, n, decoder_dim), fixed.
    decoder_pos_embed: Tensor,
    decoder_blocks: Vec<ViTBlock>,
    decoder_norm: LayerNorm,
    decoder_pred: Linear,
}

impl Mae {
    /// Creates (or loads) the encoder (`cfg.in_channels` channels, no LoRA) and the decoder of `cfg`.
    pub fn new(vb: VarBuilder, cfg: &ViTConfig) -> Result<Self> {
        let encoder = VitEncoder::new(vb.clone(), cfg, cfg.in_channels, None)?;
        let block = ViTBlockConfig {
            heads: cfg.decoder_heads,
            mlp_ratio: cfg.mlp_ratio,
            norm_eps: cfg.norm_eps,
            ..Default::default()
        };
        let decoder_blocks = (0..cfg.decoder_depth)
            .map(|i| ViTBlock::new(vb.pp("decoder_blocks").pp(i), cfg.decoder_dim, block.clone()))
            .collect::<Result<_>>()?;
        let (dd, linear) = (cfg.decoder_dim, LinearConfig::default());
        Ok(Self {
            decoder_embed: Linear::new(vb.pp("decoder_embed"), cfg.dim, dd, linear.clone())?,
            mask_token: vb.get_with_hints((1, 1, dd), "mask_token", Init::Randn { mean: 0.0, stdev: 0.02 })?,
            decoder_pos_embed: sincos_3d(cfg.grid(), dd, vb.dtype(), vb.device())?,
            decoder_blocks,
            decoder_norm: LayerNorm::new(
                vb.pp("decoder_norm"),
                dd,
                LayerNormConfig { eps: cfg.norm_eps, affine: true },
            )?,
            decoder_pred: Linear::new(vb.pp("decoder_pred"), dd, cfg.patch_len(cfg.in_channels), linear)?,
            encoder,
        })
    }

    /// The encoder being pretrained.
    pub fn encoder(&self) -> &VitEncoder {
        &self.encoder
    }

    /// Reconstructs every patch of `images` `(b, c, S, H, W)` from the tokens `masking` keeps:
    /// `→ (b, n, c·d·p·p)`, patches flattened as [`patchify`].
    pub fn forward(&self, images: &Tensor, masking: &Masking) -> Result<Tensor> {
        let (b, n, k) = (masking.batch, masking.tokens, masking.kept);
        // 1. encoder on the visible tokens (positions added before masking)
        let tokens = self.encoder.embed(images)?; // (b, n, dim)
        let (tb, tn, dim) = tokens.dims3()?;
        if (tb, tn) != (b, n) {
            bail!("MAE: masking is for {b} samples × {n} tokens, the images give {tb} × {tn}");
        }
        let visible = tokens.reshape((b * n, dim))?.index_select(&masking.keep, 0)?.reshape((b, k, dim))?;
        let latent = self.decoder_embed.forward(&self.encoder.encode(&visible)?)?; // (b, 1 + k, dd)
        let dd = latent.dim(2)?;
        // 2. mask tokens appended, then every token put back in its place
        let masked = self.mask_token.broadcast_as((b, n - k, dd))?;
        let shuffled = Tensor::cat(&[&latent.narrow(1, 1, k)?, &masked], 1)?; // (b, n, dd), visible first
        let restored = shuffled.reshape((b * n, dd))?.index_select(&masking.restore, 0)?.reshape((b, n, dd))?;
        let mut xs = Tensor::cat(&[&latent.narrow(1, 0, 1)?, &restored.broadcast_add(&self.decoder_pos_embed)?], 1)?;
        // 3. decoder, prediction of the pixels of every patch
        for block in &self.decoder_blocks {
            xs = block.forward(&xs)?;
        }
        self.decoder_pred.forward(&self.decoder_norm.forward(&xs)?)?.narrow(1, 1, n)
        // (b, n, patch_len)
    }

    /// The MAE loss: mean squared error over the masked patches only, against the pixels or (`norm_pix_loss`) each
    /// patch normalised to zero mean and unit variance (unbiased, ε = 1e-6, as upstream).
    pub fn loss(&self, images: &Tensor, masking: &Masking, norm_pix_loss: bool) -> Result<Tensor> {
        let pred = self.forward(images, masking)?;
        let cfg = self.encoder.config();
        let mut target = patchify(&images.detach(), cfg.patch_depth, cfg.patch_size)?;
        if norm_pix_loss {
            let len = target.dim(D::Minus1)? as f64;
            let centered = target.broadcast_sub(&target.mean_keepdim(D::Minus1)?)?;
            let var = (centered.sqr()?.sum_keepdim(D::Minus1)? / (len - 1.0).max(1.0))?;
            target = centered.broadcast_div(&(var + 1e-6)?.sqrt()?)?;
        }
        let per_patch = (pred - target)?.sqr()?.mean(D::Minus1)?; // (b, n)
        let mask = masking.mask.to_dtype(per_patch.dtype())?;
        (per_patch * &mask)?.sum_all()? / mask.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?
    }
}

/// `(b, c, S, H, W) → (b, n, c·d·p·p)`: the patches in token order, each flattened in `(c, d, p, p)` order — the
/// layout [`cmr_nn::layers::PatchEmbed3d`] embeds.
pub fn patchify(xs: &Tensor, patch_depth: usize, patch_size: usize) -> Result<Tensor> {
    let (b, c, s, h, w) = xs.dims5()?;
    let (d, p) = (patch_depth, patch_size);
    if s % d != 0 || h % p != 0 || w % p != 0 {
        bail!("patchify: volume {s}×{h}×{w} is not a whole number of {d}×{p}×{p} patches");
    }
    xs.reshape(vec![b, c, s / d, d, h / p, p, w / p, p])?
        .permute(vec![0, 2, 4, 6, 1, 3, 5, 7])? // (b, nd, nh, nw, c, d, p, p)
        .reshape((b, (s / d) * (h / p) * (w / p), c * d * p * p))
}
