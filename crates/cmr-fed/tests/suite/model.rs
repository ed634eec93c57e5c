//! Issue 7, item 1: the 3D ViT, its MAE pretraining and the classifier built from it. Gradients are checked by
//! finite differences in f64 on tiny configurations; loading names the offending tensor or option; the fragmented
//! shape prior starts as the whole-heart prior; pretraining is deterministic, learns, and writes a model folder.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarMap;
use cmr_core::Split;
use cmr_fed::model::pretrain::{self, PretrainConfig, PretrainOptions};
use cmr_fed::model::{Classifier, ClassifierConfig, FineTune, FmDir, LoraOptions, Mae, Masking, ViTConfig, HEAD};
use cmr_io::store::SubjectTensor;
use cmr_nn::checkpoint;
use cmr_nn::grad_check::{check, randomize, GradCheckConfig, GradReport};
use cmr_nn::layers::seeded_var_builder;
use cmr_nn::lora::{LoraScheme, LoraTarget};
use ndarray::Array4;
use rand::Rng;

use crate::fixtures::{row, write_cohort};

/// 2 slices × 8 × 8 in 1×4×4 patches: 8 tokens of width 12.
fn tiny() -> ViTConfig {
    ViTConfig {
        dim: 12,
        depth: 2,
        heads: 2,
        mlp_ratio: 2.0,
        in_channels: 2,
        volume: [2, 8, 8],
        patch_depth: 1,
        patch_size: 4,
        decoder_dim: 8,
        decoder_depth: 1,
        decoder_heads: 2,
        norm_eps: 1e-6,
    }
}

