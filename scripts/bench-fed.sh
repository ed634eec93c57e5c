#!/usr/bin/env bash
# Issue 7's benchmark: `fed compare` of the seven strategies × 3 seeds on a vendor-shift phantom (four vendors = four
# clients, different sizes, prevalence and appearance; hcm task) with the shipped demo foundation model and the
# heart shape prior. Prints the comparison table (balanced accuracy, sensitivity, specificity, AUC as mean ± sd over
# seeds; MB uploaded per round and in total; wall time per run) and the paired bootstrap against dual-lora, then the
# total wall time (target: under 30 minutes on 2 cores).
# Usage: scripts/bench-fed.sh [WORK_DIR]     (WORK_DIR keeps the cohort and runs; finished runs are reused)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p cmr-cli
bin="$(realpath "${CARGO_TARGET_DIR:-target}")/release/cmr-debias"
work="${1:-$(mktemp -d)}"
if [ ! -e "$work/cohort/cohort.parquet" ]; then
  "$bin" --quiet phantom --out "$work/phantom" --layout mnms1 --subjects 300 --scenario vendor-shift --seed 7 --force
  "$bin" --quiet ingest --dataset mnms1 --root "$work/phantom" --out "$work/cohort" --task hcm --seed 7 --force
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
start=$(date +%s)
CMR_LOG=warn "$bin" fed compare --cohort "$work/cohort" --fm models/demo/fm-vit-tiny --shape-prior heart --seeds 3 \
  --out "$work/compare"
echo "fed compare: $(( $(date +%s) - start )) s wall (runs reused from an earlier call are not re-timed); load after: $(cut -d' ' -f1-3 /proc/loadavg)"
