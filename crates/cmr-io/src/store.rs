//! The subject tensor store (DESIGN.md, "Subject tensor"): one safetensors file per subject with an `image` (f32,
//! `[2, S, H, W]`, channel 0 = ED, 1 = ES, values in \[0, 1\]) and a `mask` (u8, same shape, canonical labels), plus
//! metadata (spacing, sha256 of the source files) in the header's `__metadata__`.
//!
//! The file follows the safetensors format (<https://github.com/huggingface/safetensors#format>) and is read back
//! with the `safetensors` crate, but the header is serialised here: `safetensors::serialize` takes the metadata as a
//! `HashMap`, whose iteration order changes from run to run, and this project promises byte-identical outputs for
//! identical inputs. Keys are written in a fixed order: `__metadata__`, `image`, `mask`.

use std::collections::HashMap;
use std::path::Path;

use cmr_core::labels;
use cmr_core::manifest::sha256_hex;
use ndarray::Array4;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// Value of the `format` metadata key.
pub const FORMAT: &str = "cmr-debias.subject-tensor";
/// Value of the `version` metadata key.
pub const VERSION: &str = "1";

/// One subject's ED/ES short-axis stack, preprocessed.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectTensor {
    /// `[2, S, H, W]`: channel 0 = ED, 1 = ES; S slices base→apex; values in \[0, 1\].
    pub image: Array4<f32>,
    /// `[2, S, H, W]` canonical labels (0 background, 1 LV, 2 MYO, 3 RV).
    pub mask: Array4<u8>,
    /// Spacing in mm along slice, row, column.
    pub spacing_mm: [f64; 3],
    /// sha256 of each source file the tensor was made from (empty for synthetic subjects).
    pub source_sha256: Vec<String>,
}

#[derive(serde::Serialize)]
struct Header<'a> {
    #[serde(rename = "__metadata__")]
    metadata: Metadata,
    image: Entry<'a>,
    mask: Entry<'a>,
}

/// Header metadata; safetensors requires string values, so lists are JSON text.
#[derive(serde::Serialize)]
struct Metadata {
    format: &'static str,
    version: &'static str,
    frames: &'static str,
    labels: &'static str,
    spacing_mm: String,
    source_sha256: String,
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    dtype: &'static str,
    shape: &'a [usize],
    data_offsets: [usize; 2],
}

/// Writes `t` to `path` atomically and returns the sha256 of the file. Same tensor, same bytes.
///
/// # Errors
/// [`Error::Invalid`] when the image and mask shapes differ or are not `[2, S, H, W]` with non-zero sizes, when an
/// image value is outside \[0, 1\], a mask value is not a canonical label, or a spacing is not positive;
/// [`Error::Core`] when writing fails.
pub fn write_tensor(path: &Path, t: &SubjectTensor) -> Result<String> {
    validate(path, t.image.shape(), t.mask.shape(), &t.spacing_mm)?;
    if let Some(v) = t.image.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::invalid(path, "image", "values in [0, 1]", v));
    }
    check_mask(path, t.mask.iter())?;
    let bytes = encode(t);
    let sha256 = sha256_hex(&bytes);
    cmr_core::atomic::write_bytes(path, &bytes)?;
    Ok(sha256)
}

fn encode(t: &SubjectTensor) -> Vec<u8> {
    let image_len = t.image.len() * 4;
    let header = Header {
        metadata: Metadata {
            format: FORMAT,
            version: VERSION,
            frames: "ED,ES",
            labels: "0 background,1 LV,2 MYO,3 RV",
            spacing_mm: serde_json::to_string(&t.spacing_mm).expect("floats serialise"),
            source_sha256: serde_json::to_string(&t.source_sha256).expect("strings serialise"),
        },
        image: Entry { dtype: "F32", shape: t.image.shape(), data_offsets: [0, image_len] },
        mask: Entry { dtype: "U8", shape: t.mask.shape(), data_offsets: [image_len, image_len + t.mask.len()] },
    };
    let mut json = serde_json::to_vec(&header).expect("header serialises");
    // The format pads the header with spaces to a multiple of 8 bytes so the f32 data is aligned.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + json.len() + image_len + t.mask.len());
    bytes.extend((json.len() as u64).to_le_bytes());
    bytes.extend(json);
    // `iter()` walks the arrays in logical (row-major) order whatever their memory layout.
    bytes.extend(t.image.iter().flat_map(|v| v.to_le_bytes()));
    bytes.extend(t.mask.iter());
    bytes
}

