//! Finite-difference gradient checks: the harness every layer of this crate (and every network built on it) uses to
//! prove that candle's backward pass computes the gradient of the forward pass (issue 3, item 1).
//!
//! A function `f(inputs, params) → output` is reduced to the scalar loss `L = Σ output ⊙ R`, with `R` a fixed random
//! projection, so that every output element matters with a different weight. The analytic gradient `∂L/∂x` comes
//! from `L.backward()`; the numeric one from central differences in f64,
//! `(L(x + h·e_i) − L(x − h·e_i)) / 2h`, whose error is `O(h²)` (Nocedal & Wright, *Numerical Optimization*, §8.1).
//! Both are compared entry by entry for every input and every variable of a [`VarMap`]; a variable that candle's
//! backward leaves out (no gradient recorded, as with the fused `softmax_last_dim` or `layer_norm`) is compared as
//! zeros, so a missing gradient fails instead of passing silently.

use std::fmt;

use candle_core::{bail, DType, Result, Shape, Tensor, Var};
use candle_nn::VarMap;
use rand::seq::index;
use rand::Rng;

/// Settings of [`check`].
#[derive(Debug, Clone)]
pub struct GradCheckConfig {
    /// Central-difference step `h`. Default `1e-5`: in f64 the truncation error (`h²·f'''/6`) and the rounding error
    /// (`ε·|L|/h`) both stay below `1e-9` for the small, smooth test networks this harness is meant for.
    pub step: f64,
    /// Relative tolerance: an entry passes when `|analytic − numeric| ≤ atol + rtol·max(|analytic|, |numeric|)`.
    /// Default `1e-6`.
    pub rtol: f64,
    /// Absolute tolerance of the same test, for entries whose true gradient is (close to) zero. Default `1e-8`.
    pub atol: f64,
    /// Seed of the random projection `R` and of the sampled entries. Default `0`.
    pub seed: u64,
    /// Entries checked per tensor, sampled without replacement when the tensor is larger; `None` checks every
    /// entry. Default `Some(48)`.
    pub max_entries: Option<usize>,
    /// Whether a tensor whose numeric gradient is zero at every checked entry may pass. Default `false`: such a
    /// check proves nothing (a parameter the output ignores, or a zero-initialised one upstream), so set values with
    /// [`randomize`] first and allow it only where the zero is the point of the test.
    pub allow_zero_gradient: bool,
}

impl Default for GradCheckConfig {
    fn default() -> Self {
        Self { step: 1e-5, rtol: 1e-6, atol: 1e-8, seed: 0, max_entries: Some(48), allow_zero_gradient: false }
    }
}

/// The outcome of checking one tensor (an input or a parameter).
#[derive(Debug, Clone)]
pub struct TensorCheck {
    /// `input.{i}` for the i-th input, the [`VarMap`] name for a parameter.
    pub name: String,
    /// Shape of the tensor.
    pub shape: Vec<usize>,
    /// Number of entries compared.
    pub checked: usize,
    /// Whether candle's backward recorded no gradient at all for this tensor (compared as zeros).
    pub analytic_missing: bool,
    /// Largest `|analytic − numeric|` over the checked entries.
    pub max_abs_error: f64,
    /// Largest `|numeric|` over the checked entries: the scale the error is measured against.
    pub max_abs_numeric: f64,
    /// Flat index, analytic and numeric value of the entry with the largest error-to-tolerance ratio.
    pub worst: (usize, f64, f64),
    /// Whether every checked entry is within tolerance (and, unless allowed, the gradient is not all zero).
    pub passed: bool,
}

/// The outcome of [`check`]: one [`TensorCheck`] per input, then one per parameter in name order.
#[derive(Debug, Clone)]
pub struct GradReport {
    /// Per-tensor results.
    pub tensors: Vec<TensorCheck>,
}

impl GradReport {
    /// Whether every tensor passed.
    pub fn passed(&self) -> bool {
        self.tensors.iter().all(|t| t.passed)
    }

