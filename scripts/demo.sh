#!/usr/bin/env bash
# The README's first command: on a fresh clone, fetch the registry assets, build the release binary and run the demo.
# Until the pipeline runner lands (`cmr-debias run`, issue 8), the demo is the cohort stage on the built-in phantom:
# phantom (M&Ms-1 layout, ukbb-like bias scenario) → ingest → cohort summary, into runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-assets.sh
cargo build --release -p cmr-cli
bin="${CARGO_TARGET_DIR:-target}/release/cmr-debias"
out=runs/demo
mkdir -p "$out"
"$bin" phantom --out "$out/phantom" --layout mnms1 --subjects 200 --scenario ukbb-like --seed 0 --force
"$bin" ingest --dataset mnms1 --root "$out/phantom" --out "$out/cohort" --task hcm --seed 0 --force
"$bin" cohort summary "$out/cohort"
