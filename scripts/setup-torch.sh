#!/usr/bin/env bash
# Creates (idempotently) the CPU PyTorch venv that peer benchmarks and golden generators run in: .venv-torch/ at the
# repository root, from PyPI only. PyPI's Linux torch wheel links the CUDA runtime, cuBLAS, cuDNN, … directly
# (`readelf -d libtorch_cuda.so`), so `--no-deps` leaves an `import torch` that fails; the nvidia-* wheels (~3 GB)
# come along and are never touched on CPU.
# Usage: scripts/setup-torch.sh [--with-text] [--with-diffusers]   (prints the venv's python path on the last line)
#   --with-text       also installs sentence-transformers, for scripts/minilm-goldens.py
#   --with-diffusers  also installs diffusers, for scripts/torch-goldens.py
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CMR_TORCH_VENV:-$root/.venv-torch}"
requirements=(
  "torch==2.15.0"
)
for option in "$@"; do
  case "$option" in
    --with-text)
      requirements+=(
        "sentence-transformers==6.2.0"
        "transformers==5.23.0"
        "tokenizers==0.23.3"
        "huggingface-hub==2.4.0"
        "scikit-learn==1.9.1"
        "scipy==1.15.3"
      )
      ;;
    --with-diffusers) requirements+=("diffusers==0.42.1") ;;
    *) echo "setup-torch.sh: unknown option $option (expected --with-text or --with-diffusers)" >&2; exit 2 ;;
  esac
done
stamp="$venv/.requirements"
# Up to date when every wanted requirement is recorded (a --with-text venv also serves plain calls).
installed() {
  [[ -x "$venv/bin/python" && -f "$stamp" ]] || return 1
  local r
  for r in "${requirements[@]}"; do grep -qxF "$r" "$stamp" || return 1; done
}
if installed; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2
"$venv/bin/python" -c 'import torch; assert (torch.ones(2, 2) @ torch.ones(2, 2)).sum() == 8' >&2
printf '%s\n' "${requirements[@]}" > "$stamp"
echo "$venv/bin/python"
