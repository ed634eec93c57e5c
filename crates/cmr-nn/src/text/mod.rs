//! Text conditioning: a prompt such as `"Female, age in 70s, overweight BMI, hypertrophic cardiomyopathy"` becomes
//! per-token hidden states `(b, l, 384)` with an attention mask, which the diffusion UNet cross-attends to (as the
//! reference, Skorupko et al., arXiv 2403.19508), and a mean-pooled, L2-normalised sentence embedding `(b, 384)`.
//! The encoder is the pre-trained all-MiniLM-L6-v2 and is frozen: it runs for inference only.

mod minilm;

pub use minilm::{mean_pool_normalize, SentenceEncoder, SentenceEncoderConfig, TextError, TokenStates};
