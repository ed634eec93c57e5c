//! Issue 6, items 5 and 6 on a tiny hand-made cohort and a tiny UNet: training writes a complete model folder,
//! an interrupted run resumes to the very files (weights, record, card) of an uninterrupted one, generation is
//! deterministic, resumable and refuses mask sources outside the train split.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::Device;
use cmr_core::{CohortRow, Sex, Source, Split};
use cmr_diffusion::models::{DownBlockType, UNet2dConditionConfig, UpBlockType};
use cmr_diffusion::pipeline::generate::{self, GenerateConfig, SamplingOptions};
use cmr_diffusion::pipeline::model_dir::ModelDir;
use cmr_diffusion::pipeline::train::{self, Stage, TrainConfig, TrainOptions};
use cmr_io::store::{write_tensor, SubjectTensor};
use cmr_nn::resolve::{Resolver, MINILM};
use cmr_nn::text::{SentenceEncoder, SentenceEncoderConfig};
use ndarray::Array4;

const SIZE: usize = 16;

pub(crate) fn encoder() -> &'static SentenceEncoder {
    static ENCODER: OnceLock<SentenceEncoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/external");
        let resolver = Resolver { external_root: root, hf_cache: None, ..Default::default() };
        let model = resolver.resolve(&MINILM).expect("all-MiniLM-L6-v2 (run scripts/fetch-assets.sh)");
        SentenceEncoder::load(&model, &Device::Cpu, SentenceEncoderConfig::default()).unwrap()
    })
}

/// A disc heart: LV radius `r`, a 2-pixel myocardium, an RV to the left; ES smaller than ED.
fn subject(r: usize) -> SubjectTensor {
    let mut mask = Array4::<u8>::zeros((2, 2, SIZE, SIZE));
    let mut image = Array4::<f32>::zeros((2, 2, SIZE, SIZE));
    for ((frame, slice, y, x), label) in mask.indexed_iter_mut() {
        let radius = (r - frame - slice) as f64;
        let d = ((y as f64 - 8.0).powi(2) + (x as f64 - 9.0).powi(2)).sqrt();
        let d_rv = ((y as f64 - 8.0).powi(2) + (x as f64 - 3.0).powi(2)).sqrt();
        *label = if d < radius {
            1
        } else if d < radius + 2.0 {
            2
        } else if d_rv < 2.5 {
            3
        } else {
            0
        };
        image[[frame, slice, y, x]] = [0.1, 0.9, 0.3, 0.8][usize::from(*label)];
    }
    SubjectTensor { image, mask, spacing_mm: [8.0, 1.5, 1.5], source_sha256: vec!["0".repeat(64)] }
}

/// Four train subjects (two prompts) and one validation subject.
fn cohort(dir: &Path) {
    std::fs::create_dir_all(dir.join("tensors")).unwrap();
    let mut rows = Vec::new();
    for (i, (split, sex)) in [
        (Split::Train, Sex::F),
        (Split::Train, Sex::M),
        (Split::Train, Sex::F),
        (Split::Train, Sex::M),
        (Split::Val, Sex::F),
    ]
    .into_iter()
    .enumerate()
    {
        let tensor_path = format!("tensors/s{i}.safetensors");
        let sha = write_tensor(&dir.join(&tensor_path), &subject(3 + i % 2)).unwrap();
        rows.push(CohortRow {
            subject_id: format!("acdc:s{i}"),
            dataset: "acdc".into(),
            site: "acdc".into(),
            vendor: "Siemens".into(),
            sex: Some(sex),
            age: Some(55.0),
            height_cm: None,
            weight_kg: None,
            bmi: Some(24.0),
            age_band: Some("50s".into()),
            bmi_class: Some("normal".into()),
            diagnosis: "HCM".into(),
            label: 1,
            split,
            source: Source::Real,
            parent_subject: None,
            generator_sha256: None,
            seed: None,
            prompt: format!(
                "{}, age in 50s, normal BMI, hypertrophic cardiomyopathy",
                if sex == Sex::F { "Female" } else { "Male" }
            ),
            tensor_path,
            tensor_sha256: sha,
        });
    }
    cmr_core::cohort::write(dir, &rows).unwrap();
}

fn tiny_options(steps: usize) -> TrainOptions {
    TrainOptions {
        steps,
        batch: 2,
        warmup_steps: 1,
        checkpoint_every: 2,
        preview_every: 2,
        seed: 5,
        unet: UNet2dConditionConfig {
            block_out_channels: vec![8, 16],
            down_block_types: vec![DownBlockType::DownBlock2D, DownBlockType::CrossAttnDownBlock2D],
            up_block_types: vec![UpBlockType::CrossAttnUpBlock2D, UpBlockType::UpBlock2D],
            layers_per_block: 1,
            norm_num_groups: 4,
            num_attention_heads: 2,
            use_linear_projection: true,
            ..Default::default()
        },
        conditioning_embedding_out_channels: vec![4, 8],
        ..Default::default()
    }
}

