//! `export`: one subject of a cohort folder as NIfTI files a viewer (3D Slicer, ITK-SNAP) opens, plus a PNG
//! preview. Written into `OUT/` (built in a staging folder, committed when complete):
//!
//! ```text
//! <stem>_ED.nii.gz, <stem>_ES.nii.gz         image, float32, values in [0, 1]
//! <stem>_ED_gt.nii.gz, <stem>_ES_gt.nii.gz   mask, uint8, canonical labels (1 LV, 2 MYO, 3 RV)
//! <stem>_preview.png                         ED/ES slice grid with mask outlines (crate::preview)
//! ```
//!
//! `<stem>` is the subject id with `:` replaced by `_` (`acdc_patient001`). The NIfTI axes are the tensor's rows
//! (`x`), columns (`y`) and slices (`z`, base first), the inverse of how `ingest` read them; the affine is the
//! diagonal of the tensor's spacing with the origin at the first voxel. The tensor keeps no scanner position, so the
//! volume sits in a local frame: sizes and distances are right, the world position is not the scanner's.

use std::path::{Path, PathBuf};

use cmr_core::atomic::{self, OutputDir};
use cmr_core::cohort::COHORT_PARQUET;
use cmr_core::manifest::sha256_file;
use cmr_core::CoreError;
use ndarray::Axis;

use crate::error::{Error, Result};
use crate::frames::FRAME_NAMES;
use crate::nifti::{write_volume, OnDiskType, Volume};
use crate::preview::preview_png;
use crate::store::{read_tensor, SubjectTensor};

/// Exports `subject_id` of the cohort in `cohort_dir` into the folder `out`; returns the written files.
///
/// # Errors
/// [`Error::Invalid`] (field `subject_id`) when the cohort has no such subject; [`Error::Core`] when the tensor's
/// sha256 disagrees with the cohort table or `out` exists without `force`; the tensor reader's errors.
pub fn export_subject(cohort_dir: &Path, subject_id: &str, out: &Path, force: bool) -> Result<Vec<PathBuf>> {
    // 1. find and verify the subject tensor
    let rows = cmr_core::cohort::read(cohort_dir)?;
    let Some(row) = rows.iter().find(|r| r.subject_id == subject_id) else {
        let known: Vec<&str> = rows.iter().take(5).map(|r| r.subject_id.as_str()).collect();
        let more = if rows.len() > known.len() { ", …" } else { "" };
        return Err(Error::invalid(
            cohort_dir.join(COHORT_PARQUET),
            "subject_id",
            format!("a subject of the cohort ({}{more})", known.join(", ")),
            subject_id,
        ));
    };
    let tensor_path = cohort_dir.join(&row.tensor_path);
    let sha256 = sha256_file(&tensor_path)?;
    if sha256 != row.tensor_sha256 {
        return Err(CoreError::ChecksumMismatch {
            path: tensor_path,
            expected: row.tensor_sha256.clone(),
            got: sha256,
        }
        .into());
    }
    let tensor = read_tensor(&tensor_path)?;

    // 2. write NIfTI volumes and the preview into a staging folder
    let dir = OutputDir::create(out, force)?;
    let names = write_subject_files(&tensor, &subject_stem(subject_id), dir.path())?;

    // 3. move into place
    let dest = dir.commit()?;
    Ok(names.into_iter().map(|n| dest.join(n)).collect())
}

/// The file-name stem of a subject: its id with `:` replaced by `_` (`acdc_patient001`).
pub fn subject_stem(subject_id: &str) -> String {
    subject_id.replace(':', "_")
}

/// Writes the NIfTI volumes and the preview of `tensor` (file names in the module docs) into the existing folder
/// `dir`, each file atomically; returns the file names.
pub fn write_subject_files(tensor: &SubjectTensor, stem: &str, dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (frame, name) in FRAME_NAMES.iter().enumerate() {
        let [image, mask] = volumes(tensor, frame);
        for (volume, file, dtype) in [
            (image, format!("{stem}_{name}.nii.gz"), OnDiskType::F32),
            (mask, format!("{stem}_{name}_gt.nii.gz"), OnDiskType::U8),
        ] {
            write_volume(&dir.join(&file), &volume, dtype)?;
            names.push(file);
        }
    }
    let preview = format!("{stem}_preview.png");
    atomic::write_bytes(&dir.join(&preview), &preview_png(tensor))?;
    names.push(preview);
    Ok(names)
}

/// The image and mask of one frame as NIfTI volumes with axes (row, column, slice).
fn volumes(t: &SubjectTensor, frame: usize) -> [Volume; 2] {
    let [slice, row, col] = t.spacing_mm;
    let pixdim = [row, col, slice, 1.0];
    let affine = [[row, 0.0, 0.0, 0.0], [0.0, col, 0.0, 0.0], [0.0, 0.0, slice, 0.0], [0.0, 0.0, 0.0, 1.0]];
    // (S, H, W) → (H, W, S)
    let image = t.image.index_axis(Axis(0), frame).permuted_axes([1, 2, 0]).to_owned().into_dyn();
    let mask = t.mask.index_axis(Axis(0), frame).permuted_axes([1, 2, 0]).mapv(f32::from).into_dyn();
    [Volume { data: image, pixdim, affine }, Volume { data: mask, pixdim, affine }]
}
