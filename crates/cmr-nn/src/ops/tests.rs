//! Tests of the custom ops: forward against candle's own kernels (f32), gradients against central finite differences
//! (f64, `crate::grad_check`, every entry) for every operand of every op, and first-order gradients against candle's
//! backward on shapes large enough to take the banded, multi-threaded paths.

use super::attention as attention_op;
use super::conv::{self, Kind};
use super::im2col::{self, Geometry};
use super::winograd;
use super::{
    adamw_step, adamw_step_from_primitives, attention, attention_from_primitives, conv2d, conv2d_biased, geglu, gelu,
    group_norm, group_norm_silu, layer_norm, linear_biased, silu, softmax_last_dim, upsample_nearest_2x, AdamWStep,
    ConvParams,
};
use crate::grad_check::{self, GradCheckConfig};
use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::VarMap;

/// `(b, c_in, h, w, c_out, k_h, k_w, stride, padding, groups)`.
type Case = (usize, usize, usize, usize, usize, usize, usize, usize, usize, usize);

fn geometry((b, c_in, h, w, c_out, k_h, k_w, stride, padding, groups): Case) -> Geometry {
    Geometry { b, c_in, h, w, c_out, k_h, k_w, stride, padding, groups }
}

fn params(g: &Geometry) -> ConvParams {
    ConvParams { stride: g.stride, padding: g.padding, groups: g.groups }
}

/// Deterministic values in [-1, 1) from a small LCG, so tests need no RNG state.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64, dtype: DType) -> Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_vec(values(n, seed), shape, &Device::Cpu)?.to_dtype(dtype)
}

fn operands(g: &Geometry, dtype: DType) -> Result<(Tensor, Tensor)> {
    let x = tensor(&[g.b, g.c_in, g.h, g.w], 1, dtype)?;
    let w = tensor(&[g.c_out, g.c_in / g.groups, g.k_h, g.k_w], 2, dtype)?;
    Ok((x, w))
}

/// `max |a − b| / max(1, max |b|)`.
fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    let diff = (a - b)?.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let scale = b.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok(diff / scale.max(1.0))
}

/// Checks every entry of every input's gradient against central differences (`crate::grad_check`).
fn check_grads(f: impl Fn(&[Tensor]) -> Result<Tensor>, inputs: &[Tensor]) -> Result<()> {
    let cfg = GradCheckConfig { max_entries: None, ..Default::default() };
    let report = grad_check::check(inputs, &VarMap::new(), &cfg, f)?;
    assert!(report.passed(), "{report}");
    Ok(())
}

