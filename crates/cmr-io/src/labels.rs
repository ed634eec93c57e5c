//! Dataset label codes → canonical labels (DESIGN.md, "Labels": 0 background, 1 LV blood pool, 2 LV myocardium,
//! 3 RV blood pool). Adapters map every mask on read, so nothing downstream sees a dataset's own codes; a voxel with
//! a code outside the dataset's map is an error, never dropped to background.

use std::path::Path;

use cmr_core::labels::{BACKGROUND, LV, MYO, RV};
use cmr_core::Dataset;
use ndarray::{Array3, ArrayView3};

use crate::error::{Error, Result};

/// How one dataset codes its segmentation labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelMap {
    /// Canonical label of each dataset code (index = code).
    canonical: [u8; 4],
    /// The dataset's codes in words, for error messages.
    description: &'static str,
}

impl LabelMap {
    /// ACDC: 1 = RV, 2 = MYO, 3 = LV (<https://www.creatis.insa-lyon.fr/Challenge/acdc/evaluation.html>).
    pub const ACDC: LabelMap =
        LabelMap { canonical: [BACKGROUND, RV, MYO, LV], description: "0 background, 1 RV, 2 MYO, 3 LV (ACDC)" };
    /// M&Ms-1 and M&Ms-2: 1 = LV, 2 = MYO, 3 = RV (<https://www.ub.edu/mnms/>), the canonical codes.
    pub const MNMS: LabelMap =
        LabelMap { canonical: [BACKGROUND, LV, MYO, RV], description: "0 background, 1 LV, 2 MYO, 3 RV (M&Ms)" };
    /// UK-Biobank-style label files hold canonical codes (as the `ukbb_cardiac` short-axis segmentations).
    pub const CANONICAL: LabelMap =
        LabelMap { canonical: [BACKGROUND, LV, MYO, RV], description: "0 background, 1 LV, 2 MYO, 3 RV (canonical)" };

    /// The label map of `dataset`'s files.
    pub fn of(dataset: Dataset) -> LabelMap {
        match dataset {
            Dataset::Acdc => Self::ACDC,
            Dataset::Mnms1 | Dataset::Mnms2 => Self::MNMS,
            Dataset::Ukbb => Self::CANONICAL,
        }
    }

    /// The canonical label of one dataset code, or `None` for a code outside the map.
    ///
    /// ```
    /// use cmr_io::labels::LabelMap;
    /// assert_eq!(LabelMap::ACDC.canonical(3), Some(cmr_core::labels::LV));
    /// assert_eq!(LabelMap::MNMS.canonical(3), Some(cmr_core::labels::RV));
    /// assert_eq!(LabelMap::MNMS.canonical(4), None);
    /// ```
    pub fn canonical(&self, code: u8) -> Option<u8> {
        self.canonical.get(code as usize).copied()
    }

    /// Maps a mask read as floats (a NIfTI volume) to canonical labels; `path` names the mask in errors.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `label`) on the first voxel that is not a whole number in the dataset's map.
    pub fn apply(&self, path: &Path, mask: ArrayView3<'_, f32>) -> Result<Array3<u8>> {
        let mut out = Array3::zeros(mask.raw_dim());
        for ((index, &value), slot) in mask.indexed_iter().zip(out.iter_mut()) {
            let code = (value.fract() == 0.0 && (0.0..=255.0).contains(&value)).then_some(value as u8);
            *slot = code.and_then(|c| self.canonical(c)).ok_or_else(|| {
                Error::invalid(
                    path,
                    "label",
                    format!("one of {}", self.description),
                    format!("{value} at voxel {index:?}"),
                )
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn acdc_swaps_lv_and_rv_and_mnms_keeps_codes() {
        let mask = array![[[0.0f32, 1.0], [2.0, 3.0]]];
        let acdc = LabelMap::of(Dataset::Acdc).apply(Path::new("a_gt.nii.gz"), mask.view()).unwrap();
        assert_eq!(acdc.iter().copied().collect::<Vec<_>>(), [BACKGROUND, RV, MYO, LV]);
        for dataset in [Dataset::Mnms1, Dataset::Mnms2, Dataset::Ukbb] {
            let out = LabelMap::of(dataset).apply(Path::new("m.nii"), mask.view()).unwrap();
            assert_eq!(out.iter().copied().collect::<Vec<_>>(), [BACKGROUND, LV, MYO, RV]);
        }
    }

    #[test]
    fn a_code_outside_the_map_is_named_with_its_voxel() {
        for bad in [4.0f32, 1.5, -1.0, f32::NAN] {
            let mask = array![[[0.0f32, bad]]];
            let err = LabelMap::ACDC.apply(Path::new("p_gt.nii.gz"), mask.view()).unwrap_err().to_string();
            assert!(err.contains("p_gt.nii.gz") && err.contains("`label`") && err.contains("(0, 0, 1)"), "{err}");
        }
    }
}
