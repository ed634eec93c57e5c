#!/usr/bin/env bash
# Trains the shipped demo foundation model models/demo/fm-vit-tiny/ (issue 7, item 1): a ViT-Tiny masked
# autoencoder pretrained on the unlabelled images of a 300-subject phantom cohort in M&Ms-1 layout (balanced
# scenario: four vendors, four conditions), generated with its own seed so that no demo or test cohort's subject
# is among them. About 8 minutes on 2 CPU cores.
# Usage: scripts/train-demo-fm.sh [WORK_DIR]     (WORK_DIR keeps the phantom cohort; default: a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p cmr-cli
bin="${CARGO_TARGET_DIR:-target}/release/cmr-debias"
work="${1:-$(mktemp -d)}"
"$bin" phantom --out "$work/phantom" --layout mnms1 --subjects 300 --scenario balanced --seed 1000 --force
"$bin" ingest --dataset mnms1 --root "$work/phantom" --out "$work/cohort" --task disease --seed 1000 --force
"$bin" fm pretrain --cohort "$work/cohort" --out models/demo/fm-vit-tiny --config tiny --epochs 40 --seed 0 --force