/// The largest relative difference, over all `inputs`, between the gradients of `⟨ours(inputs), r⟩` and
/// `⟨reference(inputs), r⟩`, where `r` is a fixed tensor (from `seed`) of the output's shape.
fn gradient_error(
    inputs: &[&Tensor],
    seed: u64,
    ours: impl Fn(&[Tensor]) -> Result<Tensor>,
    reference: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<f64> {
    let vars = inputs.iter().map(|t| Var::from_tensor(t)).collect::<Result<Vec<_>>>()?;
    let t: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let (ours, reference) = (ours(&t)?, reference(&t)?);
    let r = tensor(ours.dims(), seed, ours.dtype())?;
    let ours = (ours * &r)?.sum_all()?.backward()?;
    let reference = (reference * &r)?.sum_all()?.backward()?;
    t.iter().try_fold(0f64, |worst, v| {
        Ok(worst.max(rel_err(ours.get(v).expect("ours"), reference.get(v).expect("reference"))?))
    })
}

/// Small cases covering strides 1/2, padding 0/1/2, groups 1/2, non-square inputs and kernels, a pointwise conv, and
/// 3×3 stride-1 convs with padding 0, 1 and 2 and odd output sizes (the Winograd kernels).
const SMALL: [Case; 7] = [
    (2, 3, 5, 7, 4, 3, 3, 1, 1, 1),
    (1, 3, 6, 5, 2, 3, 3, 1, 0, 1),
    (2, 4, 6, 5, 6, 3, 3, 2, 1, 2),
    (1, 4, 7, 6, 2, 3, 3, 2, 0, 1),
    (2, 4, 5, 8, 4, 2, 3, 1, 0, 2),
    (1, 2, 4, 3, 3, 3, 3, 1, 2, 1),
    (2, 4, 3, 5, 6, 1, 1, 1, 0, 2),
];

/// UNet-sized cases, big enough for several bands per image and parallel work items.
const LARGE: [Case; 4] = [
    (4, 64, 32, 32, 64, 3, 3, 1, 1, 1),
    (3, 32, 33, 29, 64, 3, 3, 2, 1, 2),
    (2, 64, 16, 16, 32, 1, 1, 1, 0, 1),
    (3, 40, 45, 37, 24, 3, 3, 1, 1, 1),
];

/// The Winograd kernels (3×3, stride 1) against im2col + gemm in f64, forward with and without a bias, input and
/// weight gradient, on odd and tiny sizes, padding 0–2, one and several bands of tile rows per image.
#[test]
fn winograd_matches_im2col_f64() {
    let cases: [Case; 7] = [
        (2, 3, 5, 7, 4, 3, 3, 1, 1, 1),
        (1, 2, 1, 1, 3, 3, 3, 1, 1, 1),
        (1, 2, 2, 3, 3, 3, 3, 1, 2, 1),
        (2, 5, 9, 4, 3, 3, 3, 1, 0, 1),
        (1, 1, 3, 3, 1, 3, 3, 1, 0, 1),
        (3, 40, 45, 37, 24, 3, 3, 1, 1, 1),
        (2, 96, 16, 16, 32, 3, 3, 1, 1, 1),
    ];
    let max_diff = |a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
    };
    for case in cases {
        let g = geometry(case);
        assert!(winograd::applies(&g), "{case:?}");
        let x = values(g.input_len(), 1);
        let w = values(g.weight_len(), 2);
        let dy = values(g.output_len(), 3);
        let bias = values(g.b * g.c_out, 4);
        for bias in [None, Some(&bias[..])] {
            let err = max_diff(&winograd::forward(&g, &x, &w, bias), &im2col::forward(&g, &x, &w, bias));
            assert!(err < 1e-12, "{case:?} forward (bias {}): {err}", bias.is_some());
        }
        let err = max_diff(&winograd::grad_input(&g, &dy, &w), &im2col::grad_input(&g, &dy, &w));
        assert!(err < 1e-12, "{case:?} grad input: {err}");
        let err = max_diff(&winograd::grad_weight(&g, &x, &dy), &im2col::grad_weight(&g, &x, &dy));
        assert!(err < 1e-11, "{case:?} grad weight: {err}");
    }
}

/// Winograd takes exactly the 3×3, stride-1, one-group convolutions whose input gradient is one too.
#[test]
fn winograd_applies_only_to_3x3_stride_1_one_group_padding_up_to_2() {
    let base: Case = (1, 4, 8, 8, 4, 3, 3, 1, 1, 1);
    assert!(winograd::applies(&geometry(base)));
    let (b, c_in, h, w, c_out, ..) = base;
    for other in [
        (b, c_in, h, w, c_out, 3, 3, 2, 1, 1),
        (b, c_in, h, w, c_out, 3, 3, 1, 1, 2),
        (b, c_in, h, w, c_out, 3, 3, 1, 3, 1),
        (b, c_in, h, w, c_out, 1, 1, 1, 0, 1),
        (b, c_in, h, w, c_out, 3, 2, 1, 1, 1),
    ] {
        assert!(!winograd::applies(&geometry(other)), "{other:?}");
    }
}

#[test]
fn conv2d_forward_matches_candle_f32() -> Result<()> {
    for case in SMALL.into_iter().chain(LARGE) {
        let g = geometry(case);
        let (x, w) = operands(&g, DType::F32)?;
        let ours = conv2d(&x, &w, params(&g))?;
        let candle = x.conv2d(&w, g.padding, g.stride, 1, g.groups)?;
        assert_eq!(ours.dims(), candle.dims(), "{case:?}");
        let err = rel_err(&ours, &candle)?;
        assert!(err <= 1e-5, "{case:?}: relative error {err}");
    }
    Ok(())
}

#[test]
fn conv2d_gradients_match_finite_differences_f64() -> Result<()> {
    for case in SMALL {
        let g = geometry(case);
        let (x, w) = operands(&g, DType::F64)?;
        check_grads(|t| conv2d(&t[0], &t[1], params(&g)), &[x, w])?;
    }
    Ok(())
}