fn train_config<'a>(cohort: &Path, out: &Path, stage: Stage, base: Option<&Path>, steps: usize) -> TrainConfig<'a> {
    TrainConfig {
        cohort: cohort.into(),
        out: out.into(),
        stage,
        base: base.map(Into::into),
        options: tiny_options(steps),
        text_encoder: encoder(),
        device: Device::Cpu,
        force: false,
    }
}

/// A base and a ControlNet model trained for a few steps on the tiny cohort in `dir` (written to `dir/cohort`).
pub(crate) fn trained_models(dir: &Path) -> (PathBuf, PathBuf) {
    cohort(&dir.join("cohort"));
    let (base, control) = (dir.join("base"), dir.join("control"));
    train::run(&train_config(&dir.join("cohort"), &base, Stage::Base, None, 3), &|_, _, _| {}).unwrap();
    train::run(&train_config(&dir.join("cohort"), &control, Stage::Controlnet, Some(&base), 3), &|_, _, _| {}).unwrap();
    (base, control)
}

#[test]
fn training_writes_a_complete_model_folder_and_resumes_to_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    cohort(&tmp.path().join("cohort"));
    let cohort_dir = tmp.path().join("cohort");

    let whole = tmp.path().join("whole");
    let report = train::run(&train_config(&cohort_dir, &whole, Stage::Base, None, 5), &|_, _, _| {}).unwrap();
    assert_eq!((report.steps, report.resumed_from, report.subjects, report.slices), (5, 0, 4, 8));
    assert_eq!(report.prompts, 3, "two prompts and the empty one");
    for file in [
        "unet.safetensors",
        "unet.json",
        "unet.safetensors.sha256",
        "scheduler.json",
        "training.json",
        "README.md",
        "preview.png",
    ] {
        assert!(whole.join(file).is_file(), "{file} written");
    }
    for step in [2, 4] {
        assert!(whole.join(format!("previews/step-{step}.png")).is_file(), "validation grid of step {step}");
    }
    let model = ModelDir::open(&whole).unwrap();
    assert!(!model.has_controlnet());
    // Published in float16 (TrainOptions::store_f16), read back into float32 networks.
    let stored = cmr_nn::checkpoint::Checkpoint::load(&whole.join("unet.safetensors"), &Device::Cpu).unwrap();
    assert!(stored.tensors().values().all(|t| t.dtype() == candle_core::DType::F16));
    assert!(model.unet(candle_core::DType::F32, &Device::Cpu).is_ok());

    // Interrupt a second run after step 3 (a checkpoint exists at step 2), then rerun it.
    let resumed = tmp.path().join("resumed");
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train::run(&train_config(&cohort_dir, &resumed, Stage::Base, None, 5), &|step, _, _| {
            assert!(step < 3, "simulated kill");
        })
    }));
    assert!(interrupted.is_err() && !resumed.exists(), "no partial model folder");
    let report = train::run(&train_config(&cohort_dir, &resumed, Stage::Base, None, 5), &|_, _, _| {}).unwrap();
    assert_eq!(report.resumed_from, 2);
    let (whole_files, resumed_files) = (folder_bytes(&whole), folder_bytes(&resumed));
    assert_eq!(whole_files.keys().collect::<Vec<_>>(), resumed_files.keys().collect::<Vec<_>>(), "the same files");
    for (file, bytes) in &whole_files {
        assert!(
            resumed_files[file] == *bytes,
            "{file} of the resumed run is byte-identical to the uninterrupted run's"
        );
    }
    let training: serde_json::Value = serde_json::from_slice(&whole_files["training.json"]).unwrap();
    assert_eq!(training["losses"].as_array().map(Vec::len), Some(5), "the loss of every step, resumed ones included");
}

