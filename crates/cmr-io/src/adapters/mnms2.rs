//! M&Ms-2 (Martín-Isla et al., IEEE JBHI 2023; <https://www.ub.edu/mnms-2/>): the metadata table
//! `<root>/dataset_information.csv` and one folder per subject, `NNN/` (under `<root>/dataset/` when that folder
//! exists, as in the release, else under `<root>`), holding `NNN_SA_ED.nii.gz`, `NNN_SA_ES.nii.gz` and their masks
//! `NNN_SA_ED_gt.nii.gz`, `NNN_SA_ES_gt.nii.gz` (labels 1 = LV, 2 = MYO, 3 = RV).
//!
//! Columns read: `SUBJECT_CODE` (a number; folder `NNN` is the code zero-padded to 3 digits), `DISEASE` (NOR, LV,
//! HCM, ARR, FALL, CIA, RV, TRI), `VENDOR` (normalised: `SIEMENS` → Siemens, …) and `SCANNER` (the site is
//! `mnms2-{scanner}` as a slug, the finest acquisition unit the table records). `FIELD` is not used. Blank rows are
//! skipped. The release records no sex, age, height or weight, so those are null.

use std::path::Path;

use cmr_core::subject::RawAttributes;
use cmr_core::Dataset;

use super::text::Table;
use super::{check_id, image_folders, per_frame, require_metadata, site_name, vendor_name, Discovery, SubjectRecord};
use crate::error::Result;

/// File name of the metadata table.
pub const METADATA_CSV: &str = "dataset_information.csv";
/// Sub-folder holding the subject folders in the release.
pub const IMAGE_FOLDER: &str = "dataset";

/// Reads the metadata table and matches it with the subject folders.
///
/// # Errors
/// [`crate::Error::Missing`] / [`crate::Error::Invalid`] naming the CSV and column; [`crate::Error::NoMetadata`]
/// for a subject folder without a row.
pub fn discover(root: &Path) -> Result<Discovery> {
    let table = Table::read(&root.join(METADATA_CSV))?;
    let code = table.column("SUBJECT_CODE")?;
    let disease = table.column("DISEASE")?;
    let vendor = table.column("VENDOR")?;
    let scanner = table.column("SCANNER")?;
    let images_root = Some(root.join(IMAGE_FOLDER)).filter(|p| p.is_dir()).unwrap_or_else(|| root.into());
    let folders = image_folders(std::slice::from_ref(&images_root), padded)?;

    let mut found = Discovery::default();
    let mut listed = Vec::new();
    for row in table.rows() {
        let id = padded(&row.get(code).whole(0)?.to_string());
        check_id(&id, table.path(), "SUBJECT_CODE")?;
        listed.push(id.clone());
        let diagnosis = row.get(disease).diagnosis(Dataset::Mnms2)?;
        let vendor = vendor_name(row.get(vendor).text()?);
        let site = site_name(Dataset::Mnms2.name(), row.get(scanner).text()?);
        let images = folders.get(&id).and_then(|dir| {
            let stem = |frame: &str| format!("{id}_SA_{frame}");
            per_frame(dir, [stem("ED"), stem("ES")], [format!("{}_gt", stem("ED")), format!("{}_gt", stem("ES"))])
        });
        let metadata = table.path().into();
        let attributes = RawAttributes::default();
        found.push(
            images,
            |images| SubjectRecord { id: id.clone(), site, vendor, diagnosis, attributes, images, metadata },
            &id,
        );
    }
    require_metadata(&folders, &listed, table.path(), "SUBJECT_CODE")?;
    Ok(found)
}

/// A numeric code zero-padded to 3 digits (`7` → `007`, `0012` → `012`); anything else unchanged.
fn padded(code: &str) -> String {
    match code.parse::<u64>() {
        Ok(n) => format!("{n:03}"),
        Err(_) => code.to_string(),
    }
}
