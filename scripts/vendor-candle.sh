#!/usr/bin/env bash
# Rebuilds vendor/candle-core: candle-core 0.11.1 from crates.io (checksum as in Cargo.lock before the patch) with
# vendor/candle-core-accumulate.patch applied, and with the package's examples, tests, benches and dev-dependencies
# left out so that its manifest names only what the library needs. See vendor/README.md for why.
# Usage: scripts/vendor-candle.sh   (needs curl, tar, patch, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.11.1
sha256=d11c8be87cfbaef9ebb62fb3f850d1fc8e00cc1d11d393fdbe55a4d5c2cdb325
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -sSfL "https://static.crates.io/crates/candle-core/candle-core-$version.crate" -o "$work/crate.tar.gz"
echo "$sha256  $work/crate.tar.gz" | sha256sum --check --quiet
tar xzf "$work/crate.tar.gz" -C "$work"
src="$work/candle-core-$version"
patch --quiet -d "$src" -p1 < vendor/candle-core-accumulate.patch
python3 - "$src/Cargo.toml" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
# Drop [[example]], [[test]], [[bench]] targets and [dev-dependencies.*] tables: their files are not vendored.
tables = re.split(r"(?m)^(?=\[)", text)
keep = [t for t in tables if not re.match(r"\[\[(example|test|bench)\]\]|\[dev-dependencies", t)]
open(path, "w").write("".join(keep))
PY
rm -rf vendor/candle-core
mkdir -p vendor/candle-core
cp -r "$src/src" "$src/Cargo.toml" "$src/LICENSE" "$src/README.md" vendor/candle-core/
echo "vendor/candle-core: candle-core $version with vendor/candle-core-accumulate.patch" >&2
