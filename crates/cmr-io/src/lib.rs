//! Data in and out of cmr-debias (DESIGN.md, stage 1 "cohort"; issue 2, section 3):
//!
//! - [`nifti`] — NIfTI-1 volumes (`.nii`, `.nii.gz`) read with scaling, written atomically with a consistent
//!   `sform`/`qform`;
//! - [`adapters`] — the folder layouts and metadata of ACDC, M&Ms-1, M&Ms-2 and UK-Biobank-style datasets;
//! - [`frames`] and [`labels`] — the ED/ES frames of a subject, masks mapped to the canonical labels;
//! - [`preprocess`] — resampling, cropping on the ED LV, slice selection and intensity scaling into the subject
//!   tensor `[2, S, H, W]`;
//! - [`store`] — one safetensors file per subject;
//! - [`ingest`] — a dataset folder → a cohort folder (tensors, cohort table, manifest);
//! - [`export`] and [`preview`] — one subject back out as NIfTI + a PNG preview.
//!
//! Every fallible function returns [`Error`], which names the file and the field at fault.

pub mod adapters;
pub mod error;
pub mod export;
pub mod frames;
pub mod ingest;
pub mod labels;
pub mod nifti;
pub mod preprocess;
pub mod preview;
pub mod store;

pub use error::{Error, Result};
