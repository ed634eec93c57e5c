#!/usr/bin/env bash
# Times the UNet's training operations in candle (stock kernels and cmr-nn's custom ops) beside PyTorch on the same
# shapes and the same thread count, in one run, and prints a ratio table (issue 3, item 2). The case list comes from
# crates/cmr-nn/benches/nn.rs; scripts/bench_nn_torch.py runs it in PyTorch (venv from scripts/setup-torch.sh).
# Usage: scripts/bench-nn.sh [THREADS=nproc]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
python="$(scripts/setup-torch.sh | tail -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo bench --quiet -p cmr-nn --bench nn --no-run
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); threads: $threads" >&2
RAYON_NUM_THREADS="$threads" cargo bench --quiet -p cmr-nn --bench nn -- --json > "$work/candle.json"
# The bench keeps freed memory in the process (cmr_nn::ops::retain_freed_memory); PyTorch gets the same glibc setting.
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647 OMP_NUM_THREADS="$threads" \
  "$python" scripts/bench_nn_torch.py "$threads" < "$work/candle.json" > "$work/torch.json"
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$work/candle.json" "$work/torch.json" <<'PY'
import json, sys
candle, torch = (json.load(open(p)) for p in sys.argv[1:3])
assert candle["threads"] == torch["threads"], (candle["threads"], torch["threads"])
peer = {(r["name"], r["pass"]): r["torch_ms"] for r in torch["results"]}
print(f"f32, {candle['threads']} threads, torch {torch['torch']}; times are medians in ms; ratio = time / PyTorch's")
head = f"{'case':<34}{'pass':<9}{'torch':>9}{'candle':>10}{'cmr-nn':>10}{'candle/torch':>14}{'cmr-nn/torch':>14}"
print(head)
print("-" * len(head))
for r in candle["results"]:
    t = peer[(r["name"], r["pass"])]
    print(f"{r['name']:<34}{r['pass']:<9}{t:>9.2f}{r['candle_ms']:>10.2f}{r['cmr_ms']:>10.2f}"
          f"{r['candle_ms'] / t:>13.2f}x{r['cmr_ms'] / t:>13.2f}x")
PY
