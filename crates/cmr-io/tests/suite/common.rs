//! Small synthetic datasets in ACDC and M&Ms-1 layout, written with `cmr_io::nifti`, for the integration tests.
//! A heart is an LV disc, a 4 mm myocardial ring and an RV towards low `y`, in slices 1..=4 of 6.
#![allow(dead_code)] // not every helper is used by every build of the suite

use std::path::Path;

use cmr_io::nifti::{write_volume, OnDiskType, Volume};
use ndarray::{Array3, Array4, ArrayD, Axis};

/// Volume shape `(x, y, z)`.
pub const SHAPE: (usize, usize, usize) = (32, 36, 6);
/// Voxel spacing in mm.
pub const SPACING: [f64; 3] = [1.5, 1.25, 8.0];
/// ACDC code of each canonical label (canonical LV 1 → ACDC 3, RV 3 → ACDC 1).
pub const ACDC_CODES: [u8; 4] = [0, 3, 2, 1];
/// M&Ms codes are the canonical ones.
pub const MNMS_CODES: [u8; 4] = [0, 1, 2, 3];
/// The M&Ms-1 metadata table's name.
pub const MNMS1_CSV: &str = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv";

/// Canonical labels of a heart whose LV has radius `lv_mm`.
pub fn heart(lv_mm: f64) -> Array3<u8> {
    let (cx, cy) = (15.2, 19.6);
    Array3::from_shape_fn(SHAPE, |(x, y, z)| {
        let (dx, dy) = ((x as f64 - cx) * SPACING[0], (y as f64 - cy) * SPACING[1]);
        let r = dx.hypot(dy);
        let rv = (dx / 1.3).hypot(dy + lv_mm + 10.0) <= 8.0;
        match (z, r) {
            (1..=4, r) if r <= lv_mm => 1,
            (1..=4, r) if r <= lv_mm + 4.0 => 2,
            (1..=4, _) if rv => 3,
            _ => 0,
        }
    })
}

/// bSSFP-like intensities of canonical labels with a gentle gradient.
pub fn image_of(labels: &Array3<u8>) -> Array3<f32> {
    Array3::from_shape_fn(labels.dim(), |(x, y, z)| {
        [40.0, 400.0, 120.0, 370.0][labels[[x, y, z]] as usize] + x as f32 + 0.5 * y as f32
    })
}

/// A volume with a diagonal affine of [`SPACING`].
pub fn volume(data: ArrayD<f32>) -> Volume {
    let [sx, sy, sz] = SPACING;
    let affine = [[sx, 0.0, 0.0, 0.0], [0.0, sy, 0.0, 0.0], [0.0, 0.0, sz, 0.0], [0.0, 0.0, 0.0, 1.0]];
    Volume { data, pixdim: [sx, sy, sz, 1.0], affine }
}

/// Canonical labels recoded with `codes`, as floats for a [`Volume`].
pub fn coded(labels: &Array3<u8>, codes: [u8; 4]) -> Array3<f32> {
    labels.mapv(|l| codes[l as usize] as f32)
}

/// Writes, for each `(image stem, mask stem, LV radius in mm)`, `dir/<image stem>.nii.gz` (f32) and
/// `dir/<mask stem>.nii.gz` (u8, labels recoded with `codes`).
pub fn write_frames(dir: &Path, frames: &[(String, String, f64)], codes: [u8; 4]) {
    std::fs::create_dir_all(dir).unwrap();
    for (image, mask, lv_mm) in frames {
        let labels = heart(*lv_mm);
        write_volume(&dir.join(format!("{image}.nii.gz")), &volume(image_of(&labels).into_dyn()), OnDiskType::F32)
            .unwrap();
        write_volume(&dir.join(format!("{mask}.nii.gz")), &volume(coded(&labels, codes).into_dyn()), OnDiskType::U8)
            .unwrap();
    }
}