/// Every file under `dir` (relative path → bytes).
fn folder_bytes(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn generation_is_deterministic_resumable_and_guarded() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, control) = trained_models(tmp.path());
    let cohort_dir = tmp.path().join("cohort");
    let plan = tmp.path().join("plan.csv");
    std::fs::write(
        &plan,
        "plan_id,mask_source,prompt,seed,sex,age,label\n\
         p1,acdc:s0,\"Male, age in 50s, normal BMI, hypertrophic cardiomyopathy\",11,M,57.5,1\n\
         p2,acdc:s1,\"Female, age in 50s, normal BMI, hypertrophic cardiomyopathy\",12,F,52,1\n",
    )
    .unwrap();
    let config = |out: &Path| GenerateConfig {
        model: control.clone(),
        plan: plan.clone(),
        cohort: cohort_dir.clone(),
        out: out.into(),
        sampling: SamplingOptions { steps: 3, guidance: 2.0, batch: 2, ..Default::default() },
        text_encoder: encoder(),
        device: Device::Cpu,
        force: false,
    };
    let (a, b) = (tmp.path().join("syn-a"), tmp.path().join("syn-b"));
    let report = generate::run(&config(&a), &|_, _| {}).unwrap();
    assert_eq!((report.generated, report.reused), (2, 0));
    let rows = cmr_core::cohort::read(&a).unwrap();
    assert_eq!(rows.len(), 2);
    let row = &rows[0];
    assert_eq!(row.subject_id, "synthetic:p1");
    assert_eq!((row.source, row.split, row.sex, row.age), (Source::Synthetic, Split::Train, Some(Sex::M), Some(57.5)));
    assert_eq!(row.parent_subject.as_deref(), Some("acdc:s0"));
    assert_eq!(row.generator_sha256.as_deref(), Some(ModelDir::open(&control).unwrap().generator_sha256().as_str()));
    assert_eq!(row.seed, Some(11));
    cmr_core::manifest::Manifest::read(&a).unwrap().verify(&a).unwrap();
    let tensor = cmr_io::store::read_tensor(&a.join(&row.tensor_path)).unwrap();
    assert_eq!(tensor.mask, subject(3).mask, "the mask is the source's");
    assert!(tensor.image.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(a.join("subjects/synthetic_p1/synthetic_p1_ED.nii.gz").is_file());

    // Same plan and model → byte-identical tensors; an interrupted run keeps its finished subjects.
    generate::run(&config(&b), &|_, _| {}).unwrap();
    for r in &rows {
        assert_eq!(std::fs::read(a.join(&r.tensor_path)).unwrap(), std::fs::read(b.join(&r.tensor_path)).unwrap());
    }
    let c = tmp.path().join("syn-c");
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        generate::run(&config(&c), &|done, _| assert!(done < 1, "kill"))
    }));
    assert!(interrupted.is_err() && !c.exists());
    let report = generate::run(&config(&c), &|_, _| {}).unwrap();
    assert_eq!((report.generated, report.reused), (1, 1));
    assert_eq!(std::fs::read(a.join(&row.tensor_path)).unwrap(), std::fs::read(c.join(&row.tensor_path)).unwrap());

    // A finished subject of an interrupted run whose plan row has changed since is made again, not reused.
    let e = tmp.path().join("syn-e");
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        generate::run(&config(&e), &|done, _| assert!(done < 1, "kill"))
    }));
    assert!(interrupted.is_err());
    let original = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, original.replace(",11,M,", ",99,M,")).unwrap();
    let report = generate::run(&config(&e), &|_, _| {}).unwrap();
    assert_eq!((report.generated, report.reused), (2, 0));
    assert_eq!(cmr_core::cohort::read(&e).unwrap()[0].seed, Some(99));

    // So is one of an interrupted run with other sampling options, and the folder names the options it was made with.
    let f = tmp.path().join("syn-f");
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        generate::run(&config(&f), &|done, _| assert!(done < 1, "kill"))
    }));
    assert!(interrupted.is_err());
    let stronger =
        GenerateConfig { sampling: SamplingOptions { conditioning_scale: 1.5, ..config(&f).sampling }, ..config(&f) };
    let report = generate::run(&stronger, &|_, _| {}).unwrap();
    assert_eq!((report.generated, report.reused), (2, 0));
    let recorded: SamplingOptions =
        serde_json::from_slice(&std::fs::read(f.join(generate::SAMPLING_FILE)).unwrap()).unwrap();
    assert_eq!(recorded, stronger.sampling);
    let first = &cmr_core::cohort::read(&f).unwrap()[0];
    assert_ne!(
        std::fs::read(e.join(&first.tensor_path)).unwrap(),
        std::fs::read(f.join(&first.tensor_path)).unwrap(),
        "a stronger ControlNet scale changes the images"
    );

    // A mask source outside the train split is refused before any work.
    std::fs::write(&plan, "plan_id,mask_source,prompt,seed\np9,acdc:s4,x,1\n").unwrap();
    let err = generate::run(&config(&tmp.path().join("syn-d")), &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("acdc:s4") && err.contains("Val") && err.contains("train"), "{err}");
    assert!(!tmp.path().join("syn-d").exists());
}
