//! Dataset adapters: each reads one public dataset's folder layout and metadata into [`SubjectRecord`]s — who the
//! subjects are, their attributes and diagnosis, and which NIfTI files hold their ED/ES frames. Images are not read
//! here; [`crate::frames::load`] does that. One file per dataset:
//!
//! | dataset | metadata | images |
//! |---|---|---|
//! | [`acdc`] | `**/patientNNN/Info.cfg` | `patientNNN_frameYY.nii.gz` + `_gt` |
//! | [`mnms1`] | `211230_M&Ms_Dataset_information_diagnosis_opendataset.csv` | `{Training/Labeled,Validation,Testing}/CODE/CODE_sa.nii.gz` + `_sa_gt` (4D) |
//! | [`mnms2`] | `dataset_information.csv` | `[dataset/]NNN/NNN_SA_{ED,ES}.nii.gz` + `_gt` |
//! | [`ukbb`] | `metadata.csv` | `EID/{sa_ED,sa_ES,label_sa_ED,label_sa_ES}.nii.gz` |
//!
//! Every file name is also accepted uncompressed (`.nii`). Rules shared by all adapters (issue 2, "Bad input"):
//! a subject listed in the metadata whose image files are absent is skipped (the caller logs one warning listing
//! them); a folder holding NIfTI files without a metadata entry is an error; so is any malformed metadata value,
//! even for a subject whose images are absent.

pub mod acdc;
pub mod mnms1;
pub mod mnms2;
mod text;
pub mod ukbb;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmr_core::subject::RawAttributes;
use cmr_core::Dataset;

use crate::error::{Error, Result};

/// One subject found in a dataset folder.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectRecord {
    /// Id within the dataset (folder name or code); the cohort's `subject_id` is `{dataset}:{id}`.
    pub id: String,
    /// Acquisition site.
    pub site: String,
    /// Scanner vendor (Siemens, Philips, GE, Canon, or the dataset's spelling when unknown).
    pub vendor: String,
    /// Diagnosis code of the dataset.
    pub diagnosis: &'static str,
    /// Attributes as recorded.
    pub attributes: RawAttributes,
    /// Where the ED/ES frames are.
    pub images: ImageFiles,
    /// The metadata file the record comes from (named in errors about its values).
    pub metadata: PathBuf,
}

/// The NIfTI files of a subject's ED and ES frames.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageFiles {
    /// One 3D image and mask per frame, `[ED, ES]` (ACDC, M&Ms-2, UK-Biobank-style).
    PerFrame {
        /// ED and ES images.
        image: [PathBuf; 2],
        /// ED and ES masks.
        mask: [PathBuf; 2],
    },
    /// A 4D cine image and mask (M&Ms-1); `frames` are the 0-based ED and ES indices along `t`, checked against the
    /// frame count when the files are read.
    Cine {
        /// The cine image, axes `x, y, z, t`.
        image: PathBuf,
        /// The cine mask, labelled at the ED and ES frames.
        mask: PathBuf,
        /// 0-based `[ED, ES]` frame indices.
        frames: [usize; 2],
    },
}

/// What an adapter found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    /// Subjects with their image files, sorted by id.
    pub subjects: Vec<SubjectRecord>,
    /// Ids of subjects listed in the metadata whose image files are absent, sorted.
    pub skipped_missing_images: Vec<String>,
}

/// Finds the subjects of `dataset` under `root` and logs one warning listing the subjects without images.
///
/// # Errors
/// [`Error::Io`] when `root` is not a readable folder, plus each adapter's errors (malformed metadata, an image
/// folder without metadata); [`Error::Invalid`] when two entries share an id or an id has characters other than
/// letters, digits, `.`, `_` and `-`.
pub fn discover(dataset: Dataset, root: &Path) -> Result<Discovery> {
    if !root.is_dir() {
        return Err(Error::io(root, std::io::Error::new(std::io::ErrorKind::NotFound, "dataset folder not found")));
    }
    let mut found = match dataset {
        Dataset::Acdc => acdc::discover(root),
        Dataset::Mnms1 => mnms1::discover(root),
        Dataset::Mnms2 => mnms2::discover(root),
        Dataset::Ukbb => ukbb::discover(root),
    }?;
    found.subjects.sort_by(|a, b| a.id.cmp(&b.id));
    found.skipped_missing_images.sort();
    for pair in found.subjects.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(Error::invalid(&pair[1].metadata, "subject id", "one entry per subject", &pair[1].id));
        }
    }
    if !found.skipped_missing_images.is_empty() {
        tracing::warn!(
            dataset = dataset.name(),
            root = %root.display(),
            count = found.skipped_missing_images.len(),
            subjects = %found.skipped_missing_images.join(", "),
            "subjects listed in the metadata have no image files; skipped"
        );
    }
    Ok(found)
}

impl Discovery {
    /// Adds `record` when `images` were found, else lists its id as skipped.
    fn push(&mut self, images: Option<ImageFiles>, record: impl FnOnce(ImageFiles) -> SubjectRecord, id: &str) {
        match images {
            Some(images) => self.subjects.push(record(images)),
            None => self.skipped_missing_images.push(id.to_string()),
        }
    }
}