/// Writes an ACDC patient: `Info.cfg` with `info`, and image + mask files for each of `frames` (the first, ED, gets
/// an LV of `ed_lv_mm`, the others 7 mm).
pub fn acdc_patient(root: &Path, id: &str, info: &str, frames: &[usize], ed_lv_mm: f64) {
    let dir = root.join("training").join(id);
    let files: Vec<_> = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| {
            let stem = format!("{id}_frame{frame:02}");
            (stem.clone(), format!("{stem}_gt"), if i == 0 { ed_lv_mm } else { 7.0 })
        })
        .collect();
    write_frames(&dir, &files, ACDC_CODES);
    std::fs::write(dir.join("Info.cfg"), info).unwrap();
}

/// An ACDC-layout dataset: patient001 HCM (ED 1, ES 3), patient002 NOR with ED after ES and no Weight, patient003
/// DCM (left out by task `hcm`), patient004 NOR without images.
pub fn acdc_dataset(root: &Path) {
    acdc_patient(
        root,
        "patient001",
        "ED: 1\nES: 3\nGroup: HCM\nHeight: 170\nWeight: 72.25\nNbFrame: 12\nSex: M\nAge: 58\n",
        &[1, 3],
        10.0,
    );
    acdc_patient(root, "patient002", "ED: 5\nES: 2\nGroup: NOR\nHeight: 160\nNbFrame: 10\n", &[5, 2], 11.0);
    acdc_patient(root, "patient003", "ED: 1\nES: 8\nGroup: DCM\nHeight: 180\nWeight: 90\nNbFrame: 20\n", &[1, 8], 9.0);
    let dir = root.join("training/patient004");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Info.cfg"), "ED: 1\nES: 8\nGroup: NOR\nNbFrame: 20\n").unwrap();
}

/// One M&Ms-1 subject folder with a 4D cine of `frames` frames, labelled at `ed` and `es`.
pub fn mnms1_subject(root: &Path, folder: &str, code: &str, frames: usize, ed: usize, es: usize) {
    let dir = root.join(folder).join(code);
    std::fs::create_dir_all(&dir).unwrap();
    let (x, y, z) = SHAPE;
    let mut image = Array4::<f32>::zeros((x, y, z, frames));
    let mut mask = Array4::<f32>::zeros((x, y, z, frames));
    for t in 0..frames {
        let labels = heart(if t == ed { 10.0 } else { 7.0 });
        image.index_axis_mut(Axis(3), t).assign(&image_of(&labels));
        if t == ed || t == es {
            mask.index_axis_mut(Axis(3), t).assign(&coded(&labels, MNMS_CODES));
        }
    }
    write_volume(&dir.join(format!("{code}_sa.nii.gz")), &volume(image.into_dyn()), OnDiskType::F32).unwrap();
    write_volume(&dir.join(format!("{code}_sa_gt.nii.gz")), &volume(mask.into_dyn()), OnDiskType::U8).unwrap();
}

/// An M&Ms-1-layout dataset: AAA111 HCM (Siemens, centre 1), BBB222 NOR with ED after ES and no Weight (Philips,
/// centre 2), CCC333 a row without images. `extra_rows` are appended to the table.
pub fn mnms1_dataset(root: &Path, extra_rows: &str) {
    mnms1_subject(root, "Training/Labeled", "AAA111", 6, 0, 3);
    mnms1_subject(root, "Validation", "BBB222", 6, 5, 2);
    let csv = format!(
        "External code,VendorName,Vendor,Centre,ED,ES,Age,Pathology,Sex,Height,Weight\n\
         AAA111,Siemens,A,1,0,3,61,HCM,F,165,70\n\
         BBB222,Philips,B,2,5,2,35,NOR,M,180,\n\
         CCC333,GE,C,3,0,9,50,NOR,M,175,80\n{extra_rows}"
    );
    std::fs::write(root.join(MNMS1_CSV), csv).unwrap();
}

/// Asserts that `out` does not exist and that no staging folder is left beside it.
pub fn assert_no_output(out: &Path) {
    assert!(!out.exists(), "{} exists", out.display());
    let parent = out.parent().unwrap();
    if parent.exists() {
        let leftovers: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "staging left behind: {leftovers:?}");
    }
}
