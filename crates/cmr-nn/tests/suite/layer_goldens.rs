//! Forward values of every layer against PyTorch / diffusers (issue 3, item 1).
//!
//! The references live in `tests/goldens/*.json`, written by `scripts/torch-goldens.py` (run it to regenerate; torch is
//! not needed here). Each case is built through a `VarMap`, whose tensor names and shapes must equal the upstream
//! module's `state_dict` exactly — so the test proves the naming as well as the numbers — then loaded with the
//! upstream weights and run in f64 (within 1e-9) and in f32 (within 1e-5), relative to `max(1, |expected|)`.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use cmr_nn::layers::*;
use serde::Deserialize;
use serde_json::Value;

const DTYPES: [DType; 2] = [DType::F64, DType::F32];

#[derive(Deserialize)]
struct Array {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl Array {
    fn tensor(&self, dtype: DType) -> Result<Tensor> {
        Tensor::from_vec(self.data.clone(), self.shape.as_slice(), &Device::Cpu)?.to_dtype(dtype)
    }
}

#[derive(Deserialize)]
struct Case {
    name: String,
    config: Value,
    inputs: BTreeMap<String, Array>,
    params: BTreeMap<String, Array>,
    outputs: BTreeMap<String, Array>,
}

#[derive(Deserialize)]
struct GoldenFile {
    cases: Vec<Case>,
}

fn cases(family: &str) -> Vec<Case> {
    let path = format!("{}/tests/goldens/{family}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}; run scripts/torch-goldens.py"));
    let file: GoldenFile = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(!file.cases.is_empty(), "{path} has no cases");
    file.cases
}

fn tolerance(dtype: DType) -> f64 {
    if dtype == DType::F64 {
        1e-9
    } else {
        1e-5
    }
}

impl Case {
    fn usize(&self, key: &str) -> usize {
        self.config[key].as_u64().unwrap_or_else(|| panic!("{}: config.{key} is not an integer", self.name)) as usize
    }

    fn f64(&self, key: &str) -> f64 {
        self.config[key].as_f64().unwrap_or_else(|| panic!("{}: config.{key} is not a number", self.name))
    }

    fn opt_usize(&self, key: &str) -> Option<usize> {
        self.config[key].as_u64().map(|v| v as usize)
    }

    fn flag(&self, key: &str) -> bool {
        self.config[key].as_bool().unwrap_or_else(|| panic!("{}: config.{key} is not a bool", self.name))
    }

    fn input(&self, name: &str, dtype: DType) -> Result<Tensor> {
        self.inputs.get(name).unwrap_or_else(|| panic!("{}: no input {name}", self.name)).tensor(dtype)
    }

    /// Builds a layer through a fresh `VarMap`, checks that it created exactly the upstream tensors (names and
    /// shapes), and loads the upstream values into it.
    fn build<L>(&self, dtype: DType, make: impl FnOnce(VarBuilder) -> Result<L>) -> Result<L> {
        let varmap = VarMap::new();
        let layer = make(VarBuilder::from_varmap(&varmap, dtype, &Device::Cpu))?;
        let data = varmap.data().lock().expect("varmap lock");
        let mut ours: Vec<(String, Vec<usize>)> = data.iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect();
        ours.sort();
        let upstream: Vec<(String, Vec<usize>)> =
            self.params.iter().map(|(k, v)| (k.clone(), v.shape.clone())).collect();
        assert_eq!(ours, upstream, "{}: tensor names/shapes differ from the upstream state_dict", self.name);
        for (name, var) in data.iter() {
            var.set(&self.params[name].tensor(dtype)?)?;
        }
        Ok(layer)
    }

