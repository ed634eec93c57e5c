#!/usr/bin/env python3
"""Phantom realism check (issue 2, section 4): segment phantom mid-ventricular slices with a network trained on REAL
ACDC scans and report the Dice of LV, MYO and RV against the phantom's own labels, overall and per vendor.

The segmenter is the Tiramisu shipped in the PyPI package myopari==0.1.6 (`myopari/Resources/tiramisu_acdc_fp32.onnx`;
input [B, 1, 256, 256] float32, output softmax over 0 background, 1 RV, 2 MYO, 3 LV). Its preprocessing is replicated
exactly from `myopari/processors/functions_utils.py` (`preprocess_data_array`, `predict_data_model`):
  1. min_max_normalize over the whole 3D frame: clip to the 0.05 / 99.05 percentiles of the non-zero voxels, scale
     to [0, 1];
  2. crop to the bounding box of the non-zero voxels, then a centred square crop of the smaller in-plane side;
  3. skimage.transform.resize to 256 × 256 (order 1, anti_aliasing=True) — re-implemented here with scipy exactly as
     scikit-image 0.2x does it (Gaussian pre-filter with σ = max(0, (factor − 1) / 2), mode 'mirror', then
     ndimage.zoom(order=1, mode='mirror', grid_mode=True), clipped to the input range);
  4. each slice is fed as the stored array's [x, y] plane (nibabel order, no reorientation);
  5. argmax, removal of connected components (3D, face connectivity) smaller than 800 voxels, nearest-neighbour
     resize back and paste into the crop.
Mid-ventricular slices: the three slices around the middle of the ED LV-cavity span (labels 3 in ACDC codes); the
same slices are scored at ED and at ES. Dice is pooled over those slices per subject and frame, then averaged.

Usage:
  phantom-realism.py PHANTOM_DIR [--model ONNX] [--max-subjects 40] [--json OUT.json] [--orientations]
--orientations scores the 8 flips/transposes of the network input (prediction mapped back) to learn which in-plane
convention the network expects; the phantom's stored orientation should score best with `identity`.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import onnxruntime as ort
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "external" / "myopari" / "tiramisu_acdc_fp32.onnx"
STRUCTURES = {"LV": 3, "MYO": 2, "RV": 1}  # ACDC / network codes
MNMS_CSV = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"


# ---------------------------------------------------------------- myopari preprocessing, replicated
def min_max_normalize(image, low_perc=0.05, high_perc=99.05):
    non_zeros = image > 0
    low, high = np.percentile(image[non_zeros], [low_perc, high_perc])
    image = np.clip(image, low, high)
    return (image - low) / (high - low)


def sk_resize(image, output_shape, order, anti_aliasing):
    """skimage.transform.resize(image, output_shape, order, mode='reflect', anti_aliasing, preserve_range=False) for
    float input, as scikit-image implements it with scipy.ndimage."""
    image = np.asarray(image, dtype=np.float64)
    factors = np.divide(image.shape, output_shape)
    bounds = (image.min(), image.max())
    if anti_aliasing:
        sigma = np.maximum(0, (factors - 1) / 2)
        image = ndi.gaussian_filter(image, sigma, cval=0, mode="mirror")
    zoom = [1 / f for f in factors]
    out = ndi.zoom(image, zoom, order=order, mode="mirror", cval=0, grid_mode=True)
    return np.clip(out, bounds[0], bounds[1])


def crop_resize_image(image, new_dim=256):
    nz = np.nonzero(image)
    mins, maxs = np.min(nz, axis=1), np.max(nz, axis=1)
    cropped = image[tuple(slice(a, b + 1) for a, b in zip(mins, maxs))]
    h, w = cropped.shape[:2]
    m = min(h, w)
    sh, sw = (h - m) // 2, (w - m) // 2
    square = cropped[sh:sh + m, sw:sw + m, :]
    r0, c0 = mins[0] + sh, mins[1] + sw
    crop_index = (slice(r0, r0 + m), slice(c0, c0 + m), slice(mins[2], maxs[2] + 1))
    if m != new_dim:
        resized = sk_resize(square, (new_dim, new_dim, square.shape[2]), order=1, anti_aliasing=True)
    else:
        resized = square.copy()
    return resized, {"original_shape": image.shape, "crop_index": crop_index, "original_dim": m, "new_dim": new_dim}


def remove_small_elements(seg, min_size_remove=800):
    fg = seg > 0
    lab, n = ndi.label(fg)  # face connectivity, like skimage's remove_small_objects default
    if n == 0:
        return seg
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_size_remove
    keep[0] = False
    return seg * keep[lab]


def restore_mask(seg, info):
    m = info["original_dim"]
    if seg.shape[0] != m:
        seg = sk_resize(seg.astype(np.float64), (m, m, seg.shape[2]), order=0, anti_aliasing=False)
    restored = np.zeros(info["original_shape"], dtype=np.int16)
    restored[info["crop_index"]] = np.rint(seg).astype(np.int16)
    return restored


# ---------------------------------------------------------------- orientations of the network input
def transforms():
    """8 in-plane transforms of a (..., H, W) array, each with its inverse."""
    out = {}
    for t in (False, True):
        for fx in (False, True):
            for fy in (False, True):
                name = ("T" if t else "") + ("fx" if fx else "") + ("fy" if fy else "") or "identity"

                def fwd(a, t=t, fx=fx, fy=fy):
                    if t:
                        a = np.swapaxes(a, -1, -2)
                    if fx:
                        a = a[..., ::-1, :]
                    if fy:
                        a = a[..., :, ::-1]
                    return np.ascontiguousarray(a)

                def inv(a, t=t, fx=fx, fy=fy):
                    if fy:
                        a = a[..., :, ::-1]
                    if fx:
                        a = a[..., ::-1, :]
                    if t:
                        a = np.swapaxes(a, -1, -2)
                    return np.ascontiguousarray(a)

                out[name] = (fwd, inv)
    return out


def segment(session, volume, slices, transform=None):
    """myopari's pipeline on one 3D frame, predicting only `slices`; returns labels (ACDC codes) at those slices."""
    norm = min_max_normalize(volume.astype(np.float64))
    resized, info = crop_resize_image(norm, 256)
    # The crop may have removed empty slices at the ends of z; map stack indices to the crop's.
    z0 = info["crop_index"][2].start
    idx = [k - z0 for k in slices]
    batch = np.stack([resized[..., k][None] for k in idx]).astype(np.float32)  # (n, 1, 256(x), 256(y))
    fwd, inv = transform or (lambda a: a, lambda a: a)
    prob = session.run(None, {session.get_inputs()[0].name: fwd(batch)})[0]
    prob = inv(prob)
    seg = np.argmax(prob, axis=1).transpose(1, 2, 0)  # (256, 256, n)
    seg = remove_small_elements(seg, 800)
    info = dict(info, original_shape=volume.shape[:2] + (len(slices),),
                crop_index=info["crop_index"][:2] + (slice(0, len(slices)),))
    return restore_mask(seg, info)


