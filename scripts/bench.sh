#!/usr/bin/env bash
# Runs the benchmarks of BENCHMARKS.md: inference (vouch in-process and over HTTP, next to onnxruntime in the
# same run) and hub push/pull of a 1 GiB model. Needs python3 with onnxruntime and numpy
# (scripts/setup-test-env.sh installs them). Prints a Markdown report.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
big=${BIG_MODEL:-/tmp/vouch-bench-1g.onnx}
[ -s "$big" ] || python3 "$root/scripts/make_big_model.py" "$big" --mib 1024 >&2
cd "$root"
cargo bench -p vouch-node --bench node -- "$root/../shared/bench/models" "$big"
