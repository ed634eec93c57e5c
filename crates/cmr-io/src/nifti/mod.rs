//! NIfTI-1 volumes in and out, through the `nifti` crate: single-file `.nii` and `.nii.gz`, any scalar datatype on
//! disk with `scl_slope`/`scl_inter` applied on read, spacing and affine kept.
//!
//! Reading is strict where other readers are lenient: the whole file is read (and gunzipped) first, so a truncated
//! gzip stream is reported as such, and the voxel data must have exactly the size the header's `dim` and `datatype`
//! imply (<https://nifti.nimh.nih.gov/nifti-1/documentation/nifti1fields>). Writing goes to a temporary sibling that is
//! renamed into place, and stores an `sform` and a `qform` that both equal the volume's affine.

mod xform;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ::nifti::{Endianness, InMemNiftiVolume, IntoNdArray, NiftiHeader, NiftiType};
use cmr_core::manifest::sha256_hex;
use ndarray::{ArrayD, CowArray, Dimension, IxDyn};

use crate::error::{Error, Result};

use xform::{affine_to_quatern, quatern_to_affine, Quatern};

/// NIfTI `xform` code written for both `qform_code` and `sform_code`: scanner-based anatomical coordinates.
const XFORM_SCANNER_ANAT: i16 = 1;
/// `xyzt_units`: millimetres (2) and seconds (8).
const UNITS_MM_S: u8 = 2 | 8;
/// Relative tolerance between `pixdim` and the affine's column norms accepted by [`write_volume`].
const SPACING_TOLERANCE: f64 = 1e-3;

/// A NIfTI volume in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// Voxel values (scaled by `scl_slope`/`scl_inter`), axes `x, y, z[, t]` in the order stored on disk.
    pub data: ArrayD<f32>,
    /// Spacing along `x, y, z` in mm and `t` in s (`pixdim[1..=4]`).
    pub pixdim: [f64; 4],
    /// Voxel index `(i, j, k, 1)` → RAS+ world mm: the `sform` if `sform_code > 0`, else the `qform` if
    /// `qform_code > 0`, else `diag(pixdim)` (NIfTI "method 1").
    pub affine: [[f64; 4]; 4],
}

/// Datatype written on disk by [`write_volume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDiskType {
    /// Unsigned 8-bit integers (label masks); every value must be an integer in 0..=255.
    U8,
    /// Signed 16-bit integers; every value must be an integer in −32768..=32767.
    I16,
    /// 32-bit floats, stored as they are.
    F32,
}

/// Reads a `.nii` or `.nii.gz` file (gzip is recognised by its magic bytes, whatever the name).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Nifti`] naming the field when the gzip stream is truncated,
/// the header is invalid, the datatype is not a scalar type, or the header's dims disagree with the data size.
pub fn read_volume(path: &Path) -> Result<Volume> {
    read_volume_hashed(path).map(|(volume, _)| volume)
}

/// Reads a volume like [`read_volume`] and returns the sha256 of the file's bytes as stored (provenance).
pub fn read_volume_hashed(path: &Path) -> Result<(Volume, String)> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let sha256 = sha256_hex(&raw);
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(|e| {
            Error::nifti(path, "gzip stream", format!("truncated or corrupt ({e}); re-download or re-export the file"))
        })?;
        out
    } else {
        raw
    };
    Ok((parse(path, &bytes)?, sha256))
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Volume> {
    let header = NiftiHeader::from_reader(bytes).map_err(|e| Error::nifti(path, "header", e))?;
    if &header.magic != b"n+1\0" {
        return Err(Error::nifti(
            path,
            "magic",
            format!("expected \"n+1\" (single-file NIfTI-1), got {:?}", header.magic),
        ));
    }
    let dims: Vec<usize> =
        header.dim().map_err(|e| Error::nifti(path, "dim", e))?.iter().map(|&d| d as usize).collect();
    let datatype = header.data_type().map_err(|e| Error::nifti(path, "datatype", e))?;
    if !is_scalar(datatype) {
        return Err(Error::nifti(
            path,
            "datatype",
            format!("expected a scalar integer or float type, got {datatype:?}"),
        ));
    }
    let offset = header.vox_offset;
    if !(offset >= 348.0 && offset.fract() == 0.0 && (offset as usize) <= bytes.len()) {
        return Err(Error::nifti(
            path,
            "vox_offset",
            format!("expected a whole number in 348..={}, got {offset}", bytes.len()),
        ));
    }
    let offset = offset as usize;
    let needed = dims.iter().try_fold(datatype.size_of(), |acc, &d| acc.checked_mul(d));
    let have = bytes.len() - offset;
    if needed != Some(have) {
        let needed = needed.map_or("more than usize::MAX".to_string(), |n| n.to_string());
        return Err(Error::nifti(
            path,
            "dim",
            format!("header dims {dims:?} of {datatype:?} need {needed} bytes of voxel data after vox_offset {offset}, the file holds {have}"),
        ));
    }
    let data = InMemNiftiVolume::from_raw_data(&header, bytes[offset..].to_vec())
        .and_then(|v| v.into_ndarray::<f32>())
        .map_err(|e| Error::nifti(path, "datatype", e))?;
    let p = header.pixdim.map(f64::from);
    let pixdim = [p[1], p[2], p[3], p[4]];
    Ok(Volume { data, pixdim, affine: best_affine(&header, pixdim) })
}

