//! The denoising loop: DDIM (or any [`Scheduler`]) from pure noise to an image, with classifier-free guidance
//! (Ho & Salimans, arXiv 2207.12598, Eq. 6: `ε̃ = ε(∅) + w·(ε(c) − ε(∅))`) and, when a ControlNet is given, its
//! residuals on both branches (as diffusers' `StableDiffusionControlNetPipeline` outside guess mode).

use candle_core::Tensor;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::Result;
use crate::models::{ControlNetModel, TextContext, UNet2dConditionModel};
use crate::schedulers::Scheduler;

/// The networks and settings of a sampling run.
pub struct Sampler<'a> {
    /// The denoiser.
    pub unet: &'a UNet2dConditionModel,
    /// The mask ControlNet; `None` samples from the text condition only.
    pub controlnet: Option<&'a ControlNetModel>,
    /// The reverse process, with its inference timesteps fixed.
    pub scheduler: &'a dyn Scheduler,
    /// Guidance weight `w`; `1` turns guidance off (one network pass per step instead of two).
    pub guidance: f64,
    /// Scale of the ControlNet's residuals.
    pub conditioning_scale: f64,
}

/// The conditions of one batch: prompt states and mask for the conditional branch, the empty prompt's for the
/// unconditional one (same token length), and the one-hot mask condition.
pub struct Conditions<'a> {
    /// `(b, l, d)` states of the prompts and `(b, l)` mask.
    pub text: TextContext<'a>,
    /// The same for the empty prompt, repeated `b` times.
    pub unconditional: TextContext<'a>,
    /// `(b, 8, h, w)` one-hot masks (used when a ControlNet is present).
    pub condition: &'a Tensor,
}

impl Sampler<'_> {
    /// Runs the reverse process from `noise` `(b, c, h, w)`; stochastic steps draw their noise from `rng`.
    pub fn sample(&self, noise: Tensor, conditions: &Conditions, rng: &mut impl Rng) -> Result<Tensor> {
        let guided = self.guidance != 1.0;
        // Both branches in one batch: [unconditional; conditional].
        let (states, mask, condition);
        let text = if guided {
            states = Tensor::cat(&[conditions.unconditional.states, conditions.text.states], 0)?;
            mask = match (conditions.unconditional.mask, conditions.text.mask) {
                (Some(u), Some(c)) => Some(Tensor::cat(&[u, c], 0)?),
                _ => None,
            };
            condition = Tensor::cat(&[conditions.condition, conditions.condition], 0)?;
            TextContext { states: &states, mask: mask.as_ref() }
        } else {
            condition = conditions.condition.clone();
            conditions.text
        };
        let batch = noise.dim(0)?;
        let mut x = noise;
        for &t in self.scheduler.timesteps() {
            let input = self.scheduler.scale_model_input(x.clone(), t)?;
            let input = if guided { Tensor::cat(&[&input, &input], 0)? } else { input };
            let steps = Tensor::from_vec(vec![t as u32; input.dim(0)?], input.dim(0)?, input.device())?;
            let output = match self.controlnet {
                Some(controlnet) => {
                    let residuals =
                        controlnet.forward(&input, &steps, Some(text), &condition, self.conditioning_scale)?;
                    self.unet.forward_with_additional_residuals(&input, &steps, Some(text), &residuals)?
                }
                None => self.unet.forward(&input, &steps, Some(text))?,
            };
            let output = if guided {
                let (uncond, cond) = (output.narrow(0, 0, batch)?, output.narrow(0, batch, batch)?);
                (&uncond + ((cond - &uncond)? * self.guidance)?)?
            } else {
                output
            };
            let step_noise = if self.scheduler.needs_noise(t) { Some(standard_normal(&x, rng)?) } else { None };
            // Detached: with trainable weights (a preview during training) every step would otherwise keep the
            // graph of all earlier steps alive.
            x = self.scheduler.step(&output, t, &x, step_noise.as_ref())?.prev_sample.detach();
        }
        Ok(x)
    }
}

/// Standard-normal values shaped as `like`, in its dtype and on its device, drawn from `rng`.
pub fn standard_normal(like: &Tensor, rng: &mut impl Rng) -> Result<Tensor> {
    let values: Vec<f32> = (0..like.elem_count()).map(|_| rng.sample(StandardNormal)).collect();
    Ok(Tensor::from_vec(values, like.shape(), like.device())?.to_dtype(like.dtype())?)
}

/// Images in \[−1, 1\] → \[0, 1\] (the subject tensor's range), clamped.
pub fn to_unit_range(x: &Tensor) -> Result<Tensor> {
    Ok(((x + 1.0)? / 2.0)?.clamp(0f32, 1f32)?)
}
