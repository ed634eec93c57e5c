#!/usr/bin/env bash
# One base training step, one ControlNet training step and one guided DDIM step of the demo configuration, in
# cmr-diffusion (cargo bench -p cmr-diffusion --bench diffusion) and in diffusers (scripts/bench_diffusion_torch.py,
# venv from scripts/setup-torch.sh --with-diffusers) on the same shapes and thread count, in one run, with a ratio
# table (issue 6, "Targets": no slower than PyTorch on CPU).
# Usage: scripts/bench-diffusion.sh [THREADS=nproc]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
python="$(scripts/setup-torch.sh --with-diffusers | tail -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo bench --quiet -p cmr-diffusion --bench diffusion --no-run
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); threads: $threads" >&2
RAYON_NUM_THREADS="$threads" cargo bench --quiet -p cmr-diffusion --bench diffusion -- --json > "$work/ours.json"
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647 OMP_NUM_THREADS="$threads" \
  "$python" scripts/bench_diffusion_torch.py < "$work/ours.json" > "$work/torch.json"
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$work/ours.json" "$work/torch.json" <<'PY'
import json, sys
ours, torch = (json.load(open(p)) for p in sys.argv[1:3])
assert ours["threads"] == torch["threads"], (ours["threads"], torch["threads"])
peer = {r["name"]: r["ms"] for r in torch["results"]}
print(f"demo UNet + ControlNet, batch {ours['batch']}, {ours['size']}x{ours['size']}, f32, {ours['threads']} threads, "
      f"torch {torch['torch']}, diffusers {torch['diffusers']}; median ms; ratio = ours / diffusers")
print(f"{'operation':<36}{'diffusers':>11}{'cmr':>11}{'ratio':>8}")
for r in ours["results"]:
    t = peer[r["name"]]
    print(f"{r['name']:<36}{t:>11.1f}{r['ms']:>11.1f}{r['ms'] / t:>8.2f}")
PY