def dice(pred, gt, code):
    p, g = pred == code, gt == code
    denom = p.sum() + g.sum()
    return float("nan") if denom == 0 else 2.0 * np.logical_and(p, g).sum() / denom


# ---------------------------------------------------------------- phantom folders
def load_subjects(root):
    """Yields (id, vendor, diagnosis, {frame name: (image xyz, gt xyz in ACDC codes)})."""
    root = Path(root)
    truth = {}
    if (root / "phantom_subjects.csv").exists():
        with open(root / "phantom_subjects.csv", newline="") as f:
            truth = {r["id"]: r for r in csv.DictReader(f)}
    if (root / MNMS_CSV).exists():
        with open(root / MNMS_CSV, newline="") as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            code = r["External code"]
            d = root / "Training" / "Labeled" / code
            img = np.asanyarray(nib.load(d / f"{code}_sa.nii.gz").dataobj).astype(np.float64)
            gt = np.asanyarray(nib.load(d / f"{code}_sa_gt.nii.gz").dataobj).astype(np.int16)
            gt = np.choose(gt, [0, 3, 2, 1])  # M&Ms 1=LV 2=MYO 3=RV → ACDC 1=RV 2=MYO 3=LV
            frames = {"ED": int(r["ED"]), "ES": int(r["ES"])}
            yield code, r["VendorName"], r["Pathology"], {k: (img[..., t], gt[..., t]) for k, t in frames.items()}
        return
    for info in sorted(root.glob("**/patient*/Info.cfg")):
        d = info.parent
        cfg = dict(line.split(":", 1) for line in info.read_text().splitlines() if ":" in line)
        cfg = {k.strip(): v.strip() for k, v in cfg.items()}
        pid = d.name
        frames = {}
        for name in ("ED", "ES"):
            stem = d / f"{pid}_frame{int(cfg[name]):02d}"
            img = np.asanyarray(nib.load(f"{stem}.nii.gz").dataobj).astype(np.float64)
            gt = np.asanyarray(nib.load(f"{stem}_gt.nii.gz").dataobj).astype(np.int16)
            frames[name] = (img, gt)
        vendor = cfg.get("Vendor", truth.get(pid, {}).get("vendor", "unknown"))
        yield pid, vendor, cfg.get("Group", "?"), frames


