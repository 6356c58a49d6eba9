#!/usr/bin/env bash
# The main job (README): installs the system packages the build needs (cmake, libclang), builds the release binary
# and runs one local node that is also a single-validator chain, with embedded storage under ~/.vouch (or
# $VOUCH_HOME) and HTTP on 127.0.0.1:7070. Extra arguments go to `vouch node run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-system.sh
exec cargo run --release -p vouch-cli -- node run --dev "$@"
