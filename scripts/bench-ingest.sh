#!/usr/bin/env bash
# Ingest throughput (subjects/s) of `cmr-debias ingest` beside nibabel + numpy/scipy doing the same reads and
# preprocessing (scripts/bench_ingest_peer.py), on one phantom cohort in M&Ms-1 layout, in one run.
# Usage: scripts/bench-ingest.sh [SUBJECTS=100]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100}"
python="$(scripts/setup-python.sh | tail -n 1)"
cargo build --release -p cmr-cli
bin="${CARGO_TARGET_DIR:-target}/release/cmr-debias"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin" --quiet phantom --out "$work/phantom" --layout mnms1 --subjects "$n" --scenario balanced --seed 1
# Warm the page cache so both readers start equal.
cat "$work"/phantom/*/*/*/*.nii.gz > /dev/null
t0=$(date +%s.%N)
"$bin" --quiet ingest --dataset mnms1 --root "$work/phantom" --out "$work/cohort" --task disease >/dev/null
t1=$(date +%s.%N)
peer="$("$python" scripts/bench_ingest_peer.py "$work/phantom" "$work/peer")"
python3 - "$n" "$t0" "$t1" "$peer" <<'PY'
import json, sys
n, t0, t1, peer = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
ours = t1 - t0
print(f"{'reader':<34}{'subjects':>9}{'seconds':>10}{'subjects/s':>12}")
print(f"{'cmr-debias ingest':<34}{n:>9}{ours:>10.2f}{n / ours:>12.1f}")
print(f"{'nibabel + numpy/scipy (same work)':<34}{peer['subjects']:>9}{peer['seconds']:>10.2f}{peer['subjects'] / peer['seconds']:>12.1f}")
print(f"ratio (cmr-debias / nibabel, throughput): {(n / ours) / (peer['subjects'] / peer['seconds']):.2f}x")
PY
