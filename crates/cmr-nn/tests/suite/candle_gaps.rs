//! Proof that the problems this crate works around are real in candle 0.11.1 (issue 3): each test runs candle's own
//! operation through the same finite-difference harness as the layers and shows the wrong or missing gradient,
//! next to this crate's replacement passing the same check. When a candle upgrade fixes one, its test fails here:
//! then the workaround can go.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use cmr_nn::grad_check::{check, randomize, GradCheckConfig};
use cmr_nn::layers::{gelu_erf, gelu_tanh, softmax, upsample_nearest_2x, LayerNorm, LayerNormConfig};

fn input(shape: &[usize]) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    // distinct, irregular values (no ties for max-pooling)
    let values: Vec<f64> = (0..n).map(|i| ((i * 7919) % 101) as f64 / 25.0 - 2.0).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

#[test]
fn fused_softmax_last_dim_records_no_gradient() -> Result<()> {
    let x = input(&[3, 7])?;
    let fused = check(std::slice::from_ref(&x), &VarMap::new(), &GradCheckConfig::default(), |xs| {
        candle_nn::ops::softmax_last_dim(&xs[0])
    })?;
    let t = &fused.tensors[0];
    assert!(t.analytic_missing && !fused.passed(), "{fused}");
    assert!(t.max_abs_numeric > 0.1, "the true gradient is far from zero:\n{fused}");
    let ours = check(&[x], &VarMap::new(), &GradCheckConfig::default(), |xs| softmax(&xs[0], 1))?;
    assert!(ours.passed(), "{ours}");
    Ok(())
}

#[test]
fn fused_layer_norm_and_rms_norm_record_no_gradient() -> Result<()> {
    // The fused kernels exist for f32 / f16 / bf16 only, so they run in f32 between two casts (whose backward is
    // exact); the numeric gradient is then coarse (step 1e-3) but plainly nonzero, while backward records nothing.
    let x = input(&[4, 6])?;
    let alpha = input(&[6])?.to_dtype(DType::F32)?;
    let beta = (&alpha * 0.5)?;
    let coarse = GradCheckConfig { step: 1e-3, ..Default::default() };
    type Op<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;
    let fused: [(&str, Op); 2] = [
        ("layer_norm", Box::new(|x| candle_nn::ops::layer_norm(x, &alpha, &beta, 1e-5))),
        ("rms_norm", Box::new(|x| candle_nn::ops::rms_norm(x, &alpha, 1e-5))),
    ];
    for (name, op) in &fused {
        let report = check(std::slice::from_ref(&x), &VarMap::new(), &coarse, |xs| {
            op(&xs[0].to_dtype(DType::F32)?)?.to_dtype(DType::F64)
        })?;
        let t = &report.tensors[0];
        assert!(t.analytic_missing && !t.passed && t.max_abs_numeric > 0.1, "{name}:\n{report}");
    }

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu);
    let ours = LayerNorm::new(vb, 6, LayerNormConfig::default())?;
    randomize(&varmap, 1, 1.0)?;
    let report = check(&[x], &varmap, &GradCheckConfig::default(), |xs| ours.forward(&xs[0]))?;
    assert!(report.passed(), "{report}");
    Ok(())
}

#[test]
fn upsample_nearest2d_backward_overwrites_other_gradients() -> Result<()> {
    // y = Σ upsample(x)² + Σ x³: x feeds two branches. candle's UpsampleNearest2D backward assigns its gradient
    // (`*sum_grad = conv_sum`) and loses the x³ branch (3x² per entry): measured max |error| 7.5 against gradients
    // up to 13 here.
    let x = input(&[1, 2, 3, 3])?;
    let loss = |up: &Tensor, x: &Tensor| -> Result<Tensor> { up.sqr()?.sum_all()? + x.powf(3.0)?.sum_all()? };
    let candle = check(std::slice::from_ref(&x), &VarMap::new(), &GradCheckConfig::default(), |xs| {
        loss(&xs[0].upsample_nearest2d(6, 6)?, &xs[0])
    })?;
    assert!(!candle.passed() && candle.tensors[0].max_abs_error > 1.0, "{candle}");
    let ours =
        check(&[x], &VarMap::new(), &GradCheckConfig::default(), |xs| loss(&upsample_nearest_2x(&xs[0])?, &xs[0]))?;
    assert!(ours.passed(), "{ours}");
    Ok(())
}

#[test]
fn fused_gelu_backward_uses_six_digit_constants() -> Result<()> {
    // candle's Gelu / GeluErf backward hard-codes 0.797885, 0.0356774, 0.398942 (backprop.rs). Measured here: max
    // |error| 2.3e-7 (tanh) and 1.6e-7 (erf) for gradients up to 1.1, i.e. up to 4.5e-5 relative on small entries —
    // harmless in f32 training, but above the tolerance (1e-6 relative) this crate holds every layer to in f64.
    let x = input(&[5, 5])?;
    let cfg = GradCheckConfig::default();
    let tanh = check(std::slice::from_ref(&x), &VarMap::new(), &cfg, |xs| xs[0].gelu())?;
    let erf = check(std::slice::from_ref(&x), &VarMap::new(), &cfg, |xs| xs[0].gelu_erf())?;
    assert!(!tanh.passed() && !erf.passed(), "{tanh}\n{erf}");
    assert!(tanh.tensors[0].max_abs_error < 1e-4 && erf.tensors[0].max_abs_error < 1e-4, "small, but present");
    for f in [gelu_tanh, gelu_erf] {
        let ours = check(std::slice::from_ref(&x), &VarMap::new(), &cfg, |xs| f(&xs[0]))?;
        assert!(ours.passed(), "{ours}");
    }
    Ok(())
}

#[test]
fn conv2d_backward_fails_on_stride_two_when_height_and_width_parity_differ() -> Result<()> {
    // Op::Conv2D's backward derives the transposed convolution's output padding from the height only and applies it
    // to the width too: a 7×6 input at stride 2 has no valid backward in candle. `cmr_nn::ops::conv2d` (and so every
    // layer here) runs CPU f32/f64 through its own kernels, checked on these shapes in tests/suite/layer_gradients.rs.
    let x = candle_core::Var::from_tensor(&input(&[1, 2, 7, 6])?)?;
    let w = input(&[3, 2, 3, 3])?;
    let y = x.as_tensor().conv2d(&w, 1, 2, 1, 1)?;
    let err = y.sum_all()?.backward().expect_err("candle 0.11.1 cannot differentiate this convolution");
    assert!(err.to_string().contains("shape mismatch"), "{err}");
    Ok(())
}

#[test]
fn max_pool2d_backward_is_scaled_by_the_window_size() -> Result<()> {
    // d(Σ maxpool(x))/dx is 1 at each window's maximum; candle 0.11.1 gives 1/k² (0.25 for 2×2 windows).
    let x = candle_core::Var::from_tensor(&input(&[1, 1, 4, 4])?)?;
    let grads = x.as_tensor().max_pool2d(2)?.sum_all()?.backward()?;
    let g = grads.get(x.as_tensor()).expect("gradient").flatten_all()?.to_vec1::<f64>()?;
    let largest = g.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(largest, 0.25, "gradient at the maxima: {g:?}");
    Ok(())
}
