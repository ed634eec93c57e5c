//! Embeddings: the sinusoidal timestep embedding of DDPM (Ho et al., arXiv 2006.11239, Appendix B: "diffusion time t
//! is specified by adding the Transformer sinusoidal position embedding into each residual block") as diffusers'
//! `get_timestep_embedding` / `Timesteps`, its MLP `TimestepEmbedding` (`linear_1`, `linear_2`)
//! (<https://github.com/huggingface/diffusers/blob/v0.30.0/src/diffusers/models/embeddings.py>), and the 3D patch
//! embedding of a ViT over `[C, D, H, W]` volumes (Dosovitskiy et al., arXiv 2010.11929, Eq. 1: "x_p^i E", a linear
//! map of flattened patches) computed by unfolding with reshape/permute instead of a strided Conv3d.

use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::Activation;
use super::linear::{Linear, LinearConfig};

/// Configuration of [`Timesteps`]; defaults are those of diffusers' `get_timestep_embedding`.
#[derive(Debug, Clone)]
pub struct TimestepsConfig {
    /// Order the halves `cos | sin` instead of `sin | cos`. Default `false` (the diffusers UNet passes `true`).
    pub flip_sin_to_cos: bool,
    /// `s` in the frequency exponent `−ln(max_period)·i / (dim/2 − s)`. Default `1.0` (the UNet passes `0.0`).
    pub downscale_freq_shift: f64,
    /// Factor applied to every `t·frequency`. Default `1.0`.
    pub scale: f64,
    /// Longest period of the sinusoids. Default `10000`.
    pub max_period: f64,
}

impl Default for TimestepsConfig {
    fn default() -> Self {
        Self { flip_sin_to_cos: false, downscale_freq_shift: 1.0, scale: 1.0, max_period: 10_000.0 }
    }
}

/// Sinusoidal embedding of one (possibly fractional) timestep per sample: `(b,) → (b, dim)`. No parameters.
#[derive(Debug, Clone)]
pub struct Timesteps {
    dim: usize,
    cfg: TimestepsConfig,
}

impl Timesteps {
    /// An embedding of width `dim` (an odd `dim` gets a trailing zero column, as upstream).
    pub fn new(dim: usize, cfg: TimestepsConfig) -> Result<Self> {
        if dim < 2 || (dim / 2) as f64 == cfg.downscale_freq_shift {
            bail!("Timesteps: dim {dim} with downscale_freq_shift {} divides by zero", cfg.downscale_freq_shift);
        }
        Ok(Self { dim, cfg })
    }
}

impl Module for Timesteps {
    /// Float timesteps keep their dtype; integer ones are embedded in f32.
    fn forward(&self, timesteps: &Tensor) -> Result<Tensor> {
        let t = if timesteps.dtype().is_float() { timesteps.clone() } else { timesteps.to_dtype(DType::F32)? };
        let b = t.dims1()?;
        let half = self.dim / 2;
        // frequencies exp(−ln(P)·i / (half − s)), computed in f64 whatever the dtype
        let denom = half as f64 - self.cfg.downscale_freq_shift;
        let freqs: Vec<f64> =
            (0..half).map(|i| (-self.cfg.max_period.ln() * i as f64 / denom).exp() * self.cfg.scale).collect();
        let freqs = Tensor::from_vec(freqs, (1, half), t.device())?.to_dtype(t.dtype())?;
        let args = t.reshape((b, 1))?.broadcast_mul(&freqs)?; // (b, half)
        let (sin, cos) = (args.sin()?, args.cos()?);
        let mut parts = if self.cfg.flip_sin_to_cos { vec![cos, sin] } else { vec![sin, cos] };
        if self.dim % 2 == 1 {
            parts.push(Tensor::zeros((b, 1), t.dtype(), t.device())?);
        }
        Tensor::cat(&parts, 1) // (b, dim)
    }
}

/// Configuration of a [`TimestepEmbedding`].
#[derive(Debug, Clone, Default)]
pub struct TimestepEmbeddingConfig {
    /// Activation between `linear_1` and `linear_2`. Default [`Activation::Silu`].
    pub act: Activation,
    /// Output width; `None` means `time_embed_dim`. Default `None`.
    pub out_dim: Option<usize>,
}

/// The MLP on top of [`Timesteps`]: `linear_2(act(linear_1(t_emb)))`, `(b, in) → (b, out)`.
#[derive(Debug, Clone)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    act: Activation,
    linear_2: Linear,
}

