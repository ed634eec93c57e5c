//! M&Ms-1 (Campello et al., IEEE TMI 2021; <https://www.ub.edu/mnms/>): the metadata table
//! `<root>/211230_M&Ms_Dataset_information_diagnosis_opendataset.csv` and one folder per subject,
//! `<root>/{Training/Labeled,Validation,Testing}/<CODE>/`, holding the 4D cine `<CODE>_sa.nii.gz` (axes x, y, z, t)
//! and `<CODE>_sa_gt.nii.gz`, labelled (1 = LV, 2 = MYO, 3 = RV) at the ED and ES frames.
//!
//! Columns read (others, such as `Vendor` A–D, are ignored):
//!
//! | column | meaning | required |
//! |---|---|---|
//! | `External code` | subject code = folder name | yes |
//! | `VendorName` | Siemens, Philips, GE, Canon | yes |
//! | `Centre` | acquisition centre; the site is `mnms1-centre{Centre}` | yes |
//! | `ED`, `ES` | 0-based frame indices, checked against the cine's frame count on read | yes |
//! | `Pathology` | diagnosis: NOR, DCM, HCM, HHD, ARV, AHS, IHD, LVNC | yes |
//! | `Age`, `Sex`, `Height` (cm), `Weight` (kg) | empty or `NA`/`NaN` cells are null | column optional |
//!
//! `Training/Unlabeled` is not read: its subjects have no masks.

use std::path::Path;

use cmr_core::subject::RawAttributes;
use cmr_core::Dataset;

use super::text::{optional_number, optional_sex, Table};
use super::{
    check_id, find_nifti, image_folders, require_metadata, site_name, vendor_name, Discovery, ImageFiles, SubjectRecord,
};
use crate::error::Result;

/// File name of the metadata table.
pub const METADATA_CSV: &str = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv";
/// Folders (relative to the root) holding labelled subject folders.
pub const IMAGE_FOLDERS: [&str; 3] = ["Training/Labeled", "Validation", "Testing"];

/// Reads the metadata table and matches it with the subject folders.
///
/// # Errors
/// [`crate::Error::Missing`] / [`crate::Error::Invalid`] naming the CSV and column for an absent column or a
/// malformed cell; [`crate::Error::NoMetadata`] for a subject folder without a row.
pub fn discover(root: &Path) -> Result<Discovery> {
    let table = Table::read(&root.join(METADATA_CSV))?;
    let code = table.column("External code")?;
    let vendor = table.column("VendorName")?;
    let centre = table.column("Centre")?;
    let (ed, es) = (table.column("ED")?, table.column("ES")?);
    let pathology = table.column("Pathology")?;
    let (age, sex) = (table.optional_column("Age"), table.optional_column("Sex"));
    let (height, weight) = (table.optional_column("Height"), table.optional_column("Weight"));

    let dirs: Vec<_> = IMAGE_FOLDERS.iter().map(|f| root.join(f)).filter(|p| p.is_dir()).collect();
    let folders = image_folders(&dirs, str::to_string)?;

    let mut found = Discovery::default();
    let mut listed = Vec::new();
    for row in table.rows() {
        let id = check_id(row.get(code).text()?, table.path(), "External code")?;
        listed.push(id.to_string());
        let attributes = RawAttributes {
            sex: optional_sex(row.get_opt(sex))?,
            age: optional_number(row.get_opt(age))?,
            height_cm: optional_number(row.get_opt(height))?,
            weight_kg: optional_number(row.get_opt(weight))?,
            bmi: None,
        };
        let frames = [row.get(ed).whole(0)?, row.get(es).whole(0)?];
        let site = site_name(Dataset::Mnms1.name(), row.get(centre).text()?);
        let vendor = vendor_name(row.get(vendor).text()?);
        let diagnosis = row.get(pathology).diagnosis(Dataset::Mnms1)?;
        let images = folders.get(id).and_then(|dir| {
            Some(ImageFiles::Cine {
                image: find_nifti(dir, &format!("{id}_sa"))?,
                mask: find_nifti(dir, &format!("{id}_sa_gt"))?,
                frames,
            })
        });
        let metadata = table.path().into();
        found.push(
            images,
            |images| SubjectRecord { id: id.into(), site, vendor, diagnosis, attributes, images, metadata },
            id,
        );
    }
    require_metadata(&folders, &listed, table.path(), "External code")?;
    Ok(found)
}
