#!/usr/bin/env bash
# Trains the shipped demo models in models/demo/ (see its README) at the CPU demo scale (64×64 pixels, 2 mm), all on
# one 300-subject phantom cohort in M&Ms-1 layout (balanced scenario: four vendors, four conditions) generated with
# its own seed, so that no demo or test cohort shares a subject with it. Each reproduces its weights byte for byte on
# the code that made them, the same thread count (the convolutions' per-thread gradient sums follow it) and the same
# kind of CPU (gemm picks its kernels and blocking by CPU): 2 cores of an AMD EPYC, with AVX2 for the fm and the base
# UNet, a Zen 4 with AVX-512 for the ControlNet.
#   fm         models/demo/fm-vit-tiny/: ViT-Tiny widths over [2, 4, 64, 64] (scripts/demo-fm-config.json: 2×8×8
#              patches, 128 tokens), pretrained as a masked autoencoder (issue 7). About 10 minutes on 2 cores.
#   diffusion  models/demo/controlnet/: the text-conditional base UNet (demo widths 32/64/128; into WORK_DIR, reused if
#              WORK_DIR/diffusion-base is there), then the mask ControlNet on it; the folder holds a copy of the base,
#              so it is the only one shipped (issue 6). About 70 minutes on 2 cores of an AMD EPYC Zen 4 (data 2, base
#              1200 steps 18, ControlNet 3200 steps about 48). The shipped ControlNet was trained on the shipped base:
#              `cp -r models/demo/controlnet WORK_DIR/diffusion-base` first (models/demo/README.md).
# Usage: scripts/train-demo-models.sh fm|diffusion|all [WORK_DIR]   (WORK_DIR keeps the cohorts; default: temporary)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:?fm, diffusion or all}"
cargo build --release -p cmr-cli
bin="${CARGO_TARGET_DIR:-target}/release/cmr-debias"
work="${2:-$(mktemp -d)}"
[[ -d "$work/phantom" ]] || "$bin" phantom --out "$work/phantom" --layout mnms1 --subjects 300 --scenario balanced --seed 1000
ingest() { # OUT SLICES
  "$bin" ingest --dataset mnms1 --root "$work/phantom" --out "$1" --task disease --seed 1000 --size 64 --slices "$2" \
    --spacing 2.0 --force
}
if [[ $which == fm || $which == all ]]; then
  ingest "$work/cohort-fm" 4
  "$bin" fm pretrain --cohort "$work/cohort-fm" --out models/demo/fm-vit-tiny --config scripts/demo-fm-config.json \
    --epochs 40 --seed 0 --force
fi
if [[ $which == diffusion || $which == all ]]; then
  ingest "$work/cohort64" 8   # 8 slices per subject: more 2D training slices
  [[ -f "$work/diffusion-base/unet.safetensors" ]] || "$bin" diffusion train --cohort "$work/cohort64" \
    --out "$work/diffusion-base" --stage base --steps 1200 --batch 8 --seed 0 --force
  "$bin" diffusion train --cohort "$work/cohort64" --out models/demo/controlnet --stage controlnet \
    --base "$work/diffusion-base" --steps 3200 --batch 8 --seed 0 --force
fi