/// The adjoint ops are what backward runs; their own gradients make second-order autograd correct.
#[test]
fn adjoint_ops_gradients_match_finite_differences_f64() -> Result<()> {
    for case in [SMALL[1], SMALL[2], SMALL[4], SMALL[6]] {
        let g = geometry(case);
        let (x, w) = operands(&g, DType::F64)?;
        let dy = tensor(&[g.b, g.c_out, g.h_out(), g.w_out()], 3, DType::F64)?;
        check_grads(|t| conv::apply(Kind::GradInput, g, &t[0], &t[1]), &[dy.clone(), w])?;
        check_grads(|t| conv::apply(Kind::GradWeight, g, &t[0], &t[1]), &[x, dy])?;
    }
    Ok(())
}

#[test]
fn conv2d_gradients_match_candle_backward_f32() -> Result<()> {
    for case in LARGE {
        let g = geometry(case);
        let (x, w) = operands(&g, DType::F32)?;
        let err = gradient_error(
            &[&x, &w],
            3,
            |t| conv2d(&t[0], &t[1], params(&g)),
            |t| t[0].conv2d(&t[1], g.padding, g.stride, 1, g.groups),
        )?;
        assert!(err <= 1e-5, "{case:?}: relative gradient error {err}");
    }
    Ok(())
}

#[test]
fn conv2d_falls_back_to_candle_for_other_dtypes() -> Result<()> {
    let g = geometry(SMALL[2]);
    let (x, w) = operands(&g, DType::F16)?;
    let ours = conv2d(&x, &w, params(&g))?.to_dtype(DType::F32)?;
    let candle = x.conv2d(&w, g.padding, g.stride, 1, g.groups)?.to_dtype(DType::F32)?;
    assert_eq!(rel_err(&ours, &candle)?, 0.0);
    Ok(())
}

#[test]
fn conv2d_rejects_mismatched_channels() -> Result<()> {
    let x = Tensor::zeros((1, 6, 4, 4), DType::F32, &Device::Cpu)?;
    let w = Tensor::zeros((4, 4, 3, 3), DType::F32, &Device::Cpu)?;
    let err = conv2d(&x, &w, ConvParams { stride: 1, padding: 1, groups: 2 }).unwrap_err().to_string();
    assert!(err.contains("do not fit"), "{err}");
    Ok(())
}

/// `(shape of x, groups)`: rank 3, 4 and 5 inputs, one and several channels per group, one value per channel (the
/// LayerNorm path).
const NORMS: [(&[usize], usize); 5] =
    [(&[2, 4, 7], 2), (&[2, 6, 3, 5], 3), (&[1, 4, 2, 3, 2], 4), (&[3, 4, 5, 4], 1), (&[3, 6, 1], 2)];

fn norm_operands(shape: &[usize], dtype: DType) -> Result<[Tensor; 3]> {
    // An offset mean and a spread scale, so that the normalisation does real work.
    let x = ((tensor(shape, 4, dtype)? * 3.0)? + 0.5)?;
    Ok([x, (tensor(&[shape[1]], 5, dtype)? + 1.0)?, tensor(&[shape[1]], 6, dtype)?])
}

fn candle_group_norm(t: &[Tensor], groups: usize) -> Result<Tensor> {
    candle_nn::GroupNorm::new(t[1].clone(), t[2].clone(), t[0].dim(1)?, groups, 1e-5)?.forward(&t[0])
}

#[test]
fn group_norm_forward_matches_candle_f32() -> Result<()> {
    for (shape, groups) in NORMS.into_iter().chain([(&[4, 64, 64, 64][..], 32)]) {
        let t = norm_operands(shape, DType::F32)?;
        let err = rel_err(&group_norm(&t[0], groups, &t[1], &t[2], 1e-5)?, &candle_group_norm(&t, groups)?)?;
        assert!(err <= 1e-5, "{shape:?}/{groups}: relative error {err}");
    }
    Ok(())
}