fn uniform(label: &str, shape: &[usize], dtype: DType) -> Tensor {
    let mut rng = cmr_core::seed::rng(1, &["fed-model-test", label]);
    let values: Vec<f64> = (0..shape.iter().product()).map(|_| rng.random::<f64>()).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

fn assert_passed_with_gradient(report: &GradReport, names: &[String]) {
    assert!(!names.is_empty());
    for name in names {
        let t = report.get(name).unwrap_or_else(|| panic!("{name} not checked:\n{report}"));
        assert!(t.passed && !t.analytic_missing, "{name}:\n{report}");
    }
}

fn var_names(varmap: &VarMap) -> Vec<String> {
    let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    names
}

#[test]
fn encoder_gradients_reach_the_input_and_every_tensor() {
    let varmap = VarMap::new();
    let vb = seeded_var_builder(&varmap, 1, DType::F64, &Device::Cpu);
    let encoder = cmr_fed::model::VitEncoder::new(vb, &tiny(), 2, None).unwrap();
    randomize(&varmap, 3, 0.5).unwrap();
    let x = uniform("enc-x", &[2, 2, 2, 8, 8], DType::F64);
    let report = check(&[x], &varmap, &GradCheckConfig::default(), |xs| encoder.forward(&xs[0])).unwrap();
    let mut names = var_names(&varmap);
    assert_eq!(names.len(), 2 + 1 + 2 * 14 + 2, "patch_embed, cls_token, 2 blocks, norm: {names:?}");
    names.push("input.0".into());
    assert_passed_with_gradient(&report, &names);
    let wrong = uniform("enc-wrong", &[1, 2, 2, 8, 4], DType::F64);
    let err = encoder.forward(&wrong).unwrap_err().to_string();
    assert!(err.contains("input is 2 channels × 2×8×4, the model takes 2 channels × [2, 8, 8]"), "{err}");
}

#[test]
fn mae_loss_gradients_reach_every_encoder_and_decoder_tensor() {
    let varmap = VarMap::new();
    let mae = Mae::new(seeded_var_builder(&varmap, 1, DType::F64, &Device::Cpu), &tiny()).unwrap();
    randomize(&varmap, 2, 0.5).unwrap();
    let masking = Masking::random(2, 8, 0.75, &mut cmr_core::seed::rng(3, &["mask"]), &Device::Cpu).unwrap();
    assert_eq!(masking.kept(), 2);
    // the images are data, not an input of the check: the target depends on them outside the graph
    let images = uniform("mae-x", &[2, 2, 2, 8, 8], DType::F64);
    for norm_pix in [true, false] {
        let report =
            check(&[], &varmap, &GradCheckConfig::default(), |_| mae.loss(&images, &masking, norm_pix)).unwrap();
        assert!(report.passed(), "{report}");
        let names = var_names(&varmap);
        assert!(names.iter().any(|n| n.starts_with("decoder_blocks.0.")) && names.contains(&"mask_token".into()));
        assert_passed_with_gradient(&report, &names);
    }
}

#[test]
fn masking_is_per_sample_seeded_and_the_loss_ignores_visible_patches() {
    let rng = |seed| cmr_core::seed::rng(seed, &["mask"]);
    let a = Masking::random(3, 8, 0.75, &mut rng(1), &Device::Cpu).unwrap();
    let b = Masking::random(3, 8, 0.75, &mut rng(1), &Device::Cpu).unwrap();
    let rows = a.mask().to_vec2::<f32>().unwrap();
    assert_eq!(rows, b.mask().to_vec2::<f32>().unwrap(), "same stream, same masks");
    assert!(rows.iter().all(|r| r.iter().sum::<f32>() == 6.0), "6 of 8 masked in every sample: {rows:?}");
    assert!(rows[0] != rows[1] || rows[1] != rows[2], "samples are masked independently: {rows:?}");
    let err = Masking::random(1, 8, 0.95, &mut rng(1), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("option `mask_ratio`"), "{err}");

    // changing a visible patch of the input changes the prediction but not the target of the loss: the loss
    // changes only through the encoder, while changing a masked patch changes the target directly.
    let varmap = VarMap::new();
    let cfg = ViTConfig { volume: [1, 8, 8], ..tiny() };
    let mae = Mae::new(seeded_var_builder(&varmap, 1, DType::F64, &Device::Cpu), &cfg).unwrap();
    let m = Masking::random(1, 4, 0.5, &mut rng(2), &Device::Cpu).unwrap();
    let mask = m.mask().to_vec2::<f32>().unwrap()[0].clone();
    let x = uniform("mask-x", &[1, 2, 1, 8, 8], DType::F64);
    let base = mae.loss(&x, &m, false).unwrap().to_scalar::<f64>().unwrap();
    let pred = mae.forward(&x, &m).unwrap();
    let target = cmr_fed::model::patchify(&x, 1, 4).unwrap();
    let per_patch =
        (pred - target).unwrap().sqr().unwrap().mean(2).unwrap().squeeze(0).unwrap().to_vec1::<f64>().unwrap();
    let want: f64 = per_patch.iter().zip(&mask).map(|(l, &m)| l * f64::from(m)).sum::<f64>() / 2.0;
    assert!((base - want).abs() < 1e-12, "loss {base} = mean over the 2 masked patches {want}");
}

fn classifier_config(finetune: FineTune) -> ClassifierConfig {
    ClassifierConfig { in_channels: 2, finetune, seed: 4 }
}

fn lora(scheme: LoraScheme) -> FineTune {
    FineTune::Lora(LoraOptions { scheme, rank: 2, alpha: 4.0, blocks: 1, targets: vec![LoraTarget::Q, LoraTarget::Kv] })
}

#[test]
fn classifier_gradients_full_fine_tuning() {
    let model = Classifier::new(&tiny(), classifier_config(FineTune::Full), DType::F64, &Device::Cpu).unwrap();
    randomize(model.varmap(), 5, 0.5).unwrap();
    let x = uniform("cls-x", &[2, 2, 2, 8, 8], DType::F64);
    let report = check(&[x], model.varmap(), &GradCheckConfig::default(), |xs| model.forward(&xs[0])).unwrap();
    assert!(report.passed(), "{report}");
    let names = var_names(model.varmap());
    assert_eq!(model.trainable_names(), names);
    assert!(names.contains(&"head.weight".into()) && names.contains(&"patch_embed.proj.weight".into()));
    assert_passed_with_gradient(&report, &names);
}

#[test]
fn classifier_gradients_under_lora_reach_the_adapters_and_head_and_skip_the_frozen_blocks() {
    for (scheme, per_layer) in [(LoraScheme::DualLora, 4), (LoraScheme::FfaLora, 1), (LoraScheme::FedSaLora, 2)] {
        let model = Classifier::new(&tiny(), classifier_config(lora(scheme)), DType::F64, &Device::Cpu).unwrap();
        randomize(model.varmap(), 6, 0.5).unwrap();
        let trainable = model.trainable_names();
        // block 1 only (K = 1), q and kv: 2 layers × trainable factors, + head weight and bias
        assert_eq!(trainable.len(), 2 * per_layer + 2, "{scheme:?}: {trainable:?}");
        assert!(trainable.iter().all(|n| n.starts_with("blocks.1.attn.") || n.starts_with("head.")), "{trainable:?}");
        assert_eq!(model.trainable_vars().len(), trainable.len());
        let x = uniform("lora-cls-x", &[2, 2, 2, 8, 8], DType::F64);
        let report = check(&[x], model.varmap(), &GradCheckConfig::default(), |xs| model.forward(&xs[0])).unwrap();
        assert_passed_with_gradient(&report, &trainable);
        for t in &report.tensors {
            let frozen_prefix = t.name == "input.0"
                || t.name == "cls_token"
                || t.name.starts_with("blocks.0.")
                || t.name.starts_with("patch_embed.");
            let adapted_base = t.name.starts_with("blocks.1.") && !trainable.contains(&t.name);
            if frozen_prefix || adapted_base {
                assert!(t.analytic_missing && t.max_abs_numeric > 0.0, "{scheme:?}: {} should be frozen", t.name);
            } else {
                // the head, the trainable factors, and the encoder's final norm (frozen by leaving it out of the
                // optimizer) carry a correct gradient
                assert!(t.passed, "{}:\n{report}", t.name);
            }
        }
    }
}

/// Saves a tiny pretrained MAE as a model folder; `edit` may change its tensors first.
fn fm_folder(dir: &Path, edit: impl FnOnce(&mut BTreeMap<String, Tensor>)) -> FmDir {
    let varmap = VarMap::new();
    Mae::new(seeded_var_builder(&varmap, 7, DType::F32, &Device::Cpu), &tiny()).unwrap();
    randomize(&varmap, 8, 0.3).unwrap();
    let mut tensors: BTreeMap<String, Tensor> =
        varmap.data().lock().unwrap().iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    edit(&mut tensors);
    checkpoint::save(&dir.join("fm.safetensors"), &tensors, &tiny()).unwrap();
    FmDir::open(dir).unwrap()
}

#[test]
fn the_classifier_loads_the_encoder_of_a_foundation_model() {
    let dir = tempfile::tempdir().unwrap();
    let fm = fm_folder(dir.path(), |_| {});
    let model = Classifier::from_fm(&fm, classifier_config(lora(LoraScheme::DualLora)), &Device::Cpu).unwrap();
    let data = model.varmap().data().lock().unwrap();
    for name in ["blocks.1.attn.q.weight", "patch_embed.proj.weight", "cls_token", "norm.bias"] {
        let want = fm.checkpoint().tensors()[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(data[name].flatten_all().unwrap().to_vec1::<f32>().unwrap(), want, "{name}");
    }
    assert!(!data.contains_key("decoder_pred.weight"), "the decoder is not part of the classifier");
    assert!(data.contains_key("blocks.1.attn.kv.lora_local.b") && data.contains_key(&format!("{HEAD}.weight")));
}

#[test]
fn a_foundation_model_with_a_missing_or_mis_shaped_tensor_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let fm = fm_folder(&dir.path().join("missing"), |t| {
        t.remove("blocks.1.mlp.fc2.bias");
    });
    let err = Classifier::from_fm(&fm, classifier_config(FineTune::Full), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("missing tensor blocks.1.mlp.fc2.bias"), "{err}");

    let fm = fm_folder(&dir.path().join("shape"), |t| {
        t.insert("blocks.0.attn.kv.weight".into(), Tensor::zeros((5, 12), DType::F32, &Device::Cpu).unwrap());
    });
    let err = Classifier::from_fm(&fm, classifier_config(FineTune::Full), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("mis-shaped blocks.0.attn.kv.weight (expected [24, 12], got [5, 12])"), "{err}");
}

#[test]
fn lora_options_that_do_not_fit_the_model_name_the_option() {
    let cases = [
        (LoraOptions { blocks: 3, ..Default::default() }, "option `lora_blocks`: 3 adapted blocks; the model has 2"),
        (LoraOptions { blocks: 1, rank: 0, ..Default::default() }, "option `lora_rank`"),
        (LoraOptions { blocks: 1, targets: vec![], ..Default::default() }, "option `lora_targets`"),
    ];
    for (options, want) in cases {
        let cfg = classifier_config(FineTune::Lora(options));
        let err = Classifier::new(&tiny(), cfg, DType::F32, &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn the_fragmented_prior_starts_as_image_times_whole_heart() {
    let dir = tempfile::tempdir().unwrap();
    let fm = fm_folder(dir.path(), |_| {});
    let two = Classifier::from_fm(&fm, classifier_config(FineTune::Full), &Device::Cpu).unwrap();
    let six = Classifier::from_fm(
        &fm,
        ClassifierConfig { in_channels: 6, ..classifier_config(FineTune::Full) },
        &Device::Cpu,
    )
    .unwrap();
    // image (2, S, H, W) and labels 0..=3; heart = image × (label > 0), fragmented channel 3f + k = image_f × (label_f = k + 1)
    let image = uniform("frag-image", &[2, 2, 8, 8], DType::F32);
    let labels = (uniform("frag-labels", &[2, 2, 8, 8], DType::F32) * 4.0).unwrap().floor().unwrap();
    let heart = (&image * labels.gt(0.0).unwrap().to_dtype(DType::F32).unwrap()).unwrap();
    let mut parts = Vec::new();
    for f in 0..2 {
        for k in 1..=3 {
            let structure = labels.get(f).unwrap().eq(k as f64).unwrap().to_dtype(DType::F32).unwrap();
            parts.push((image.get(f).unwrap() * structure).unwrap());
        }
    }
    let fragmented = Tensor::stack(&parts, 0).unwrap().unsqueeze(0).unwrap(); // (1, 6, S, H, W)
    let a = two.encoder().embed(&heart.unsqueeze(0).unwrap()).unwrap();
    let b = six.encoder().embed(&fragmented).unwrap();
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "embeddings differ by {diff}");
    let logits = (two.forward(&heart.unsqueeze(0).unwrap()).unwrap() - six.forward(&fragmented).unwrap()).unwrap();
    assert!(logits.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() < 1e-4);
    let err =
        Classifier::new(&tiny(), ClassifierConfig { in_channels: 5, ..Default::default() }, DType::F32, &Device::Cpu)
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("option `in_channels`: 5 is not a multiple of the model's 2 channels"), "{err}");
}

/// A subject with a bright disc of radius `r` (ED) and `r − 1` (ES) on a dark background, in every slice.
fn subject(r: f64, volume: [usize; 3]) -> SubjectTensor {
    let [s, h, w] = volume;
    let mut image = Array4::<f32>::zeros((2, s, h, w));
    let mut mask = Array4::<u8>::zeros((2, s, h, w));
    for ((frame, _, y, x), v) in image.indexed_iter_mut() {
        let d = ((y as f64 - 3.5).powi(2) + (x as f64 - 3.5).powi(2)).sqrt();
        if d < r - frame as f64 {
            *v = 0.9;
            mask[[frame, 0, y, x]] = 1;
        } else {
            *v = 0.1;
        }
    }
    SubjectTensor { image, mask, spacing_mm: [8.0, 1.5, 1.5], source_sha256: vec![] }
}

/// Six train subjects on two sites and one test subject.
fn cohort(dir: &Path, volume: [usize; 3]) {
    let rows: Vec<_> = (0..7)
        .map(|i| {
            row(&format!("s{i}"), &format!("site{}", i % 2), "NOR", if i < 6 { Split::Train } else { Split::Test })
        })
        .collect();
    write_cohort(dir, &rows, |i, _| subject(2.0 + (i % 3) as f64, volume));
}

fn pretrain_config(cohort: &Path, out: &Path, epochs: usize) -> PretrainConfig {
    PretrainConfig {
        cohort: cohort.into(),
        out: out.into(),
        options: PretrainOptions {
            epochs,
            batch: 2,
            lr: 1e-2,
            warmup_epochs: 1,
            seed: 9,
            vit: tiny(),
            ..Default::default()
        },
        device: Device::Cpu,
        force: false,
    }
}

#[test]
fn pretraining_is_deterministic_learns_and_writes_a_model_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cohort");
    cohort(&data, [2, 8, 8]);
    let mut seen = Vec::new();
    let cfg = pretrain_config(&data, &dir.path().join("a"), 12);
    let report = pretrain::run(&cfg, &mut |p| seen.push((p.epoch, p.step, p.steps))).unwrap();
    // 6 train subjects (both sites, not the test one) in batches of 2: 3 steps per epoch
    assert_eq!((report.subjects, report.steps), (6, 36));
    assert_eq!(seen.first(), Some(&(1, 1, 36)));
    assert_eq!(seen.last(), Some(&(12, 36, 36)));
    let losses = &report.epoch_losses;
    assert!(losses[11] < 0.8 * losses[0], "the loss decreases: {losses:?}");

    let again = pretrain::run(&pretrain_config(&data, &dir.path().join("b"), 12), &mut |_| {}).unwrap();
    let bytes = |d: &str| std::fs::read(dir.path().join(d).join("fm.safetensors")).unwrap();
    assert_eq!(bytes("a"), bytes("b"), "same cohort and seed, same weights");
    for file in ["fm.safetensors.sha256", "fm.json", "training.json", "README.md"] {
        let read = |d: &str| std::fs::read(dir.path().join(d).join(file)).unwrap();
        assert_eq!(read("a"), read("b"), "{file} is the same for the same cohort and seed");
    }
    assert_eq!(report.sha256, again.sha256);

    let fm = FmDir::open(&dir.path().join("a")).unwrap();
    assert_eq!(fm.config(), &tiny());
    assert_eq!(fm.sha256(), report.sha256);
    let training: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("a/training.json")).unwrap()).unwrap();
    assert_eq!(training["options"]["seed"], 9);
    assert_eq!(training["report"]["epoch_losses"].as_array().unwrap().len(), 12);
    assert_eq!(training["report"]["cohort_sha256"].as_str().unwrap().len(), 64);
    let card = std::fs::read_to_string(dir.path().join("a/README.md")).unwrap();
    assert!(card.contains("masked autoencoder") && card.contains(&report.sha256), "{card}");

    // an existing folder is kept unless forced
    let err = pretrain::run(&cfg, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("exists"), "{err}");
    assert_eq!(bytes("a"), bytes("b"));
}

#[test]
fn pretraining_refuses_a_cohort_whose_volume_is_not_the_models() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cohort");
    cohort(&data, [2, 8, 8]);
    let mut cfg = pretrain_config(&data, &dir.path().join("fm"), 1);
    cfg.options.vit.volume = [4, 8, 8];
    let err = pretrain::run(&cfg, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("s0.safetensors") && err.contains("[2, 2, 8, 8]") && err.contains("[2, 4, 8, 8]"), "{err}");
    assert!(!dir.path().join("fm").exists());
}
