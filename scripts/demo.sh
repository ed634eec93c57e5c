#!/usr/bin/env bash
# The README's first command: on a fresh clone, fetch the registry assets, build the release binary and run the demo
# pipeline (pipelines/demo.toml: the built-in phantom cohort with a UK-Biobank-like bias → balance plan → synthetic
# subjects from the shipped diffusion weights → federated DualLoRA classifiers with and without them → fairness
# audit). The answer is in runs/demo/audit/report.html. A second run skips every finished stage.
# Usage: scripts/demo.sh [cmr-debias run options, e.g. --force or --from federated-baseline]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-assets.sh
cargo build --release -p cmr-cli
bin="${CARGO_TARGET_DIR:-target}/release/cmr-debias"
"$bin" run pipelines/demo.toml "$@"
echo "report: runs/demo/audit/report.html"