#[test]
fn group_norm_gradients_match_finite_differences_f64() -> Result<()> {
    for (shape, groups) in NORMS {
        check_grads(|t| group_norm(&t[0], groups, &t[1], &t[2], 1e-5), &norm_operands(shape, DType::F64)?)?;
    }
    Ok(())
}

#[test]
fn group_norm_gradients_match_candle_backward_f32() -> Result<()> {
    let [x, gamma, beta] = norm_operands(&[4, 64, 32, 32], DType::F32)?;
    let ours = |t: &[Tensor]| group_norm(&t[0], 32, &t[1], &t[2], 1e-5);
    let err = gradient_error(&[&x, &gamma, &beta], 7, ours, |t| candle_group_norm(t, 32))?;
    assert!(err <= 1e-4, "relative gradient error {err}");
    Ok(())
}

#[test]
fn activations_forward_match_candle_f32() -> Result<()> {
    // Rows longer than a work chunk, a ragged tail, and inputs far into both tails of exp.
    for shape in [&[3, 5, 7][..], &[2, 40_000], &[8, 1024, 1024]] {
        let x = (tensor(shape, 8, DType::F32)? * 30.0)?;
        let err = rel_err(&silu(&x)?, &x.silu()?)?;
        assert!(err <= 1e-5, "silu {shape:?}: relative error {err}");
        let err = rel_err(&gelu(&x)?, &x.gelu_erf()?)?;
        assert!(err <= 1e-5, "gelu {shape:?}: relative error {err}");
        let err = rel_err(&softmax_last_dim(&x)?, &candle_nn::ops::softmax_last_dim(&x)?)?;
        assert!(err <= 1e-5, "softmax {shape:?}: relative error {err}");
    }
    Ok(())
}

#[test]
fn activations_gradients_match_finite_differences_f64() -> Result<()> {
    for shape in [&[2, 3, 5][..], &[1, 17]] {
        let x = (tensor(shape, 9, DType::F64)? * 3.0)?;
        check_grads(|t| silu(&t[0]), std::slice::from_ref(&x))?;
        check_grads(|t| gelu(&t[0]), std::slice::from_ref(&x))?;
        check_grads(|t| softmax_last_dim(&t[0]), &[x])?;
    }
    Ok(())
}

/// The f32 kernels (vectorised `exp` and `erfc` approximations) against the f64 ones (libm) in both directions.
#[test]
fn activation_gradients_in_f32_match_f64() -> Result<()> {
    let x64 = (tensor(&[4, 40_000], 20, DType::F64)? * 12.0)?;
    let r64 = tensor(x64.dims(), 21, DType::F64)?;
    for (name, f) in [("silu", silu as fn(&Tensor) -> Result<Tensor>), ("gelu", gelu), ("softmax", softmax_last_dim)] {
        let grad = |dtype: DType| -> Result<Tensor> {
            let x = Var::from_tensor(&x64.to_dtype(dtype)?)?;
            let grads = (f(&x)? * r64.to_dtype(dtype)?)?.sum_all()?.backward()?;
            grads.get(&x).expect("gradient of x").to_dtype(DType::F64)
        };
        let err = rel_err(&grad(DType::F32)?, &grad(DType::F64)?)?;
        assert!(err <= 1e-5, "{name}: relative gradient error {err}");
        let err = rel_err(&f(&x64.to_dtype(DType::F32)?)?.to_dtype(DType::F64)?, &f(&x64)?)?;
        assert!(err <= 1e-5, "{name}: relative error {err}");
    }
    Ok(())
}

/// A conv bias `(c_out)` or per image `(b, c_out)` of a case.
fn biases(g: &Geometry, dtype: DType) -> Result<[Tensor; 2]> {
    Ok([tensor(&[g.c_out], 14, dtype)?, tensor(&[g.b, g.c_out], 15, dtype)?])
}

/// candle's convolution plus a `(c_out)` or `(b, c_out)` bias broadcast over the pixels.
fn candle_biased(x: &Tensor, w: &Tensor, bias: &Tensor, g: &Geometry) -> Result<Tensor> {
    let bias = if bias.rank() == 1 { bias.unsqueeze(0)? } else { bias.clone() };
    x.conv2d(w, g.padding, g.stride, 1, g.groups)?.broadcast_add(&bias.unsqueeze(2)?.unsqueeze(3)?)
}

