//! Messages between the server and a client, as bytes: a safetensors buffer
//! (<https://github.com/huggingface/safetensors#format>) whose `__metadata__` says what the message is.
//!
//! The header is serialised here rather than by `safetensors::serialize`, which takes the metadata as a `HashMap`
//! and writes it in that map's (per-process random) iteration order; a message must be the same bytes for the same
//! content, so that byte counts, hashes and resumed runs are reproducible. Metadata keys come in a fixed order, then
//! the tensors sorted by name; their data follows in the same order.

use std::collections::BTreeMap;

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::TensorInfo;
use safetensors::{SafeTensors, View};
use serde::Serialize;

use crate::error::{FedError, Result};

/// Named tensors, sorted by name: what a model state, a global model or an update is on the wire.
pub type NamedTensors = BTreeMap<String, Tensor>;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "cmr-fed.message.v1";

/// What a message carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MessageKind {
    /// Server → client: the current global tensors, to load before round `round`.
    Global,
    /// Client → server: the shared tensors after local training in round `round`.
    Update {
        /// Training examples the client used, the weight of its update in FedAvg (McMahan et al. 2017,
        /// arXiv 1602.05629, Algorithm 1: `n_k / n`).
        examples: usize,
        /// Mean training loss of the round (for the record only).
        loss: f64,
    },
}

/// One message: its kind, the round, the client it goes to or comes from, and the tensors.
#[derive(Debug, Clone)]
pub struct Message {
    /// Global model or client update.
    pub kind: MessageKind,
    /// Federated round, from 1.
    pub round: usize,
    /// The client the message is addressed to (global) or sent by (update).
    pub client: String,
    /// The tensors, by name.
    pub tensors: NamedTensors,
}

/// `__metadata__` of a message; safetensors requires string values. Field order is the order on the wire.
#[derive(Serialize)]
struct Metadata {
    format: &'static str,
    kind: &'static str,
    round: String,
    client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    examples: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loss: Option<String>,
}

#[derive(Serialize)]
struct Header<'a> {
    #[serde(rename = "__metadata__")]
    metadata: Metadata,
    #[serde(flatten)]
    tensors: BTreeMap<&'a str, TensorInfo>,
}

impl Message {
    /// A global message for `client` in `round`.
    pub fn global(round: usize, client: &str, tensors: NamedTensors) -> Self {
        Self { kind: MessageKind::Global, round, client: client.to_owned(), tensors }
    }

    /// An update from `client` after `round`.
    pub fn update(round: usize, client: &str, examples: usize, loss: f64, tensors: NamedTensors) -> Self {
        Self { kind: MessageKind::Update { examples, loss }, round, client: client.to_owned(), tensors }
    }

    /// A short name for errors: `global r3 → vendor-a`, `update r3 ← vendor-a`.
    pub fn label(&self) -> String {
        label(self.kind, self.round, &self.client)
    }

    /// The message as safetensors bytes; the same message always gives the same bytes.
    ///
    /// # Errors
    /// [`FedError::Message`] naming the tensor when it cannot be copied to the host or has a dtype safetensors
    /// cannot hold.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let name = self.label();
        let (kind, examples, loss) = match self.kind {
            MessageKind::Global => ("global", None, None),
            // `Display` of f64 prints the shortest text that parses back to the same value.
            MessageKind::Update { examples, loss } => ("update", Some(examples.to_string()), Some(loss.to_string())),
        };
        let metadata = Metadata {
            format: FORMAT,
            kind,
            round: self.round.to_string(),
            client: self.client.clone(),
            examples,
            loss,
        };
        let mut infos = BTreeMap::new();
        let mut data = Vec::new();
        for (tensor_name, tensor) in &self.tensors {
            let bytes =
                host_bytes(tensor).map_err(|reason| FedError::message(&name, format!("{tensor_name}: {reason}")))?;
            let start = data.len();
            data.extend_from_slice(&bytes);
            let info = TensorInfo {
                dtype: View::dtype(tensor),
                shape: tensor.dims().to_vec(),
                data_offsets: (start, data.len()),
            };
            infos.insert(tensor_name.as_str(), info);
        }
        let mut header = serde_json::to_vec(&Header { metadata, tensors: infos })
            .map_err(|e| FedError::message(&name, format!("header: {e}")))?;
        // The format pads the header with spaces to a multiple of 8 bytes.
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut out = Vec::with_capacity(8 + header.len() + data.len());
        out.extend((header.len() as u64).to_le_bytes());
        out.extend(header);
        out.extend(data);
        Ok(out)
    }

    /// Reads a message from `bytes`, its tensors onto `device`.
    ///
    /// # Errors
    /// [`FedError::Message`] when the bytes are not safetensors, lack or have malformed metadata, or hold a tensor
    /// candle cannot read (naming it).
    pub fn decode(bytes: &[u8], device: &Device) -> Result<Self> {
        let bad = |reason: String| FedError::message(format!("of {} bytes", bytes.len()), reason);
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a safetensors buffer: {e}")))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("header: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let key = |k: &str| meta.get(k).ok_or_else(|| bad(format!("metadata lacks `{k}`")));
        let number = |k: &str| key(k)?.parse::<usize>().map_err(|e| bad(format!("metadata `{k}` is not a count: {e}")));
        if key("format")? != FORMAT {
            return Err(bad(format!("format {:?}, expected {FORMAT:?}", key("format")?)));
        }
        let kind = match key("kind")?.as_str() {
            "global" => MessageKind::Global,
            "update" => MessageKind::Update {
                examples: number("examples")?,
                loss: key("loss")?.parse().map_err(|e| bad(format!("metadata `loss` is not a number: {e}")))?,
            },
            other => return Err(bad(format!("kind {other:?}, expected \"global\" or \"update\""))),
        };
        let round = number("round")?;
        let client = key("client")?.clone();
        let mut tensors = NamedTensors::new();
        for (tensor_name, view) in st.tensors() {
            let tensor = view
                .load(device)
                .map_err(|e| FedError::message(label(kind, round, &client), format!("tensor {tensor_name}: {e}")))?;
            tensors.insert(tensor_name, tensor);
        }
        Ok(Self { kind, round, client, tensors })
    }
}

fn label(kind: MessageKind, round: usize, client: &str) -> String {
    match kind {
        MessageKind::Global => format!("global r{round} → {client}"),
        MessageKind::Update { .. } => format!("update r{round} ← {client}"),
    }
}

/// The tensor's little-endian bytes in row-major order.
fn host_bytes(tensor: &Tensor) -> std::result::Result<Vec<u8>, String> {
    // candle's `View::data` unwraps its conversion, so refuse what it cannot convert before calling it.
    if matches!(tensor.dtype(), DType::F6E2M3 | DType::F6E3M2 | DType::F4 | DType::F8E8M0) {
        return Err(format!("dtype {:?} cannot be sent", tensor.dtype()));
    }
    let host = tensor.to_device(&Device::Cpu).map_err(|e| e.to_string())?;
    Ok(View::data(&host).into_owned())
}