/// Checks that a subject id is safe as part of a file name.
fn check_id<'a>(id: &'a str, metadata: &Path, field: &str) -> Result<&'a str> {
    if id.is_empty()
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || id.starts_with('.')
    {
        return Err(Error::invalid(
            metadata,
            field,
            "a subject id of letters, digits, '.', '_' and '-'",
            format!("{id:?}"),
        ));
    }
    Ok(id)
}

/// `dir/stem.nii.gz`, else `dir/stem.nii`, if either is a file.
fn find_nifti(dir: &Path, stem: &str) -> Option<PathBuf> {
    [".nii.gz", ".nii"].iter().map(|ext| dir.join(format!("{stem}{ext}"))).find(|p| p.is_file())
}

/// Per-frame files `[ED, ES]` named by `stems`, when all four exist.
fn per_frame(dir: &Path, image: [String; 2], mask: [String; 2]) -> Option<ImageFiles> {
    let [ei, si] = image.map(|s| find_nifti(dir, &s));
    let [em, sm] = mask.map(|s| find_nifti(dir, &s));
    Some(ImageFiles::PerFrame { image: [ei?, si?], mask: [em?, sm?] })
}

/// Whether `dir` directly holds a `.nii` or `.nii.gz` file.
fn has_nifti(dir: &Path) -> Result<bool> {
    Ok(read_dir_sorted(dir)?.iter().any(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        p.is_file() && (name.ends_with(".nii") || name.ends_with(".nii.gz"))
    }))
}

/// The entries of `dir`, sorted by name.
fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .and_then(|it| it.map(|e| e.map(|e| e.path())).collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| Error::io(dir, e))?;
    entries.sort();
    Ok(entries)
}

/// Sub-folders of each of `dirs` that hold NIfTI files, keyed by `id_of(folder name)`; two folders with one id are
/// an error.
fn image_folders(dirs: &[PathBuf], id_of: impl Fn(&str) -> String) -> Result<BTreeMap<String, PathBuf>> {
    let mut folders = BTreeMap::new();
    for dir in dirs {
        for path in read_dir_sorted(dir)? {
            if !path.is_dir() || !has_nifti(&path)? {
                continue;
            }
            let id = id_of(&path.file_name().expect("read_dir entries have names").to_string_lossy());
            if let Some(first) = folders.insert(id.clone(), path.clone()) {
                return Err(Error::invalid(
                    &path,
                    "folder name",
                    "one image folder per subject",
                    format!("{id:?}, also {}", first.display()),
                ));
            }
        }
    }
    Ok(folders)
}

/// Fails on the first image folder whose id has no metadata entry.
fn require_metadata(
    folders: &BTreeMap<String, PathBuf>,
    listed: &[String],
    metadata: &Path,
    field: &str,
) -> Result<()> {
    match folders.iter().find(|(id, _)| !listed.contains(id)) {
        Some((id, folder)) => Err(Error::NoMetadata {
            folder: folder.clone(),
            metadata: metadata.into(),
            field: field.into(),
            id: id.clone(),
        }),
        None => Ok(()),
    }
}

/// Canonical vendor names for the spellings of the public datasets (`SIEMENS`, `Philips Medical Systems`,
/// `GE MEDICAL SYSTEMS`, `TOSHIBA`…); other names are kept as written.
pub fn vendor_name(raw: &str) -> String {
    let lower = raw.trim().to_ascii_lowercase();
    let canonical = if lower.contains("siemens") {
        "Siemens"
    } else if lower.contains("philips") {
        "Philips"
    } else if lower == "ge" || lower.starts_with("ge ") || lower.contains("general electric") {
        "GE"
    } else if lower.contains("canon") || lower.contains("toshiba") {
        "Canon"
    } else {
        return raw.trim().to_string();
    };
    canonical.to_string()
}

/// `{prefix}-{value}` as a lower-case slug; a bare number `n` becomes `centre{n}` (`mnms1-centre2`).
pub fn site_name(prefix: &str, raw: &str) -> String {
    let raw = raw.trim();
    if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit()) {
        return format!("{prefix}-centre{raw}");
    }
    let slug: Vec<String> = raw
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    format!("{prefix}-{}", slug.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendors_and_sites_are_normalised() {
        assert_eq!(vendor_name("SIEMENS"), "Siemens");
        assert_eq!(vendor_name("Philips Medical Systems"), "Philips");
        assert_eq!(vendor_name("GE MEDICAL SYSTEMS"), "GE");
        assert_eq!(vendor_name("TOSHIBA"), "Canon");
        assert_eq!(vendor_name("Acme "), "Acme");
        assert_eq!(site_name("mnms1", "2"), "mnms1-centre2");
        assert_eq!(site_name("mnms2", "Avanto Fit"), "mnms2-avanto-fit");
    }

    #[test]
    fn ids_must_be_file_name_safe() {
        assert!(check_id("A0S9V9", Path::new("m.csv"), "External code").is_ok());
        let err = check_id("../x", Path::new("m.csv"), "External code").unwrap_err().to_string();
        assert!(err.contains("m.csv") && err.contains("`External code`"), "{err}");
    }
}
