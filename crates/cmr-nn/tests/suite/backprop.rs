//! The vendored candle-core's backpropagation (vendor/README.md): a gradient's first contribution is stored instead
//! of being added to zeros. These tests pin that it is in effect and that the gradients it gives are still right where
//! the shortcut could go wrong: a tensor with several consumers, and a gradient that reaches matmul's backward as a
//! strided view (which matmul refuses unless the stored gradient is made contiguous).

use candle_core::{Device, Result, Tensor, Var};
use candle_nn::VarMap;
use cmr_nn::grad_check::{check, GradCheckConfig};

fn input(shape: &[usize], seed: usize) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|i| ((i * 7919 + seed * 104729) % 97) as f64 / 24.0 - 2.0).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

#[test]
fn a_single_contribution_is_stored_as_it_is() -> Result<()> {
    // `y = a + b` hands one incoming gradient to both operands. Stock candle adds it to fresh zeros for each (two new
    // tensors); the patched store keeps the tensor itself, so both gradients are the same tensor.
    let (a, b) = (Var::from_tensor(&input(&[3, 4], 1)?)?, Var::from_tensor(&input(&[3, 4], 2)?)?);
    let grads = (a.as_tensor() + b.as_tensor())?.sqr()?.sum_all()?.backward()?;
    let (ga, gb) = (grads.get(a.as_tensor()).expect("a"), grads.get(b.as_tensor()).expect("b"));
    assert_eq!(ga.id(), gb.id(), "the patched candle-core (vendor/candle-core) is not in use");
    let expected = ((a.as_tensor() + b.as_tensor())? * 2.0)?;
    assert_eq!(ga.to_vec2::<f64>()?, expected.to_vec2::<f64>()?);
    Ok(())
}

#[test]
fn gradients_of_shared_tensors_and_strided_views_match_finite_differences() -> Result<()> {
    let cfg = GradCheckConfig { max_entries: None, ..Default::default() };
    // x feeds a product, a sum and a matmul: three contributions to accumulate, the first one stored.
    let (x, w) = (input(&[4, 5], 3)?, input(&[5, 3], 4)?);
    let report = check(&[x, w], &VarMap::new(), &cfg, |t| {
        let (x, w) = (&t[0], &t[1]);
        ((x * x)? + x)?.matmul(w)? + x.matmul(w)?.tanh()?
    })?;
    assert!(report.passed(), "{report}");
    // Attention-shaped: heads split (b, t, h, d) → (b, h, t, d) and merged back by transposes. The gradient of the
    // last matmul's output arrives as a transposed view of the incoming one; matmul's backward refuses it unless the
    // stored gradient is made contiguous.
    let (q, k) = (input(&[2, 3, 2, 4], 5)?, input(&[2, 5, 2, 4], 6)?);
    let report = check(&[q, k], &VarMap::new(), &cfg, |t| {
        let (q, k) = (t[0].transpose(1, 2)?.contiguous()?, t[1].transpose(1, 2)?.contiguous()?);
        let scores = q.matmul(&k.t()?)?; // (b, h, t_q, t_k)
        scores.matmul(&k)?.transpose(1, 2)?.narrow(1, 1, 2)
    })?;
    assert!(report.passed(), "{report}");
    Ok(())
}
