//! Orchestration of the diffusion stage: data, text conditioning, the model folder, training, sampling and
//! generation. Models and schedulers know nothing of files; this module does.

pub mod data;
pub mod generate;
pub mod model_dir;
pub mod plan;
pub mod preview;
pub mod sample;
pub mod text;
pub mod train;
