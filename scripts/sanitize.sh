#!/usr/bin/env bash
# Builds owf with AddressSanitizer + UndefinedBehaviorSanitizer (g++) into build-asan/ and runs
# the tests under them; any sanitizer report or test failure fails the run.
# Usage: scripts/sanitize.sh [TARGET...]   (needs the packages scripts/setup.sh installs)
#   no TARGET: build everything and run every test;
#   TARGETs (e.g. owf_io_test owf_formats_test): build only those and run their tests (and those
#   of any test binary an earlier run left in build-asan/).
set -euo pipefail
cd "$(dirname "$0")/.."

san="-fsanitize=address,undefined -fno-sanitize-recover=all"
# Debug (-O0) compiles ~2.5x faster than -O2 under the sanitizers, which matters more on CI's two
# cores than the tests' speed. _GLIBCXX_ASSERTIONS adds libstdc++'s precondition checks.
cmake -S . -B build-asan -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug \
  -DOWF_BUILD_BENCH=OFF -DOWF_NATIVE=OFF \
  -DCMAKE_CXX_FLAGS="$san -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san" >/dev/null
ctest_args=()
if (($#)); then
  cmake --build build-asan -j"$(nproc)" --target "$@"
  ctest_args=(-E '_NOT_BUILT$')  # tests of the targets not built are registered as <target>_NOT_BUILT
else
  cmake --build build-asan -j"$(nproc)"
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-asan --output-on-failure -j2 "${ctest_args[@]}"
