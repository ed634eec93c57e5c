//! ACDC (Bernard et al., IEEE TMI 2018; <https://www.creatis.insa-lyon.fr/Challenge/acdc/>): one folder per patient,
//! `<root>/**/patientNNN/`, with `Info.cfg` and one 3D NIfTI per annotated frame, `patientNNN_frameYY.nii.gz`, and
//! its mask `patientNNN_frameYY_gt.nii.gz` (labels 1 = RV, 2 = MYO, 3 = LV).
//!
//! `Info.cfg` keys (`Key: value`, one per line):
//!
//! | key | meaning | required |
//! |---|---|---|
//! | `ED`, `ES` | 1-based frame numbers (`YY` of the file names), each ≤ `NbFrame`; ED may come after ES | yes |
//! | `NbFrame` | frames in the cine | yes |
//! | `Group` | diagnosis: NOR, MINF, DCM, HCM, RV | yes |
//! | `Height` (cm), `Weight` (kg) | a missing one gives a null BMI | no |
//! | `Sex` (F/M), `Age` (years), `Vendor`, `Site` | **extension of this project**, written by its phantom | no |
//!
//! Real ACDC records no sex, age or vendor (all scans come from Siemens scanners at one centre in Dijon), so without
//! the extension keys sex and age are null, the vendor is `Siemens` and the site `acdc`.

use std::path::Path;

use cmr_core::subject::RawAttributes;
use cmr_core::Dataset;
use walkdir::WalkDir;

use super::text::{optional_number, optional_sex, text_or, Field, KeyValues};
use super::{check_id, has_nifti, per_frame, vendor_name, Discovery, SubjectRecord};
use crate::error::{Error, Result};

/// Name of the per-patient metadata file.
pub const INFO_CFG: &str = "Info.cfg";
/// Site of subjects whose `Info.cfg` has no `Site`.
pub const DEFAULT_SITE: &str = "acdc";
/// Vendor of subjects whose `Info.cfg` has no `Vendor`.
pub const DEFAULT_VENDOR: &str = "Siemens";

/// Finds every `patient*` folder under `root`.
///
/// # Errors
/// [`Error::Missing`] / [`Error::Invalid`] naming `Info.cfg` and the key for an absent or malformed value (an `ED`
/// or `ES` beyond `NbFrame` included); [`Error::NoMetadata`] for a patient folder with NIfTI files but no `Info.cfg`.
pub fn discover(root: &Path) -> Result<Discovery> {
    let mut found = Discovery::default();
    let walker = WalkDir::new(root).follow_links(true).sort_by_file_name().into_iter();
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            Error::io(path, e.into())
        })?;
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_dir() || entry.depth() == 0 || !name.starts_with("patient") {
            continue;
        }
        let dir = entry.path();
        let cfg = dir.join(INFO_CFG);
        if !cfg.is_file() {
            if has_nifti(dir)? {
                return Err(Error::NoMetadata {
                    folder: dir.into(),
                    metadata: cfg,
                    field: INFO_CFG.into(),
                    id: name.into_owned(),
                });
            }
            continue;
        }
        read_patient(dir, &cfg, &name, &mut found)?;
    }
    Ok(found)
}

fn read_patient(dir: &Path, cfg: &Path, name: &str, found: &mut Discovery) -> Result<()> {
    let id = check_id(name, cfg, "folder name")?;
    let info = KeyValues::read(cfg)?;
    let frames = info.get("NbFrame")?.whole(1)?;
    let ed = frame_number(info.get("ED")?, frames)?;
    let es = frame_number(info.get("ES")?, frames)?;
    let diagnosis = info.get("Group")?.diagnosis(Dataset::Acdc)?;
    let attributes = RawAttributes {
        sex: optional_sex(info.get_opt("Sex"))?,
        age: optional_number(info.get_opt("Age"))?,
        height_cm: optional_number(info.get_opt("Height"))?,
        weight_kg: optional_number(info.get_opt("Weight"))?,
        bmi: None,
    };
    let site = text_or(info.get_opt("Site"), DEFAULT_SITE);
    let vendor = vendor_name(&text_or(info.get_opt("Vendor"), DEFAULT_VENDOR));
    let stem = |frame: usize| format!("{id}_frame{frame:02}");
    let images = per_frame(dir, [stem(ed), stem(es)], [format!("{}_gt", stem(ed)), format!("{}_gt", stem(es))]);
    found.push(
        images,
        |images| SubjectRecord { id: id.into(), site, vendor, diagnosis, attributes, images, metadata: cfg.into() },
        id,
    );
    Ok(())
}

/// A 1-based frame number in `1..=frames`.
fn frame_number(field: Field<'_>, frames: usize) -> Result<usize> {
    let n = field.whole(1)?;
    if n > frames {
        return Err(field.invalid(format!("a 1-based frame number in 1..={frames} (NbFrame)")));
    }
    Ok(n)
}
