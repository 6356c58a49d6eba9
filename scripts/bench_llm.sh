#!/usr/bin/env bash
# The LLM benchmark of BENCHMARKS.md: Vouch's decode loop and llama.cpp (xllamacpp) on the same GGUF files in one
# run, then streaming through a node's OpenAI API. Needs scripts/setup-test-env.sh (xllamacpp, openai, the models).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
cargo build --release -p vouch-cli >&2
# The release profile (not `cargo bench`'s, whose other settings would rebuild llama.cpp and the whole tree).
bench=$(cargo build --release -p vouch-llm --bench llm --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="llm" and m.get("executable"): print(m["executable"])')
python3 scripts/bench_llm.py --vouch-bench "$bench" --vouch "$CARGO_TARGET_DIR/release/vouch" "$@"
