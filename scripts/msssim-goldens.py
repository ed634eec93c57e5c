#!/usr/bin/env python3
"""Prints the SSIM / MS-SSIM reference values that crates/cmr-diffusion/tests/suite/eval_msssim.rs pastes in as
`GOLDENS` (issue 6, item 7). scikit-image is not in scripts/setup-python.sh's venv, so the values are committed and
this script is needed only to regenerate them:

    python3 -m venv /tmp/skvenv
    /tmp/skvenv/bin/pip install numpy==2.2.6 scipy==1.15.3 scikit-image==0.25.2
    /tmp/skvenv/bin/python scripts/msssim-goldens.py

Single-scale SSIM is skimage's own `structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)`. MS-SSIM is composed here in numpy as the Rust module documents it
(Wang et al. 2003, eq. 7): the mean contrast-structure term of every scale but the last, the full SSIM on the last,
scales used while both sides are >= 11, 2x2 average pooling (odd last row/column dropped), the weights of the used
scales renormalised, negative terms clamped to 0. The per-scale statistics are computed by hand with
scipy.ndimage.gaussian_filter and checked against skimage's SSIM at every scale.

The test images are closed-form (integer "noise"), computed in float64 and rounded to float32, so the Rust test
rebuilds them bit for bit.
"""

import numpy as np
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
WINDOW, SIGMA, C1, C2 = 11, 1.5, 0.01**2, 0.03**2


def noise(h, w, salt):
    i = np.arange(h * w, dtype=np.int64).reshape(h, w)
    return ((i * 7919 + salt * 104729) % 1000) / 1000.0 - 0.5


def base(h, w, shift=0):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x = x + shift
    disc = ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (min(h, w) / 4) ** 2).astype(np.float64)
    return 0.5 + 0.3 * np.sin(2 * np.pi * 1.5 * x / w + 0.3) * np.cos(2 * np.pi * 2.0 * y / h) + 0.15 * disc


def pair(case, h, w):
    a = base(h, w)
    b = {
        "noisy": lambda: np.clip(a + 0.2 * noise(h, w, 1), 0, 1),
        "shifted": lambda: base(h, w, shift=2),
        "unrelated": lambda: 0.5 + 0.4 * noise(h, w, 2),
        "inverted": lambda: 1.0 - a,
    }[case]()
    f32 = lambda x: x.astype(np.float32).astype(np.float64)
    return f32(a), f32(b)


def terms(a, b):
    f = lambda x: gaussian_filter(x, SIGMA, truncate=3.5, mode="reflect")
    ma, mb = f(a), f(b)
    va, vb, cov = f(a * a) - ma * ma, f(b * b) - mb * mb, f(a * b) - ma * mb
    cs = (2 * cov + C2) / (va + vb + C2)
    ssim = (2 * ma * mb + C1) / (ma * ma + mb * mb + C1) * cs
    pad = WINDOW // 2
    crop = lambda x: x[pad:-pad, pad:-pad].mean()
    return crop(ssim), crop(cs)


def skimage_ssim(a, b):
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=SIGMA, use_sample_covariance=False, data_range=1.0
    )


def pool(x):
    h, w = x.shape[0] // 2, x.shape[1] // 2
    return x[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))


def ms_ssim(a, b):
    scales = sum(1 for j in range(5) if min(a.shape[0] >> j, a.shape[1] >> j) >= WINDOW)
    weights = WEIGHTS[:scales] / WEIGHTS[:scales].sum()
    value = 1.0
    for j in range(scales):
        ssim, cs = terms(a, b)
        assert abs(ssim - skimage_ssim(a, b)) < 1e-12, "hand-made SSIM differs from skimage"
        value *= max(ssim if j == scales - 1 else cs, 0.0) ** weights[j]
        a, b = pool(a), pool(b)
    return value


for h, w in [(64, 64), (45, 37)]:
    for case in ["noisy", "shifted", "unrelated", "inverted"]:
        a, b = pair(case, h, w)
        print(f'    ("{case}", {h}, {w}, {skimage_ssim(a, b):.12f}, {ms_ssim(a, b):.12f}),')
