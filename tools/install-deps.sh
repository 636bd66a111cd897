#!/usr/bin/env bash
# Installs the Debian packages libringkernel needs beyond the base machine (CUDA toolkit, g++, CMake,
# GoogleTest), when they are missing; does nothing when all are there. The README's two commands and
# .ci/run start with it.
#   required: nlohmann-json (metrics and sample JSON), cpp-httplib (the metrics endpoint), pkg-config
#             (finds it), CLI11 (command lines of the samples, benchmarks and tools),
#             python3-prometheus-client (the metrics test parses the endpoint's output with it),
#             tmux (the rk-top test draws its live view in a detached session),
#             OpenMPI (rk::cluster and its tests under mpiexec; without it the cluster is not built),
#             OpenSSL's headers (libssl-dev: the audit chain's SHA-256 and HMAC)
#   --ci adds what only CI uses: the benchmark baselines (moodycamel, boost::lockfree, CAF) and clang
#             with libFuzzer for the fuzz targets
set -euo pipefail
packages=(nlohmann-json3-dev libcpp-httplib-dev pkg-config libcli11-dev python3-prometheus-client tmux
  libopenmpi-dev openmpi-bin libssl-dev)
if [[ "${1:-}" == "--ci" ]]; then
  packages+=(libconcurrentqueue-dev libboost-dev libcaf-dev clang-14 libclang-rt-14-dev)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
if ((${#missing[@]} != 0)); then
  echo "install-deps: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}"
fi
# The python3 first on PATH may not be Debian's (pyenv, a venv): the Debian package does not reach it.
if ! python3 -c 'import prometheus_client' 2>/dev/null; then
  echo "install-deps: python3 on PATH ($(command -v python3)) lacks prometheus_client; installing it with pip"
  python3 -m pip install --quiet prometheus-client
fi