#[test]
fn conv2d_biased_forward_matches_candle_f32() -> Result<()> {
    for case in SMALL.into_iter().chain(LARGE) {
        let g = geometry(case);
        let (x, w) = operands(&g, DType::F32)?;
        for bias in biases(&g, DType::F32)? {
            let err = rel_err(&conv2d_biased(&x, &w, &bias, params(&g))?, &candle_biased(&x, &w, &bias, &g)?)?;
            assert!(err <= 1e-5, "{case:?}, bias {:?}: relative error {err}", bias.dims());
        }
    }
    Ok(())
}

#[test]
fn conv2d_biased_gradients_match_finite_differences_f64() -> Result<()> {
    for case in [SMALL[0], SMALL[2], SMALL[6]] {
        let g = geometry(case);
        let (x, w) = operands(&g, DType::F64)?;
        for bias in biases(&g, DType::F64)? {
            check_grads(|t| conv2d_biased(&t[0], &t[1], &t[2], params(&g)), &[x.clone(), w.clone(), bias])?;
        }
    }
    Ok(())
}

#[test]
fn conv2d_biased_gradients_match_candle_backward_f32() -> Result<()> {
    for case in LARGE {
        let g = geometry(case);
        let (x, w) = operands(&g, DType::F32)?;
        for bias in biases(&g, DType::F32)? {
            let err = gradient_error(
                &[&x, &w, &bias],
                3,
                |t| conv2d_biased(&t[0], &t[1], &t[2], params(&g)),
                |t| candle_biased(&t[0], &t[1], &t[2], &g),
            )?;
            assert!(err <= 1e-5, "{case:?}, bias {:?}: relative gradient error {err}", bias.dims());
        }
    }
    Ok(())
}

#[test]
fn conv2d_biased_rejects_a_bias_of_the_wrong_shape() -> Result<()> {
    let g = geometry(SMALL[0]);
    let (x, w) = operands(&g, DType::F32)?;
    for shape in [&[g.c_out + 1][..], &[g.b + 1, g.c_out], &[g.b, g.c_out, 1]] {
        let bias = Tensor::zeros(shape, DType::F32, &Device::Cpu)?;
        let err = conv2d_biased(&x, &w, &bias, params(&g)).unwrap_err().to_string();
        assert!(err.contains("expected (c_out) or (b, c_out)"), "{shape:?}: {err}");
    }
    Ok(())
}

#[test]
fn group_norm_silu_matches_candle_and_finite_differences() -> Result<()> {
    for (shape, groups) in NORMS.into_iter().chain([(&[4, 64, 32, 32][..], 32)]) {
        let t = norm_operands(shape, DType::F32)?;
        let err =
            rel_err(&group_norm_silu(&t[0], groups, &t[1], &t[2], 1e-5)?, &candle_group_norm(&t, groups)?.silu()?)?;
        assert!(err <= 1e-5, "{shape:?}/{groups}: relative error {err}");
    }
    for (shape, groups) in NORMS {
        check_grads(|t| group_norm_silu(&t[0], groups, &t[1], &t[2], 1e-5), &norm_operands(shape, DType::F64)?)?;
    }
    Ok(())
}

#[test]
fn group_norm_silu_gradients_match_candle_backward_f32() -> Result<()> {
    let [x, gamma, beta] = norm_operands(&[4, 64, 32, 32], DType::F32)?;
    let ours = |t: &[Tensor]| group_norm_silu(&t[0], 32, &t[1], &t[2], 1e-5);
    let err = gradient_error(&[&x, &gamma, &beta], 7, ours, |t| candle_group_norm(t, 32)?.silu())?;
    assert!(err <= 1e-4, "relative gradient error {err}");
    Ok(())
}

/// LayerNorm from candle primitives: `(x − mean) / √(var + ε) · γ + β` over the last dimension.
fn candle_layer_norm(t: &[Tensor]) -> Result<Tensor> {
    let centred = t[0].broadcast_sub(&t[0].mean_keepdim(candle_core::D::Minus1)?)?;
    let var = centred.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    centred.broadcast_div(&(var + 1e-5)?.sqrt()?)?.broadcast_mul(&t[1])?.broadcast_add(&t[2])
}

