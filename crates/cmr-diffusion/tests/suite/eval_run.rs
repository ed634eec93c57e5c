//! `diffusion evaluate` end to end (issue 6, item 7) on the tiny 16-pixel cohort and models of `pipeline.rs`: the
//! report has every section with the right counts, Dice values in [0, 1], the shuffled-mask control, and the same
//! inputs give byte-identical files; bad options and an existing output are refused before any work.

use std::path::Path;

use candle_core::Device;
use cmr_diffusion::evaluation::dice::Structure;
use cmr_diffusion::evaluation::run::{evaluate, EvaluateConfig};
use cmr_diffusion::pipeline::generate::SamplingOptions;

use crate::eval_segmenter::segmenter_path;
use crate::pipeline::{encoder, trained_models};

fn config<'a>(model: &Path, cohort: &Path, out: &Path) -> EvaluateConfig<'a> {
    EvaluateConfig {
        model: model.into(),
        cohort: cohort.into(),
        out: out.into(),
        subjects: 2,
        samples: 2,
        sampling: SamplingOptions { steps: 2, guidance: 2.0, batch: 2, ..Default::default() },
        seed: 4,
        segmenter: segmenter_path(),
        text_encoder: encoder(),
        device: Device::Cpu,
        force: false,
    }
}

#[test]
fn evaluation_reports_every_measure_and_is_deterministic() {
    // Prepare: 4 train subjects (F, M, F, M; 2 slices × ED/ES, every image with a heart) and 1 val subject.
    let tmp = tempfile::tempdir().unwrap();
    let (_, control) = trained_models(tmp.path());
    let cohort = tmp.path().join("cohort");
    let (a, b) = (tmp.path().join("eval-a"), tmp.path().join("eval-b"));

    // Execute.
    let report = evaluate(&config(&control, &cohort, &a), &|_, _| {}).unwrap();

    // Assert: two subjects (one per sex), each the other's shuffled partner; 4 heart images each.
    assert_eq!(report.subjects.len(), 2);
    let ids: Vec<&str> = report.subjects.iter().map(|s| s.subject_id.as_str()).collect();
    assert_eq!(report.subjects[0].shuffled_partner, ids[1]);
    assert_eq!(report.subjects[1].shuffled_partner, ids[0]);
    assert_eq!(report.heart_images, 8);
    for dice in [&report.dice, &report.dice_per_image] {
        let groups: Vec<&str> = dice.keys().map(String::as_str).collect();
        assert_eq!(groups, ["bmi_class=normal", "overall", "sex=F", "sex=M"]);
        assert_eq!(dice["overall"].subjects, 2);
        assert_eq!(dice["sex=F"].subjects, 1);
        for group in dice.values() {
            for means in [&group.real, &group.generated, &group.shuffled, &group.mask_overlap] {
                for s in Structure::ALL {
                    assert!(means.get(s).mean.is_none_or(|d| (0.0..=1.0).contains(&d)), "{s:?}: {:?}", means.get(s));
                }
            }
        }
    }
    // Every image's mask has an LV: its Dice is always defined — per image, 8 real images and 2 samples × 8
    // generated ones; per volume, 2 subjects × ED/ES real volumes and 2 samples × 4 generated ones.
    for (dice, real) in [(&report.dice_per_image, 8), (&report.dice, 4)] {
        let overall = &dice["overall"];
        assert_eq!(overall.real.get(Structure::Lv).n, real);
        assert_eq!(overall.generated.get(Structure::Lv).n, 2 * real);
        assert_eq!(overall.shuffled.get(Structure::Lv).n, 2 * real, "the shuffled-mask control");
        assert_eq!(overall.mask_overlap.get(Structure::Lv).n, real);
    }
    // The control's ceiling: each subject's mask vs its partner's, once per image or volume, as recomputed here.
    let rows = cmr_core::cohort::read(&cohort).unwrap();
    let lv_of = |id: &str| {
        let row = rows.iter().find(|r| r.subject_id == id).unwrap();
        cmr_io::store::read_tensor(&cohort.join(&row.tensor_path)).unwrap().mask.mapv(|l| l == 1)
    };
    let (lv_a, lv_b) = (lv_of(ids[0]), lv_of(ids[1]));
    let (frames, slices, _, _) = lv_a.dim();
    // Pooled Dice of the LV over `planes` (frame, slice) of the two subjects.
    let dice = |planes: &[(usize, usize)]| {
        let (mut both, mut sizes) = (0, 0);
        for &(f, s) in planes {
            let (x, y) = (lv_a.slice(ndarray::s![f, s, .., ..]), lv_b.slice(ndarray::s![f, s, .., ..]));
            both += x.iter().zip(&y).filter(|(a, b)| **a && **b).count();
            sizes += x.iter().filter(|v| **v).count() + y.iter().filter(|v| **v).count();
        }
        2.0 * both as f64 / sizes as f64
    };
    let planes: Vec<(usize, usize)> = (0..frames).flat_map(|f| (0..slices).map(move |s| (f, s))).collect();
    let per_image = planes.iter().map(|&p| dice(&[p])).sum::<f64>() / planes.len() as f64; // symmetric pairs
    let volumes: Vec<Vec<(usize, usize)>> = (0..frames).map(|f| (0..slices).map(|s| (f, s)).collect()).collect();
    let per_volume = volumes.iter().map(|v| dice(v)).sum::<f64>() / frames as f64;
    for (dice, expected) in [(&report.dice_per_image, per_image), (&report.dice, per_volume)] {
        let overlap = dice["overall"].mask_overlap.get(Structure::Lv).mean.unwrap();
        assert!((overlap - expected).abs() < 1e-12, "{overlap} vs {expected}");
    }
    assert!((per_image - per_volume).abs() > 1e-6, "the test tells the units apart");
    // Fréchet: 2 reference subjects × 4 images; one distance per sample.
    assert_eq!(report.frechet.reference_subjects.len(), 2);
    assert!(report.frechet.reference_subjects.iter().all(|r| !ids.contains(&r.as_str())));
    assert_eq!(report.frechet.reference_images, 8);
    assert_eq!(report.frechet.generated_per_sample.len(), 2);
    assert!(report.frechet.generated.is_some_and(|d| d >= 0.0) && report.frechet.real.is_some_and(|d| d >= 0.0));
    // Diversity: 1 pair of samples per image; 1 real pair per image.
    assert_eq!((report.diversity.generated_pairs, report.diversity.real_pairs), (8, 8));
    // Memorisation: 4 train subjects × 4 images searched; the val subject's 4 images as the held-out baseline.
    assert_eq!((report.memorisation.reference_images, report.memorisation.held_out_images), (16, 4));
    assert!((0.0..=1.0).contains(&report.memorisation.generated_rate));
    // Probes: only sex varies in the cohort; one prediction per sample, and per real subject. The probe is fit on
    // the 2 slices of each real subject not evaluated: the 2 other train subjects and the val subject.
    assert_eq!(report.attributes.keys().collect::<Vec<_>>(), ["sex"]);
    let sex = &report.attributes["sex"];
    assert_eq!(sex.classes, ["F", "M"]);
    assert_eq!((sex.generated.n, sex.real.n, sex.train_slices), (4, 2, 6));
    assert!(sex.generated.lo <= sex.generated.accuracy && sex.generated.accuracy <= sex.generated.hi);
    // Prompt swaps: each subject's sex swapped (F ↔ M), nothing else in the prompt, one pair per subject, and one
    // real pair (F vs M). Every subject has a normal BMI, so no probe can score a BMI swap and none is generated.
    for subject in &report.subjects {
        let other_sex = if subject.prompt.starts_with("Female") { "Male" } else { "Female" };
        let (own_sex, rest) = subject.prompt.split_once(',').unwrap();
        assert_eq!(subject.swapped_prompts["sex"], format!("{other_sex},{rest}"), "{own_sex}");
        assert!(subject.prompt.contains("normal BMI"), "{}", subject.prompt);
        assert_eq!(subject.swapped_prompts.keys().collect::<Vec<_>>(), ["sex"]);
    }
    assert_eq!(report.prompt_swaps.keys().collect::<Vec<_>>(), ["sex"]);
    let swap = &report.prompt_swaps["sex"];
    assert_eq!(
        (swap.order.as_slice(), swap.ordered.n, swap.ordered.chance, swap.real_pairs),
        (&["F".to_string(), "M".to_string()][..], 2, 0.5, 1)
    );
    assert!([0.0, 0.5, 1.0].contains(&swap.ordered.accuracy) && swap.ordered.lo <= swap.ordered.hi);
    assert!(swap.real_concordance.is_some_and(|c| c == 0.0 || c == 1.0) && swap.mean_shift.is_finite());

    // Both sides through serde_json's text parser, which may round a float's last digit differently from ryu's print.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("evaluation.json")).unwrap()).unwrap();
    assert_eq!(json, serde_json::from_str::<serde_json::Value>(&serde_json::to_string(&report).unwrap()).unwrap());
    let md = std::fs::read_to_string(a.join("evaluation.md")).unwrap();
    assert_eq!(md.matches("| overall | 2 |").count(), 2, "per volume and per image: {md}");
    assert!(md.contains("## Fréchet distance") && md.contains("| sex | F < M | "), "{md}");
    assert_eq!(file_names(&a), ["evaluation.json", "evaluation.md"]);

    // The same inputs give byte-identical files.
    evaluate(&config(&control, &cohort, &b), &|_, _| {}).unwrap();
    for file in ["evaluation.json", "evaluation.md"] {
        assert_eq!(std::fs::read(a.join(file)).unwrap(), std::fs::read(b.join(file)).unwrap(), "{file}");
    }
}

/// Files directly in `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn bad_options_and_an_existing_output_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, control) = trained_models(tmp.path());
    let cohort = tmp.path().join("cohort");
    let out = tmp.path().join("eval");
    let fails = |cfg: EvaluateConfig| evaluate(&cfg, &|_, _| panic!("no work")).unwrap_err().to_string();

    let message = fails(EvaluateConfig { subjects: 3, ..config(&control, &cohort, &out) });
    assert!(message.contains("subjects") && message.contains("4 real train subjects"), "{message}");
    let message = fails(EvaluateConfig { samples: 1, ..config(&control, &cohort, &out) });
    assert!(message.contains("samples"), "{message}");
    let message = fails(config(&base, &cohort, &out));
    assert!(message.contains("ControlNet"), "{message}");
    let message =
        fails(EvaluateConfig { segmenter: tmp.path().join("nowhere.onnx"), ..config(&control, &cohort, &out) });
    assert!(message.contains("nowhere.onnx"), "{message}");
    assert!(!out.exists(), "nothing written");

    std::fs::create_dir(&out).unwrap();
    let message = fails(config(&control, &cohort, &out));
    assert!(message.contains("eval"), "{message}");
}
