//! Reproducible initialisation: a `VarBuilder` over a [`VarMap`] whose fresh variables are drawn from a ChaCha stream
//! named by the run's seed and the variable's full name (DESIGN.md: "one seed in the pipeline file derives every
//! RNG stream … Same seed, same files, same numbers").
//!
//! `VarBuilder::from_varmap` draws with candle's CPU generator, which cannot be seeded (candle-core 0.11.1,
//! `CpuDevice::set_seed` bails), so two trainings with the same seed would start from different weights. Here each
//! tensor's values depend only on `(seed, name)`, not on the order in which layers are built. The distributions
//! are candle's [`Init`] variants, with the same parameters (`Init::var`).

use candle_core::{bail, DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A [`VarBuilder`] that creates missing variables in `varmap` from the stream `(seed, "init", name)` and returns
/// existing ones unchanged, so the same constructor serves a fresh, reproducible model and one loaded into `varmap`.
///
/// ```
/// use candle_core::{DType, Device};
/// use candle_nn::VarMap;
/// use cmr_nn::layers::{seeded_var_builder, Linear, LinearConfig};
///
/// # fn main() -> candle_core::Result<()> {
/// let (a, b) = (VarMap::new(), VarMap::new());
/// let la = Linear::new(seeded_var_builder(&a, 7, DType::F32, &Device::Cpu).pp("fc"), 4, 2, LinearConfig::default())?;
/// let lb = Linear::new(seeded_var_builder(&b, 7, DType::F32, &Device::Cpu).pp("fc"), 4, 2, LinearConfig::default())?;
/// assert_eq!(la.weight().to_vec2::<f32>()?, lb.weight().to_vec2::<f32>()?);
/// # Ok(()) }
/// ```
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(SeededVarMap { varmap: varmap.clone(), seed }), dtype, device.clone())
}

struct SeededVarMap {
    varmap: VarMap,
    seed: u64,
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.varmap.data().lock().expect("VarMap lock poisoned");
        if let Some(var) = data.get(name) {
            if var.shape() != &shape {
                bail!("shape mismatch on {name}: {shape:?} requested, {:?} in the VarMap", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = cmr_core::seed::rng(self.seed, &["init", name]);
        let values = draw(&mut rng, init, &shape);
        let var = Var::from_tensor(&Tensor::from_vec(values, &shape, dev)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let data = self.varmap.data().lock().expect("VarMap lock poisoned");
        match data.get(name) {
            Some(var) => var.as_tensor().to_dtype(dtype)?.to_device(dev),
            None => bail!("cannot find tensor {name} (no shape given to create it)"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap.data().lock().expect("VarMap lock poisoned").contains_key(name)
    }
}

/// `shape.elem_count()` values of `init`'s distribution.
fn draw(rng: &mut ChaCha8Rng, init: Init, shape: &Shape) -> Vec<f64> {
    let n = shape.elem_count();
    let uniform = |rng: &mut ChaCha8Rng, lo: f64, up: f64| -> Vec<f64> {
        (0..n).map(|_| lo + (up - lo) * rng.random::<f64>()).collect()
    };
    let normal = |rng: &mut ChaCha8Rng, mean: f64, std: f64| -> Vec<f64> {
        // Box–Muller; 1 − u keeps the logarithm's argument in (0, 1]
        (0..n)
            .map(|_| {
                let (u1, u2) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
                mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect()
    };
    match init {
        Init::Const(v) => vec![v; n],
        Init::Uniform { lo, up } => uniform(rng, lo, up),
        Init::Randn { mean, stdev } => normal(rng, mean, stdev),
        Init::Kaiming { dist, fan, non_linearity } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => uniform(rng, -(3f64.sqrt()) * std, 3f64.sqrt() * std),
                NormalOrUniform::Normal => normal(rng, 0.0, std),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Conv2d, Conv2dConfig, Linear, LinearConfig};

    fn values(varmap: &VarMap, name: &str) -> Vec<f64> {
        let data = varmap.data().lock().expect("lock");
        data[name].as_tensor().to_dtype(DType::F64).and_then(|t| t.flatten_all()?.to_vec1()).expect("values")
    }

    #[test]
    fn same_seed_same_weights_whatever_the_build_order() -> Result<()> {
        let (a, b) = (VarMap::new(), VarMap::new());
        let vb_a = seeded_var_builder(&a, 11, DType::F32, &Device::Cpu);
        Linear::new(vb_a.pp("fc"), 6, 3, LinearConfig::default())?;
        Conv2d::new(vb_a.pp("conv"), 2, 4, 3, Conv2dConfig::default())?;
        let vb_b = seeded_var_builder(&b, 11, DType::F32, &Device::Cpu);
        Conv2d::new(vb_b.pp("conv"), 2, 4, 3, Conv2dConfig::default())?;
        Linear::new(vb_b.pp("fc"), 6, 3, LinearConfig::default())?;
        for name in ["fc.weight", "fc.bias", "conv.weight", "conv.bias"] {
            assert_eq!(values(&a, name), values(&b, name), "{name}");
        }
        let c = VarMap::new();
        Linear::new(seeded_var_builder(&c, 12, DType::F32, &Device::Cpu).pp("fc"), 6, 3, LinearConfig::default())?;
        assert_ne!(values(&a, "fc.weight"), values(&c, "fc.weight"));
        Ok(())
    }

    #[test]
    fn draws_follow_the_requested_distribution() -> Result<()> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, 1, DType::F64, &Device::Cpu);
        vb.get_with_hints(4, "ones", Init::Const(1.0))?;
        vb.get_with_hints(10_000, "uniform", Init::Uniform { lo: -0.25, up: 0.5 })?;
        vb.get_with_hints(10_000, "normal", Init::Randn { mean: 2.0, stdev: 3.0 })?;
        assert_eq!(values(&varmap, "ones"), [1.0; 4]);
        let u = values(&varmap, "uniform");
        assert!(u.iter().all(|v| (-0.25..0.5).contains(v)));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        // standard errors: uniform 0.22/√n ≈ 0.002, normal 3/√n = 0.03 (mean) and ≈ 0.02 (sd)
        assert!((mean(&u) - 0.125).abs() < 0.01, "uniform mean {}", mean(&u));
        let g = values(&varmap, "normal");
        let sd = (g.iter().map(|v| (v - mean(&g)).powi(2)).sum::<f64>() / g.len() as f64).sqrt();
        assert!((mean(&g) - 2.0).abs() < 0.12 && (sd - 3.0).abs() < 0.1, "normal mean {} sd {sd}", mean(&g));
        Ok(())
    }

    #[test]
    fn existing_variables_are_returned_and_trainable() -> Result<()> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, 3, DType::F32, &Device::Cpu);
        let first = vb.get_with_hints((2, 2), "w", Init::Const(0.5))?;
        let again = vb.get_with_hints((2, 2), "w", Init::Const(9.0))?;
        assert_eq!(first.id(), again.id());
        assert_eq!(varmap.all_vars().len(), 1);
        assert!(first.is_variable());
        let err = vb.get_with_hints((3, 2), "w", Init::Const(0.0)).expect_err("shape mismatch");
        assert!(err.to_string().contains("shape mismatch on w"), "{err}");
        Ok(())
    }
}
