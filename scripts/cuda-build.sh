#!/usr/bin/env bash
# Builds owf with its CUDA kernels (-DOWF_CUDA=ON) into build-cuda/ and runs the CUDA tests,
# which skip without a GPU. Needs nvcc (CUDA 12+) at /usr/local/cuda/bin or on PATH.
# Usage: scripts/cuda-build.sh [TARGET...]   (default: the CUDA tests, benchmark and owf). For the
# GPU machine: a portable build (no -march=native) whose binaries can be carried there.
set -euo pipefail
cd "$(dirname "$0")/.."
nvcc=$(command -v nvcc || true)
[[ -z "$nvcc" && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
if [[ -z "$nvcc" ]]; then
  echo "cuda-build: nvcc not found (install the CUDA toolkit); the CUDA code was NOT compiled" >&2
  exit 1
fi
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(owf_cuda_layout_test owf_cuda_test owf_cuda_model_test owf_cuda_bench owf_call_floor owf_read_floor owf owf_make_model)
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DOWF_CUDA=ON -DOWF_NATIVE=OFF \
  -DCMAKE_CUDA_COMPILER="$nvcc" >/dev/null
cmake --build build-cuda -j"$(nproc)" --target "${targets[@]}"
ctest --test-dir build-cuda --output-on-failure -j"$(nproc)" -R 'Cuda|Gpu'
