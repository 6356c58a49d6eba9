#!/usr/bin/env bash
# Proving benchmark of BENCHMARKS.md: for each bench model, EZKL (../shared/bench/ezkl_reference.py, pip ezkl)
# and vouch-zk (crates/vouch-zk/examples/zk_bench.rs: the public-activation proof, then the private-input proof), one
# after the other in the same run on the same machine.
# Peak memory is each process's peak RSS (/usr/bin/time -v for EZKL, VmHWM for vouch). Prints JSON lines.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# MODELS_DIR: where the models are (default the shared bench models; scripts/bench/make_larger_models.py makes two
# larger ones), MODELS: which of them.
models="${MODELS_DIR:-$root/../shared/bench/models}"
python3 -c 'import ezkl' 2>/dev/null || python3 -m pip install --quiet ezkl==23.0.5
cargo build --release -p vouch-zk --example zk_bench >&2
work=$(mktemp -d)
cp "$models"/*.onnx "$work"/
cd "$work"
for m in ${MODELS:-mlp_small mlp_mnist lenet_small}; do
  ezkl_out=$( { /usr/bin/time -v python3 "$root/../shared/bench/ezkl_reference.py" "$m" 2>"$work/$m.time" | tail -1; } )
  rss_kb=$(grep "Maximum resident" "$work/$m.time" | awk '{print $6}')
  echo "{\"ezkl\": \"$(echo "$ezkl_out" | sed 's/"/\\"/g')\", \"ezkl_peak_rss_mib\": $((rss_kb / 1024))}"
  "${CARGO_TARGET_DIR:-$root/target}/release/examples/zk_bench" "$models" "$m"
  "${CARGO_TARGET_DIR:-$root/target}/release/examples/zk_bench" "$models" "$m" private
done
rm -rf "$work"
