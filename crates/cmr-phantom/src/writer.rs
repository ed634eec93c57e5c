//! Writes planned subjects as real NIfTI (through `cmr_io::nifti`) in a public dataset's layout, so `ingest` reads
//! a phantom with the same code as the real dataset:
//!
//! - **ACDC**: `patientNNN/Info.cfg` (`ED`, `ES` 1-based, `Group`, `Height`, `NbFrame`, `Weight`, and the project's
//!   extension keys `Sex`, `Age`, `Vendor`, `Site`), `patientNNN_4d.nii.gz` (int16, x·y·z·t), and for ED and ES
//!   `patientNNN_frameYY.nii.gz` (int16) + `patientNNN_frameYY_gt.nii.gz` (uint8, 1 = RV, 2 = MYO, 3 = LV).
//! - **M&Ms-1**: `211230_M&Ms_Dataset_information_diagnosis_opendataset.csv` (ED/ES 0-based, MINF written as IHD) and
//!   `Training/Labeled/CODE/CODE_sa.nii.gz` (int16, x·y·z·t) + `CODE_sa_gt.nii.gz` (uint8, 1 = LV, 2 = MYO, 3 = RV,
//!   labels only in the ED and ES frames).
//!
//! Both also get `phantom_subjects.csv` (the full ground truth, model volumes included) at the root.
//!
//! The subject's site (an integer, [`crate::Vendor::centre_site`]) is the M&Ms `Centre` cell, which `ingest` turns
//! into `mnms1-centre{N}`. Real ACDC has no centre column (one centre, Dijon); the phantom writes the same integer as
//! the extension key `Site` of `Info.cfg`, which `ingest` keeps as written, so both layouts give one site per
//! (vendor, centre) and the same number of sites.

use std::path::Path;

use cmr_core::parallel;
use cmr_io::nifti::{write_volume, OnDiskType, Volume};
use ndarray::{Array4, Axis};

use crate::anatomy::Heart;
use crate::appearance::{render, Body, Rendered};
use crate::vendor::Acquisition;
use crate::{Error, SubjectSpec, SubjectTruth};

/// Name of the M&Ms-1 metadata CSV.
pub const MNMS_CSV: &str = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv";
/// Name of the ground-truth table written beside either layout.
pub const TRUTH_CSV: &str = "phantom_subjects.csv";

/// Dataset layout of the written cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// ACDC (MICCAI 2017).
    Acdc,
    /// M&Ms-1 (MICCAI 2020).
    Mnms1,
}

/// A subject built and imaged, before writing.
#[derive(Debug, Clone)]
pub struct Imaged {
    /// The heart.
    pub heart: Heart,
    /// The acquisition.
    pub acquisition: Acquisition,
    /// The cine and its labels.
    pub rendered: Rendered,
}

/// Builds the heart, chest and acquisition of `spec` and renders its cine. Deterministic in (`seed`, index).
pub fn image_subject(spec: &SubjectSpec, seed: u64) -> Imaged {
    let idx = spec.index.to_string();
    let stream = |name: &str| cmr_core::seed::rng(seed, &["phantom", name, &idx]);
    let male = spec.sex == cmr_core::Sex::M;
    let heart =
        Heart::sample(spec.condition, male, spec.age as f64, spec.height_cm, spec.weight_kg, &mut stream("heart"));
    let profile = spec.vendor.profile();
    let acquisition = Acquisition::sample(&profile, heart.lc + heart.apex_wall, &mut stream("acquisition"));
    let bmi = spec.weight_kg / (spec.height_cm / 100.0).powi(2);
    let body = Body::sample(bmi, male, profile.myo_contrast, &mut stream("body"));
    let rendered = render(&heart, &body, &acquisition, &profile, &mut stream("noise"));
    Imaged { heart, acquisition, rendered }
}

