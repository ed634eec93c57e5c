//! Issue 6, items 2 and 4: the UNet and the ControlNet against diffusers (a tiny configuration with random weights,
//! `scripts/unet-goldens.py`), their gradients against finite differences, and the ControlNet's contract — exactly
//! no change at initialisation, gradients reaching the hint encoder after a few steps.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cmr_diffusion::models::{
    copy_encoder_from_unet, ControlNetConfig, ControlNetModel, DownBlockType, TextContext, UNet2dConditionConfig,
    UNet2dConditionModel, UpBlockType,
};
use cmr_nn::grad_check::{check, randomize, GradCheckConfig};
use cmr_nn::layers::seeded_var_builder;
use cmr_nn::optim::{AdamW, AdamWConfig, ParamGroup};

/// The configuration of `scripts/unet-goldens.py`.
fn tiny() -> UNet2dConditionConfig {
    UNet2dConditionConfig {
        block_out_channels: vec![8, 16],
        down_block_types: vec![DownBlockType::DownBlock2D, DownBlockType::CrossAttnDownBlock2D],
        up_block_types: vec![UpBlockType::CrossAttnUpBlock2D, UpBlockType::UpBlock2D],
        layers_per_block: 1,
        norm_num_groups: 4,
        cross_attention_dim: 6,
        num_attention_heads: 2,
        use_linear_projection: true,
        ..Default::default()
    }
}

fn tiny_controlnet(stride: usize) -> ControlNetConfig {
    ControlNetConfig {
        unet: tiny(),
        conditioning_channels: 8,
        conditioning_embedding_out_channels: vec![4, 8],
        conditioning_embedding_stride: stride,
    }
}

struct Goldens(HashMap<String, Tensor>);

impl Goldens {
    fn load() -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/unet_controlnet.safetensors");
        Self(candle_core::safetensors::load(&path, &Device::Cpu).expect("goldens (scripts/unet-goldens.py)"))
    }

    fn get(&self, name: &str, dtype: DType) -> Tensor {
        self.0[name].to_dtype(dtype).unwrap()
    }

    /// The tensors under `prefix.`, with the prefix removed, as a VarBuilder.
    fn weights(&self, prefix: &str, dtype: DType) -> VarBuilder<'static> {
        let tensors: HashMap<String, Tensor> = self
            .0
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&format!("{prefix}.")).map(|n| (n.to_string(), v.clone())))
            .collect();
        VarBuilder::from_tensors(tensors, dtype, &Device::Cpu)
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_dtype(DType::F64).unwrap(), b.to_dtype(DType::F64).unwrap());
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
}

fn compare_with_diffusers(dtype: DType, tolerance: f64) {
    let g = Goldens::load();
    let unet = UNet2dConditionModel::new(g.weights("unet", dtype), tiny()).unwrap();
    let controlnet = ControlNetModel::new(g.weights("controlnet", dtype), tiny_controlnet(2)).unwrap();
    let (sample, timesteps) = (g.get("input.sample", dtype), g.get("input.timesteps", dtype));
    let (context, mask) = (g.get("input.context", dtype), g.get("input.context_mask", DType::U8));
    let text = TextContext { states: &context, mask: Some(&mask) };

    let plain = unet.forward(&sample, &timesteps, Some(text)).unwrap();
    let err = max_abs_diff(&plain, &g.get("output.unet", DType::F64));
    assert!(err < tolerance, "UNet vs diffusers ({dtype:?}): max |Δ| = {err:e}");

    // diffusers' ControlNetModel takes no text padding mask
    let full_text = TextContext { states: &context, mask: None };
    let residuals =
        controlnet.forward(&sample, &timesteps, Some(full_text), &g.get("input.condition", dtype), 0.7).unwrap();
    assert_eq!(residuals.down.len(), 4, "conv_in, resnet and downsampler of level 0, resnet of level 1");
    for (k, down) in residuals.down.iter().enumerate() {
        let err = max_abs_diff(down, &g.get(&format!("output.down.{k}"), DType::F64));
        assert!(err < tolerance, "ControlNet down residual {k} ({dtype:?}): max |Δ| = {err:e}");
    }
    let err = max_abs_diff(&residuals.mid, &g.get("output.mid", DType::F64));
    assert!(err < tolerance, "ControlNet mid residual ({dtype:?}): max |Δ| = {err:e}");

    let controlled = unet.forward_with_additional_residuals(&sample, &timesteps, Some(text), &residuals).unwrap();
    let err = max_abs_diff(&controlled, &g.get("output.controlled", DType::F64));
    assert!(err < tolerance, "controlled UNet vs diffusers ({dtype:?}): max |Δ| = {err:e}");
}

