//! The validation grid of a training run: the mask and prompt of a few train slices, sampled with the weights of the
//! moment (DDIM, 20 steps, guidance 3, fixed noise), drawn as `cmr_io`'s ED/ES preview with the mask outlines over
//! the generated images — so a glance shows whether the geometry follows the masks.

use candle_core::{DType, Device, Tensor};
use cmr_io::store::SubjectTensor;
use ndarray::Array4;

use super::data::SliceSet;
use super::sample::{standard_normal, to_unit_range, Conditions, Sampler};
use super::text::{PromptTable, UNCONDITIONAL};
use crate::error::Result;
use crate::models::{ControlNetModel, TextContext, UNet2dConditionModel};
use crate::schedulers::{SchedulerConfig, SchedulerKind};

/// Slices in the grid.
const PREVIEW_SLICES: usize = 4;

/// PNG bytes of the validation grid; the noise comes from the stream `seed / diffusion / preview`.
pub fn validation_grid(
    unet: &UNet2dConditionModel,
    controlnet: Option<&ControlNetModel>,
    scheduler: &SchedulerConfig,
    (slices, table): (&SliceSet, &PromptTable),
    device: &Device,
    seed: u64,
) -> Result<Vec<u8>> {
    let indices = slices.preview_indices(PREVIEW_SLICES);
    let (n, (h, w)) = (indices.len(), slices.size());
    let batch = slices.batch(&indices, device)?;
    let prompts: Vec<&str> = batch.prompts.iter().map(String::as_str).collect();
    let (states, mask) = table.gather(&prompts, DType::F32, device)?;
    let (u_states, u_mask) = table.gather(&vec![UNCONDITIONAL; n], DType::F32, device)?;
    let mut ddim = scheduler.clone();
    ddim.kind = SchedulerKind::Ddim;
    let ddim = ddim.build(20)?;
    let sampler = Sampler { unet, controlnet, scheduler: ddim.as_ref(), guidance: 3.0, conditioning_scale: 1.0 };
    let conditions = Conditions {
        text: TextContext { states: &states, mask: Some(&mask) },
        unconditional: TextContext { states: &u_states, mask: Some(&u_mask) },
        condition: &batch.conditions,
    };
    let mut rng = cmr_core::seed::rng(seed, &["diffusion", "preview"]);
    let noise = standard_normal(&Tensor::zeros((n, 2, h, w), DType::F32, device)?, &mut rng)?;
    let images = to_unit_range(&sampler.sample(noise, &conditions, &mut rng)?)?;
    // (n, 2, h, w) → (2, n, h, w): frames as rows, slices as tiles
    let values = images.to_device(&Device::Cpu)?.permute((1, 0, 2, 3))?.flatten_all()?.to_vec1::<f32>()?;
    let labels = Array4::from_shape_vec((n, 2, h, w), slices.labels(&indices)).expect("labels of n slices");
    let grid = SubjectTensor {
        image: Array4::from_shape_vec((2, n, h, w), values).expect("n sampled slices"),
        mask: labels.permuted_axes([1, 0, 2, 3]).as_standard_layout().to_owned(),
        spacing_mm: [1.0; 3],
        source_sha256: vec![],
    };
    Ok(cmr_io::preview::preview_png(&grid))
}
