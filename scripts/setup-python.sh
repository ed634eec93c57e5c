#!/usr/bin/env bash
# Creates (idempotently) the Python venv used by the oracle tests, fixture generators, realism checks and peer
# benchmarks: .venv/ at the repository root, packages pinned below, from PyPI only.
# Usage: scripts/setup-python.sh        (prints the venv's python path on the last line)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CMR_VENV:-$root/.venv}"
requirements=(
  "numpy==2.2.6"
  "nibabel==5.3.2"
  "onnxruntime==1.22.1"
  "scipy==1.15.3"
  "pandas==2.3.3"
  "pyarrow==21.0.0"
  "scikit-learn==1.7.2"
  "fairlearn==0.13.0"
)
stamp="$venv/.requirements"
wanted="$(printf '%s\n' "${requirements[@]}")"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2
printf '%s\n' "${requirements[@]}" > "$stamp"
echo "$venv/bin/python"
