#!/usr/bin/env bash
# Installs the system packages the build needs besides Rust: cmake and libclang (llama-cpp-sys-2 builds the vendored
# llama.cpp with cmake and generates its bindings with bindgen). Debian/Ubuntu through apt-get; does nothing when
# both are already there. Run by scripts/node.sh, scripts/test.sh and .ci/run.
set -euo pipefail
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
# libclang itself (bindgen loads libclang.so or libclang-N.so): libclang-cpp, which cmake's LLVM packages bring, is not it.
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* /usr/lib/x86_64-linux-gnu/libclang.so* \
  /usr/lib/x86_64-linux-gnu/libclang-[0-9]*.so* >/dev/null 2>&1; then
  missing+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || missing+=(g++)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing ${missing[*]} (apt-get)" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
