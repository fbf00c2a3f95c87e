#!/usr/bin/env bash
# The float32 training step against PyTorch on a quiet machine and under background load, side by side:
# bench_xclip (ViT-B/32, T = 8, batch 2; both sides in their own processes, alternating) once per load:
#   quiet       nothing else running;
#   cpu         N busy shell loops at nice 0 (as many as cores): an equal share of the CPU each;
#   cpu-nice    the same at nice 15 (a background build or test run);
#   memory      N `dd if=/dev/zero of=/dev/null bs=64M` at nice 0: memory bandwidth taken as well as CPU.
# Prints one row per load: our step, PyTorch's, the ratio (above 1: we are faster), each side's slowdown
# against its quiet step, and the cores each side kept busy in its step (CPU seconds per wall second: under load,
# the share of the CPU it got). Ratios from one sitting only: absolute times on a shared machine are noise.
#
#   bench/loaded.sh [BUILD_DIR] [--rounds R]      (default build, 3 rounds: about 20 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift;;
    *) build=$1;;
  esac
  shift
done
bench="$build/bench_xclip"
[ -x "$bench" ] || { echo "loaded.sh: $bench not built (cmake --build $build --target bench_xclip)" >&2; exit 1; }
n=$(nproc)
pids=()
stop_load() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; pids=(); }
trap stop_load EXIT
start_load() {
  for _ in $(seq "$n"); do
    case "$1" in
      cpu) bash -c 'while :; do :; done' & ;;
      cpu-nice) nice -n 15 bash -c 'while :; do :; done' & ;;
      memory) bash -c 'while :; do dd if=/dev/zero of=/dev/null bs=64M count=64 status=none; done' & ;;
    esac
    pids+=($!)
  done
}

printf '%-9s %10s %12s %7s %12s %16s %10s %13s\n' load "ours (s)" "PyTorch (s)" ratio "our slowdown" "PyTorch slowdown" \
  "our cores" "PyTorch cores"
q_ours="" q_torch=""
for load in quiet cpu cpu-nice memory; do
  [ "$load" = quiet ] || start_load "$load"
  out=$("$bench" --steps 3 --rounds "$rounds" 2>&1)
  stop_load
  ours=$(echo "$out" | awk '/^train step/ {print $4}') torch=$(echo "$out" | awk '/^train step/ {print $5}')
  busy=$(echo "$out" | awk '/^train cores busy/ {print $4, $5}')
  # a side that did not run prints "-" (bench_xclip)
  [[ "$ours" =~ ^[0-9]*\.[0-9]+$ && "$torch" =~ ^[0-9]*\.[0-9]+$ ]] ||
    { echo "loaded.sh: bench_xclip gave no step times under '$load':" >&2; echo "$out" >&2; exit 1; }
  [ "$load" = quiet ] && q_ours=$ours q_torch=$torch
  awk -v l="$load" -v a="$ours" -v b="$torch" -v qa="$q_ours" -v qb="$q_torch" -v busy="$busy" \
    'BEGIN { split(busy, c, " "); printf "%-9s %10.3f %12.3f %6.2fx %11.2fx %15.2fx %10s %13s\n", l, a, b, b / a, a / qa, b / qb, c[1], c[2] }'
done
