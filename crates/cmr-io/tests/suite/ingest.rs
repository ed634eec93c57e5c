//! `ingest` and `export` end to end on small datasets written with `cmr_io::nifti`: the cohort folder's contents,
//! determinism, progress, and the export round trip.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::common::*;
use cmr_core::manifest::{sha256_file, Manifest};
use cmr_core::{Dataset, Source};
use cmr_io::export::export_subject;
use cmr_io::ingest::{self, IngestConfig};
use cmr_io::nifti::read_volume;
use cmr_io::store::read_tensor;
use ndarray::{s, Axis};

fn config(root: &Path, out: &Path) -> IngestConfig {
    IngestConfig { size: 24, slices: 3, ..IngestConfig::new(Dataset::Acdc, root, out) }
}

/// Every file under `dir` (relative path → bytes).
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect()
}

#[test]
fn ingest_writes_a_complete_cohort_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("acdc");
    acdc_dataset(&root);
    let calls = Mutex::new(Vec::new());
    let report = ingest::run(&config(&root, &tmp.path().join("cohort")), &|done, total| {
        calls.lock().unwrap().push((done, total))
    })
    .unwrap();

    let names: Vec<String> = files(&report.out).into_keys().collect();
    assert_eq!(
        names,
        [
            "cohort.csv",
            "cohort.parquet",
            "ingest.json",
            "manifest.json",
            "tensors/acdc_patient001.safetensors",
            "tensors/acdc_patient002.safetensors"
        ]
    );
    Manifest::read(&report.out).unwrap().verify(&report.out).unwrap();
    let calls = calls.into_inner().unwrap();
    assert_eq!((calls.first(), calls.last(), calls.len()), (Some(&(0, 2)), Some(&(2, 2)), 3));

    let rows = cmr_core::cohort::read(&report.out).unwrap();
    let p1 = &rows[0];
    assert_eq!((p1.subject_id.as_str(), p1.site.as_str(), p1.vendor.as_str()), ("acdc:patient001", "acdc", "Siemens"));
    assert_eq!((p1.diagnosis.as_str(), p1.label, p1.source), ("HCM", 1, Source::Real));
    assert_eq!((p1.age, p1.bmi_class.as_deref()), (Some(58.0), Some("overweight")));
    assert!((p1.bmi.unwrap() - 25.0).abs() < 1e-9);
    assert_eq!(p1.prompt, "Male, age in 50s, overweight BMI, hypertrophic cardiomyopathy");
    assert_eq!(p1.tensor_sha256, sha256_file(&report.out.join(&p1.tensor_path)).unwrap());
    assert_eq!((rows[1].subject_id.as_str(), rows[1].label, rows[1].sex), ("acdc:patient002", 0, None));

    let t = read_tensor(&report.out.join(&p1.tensor_path)).unwrap();
    assert_eq!(t.image.shape(), [2, 3, 24, 24]);
    // LV in slices 1..=4 of 8 mm: 3 slices spread over 24 mm.
    assert_eq!(t.spacing_mm, [12.0, 1.5, 1.5]);
    assert_eq!(t.source_sha256.len(), 4);
    // The canonical LV (ACDC code 3) is at the crop centre and brighter than the myocardium.
    let ed = t.mask.index_axis(Axis(0), 0);
    let lv: Vec<(usize, usize, usize)> = ed.indexed_iter().filter(|(_, &v)| v == 1).map(|(p, _)| p).collect();
    let mean = |f: fn(&(usize, usize, usize)) -> usize| lv.iter().map(f).sum::<usize>() as f64 / lv.len() as f64;
    assert!((mean(|p| p.1) - 11.5).abs() < 0.5 && (mean(|p| p.2) - 11.5).abs() < 0.5);
    assert!((0..3).all(|k| ed.slice(s![k, .., ..]).iter().any(|&v| v == 1)), "every slice holds LV");
}

#[test]
fn same_inputs_and_seed_give_byte_identical_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("acdc");
    acdc_dataset(&root);
    let a = ingest::run(&config(&root, &tmp.path().join("a")), &|_, _| {}).unwrap();
    let b = ingest::run(&config(&root, &tmp.path().join("b")), &|_, _| {}).unwrap();
    assert_eq!(files(&a.out), files(&b.out));
}

