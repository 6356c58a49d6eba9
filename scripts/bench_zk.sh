#!/usr/bin/env bash
# Proving benchmark of BENCHMARKS.md: for each bench model, EZKL (../shared/bench/ezkl_reference.py, pip ezkl)
# and vouch-zk (crates/vouch-zk/examples/zk_bench.rs: the public-activation proof, the private-input proof, and the
# private-input proof with hidden weights), one after the other in the same run on the same machine. With
# EZKL_HASHED=1, also EZKL with hashed parameters (scripts/bench/ezkl_hashed_params.py), the counterpart of hidden
# weights (slow: mlp_mnist needs 2^23 rows).
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
  "${CARGO_TARGET_DIR:-$root/target}/release/examples/zk_bench" "$models" "$m" private-weights
  if [ -n "${EZKL_HASHED:-}" ]; then
    ezkl_out=$( { /usr/bin/time -v python3 "$root/scripts/bench/ezkl_hashed_params.py" "$m" 2>"$work/$m.htime" | tail -1; } )
    rss_kb=$(grep "Maximum resident" "$work/$m.htime" | awk '{print $6}')
    echo "{\"ezkl_hashed\": \"$(echo "$ezkl_out" | sed 's/"/\\"/g')\", \"ezkl_peak_rss_mib\": $((rss_kb / 1024))}"
  fi
done
rm -rf "$work"