impl TimestepEmbedding {
    /// Creates (or loads) `linear_1` `(in_channels → time_embed_dim)` and `linear_2`
    /// `(time_embed_dim → out_dim or time_embed_dim)`.
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        time_embed_dim: usize,
        cfg: TimestepEmbeddingConfig,
    ) -> Result<Self> {
        let out = cfg.out_dim.unwrap_or(time_embed_dim);
        Ok(Self {
            linear_1: Linear::new(vb.pp("linear_1"), in_channels, time_embed_dim, LinearConfig::default())?,
            act: cfg.act,
            linear_2: Linear::new(vb.pp("linear_2"), time_embed_dim, out, LinearConfig::default())?,
        })
    }
}

impl Module for TimestepEmbedding {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.linear_2.forward(&self.act.forward(&self.linear_1.forward(xs)?)?)
    }
}

/// Configuration of a [`PatchEmbed3d`].
#[derive(Debug, Clone)]
pub struct PatchEmbed3dConfig {
    /// In-plane side `p` of a patch (height and width). Default `16` (timm's ViT).
    pub patch_size: usize,
    /// Depth `d` of a patch along the slice axis. Default `1` (one short-axis slice).
    pub patch_depth: usize,
    /// Whether `proj` has a bias. Default `true`.
    pub bias: bool,
}

impl Default for PatchEmbed3dConfig {
    fn default() -> Self {
        Self { patch_size: 16, patch_depth: 1, bias: true }
    }
}

/// Cuts `(b, c, D, H, W)` into non-overlapping `d×p×p` patches and maps each flattened patch linearly (tensor
/// `proj`): `→ (b, (D/d)·(H/p)·(W/p), embed_dim)`, tokens in depth, row, column order.
///
/// A patch is flattened in `(c, d, p, p)` order, so `proj.weight` is a strided `Conv3d` kernel
/// `(embed_dim, c, d, p, p)` reshaped to `(embed_dim, c·d·p·p)` and the output equals
/// `Conv3d(kernel=stride=(d, p, p))` followed by `flatten(2).transpose(1, 2)`.
#[derive(Debug, Clone)]
pub struct PatchEmbed3d {
    proj: Linear,
    patch_size: usize,
    patch_depth: usize,
}

impl PatchEmbed3d {
    /// Creates (or loads) `proj` `(in_channels·d·p·p → embed_dim)`.
    pub fn new(vb: VarBuilder, in_channels: usize, embed_dim: usize, cfg: PatchEmbed3dConfig) -> Result<Self> {
        if cfg.patch_size == 0 || cfg.patch_depth == 0 {
            bail!("PatchEmbed3d {}: patch sizes must be positive", vb.prefix());
        }
        let patch_len = in_channels * cfg.patch_depth * cfg.patch_size * cfg.patch_size;
        let proj = Linear::new(vb.pp("proj"), patch_len, embed_dim, LinearConfig { bias: cfg.bias })?;
        Ok(Self { proj, patch_size: cfg.patch_size, patch_depth: cfg.patch_depth })
    }
}

impl Module for PatchEmbed3d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (b, c, depth, h, w) = xs.dims5()?;
        let (p, d) = (self.patch_size, self.patch_depth);
        if depth % d != 0 || h % p != 0 || w % p != 0 {
            bail!("PatchEmbed3d: volume {depth}×{h}×{w} is not a whole number of {d}×{p}×{p} patches");
        }
        let (nd, nh, nw) = (depth / d, h / p, w / p);
        let patches = xs
            .reshape(vec![b, c, nd, d, nh, p, nw, p])?
            .permute(vec![0, 2, 4, 6, 1, 3, 5, 7])? // (b, nd, nh, nw, c, d, p, p)
            .reshape((b, nd * nh * nw, c * d * p * p))?; // (b, tokens, patch_len)
        self.proj.forward(&patches) // (b, tokens, embed_dim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    #[test]
    fn a_volume_that_is_not_whole_patches_is_an_error() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let embed = PatchEmbed3d::new(vb, 2, 8, PatchEmbed3dConfig { patch_size: 4, patch_depth: 2, bias: true })?;
        let x = Tensor::zeros((1, 2, 3, 8, 8), DType::F32, &Device::Cpu)?;
        let err = embed.forward(&x).expect_err("depth 3 is not a multiple of 2");
        assert!(err.to_string().contains("3×8×8 is not a whole number of 2×4×4 patches"), "{err}");
        Ok(())
    }

    #[test]
    fn integer_timesteps_embed_as_f32_and_t_zero_is_sin_zero_cos_one() -> Result<()> {
        let t = Tensor::new(&[0u32, 10], &Device::Cpu)?;
        let emb = Timesteps::new(6, TimestepsConfig::default())?.forward(&t)?;
        assert_eq!(emb.dtype(), DType::F32);
        assert_eq!(emb.dims(), [2, 6]);
        assert_eq!(emb.get(0)?.to_vec1::<f32>()?, [0., 0., 0., 1., 1., 1.]);
        Ok(())
    }
}