#[test]
fn unet_and_controlnet_match_diffusers_in_f64() {
    // Not 1e-12: diffusers computes the sinusoidal timestep embedding in float32 whatever the model's dtype
    // (`get_timestep_embedding`: `timesteps.float()`, float32 frequencies), which alone moves outputs by ~1e-7.
    compare_with_diffusers(DType::F64, 1e-6);
}

#[test]
fn unet_and_controlnet_match_diffusers_in_f32() {
    compare_with_diffusers(DType::F32, 1e-4);
}

#[test]
fn every_diffusers_tensor_is_loaded_and_no_other() {
    // VarBuilder::from_varmap creates exactly the tensors the constructor asks for; their names and shapes must be
    // diffusers' state_dict, no more, no less.
    let g = Goldens::load();
    for (prefix, build) in [("unet", 0), ("controlnet", 1)] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        match build {
            0 => drop(UNet2dConditionModel::new(vb, tiny()).unwrap()),
            _ => drop(ControlNetModel::new(vb, tiny_controlnet(2)).unwrap()),
        }
        let ours: HashMap<String, Vec<usize>> =
            varmap.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect();
        let theirs: HashMap<String, Vec<usize>> =
            g.0.iter()
                .filter_map(|(k, v)| k.strip_prefix(&format!("{prefix}.")).map(|n| (n.to_string(), v.dims().to_vec())))
                .collect();
        assert_eq!(ours, theirs, "{prefix}: tensor names and shapes differ from diffusers");
    }
}

fn f64_unet(seed: u64) -> (VarMap, UNet2dConditionModel) {
    let varmap = VarMap::new();
    let unet = UNet2dConditionModel::new(seeded_var_builder(&varmap, seed, DType::F64, &Device::Cpu), tiny()).unwrap();
    randomize(&varmap, seed + 1, 0.3).unwrap();
    (varmap, unet)
}

fn uniform(seed: u64, shape: &[usize], dtype: DType) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn grad_cfg() -> GradCheckConfig {
    // A handful of entries per tensor keeps ~100 tensors × 2 forward passes each within seconds.
    GradCheckConfig { max_entries: Some(4), rtol: 1e-5, atol: 1e-8, ..Default::default() }
}

#[test]
fn unet_gradients_match_finite_differences() -> Result<()> {
    let (varmap, unet) = f64_unet(7);
    let timesteps = Tensor::new(&[3.0f64, 500.0], &Device::Cpu)?;
    let mask = Tensor::new(&[[1u8, 1, 0], [1, 1, 1]], &Device::Cpu)?;
    let inputs = [uniform(1, &[2, 2, 4, 4], DType::F64), uniform(2, &[2, 3, 6], DType::F64)];
    let report = check(&inputs, &varmap, &grad_cfg(), |xs| {
        unet.forward(&xs[0], &timesteps, Some(TextContext { states: &xs[1], mask: Some(&mask) }))
    })?;
    assert!(report.passed(), "{report}");
    let n_vars = varmap.all_vars().len();
    assert_eq!(report.tensors.len(), n_vars + 2, "every parameter and both inputs are checked");
    Ok(())
}

