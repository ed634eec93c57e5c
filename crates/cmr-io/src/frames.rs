//! Reads the ED/ES frames of a [`SubjectRecord`] from its NIfTI files into a [`LoadedSubject`]: picks the frames,
//! checks that images and masks agree in shape, that frame indices exist, that spacings are positive and voxel
//! values finite, and maps mask codes to canonical labels.

use std::path::Path;

use ndarray::{Array3, Axis, Ix3};

use crate::adapters::{ImageFiles, SubjectRecord};
use crate::error::{Error, Result};
use crate::labels::LabelMap;
use crate::nifti::{read_volume_hashed, Volume};
use crate::preprocess::LoadedSubject;

/// Frame names in tensor channel order.
pub const FRAME_NAMES: [&str; 2] = ["ED", "ES"];

/// One frame as read, before label mapping.
struct Frame<'a> {
    image: Array3<f32>,
    mask: Array3<f32>,
    image_path: &'a Path,
    mask_path: &'a Path,
    pixdim: [f64; 4],
}

/// Reads `record`'s frames; `labels` maps its mask codes.
///
/// # Errors
/// The NIfTI reader's errors; [`Error::Invalid`] naming the file and field when an image and its mask differ in
/// shape (`dim`), the ED and ES frames differ in shape, a file is not 3D (per-frame) or 3D/4D (cine), an ED/ES index
/// is beyond the cine's frame count (naming the metadata file and `ED`/`ES`), a spacing is not positive
/// (`pixdim`), an image voxel is not finite (`data`), or a mask value is outside the map (`label`).
pub fn load(record: &SubjectRecord, labels: LabelMap) -> Result<LoadedSubject> {
    // 1. read the files and pick the ED and ES frames
    let mut source_sha256 = Vec::new();
    let mut read = |path: &Path| -> Result<Volume> {
        let (volume, sha) = read_volume_hashed(path)?;
        source_sha256.push(sha);
        Ok(volume)
    };
    let mut frames = Vec::with_capacity(2);
    match &record.images {
        ImageFiles::PerFrame { image, mask } => {
            for (image_path, mask_path) in image.iter().zip(mask) {
                let (img, msk) = (read(image_path)?, read(mask_path)?);
                same_shape(&img, image_path, &msk, mask_path)?;
                frames.push(Frame {
                    image: only_frame(&img, image_path)?,
                    mask: only_frame(&msk, mask_path)?,
                    image_path,
                    mask_path,
                    pixdim: img.pixdim,
                });
            }
        }
        ImageFiles::Cine { image, mask, frames: indices } => {
            let (img, msk) = (read(image)?, read(mask)?);
            same_shape(&img, image, &msk, mask)?;
            let count = frame_count(&img, image)?;
            for (&t, name) in indices.iter().zip(FRAME_NAMES) {
                if t >= count {
                    return Err(Error::invalid(
                        &record.metadata,
                        name,
                        format!("a 0-based frame index below the {count} frames of {}", image.display()),
                        format!("{t} for subject {}", record.id),
                    ));
                }
                frames.push(Frame {
                    image: frame(&img, image, t)?,
                    mask: frame(&msk, mask, t)?,
                    image_path: image,
                    mask_path: mask,
                    pixdim: img.pixdim,
                });
            }
        }
    }
    let [ed, es] = <[Frame; 2]>::try_from(frames).map_err(|_| ()).expect("two frames pushed");

    // 2. check geometry and values
    if es.image.dim() != ed.image.dim() {
        return Err(Error::invalid(
            es.image_path,
            "dim",
            format!("the ED frame's shape {:?} ({})", ed.image.dim(), ed.image_path.display()),
            format!("{:?}", es.image.dim()),
        ));
    }
    let spacing = [ed.pixdim[0].abs(), ed.pixdim[1].abs(), ed.pixdim[2].abs()];
    if !spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
        return Err(Error::invalid(ed.image_path, "pixdim", "positive x, y, z spacings in mm", format!("{spacing:?}")));
    }
    for (f, name) in [&ed, &es].into_iter().zip(FRAME_NAMES) {
        if let Some((index, v)) = f.image.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::invalid(
                f.image_path,
                "data",
                "finite voxel values",
                format!("{v} at voxel {index:?} of frame {name}"),
            ));
        }
    }

    // 3. canonical labels
    let mask = [labels.apply(ed.mask_path, ed.mask.view())?, labels.apply(es.mask_path, es.mask.view())?];
    Ok(LoadedSubject { image: [ed.image, es.image], mask, spacing, ed_mask_path: ed.mask_path.into(), source_sha256 })
}

/// Image and mask must have the same shape (all axes).
fn same_shape(image: &Volume, image_path: &Path, mask: &Volume, mask_path: &Path) -> Result<()> {
    if image.data.shape() != mask.data.shape() {
        return Err(Error::invalid(
            mask_path,
            "dim",
            format!("the image's shape {:?} ({})", image.data.shape(), image_path.display()),
            format!("{:?}", mask.data.shape()),
        ));
    }
    Ok(())
}

/// Frames along `t`: 1 for a 3D volume, `dim[4]` for a 4D one.
fn frame_count(v: &Volume, path: &Path) -> Result<usize> {
    match v.data.shape() {
        [_, _, _] => Ok(1),
        [_, _, _, t] => Ok(*t),
        other => Err(Error::invalid(path, "dim", "a 3D (x, y, z) or 4D (x, y, z, t) volume", format!("{other:?}"))),
    }
}

/// Frame `t` of a 3D (t = 0) or 4D volume; `t` is below [`frame_count`].
fn frame(v: &Volume, path: &Path, t: usize) -> Result<Array3<f32>> {
    let data = v.data.view();
    let data = if data.ndim() == 4 { data.index_axis_move(Axis(3), t) } else { data };
    data.into_dimensionality::<Ix3>().map(|a| a.to_owned()).map_err(|e| Error::nifti(path, "dim", e))
}

/// The volume as one 3D frame (a 4D volume must have a single frame).
fn only_frame(v: &Volume, path: &Path) -> Result<Array3<f32>> {
    if frame_count(v, path)? != 1 {
        return Err(Error::invalid(path, "dim", "a 3D (x, y, z) volume", format!("{:?}", v.data.shape())));
    }
    frame(v, path, 0)
}