/// Images and writes every subject into `dir` (in parallel on the available cores), returning their ground truth in
/// `specs` order. The first failure (in `specs` order) is returned.
pub fn write_subjects(
    dir: &Path,
    layout: Layout,
    specs: &[SubjectSpec],
    seed: u64,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<SubjectTruth>, Error> {
    parallel::map_in_order(specs, progress, |spec| write_subject(dir, layout, spec, seed))
}

fn write_subject(dir: &Path, layout: Layout, spec: &SubjectSpec, seed: u64) -> Result<SubjectTruth, Error> {
    let imaged = image_subject(spec, seed);
    let acq = &imaged.acquisition;
    let affine = acq.affine();
    let pixdim = [acq.spacing.0, acq.spacing.1, acq.slice_spacing, 1.0];
    let (ed, es) = (0usize, acq.es);
    let image = &imaged.rendered.image;
    let labels = &imaged.rendered.labels;
    match layout {
        Layout::Acdc => {
            let sub = dir.join(&spec.id);
            std::fs::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
            let info = format!(
                "ED: {}\nES: {}\nGroup: {}\nHeight: {:.1}\nNbFrame: {}\nWeight: {:.1}\nSex: {}\nAge: {}\nVendor: {}\nSite: {}\n",
                ed + 1,
                es + 1,
                spec.condition.acdc_code(),
                spec.height_cm,
                acq.frames,
                spec.weight_kg,
                spec.sex.code(),
                spec.age,
                spec.vendor.name(),
                spec.site
            );
            cmr_core::atomic::write_bytes(&sub.join("Info.cfg"), info.as_bytes())?;
            let id = &spec.id;
            nifti(&sub.join(format!("{id}_4d.nii.gz")), image.clone().into_dyn(), pixdim, affine, OnDiskType::I16)?;
            for frame in [ed, es] {
                let img = image.index_axis(Axis(3), frame).to_owned().into_dyn();
                let gt = labels.index_axis(Axis(3), frame).mapv(|l| f32::from(acdc_code(l))).into_dyn();
                let stem = format!("{id}_frame{:02}", frame + 1);
                nifti(&sub.join(format!("{stem}.nii.gz")), img, pixdim, affine, OnDiskType::I16)?;
                nifti(&sub.join(format!("{stem}_gt.nii.gz")), gt, pixdim, affine, OnDiskType::U8)?;
            }
        }
        Layout::Mnms1 => {
            let sub = dir.join("Training").join("Labeled").join(&spec.id);
            std::fs::create_dir_all(&sub).map_err(|e| Error::io(&sub, e))?;
            let id = &spec.id;
            nifti(&sub.join(format!("{id}_sa.nii.gz")), image.clone().into_dyn(), pixdim, affine, OnDiskType::I16)?;
            // Canonical labels are the M&Ms codes (1 = LV, 2 = MYO, 3 = RV).
            let gt: Array4<f32> = labels.mapv(f32::from);
            nifti(&sub.join(format!("{id}_sa_gt.nii.gz")), gt.into_dyn(), pixdim, affine, OnDiskType::U8)?;
        }
    }
    let heart = &imaged.heart;
    Ok(SubjectTruth {
        id: spec.id.clone(),
        vendor: spec.vendor,
        site: spec.site.clone(),
        sex: spec.sex,
        age: spec.age,
        height_cm: spec.height_cm,
        weight_kg: spec.weight_kg,
        diagnosis: spec.condition,
        lv_edv_ml: round2(heart.lv_volume_ml(0.0)),
        lv_ef_percent: round2(heart.ejection_fraction() * 100.0),
        max_wall_mm: round2(heart.max_wall_mm()),
        frames: acq.frames,
        ed,
        es,
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Canonical label → ACDC code (1 = RV, 2 = MYO, 3 = LV).
fn acdc_code(label: u8) -> u8 {
    match label {
        cmr_core::labels::LV => 3,
        cmr_core::labels::RV => 1,
        other => other,
    }
}

fn nifti(
    path: &Path,
    data: ndarray::ArrayD<f32>,
    pixdim: [f64; 4],
    affine: [[f64; 4]; 4],
    dtype: OnDiskType,
) -> Result<(), Error> {
    let volume = Volume { data, pixdim, affine };
    write_volume(path, &volume, dtype).map_err(|source| Error::Nifti { path: path.into(), source: Box::new(source) })
}

/// Writes the layout's metadata table (M&Ms CSV) and the ground-truth table.
pub fn write_tables(dir: &Path, layout: Layout, subjects: &[SubjectTruth]) -> Result<(), Error> {
    if layout == Layout::Mnms1 {
        let path = dir.join(MNMS_CSV);
        let mut w = csv::Writer::from_writer(Vec::new());
        let header = [
            "External code",
            "VendorName",
            "Vendor",
            "Centre",
            "ED",
            "ES",
            "Age",
            "Pathology",
            "Sex",
            "Height",
            "Weight",
        ];
        let csv_err = |e: csv::Error| Error::io(&path, std::io::Error::other(e));
        w.write_record(header).map_err(csv_err)?;
        for s in subjects {
            w.write_record([
                s.id.clone(),
                s.vendor.name().to_string(),
                s.vendor.mnms_letter().to_string(),
                s.site.clone(),
                s.ed.to_string(),
                s.es.to_string(),
                s.age.to_string(),
                s.diagnosis.mnms_code().to_string(),
                s.sex.code().to_string(),
                format!("{:.1}", s.height_cm),
                format!("{:.1}", s.weight_kg),
            ])
            .map_err(csv_err)?;
        }
        let bytes = w.into_inner().map_err(|e| Error::io(&path, std::io::Error::other(e.to_string())))?;
        cmr_core::atomic::write_bytes(&path, &bytes)?;
    }
    let path = dir.join(TRUTH_CSV);
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| Error::io(&path, std::io::Error::other(e));
    w.write_record([
        "id",
        "vendor",
        "site",
        "sex",
        "age",
        "height_cm",
        "weight_kg",
        "diagnosis",
        "lv_edv_ml",
        "lv_ef_percent",
        "max_wall_mm",
        "frames",
        "ed",
        "es",
    ])
    .map_err(csv_err)?;
    for s in subjects {
        w.write_record([
            s.id.clone(),
            s.vendor.name().into(),
            s.site.clone(),
            s.sex.code().into(),
            s.age.to_string(),
            format!("{:.1}", s.height_cm),
            format!("{:.1}", s.weight_kg),
            s.diagnosis.acdc_code().into(),
            format!("{:.2}", s.lv_edv_ml),
            format!("{:.2}", s.lv_ef_percent),
            format!("{:.2}", s.max_wall_mm),
            s.frames.to_string(),
            s.ed.to_string(),
            s.es.to_string(),
        ])
        .map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::io(&path, std::io::Error::other(e.to_string())))?;
    cmr_core::atomic::write_bytes(&path, &bytes)?;
    Ok(())
}
