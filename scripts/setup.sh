#!/usr/bin/env bash
# Installs owf's build dependencies (Debian 12 packages only) and builds owf into build/.
# Usage: scripts/setup.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/apt-install.sh build-essential cmake libboost-math-dev nlohmann-json3-dev libcli11-dev \
  libgtest-dev libgmock-dev libbenchmark-dev

# OWF_CMAKE_ARGS adds configure options, e.g. "-DOWF_CUDA=ON" (what .ci/run does when nvcc is there).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${OWF_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"
