//! Model resolution (issue 3, item 7): explicit folder, then models/external/<name>/, then the Hugging Face cache;
//! a failure names every place looked at and the command that fetches the asset.

use std::path::Path;

use cmr_nn::resolve::{ModelSource, ResolveError, Resolver, MINILM, MYOPARI};

fn fill(dir: &Path, files: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for f in files {
        std::fs::write(dir.join(f), f.as_bytes()).unwrap();
    }
}

/// The layout `huggingface_hub` writes: `models--{org}--{name}/refs/main` holds a commit, files under
/// `snapshots/{commit}/`.
fn fill_hf_cache(cache: &Path, repo: &str, files: &[&str]) {
    let root = cache.join(format!("models--{}", repo.replace('/', "--")));
    fill(&root.join("snapshots/0123abcd"), files);
    fill(&root.join("refs"), &[]);
    std::fs::write(root.join("refs/main"), "0123abcd").unwrap();
}

fn resolver(tmp: &Path) -> Resolver {
    Resolver {
        external_root: tmp.join("models/external"),
        hf_cache: Some(hf_hub::Cache::new(tmp.join("hf/hub"))),
        ..Resolver::default()
    }
}

#[test]
fn explicit_then_external_then_hf_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fill_hf_cache(&t.join("hf/hub"), "sentence-transformers/all-MiniLM-L6-v2", MINILM.files);
    let r = resolver(t);

    let found = r.resolve(&MINILM).unwrap();
    assert_eq!(found.source, ModelSource::HfCache);
    assert!(found
        .file("tokenizer.json")
        .starts_with(t.join("hf/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/0123abcd")));

    fill(&t.join("models/external/all-MiniLM-L6-v2"), MINILM.files);
    let found = r.resolve(&MINILM).unwrap();
    assert_eq!(found.source, ModelSource::External);
    assert_eq!(found.file("model.safetensors"), t.join("models/external/all-MiniLM-L6-v2/model.safetensors"));

    fill(&t.join("mine"), MINILM.files);
    let found = Resolver { explicit: Some(t.join("mine")), ..r.clone() }.resolve(&MINILM).unwrap();
    assert_eq!(found.source, ModelSource::Explicit);
    assert_eq!(found.file("config.json"), t.join("mine/config.json"));
}

#[test]
fn an_incomplete_explicit_folder_is_an_error_not_a_fallback() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    fill(&t.join("models/external/all-MiniLM-L6-v2"), MINILM.files);
    fill(&t.join("mine"), &["config.json"]);
    let err = Resolver { explicit: Some(t.join("mine")), ..resolver(t) }.resolve(&MINILM).unwrap_err();
    assert!(
        matches!(&err, ResolveError::Incomplete { missing, .. } if missing == &["model.safetensors", "tokenizer.json"])
    );
    let msg = err.to_string();
    assert!(msg.contains("mine") && msg.contains("lacks model.safetensors, tokenizer.json"), "{msg}");
}

#[test]
fn not_found_names_the_places_and_the_fetch_command() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // a partial external copy and a partial cache do not count
    fill(&t.join("models/external/all-MiniLM-L6-v2"), &["config.json"]);
    fill_hf_cache(&t.join("hf/hub"), "sentence-transformers/all-MiniLM-L6-v2", &["config.json", "tokenizer.json"]);
    let msg = resolver(t).resolve(&MINILM).unwrap_err().to_string();
    assert!(msg.starts_with("model all-MiniLM-L6-v2 not found"), "{msg}");
    assert!(msg.contains("models/external/all-MiniLM-L6-v2 lacks model.safetensors, tokenizer.json"), "{msg}");
    assert!(msg.contains("hf/hub has no complete copy of sentence-transformers/all-MiniLM-L6-v2"), "{msg}");
    assert!(msg.contains("fetch it with `scripts/fetch-assets.sh minilm`"), "{msg}");

    // an asset that is not on the Hub skips the cache
    let msg = resolver(t).resolve(&MYOPARI).unwrap_err().to_string();
    assert!(msg.contains("models/external/myopari lacks tiramisu_acdc_fp32.onnx"), "{msg}");
    assert!(!msg.contains("Hugging Face"), "{msg}");
    assert!(msg.contains("`scripts/fetch-assets.sh myopari`"), "{msg}");
}
