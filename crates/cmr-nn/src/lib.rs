//! Candle building blocks that every cmr-debias network trains on, each with a finite-difference gradient test:
//! layers, fast CPU kernels as custom ops, the LoRA family, optimisation, checkpoints, the text encoder and model
//! resolution (issue 3). Measured on candle 0.11.1 (CPU): fused `layer_norm`, `softmax_last_dim` and `rms_norm`
//! record no gradient and `max_pool2d`'s backward is wrong, so nothing here uses them for training.

pub mod checkpoint;
pub mod device;
pub mod grad_check;
pub mod layers;
pub mod lora;
pub mod ops;
pub mod optim;
pub mod resolve;
pub mod text;
