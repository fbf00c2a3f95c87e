#!/usr/bin/env bash
# Writes bench/RESULTS.md: bench_xclip (our step and evaluation against PyTorch 1.13 in the same run, alternating
# sides, each in its own process) over T = 8, 16, 32 and batch 1, 2, 4 at ViT-B/32, and the smaller ViT-B/16
# grid this machine can afford, with float32 and bf16 (ours: train.matmul = bf16; PyTorch: torch.autocast bf16)
# side by side. Run it on a quiet machine; it prints the load average around every configuration.
#
#   bench/results.sh [BUILD_DIR] [--quick]      (--quick: two configurations, to try the script)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build quick=0
for a in "$@"; do
  case "$a" in --quick) quick=1;; *) build=$a;; esac
done
bench="$build/bench_xclip"
[ -x "$bench" ] || { echo "results.sh: $bench not built (cmake --build $build --target bench_xclip)" >&2; exit 1; }
logs="$build/results"
mkdir -p "$logs"
bf16=""
if grep -qw avx512_bf16 /proc/cpuinfo || grep -qw amx_bf16 /proc/cpuinfo; then bf16="--bf16"; fi

# patch T batch rounds: the big ones once (each round runs all four sides)
configs=()
for T in 8 16 32; do
  for B in 1 2 4; do
    if [ $((T * B)) -le 16 ]; then configs+=("32 $T $B 2"); else configs+=("32 $T $B 1"); fi
  done
done
configs+=("16 8 1 1" "16 8 2 1" "16 16 1 1")
[ "$quick" -eq 1 ] && configs=("32 8 1 1" "32 8 2 1")

rows=()
for c in "${configs[@]}"; do
  read -r P T B R <<< "$c"
  log="$logs/b${P}_t${T}_b${B}.log"
  echo "results.sh: ViT-B/$P T=$T batch $B ($R round(s)); load $(cut -d' ' -f1-3 /proc/loadavg)"
  if ! "$bench" --patch "$P" --frames "$T" --batch "$B" --steps 2 --rounds "$R" $bf16 > "$log" 2>&1; then
    echo "results.sh: failed, see $log" >&2
    rows+=("| B/$P | $T | $B | failed (see $log) |")
    continue
  fi
  # the table rows: xclip.c (bf16 with --bf16), PyTorch fp32, ratio[, PyTorch bf16, ratio]
  row=$(awk -v P="$P" -v T="$T" -v B="$B" -v bf="$bf16" '
    /^train step \(s\)/   { cs = $4; ts = $5; tbs = $7 }
    /^eval forward \(s\)/ { ce = $4; te = $5; tbe = $7 }
    /^peak RSS \(GB\)/    { cr = $4; tr = $5 }
    /^\(model forward/    { g = $3 }
    /vs its own float32/  { for (i = 1; i <= NF; i++) { if ($i == "step") fs = $(i + 4); if ($i == "eval") fe = $(i + 4) } }
    END {
      if (bf == "") { fs = cs; fe = ce }
      out = sprintf("| B/%s | %s | %s | %.1f | %.2f | %.2f | %.2fx |", P, T, B, 3 * g, fs, ts, ts / fs)
      if (bf != "") out = out sprintf(" %.2f | %.2f | %.2fx |", cs, tbs, tbs / cs)
      out = out sprintf(" %.3f | %.3f | %.2fx |", fe, te, te / fe)
      if (bf != "") out = out sprintf(" %.3f | %.3f | %.2fx |", ce, tbe, tbe / ce)
      out = out sprintf(" %.2f | %.2f | %.2fx |", cr, tr, cr / tr)
      print out
    }' "$log")
  rows+=("$row")
  echo "  $row"
done

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
flags=$(grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_bf16\|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')
core=$(grep -m1 -o 'OpenBLAS core [A-Za-z0-9_]*' "$logs"/*.log | head -1 | sed 's/.*OpenBLAS core //')
{
  echo "# bench/RESULTS.md: X-CLIP training step, evaluation and memory against PyTorch"
  echo
  echo "Written by \`bench/results.sh\` on $(date -u +%Y-%m-%d) in one sitting: $cpu, $(nproc) cores"
  echo "(flags: ${flags:-none of avx2/avx512/amx}), OpenBLAS core ${core:-?} on both sides, 2 threads, fix_text with K = 400"
  echo "cached class features, random weights. Each configuration runs \`bench_xclip --patch P --frames T --batch B"
  echo "--steps 2 --rounds R${bf16:+ --bf16}\`: every side in its own process, the sides alternating, the best step of each"
  echo "side kept (R = 2 rounds up to 16 frames per step, 1 above). Ratios are PyTorch's time over ours (above 1: we are"
  echo "faster) and our peak RSS over PyTorch's. GFLOP: the analytic count of a training step (3x the forward)."
  echo
  if [ -n "$bf16" ]; then
    echo "| model | T | batch | GFLOP/step | step fp32 (s) | PyTorch fp32 | ratio | step bf16 (s) | PyTorch bf16 autocast | ratio | eval fp32 (s) | PyTorch | ratio | eval bf16 (s) | PyTorch bf16 | ratio | peak RSS (GB) | PyTorch | ratio |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  else
    echo "| model | T | batch | GFLOP/step | step fp32 (s) | PyTorch fp32 | ratio | eval fp32 (s) | PyTorch | ratio | peak RSS (GB) | PyTorch | ratio |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  fi
  printf '%s\n' "${rows[@]}"
  echo
  echo "The raw output of every configuration is in $logs/."
} > bench/RESULTS.md.new
mv bench/RESULTS.md.new bench/RESULTS.md
echo "results.sh: wrote bench/RESULTS.md"