    /// The result for the tensor called `name` (`input.0`, `conv1.weight`, …).
    pub fn get(&self, name: &str) -> Option<&TensorCheck> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

impl fmt::Display for GradReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<40} {:>14} {:>7} {:>11} {:>11}  status", "tensor", "shape", "checked", "max|err|", "max|num|")?;
        for t in &self.tensors {
            let status = match (t.passed, t.analytic_missing) {
                (true, _) => "ok".to_string(),
                (false, true) => "FAIL: backward recorded no gradient".to_string(),
                (false, false) if t.max_abs_numeric == 0.0 => "FAIL: zero gradient proves nothing".to_string(),
                (false, false) => {
                    let (i, a, n) = t.worst;
                    format!("FAIL: entry {i}: analytic {a:.9e} vs numeric {n:.9e}")
                }
            };
            let shape = format!("{:?}", t.shape);
            writeln!(
                f,
                "{:<40} {:>14} {:>7} {:>11.3e} {:>11.3e}  {status}",
                t.name, shape, t.checked, t.max_abs_error, t.max_abs_numeric
            )?;
        }
        Ok(())
    }
}

/// Compares candle's gradients of `f` with central differences, for every tensor of `inputs` and every variable of
/// `params`.
///
/// `f` receives the inputs (as tracked tensors) and returns any f64 tensor; it must be deterministic, since it is
/// evaluated `1 + 2·entries` times (a layer with dropout draws its mask from a generator it re-seeds on each call).
/// Everything must be f64: build the layer with `VarBuilder::from_varmap(&varmap, DType::F64, &device)`. Variables
/// keep their values afterwards. Errors come from `f` itself or from a non-f64 tensor.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// use cmr_nn::grad_check::{check, randomize, GradCheckConfig};
///
/// # fn main() -> candle_core::Result<()> {
/// let varmap = VarMap::new();
/// let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
/// let w = vb.get((3, 4), "weight")?;
/// randomize(&varmap, 7, 1.0)?;
/// let x = Tensor::arange(0.0, 8.0, &Device::Cpu)?.reshape((2, 4))?;
/// let report = check(&[x], &varmap, &GradCheckConfig::default(), |xs| xs[0].matmul(&w.t()?)?.tanh())?;
/// assert!(report.passed(), "{report}");
/// # Ok(()) }
/// ```
pub fn check<F>(inputs: &[Tensor], params: &VarMap, cfg: &GradCheckConfig, f: F) -> Result<GradReport>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
{
    let mut named_params: Vec<(String, Var)> =
        params.data().lock().expect("VarMap lock poisoned").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    named_params.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, t) in inputs.iter().enumerate() {
        ensure_f64(&format!("input.{i}"), t)?;
    }
    for (name, v) in &named_params {
        ensure_f64(name, v.as_tensor())?;
    }

    // 1. analytic gradients of L = Σ f(x) ⊙ R
    let vars = inputs.iter().map(|t| Var::from_tensor(&t.detach())).collect::<Result<Vec<_>>>()?;
    let tracked: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&tracked)?;
    ensure_f64("output", &out)?;
    let projection = random_projection(out.shape(), cfg.seed)?.to_device(out.device())?;
    let grads = (&out * &projection)?.sum_all()?.backward()?;
    let loss = |xs: &[Tensor]| -> Result<f64> { (f(xs)? * &projection)?.sum_all()?.to_scalar::<f64>() };

    // 2. numeric gradients, entry by entry
    let plain: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
    let mut tensors = Vec::with_capacity(vars.len() + named_params.len());
    for (i, var) in vars.iter().enumerate() {
        let name = format!("input.{i}");
        let analytic = grads.get(var.as_tensor());
        let check = compare(&name, var.as_tensor(), analytic, cfg, |perturbed| {
            let mut xs = plain.clone();
            xs[i] = perturbed;
            loss(&xs)
        })?;
        tensors.push(check);
    }
    for (name, var) in &named_params {
        let original = var.as_tensor().copy()?;
        let analytic = grads.get(var.as_tensor());
        let result = compare(name, &original, analytic, cfg, |perturbed| {
            var.set(&perturbed)?;
            loss(&plain)
        });
        var.set(&original)?;
        tensors.push(result?);
    }
    Ok(GradReport { tensors })
}

