//! `cmr-debias diffusion …` end to end (issue 6) on the small phantom cohort: train the base UNet and the ControlNet
//! for a few steps, plan with `balance plan`, generate from that plan, and merge with `balance merge` — the contract
//! between the three stages — plus the generator's refusals at the binary, and `diffusion evaluate` of the model.

use std::path::PathBuf;

use cmr_core::{Source, Split};

use crate::util::{cohort, files_under};

/// `models/external/<rel>` as `scripts/fetch-assets.sh` lays it out (the binary runs in a temporary folder).
fn asset(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/external").join(rel);
    path.to_string_lossy().into_owned()
}

fn text_encoder() -> String {
    asset("all-MiniLM-L6-v2")
}

#[test]
fn train_plan_generate_merge() {
    let ws = cohort();
    let encoder = text_encoder();
    let train = |out: &str, extra: &[&str]| {
        let mut args = vec!["diffusion", "train", "--cohort", "cohort", "--out", out, "--steps", "2", "--batch", "2"];
        args.extend(["--text-encoder", &encoder]);
        args.extend(extra);
        ws.ok(&args)
    };
    train("base", &[]);
    train("control", &["--stage", "controlnet", "--base", "base"]);
    for file in ["unet.safetensors", "controlnet.safetensors", "scheduler.json", "README.md", "preview.png"] {
        assert!(ws.path("control").join(file).is_file(), "control/{file}");
    }
    // The model card's command, with its folders filled in, trains the same weights again.
    let card = std::fs::read_to_string(ws.path("control/README.md")).unwrap();
    let command = card.split("- **command**: `").nth(1).and_then(|rest| rest.split('`').next()).expect("a command");
    let filled =
        command.replace("BASE_MODEL_DIR", "base").replace("MODEL_DIR", "control-again").replace("COHORT", "cohort");
    let args: Vec<&str> = filled.split_whitespace().collect();
    assert_eq!(args[..2], ["cmr-debias", "diffusion"], "{command}");
    ws.ok(&[&args[1..], &["--text-encoder", &encoder]].concat());
    for file in ["controlnet.safetensors", "unet.safetensors"] {
        assert_eq!(
            std::fs::read(ws.path("control").join(file)).unwrap(),
            std::fs::read(ws.path("control-again").join(file)).unwrap(),
            "{file}"
        );
    }

    ws.ok(&["balance", "plan", "--cohort", "cohort", "--by", "sex,label", "--out", "plan", "--seed", "3"]);
    let planned = std::fs::read_to_string(ws.path("plan/plan.csv")).unwrap().lines().count() - 1;
    assert!(planned > 0, "the phantom cohort needs some synthetic subjects by sex × label");
    let generate = |model: &'static str, out: &'static str| {
        let args = ["diffusion", "generate", "--model", model, "--plan", "plan/plan.parquet", "--cohort", "cohort"];
        [&args[..], &["--out", out, "--steps", "2", "--text-encoder", &encoder, "--json"]].concat()
    };
    let out = ws.ok(&generate("control", "synthetic"));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["generated"], planned);

    ws.ok(&["balance", "merge", "--cohort", "cohort", "--synthetic", "synthetic", "--out", "augmented"]);
    let real = cmr_core::cohort::read(&ws.path("cohort")).unwrap();
    let merged = cmr_core::cohort::read(&ws.path("augmented")).unwrap();
    let synthetic: Vec<_> = merged.iter().filter(|r| r.source == Source::Synthetic).collect();
    assert_eq!((merged.len(), synthetic.len()), (real.len() + planned, planned));
    for row in synthetic {
        assert!(row.subject_id.starts_with("synthetic:0"), "{}: the plan id is the subject id", row.subject_id);
        assert_eq!(row.split, Split::Train);
        let parent = real.iter().find(|r| Some(&r.subject_id) == row.parent_subject.as_ref()).expect("parent");
        assert_eq!(parent.split, Split::Train, "{} made from a train subject", row.subject_id);
    }

    // The evaluation of the model through the binary: every section, for the two subjects asked for.
    let segmenter = asset("myopari/tiramisu_acdc_fp32.onnx");
    fn evaluate<'a>(out: &'a str, segmenter: &'a str, encoder: &'a str) -> Vec<&'a str> {
        let args = ["diffusion", "evaluate", "--model", "control", "--cohort", "cohort", "--out", out];
        let options = ["--subjects", "2", "--samples", "2", "--steps", "1", "--guidance", "1", "--json"];
        [&args[..], &options, &["--segmenter", segmenter, "--text-encoder", encoder]].concat()
    }
    let out = ws.ok(&evaluate("evaluation", &segmenter, &encoder));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["subjects"].as_array().map(Vec::len), Some(2));
    let overall = &report["dice"]["overall"];
    for arm in ["generated", "real", "shuffled", "mask_overlap"] {
        for structure in ["LV", "MYO", "RV"] {
            let mean = &overall[arm][structure]["mean"];
            assert!(mean.is_null() || (0.0..=1.0).contains(&mean.as_f64().unwrap()), "{arm} {structure}: {mean}");
        }
    }
    assert!(overall["real"]["LV"]["n"].as_u64().unwrap() > 0, "real heart images segmented");
    for section in ["frechet", "diversity", "memorisation", "attributes"] {
        assert!(report[section].is_object(), "{section} reported");
    }
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("evaluation/evaluation.json")).unwrap()).unwrap();
    assert_eq!(written, report, "--json prints what evaluation.json holds");
    assert!(std::fs::read_to_string(ws.path("evaluation/evaluation.md")).unwrap().contains("shuffled"));
    // A segmenter that is not there: an error naming it, nothing written.
    let err = ws.fails(&evaluate("no-segmenter", "absent.onnx", &encoder));
    assert!(err.contains("absent.onnx"), "{err}");
    assert!(!ws.path("no-segmenter").exists());

    // A model without a ControlNet cannot follow masks: refused, nothing written.
    let err = ws.fails(&generate("base", "refused"));
    assert!(err.contains("base") && err.contains("ControlNet"), "{err}");
    assert!(!ws.path("refused").exists());
    assert!(files_under(&ws.path("synthetic")).iter().any(|f| f.ends_with("_preview.png")));
}