    fn assert_close(&self, output: &str, got: &Tensor, dtype: DType) -> Result<()> {
        let expected = &self.outputs[output];
        assert_eq!(got.dims(), expected.shape.as_slice(), "{} {output}: shape", self.name);
        assert_eq!(got.dtype(), dtype, "{} {output}: dtype", self.name);
        let got: Vec<f64> = got.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let tol = tolerance(dtype);
        for (i, (g, e)) in got.iter().zip(&expected.data).enumerate() {
            assert!(
                (g - e).abs() <= tol * e.abs().max(1.0),
                "{} {output} ({dtype:?}) entry {i}: got {g}, torch {e} (|diff| {:.3e} > {tol:e})",
                self.name,
                (g - e).abs()
            );
        }
        Ok(())
    }
}

#[test]
fn linear_matches_torch() -> Result<()> {
    for case in cases("linear") {
        for dtype in DTYPES {
            let cfg = LinearConfig { bias: case.flag("bias") };
            let layer = case.build(dtype, |vb| Linear::new(vb, case.usize("in"), case.usize("out"), cfg))?;
            case.assert_close("y", &layer.forward(&case.input("x", dtype)?)?, dtype)?;
        }
    }
    Ok(())
}

#[test]
fn convolutions_match_torch_and_diffusers() -> Result<()> {
    for case in cases("conv") {
        for dtype in DTYPES {
            let x = case.input("x", dtype)?;
            let (cin, cout) = (case.usize("in"), case.usize("out"));
            let y = match case.name.as_str() {
                "conv2d_3x3_pad1" | "conv2d_stride2_groups2" | "conv2d_1x1_no_bias" => {
                    let cfg = Conv2dConfig {
                        stride: case.usize("stride"),
                        padding: case.usize("padding"),
                        groups: case.usize("groups"),
                        bias: case.flag("bias"),
                        init: None,
                    };
                    case.build(dtype, |vb| Conv2d::new(vb, cin, cout, case.usize("kernel"), cfg))?.forward(&x)?
                }
                "downsample2d" | "downsample2d_pad0" => {
                    let cfg = Downsample2dConfig { padding: case.usize("padding"), ..Default::default() };
                    case.build(dtype, |vb| Downsample2d::new(vb, cin, cout, cfg))?.forward(&x)?
                }
                "upsample2d" => {
                    case.build(dtype, |vb| Upsample2d::new(vb, cin, cout, Default::default()))?.forward(&x)?
                }
                other => panic!("conv.json: no test for case {other}"),
            };
            case.assert_close("y", &y, dtype)?;
        }
    }
    Ok(())
}

#[test]
fn norms_match_torch() -> Result<()> {
    for case in cases("norm") {
        for dtype in DTYPES {
            let x = case.input("x", dtype)?;
            let y = match case.name.as_str() {
                "group_norm" => {
                    let cfg = GroupNormConfig { eps: case.f64("eps"), affine: true };
                    case.build(dtype, |vb| GroupNorm::new(vb, case.usize("groups"), case.usize("channels"), cfg))?
                        .forward(&x)?
                }
                "layer_norm" | "layer_norm_no_affine" => {
                    let cfg = LayerNormConfig { eps: case.f64("eps"), affine: case.flag("affine") };
                    case.build(dtype, |vb| LayerNorm::new(vb, case.usize("size"), cfg))?.forward(&x)?
                }
                other => panic!("norm.json: no test for case {other}"),
            };
            case.assert_close("y", &y, dtype)?;
        }
    }
    Ok(())
}

#[test]
fn activations_and_softmax_match_torch() -> Result<()> {
    let [case] = <[Case; 1]>::try_from(cases("activation")).unwrap_or_else(|_| panic!("one activation case"));
    for dtype in DTYPES {
        let x = case.input("x", dtype)?;
        case.assert_close("silu", &Activation::Silu.forward(&x)?, dtype)?;
        case.assert_close("gelu", &Activation::Gelu.forward(&x)?, dtype)?;
        case.assert_close("gelu_tanh", &Activation::GeluTanh.forward(&x)?, dtype)?;
        case.assert_close("softmax", &softmax(&case.input("logits", dtype)?, 1)?, dtype)?;
    }
    Ok(())
}