/// `(x, γ, β)` for a LayerNorm over the last dimension of `shape`.
fn layer_norm_operands(shape: &[usize], dtype: DType) -> Result<[Tensor; 3]> {
    let size = shape[shape.len() - 1];
    let x = ((tensor(shape, 16, dtype)? * 3.0)? + 0.5)?;
    Ok([x, (tensor(&[size], 17, dtype)? + 1.0)?, tensor(&[size], 18, dtype)?])
}

#[test]
fn layer_norm_matches_candle_primitives_and_finite_differences() -> Result<()> {
    for shape in [&[2, 5, 7][..], &[3, 4], &[8, 256, 128]] {
        let t = layer_norm_operands(shape, DType::F32)?;
        let err = rel_err(&layer_norm(&t[0], &t[1], &t[2], 1e-5)?, &candle_layer_norm(&t)?)?;
        assert!(err <= 1e-5, "{shape:?}: relative error {err}");
    }
    for shape in [&[2, 3, 5][..], &[4, 6]] {
        check_grads(|t| layer_norm(&t[0], &t[1], &t[2], 1e-5), &layer_norm_operands(shape, DType::F64)?)?;
    }
    Ok(())
}

#[test]
fn layer_norm_gradients_match_candle_backward_f32() -> Result<()> {
    let [x, gamma, beta] = layer_norm_operands(&[8, 256, 128], DType::F32)?;
    let ours = |t: &[Tensor]| layer_norm(&t[0], &t[1], &t[2], 1e-5);
    let err = gradient_error(&[&x, &gamma, &beta], 19, ours, candle_layer_norm)?;
    assert!(err <= 1e-4, "relative gradient error {err}");
    Ok(())
}

/// Nearest ×2 upsampling from reshape + broadcast, which candle differentiates by summing the broadcast dimensions.
fn broadcast_upsample(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    x.reshape((b, c, h, 1, w, 1))?.broadcast_as((b, c, h, 2, w, 2))?.reshape((b, c, 2 * h, 2 * w))
}

#[test]
fn upsample_matches_broadcast_in_both_directions_and_finite_differences() -> Result<()> {
    for shape in [[2, 3, 4, 5], [8, 64, 32, 32]] {
        let x = tensor(&shape, 22, DType::F32)?;
        assert_eq!(rel_err(&upsample_nearest_2x(&x)?, &broadcast_upsample(&x)?)?, 0.0, "{shape:?}");
        let err = gradient_error(&[&x], 23, |t| upsample_nearest_2x(&t[0]), |t| broadcast_upsample(&t[0]))?;
        assert!(err <= 1e-6, "{shape:?}: relative gradient error {err}");
    }
    // A non-linear loss, so that the gradient depends on x.
    let x = tensor(&[1, 2, 3, 2], 24, DType::F64)?;
    check_grads(|t| upsample_nearest_2x(&t[0])?.sqr(), &[x])
}

/// A linear layer from candle's matmul and broadcast add.
fn candle_linear(t: &[Tensor]) -> Result<Tensor> {
    t[0].matmul(&t[1].t()?)?.broadcast_add(&t[2])
}

#[test]
fn linear_biased_matches_candle_and_finite_differences() -> Result<()> {
    // 1000 rows take several row blocks of the parallel bias gradient; 3 rows one partial block.
    for (rows, k, n) in [(1000, 40, 48), (3, 4, 5)] {
        let x = tensor(&[rows, k], 25, DType::F32)?;
        let (w, bias) = (tensor(&[n, k], 26, DType::F32)?, tensor(&[n], 27, DType::F32)?);
        let t = [x.clone(), w.clone(), bias.clone()];
        let err = rel_err(&linear_biased(&x, &w, &bias)?, &candle_linear(&t)?)?;
        assert!(err <= 1e-6, "{rows}×{k}→{n}: relative error {err}");
        let err = gradient_error(&[&x, &w, &bias], 28, |t| linear_biased(&t[0], &t[1], &t[2]), candle_linear)?;
        assert!(err <= 1e-5, "{rows}×{k}→{n}: relative gradient error {err}");
    }
    // A non-linear loss, so that every gradient depends on the operands.
    let t = [tensor(&[70, 3], 29, DType::F64)?, tensor(&[4, 3], 30, DType::F64)?, tensor(&[4], 31, DType::F64)?];
    check_grads(|t| linear_biased(&t[0], &t[1], &t[2])?.sqr(), &t)
}

