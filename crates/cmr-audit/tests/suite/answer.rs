//! The HTML report of a comparison opens with the answer (issue 8): overall and worst-group balanced accuracy before
//! and after, each with its interval, and then example synthetic subjects (their previews and prompts) when a
//! synthetic folder is given.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use cmr_audit::bootstrap::Estimate;
use cmr_audit::metrics::Metric;
use cmr_audit::AuditConfig;
use cmr_core::Source;

use crate::common::{cohort_row, simulate, write_predictions};

/// A synthetic folder as `diffusion generate` writes it: `cohort.parquet` and one preview per subject. Subjects
/// `syn-0` … `syn-{n-1}`; the prompt of subject `i` is `prompts[i]`; the preview's bytes name the subject.
fn synthetic_folder(dir: &Path, prompts: &[&str]) -> PathBuf {
    let rows: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, prompt)| {
            let mut row = cohort_row(&format!("syn-{i}"), "F");
            row.source = Source::Synthetic;
            row.parent_subject = Some(format!("real-{i}"));
            row.prompt = (*prompt).into();
            row.tensor_path = format!("tensors/syn-{i}.safetensors");
            let preview = dir.join(format!("subjects/syn-{i}/syn-{i}_preview.png"));
            std::fs::create_dir_all(preview.parent().unwrap()).unwrap();
            std::fs::write(&preview, format!("png of syn-{i}")).unwrap();
            row
        })
        .collect();
    cmr_core::cohort::write(dir, &rows).unwrap();
    dir.into()
}

/// `0.812 [0.790, 0.834]`: an estimate as the report prints it.
fn bootstrap_text(e: &Estimate) -> String {
    format!("{:.3} [{:.3}, {:.3}]", e.value.unwrap(), e.ci_low.unwrap(), e.ci_high.unwrap())
}

fn compared(dir: &Path, examples: Option<PathBuf>) -> AuditConfig {
    let subjects = simulate(400, 3);
    let mut cfg =
        AuditConfig::new(write_predictions(&dir.join("baseline.csv"), &subjects, false, true), dir.join("audit"));
    cfg.compare = Some(write_predictions(&dir.join("augmented.csv"), &subjects, true, false));
    cfg.by = vec!["sex".into(), "site".into()];
    cfg.bootstrap = 100;
    cfg.examples = examples;
    cfg
}

#[test]
fn the_page_opens_with_overall_and_worst_group_balanced_accuracy_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = compared(dir.path(), None);
    let report = cmr_audit::run(&cfg).unwrap();
    let html = std::fs::read_to_string(cfg.out.join("report.html")).unwrap();
    let first_section = html.find("<h2>").expect("a section");
    let answer = &html[first_section..html[first_section + 4..].find("<h2>").unwrap() + first_section + 4];
    assert!(answer.starts_with("<h2>Did augmented close the subgroup gap?</h2>"), "{answer}");
    // overall: both models' estimates with their intervals
    for model in &report.models {
        let text = bootstrap_text(model.overall.metrics.get(Metric::BalancedAccuracy));
        assert!(text.contains('['), "an interval: {text}");
        assert!(answer.contains(&text), "overall {text} of {} missing from:\n{answer}", model.label);
    }
    // one row per attribute for the baseline's worst group, with both models' estimates of that group
    let c = report.comparison.as_ref().unwrap();
    for (g, grouping) in c.groupings.iter().enumerate() {
        let worst = grouping.worst_group.as_ref().unwrap();
        assert!(answer.contains(&format!("worst group by {}</td><td>{}", grouping.attribute, worst.group)));
        for model in &report.models {
            let group = model.groupings[g].groups.iter().find(|r| r.group == worst.group).unwrap();
            assert!(answer.contains(&bootstrap_text(group.metrics.get(Metric::BalancedAccuracy))));
        }
    }
    assert!(!html.contains("data:image/png"), "no examples were asked for");
}

#[test]
fn examples_show_distinct_prompts_first_embedded_with_prompt_and_parent() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = ["F, a", "F, a", "M, b", "F, c", "F, a", "M, d", "M, e", "F, f", "M, g"];
    let synthetic = synthetic_folder(&dir.path().join("synthetic"), &prompts);
    let cfg = compared(dir.path(), Some(synthetic));
    let report = cmr_audit::run(&cfg).unwrap();
    // equal attributes: distinct prompts in id order (syn-0, syn-2, syn-3, syn-5, syn-6, syn-7), capped at six
    let shown: Vec<&str> = report.examples.iter().map(|e| e.subject_id.as_str()).collect();
    assert_eq!(shown, ["syn-0", "syn-2", "syn-3", "syn-5", "syn-6", "syn-7"]);
    let html = std::fs::read_to_string(cfg.out.join("report.html")).unwrap();
    assert!(html.find("Did augmented close").unwrap() < html.find("Examples of the synthetic subjects").unwrap());
    let sources = html.matches("src=").count();
    assert_eq!(sources, html.matches("src=\"data:image/png;base64,").count(), "only embedded images: self-contained");
    for e in &report.examples {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("png of {}", e.subject_id));
        assert!(html.contains(&format!("data:image/png;base64,{encoded}")), "{} embedded", e.subject_id);
        assert!(html.contains(&e.prompt) && html.contains(e.parent_subject.as_deref().unwrap()));
    }
    // report.json names the examples and the folder read, without the image bytes
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["examples"].as_array().unwrap().len(), 6);
    assert!(json["examples"][0].get("png").is_none());
    assert!(json["inputs"].as_array().unwrap().iter().any(|i| i["role"] == "examples"));
}

#[test]
fn examples_are_spread_over_sex_age_bmi_and_label() {
    let dir = tempfile::tempdir().unwrap();
    let synthetic = synthetic_folder(&dir.path().join("synthetic"), &["a", "b", "c", "d", "e"]);
    // (sex, age band, BMI class, label) of syn-0 … syn-4
    let strata = [
        ("F", "40s", "normal", 0),
        ("F", "40s", "normal", 1),
        ("F", "50s", "normal", 0),
        ("M", "70s", "obese", 1),
        ("M", "40s", "normal", 0),
    ];
    let mut rows = cmr_core::cohort::read(&synthetic).unwrap();
    for (row, (sex, age, bmi, label)) in rows.iter_mut().zip(strata) {
        (row.sex, row.age_band, row.bmi_class, row.label) =
            (Some(sex.parse().unwrap()), Some(age.into()), Some(bmi.into()), label);
    }
    cmr_core::cohort::write(&synthetic, &rows).unwrap();
    let cfg = compared(dir.path(), Some(synthetic));
    let report = cmr_audit::run(&cfg).unwrap();
    // syn-0 first (all new); syn-3 adds four new values; syn-2 one (50s); syn-1 and syn-4 none, in id order.
    let shown: Vec<&str> = report.examples.iter().map(|e| e.subject_id.as_str()).collect();
    assert_eq!(shown, ["syn-0", "syn-3", "syn-2", "syn-1", "syn-4"]);
}

#[test]
fn a_missing_preview_is_an_error_naming_it_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let synthetic = synthetic_folder(&dir.path().join("synthetic"), &["F, a", "M, b"]);
    let missing = synthetic.join("subjects/syn-1/syn-1_preview.png");
    std::fs::remove_file(&missing).unwrap();
    let cfg = compared(dir.path(), Some(synthetic));
    let err = cmr_audit::run(&cfg).unwrap_err().to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(!cfg.out.exists(), "no partial report");
}
