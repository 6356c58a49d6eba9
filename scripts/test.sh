#!/usr/bin/env bash
# The test command (README, .ci/run): installs the pinned Python reference tools and test assets, then runs
# every test of the workspace, then builds the Python package (python/) and runs its tests against real nodes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-system.sh
bash scripts/setup-test-env.sh
# Property tests draw from a fixed seed so every run checks the same cases (override to explore).
export PROPTEST_RNG_SEED=${PROPTEST_RNG_SEED:-20261125}
py=${PYTHON:-python3}
# The Python package's lint and type checks first: seconds, before the long stages.
(cd python && $py -m ruff check . && $py -m ruff format --check . && $py -m mypy)
rust=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast || rust=$?
else
  cargo test --workspace --no-fail-fast || rust=$?
fi
# The wheel, built by maturin in the dev profile so that it reuses the artifacts the Rust tests just built (a user's
# `pip install ./python` builds release). Its tests drive the `vouch` binary those tests built.
target=${CARGO_TARGET_DIR:-$root/target}
MATURIN_PEP517_ARGS="--profile dev" $py -m pip install --quiet --disable-pip-version-check --force-reinstall \
  --no-build-isolation \
  --no-deps ./python
$py -m mypy.stubtest vouch._native --mypy-config-file python/pyproject.toml
VOUCH_BIN="$target/debug/vouch" $py -m pytest python/tests -q -p no:cacheprovider
exit $rust
