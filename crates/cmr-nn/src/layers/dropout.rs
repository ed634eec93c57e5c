//! Inverted dropout (Srivastava et al., JMLR 15, 2014: "each unit is retained with probability 1 − p"; kept units are
//! scaled by `1/(1 − p)` at training time so evaluation is the identity, as `torch.nn.Dropout`).
//!
//! The mask is drawn from a ChaCha stream the caller passes in — derive it with `cmr_core::seed::rng(root, &[stage,
//! "step", …])` — so a training run with the same seed drops the same units (DESIGN.md: "Same seed, same files, same
//! numbers"). Candle's `candle_nn::ops::dropout` draws from the CPU generator instead, which cannot be seeded.

use candle_core::{bail, Result, Tensor};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Configuration of a [`Dropout`] layer.
#[derive(Debug, Clone)]
pub struct DropoutConfig {
    /// Probability of zeroing an element, in `[0, 1)`. Default `0.5` (`torch.nn.Dropout`).
    pub p: f64,
}

impl Default for DropoutConfig {
    fn default() -> Self {
        Self { p: 0.5 }
    }
}

/// Zeroes each element with probability `p` and scales the rest by `1/(1 − p)` while training; the identity in
/// evaluation. No parameters.
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f64,
}

impl Dropout {
    /// A dropout layer; `p` outside `[0, 1)` is an error.
    pub fn new(cfg: DropoutConfig) -> Result<Self> {
        if !(0.0..1.0).contains(&cfg.p) {
            bail!("Dropout: p = {} must lie in [0, 1)", cfg.p);
        }
        Ok(Self { p: cfg.p })
    }

    /// Training when `rng` is `Some` (the mask is drawn from it, one uniform per element in row-major order),
    /// evaluation (identity) when `None`.
    pub fn forward(&self, xs: &Tensor, rng: Option<&mut ChaCha8Rng>) -> Result<Tensor> {
        let Some(rng) = rng else { return Ok(xs.clone()) };
        if self.p == 0.0 {
            return Ok(xs.clone());
        }
        let keep_scale = 1.0 / (1.0 - self.p);
        let mask: Vec<f64> =
            (0..xs.elem_count()).map(|_| if rng.random::<f64>() < self.p { 0.0 } else { keep_scale }).collect();
        let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
        xs.mul(&mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn ones(n: usize) -> Result<Tensor> {
        Tensor::ones(n, DType::F32, &Device::Cpu)
    }

    #[test]
    fn evaluation_is_the_identity() -> Result<()> {
        let x = Tensor::arange(0f32, 10.0, &Device::Cpu)?;
        let y = Dropout::new(DropoutConfig::default())?.forward(&x, None)?;
        assert_eq!(y.to_vec1::<f32>()?, x.to_vec1::<f32>()?);
        Ok(())
    }

    #[test]
    fn training_drops_a_fraction_p_and_rescales_the_rest() -> Result<()> {
        let dropout = Dropout::new(DropoutConfig { p: 0.3 })?;
        let mut rng = cmr_core::seed::rng(5, &["dropout-test"]);
        let y = dropout.forward(&ones(20_000)?, Some(&mut rng))?.to_vec1::<f32>()?;
        let dropped = y.iter().filter(|v| **v == 0.0).count() as f64 / y.len() as f64;
        // binomial sd = √(0.3·0.7/20000) ≈ 0.0032: ±0.015 is ~5 sd
        assert!((dropped - 0.3).abs() < 0.015, "dropped fraction {dropped}");
        let kept = (1.0 / 0.7) as f32;
        assert!(y.iter().all(|v| *v == 0.0 || *v == kept), "kept values are scaled by 1/(1 − p)");
        Ok(())
    }

    #[test]
    fn the_mask_is_a_function_of_the_stream() -> Result<()> {
        let dropout = Dropout::new(DropoutConfig::default())?;
        let mask = |labels: &[&str]| -> Result<Vec<f32>> {
            dropout.forward(&ones(256)?, Some(&mut cmr_core::seed::rng(9, labels)))?.to_vec1()
        };
        assert_eq!(mask(&["step", "1"])?, mask(&["step", "1"])?);
        assert_ne!(mask(&["step", "1"])?, mask(&["step", "2"])?);
        Ok(())
    }

    #[test]
    fn rejects_p_outside_the_unit_interval() {
        for p in [1.0, -0.1, f64::NAN] {
            assert!(Dropout::new(DropoutConfig { p }).is_err(), "p = {p}");
        }
    }
}