#[test]
fn export_writes_nifti_with_the_tensor_geometry_and_a_preview() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("acdc");
    acdc_dataset(&root);
    let cohort = ingest::run(&config(&root, &tmp.path().join("cohort")), &|_, _| {}).unwrap().out;
    let out = tmp.path().join("export");
    let written = export_subject(&cohort, "acdc:patient001", &out, false).unwrap();
    let names: Vec<String> = written.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        [
            "acdc_patient001_ED.nii.gz",
            "acdc_patient001_ED_gt.nii.gz",
            "acdc_patient001_ES.nii.gz",
            "acdc_patient001_ES_gt.nii.gz",
            "acdc_patient001_preview.png"
        ]
    );
    let t = read_tensor(&cohort.join("tensors/acdc_patient001.safetensors")).unwrap();
    for (frame, image_file, mask_file) in [(0, &written[0], &written[1]), (1, &written[2], &written[3])] {
        let (image, mask) = (read_volume(image_file).unwrap(), read_volume(mask_file).unwrap());
        assert_eq!(image.data.shape(), [24, 24, 3]);
        assert_eq!(image.pixdim[..3], [1.5, 1.5, 12.0]);
        assert_eq!(
            image.affine,
            [[1.5, 0.0, 0.0, 0.0], [0.0, 1.5, 0.0, 0.0], [0.0, 0.0, 12.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
        );
        let expected = t.image.index_axis(Axis(0), frame).permuted_axes([1, 2, 0]).into_dyn();
        assert_eq!(image.data.view(), expected);
        assert_eq!(mask.data, t.mask.index_axis(Axis(0), frame).permuted_axes([1, 2, 0]).mapv(f32::from).into_dyn());
    }
    assert!(std::fs::read(&written[4]).unwrap().starts_with(b"\x89PNG"));

    let err = export_subject(&cohort, "acdc:patient001", &out, false).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    let err = export_subject(&cohort, "acdc:nobody", &tmp.path().join("x"), false).unwrap_err().to_string();
    assert!(err.contains("cohort.parquet") && err.contains("`subject_id`") && err.contains("acdc:patient001"), "{err}");
    assert!(!tmp.path().join("x").exists());
}

/// Both frames of a per-frame subject: `(image stem, mask stem, LV radius)` for ED and ES.
fn ed_es(image: impl Fn(&str) -> String, mask: impl Fn(&str) -> String) -> Vec<(String, String, f64)> {
    vec![(image("ED"), mask("ED"), 10.0), (image("ES"), mask("ES"), 7.0)]
}

#[test]
fn mnms2_folders_and_table_are_matched_by_zero_padded_code() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mnms2");
    for code in ["001", "002", "003"] {
        let files = ed_es(|f| format!("{code}_SA_{f}"), |f| format!("{code}_SA_{f}_gt"));
        write_frames(&root.join("dataset").join(code), &files, MNMS_CODES);
    }
    let table = "SUBJECT_CODE,DISEASE,VENDOR,SCANNER,FIELD\n1,HCM,SIEMENS,Avanto Fit,1.5\n,,,,\n2,NOR,Philips Medical Systems,Achieva,3.0\n\
                 3,LV,GE MEDICAL SYSTEMS,Signa HDxt,1.5\n4,NOR,SIEMENS,Avanto Fit,1.5\n";
    std::fs::write(root.join("dataset_information.csv"), table).unwrap();
    let cfg = IngestConfig { task: cmr_core::Task::Disease, ..config(&root, &tmp.path().join("c")) };
    let report = ingest::run(&IngestConfig { dataset: Dataset::Mnms2, ..cfg }, &|_, _| {}).unwrap();
    assert_eq!((report.subjects, report.skipped_missing_images.as_slice()), (3, &["mnms2:004".to_string()][..]));
    let rows = cmr_core::cohort::read(&report.out).unwrap();
    let summary: Vec<_> =
        rows.iter().map(|r| (r.subject_id.as_str(), r.site.as_str(), r.vendor.as_str(), r.label)).collect();
    assert_eq!(
        summary,
        [
            ("mnms2:001", "mnms2-avanto-fit", "Siemens", 1),
            ("mnms2:002", "mnms2-achieva", "Philips", 0),
            ("mnms2:003", "mnms2-signa-hdxt", "GE", 1)
        ]
    );
    assert!(rows.iter().all(|r| r.sex.is_none() && r.age.is_none()));
}

#[test]
fn ukbb_folders_read_canonical_labels_and_bmi_or_height_weight() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ukbb");
    for eid in ["1000001", "1000002"] {
        write_frames(&root.join(eid), &ed_es(|f| format!("sa_{f}"), |f| format!("label_sa_{f}")), MNMS_CODES);
    }
    let table = "eid,sex,age,bmi,height,weight,diagnosis\n1000001,female,64,,160,70.4,NOR\n1000002,M,55,31.2,,,HCM\n";
    std::fs::write(root.join("metadata.csv"), table).unwrap();
    let report =
        ingest::run(&IngestConfig { dataset: Dataset::Ukbb, ..config(&root, &tmp.path().join("c")) }, &|_, _| {})
            .unwrap();
    let rows = cmr_core::cohort::read(&report.out).unwrap();
    let a = &rows[0];
    assert_eq!(
        (a.subject_id.as_str(), a.site.as_str(), a.vendor.as_str(), a.label),
        ("ukbb:1000001", "ukbb", "Siemens", 0)
    );
    assert!((a.bmi.unwrap() - 27.5).abs() < 1e-9 && a.bmi_class.as_deref() == Some("overweight"));
    assert_eq!(a.prompt, "Female, age in 60s, overweight BMI, healthy");
    assert_eq!((rows[1].bmi, rows[1].bmi_class.as_deref(), rows[1].label), (Some(31.2), Some("obese"), 1));
    // Canonical labels on disk: the LV (1) is what the crop centres on.
    let t = read_tensor(&report.out.join(&a.tensor_path)).unwrap();
    let lv = t.mask.index_axis(Axis(0), 0).iter().filter(|&&v| v == 1).count();
    assert!(lv > 0 && t.mask.index_axis(Axis(0), 0).slice(s![.., 11..13, 11..13]).iter().all(|&v| v == 1));

    // A participant folder without a row is an error naming the table and `eid`.
    write_frames(&root.join("1000003"), &ed_es(|f| format!("sa_{f}"), |f| format!("label_sa_{f}")), MNMS_CODES);
    let err = ingest::run(&IngestConfig { dataset: Dataset::Ukbb, ..config(&root, &tmp.path().join("d")) }, &|_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("metadata.csv") && err.to_string().contains("`eid`"), "{err}");
}
