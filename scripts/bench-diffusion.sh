#!/usr/bin/env bash
# One base training step, one ControlNet training step and one guided DDIM step of the demo configuration, in
# cmr-diffusion (cargo bench -p cmr-diffusion --bench diffusion) and in diffusers (scripts/bench_diffusion_torch.py,
# venv from scripts/setup-torch.sh --with-diffusers) on the same shapes and thread count, with a ratio table (issue 6,
# "Targets": no slower than PyTorch on CPU). The two run in turn ROUNDS times (default 3), so that a machine whose
# speed drifts over minutes (a shared VM) slows both alike; the table gives each round's ratio and their median.
# Usage: scripts/bench-diffusion.sh [THREADS=nproc] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-$(nproc)}"
rounds="${2:-3}"
python="$(scripts/setup-torch.sh --with-diffusers | tail -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo bench --quiet -p cmr-diffusion --bench diffusion --no-run
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); threads: $threads; rounds: $rounds" >&2
for round in $(seq "$rounds"); do
  RAYON_NUM_THREADS="$threads" cargo bench --quiet -p cmr-diffusion --bench diffusion -- --json > "$work/ours.$round.json"
  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647 OMP_NUM_THREADS="$threads" \
    "$python" scripts/bench_diffusion_torch.py < "$work/ours.$round.json" > "$work/torch.$round.json"
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
runs = [tuple(json.load(open(f"{work}/{who}.{r}.json")) for who in ("ours", "torch")) for r in range(1, rounds + 1)]
ours, torch = runs[0]
assert all(o["threads"] == t["threads"] for o, t in runs), "thread counts differ"
print(f"demo UNet + ControlNet, batch {ours['batch']}, {ours['size']}x{ours['size']}, f32, {ours['threads']} threads, "
      f"torch {torch['torch']}, diffusers {torch['diffusers']}; median ms of each run; ratio = ours / diffusers")
print(f"{'operation':<36}{'diffusers':>11}{'cmr':>11}  {'ratio per round':<24}{'median':>7}")
for i, r in enumerate(ours["results"]):
    name = r["name"]
    pairs = [(t["results"][i]["ms"], o["results"][i]["ms"]) for o, t in runs]
    assert all(t["results"][i]["name"] == name for _, t in runs), name
    ratios = [c / d for d, c in pairs]
    d, c = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    print(f"{name:<36}{d:>11.1f}{c:>11.1f}  {' '.join(f'{x:.2f}' for x in ratios):<24}{statistics.median(ratios):>7.2f}")
PY
