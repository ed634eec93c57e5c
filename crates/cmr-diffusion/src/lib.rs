//! Diffusion stage (issue 6): a pixel-space DDPM UNet conditioned on text by cross-attention, and a ControlNet that
//! adds the segmentation-mask condition. `schedulers/` is pure math and never imports `models/`; `pipeline/` reads
//! and writes files and runs the loops.

pub mod error;
pub mod evaluation;
pub mod models;
pub mod pipeline;
pub mod schedulers;

pub use error::{DiffusionError, Result};