/// Sets every variable of `params` to values drawn uniformly from `[-scale, scale]`, from a stream derived from
/// `seed` and the variable's name (so the values do not depend on creation order). Use it before [`check`] so that
/// zero- or one-initialised parameters (biases, norms, zero convolutions) do not hide a wrong gradient.
pub fn randomize(params: &VarMap, seed: u64, scale: f64) -> Result<()> {
    let data = params.data().lock().expect("VarMap lock poisoned");
    for (name, var) in data.iter() {
        let mut rng = cmr_core::seed::rng(seed, &["grad_check", "randomize", name]);
        let n = var.elem_count();
        let values: Vec<f64> = (0..n).map(|_| scale * (2.0 * rng.random::<f64>() - 1.0)).collect();
        let t = Tensor::from_vec(values, var.shape(), var.device())?.to_dtype(var.dtype())?;
        var.set(&t)?;
    }
    Ok(())
}

fn ensure_f64(name: &str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F64 {
        bail!("grad_check: {name} is {:?}, expected f64 (build the layer with DType::F64)", t.dtype())
    }
    Ok(())
}

fn random_projection(shape: &Shape, seed: u64) -> Result<Tensor> {
    let mut rng = cmr_core::seed::rng(seed, &["grad_check", "projection"]);
    let values: Vec<f64> = (0..shape.elem_count()).map(|_| 2.0 * rng.random::<f64>() - 1.0).collect();
    Tensor::from_vec(values, shape, &candle_core::Device::Cpu)
}

