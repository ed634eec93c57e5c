"""Writes small ACDC-layout and M&Ms-1-layout datasets with nibabel (a NIfTI writer other than ours), plus the facts
the Rust test `crates/cmr-io/tests/suite/nibabel_fixtures.rs` checks: shapes, spacings, affines and voxel values as nibabel
reads them back, and the cohort rows `cmr-debias ingest` must produce.

The files cover what real datasets contain: int16 with scl_slope/scl_inter (nibabel picks the scaling), float32,
uint8/int16 masks, `.nii` and `.nii.gz`, anisotropic spacing, oblique affines, qform-only, sform-only (with shear),
a flipped slice axis, 3D per-frame files (ACDC) and 4D cines (M&Ms-1). Hearts are ellipses: an LV blood pool, a
myocardial ring and an RV on the low-y side, in slices 1..4 of 6 (ACDC codes 1 RV 2 MYO 3 LV; M&Ms 1 LV 2 MYO 3 RV).

Usage: python make-nifti-fixtures.py OUT_DIR      (writes OUT_DIR/acdc, OUT_DIR/mnms1, OUT_DIR/expected.json)
"""
import hashlib
import json
import pathlib
import sys

import nibabel as nib
import numpy as np

SHAPE = (40, 48, 6)
LV_SLICES = (1, 4)  # first and last slice (z) with LV, both frames
MNMS_CSV = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"
CANONICAL = {"LV": 1, "MYO": 2, "RV": 3}
ACDC_CODES = {"LV": 3, "MYO": 2, "RV": 1}


def rotation(z_deg, x_deg):
    z, x = np.radians(z_deg), np.radians(x_deg)
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    return rx @ rz


def affine(zooms, rot=np.eye(3), offset=(0.0, 0.0, 0.0), flip_z=False, shear=0.0):
    m = rot @ np.diag([zooms[0], zooms[1], -zooms[2] if flip_z else zooms[2]])
    m[0, 1] += shear
    out = np.eye(4)
    out[:3, :3] = m
    out[:3, 3] = offset
    return out


def heart(zooms, lv_radius_mm, wall_mm, codes):
    """Label volume: LV disc, MYO ring, RV crescent towards low y; all in mm, so round on anisotropic grids."""
    cx, cy = 21.3, 25.7
    x = (np.arange(SHAPE[0])[:, None] - cx) * zooms[0]
    y = (np.arange(SHAPE[1])[None, :] - cy) * zooms[1]
    r = np.hypot(x, y)
    rv_centre = -(lv_radius_mm + wall_mm + 6.0)
    rv = np.hypot(x / 1.3, y - rv_centre) <= 10.0
    plane = np.zeros(SHAPE[:2], np.uint8)
    plane[rv & (r > lv_radius_mm + wall_mm)] = codes["RV"]
    plane[(r > lv_radius_mm) & (r <= lv_radius_mm + wall_mm)] = codes["MYO"]
    plane[r <= lv_radius_mm] = codes["LV"]
    labels = np.zeros(SHAPE, np.uint8)
    for z in range(LV_SLICES[0], LV_SLICES[1] + 1):
        labels[..., z] = plane
    return labels


def intensity(canonical, rng):
    """bSSFP-like: bright blood, grey myocardium, a background gradient, mild noise."""
    table = np.array([0.0, 400.0, 120.0, 370.0])
    gx = np.linspace(30, 60, SHAPE[0])[:, None, None]
    return gx + table[canonical] + rng.normal(0, 4.0, canonical.shape)


def save(data, aff, path, dtype, qform=1, sform=1):
    img = nib.Nifti1Image(data, aff)
    img.set_data_dtype(dtype)
    img.set_qform(aff if qform else None, code=qform)
    img.set_sform(aff if sform else None, code=sform)
    nib.save(img, path)


def describe(path, root, rng):
    """Facts about one file as nibabel reads it back."""
    img = nib.load(path)
    data = img.get_fdata()
    idx = [tuple(0 for _ in data.shape), tuple(s - 1 for s in data.shape), (21, 26, 2) + (0,) * (data.ndim - 3)]
    idx += [tuple(int(rng.integers(0, s)) for s in data.shape) for _ in range(6)]
    return {
        "path": str(path.relative_to(root)),
        "shape": list(data.shape),
        "zooms": [float(z) for z in img.header.get_zooms()],
        "affine": img.affine.tolist(),
        "dtype": str(img.get_data_dtype()),
        "scl_slope": float(img.dataobj.slope),
        "scl_inter": float(img.dataobj.inter),
        "samples": [[list(i), float(data[i])] for i in idx],
    }


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def bmi(height, weight):
    return None if height is None or weight is None else weight / (height / 100.0) ** 2