fn is_scalar(datatype: NiftiType) -> bool {
    use NiftiType::*;
    matches!(datatype, Uint8 | Int8 | Uint16 | Int16 | Uint32 | Int32 | Uint64 | Int64 | Float32 | Float64)
}

fn best_affine(header: &NiftiHeader, pixdim: [f64; 4]) -> [[f64; 4]; 4] {
    let spacing = [pixdim[0], pixdim[1], pixdim[2]];
    if header.sform_code > 0 {
        let rows = [header.srow_x, header.srow_y, header.srow_z].map(|r| r.map(f64::from));
        [rows[0], rows[1], rows[2], [0.0, 0.0, 0.0, 1.0]]
    } else if header.qform_code > 0 {
        let q = Quatern {
            bcd: [header.quatern_b, header.quatern_c, header.quatern_d].map(f64::from),
            offset: [header.quatern_x, header.quatern_y, header.quatern_z].map(f64::from),
            qfac: f64::from(header.pixdim[0]),
        };
        quatern_to_affine(&q, spacing)
    } else {
        let mut m = [[0.0; 4]; 4];
        for (i, s) in spacing.into_iter().enumerate() {
            m[i][i] = s;
        }
        m[3][3] = 1.0;
        m
    }
}

/// Writes `vol` to `path` (`.nii`, or gzip-compressed `.nii.gz`) atomically: a temporary sibling is written, synced
/// and renamed. Both `sform` and `qform` (code 1, scanner anatomical) are set from `vol.affine`, `pixdim` from
/// `vol.pixdim`, units mm and s, little-endian.
///
/// # Errors
/// [`Error::Invalid`] when the name does not end in `.nii`/`.nii.gz`, when `pixdim` disagrees with the affine's
/// column norms (relative 1e-3), when a value cannot be stored as `dtype`, or the shape has more than 7 axes or one
/// longer than 32767; [`Error::Io`] when writing fails.
pub fn write_volume(path: &Path, vol: &Volume, dtype: OnDiskType) -> Result<()> {
    // 1. check inputs
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let Some((stem, ext)) = [".nii.gz", ".nii"].iter().find_map(|ext| name.strip_suffix(ext).map(|s| (s, *ext))) else {
        return Err(Error::invalid(path, "file name", "a name ending in .nii or .nii.gz", &name));
    };
    let shape = vol.data.shape();
    if shape.is_empty() || shape.len() > 7 || shape.iter().any(|&d| d == 0 || d > i16::MAX as usize) {
        return Err(Error::invalid(path, "dim", "1 to 7 axes of length 1..=32767", format!("{shape:?}")));
    }
    let (q, norms) = affine_to_quatern(&vol.affine);
    for (axis, (&p, n)) in vol.pixdim.iter().zip(norms).enumerate() {
        if !(p > 0.0 && (p - n).abs() <= SPACING_TOLERANCE * p.max(n)) {
            return Err(Error::invalid(
                path,
                format!("pixdim[{}]", axis + 1),
                format!("the spacing of the affine's column {axis} ({n})"),
                p,
            ));
        }
    }
    // 2. header
    let header = header_for(vol, &q);
    // 3. data, written to a temporary sibling and renamed
    let tmp = temp_sibling(path, stem, ext);
    // The `nifti` writer flattens slices of the transposed array with a row-major reshape, which fails (panics) on
    // some contiguous non-standard layouts (e.g. permuted axes); a standard-layout copy is always safe.
    let data = vol.data.as_standard_layout();
    let options = ::nifti::writer::WriterOptions::new(&tmp).reference_header(&header);
    let written = match dtype {
        OnDiskType::U8 => options.write_nifti(&convert(path, &data, 0.0, 255.0, |v| v as u8)?),
        OnDiskType::I16 => options.write_nifti(&convert(path, &data, -32768.0, 32767.0, |v| v as i16)?),
        OnDiskType::F32 => options.write_nifti(&data),
    }
    .map_err(|e| match e {
        ::nifti::NiftiError::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    });
    let result = written.and_then(|()| {
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::io(path, e))
}

fn header_for(vol: &Volume, q: &Quatern) -> NiftiHeader {
    let mut pixdim = [1.0f32; 8];
    pixdim[0] = q.qfac as f32;
    for (dst, src) in pixdim[1..5].iter_mut().zip(vol.pixdim) {
        *dst = src as f32;
    }
    let row = |i: usize| vol.affine[i].map(|v| v as f32);
    let mut descrip = b"cmr-debias".to_vec();
    descrip.resize(80, 0);
    NiftiHeader {
        pixdim,
        xyzt_units: UNITS_MM_S,
        qform_code: XFORM_SCANNER_ANAT,
        sform_code: XFORM_SCANNER_ANAT,
        quatern_b: q.bcd[0] as f32,
        quatern_c: q.bcd[1] as f32,
        quatern_d: q.bcd[2] as f32,
        quatern_x: q.offset[0] as f32,
        quatern_y: q.offset[1] as f32,
        quatern_z: q.offset[2] as f32,
        srow_x: row(0),
        srow_y: row(1),
        srow_z: row(2),
        descrip,
        endianness: Endianness::Little,
        ..NiftiHeader::default()
    }
}

/// Casts every value to an integer type after checking it is a whole number in `lo..=hi`.
fn convert<T>(
    path: &Path,
    data: &CowArray<'_, f32, IxDyn>,
    lo: f32,
    hi: f32,
    cast: impl Fn(f32) -> T,
) -> Result<ArrayD<T>> {
    // Scan the values alone (a dynamic-rank `indexed_iter` allocates an index per voxel); the index of a bad value
    // is only looked up for the message.
    if let Some(bad) = data.iter().position(|v| !(v.fract() == 0.0 && (lo..=hi).contains(v))) {
        let (index, v) = data.indexed_iter().nth(bad).expect("position within the array");
        return Err(Error::invalid(
            path,
            "data",
            format!("whole numbers in {lo}..={hi} for this datatype"),
            format!("{v} at voxel {:?}", index.slice()),
        ));
    }
    Ok(data.mapv(cast))
}

/// `.{stem}-tmp{pid}-{n}{ext}` beside `path`. The name keeps `ext` and has no other dot after the first character,
/// because the `nifti` writer rewrites everything after the last dots of the name into `.nii`/`.nii.gz`.
fn temp_sibling(path: &Path, stem: &str, ext: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let stem = stem.replace('.', "_");
    path.with_file_name(format!(".{stem}-tmp{}-{n}{ext}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, ShapeBuilder};

    fn oblique() -> [[f64; 4]; 4] {
        // 30° about z, spacing (1.25, 1.5, 8) with the k axis flipped, offset (−20, 35, 4).
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        [[c * 1.25, -s * 1.5, 0.0, -20.0], [s * 1.25, c * 1.5, 0.0, 35.0], [0.0, 0.0, -8.0, 4.0], [0.0, 0.0, 0.0, 1.0]]
    }

    fn volume(data: ArrayD<f32>) -> Volume {
        Volume { data, pixdim: [1.25, 1.5, 8.0, 1.0], affine: oblique() }
    }

    fn header(path: &Path) -> NiftiHeader {
        NiftiHeader::from_file(path).unwrap()
    }

    #[test]
    fn volumes_round_trip_with_consistent_sform_and_qform() {
        let dir = tempfile::tempdir().unwrap();
        let data = Array3::from_shape_fn((5, 4, 3), |(x, y, z)| (x + 5 * y + 20 * z) as f32).into_dyn();
        for (name, dtype) in [("a.nii", OnDiskType::F32), ("b.nii.gz", OnDiskType::I16), ("c.nii.gz", OnDiskType::U8)] {
            let path = dir.path().join(name);
            write_volume(&path, &volume(data.clone()), dtype).unwrap();
            let back = read_volume(&path).unwrap();
            assert_eq!(back.data, data, "{name}");
            assert_eq!(back.pixdim, [1.25, 1.5, 8.0, 1.0]);
            let h = header(&path);
            assert_eq!((h.sform_code, h.qform_code, h.pixdim[0]), (1, 1, -1.0));
            let q = Quatern {
                bcd: [h.quatern_b, h.quatern_c, h.quatern_d].map(f64::from),
                offset: [h.quatern_x, h.quatern_y, h.quatern_z].map(f64::from),
                qfac: f64::from(h.pixdim[0]),
            };
            let from_qform = quatern_to_affine(&q, [1.25, 1.5, 8.0]);
            for (a, b) in
                oblique().iter().flatten().zip(back.affine.iter().flatten().chain(from_qform.iter().flatten()))
            {
                assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b}");
            }
        }
        assert_eq!(std::fs::read(dir.path().join("b.nii.gz")).unwrap(), {
            write_volume(&dir.path().join("b.nii.gz"), &volume(data), OnDiskType::I16).unwrap();
            std::fs::read(dir.path().join("b.nii.gz")).unwrap()
        });
        // Only the three outputs: no temporary file left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn any_memory_layout_is_written_in_logical_order() {
        let dir = tempfile::tempdir().unwrap();
        let standard = Array3::from_shape_fn((4, 3, 2), |(x, y, z)| (x * 100 + y * 10 + z) as f32);
        let fortran = Array3::from_shape_vec((4, 3, 2).f(), standard.t().iter().copied().collect()).unwrap();
        let permuted = Array3::from_shape_fn((2, 4, 3), |(z, x, y)| standard[[x, y, z]]).permuted_axes([1, 2, 0]);
        for (i, data) in [fortran, permuted].into_iter().enumerate() {
            let path = dir.path().join(format!("{i}.nii"));
            write_volume(&path, &volume(data.into_dyn()), OnDiskType::F32).unwrap();
            assert_eq!(read_volume(&path).unwrap().data, standard.clone().into_dyn());
        }
    }

    #[test]
    fn unrepresentable_volumes_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.nii.gz");
        let mut data = Array3::from_elem((2, 2, 2), 1.0f32).into_dyn();
        data[[1, 0, 1]] = 1.5;
        data[[1, 1, 0]] = 300.0;
        let err = write_volume(&path, &volume(data.clone()), OnDiskType::U8).unwrap_err().to_string();
        assert!(err.contains("`data`") && err.contains("1.5 at voxel [1, 0, 1]"), "{err}");
        let mut bad = volume(data.clone());
        bad.pixdim[2] = 6.0;
        let err = write_volume(&path, &bad, OnDiskType::F32).unwrap_err().to_string();
        assert!(err.contains("`pixdim[3]`"), "{err}");
        let err = write_volume(&dir.path().join("m.img"), &volume(data), OnDiskType::F32).unwrap_err().to_string();
        assert!(err.contains("`file name`"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn scaling_is_applied_and_missing_xforms_fall_back_to_pixdim() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.nii");
        write_volume(&path, &volume(Array3::from_elem((2, 2, 2), 7.0f32).into_dyn()), OnDiskType::I16).unwrap();
        // Patch scl_slope (byte 112) = 0.5, scl_inter (116) = −3, sform_code (254) = qform_code (252) = 0.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[112..116].copy_from_slice(&0.5f32.to_le_bytes());
        bytes[116..120].copy_from_slice(&(-3.0f32).to_le_bytes());
        bytes[252..256].fill(0);
        std::fs::write(&path, bytes).unwrap();
        let v = read_volume(&path).unwrap();
        assert!(v.data.iter().all(|&x| x == 0.5));
        assert_eq!(v.affine, [[1.25, 0.0, 0.0, 0.0], [0.0, 1.5, 0.0, 0.0], [0.0, 0.0, 8.0, 0.0], [0.0, 0.0, 0.0, 1.0]]);
    }
}