def mid_slices(gt_ed):
    zs = [k for k in range(gt_ed.shape[2]) if (gt_ed[..., k] == 3).any()]
    if not zs:
        return []
    mid = (zs[0] + zs[-1]) // 2
    return [k for k in (mid - 1, mid, mid + 1) if zs[0] <= k <= zs[-1]]


def ensure_model(path):
    if path.exists():
        return path
    fetch = ROOT / "scripts" / "fetch-assets.sh"
    if path == DEFAULT_MODEL and fetch.exists():
        subprocess.run(["bash", str(fetch), "myopari"], check=True, stdout=sys.stderr)
        if path.exists():
            return path
    # Fallback: the wheel from PyPI into a cache folder.
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cmr-debias" / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "-d", str(cache), "myopari==0.1.6"], check=True, stdout=sys.stderr)
    import zipfile
    wheel = next(cache.glob("myopari-0.1.6-*.whl"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z, z.open("myopari/Resources/tiramisu_acdc_fp32.onnx") as src:
        path.write_bytes(src.read())
    return path


def summarise(rows):
    out = {}
    for s in STRUCTURES:
        vals = [r[s] for r in rows if not np.isnan(r[s])]
        out[s] = {"mean": float(np.mean(vals)) if vals else float("nan"),
                  "median": float(np.median(vals)) if vals else float("nan"), "n": len(vals)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phantom_dir")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--max-subjects", type=int, default=40)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--orientations", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dump", type=Path, help="save image, labels and prediction of the scored slices as .npz here")
    args = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(ensure_model(args.model)), opts, providers=["CPUExecutionProvider"])
    names = list(transforms()) if args.orientations else ["identity"]
    rows = {n: [] for n in names}
    started = time.time()
    for count, (sid, vendor, group, frames) in enumerate(load_subjects(args.phantom_dir)):
        if count >= args.max_subjects:
            break
        sl = mid_slices(frames["ED"][1])
        for frame, (img, gt) in frames.items():
            for n in names:
                pred = segment(session, img, sl, transforms()[n] if n != "identity" else None)
                g = gt[..., sl]
                row = {"id": sid, "vendor": vendor, "group": group, "frame": frame}
                row.update({s: dice(pred, g, c) for s, c in STRUCTURES.items()})
                rows[n].append(row)
                if args.dump and n == "identity":
                    args.dump.mkdir(parents=True, exist_ok=True)
                    np.savez_compressed(args.dump / f"{sid}_{frame}.npz", image=img[..., sl], gt=g, pred=pred)
    elapsed = time.time() - started

    report = {"phantom_dir": str(args.phantom_dir), "model": str(args.model), "seconds": round(elapsed, 1)}
    if args.orientations:
        report["orientations"] = {n: summarise(r) for n, r in rows.items()}
        print(f"{'orientation':<12} {'LV':>6} {'MYO':>6} {'RV':>6}")
        for n, s in sorted(report["orientations"].items(), key=lambda kv: -kv[1]["LV"]["mean"]):
            print(f"{n:<12} {s['LV']['mean']:6.3f} {s['MYO']['mean']:6.3f} {s['RV']['mean']:6.3f}")
    res = rows["identity"]
    groups = {"overall": res}
    for key in ("vendor", "frame", "group"):
        for v in sorted({r[key] for r in res}):
            groups[f"{key}={v}"] = [r for r in res if r[key] == v]
    report["dice"] = {g: summarise(r) | {"subject_frames": len(r)} for g, r in groups.items()}
    report["per_subject"] = res
    n_sub = len({r["id"] for r in res})
    print(f"Dice on mid-ventricular slices, {n_sub} subjects × (ED, ES), {elapsed:.0f} s")
    print(f"{'group':<16} {'n':>4} {'LV':>6} {'MYO':>6} {'RV':>6}")
    for g, s in report["dice"].items():
        print(f"{g:<16} {s['subject_frames']:>4} {s['LV']['mean']:6.3f} {s['MYO']['mean']:6.3f} {s['RV']['mean']:6.3f}")
    target = all(report["dice"]["overall"][s]["mean"] >= 0.85 for s in STRUCTURES)
    report["target_met"] = bool(target)
    print(f"target Dice ≥ 0.85 per structure: {'met' if target else 'NOT met'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
