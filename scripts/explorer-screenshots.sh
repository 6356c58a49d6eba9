#!/usr/bin/env bash
# Regenerates docs/explorer/*.png: every explorer view at desktop (1280 px) and phone (390 px) width, taken by the
# explorer's browser test on a 4-node devnet with traffic. Needs what scripts/test.sh installs and builds (the
# Python package and target/debug/vouch).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
VOUCH_BIN="$target/debug/vouch" VOUCH_SCREENSHOTS="$root/docs/explorer" \
  ${PYTHON:-python3} -m pytest python/tests/test_explorer.py -q -p no:cacheprovider -k screenshots
ls -1 "$root/docs/explorer"
