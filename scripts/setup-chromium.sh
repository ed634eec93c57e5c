#!/usr/bin/env bash
# Installs (idempotently) Debian's headless-capable `chromium`, used by the audit report render test
# (crates/cmr-audit, issue 5: "the HTML report renders with its charts"). Needs apt-get and root (or sudo).
# Usage: scripts/setup-chromium.sh        (prints the chromium binary path on the last line)
set -euo pipefail
find_chromium() {
  command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true
}
bin="$(find_chromium)"
if [[ -z "$bin" ]]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup-chromium.sh: chromium is not installed and apt-get is not available" >&2
    exit 1
  fi
  sudo=""
  if [[ "$(id -u)" != 0 ]]; then
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
  bin="$(find_chromium)"
  if [[ -z "$bin" ]]; then
    echo "setup-chromium.sh: apt-get installed chromium but no chromium binary is on PATH" >&2
    exit 1
  fi
fi
echo "$bin"