#[test]
fn linear_biased_rejects_operands_that_do_not_fit() -> Result<()> {
    let x = tensor(&[4, 3], 32, DType::F32)?;
    let w = tensor(&[5, 3], 33, DType::F32)?;
    for (w, bias) in [(&w, tensor(&[4], 34, DType::F32)?), (&w.t()?, tensor(&[5], 35, DType::F32)?)] {
        let err = linear_biased(&x, w, &bias).unwrap_err();
        assert!(err.to_string().contains("expected (rows, k), (n, k), (n)"), "{err}");
    }
    Ok(())
}

#[test]
fn adamw_step_matches_candle_primitives_bit_for_bit() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        // 40 000 values: several parallel chunks and a partial one.
        let theta = tensor(&[200, 200], 40, dtype)?;
        let (fused, reference) = (Var::from_tensor(&theta)?, Var::from_tensor(&theta)?);
        let zeros = theta.zeros_like()?;
        let (mut fused_mv, mut reference_mv) = ((zeros.clone(), zeros.clone()), (zeros.clone(), zeros));
        for t in 1..=3 {
            // Gradients of three magnitudes, so that ε and the bias corrections matter differently.
            let g = (tensor(&[200, 200], 40 + t as u64, dtype)? * 10f64.powi(2 * t - 4))?;
            let s = AdamWStep {
                betas: (0.9, 0.999),
                decay: 1.0 - 1e-3 * 0.01,
                step_size: 1e-3 / (1.0 - 0.9f64.powi(t)),
                inv_sqrt_bias_correction2: 1.0 / (1.0 - 0.999f64.powi(t)).sqrt(),
                eps: 1e-8,
            };
            fused_mv = adamw_step(&fused, &g, &fused_mv.0, &fused_mv.1, s)?;
            reference_mv = adamw_step_from_primitives(&reference, &g, &reference_mv.0, &reference_mv.1, s)?;
        }
        let values = |t: &Tensor| t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>();
        assert_ne!(values(fused.as_tensor())?, values(&theta)?, "{dtype:?}: the parameter moved");
        for (what, a, b) in [
            ("θ", fused.as_tensor(), reference.as_tensor()),
            ("m", &fused_mv.0, &reference_mv.0),
            ("v", &fused_mv.1, &reference_mv.1),
        ] {
            assert_eq!(values(a)?, values(b)?, "{dtype:?}: {what}");
        }
    }
    Ok(())
}

/// GEGLU from `narrow`, the fused GELU and `mul`: the computation the fused op replaces.
fn composed_geglu(x: &Tensor) -> Result<Tensor> {
    let n = x.dim(candle_core::D::Minus1)? / 2;
    x.narrow(candle_core::D::Minus1, 0, n)?.mul(&gelu(&x.narrow(candle_core::D::Minus1, n, n)?)?)
}

#[test]
fn geglu_matches_its_composition_bit_for_bit_and_finite_differences() -> Result<()> {
    // 2 × 600 rows of 2·96: several work items; the same f32 operations in the same order, so equal values.
    let x = (tensor(&[2, 600, 192], 36, DType::F32)? * 3.0)?;
    assert_eq!(rel_err(&geglu(&x)?, &composed_geglu(&x)?)?, 0.0);
    let err = gradient_error(&[&x], 37, |t| geglu(&t[0]), |t| composed_geglu(&t[0]))?;
    assert_eq!(err, 0.0, "gradients differ from the composition's");
    check_grads(|t| geglu(&t[0]), &[(tensor(&[3, 2, 8], 38, DType::F64)? * 3.0)?])?;
    let odd = geglu(&tensor(&[2, 5], 39, DType::F32)?).unwrap_err();
    assert!(odd.to_string().contains("must be even"), "{odd}");
    Ok(())
}

/// `(b, n, m, heads, d)`: self-attention over more than one block of queries, cross-attention over a few keys, one
/// head.
const ATTENTIONS: [(usize, usize, usize, usize, usize); 3] = [(2, 70, 70, 3, 5), (3, 9, 4, 2, 8), (1, 130, 17, 1, 6)];

