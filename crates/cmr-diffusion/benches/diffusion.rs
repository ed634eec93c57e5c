//! CPU benchmark of the diffusion stage (issue 6, "Targets"): one training step of the base UNet, one training step
//! of the ControlNet on the frozen base, and one DDIM sampling step of UNet + ControlNet with classifier-free
//! guidance, at the demo configuration ([`UNet2dConditionConfig::demo`], 64×64, batch 8, 12 text tokens), f32, on
//! candle's thread count, with glibc told to keep freed memory.
//!
//! `cargo bench -p cmr-diffusion --bench diffusion` prints median milliseconds; `-- --json` prints them with the
//! configuration as JSON, which `scripts/bench_diffusion_torch.py` reads to build the same networks in diffusers;
//! `scripts/bench-diffusion.sh` runs both and prints the ratio table.

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use cmr_diffusion::models::{
    ControlNetConfig, ControlNetModel, TextContext, UNet2dConditionConfig, UNet2dConditionModel,
};
use cmr_nn::layers::seeded_var_builder;
use cmr_nn::optim::{AdamW, AdamWConfig, ParamGroup};

const BATCH: usize = 8;
const SIZE: usize = 64;
const TOKENS: usize = 12;

/// Median of `f`'s wall time: one warm-up call, then at least 3 and up to 15 calls or 20 s.
fn median(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let (mut times, start) = (Vec::new(), Instant::now());
    while times.len() < 3 || (times.len() < 15 && start.elapsed() < Duration::from_secs(20)) {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let mut vars: Vec<_> = varmap.data().lock().unwrap().iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// The variables' current values as plain tensors, which record no graph.
fn detached(varmap: &VarMap) -> std::collections::HashMap<String, Tensor> {
    vars(varmap).into_iter().map(|(n, v)| (n, v.as_tensor().detach())).collect()
}

fn main() -> Result<()> {
    cmr_nn::ops::retain_freed_memory();
    let json = std::env::args().any(|a| a == "--json");
    let device = Device::Cpu;
    let unet_cfg = UNet2dConditionConfig::demo();
    let control_cfg = ControlNetConfig { unet: unet_cfg.clone(), ..Default::default() };
    let unet_vars = VarMap::new();
    let unet = UNet2dConditionModel::new(seeded_var_builder(&unet_vars, 0, DType::F32, &device), unet_cfg.clone())?;
    let control_vars = VarMap::new();
    let controlnet =
        ControlNetModel::new(seeded_var_builder(&control_vars, 1, DType::F32, &device), control_cfg.clone())?;
    cmr_diffusion::models::copy_encoder_from_unet(&control_vars, &unet_vars)?;

    let x = Tensor::randn(0f32, 1., (BATCH, 2, SIZE, SIZE), &device)?;
    let target = Tensor::randn(0f32, 1., (BATCH, 2, SIZE, SIZE), &device)?;
    let condition = Tensor::randn(0f32, 1., (BATCH, 8, SIZE, SIZE), &device)?.ge(1.0)?.to_dtype(DType::F32)?;
    let context = Tensor::randn(0f32, 1., (BATCH, TOKENS, 384), &device)?;
    let t = Tensor::new(vec![500u32; BATCH], &device)?;
    let text = TextContext { states: &context, mask: None };

    // 1. base training step: forward, backward, AdamW
    let mut base_opt = AdamW::new(vec![ParamGroup::new(vars(&unet_vars), 1e-5, 0.0)], AdamWConfig::default())
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let base_step = median(|| {
        let loss = (unet.forward(&x, &t, Some(text))? - &target)?.sqr()?.mean_all()?;
        base_opt.step(&mut loss.backward()?)?;
        Ok(())
    })?;

    // 2. ControlNet training step on the frozen base (only the ControlNet's variables are updated)
    let base = UNet2dConditionModel::new(
        candle_nn::VarBuilder::from_tensors(detached(&unet_vars), DType::F32, &device),
        unet_cfg,
    )?;
    let mut control_opt = AdamW::new(vec![ParamGroup::new(vars(&control_vars), 1e-5, 0.0)], AdamWConfig::default())
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let control_step = median(|| {
        let residuals = controlnet.forward(&x, &t, Some(text), &condition, 1.0)?;
        let pred = base.forward_with_additional_residuals(&x, &t, Some(text), &residuals)?;
        control_opt.step(&mut (pred - &target)?.sqr()?.mean_all()?.backward()?)?;
        Ok(())
    })?;

    // 3. one sampling step with guidance: both branches in one batch of 2·BATCH, no gradient. As in `diffusion
    // generate` (weights loaded from a checkpoint) and diffusers' `torch.no_grad()`, the weights are plain tensors,
    // so no op records a graph and each intermediate is freed as soon as it is used.
    let controlnet = ControlNetModel::new(
        candle_nn::VarBuilder::from_tensors(detached(&control_vars), DType::F32, &device),
        control_cfg.clone(),
    )?;
    let x2 = Tensor::cat(&[&x, &x], 0)?.detach();
    let cond2 = Tensor::cat(&[&condition, &condition], 0)?;
    let ctx2 = Tensor::cat(&[&context, &context], 0)?;
    let t2 = Tensor::new(vec![500u32; 2 * BATCH], &device)?;
    let text2 = TextContext { states: &ctx2, mask: None };
    let sample_step = median(|| {
        let residuals = controlnet.forward(&x2, &t2, Some(text2), &cond2, 1.0)?;
        let out = base.forward_with_additional_residuals(&x2, &t2, Some(text2), &residuals)?;
        let (u, c) = (out.narrow(0, 0, BATCH)?, out.narrow(0, BATCH, BATCH)?);
        let _guided = (&u + ((c - &u)? * 4.0)?)?;
        Ok(())
    })?;

    let threads = candle_core::utils::get_num_threads();
    if json {
        println!(
            r#"{{"threads":{threads},"batch":{BATCH},"size":{SIZE},"tokens":{TOKENS},"unet":{},"conditioning_embedding_out_channels":{:?},"results":[{{"name":"base train step","ms":{base_step}}},{{"name":"controlnet train step","ms":{control_step}}},{{"name":"ddim step (cfg, unet+controlnet)","ms":{sample_step}}}]}}"#,
            serde_json::to_string(&control_cfg.unet).unwrap(),
            control_cfg.conditioning_embedding_out_channels
        );
    } else {
        println!("f32, {threads} threads, batch {BATCH}, {SIZE}×{SIZE}; median ms");
        println!("base train step                  {base_step:>9.1}");
        println!("controlnet train step            {control_step:>9.1}");
        println!("ddim step (cfg, unet+controlnet) {sample_step:>9.1}");
    }
    Ok(())
}