/// Compares the analytic gradient of one tensor with central differences of `loss_at`, which evaluates the loss
/// with the tensor replaced by its argument.
fn compare<L>(
    name: &str,
    value: &Tensor,
    analytic: Option<&Tensor>,
    cfg: &GradCheckConfig,
    loss_at: L,
) -> Result<TensorCheck>
where
    L: Fn(Tensor) -> Result<f64>,
{
    let shape = value.shape().clone();
    let device = value.device();
    let base: Vec<f64> = value.flatten_all()?.to_vec1()?;
    let analytic_values: Option<Vec<f64>> = match analytic {
        Some(g) => Some(g.to_device(&candle_core::Device::Cpu)?.flatten_all()?.to_vec1()?),
        None => None,
    };
    let n = base.len();
    let entries: Vec<usize> = match cfg.max_entries {
        Some(k) if k < n => {
            let mut rng = cmr_core::seed::rng(cfg.seed, &["grad_check", "entries", name]);
            let mut picked = index::sample(&mut rng, n, k).into_vec();
            picked.sort_unstable();
            picked
        }
        _ => (0..n).collect(),
    };

    let mut max_abs_error = 0.0f64;
    let mut max_abs_numeric = 0.0f64;
    let mut worst = (0usize, 0.0f64, 0.0f64);
    let mut worst_ratio = -1.0f64;
    let mut within = true;
    let mut data = base.clone();
    for &i in &entries {
        data[i] = base[i] + cfg.step;
        let plus = loss_at(Tensor::from_vec(data.clone(), &shape, device)?)?;
        data[i] = base[i] - cfg.step;
        let minus = loss_at(Tensor::from_vec(data.clone(), &shape, device)?)?;
        data[i] = base[i];
        let numeric = (plus - minus) / (2.0 * cfg.step);
        let a = analytic_values.as_ref().map_or(0.0, |g| g[i]);
        let error = (a - numeric).abs();
        let tolerance = cfg.atol + cfg.rtol * a.abs().max(numeric.abs());
        // NaN on either side must fail, so test "within" positively.
        within &= error <= tolerance;
        let ratio = if error.is_nan() { f64::INFINITY } else { error / tolerance };
        if ratio > worst_ratio {
            worst_ratio = ratio;
            worst = (i, a, numeric);
        }
        max_abs_error = max_abs_error.max(error);
        max_abs_numeric = max_abs_numeric.max(numeric.abs());
    }
    let nonzero = cfg.allow_zero_gradient || max_abs_numeric > 0.0;
    Ok(TensorCheck {
        name: name.to_string(),
        shape: shape.dims().to_vec(),
        checked: entries.len(),
        analytic_missing: analytic_values.is_none(),
        max_abs_error,
        max_abs_numeric,
        worst,
        passed: within && nonzero,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{CustomOp1, Device, Layout, Shape};
    use candle_nn::VarBuilder;

    /// `x²` whose backward claims `3x` instead of `2x`: a wrong gradient the harness must catch.
    struct WrongSquare;

    impl CustomOp1 for WrongSquare {
        fn name(&self) -> &'static str {
            "wrong-square"
        }

        fn cpu_fwd(&self, s: &candle_core::CpuStorage, l: &Layout) -> Result<(candle_core::CpuStorage, Shape)> {
            let Some((start, end)) = l.contiguous_offsets() else { bail!("wrong-square: contiguous input only") };
            let v: Vec<f64> = s.as_slice::<f64>()?[start..end].iter().map(|x| x * x).collect();
            Ok((candle_core::CpuStorage::F64(v), l.shape().clone()))
        }

        fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
            Ok(Some((grad_res * (arg * 3.0)?)?))
        }
    }

    #[test]
    fn accepts_a_correct_gradient_of_inputs_and_parameters() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let w = vb.get((3, 4), "w")?;
        let b = vb.get(3, "b")?;
        randomize(&varmap, 1, 0.5)?;
        let x = Tensor::arange(-4.0f64, 4.0, &Device::Cpu)?.reshape((2, 4))?;
        let report = check(&[x], &varmap, &GradCheckConfig::default(), |xs| {
            xs[0].matmul(&w.t()?)?.broadcast_add(&b)?.tanh()?.sqr()
        })?;
        assert!(report.passed(), "{report}");
        assert_eq!(report.tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["input.0", "b", "w"]);
        assert_eq!(report.get("w").map(|t| t.checked), Some(12));
        Ok(())
    }

    #[test]
    fn rejects_a_wrong_gradient() -> Result<()> {
        let x = Tensor::new(&[0.5f64, -1.5, 2.0], &Device::Cpu)?;
        let report = check(&[x], &VarMap::new(), &GradCheckConfig::default(), |xs| xs[0].apply_op1(WrongSquare))?;
        let t = report.get("input.0").expect("input checked");
        assert!(!report.passed());
        // 3x vs 2x: the error is |x|·|R|, far above tolerance.
        assert!(t.max_abs_error > 1e-2, "{report}");
        Ok(())
    }

    #[test]
    fn rejects_a_missing_gradient_and_a_zero_gradient() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let used = vb.get(3, "used")?;
        let _unused = vb.get(3, "unused")?;
        randomize(&varmap, 2, 1.0)?;
        // `detach` cuts the graph: the output depends on `used` but backward records nothing for it.
        let report = check(&[], &varmap, &GradCheckConfig::default(), |_| used.detach().sqr())?;
        let used_check = report.get("used").expect("checked");
        assert!(used_check.analytic_missing && !used_check.passed, "{report}");
        let unused_check = report.get("unused").expect("checked");
        assert!(unused_check.max_abs_numeric == 0.0 && !unused_check.passed, "{report}");
        let lenient = GradCheckConfig { allow_zero_gradient: true, ..Default::default() };
        let report = check(&[], &varmap, &lenient, |_| used.sqr())?;
        assert!(report.passed(), "{report}");
        Ok(())
    }

    #[test]
    fn samples_large_tensors_and_restores_parameters() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
        let w = vb.get(100, "w")?;
        randomize(&varmap, 3, 1.0)?;
        let before: Vec<f64> = w.to_vec1()?;
        let cfg = GradCheckConfig { max_entries: Some(10), ..Default::default() };
        let report = check(&[], &varmap, &cfg, |_| w.exp())?;
        assert!(report.passed(), "{report}");
        assert_eq!(report.get("w").map(|t| t.checked), Some(10));
        assert_eq!(w.to_vec1::<f64>()?, before);
        Ok(())
    }

    #[test]
    fn refuses_f32() -> Result<()> {
        let x = Tensor::new(&[1.0f32], &Device::Cpu)?;
        let err = check(&[x], &VarMap::new(), &GradCheckConfig::default(), |xs| Ok(xs[0].clone()));
        assert!(err.is_err_and(|e| e.to_string().contains("expected f64")));
        Ok(())
    }
}
