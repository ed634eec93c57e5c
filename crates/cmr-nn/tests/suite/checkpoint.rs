//! Checkpoints (issue 3, item 5): round trip with config and sha256 sidecars, strict and non-strict loading that names
//! missing, unexpected and mis-shaped tensors, corruption detection, atomic writes.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarMap};
use cmr_nn::checkpoint::{self, Checkpoint, CheckpointError, LoadMode};

fn varmap(entries: &[(&str, &[usize])]) -> VarMap {
    let map = VarMap::new();
    for (name, shape) in entries {
        map.get(*shape, name, Init::Const(0.), DType::F32, &Device::Cpu).unwrap();
    }
    map
}

fn tensors(entries: &[(&str, &[usize], f32)]) -> BTreeMap<String, Tensor> {
    entries.iter().map(|(n, s, v)| (n.to_string(), Tensor::full(*v, *s, &Device::Cpu).unwrap())).collect()
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Cfg {
    width: usize,
    name: String,
}

#[test]
fn round_trip_with_sidecars_and_nothing_else_left_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/model.safetensors");
    let cfg = Cfg { width: 4, name: "vit".into() };
    let sha = checkpoint::save(&path, &tensors(&[("a.weight", &[2, 3], 1.5), ("b", &[4], -2.0)]), &cfg).unwrap();

    let mut files: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["model.json", "model.safetensors", "model.safetensors.sha256"], "no temporary files remain");
    let sidecar = std::fs::read_to_string(checkpoint::sha256_path(&path)).unwrap();
    assert_eq!(sidecar, format!("{sha}  model.safetensors\n"), "sha256sum format");
    assert_eq!(sha, cmr_core::manifest::sha256_file(&path).unwrap());

    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    assert_eq!(ckpt.sha256(), sha);
    assert_eq!(ckpt.config::<Cfg>().unwrap(), cfg);
    assert_eq!(ckpt.tensors()["a.weight"].to_vec2::<f32>().unwrap(), [[1.5; 3]; 2]);

    let model = varmap(&[("a.weight", &[2, 3]), ("b", &[4])]);
    let report = ckpt.load_into(&model, LoadMode::Strict).unwrap();
    assert_eq!(report.loaded, ["a.weight", "b"]);
    assert_eq!(model.data().lock().unwrap()["b"].to_vec1::<f32>().unwrap(), [-2.0; 4]);
}

#[test]
fn strict_names_missing_and_unexpected_non_strict_loads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint::save(&path, &tensors(&[("enc.weight", &[2], 3.0), ("old.bias", &[1], 1.0)]), &()).unwrap();
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    let model = varmap(&[("enc.weight", &[2]), ("head.weight", &[3])]);

    let err = ckpt.load_into(&model, LoadMode::Strict).unwrap_err();
    match &err {
        CheckpointError::Mismatch { missing, unexpected, mis_shaped, .. } => {
            assert_eq!(missing, &["head.weight"]);
            assert_eq!(unexpected, &["old.bias"]);
            assert!(mis_shaped.is_empty());
        }
        other => panic!("expected a mismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("model.safetensors") && msg.contains("missing head.weight") && msg.contains("unexpected old.bias"),
        "{msg}"
    );
    assert_eq!(model.data().lock().unwrap()["enc.weight"].to_vec1::<f32>().unwrap(), [0.0; 2], "nothing assigned");

    let report = ckpt.load_into(&model, LoadMode::NonStrict).unwrap();
    assert_eq!(
        (report.loaded, report.missing, report.unexpected),
        (vec!["enc.weight".into()], vec!["head.weight".into()], vec!["old.bias".into()])
    );
    assert_eq!(model.data().lock().unwrap()["enc.weight"].to_vec1::<f32>().unwrap(), [3.0; 2]);
}

#[test]
fn mis_shaped_tensors_are_refused_in_both_modes_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint::save(&path, &tensors(&[("qkv.weight", &[6, 2], 1.0), ("proj.bias", &[2], 1.0)]), &()).unwrap();
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    let model = varmap(&[("qkv.weight", &[2, 6]), ("proj.bias", &[2])]);
    for mode in [LoadMode::Strict, LoadMode::NonStrict] {
        let msg = ckpt.load_into(&model, mode).unwrap_err().to_string();
        assert!(msg.contains("mis-shaped qkv.weight (expected [2, 6], got [6, 2])"), "{mode:?}: {msg}");
    }
    assert_eq!(model.data().lock().unwrap()["proj.bias"].to_vec1::<f32>().unwrap(), [0.0; 2], "nothing assigned");
}

#[test]
fn corruption_and_a_missing_config_are_reported_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    checkpoint::save(&path, &tensors(&[("w", &[3], 1.0)]), &Cfg { width: 1, name: "x".into() }).unwrap();

    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = Checkpoint::load(&path, &Device::Cpu).unwrap_err();
    assert!(matches!(err, CheckpointError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors.sha256"), "{err}");

    // a file without sidecars (e.g. downloaded weights) loads, but has no config
    std::fs::remove_file(checkpoint::sha256_path(&path)).unwrap();
    std::fs::remove_file(checkpoint::config_path(&path)).unwrap();
    let ckpt = Checkpoint::load(&path, &Device::Cpu).unwrap();
    let err = ckpt.config::<Cfg>().unwrap_err().to_string();
    assert!(err.contains("model.json") && err.contains("missing"), "{err}");

    std::fs::write(&path, b"not safetensors").unwrap();
    let err = Checkpoint::load(&path, &Device::Cpu).unwrap_err();
    assert!(matches!(err, CheckpointError::Format { .. }), "{err}");
    let err = Checkpoint::load(&dir.path().join("absent.safetensors"), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("absent.safetensors"), "{err}");
}
