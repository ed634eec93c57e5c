#!/usr/bin/env bash
# `balance report` and `balance plan` timings (cargo bench -p cmr-balance --bench balance) beside pandas doing the
# same computation on the same cohort files (scripts/bench_balance_pandas.py), in one run, with a ratio table.
# Usage: scripts/bench-balance.sh [--quick]      (--quick: 1k and 5k rows instead of 10k, 100k, 1M)
set -euo pipefail
cd "$(dirname "$0")/.."
python="$(scripts/setup-python.sh | tail -n 1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo bench -p cmr-balance --bench balance -- --json --dir "$work" "$@" > "$work/ours.json"
"$python" - "$python" "$work" <<'PY'
import json, subprocess, sys
python, work = sys.argv[1], sys.argv[2]
ours = json.load(open(f"{work}/ours.json"))["cases"]
print(f"{'rows':>9} | {'report ms':>9} {'pandas':>9} {'ratio':>6} | {'plan ms':>9} {'pandas':>9} {'ratio':>6} | {'planned':>8} {'pandas':>8}")
for case in ours:
    n = case["rows"]
    peer = json.loads(subprocess.run(
        [python, "scripts/bench_balance_pandas.py", case["cohort"], f"{work}/pandas-plan-{n}"],
        check=True, capture_output=True, text=True).stdout)
    r, p = case["report_s"] * 1e3, case["plan_s"] * 1e3
    pr, pp = peer["report_s"] * 1e3, peer["plan_s"] * 1e3
    print(f"{n:>9} | {r:>9.1f} {pr:>9.1f} {pr / r:>5.1f}x | {p:>9.1f} {pp:>9.1f} {pp / p:>5.1f}x | {case['planned']:>8} {peer['planned']:>8}")
print("ratio = pandas time / cmr-balance time (higher is faster); target ≥ 5x and < 1000 ms at 1M rows")
PY
