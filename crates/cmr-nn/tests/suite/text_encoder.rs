//! Text encoder (issue 3, item 6): all-MiniLM-L6-v2 through candle-transformers' BERT matches sentence-transformers
//! (token ids exactly; per-token hidden states and normalised embeddings to 1e-4). Goldens: tests/data/
//! minilm_goldens.json, written by `scripts/minilm-goldens.py`. Needs the model: `scripts/fetch-assets.sh minilm`
//! (CI runs it before the tests).

use std::path::PathBuf;

use candle_core::{Device, IndexOp};
use cmr_nn::resolve::{Resolver, MINILM};
use cmr_nn::text::{SentenceEncoder, SentenceEncoderConfig};

#[derive(serde::Deserialize)]
struct Golden {
    records: Vec<Record>,
}

#[derive(serde::Deserialize)]
struct Record {
    prompt: String,
    input_ids: Vec<u32>,
    token_states: Vec<Vec<f32>>,
    embedding: Vec<f32>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn encoder(cfg: SentenceEncoderConfig) -> SentenceEncoder {
    let resolver = Resolver { external_root: root().join("models/external"), hf_cache: None, ..Resolver::default() };
    let model = resolver.resolve(&MINILM).unwrap_or_else(|e| panic!("{e}"));
    SentenceEncoder::load(&model, &Device::Cpu, cfg).unwrap()
}

fn goldens() -> Vec<Record> {
    let text = std::fs::read_to_string(root().join("crates/cmr-nn/tests/data/minilm_goldens.json")).unwrap();
    serde_json::from_str::<Golden>(&text).unwrap().records
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn matches_sentence_transformers() {
    let enc = encoder(SentenceEncoderConfig::default());
    let records = goldens();
    let prompts: Vec<&str> = records.iter().map(|r| r.prompt.as_str()).collect();
    let longest = records.iter().map(|r| r.input_ids.len()).max().unwrap();

    let (ids, mask) = enc.tokenize(&prompts).unwrap();
    let states = enc.token_states(&prompts).unwrap();
    assert_eq!(states.hidden.dims(), &[records.len(), longest, 384]);
    assert_eq!(states.mask.dims(), &[records.len(), longest]);
    let embeddings = enc.embed(&prompts).unwrap();
    assert_eq!(embeddings.dims(), &[records.len(), 384]);

    let (mut worst_token, mut worst_embedding) = (0f32, 0f32);
    for (i, r) in records.iter().enumerate() {
        let n = r.input_ids.len();
        let ids_i = ids.i(i).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(&ids_i[..n], r.input_ids.as_slice(), "token ids of {:?}", r.prompt);
        assert!(ids_i[n..].iter().all(|&t| t == 0), "padding id");
        let mask_i = mask.i(i).unwrap().to_vec1::<u32>().unwrap();
        assert_eq!(mask_i, [vec![1; n], vec![0; longest - n]].concat());

        let hidden = states.hidden.i(i).unwrap().to_vec2::<f32>().unwrap();
        for (t, want) in r.token_states.iter().enumerate() {
            worst_token = worst_token.max(max_abs(&hidden[t], want));
        }
        let e = embeddings.i(i).unwrap().to_vec1::<f32>().unwrap();
        worst_embedding = worst_embedding.max(max_abs(&e, &r.embedding));
        let norm: f32 = e.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit norm, got {norm}");
    }
    eprintln!("max |candle - sentence-transformers|: token states {worst_token:.2e}, embeddings {worst_embedding:.2e}");
    assert!(worst_token < 1e-4, "token states differ by {worst_token}");
    assert!(worst_embedding < 1e-4, "embeddings differ by {worst_embedding}");
}

#[test]
fn fixed_padding_gives_the_same_embeddings() {
    let records = goldens();
    let prompts: Vec<&str> = records.iter().map(|r| r.prompt.as_str()).collect();
    let enc = encoder(SentenceEncoderConfig { max_len: 32, pad_to_max: true });
    let states = enc.token_states(&prompts).unwrap();
    assert_eq!(states.hidden.dims(), &[records.len(), 32, 384]);
    let e = enc.embed(&prompts).unwrap();
    for (i, r) in records.iter().enumerate() {
        let got = e.i(i).unwrap().to_vec1::<f32>().unwrap();
        assert!(max_abs(&got, &r.embedding) < 1e-4, "{:?}", r.prompt);
    }
    // truncation keeps [CLS] … [SEP] within max_len
    let short = encoder(SentenceEncoderConfig { max_len: 5, pad_to_max: false });
    let (ids, _) = short.tokenize(&[prompts[0]]).unwrap();
    assert_eq!(ids.i(0).unwrap().to_vec1::<u32>().unwrap(), [101, 2931, 1010, 2287, 102]);
}
