//! cmr-nn's integration tests, linked into one binary (each file is a module) so the workspace's test build stays
//! small on disk and quick to link.

mod backprop;
mod candle_gaps;
mod checkpoint;
mod layer_goldens;
mod layer_gradients;
mod lora;
mod optim;
mod resolve;
mod text_encoder;
