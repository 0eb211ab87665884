#!/usr/bin/env bash
# KL evaluation of a quantised 8B-parameter model on the GPU, end to end, on a machine with one
# GPU (H100 80 GB), 16 cores, 128 GB of memory and ~25 GB of free disk under WORK_DIR: generates a
# Llama-3-8B-shaped bf16 model (32 layers, 8.03 G parameters, 16 GB), quantises it on the CPU to
# owf's packed container, and runs `owf eval --device cuda` on 8 sequences of 256 tokens sampled
# from the reference, printing the KL report, tokens/s and the wall time of every phase.
# Builds nothing: BUILD_DIR must hold owf and bench/owf_make_model built with -DOWF_CUDA=ON.
#   bench/cuda_eval.sh BUILD_DIR [WORK_DIR=/tmp/owf-cuda-eval] [SPEC='crd4(t)@64:absmax']
# KEEP=1 keeps WORK_DIR (the model, ~21 GB) for reruns; otherwise it is removed at the end.
# SIZE_GB / LAYERS (default 16.06 / 32) generate and expect a smaller model, for trying the script.
set -euo pipefail
build="${1:?usage: bench/cuda_eval.sh BUILD_DIR [WORK_DIR] [SPEC]}"
work="${2:-/tmp/owf-cuda-eval}"
spec="${3:-crd4(t)@64:absmax}"
owf="$build/owf"
make_model="$build/bench/owf_make_model"
for bin in "$owf" "$make_model"; do
  [ -x "$bin" ] || { echo "error: $bin not found (build with -DOWF_CUDA=ON)" >&2; exit 1; }
done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
timings=()
start_all=$(now)

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) memory," \
  "$(df -h --output=avail "$(dirname "$work")" | tail -1 | tr -d ' ') free under $(dirname "$work")"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; fi

mkdir -p "$work"
if [ ! -f "$work/model/config.json" ]; then
  echo "== generating a Llama-3-8B-shaped bf16 model in $work/model"
  t=$(now)
  "$make_model" "$work/model" "${SIZE_GB:-16.06}" | tee "$work/make_model.txt"
  timings+=("generate model: $(since "$t") s")
  grep -q " ${LAYERS:-32} layers" "$work/make_model.txt" || { echo "error: expected ${LAYERS:-32} layers" >&2; exit 1; }
fi

if [ ! -f "$work/q.owf.safetensors" ]; then
  echo "== owf quantise --format '$spec' (CPU, $(nproc) threads)"
  t=$(now)
  "$owf" quantise "$work/model" --format "$spec" -o "$work/q.owf.safetensors" | tail -4
  timings+=("quantise (CPU): $(since "$t") s")
  ls -l "$work/q.owf.safetensors"
fi

echo "== owf eval --device cuda --generate 8 --ctx 256"
t=$(now)
"$owf" eval --device cuda --reference "$work/model" --candidate "$work/q.owf.safetensors" --generate 8 --ctx 256
timings+=("owf eval --device cuda: $(since "$t") s")

echo "== wall time"
for line in "${timings[@]}"; do echo "  $line"; done
echo "  total: $(since "$start_all") s"
if [ "${KEEP:-0}" != 1 ]; then rm -rf "$work"; else echo "(kept $work)"; fi
