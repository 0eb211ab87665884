#!/usr/bin/env bash
# Builds owf's libFuzzer targets (fuzz/) with clang, ASan and UBSan into build-fuzz/ and runs each
# for SECONDS (default 30) from a scratch copy of its seed corpus (fuzz/corpus/<target>/).
# Fails if any target crashes, leaks, hangs or runs out of memory, printing the reproducer.
# Usage: scripts/fuzz.sh [SECONDS]        (installs clang with apt when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2; }

# clang + compiler-rt (libFuzzer, ASan/UBSan runtimes); llvm-14 has llvm-symbolizer for traces.
scripts/apt-install.sh clang libclang-rt-14-dev llvm-14 cmake make libboost-math-dev nlohmann-json3-dev \
  libcli11-dev

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DOWF_FUZZ=ON \
  -DOWF_BUILD_TESTS=OFF -DOWF_BUILD_BENCH=OFF -DOWF_NATIVE=OFF >/dev/null
cmake --build build-fuzz --target owf_fuzz -j"$(nproc)"

# Every fuzz/fuzz_<target>.cc is a target; fuzz/corpus/<target>/ its seeds, fuzz/<target>.dict
# an optional libFuzzer dictionary.
targets=()
for src in fuzz/fuzz_*.cc; do
  t="$(basename "$src" .cc)"
  t="${t#fuzz_}"
  if [ -x "build-fuzz/fuzz/fuzz_$t" ]; then
    targets+=("$t")
  else
    echo "warning: $src was not built (not listed in fuzz/CMakeLists.txt?)" >&2
  fi
done
scratch="$(mktemp -d "${TMPDIR:-/tmp}/owf-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
artifacts="$PWD/build-fuzz/artifacts"
mkdir -p "$artifacts"
symbolizer=/usr/lib/llvm-14/bin/llvm-symbolizer
[ -x "$symbolizer" ] && export ASAN_SYMBOLIZER_PATH="$symbolizer"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# One target: fuzz a scratch copy of its seeds; exit status in $scratch/<target>.rc.
run_target() {
  local t="$1" rc=0
  local extra=()
  [ -f "fuzz/$t.dict" ] && extra+=("-dict=fuzz/$t.dict")
  "build-fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
    -use_value_profile=1 -print_final_stats=1 -artifact_prefix="$artifacts/$t/" "${extra[@]}" \
    "$scratch/$t" >"$artifacts/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$scratch/$t.rc"
}

# As many targets at once as there are cores.
jobs_max="$(nproc)"
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "$artifacts/$t"
  [ -d "fuzz/corpus/$t" ] && cp fuzz/corpus/"$t"/* "$scratch/$t/"
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
  echo "== fuzz_$t: ${seconds}s from $(ls "$scratch/$t" | wc -l) seeds"
  run_target "$t" &
done
wait

failed=()
for t in "${targets[@]}"; do
  log="$artifacts/$t.log"
  rc="$(cat "$scratch/$t.rc")"
  if ((rc == 0)); then
    echo "fuzz_$t: $(grep -E "^Done " "$log" | tail -n 1), $(ls "$scratch/$t" | wc -l) corpus inputs," \
      "peak RSS $(grep -oE "peak_rss_mb: *[0-9]+" "$log" | grep -oE "[0-9]+$") MB"
  else
    failed+=("$t")
    echo "---- fuzz_$t failed (exit $rc); last lines of $log:"
    tail -n 60 "$log"
    reproducer="$(grep -oE "Test unit written to [^ ]+" "$log" | tail -n 1 | awk '{print $NF}')"
    echo "FAILED: fuzz_$t; reproducer: ${reproducer:-none written, see $artifacts/$t/}"
    [ -n "$reproducer" ] && echo "reproduce with: build-fuzz/fuzz/fuzz_$t $reproducer"
  fi
done

if ((${#failed[@]})); then
  echo "fuzzing found problems in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: no crashes in ${#targets[@]} targets x ${seconds}s"
