"""Peer of `cmr-debias ingest` for the ingest benchmark: the same reads and preprocessing with nibabel + numpy/scipy.

For every subject of an M&Ms-1-layout folder: read the 4D image and mask, take the ED and ES frames, map labels to
the canonical codes, resample in-plane to the target spacing (bilinear image, nearest mask), crop/pad around the ED LV
centroid, pick S slices over the LV extent, clip to the 0.5-99.5 percentiles, scale to [0, 1], save a .npy pair.
Prints one JSON line: {"subjects": N, "seconds": T}.
Usage: python bench_ingest_peer.py ROOT OUT [--size 96] [--slices 8] [--spacing 1.5]
"""
import argparse, csv, json, pathlib, time

import nibabel as nib
import numpy as np
from scipy import ndimage

MNMS_TO_CANONICAL = np.array([0, 1, 2, 3], dtype=np.uint8)  # M&Ms codes already are 1 LV, 2 MYO, 3 RV


def resample(frame, spacing_xy, target, order):
    zoom = (spacing_xy[0] / target, spacing_xy[1] / target, 1.0)
    return ndimage.zoom(frame, zoom, order=order, mode="nearest", grid_mode=True)


def crop(volume, center, size):
    out = np.zeros((size, size) + volume.shape[2:], dtype=volume.dtype)
    x0, y0 = int(round(center[0])) - size // 2, int(round(center[1])) - size // 2
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + size, volume.shape[0]), min(y0 + size, volume.shape[1])
    out[xs - x0 : xe - x0, ys - y0 : ye - y0] = volume[xs:xe, ys:ye]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=pathlib.Path)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--spacing", type=float, default=1.5)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = list(csv.DictReader(open(a.root / "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv")))
    n = 0
    for row in rows:
        code = row["External code"]
        hits = list(a.root.glob(f"*/*/{code}/{code}_sa.nii.gz")) + list(a.root.glob(f"*/{code}/{code}_sa.nii.gz"))
        if not hits:
            continue
        img_nii = nib.load(hits[0])
        img = np.asarray(img_nii.dataobj, dtype=np.float32)
        gt = np.asarray(nib.load(str(hits[0]).replace("_sa.nii.gz", "_sa_gt.nii.gz")).dataobj).astype(np.uint8)
        sx, sy = img_nii.header.get_zooms()[:2]
        frames = [int(row["ED"]), int(row["ES"])]
        images = [resample(img[..., f], (sx, sy), a.spacing, 1) for f in frames]
        masks = [MNMS_TO_CANONICAL[resample(gt[..., f], (sx, sy), a.spacing, 0)] for f in frames]
        lv = np.argwhere(masks[0] == 1)
        center = lv[:, :2].mean(axis=0)
        lv_slices = np.unique(lv[:, 2])
        picks = np.round(np.linspace(lv_slices.min(), lv_slices.max(), a.slices)).astype(int)
        image = np.stack([crop(i, center, a.size)[..., picks] for i in images])
        mask = np.stack([crop(m, center, a.size)[..., picks] for m in masks])
        lo, hi = np.percentile(image, [0.5, 99.5])
        image = (np.clip(image, lo, hi) - lo) / max(hi - lo, 1e-6)
        np.save(a.out / f"{code}_image.npy", image.transpose(0, 3, 1, 2).astype(np.float32))
        np.save(a.out / f"{code}_mask.npy", mask.transpose(0, 3, 1, 2))
        n += 1
    print(json.dumps({"subjects": n, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
