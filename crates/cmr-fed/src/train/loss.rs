//! The classifier's loss: class-weighted binary cross-entropy on logits.
//!
//! For a logit `z`, label `y ∈ {0, 1}` and weight `w`, the per-example loss is the numerically stable form of
//! `−[y·log σ(z) + (1 − y)·log(1 − σ(z))]`, `max(z, 0) − z·y + log(1 + e^{−|z|})` (as PyTorch's
//! `BCEWithLogitsLoss`), and the batch loss is the weighted mean `Σ w·ℓ / Σ w`, so a batch's loss does not depend on
//! how many of each class it drew. Built from `relu`, `abs`, `exp`, `log` and arithmetic only, whose gradients
//! candle records (checked by finite differences below).

use candle_core::{Result, Tensor};

/// Weighted mean binary cross-entropy of `logits` `(b)` against `labels` `(b)` (0 or 1) with per-example
/// `weights` `(b)`, all of the logits' dtype.
pub fn weighted_bce_with_logits(logits: &Tensor, labels: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let softplus_neg_abs = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?; // log(1 + e^{−|z|})
    let per_example = ((logits.relu()? - logits.mul(labels)?)? + softplus_neg_abs)?;
    per_example.mul(weights)?.sum_all()?.div(&weights.sum_all()?)
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::VarMap;
    use cmr_nn::grad_check::{check, GradCheckConfig};

    use super::*;

    #[test]
    fn equals_the_textbook_formula_and_stays_finite_for_large_logits() -> Result<()> {
        let dev = Device::Cpu;
        let z = [-3.0f64, -0.5, 0.0, 0.7, 2.5];
        let y = [0.0f64, 1.0, 1.0, 0.0, 1.0];
        let w = [1.0f64, 2.0, 0.5, 1.5, 1.0];
        let loss = weighted_bce_with_logits(&Tensor::new(&z, &dev)?, &Tensor::new(&y, &dev)?, &Tensor::new(&w, &dev)?)?
            .to_scalar::<f64>()?;
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        let expected: f64 = z
            .iter()
            .zip(&y)
            .zip(&w)
            .map(|((&z, &y), &w)| -w * (y * sigmoid(z).ln() + (1.0 - y) * (1.0 - sigmoid(z)).ln()))
            .sum::<f64>()
            / w.iter().sum::<f64>();
        assert!((loss - expected).abs() < 1e-12, "{loss} vs {expected}");
        // σ(−800) underflows to 0 in the textbook form; the stable form gives the exact 800.
        let big = weighted_bce_with_logits(
            &Tensor::new(&[-800.0f64], &dev)?,
            &Tensor::new(&[1.0f64], &dev)?,
            &Tensor::new(&[1.0f64], &dev)?,
        )?;
        assert!((big.to_scalar::<f64>()? - 800.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[-2.0f64, -0.3, 0.4, 1.7, 3.1, -1.1], &dev)?;
        let labels = Tensor::new(&[0.0f64, 1.0, 1.0, 0.0, 1.0, 0.0], &dev)?;
        let weights = Tensor::new(&[1.0f64, 3.0, 0.5, 1.0, 2.0, 0.7], &dev)?;
        let cfg = GradCheckConfig::default();
        let report =
            check(&[logits], &VarMap::new(), &cfg, |inputs| weighted_bce_with_logits(&inputs[0], &labels, &weights))?;
        assert!(report.passed(), "{report}");
        Ok(())
    }
}
