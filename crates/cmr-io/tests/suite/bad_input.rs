//! Issue 2, "Bad input": each case gives a clear error naming the file and the field, and leaves no output.

use std::path::{Path, PathBuf};

use crate::common::*;
use cmr_core::{CoreError, Dataset};
use cmr_io::ingest::{self, IngestConfig, IngestReport};
use cmr_io::nifti::{read_volume, write_volume, OnDiskType};
use cmr_io::Error;

/// Ingests `root` as `dataset` into `<tmp>/cohort` and returns the error, checking that no output was left.
fn ingest_error(dataset: Dataset, root: &Path, tmp: &Path) -> Error {
    let out = tmp.join("out").join("cohort");
    let err = ingest::run(&small(dataset, root, &out), &|_, _| {}).expect_err("ingest must fail");
    assert_no_output(&out);
    err
}

fn small(dataset: Dataset, root: &Path, out: &Path) -> IngestConfig {
    IngestConfig { size: 24, slices: 3, ..IngestConfig::new(dataset, root, out) }
}

fn ingest_ok(dataset: Dataset, root: &Path, out: &Path) -> IngestReport {
    ingest::run(&small(dataset, root, out), &|_, _| {}).unwrap()
}

fn assert_names(err: &Error, file: &str, field: &str) {
    let msg = err.to_string();
    assert!(msg.contains(file), "message does not name {file}: {msg}");
    assert!(msg.contains(&format!("`{field}`")), "message does not name field {field}: {msg}");
}

fn acdc_root(tmp: &Path) -> PathBuf {
    let root = tmp.join("acdc");
    acdc_dataset(&root);
    root
}

#[test]
fn a_truncated_nii_gz_names_the_gzip_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let root = acdc_root(tmp.path());
    let file = root.join("training/patient001/patient001_frame03.nii.gz");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    assert_names(&read_volume(&file).unwrap_err(), "patient001_frame03.nii.gz", "gzip stream");
    assert_names(&ingest_error(Dataset::Acdc, &root, tmp.path()), "patient001_frame03.nii.gz", "gzip stream");
}

#[test]
fn header_dims_that_disagree_with_the_data_size_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("v.nii");
    write_volume(&file, &volume(image_of(&heart(8.0)).into_dyn()), OnDiskType::F32).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    // dim[1] is the little-endian i16 at byte 42 of the header.
    for (dim1, extra) in [(SHAPE.0 as u16 + 1, 0usize), (SHAPE.0 as u16, 16)] {
        let mut patched = bytes.clone();
        patched[42..44].copy_from_slice(&dim1.to_le_bytes());
        patched.extend(std::iter::repeat_n(0u8, extra));
        std::fs::write(&file, &patched).unwrap();
        let err = read_volume(&file).unwrap_err();
        assert_names(&err, "v.nii", "dim");
        assert!(err.to_string().contains("the file holds"), "{err}");
    }
}

#[test]
fn an_image_and_mask_of_different_shapes_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = acdc_root(tmp.path());
    let mask = root.join("training/patient002/patient002_frame02_gt.nii.gz");
    let small = ndarray::Array3::<f32>::zeros((SHAPE.0, SHAPE.1 - 4, SHAPE.2));
    write_volume(&mask, &volume(small.into_dyn()), OnDiskType::U8).unwrap();
    let err = ingest_error(Dataset::Acdc, &root, tmp.path());
    assert_names(&err, "patient002_frame02_gt.nii.gz", "dim");
    assert!(err.to_string().contains("patient002_frame02.nii.gz"), "names the image too: {err}");
}

#[test]
fn a_label_outside_the_dataset_map_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = acdc_root(tmp.path());
    let mask = root.join("training/patient001/patient001_frame01_gt.nii.gz");
    let mut labels = coded(&heart(10.0), ACDC_CODES);
    labels[[3, 4, 2]] = 4.0;
    write_volume(&mask, &volume(labels.into_dyn()), OnDiskType::U8).unwrap();
    let err = ingest_error(Dataset::Acdc, &root, tmp.path());
    assert_names(&err, "patient001_frame01_gt.nii.gz", "label");
    assert!(err.to_string().contains("3 LV (ACDC)"), "says what the map is: {err}");
}

#[test]
fn an_info_cfg_without_ed_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = acdc_root(tmp.path());
    std::fs::write(root.join("training/patient002/Info.cfg"), "ES: 2\nGroup: NOR\nHeight: 160\nNbFrame: 10\n").unwrap();
    let err = ingest_error(Dataset::Acdc, &root, tmp.path());
    assert!(matches!(&err, Error::Missing { field, .. } if field == "ED"), "{err:?}");
    assert!(err.to_string().contains("patient002/Info.cfg"), "{err}");
}

