#!/usr/bin/env bash
# Compiles every source of the ringkernel library on its own (syntax only). The library builds in unity
# batches (runtime/CMakeLists.txt), where a file can lean on the includes and templates of the files
# batched before it; adding or removing a file reshuffles the batches and breaks such a file. This finds
# it at once. Usage: tools/check-standalone.sh [jobs]  (from anywhere; it fails naming the file)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-$(nproc)}
cuda_include=$(dirname "$(command -v nvcc)")/../include
check() {
  "${CXX:-c++}" -std=c++20 -fsyntax-only -Wall -Wextra -DRK_ENABLE_NVTX=1 -DCPPHTTPLIB_OPENSSL_SUPPORT \
    -I host/include -I runtime/include -I host/src -I device/include -I "$2/cccl" -isystem "$2" "$1" ||
    { echo "check-standalone: $1 does not compile on its own (see above)"; return 1; }
}
export -f check
ls host/src/*.cpp runtime/cpu/*.cpp runtime/cuda/*.cpp |
  xargs -P "$jobs" -I{} bash -c 'check "$1" "$2"' _ {} "$cuda_include"
echo "check-standalone: every library source compiles on its own"