#[test]
fn controlnet_gradients_match_finite_differences() -> Result<()> {
    let varmap = VarMap::new();
    let vb = seeded_var_builder(&varmap, 3, DType::F64, &Device::Cpu);
    let controlnet = ControlNetModel::new(vb, tiny_controlnet(1))?;
    randomize(&varmap, 4, 0.3)?; // zero convolutions included, so every path carries gradient
    let timesteps = Tensor::new(&[3.0f64, 500.0], &Device::Cpu)?;
    let inputs = [
        uniform(5, &[2, 2, 4, 4], DType::F64),
        uniform(6, &[2, 3, 6], DType::F64),
        uniform(7, &[2, 8, 4, 4], DType::F64),
    ];
    let report = check(&inputs, &varmap, &grad_cfg(), |xs| {
        let residuals =
            controlnet.forward(&xs[0], &timesteps, Some(TextContext { states: &xs[1], mask: None }), &xs[2], 0.5)?;
        // one scalar-friendly output: every residual flattened and concatenated
        let mut parts: Vec<Tensor> = residuals.down.iter().map(|r| r.flatten_all()).collect::<Result<_>>()?;
        parts.push(residuals.mid.flatten_all()?);
        Tensor::cat(&parts, 0)
    })?;
    assert!(report.passed(), "{report}");
    assert_eq!(report.tensors.len(), varmap.all_vars().len() + 3);
    Ok(())
}

/// A base UNet and a ControlNet started from it, both in f32 with seeded weights.
fn base_and_controlnet() -> (VarMap, UNet2dConditionModel, VarMap, ControlNetModel) {
    let device = Device::Cpu;
    let unet_vars = VarMap::new();
    let unet = UNet2dConditionModel::new(seeded_var_builder(&unet_vars, 11, DType::F32, &device), tiny()).unwrap();
    let control_vars = VarMap::new();
    let vb = seeded_var_builder(&control_vars, 12, DType::F32, &device);
    let controlnet = ControlNetModel::new(vb, tiny_controlnet(1)).unwrap();
    let copied = copy_encoder_from_unet(&control_vars, &unet_vars).unwrap();
    let encoder_tensors = unet_vars
        .data()
        .lock()
        .unwrap()
        .keys()
        .filter(|k| ["conv_in.", "time_embedding.", "down_blocks.", "mid_block."].iter().any(|p| k.starts_with(p)))
        .count();
    assert_eq!(copied, encoder_tensors, "every encoder tensor of the UNet is copied");
    (unet_vars, unet, control_vars, controlnet)
}