#[test]
fn an_ed_or_es_beyond_the_frame_count_is_named() {
    // ACDC: 1-based frame numbers against NbFrame.
    let tmp = tempfile::tempdir().unwrap();
    let root = acdc_root(tmp.path());
    std::fs::write(root.join("training/patient001/Info.cfg"), "ED: 13\nES: 3\nGroup: HCM\nNbFrame: 12\n").unwrap();
    let err = ingest_error(Dataset::Acdc, &root, tmp.path());
    assert_names(&err, "patient001/Info.cfg", "ED");
    assert!(err.to_string().contains("1..=12"), "{err}");

    // M&Ms-1: 0-based indices against the cine's frames, found when reading the images.
    let root = tmp.path().join("mnms1");
    mnms1_dataset(&root, "");
    let csv = std::fs::read_to_string(root.join(MNMS1_CSV))
        .unwrap()
        .replace("AAA111,Siemens,A,1,0,3", "AAA111,Siemens,A,1,0,6");
    std::fs::write(root.join(MNMS1_CSV), csv).unwrap();
    let err = ingest_error(Dataset::Mnms1, &root, tmp.path());
    assert_names(&err, MNMS1_CSV, "ES");
    assert!(err.to_string().contains("below the 6 frames") && err.to_string().contains("AAA111"), "{err}");
}

#[test]
fn a_csv_row_with_a_non_numeric_age_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mnms1");
    mnms1_dataset(&root, "DDD444,Canon,D,4,0,1,sixty,NOR,F,160,60\n");
    let err = ingest_error(Dataset::Mnms1, &root, tmp.path());
    assert_names(&err, MNMS1_CSV, "Age");
    assert!(err.to_string().contains("\"sixty\" (line 5)"), "{err}");
}

#[test]
fn an_image_folder_without_metadata_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    // M&Ms-1: a subject folder whose code has no row.
    let root = tmp.path().join("mnms1");
    mnms1_dataset(&root, "");
    mnms1_subject(&root, "Testing", "EEE555", 3, 0, 1);
    let err = ingest_error(Dataset::Mnms1, &root, tmp.path());
    assert!(matches!(&err, Error::NoMetadata { id, .. } if id == "EEE555"), "{err:?}");
    assert_names(&err, "Testing/EEE555", "External code");

    // ACDC: a patient folder with images but no Info.cfg.
    let root = acdc_root(tmp.path());
    std::fs::remove_file(root.join("training/patient003/Info.cfg")).unwrap();
    let err = ingest_error(Dataset::Acdc, &root, tmp.path());
    assert!(matches!(&err, Error::NoMetadata { id, .. } if id == "patient003"), "{err:?}");
    assert!(err.to_string().contains("Info.cfg"), "{err}");
}

#[test]
fn an_existing_output_folder_needs_force() {
    let tmp = tempfile::tempdir().unwrap();
    let root = acdc_root(tmp.path());
    let out = tmp.path().join("cohort");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let err = ingest::run(&small(Dataset::Acdc, &root, &out), &|_, _| {}).unwrap_err();
    assert!(matches!(err, Error::Core(CoreError::OutputExists { .. })), "{err:?}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("keep.txt")).unwrap(), "mine", "untouched");

    let report = ingest::run(&IngestConfig { force: true, ..small(Dataset::Acdc, &root, &out) }, &|_, _| {}).unwrap();
    assert_eq!(report.subjects, 2);
    assert!(!out.join("keep.txt").exists());
}

#[test]
fn missing_images_missing_weight_and_ed_after_es_are_not_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = acdc_root(tmp.path());
    let report = ingest_ok(Dataset::Acdc, &root, &tmp.path().join("cohort"));
    assert_eq!(report.subjects, 2);
    assert_eq!(report.skipped_missing_images, ["acdc:patient004"]);
    assert_eq!(report.excluded_by_task, ["acdc:patient003"]);
    let rows = cmr_core::cohort::read(&report.out).unwrap();
    let p2 = rows.iter().find(|r| r.subject_id == "acdc:patient002").unwrap();
    assert_eq!((p2.height_cm, p2.weight_kg, p2.bmi, p2.bmi_class.as_deref()), (Some(160.0), None, None, None));

    let root = tmp.path().join("mnms1");
    mnms1_dataset(&root, "");
    let report = ingest_ok(Dataset::Mnms1, &root, &tmp.path().join("cohort-mnms1"));
    assert_eq!((report.subjects, report.skipped_missing_images.as_slice()), (2, &["mnms1:CCC333".to_string()][..]));
}