#[test]
fn attention_matches_diffusers_and_qkv_reference() -> Result<()> {
    for case in cases("attention") {
        for dtype in DTYPES {
            let x = case.input("x", dtype)?;
            let cfg = AttentionConfig {
                heads: case.usize("heads"),
                head_dim: case.usize("head_dim"),
                cross_attention_dim: case.opt_usize("cross_attention_dim"),
                ..Default::default()
            };
            let y = match case.name.as_str() {
                "self_attention_diffusers" => {
                    case.build(dtype, |vb| Attention::new(vb, case.usize("query_dim"), cfg))?.forward(&x, None, None)?
                }
                "cross_attention_diffusers_masked" => {
                    let attn = case.build(dtype, |vb| Attention::new(vb, case.usize("query_dim"), cfg))?;
                    attn.forward(&x, Some(&case.input("context", dtype)?), Some(&case.input("mask", dtype)?))?
                }
                "cross_attention_qkv_masked" => {
                    let cfg = AttentionConfig { names: ProjectionNames::QKvProj, qkv_bias: true, ..cfg };
                    let attn = case.build(dtype, |vb| Attention::new(vb, case.usize("query_dim"), cfg))?;
                    attn.forward(&x, Some(&case.input("context", dtype)?), Some(&case.input("mask", dtype)?))?
                }
                other => panic!("attention.json: no test for case {other}"),
            };
            case.assert_close("y", &y, dtype)?;
        }
    }
    Ok(())
}

#[test]
fn embeddings_match_diffusers() -> Result<()> {
    for case in cases("embedding") {
        for dtype in DTYPES {
            let x_name = if case.name.starts_with("timesteps") { "t" } else { "x" };
            let x = case.input(x_name, dtype)?;
            match case.name.as_str() {
                "timesteps_unet" | "timesteps_default_odd" => {
                    let cfg = TimestepsConfig {
                        flip_sin_to_cos: case.flag("flip_sin_to_cos"),
                        downscale_freq_shift: case.f64("downscale_freq_shift"),
                        ..Default::default()
                    };
                    let y = Timesteps::new(case.usize("dim"), cfg)?.forward(&x)?;
                    if dtype == DType::F64 {
                        case.assert_close("y", &y, dtype)?;
                    } else {
                        assert_timesteps_f32(&case, &x, &y)?;
                    }
                }
                "timestep_embedding" => {
                    let (cin, width) = (case.usize("in"), case.usize("time_embed_dim"));
                    let layer = case.build(dtype, |vb| TimestepEmbedding::new(vb, cin, width, Default::default()))?;
                    case.assert_close("y", &layer.forward(&x)?, dtype)?;
                }
                "patch_embed_3d" => {
                    let cfg = PatchEmbed3dConfig {
                        patch_size: case.usize("patch_size"),
                        patch_depth: case.usize("patch_depth"),
                        bias: true,
                    };
                    let layer =
                        case.build(dtype, |vb| PatchEmbed3d::new(vb, case.usize("in"), case.usize("embed_dim"), cfg))?;
                    case.assert_close("y", &layer.forward(&x)?, dtype)?;
                }
                other => panic!("embedding.json: no test for case {other}"),
            }
        }
    }
    Ok(())
}

/// diffusers computes the timestep embedding in f32 only. There `sin(t·f)` carries the rounding of its argument,
/// `|t·f|·2⁻²⁴` ≈ 6e-5 at t = 999, whatever the implementation, so each row is allowed 1e-5 plus two ulps of its
/// largest argument (`t`, as `f ≤ 1`); the f64 comparison above holds every row to 1e-9.
fn assert_timesteps_f32(case: &Case, t: &Tensor, y: &Tensor) -> Result<()> {
    let expected = &case.outputs["y_f32"];
    assert_eq!(y.dims(), expected.shape.as_slice());
    let ts: Vec<f64> = t.to_dtype(DType::F64)?.to_vec1()?;
    let got: Vec<Vec<f64>> = y.to_dtype(DType::F64)?.to_vec2()?;
    let width = expected.shape[1];
    for (row, (t, got_row)) in ts.iter().zip(&got).enumerate() {
        let tol = 1e-5 + 2.0 * t.abs() * f64::from(f32::EPSILON);
        for (j, g) in got_row.iter().enumerate() {
            let e = expected.data[row * width + j];
            assert!((g - e).abs() <= tol, "{} f32 t={t} column {j}: got {g}, diffusers {e}", case.name);
        }
    }
    Ok(())
}