def acdc(root, rng, volumes):
    """patient001 HCM: int16 scaled, .nii.gz, oblique sform+qform, Sex/Age extension keys.
    patient002 NOR: float32 .nii, qform only with a flipped z axis, ED after ES, no Weight.
    patient003 DCM (left out by task hcm): float32 .nii.gz, sform only with shear, int16 masks.
    patient004 NOR: Info.cfg without images (skipped)."""
    subjects = [
        dict(id="patient001", group="HCM", ed=1, es=3, frames=5, height=172.0, weight=70.0, sex="F", age=63.0,
             zooms=(1.8, 1.6, 8.0), aff=dict(rot=rotation(25, 15), offset=(-40.0, 30.0, 12.0)), dtype=np.int16,
             mask_dtype=np.uint8, ext=".nii.gz", qform=1, sform=1, wall=7.0),
        dict(id="patient002", group="NOR", ed=4, es=2, frames=4, height=180.0, weight=None, sex=None, age=None,
             zooms=(1.6, 1.6, 10.0), aff=dict(rot=rotation(-10, 0), offset=(5.0, -8.0, 40.0), flip_z=True),
             dtype=np.float32, mask_dtype=np.uint8, ext=".nii", qform=1, sform=0, wall=4.0),
        dict(id="patient003", group="DCM", ed=1, es=2, frames=2, height=165.0, weight=90.0, sex="M", age=48.0,
             zooms=(1.4, 1.7, 9.0), aff=dict(shear=0.2, offset=(1.0, 2.0, 3.0)), dtype=np.float32,
             mask_dtype=np.int16, ext=".nii.gz", qform=0, sform=1, wall=4.0),
    ]
    rows, skipped = [], ["acdc:patient004"]
    for s in subjects:
        folder = root / "acdc" / "training" / s["id"]
        folder.mkdir(parents=True)
        info = {"ED": s["ed"], "ES": s["es"], "Group": s["group"], "Height": s["height"], "NbFrame": s["frames"]}
        info.update({k: v for k, v in (("Weight", s["weight"]), ("Sex", s["sex"]), ("Age", s["age"])) if v is not None})
        (folder / "Info.cfg").write_text("".join(f"{k}: {v}\n" for k, v in info.items()))
        aff = affine(s["zooms"], **s["aff"])
        shas = []
        for frame, radius in ((s["ed"], 12.0), (s["es"], 8.0)):
            canonical = heart(s["zooms"], radius, s["wall"], CANONICAL)
            codes = heart(s["zooms"], radius, s["wall"], ACDC_CODES)
            stem = folder / f"{s['id']}_frame{frame:02d}"
            image_path, mask_path = pathlib.Path(f"{stem}{s['ext']}"), pathlib.Path(f"{stem}_gt{s['ext']}")
            save(intensity(canonical, rng), aff, image_path, s["dtype"], s["qform"], s["sform"])
            save(codes.astype(s["mask_dtype"]), aff, mask_path, s["mask_dtype"], s["qform"], s["sform"])
            volumes += [describe(image_path, root, rng), describe(mask_path, root, rng)]
            shas += [sha256(image_path), sha256(mask_path)]
        rows.append(dict(subject_id=f"acdc:{s['id']}", site="acdc", vendor="Siemens", sex=s["sex"], age=s["age"],
                         height_cm=s["height"], weight_kg=s["weight"], bmi=bmi(s["height"], s["weight"]),
                         diagnosis=s["group"], label={"NOR": 0, "HCM": 1}.get(s["group"]), source_sha256=shas,
                         slice_spacing=s["zooms"][2]))
    missing = root / "acdc" / "training" / "patient004"
    missing.mkdir(parents=True)
    (missing / "Info.cfg").write_text("ED: 1\nES: 2\nGroup: NOR\nHeight: 170\nWeight: 60\nNbFrame: 2\n")
    return finish(rows, skipped)


