#!/usr/bin/env bash
# Phantom realism check (issue 2, section 4): writes a phantom cohort with the cmr-phantom example (no CLI needed)
# and scores its mid-ventricular slices with the ACDC-trained segmenter of PyPI myopari==0.1.6.
# Target: Dice ≥ 0.85 for LV, MYO and RV. Results: runs/phantom-realism/dice-LAYOUT.json (+ a table on stdout).
# Usage: scripts/phantom-realism.sh [SUBJECTS=40] [SEED=0] [LAYOUT=acdc|mnms1] [SCENARIO=balanced]
# Takes ~1 s per scored slice on 2 CPU cores (6 slices per subject): about 5 minutes for 40 subjects.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
subjects="${1:-40}"; seed="${2:-0}"; layout="${3:-acdc}"; scenario="${4:-balanced}"
py="$("$root/scripts/setup-python.sh" | tail -n 1)"
bash "$root/scripts/fetch-assets.sh" myopari >&2
out="$root/runs/phantom-realism"
mkdir -p "$out"
cohort="$out/cohort-$layout-$scenario-$seed"
(cd "$root" && cargo run --quiet -p cmr-phantom --example make-phantom -- "$cohort" "$subjects" "$seed" "$layout" "$scenario" --force)
"$py" "$root/scripts/phantom-realism.py" "$cohort" --max-subjects "$subjects" --json "$out/dice-$layout-$scenario-$seed.json"