/// Queries `(b, n, h·d)` and keys and values `(b, m, h·d)` as views into one `(b, m, 2·h·d)` tensor (a fused
/// key-value projection), so the ops read strided rows.
fn attention_operands((b, n, m, heads, d): (usize, usize, usize, usize, usize), dtype: DType) -> Result<[Tensor; 3]> {
    let inner = heads * d;
    let q = (tensor(&[b, n, inner], 11, dtype)? * 2.0)?;
    let kv = (tensor(&[b, m, 2 * inner], 12, dtype)? * 2.0)?;
    Ok([q, kv.narrow(2, 0, inner)?, kv.narrow(2, inner, inner)?])
}

#[test]
fn fused_attention_matches_its_composition() -> Result<()> {
    for case in ATTENTIONS {
        let (b, n, m, heads, head_dim) = case;
        for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::F64, 1e-12)] {
            let [q, k, v] = attention_operands(case, dtype)?;
            let fused = q.apply_op3_no_bwd(
                &k,
                &v,
                &attention_op::FusedAttention(attention_op::Sizes { b, n, m, heads, head_dim }),
            )?;
            let err = rel_err(&fused, &attention_from_primitives(&q, &k, &v, heads, None)?)?;
            assert!(err <= tolerance, "{case:?} {dtype:?}: relative error {err}");
            // Without a mask, `attention` takes the fused op.
            let to_vec = |t: &Tensor| t.to_dtype(DType::F64)?.to_vec3::<f64>();
            assert_eq!(to_vec(&attention(&q, &k, &v, heads, None)?)?, to_vec(&fused)?);
        }
    }
    Ok(())
}

#[test]
fn fused_attention_gradients_match_candle_backward_f32() -> Result<()> {
    for case in ATTENTIONS {
        let [q, k, v] = attention_operands(case, DType::F32)?;
        let heads = case.3;
        let err = gradient_error(
            &[&q, &k, &v],
            13,
            |t| attention(&t[0], &t[1], &t[2], heads, None),
            |t| attention_from_primitives(&t[0], &t[1], &t[2], heads, None),
        )?;
        assert!(err <= 1e-5, "{case:?}: relative gradient error {err}");
        // Keys and values as views of one trained tensor (the ViT's fused key-value projection).
        let inner = heads * case.4;
        let kv = Tensor::cat(&[&k, &v], 2)?;
        let split =
            |t: &[Tensor]| -> Result<[Tensor; 2]> { Ok([t[1].narrow(2, 0, inner)?, t[1].narrow(2, inner, inner)?]) };
        let err = gradient_error(
            &[&q, &kv],
            14,
            |t| split(t).and_then(|[k, v]| attention(&t[0], &k, &v, heads, None)),
            |t| split(t).and_then(|[k, v]| attention_from_primitives(&t[0], &k, &v, heads, None)),
        )?;
        assert!(err <= 1e-5, "{case:?}, strided keys and values: relative gradient error {err}");
    }
    Ok(())
}

#[test]
fn attention_gradients_match_finite_differences_with_and_without_a_mask() -> Result<()> {
    let (b, m) = (2, 4);
    let mask = Tensor::from_vec(vec![1u8, 1, 0, 1, 0, 0, 0, 0], (b, m), &Device::Cpu)?;
    for key_mask in [None, Some(&mask)] {
        let [q, k, v] = attention_operands((b, 3, m, 2, 3), DType::F64)?;
        let operands = [q, k.contiguous()?, v.contiguous()?];
        check_grads(|t| attention(&t[0], &t[1], &t[2], 2, key_mask), &operands)?;
    }
    Ok(())
}

#[test]
fn attention_operands_that_do_not_fit_the_heads_are_an_error() -> Result<()> {
    let [q, k, v] = attention_operands((1, 4, 3, 2, 3), DType::F32)?;
    let err = attention(&q, &k, &v, 4, None).expect_err("6 channels in 4 heads");
    assert!(err.to_string().contains("do not fit 4 heads"), "{err}");
    let err = attention(&q, &k.narrow(1, 0, 2)?, &v, 2, None).expect_err("2 keys, 3 values");
    assert!(err.to_string().contains("do not fit 2 heads"), "{err}");
    Ok(())
}
