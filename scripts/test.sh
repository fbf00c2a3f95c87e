#!/usr/bin/env bash
# Builds xclip.c and runs the whole test suite (CTest), installing the Debian packages it needs first.
#   scripts/test.sh           Release build in build/ with warnings as errors, then ctest
#   scripts/test.sh --asan    the same under AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/, but for
#                             the end-to-end runs labelled `long` (test_demo_run, test_pretrain_run: minutes each,
#                             already run by the plain build; the units they drive are all tested under ASan)
# Tests read the shared reference data from ../shared (override with XCLIP_SHARED=/path).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
if [ "$(id -u)" -eq 0 ]; then scripts/install-deps.sh; else scripts/install-deps.sh || { echo "test.sh: run as root to install packages" >&2; exit 1; }; fi
jobs=$(nproc 2>/dev/null || echo 2)
if [ "$mode" = "--asan" ]; then
  dir=build-asan
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXCLIP_SANITIZE=ON -DXCLIP_WERROR=ON >/dev/null
  # leaks inside OpenBLAS / libgomp / libhdf5 start-up are not ours; everything else aborts the test
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
elif [ -z "$mode" ]; then
  dir=build
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DXCLIP_WERROR=ON >/dev/null
else
  echo "usage: scripts/test.sh [--asan]" >&2; exit 2
fi
cmake --build "$dir" -j"$jobs"
if [ "$mode" = "--asan" ]; then ctest --test-dir "$dir" --output-on-failure -j1 -LE long
else ctest --test-dir "$dir" --output-on-failure -j1; fi
