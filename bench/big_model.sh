#!/usr/bin/env bash
# Quantises a generated Llama-shaped bf16 model larger than this machine's memory and reports
# time and peak resident memory (not run in CI; needs ~1.3x SIZE_GB of free disk). The generated
# model is kept in WORK_DIR for reruns.
#   bench/big_model.sh [SIZE_GB=30] [WORK_DIR=/tmp/owf-big] [SPEC]
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-30}"
work="${2:-/tmp/owf-big}"
spec="${3:-crd4(t,df=5)@64:absmax:bf16}"
cmake --build build -j"$(nproc)" --target owf owf_make_model >/dev/null
mkdir -p "$work"
if [ ! -f "$work/model/config.json" ]; then
  echo "== generating a ${size} GB bf16 model in $work/model"
  /usr/bin/time -f "generate: %e s, peak RSS %M KB" build/bench/owf_make_model "$work/model" "$size"
fi
echo "== machine memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "== owf quantise --format '$spec' (packed)"
/usr/bin/time -f "quantise: %e s wall, %U s user, peak RSS %M KB" \
  build/owf quantise "$work/model" --format "$spec" -o "$work/model.owf.safetensors" --report "$work/report.json" \
  | tail -6
ls -l "$work/model.owf.safetensors"
rm -f "$work/model.owf.safetensors"
echo "(the generated model stays in $work/model for reruns; rm -rf $work when done)"