def mnms1(root, rng, volumes):
    """A1B2C3 HCM (Training/Labeled): 4D int16 scaled .nii.gz, oblique. D4E5F6 NOR (Validation): 4D float32 .nii,
    ED after ES, empty Weight. G7H8I9 DCM (Testing, left out by task hcm). Z9Z9Z9: a CSV row without images."""
    subjects = [
        dict(code="A1B2C3", folder="Training/Labeled", vendor="Siemens", letter="A", centre=1, ed=0, es=3, frames=5,
             age=55.0, path="HCM", sex="M", height=175.0, weight=80.0, zooms=(1.25, 1.25, 10.0),
             aff=dict(rot=rotation(40, -20), offset=(-60.0, 10.0, -5.0)), dtype=np.int16, ext=".nii.gz", wall=7.0),
        dict(code="D4E5F6", folder="Validation", vendor="Philips", letter="B", centre=2, ed=4, es=1, frames=5,
             age=41.0, path="NOR", sex="F", height=160.0, weight=None, zooms=(1.5, 1.4, 9.0),
             aff=dict(offset=(0.0, 0.0, 0.0)), dtype=np.float32, ext=".nii", wall=4.0),
        dict(code="G7H8I9", folder="Testing", vendor="GE", letter="C", centre=3, ed=0, es=1, frames=2,
             age=70.0, path="DCM", sex="M", height=170.0, weight=85.0, zooms=(1.3, 1.3, 8.0),
             aff=dict(offset=(3.0, 3.0, 3.0)), dtype=np.float32, ext=".nii.gz", wall=4.0),
    ]
    lines = [",External code,VendorName,Vendor,Centre,ED,ES,Age,Pathology,Sex,Height,Weight"]
    rows = []
    for i, s in enumerate(subjects):
        folder = root / "mnms1" / s["folder"] / s["code"]
        folder.mkdir(parents=True)
        aff = affine(s["zooms"], **s["aff"])
        image = np.zeros(SHAPE + (s["frames"],))
        mask = np.zeros(SHAPE + (s["frames"],), np.uint8)
        for t in range(s["frames"]):
            radius = 12.0 if t == s["ed"] else 8.0 if t == s["es"] else 10.0
            canonical = heart(s["zooms"], radius, s["wall"], CANONICAL)
            image[..., t] = intensity(canonical, rng)
            if t in (s["ed"], s["es"]):
                mask[..., t] = canonical  # M&Ms codes are the canonical ones
        image_path = folder / f"{s['code']}_sa{s['ext']}"
        mask_path = folder / f"{s['code']}_sa_gt{s['ext']}"
        save(image, aff, image_path, s["dtype"])
        save(mask, aff, mask_path, np.uint8)
        volumes += [describe(image_path, root, rng), describe(mask_path, root, rng)]
        weight = "" if s["weight"] is None else s["weight"]
        lines.append(f"{i},{s['code']},{s['vendor']},{s['letter']},{s['centre']},{s['ed']},{s['es']},{s['age']},"
                     f"{s['path']},{s['sex']},{s['height']},{weight}")
        rows.append(dict(subject_id=f"mnms1:{s['code']}", site=f"mnms1-centre{s['centre']}", vendor=s["vendor"],
                         sex=s["sex"], age=s["age"], height_cm=s["height"], weight_kg=s["weight"],
                         bmi=bmi(s["height"], s["weight"]), diagnosis=s["path"],
                         label={"NOR": 0, "HCM": 1}.get(s["path"]), source_sha256=[sha256(image_path), sha256(mask_path)],
                         slice_spacing=s["zooms"][2]))
    lines.append("3,Z9Z9Z9,Canon,D,4,0,5,33,NOR,F,158,52")
    (root / "mnms1" / MNMS_CSV).write_text("\n".join(lines) + "\n")
    return finish(rows, ["mnms1:Z9Z9Z9"])


def finish(rows, skipped):
    return {
        "rows": [r for r in rows if r["label"] is not None],
        "excluded_by_task": [r["subject_id"] for r in rows if r["label"] is None],
        "skipped_missing_images": skipped,
        "lv_slices": list(LV_SLICES),
    }


def main():
    root = pathlib.Path(sys.argv[1])
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    volumes = []
    datasets = {"acdc": acdc(root, rng, volumes), "mnms1": mnms1(root, rng, volumes)}
    expected = {"nibabel": nib.__version__, "volumes": volumes, "datasets": datasets}
    (root / "expected.json").write_text(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
