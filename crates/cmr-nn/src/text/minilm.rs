//! all-MiniLM-L6-v2 (Wang et al. 2020, MiniLM, arXiv 2002.10957; fine-tuned by sentence-transformers, Reimers &
//! Gurevych 2019, arXiv 1908.10084) run by candle-transformers' BERT with the model's own `tokenizer.json`.
//!
//! It reproduces the sentence-transformers pipeline of the published model, `Transformer(max_seq_length=256) →
//! Pooling(mean) → Normalize()`: padded tokens are masked out of attention and of the mean. Verified against
//! sentence-transformers in `tests/suite/text_encoder.rs` (goldens from `scripts/minilm-goldens.py`).

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::resolve::ResolvedModel;

/// Options of a [`SentenceEncoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentenceEncoderConfig {
    /// Tokens per prompt including `[CLS]` and `[SEP]`; longer prompts are truncated. Default 256, the model's
    /// `max_seq_length` in sentence-transformers.
    pub max_len: usize,
    /// Pad every batch to `max_len` (fixed-shape conditioning) instead of to its longest prompt. Default false.
    pub pad_to_max: bool,
}

impl Default for SentenceEncoderConfig {
    fn default() -> Self {
        Self { max_len: 256, pad_to_max: false }
    }
}

/// Per-token output of the encoder.
#[derive(Debug, Clone)]
pub struct TokenStates {
    /// Last hidden states, (b, l, hidden) f32; rows at padded positions are meaningless.
    pub hidden: Tensor,
    /// Attention mask, (b, l) u32: 1 for a token, 0 for padding.
    pub mask: Tensor,
}

/// Errors of loading or running the text encoder.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// `tokenizer.json` could not be read or configured.
    #[error("tokenizer {path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizers crate's message.
        message: String,
    },
    /// `config.json` could not be read or parsed as a BERT config.
    #[error("BERT config {path}: {message}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The weights could not be read or do not fit the config.
    #[error("weights {path}: {source}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// candle's error (names the tensor).
        source: candle_core::Error,
    },
    /// A prompt could not be tokenised.
    #[error("cannot tokenise prompt {prompt:?}: {message}")]
    Encode {
        /// The prompt.
        prompt: String,
        /// The tokenizers crate's message.
        message: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The frozen sentence encoder.
pub struct SentenceEncoder {
    bert: BertModel,
    tokenizer: Tokenizer,
    hidden_size: usize,
    device: Device,
}

impl std::fmt::Debug for SentenceEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEncoder").field("hidden_size", &self.hidden_size).field("device", &self.device).finish()
    }
}

impl SentenceEncoder {
    /// Builds the encoder from BERT weights in `vb` (names as in the Hugging Face checkpoint, with or without a
    /// `bert.` prefix), its config and its tokenizer, which is set to truncate and pad as `cfg` says.
    pub fn new(
        vb: VarBuilder,
        bert: &BertConfig,
        mut tokenizer: Tokenizer,
        cfg: SentenceEncoderConfig,
    ) -> Result<Self, TextError> {
        let truncation = TruncationParams { max_length: cfg.max_len, ..Default::default() };
        tokenizer
            .with_truncation(Some(truncation))
            .map_err(|e| TextError::Tokenizer { path: PathBuf::from("<in memory>"), message: e.to_string() })?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(bert.pad_token_id as u32);
        let strategy = if cfg.pad_to_max { PaddingStrategy::Fixed(cfg.max_len) } else { PaddingStrategy::BatchLongest };
        tokenizer.with_padding(Some(PaddingParams {
            strategy,
            pad_id,
            pad_token: "[PAD]".into(),
            ..Default::default()
        }));
        let device = vb.device().clone();
        let bert_model = BertModel::load(vb, bert)?;
        Ok(Self { bert: bert_model, tokenizer, hidden_size: bert.hidden_size, device })
    }

    /// Loads the resolved all-MiniLM-L6-v2 files ([`crate::resolve::MINILM`]) onto `device`.
    pub fn load(model: &ResolvedModel, device: &Device, cfg: SentenceEncoderConfig) -> Result<Self, TextError> {
        let config_path = model.file("config.json");
        let config_err = |message: String| TextError::Config { path: config_path.into(), message };
        let text = std::fs::read_to_string(config_path).map_err(|e| config_err(e.to_string()))?;
        let bert: BertConfig = serde_json::from_str(&text).map_err(|e| config_err(e.to_string()))?;

        let tok_path = model.file("tokenizer.json");
        let tokenizer = Tokenizer::from_file(tok_path)
            .map_err(|e| TextError::Tokenizer { path: tok_path.into(), message: e.to_string() })?;

        let weights = model.file("model.safetensors");
        let weights_err = |source| TextError::Weights { path: weights.into(), source };
        let tensors = candle_core::safetensors::load(weights, device).map_err(weights_err)?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        Self::new(vb, &bert, tokenizer, cfg).map_err(|e| match e {
            TextError::Candle(source) => weights_err(source),
            TextError::Tokenizer { message, .. } => TextError::Tokenizer { path: tok_path.into(), message },
            other => other,
        })
    }

    /// Width of the hidden states (384).
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Token ids and attention mask, both (b, l) u32.
    pub fn tokenize(&self, prompts: &[&str]) -> Result<(Tensor, Tensor), TextError> {
        let encodings = self
            .tokenizer
            .encode_batch(prompts.to_vec(), true)
            .map_err(|e| TextError::Encode { prompt: prompts.join(" | "), message: e.to_string() })?;
        let b = encodings.len();
        let l = encodings.first().map_or(0, |e| e.get_ids().len());
        let ids: Vec<u32> = encodings.iter().flat_map(|e| e.get_ids().to_vec()).collect();
        let mask: Vec<u32> = encodings.iter().flat_map(|e| e.get_attention_mask().to_vec()).collect();
        let ids = Tensor::from_vec(ids, (b, l), &self.device)?;
        let mask = Tensor::from_vec(mask, (b, l), &self.device)?;
        Ok((ids, mask))
    }

    /// Per-token hidden states and mask of `prompts` (an empty prompt gives `[CLS] [SEP]`).
    pub fn token_states(&self, prompts: &[&str]) -> Result<TokenStates, TextError> {
        let (ids, mask) = self.tokenize(prompts)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &token_types, Some(&mask))?;
        Ok(TokenStates { hidden, mask })
    }

    /// Sentence embeddings, (b, hidden), unit L2 norm.
    pub fn embed(&self, prompts: &[&str]) -> Result<Tensor, TextError> {
        let states = self.token_states(prompts)?;
        Ok(mean_pool_normalize(&states.hidden, &states.mask)?)
    }
}

/// sentence-transformers' `Pooling(mean)` then `Normalize()`: the mean of the unmasked token states,
/// `Σ h·m / max(Σ m, 1e-9)`, divided by `max(‖·‖₂, 1e-12)`. (b, l, d), (b, l) → (b, d).
pub fn mean_pool_normalize(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?; // (b, l, 1)
    let summed = hidden.broadcast_mul(&m)?.sum(1)?; // (b, d)
    let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?; // (b, 1)
    let mean = summed.broadcast_div(&count)?;
    let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    mean.broadcast_div(&norm)
}