/// Reads and validates a subject tensor file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Invalid`] naming the tensor or metadata key when the file
/// is not a safetensors file, lacks `image`/`mask`, has other dtypes or shapes, or metadata that does not parse;
/// [`Error::Missing`] for an absent metadata key.
pub fn read_tensor(path: &Path) -> Result<SubjectTensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| Error::invalid(path, "header", "a safetensors file", e))?;
    let (_, header) =
        SafeTensors::read_metadata(&bytes).map_err(|e| Error::invalid(path, "header", "a safetensors file", e))?;
    let empty = HashMap::new();
    let meta = header.metadata().as_ref().unwrap_or(&empty);
    let key = |name: &str| meta.get(name).ok_or_else(|| Error::missing(path, format!("__metadata__.{name}")));
    let format = key("format")?;
    if format != FORMAT || key("version")? != VERSION {
        return Err(Error::invalid(path, "__metadata__.format", format!("{FORMAT} version {VERSION}"), format));
    }
    let spacing_mm: [f64; 3] = serde_json::from_str(key("spacing_mm")?)
        .map_err(|e| Error::invalid(path, "__metadata__.spacing_mm", "a JSON array of 3 numbers", e))?;
    let source_sha256: Vec<String> = serde_json::from_str(key("source_sha256")?)
        .map_err(|e| Error::invalid(path, "__metadata__.source_sha256", "a JSON array of strings", e))?;

    let tensor = |name: &str, dtype: Dtype| {
        let view = st.tensor(name).map_err(|_| Error::missing(path, name))?;
        if view.dtype() != dtype {
            return Err(Error::invalid(path, name, format!("dtype {dtype:?}"), format!("{:?}", view.dtype())));
        }
        let shape: [usize; 4] = view
            .shape()
            .try_into()
            .map_err(|_| Error::invalid(path, name, "4 axes [2, S, H, W]", format!("{:?}", view.shape())))?;
        Ok((shape, view.data()))
    };
    let (image_shape, image_bytes) = tensor("image", Dtype::F32)?;
    let (mask_shape, mask_bytes) = tensor("mask", Dtype::U8)?;
    validate(path, &image_shape, &mask_shape, &spacing_mm)?;
    check_mask(path, mask_bytes.iter())?;
    let values: Vec<f32> = image_bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let image = Array4::from_shape_vec(image_shape, values).expect("safetensors checked the data length");
    let mask = Array4::from_shape_vec(mask_shape, mask_bytes.to_vec()).expect("safetensors checked the data length");
    Ok(SubjectTensor { image, mask, spacing_mm, source_sha256 })
}

fn validate(path: &Path, image: &[usize], mask: &[usize], spacing: &[f64; 3]) -> Result<()> {
    if image.len() != 4 || image[0] != 2 || image.contains(&0) {
        return Err(Error::invalid(path, "image", "shape [2, S, H, W] with S, H, W ≥ 1", format!("{image:?}")));
    }
    if mask != image {
        return Err(Error::invalid(path, "mask", format!("the image's shape {image:?}"), format!("{mask:?}")));
    }
    if !spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(Error::invalid(path, "spacing_mm", "3 positive numbers", format!("{spacing:?}")));
    }
    Ok(())
}

fn check_mask<'a>(path: &Path, mut values: impl Iterator<Item = &'a u8>) -> Result<()> {
    match values.find(|&&v| v as usize >= labels::COUNT) {
        Some(v) => Err(Error::invalid(path, "mask", "canonical labels 0..=3", v)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor() -> SubjectTensor {
        let image = Array4::from_shape_fn((2, 3, 4, 5), |(f, s, h, w)| ((f * 60 + s * 20 + h * 5 + w) as f32) / 120.0);
        let mask = Array4::from_shape_fn((2, 3, 4, 5), |(f, s, h, w)| ((f + s + h + w) % 4) as u8);
        SubjectTensor {
            image,
            mask,
            spacing_mm: [9.25, 1.5, 1.5],
            source_sha256: vec!["ab".repeat(32), "cd".repeat(32)],
        }
    }

    #[test]
    fn round_trip_is_exact_and_bytes_are_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
        let t = tensor();
        let sha = write_tensor(&a, &t).unwrap();
        assert_eq!(write_tensor(&b, &t).unwrap(), sha);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(sha, cmr_core::manifest::sha256_file(&a).unwrap());
        assert_eq!(read_tensor(&a).unwrap(), t);
        // The header starts with the metadata, keys in a fixed order.
        let bytes = std::fs::read(&a).unwrap();
        let json =
            std::str::from_utf8(&bytes[8..8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize]).unwrap();
        assert!(json.starts_with(r#"{"__metadata__":{"format":"cmr-debias.subject-tensor","version":"1""#), "{json}");
    }

    #[test]
    fn a_non_standard_layout_is_written_in_logical_order() {
        use ndarray::ShapeBuilder;
        let t = tensor();
        let mut f = t.clone();
        f.image = Array4::from_shape_vec(t.image.raw_dim().f(), t.image.t().iter().copied().collect()).unwrap();
        assert_eq!(f.image, t.image);
        assert_eq!(encode(&f), encode(&t));
    }

    #[test]
    fn wrong_shapes_and_dtypes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let mut t = tensor();
        t.mask = Array4::zeros((2, 3, 4, 6));
        let err = write_tensor(&path, &t).unwrap_err().to_string();
        assert!(err.contains("x.safetensors") && err.contains("`mask`"), "{err}");
        assert!(!path.exists());

        // A safetensors file whose mask is f32.
        let data = vec![0u8; 2 * 4];
        let views = [
            ("image", safetensors::tensor::TensorView::new(Dtype::F32, vec![2, 1, 1, 1], &data).unwrap()),
            ("mask", safetensors::tensor::TensorView::new(Dtype::F32, vec![2, 1, 1, 1], &data).unwrap()),
        ];
        let meta: HashMap<String, String> =
            [("format", FORMAT), ("version", VERSION), ("spacing_mm", "[1.0,1.0,1.0]"), ("source_sha256", "[]")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
        let err = read_tensor(&path).unwrap_err().to_string();
        assert!(err.contains("`mask`") && err.contains("U8"), "{err}");
    }
}
