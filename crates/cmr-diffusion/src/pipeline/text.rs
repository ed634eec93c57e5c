//! Text conditioning: every prompt of a run through all-MiniLM-L6-v2 once, kept as per-token hidden states
//! `(l, 384)` + padding mask, so that a training step or a sampling batch only gathers rows. The encoder is frozen
//! (as the reference keeps its text encoder frozen), so a repeated prompt always has the same states.

use std::collections::BTreeMap;

use candle_core::{bail, DType, Device, Result, Tensor};
use cmr_nn::text::SentenceEncoder;

/// The empty prompt: the unconditional branch of classifier-free guidance (Ho & Salimans, arXiv 2207.12598).
pub const UNCONDITIONAL: &str = "";

/// Per-token states of a fixed set of prompts, padded to one length.
#[derive(Debug, Clone)]
pub struct PromptTable {
    index: BTreeMap<String, u32>,
    /// (n, l, hidden), f32.
    hidden: Tensor,
    /// (n, l), u8: 1 for a token, 0 for padding.
    mask: Tensor,
}

impl PromptTable {
    /// Encodes every distinct prompt of `prompts`, and the empty prompt, in one batch.
    pub fn build<'a>(encoder: &SentenceEncoder, prompts: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut distinct: Vec<&str> = prompts.into_iter().chain([UNCONDITIONAL]).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let states = encoder.token_states(&distinct).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let index = distinct.iter().enumerate().map(|(i, p)| (p.to_string(), i as u32)).collect();
        Ok(Self { index, hidden: states.hidden.to_dtype(DType::F32)?, mask: states.mask.to_dtype(DType::U8)? })
    }

    /// Number of distinct prompts held (the empty one included).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the table holds no prompt (never, since the empty prompt is always there).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Hidden states `(b, l, hidden)` in `dtype` on `device` and mask `(b, l)` of `prompts`, in order.
    pub fn gather(&self, prompts: &[&str], dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let mut rows = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            match self.index.get(*prompt) {
                Some(&row) => rows.push(row),
                None => bail!("prompt {prompt:?} was not encoded; the prompt table holds {} prompts", self.len()),
            }
        }
        let rows = Tensor::new(rows.as_slice(), self.hidden.device())?;
        let hidden = self.hidden.index_select(&rows, 0)?.to_dtype(dtype)?.to_device(device)?;
        let mask = self.mask.index_select(&rows, 0)?.to_device(device)?;
        Ok((hidden, mask))
    }
}