#[test]
fn resnet_blocks_match_diffusers() -> Result<()> {
    for case in cases("resnet") {
        for dtype in DTYPES {
            let cfg = ResnetBlock2dConfig {
                groups: case.usize("groups"),
                temb_channels: case.opt_usize("temb_channels"),
                output_scale_factor: case.f64("output_scale_factor"),
                ..Default::default()
            };
            let block = case.build(dtype, |vb| ResnetBlock2d::new(vb, case.usize("in"), case.usize("out"), cfg))?;
            let temb = match case.name.as_str() {
                "resnet_block_temb" => Some(case.input("temb", dtype)?),
                "resnet_block_no_temb" => None,
                other => panic!("resnet.json: no test for case {other}"),
            };
            case.assert_close("y", &block.forward(&case.input("x", dtype)?, temb.as_ref())?, dtype)?;
        }
    }
    Ok(())
}

#[test]
fn transformers_match_diffusers() -> Result<()> {
    for case in cases("transformer") {
        for dtype in DTYPES {
            let x = case.input("x", dtype)?;
            let context = case.inputs.contains_key("context").then(|| case.input("context", dtype)).transpose()?;
            let mask = case.inputs.contains_key("mask").then(|| case.input("mask", dtype)).transpose()?;
            let y = match case.name.as_str() {
                "basic_transformer_block_cross_masked" => {
                    let cfg = BasicTransformerBlockConfig {
                        heads: case.usize("heads"),
                        head_dim: case.usize("head_dim"),
                        cross_attention_dim: case.opt_usize("cross_attention_dim"),
                        ..Default::default()
                    };
                    let block = case.build(dtype, |vb| BasicTransformerBlock::new(vb, case.usize("dim"), cfg))?;
                    block.forward(&x, context.as_ref(), mask.as_ref())?
                }
                "feed_forward_gelu_approximate" => {
                    let cfg = FeedForwardConfig {
                        mult: case.usize("mult"),
                        activation: FeedForwardActivation::GeluApproximate,
                    };
                    case.build(dtype, |vb| FeedForward::new(vb, case.usize("dim"), cfg))?.forward(&x)?
                }
                "transformer_2d_conv_cross" | "transformer_2d_linear_self" => {
                    let cfg = Transformer2dModelConfig {
                        num_layers: case.usize("layers"),
                        norm_num_groups: case.usize("groups"),
                        use_linear_projection: case.flag("linear"),
                        block: BasicTransformerBlockConfig {
                            heads: case.usize("heads"),
                            head_dim: case.usize("head_dim"),
                            cross_attention_dim: case.opt_usize("cross_attention_dim"),
                            ..Default::default()
                        },
                    };
                    let model = case.build(dtype, |vb| Transformer2dModel::new(vb, case.usize("in"), cfg))?;
                    model.forward(&x, context.as_ref(), mask.as_ref())?
                }
                other => panic!("transformer.json: no test for case {other}"),
            };
            case.assert_close("y", &y, dtype)?;
        }
    }
    Ok(())
}

#[test]
fn vit_block_matches_reference() -> Result<()> {
    for case in cases("vit") {
        for dtype in DTYPES {
            let cfg =
                ViTBlockConfig { heads: case.usize("heads"), mlp_ratio: case.f64("mlp_ratio"), ..Default::default() };
            let block = case.build(dtype, |vb| ViTBlock::new(vb, case.usize("dim"), cfg))?;
            case.assert_close("y", &block.forward(&case.input("x", dtype)?)?, dtype)?;
        }
    }
    Ok(())
}
