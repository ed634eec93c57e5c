//! UK-Biobank-style folders (the layout of the `ukbb_cardiac` pipeline, Bai et al., JCMR 2018,
//! <https://github.com/baiwenjia/ukbb_cardiac>): one folder per participant, `<root>/<eid>/`, holding
//! `sa_ED.nii.gz`, `sa_ES.nii.gz` and their masks `label_sa_ED.nii.gz`, `label_sa_ES.nii.gz` in **canonical labels**
//! (1 = LV, 2 = MYO, 3 = RV, as `ukbb_cardiac`'s short-axis segmentations), plus one metadata table,
//! **`<root>/metadata.csv`** (UK Biobank data are exported per project, so this project fixes the name).
//!
//! | column | meaning | required |
//! |---|---|---|
//! | `eid` | participant id = folder name | yes |
//! | `sex` | F/M or female/male (not UK Biobank's 0/1 codes: convert them when exporting) | yes |
//! | `age` | years | yes |
//! | `bmi`, or `height` (cm) and `weight` (kg) | BMI as recorded, else derived | one of the two |
//! | `diagnosis` | a diagnosis code of ACDC, M&Ms-1 or M&Ms-2 (NOR, HCM, …) | yes |
//! | `site`, `vendor` | default `ukbb` and `Siemens` (UK Biobank scans on Siemens Aera 1.5 T) | no |
//!
//! Empty (or `NA`/`NaN`) cells of `sex`, `age`, `bmi`, `height` and `weight` are null.

use std::path::Path;

use cmr_core::subject::RawAttributes;
use cmr_core::Dataset;

use super::text::{optional_number, text_or, Table};
use super::{check_id, image_folders, per_frame, require_metadata, vendor_name, Discovery, SubjectRecord};
use crate::error::{Error, Result};

/// File name of the metadata table.
pub const METADATA_CSV: &str = "metadata.csv";
/// Site when the table has no `site` column or an empty cell.
pub const DEFAULT_SITE: &str = "ukbb";
/// Vendor when the table has no `vendor` column or an empty cell.
pub const DEFAULT_VENDOR: &str = "Siemens";

/// Reads `metadata.csv` and matches it with the participant folders.
///
/// # Errors
/// [`Error::Missing`] / [`Error::Invalid`] naming the CSV and column; [`Error::NoMetadata`] for a participant
/// folder without a row.
pub fn discover(root: &Path) -> Result<Discovery> {
    let table = Table::read(&root.join(METADATA_CSV))?;
    let eid = table.column("eid")?;
    let sex = table.column("sex")?;
    let age = table.column("age")?;
    let diagnosis = table.column("diagnosis")?;
    let bmi = table.optional_column("bmi");
    let (height, weight) = (table.optional_column("height"), table.optional_column("weight"));
    if bmi.is_none() && (height.is_none() || weight.is_none()) {
        return Err(Error::Missing {
            path: table.path().into(),
            field: "bmi".into(),
            hint: "; or give both height and weight".into(),
        });
    }
    let (site, vendor) = (table.optional_column("site"), table.optional_column("vendor"));
    let folders = image_folders(&[root.to_path_buf()], str::to_string)?;

    let mut found = Discovery::default();
    let mut listed = Vec::new();
    for row in table.rows() {
        let id = check_id(row.get(eid).text()?, table.path(), "eid")?;
        listed.push(id.to_string());
        let attributes = RawAttributes {
            sex: row.get(sex).sex()?,
            age: row.get(age).number()?,
            height_cm: optional_number(row.get_opt(height))?,
            weight_kg: optional_number(row.get_opt(weight))?,
            bmi: optional_number(row.get_opt(bmi))?,
        };
        let diagnosis = row.get(diagnosis).diagnosis(Dataset::Ukbb)?;
        let site = text_or(row.get_opt(site), DEFAULT_SITE);
        let vendor = vendor_name(&text_or(row.get_opt(vendor), DEFAULT_VENDOR));
        let images = folders.get(id).and_then(|dir| {
            per_frame(dir, ["sa_ED".into(), "sa_ES".into()], ["label_sa_ED".into(), "label_sa_ES".into()])
        });
        let metadata = table.path().into();
        found.push(
            images,
            |images| SubjectRecord { id: id.into(), site, vendor, diagnosis, attributes, images, metadata },
            id,
        );
    }
    require_metadata(&folders, &listed, table.path(), "eid")?;
    Ok(found)
}