#[test]
fn controlnet_starts_as_an_exact_no_op_with_the_base_encoder() {
    let (unet_vars, unet, control_vars, controlnet) = base_and_controlnet();
    let unet_data = unet_vars.data().lock().unwrap();
    for (name, var) in control_vars.data().lock().unwrap().iter() {
        if let Some(base) = unet_data.get(name) {
            assert_eq!(max_abs_diff(var.as_tensor(), base.as_tensor()), 0.0, "{name} copied exactly");
        }
    }
    drop(unet_data);
    let sample = uniform(20, &[2, 2, 8, 8], DType::F32);
    let timesteps = Tensor::new(&[5u32, 900], &Device::Cpu).unwrap();
    let context = uniform(21, &[2, 3, 6], DType::F32);
    let text = TextContext { states: &context, mask: None };
    let condition = uniform(22, &[2, 8, 8, 8], DType::F32);
    let residuals = controlnet.forward(&sample, &timesteps, Some(text), &condition, 1.0).unwrap();
    let plain = unet.forward(&sample, &timesteps, Some(text)).unwrap();
    let controlled = unet.forward_with_additional_residuals(&sample, &timesteps, Some(text), &residuals).unwrap();
    let (plain, controlled) = (
        plain.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        controlled.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    assert!(plain.iter().zip(&controlled).all(|(a, b)| a.to_bits() == b.to_bits()), "bitwise equal at init");
}

#[test]
fn controlnet_gradients_reach_the_hint_encoder_after_a_few_steps() {
    let (_, unet, control_vars, controlnet) = base_and_controlnet();
    let hint_input = "controlnet_cond_embedding.conv_in.weight";
    let vars: Vec<(String, Var)> =
        control_vars.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut optimizer = AdamW::new(vec![ParamGroup::new(vars.clone(), 1e-2, 0.0)], AdamWConfig::default()).unwrap();
    let sample = uniform(30, &[2, 2, 8, 8], DType::F32);
    let target = uniform(31, &[2, 2, 8, 8], DType::F32);
    let timesteps = Tensor::new(&[5u32, 900], &Device::Cpu).unwrap();
    let context = uniform(32, &[2, 3, 6], DType::F32);
    let text = TextContext { states: &context, mask: None };
    let condition = uniform(33, &[2, 8, 8, 8], DType::F32);
    let hint_var = &vars.iter().find(|(k, _)| k == hint_input).unwrap().1;
    let mut hint_grad_norms = Vec::new();
    for _ in 0..4 {
        let residuals = controlnet.forward(&sample, &timesteps, Some(text), &condition, 1.0).unwrap();
        let pred = unet.forward_with_additional_residuals(&sample, &timesteps, Some(text), &residuals).unwrap();
        let loss = (pred - &target).unwrap().sqr().unwrap().mean_all().unwrap();
        let mut grads = loss.backward().unwrap();
        let norm = grads
            .get(hint_var.as_tensor())
            .map(|g| g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().sqrt())
            .unwrap_or(0.0);
        hint_grad_norms.push(norm);
        optimizer.step(&mut grads).unwrap();
    }
    // step 0: the zero convolutions block every path to the hint encoder; once they have moved, gradient flows.
    assert_eq!(hint_grad_norms[0], 0.0, "{hint_grad_norms:?}");
    assert!(hint_grad_norms[3] > 0.0, "{hint_grad_norms:?}");
}

#[test]
fn bad_configs_and_inputs_are_errors_that_name_the_field() {
    let vb = || VarBuilder::from_varmap(&VarMap::new(), DType::F32, &Device::Cpu);
    let err = UNet2dConditionModel::new(vb(), UNet2dConditionConfig { norm_num_groups: 3, ..tiny() }).unwrap_err();
    assert!(err.to_string().contains("block_out_channels[0] = 8"), "{err}");
    let mirrored = UNet2dConditionConfig {
        up_block_types: vec![UpBlockType::UpBlock2D, UpBlockType::CrossAttnUpBlock2D],
        ..tiny()
    };
    let err = UNet2dConditionModel::new(vb(), mirrored).unwrap_err();
    assert!(err.to_string().contains("down_block_types[0] is DownBlock2D"), "{err}");
    let unet = UNet2dConditionModel::new(vb(), tiny()).unwrap();
    let odd = Tensor::zeros((1, 2, 7, 8), DType::F32, &Device::Cpu).unwrap();
    let err = unet.forward(&odd, &Tensor::new(&[1u32], &Device::Cpu).unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("divisible by 2"), "{err}");
    let sample = Tensor::zeros((2, 2, 8, 8), DType::F32, &Device::Cpu).unwrap();
    let err = unet.forward(&sample, &Tensor::new(&[1u32], &Device::Cpu).unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("one timestep per sample"), "{err}");
}

#[test]
fn config_round_trips_through_json_and_rejects_unknown_fields() {
    let cfg = tiny_controlnet(1);
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<ControlNetConfig>(&json).unwrap(), cfg);
    let err = serde_json::from_str::<UNet2dConditionConfig>(r#"{"block_out_channel": [8]}"#).unwrap_err();
    assert!(err.to_string().contains("block_out_channel"), "{err}");
}
