#!/usr/bin/env bash
# Writes bench/RESULTS.md: bench_xclip (our step and evaluation against PyTorch 1.13 in the same run, alternating
# sides, each in its own process) over T = 8, 16, 32 and batch 1, 2, 4 at ViT-B/32 and ViT-B/16, with float32
# and bf16 (ours: train.matmul = bf16; PyTorch: torch.autocast bf16) side by side, then how the cost grows with
# T and batch against the analytic FLOP count, then our float32 step's peak memory with gradient checkpointing
# (a second, shorter run per configuration: ours alone, one step). Run it on a quiet machine; it prints the load
# average before every configuration. A configuration PyTorch cannot fit in the machine's memory keeps our
# figures and "-" for its.
#
#   bench/results.sh [BUILD_DIR] [--quick | --small | --configs "P T B R S,..."] [--reuse]
#     (default: the whole grid, several hours on 2 cores; --small: the 9 configurations up to 64 frames per
#     step (B/32 without T = 32 x 4, B/16 at T = 8 x 1), about 15 minutes; --quick: two, to try the script;
#     --configs: a list of "patch T batch rounds steps"; --reuse: a configuration whose log from an earlier run
#     is complete is not run again (each of its two runs on its own), so a table can be extended a few
#     configurations at a time)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build size=all reuse=0 list=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) size=quick;; --small) size=small;; --reuse) reuse=1;;
    --configs) size=list; list=$2; shift;;
    *) build=$1;;
  esac
  shift
done
bench="$build/bench_xclip"
[ -x "$bench" ] || { echo "results.sh: $bench not built (cmake --build $build --target bench_xclip)" >&2; exit 1; }
logs="$build/results"
mkdir -p "$logs"
bf16=""
if grep -qw avx512_bf16 /proc/cpuinfo || grep -qw amx_bf16 /proc/cpuinfo; then bf16="--bf16"; fi

# patch T batch rounds steps: each round runs all four sides; the reference configuration (B/32, T = 8 x 2) twice
configs=()
for P in 32 16; do
  for T in 8 16 32; do
    for B in 1 2 4; do
      R=1; [ "$P $T $B" = "32 8 2" ] && R=2
      S=2; [ $((T * B)) -ge 32 ] && S=1
      configs+=("$P $T $B $R $S")
    done
  done
done
[ "$size" = small ] && configs=("32 8 1 1 2" "32 8 2 2 2" "32 8 4 1 1" "32 16 1 1 2" "32 16 2 1 1" "32 16 4 1 1" "32 32 1 1 1"
                                "32 32 2 1 1" "16 8 1 1 2")
[ "$size" = quick ] && configs=("32 8 1 1 1" "32 8 2 1 1")
if [ "$size" = list ]; then IFS=, read -r -a configs <<< "$list"; fi

rows=() mrows=() mains=() checkpointed=()
rm -f "$logs/summary.tsv"
for c in "${configs[@]}"; do
  read -r P T B R S <<< "$c"
  log="$logs/b${P}_t${T}_b${B}.log" clog="$logs/b${P}_t${T}_b${B}_checkpoint.log"
  mains+=("$log") checkpointed+=("$clog")
  if [ "$reuse" -eq 1 ] && grep -q '^(model forward' "$log" 2>/dev/null; then
    load=$(sed -n 's/^# load //p' "$log" | head -1)
    echo "results.sh: ViT-B/$P T=$T batch $B: reusing $log"
  else
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "results.sh: ViT-B/$P T=$T batch $B ($R round(s) of $S step(s)); load $(cut -d' ' -f1-3 /proc/loadavg)"
    { echo "# load $load"; "$bench" --patch "$P" --frames "$T" --batch "$B" --steps "$S" --rounds "$R" $bf16; } > "$log" 2>&1 ||
      : > "$log.failed"
  fi
  # the same step with gradient checkpointing (model.checkpoint), our float32 side alone: its peak RSS against the
  # default's and PyTorch's, and what the recomputation costs
  if [ "$reuse" -eq 1 ] && grep -q '^(model forward' "$clog" 2>/dev/null; then
    echo "results.sh: ViT-B/$P T=$T batch $B checkpointed: reusing $clog"
  else
    echo "results.sh: ViT-B/$P T=$T batch $B checkpointed, ours alone (1 step); load $(cut -d' ' -f1-3 /proc/loadavg)"
    { echo "# load $(cut -d' ' -f1 /proc/loadavg)"; "$bench" --patch "$P" --frames "$T" --batch "$B" --steps 1 --no-torch --checkpoint; } > "$clog" 2>&1 ||
      : > "$clog.failed"
  fi
  if [ -e "$log.failed" ] || ! grep -q '^(model forward' "$log"; then
    rm -f "$log.failed"
    echo "results.sh: failed, see $log" >&2
    rows+=("| B/$P | $T | $B | failed (see $log) |")
    continue
  fi
  # the table rows: xclip.c (bf16 with --bf16), PyTorch fp32, ratio[, PyTorch bf16, ratio]; "-" where a side did
  # not run (bench_xclip prints "-": PyTorch out of memory, say). Also one line per configuration in summary.tsv.
  row=$(awk -v P="$P" -v T="$T" -v B="$B" -v bf="$bf16" -v L="$load" -v tsv="$logs/summary.tsv" '
    function v(x, d) { return x > 0 ? sprintf("%." d "f", x) : "-" }
    function q(a, b) { return a > 0 && b > 0 ? sprintf("%.2fx", a / b) : "-" }
    /^train step \(s\)/   { cs = $4; ts = $5; tbs = $7 }
    /^eval forward \(s\)/ { ce = $4; te = $5; tbe = $7 }
    /^peak RSS \(GB\)/    { cr = $4; tr = $5 }
    /^\(model forward/    { g = $3; split($0, w, /[ ,%)]+/)
                            for (i = 1; i in w; i++) { if (w[i] == "ViT") vit = w[i + 1]; if (w[i] == "communication") cross = w[i + 1]
                                                       if (w[i] == "MIT") mit = w[i + 1]; if (w[i] == "generator") pr = w[i + 1] } }
    /of the SGEMM floor/  { for (i = 1; i <= NF; i++) if ($i == "at") fl = $(i + 1) }
    /vs its own float32/  { for (i = 1; i <= NF; i++) { if ($i == "step") fs = $(i + 4); if ($i == "eval") fe = $(i + 4) } }
    END {
      if (bf == "") { fs = cs; fe = ce; cs = 0; ce = 0 }
      out = sprintf("| B/%s | %s | %s | %.1f | %s | %s | %s | %s |", P, T, B, 3 * g, v(fs, 2), v(ts, 2), q(ts, fs), fl == "" ? "-" : fl)
      if (bf != "") out = out sprintf(" %s | %s | %s | %s |", v(cs, 2), v(tbs, 2), q(tbs, cs), q(fs, cs))
      out = out sprintf(" %s | %s | %s |", v(fe, 3), v(te, 3), q(te, fe))
      if (bf != "") out = out sprintf(" %s | %s | %s |", v(ce, 3), v(tbe, 3), q(tbe, ce))
      out = out sprintf(" %s | %s | %s | %s |", v(cr, 2), v(tr, 2), q(cr, tr), L)
      print out
      printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", P, T, B, 3 * g, fs + 0, ts + 0, cs + 0, tbs + 0,
             vit, cross, mit, pr, cr + 0 >> tsv
    }' "$log")
  rows+=("$row")
  echo "  $row"
  # memory with checkpointing: our float32 peak (default, checkpointed) against PyTorch float32's
  [ -e "$clog.failed" ] && { rm -f "$clog.failed"; echo "results.sh: checkpointed run failed, see $clog" >&2; }
  mrows+=("$(awk -v P="$P" -v T="$T" -v B="$B" '
    function v(x, d) { return x > 0 ? sprintf("%." d "f", x) : "-" }
    function q(a, b) { return a > 0 && b > 0 ? sprintf("%.2fx", a / b) : "-" }
    function peak(line,   w, i) { split(line, w, /[( ]+/); for (i = 1; i in w; i++) if (w[i] == "peak") return w[i + 1] + 0 }
    FNR == 1 { f++ }
    f == 1 && /xclip\.c fp32: rss after evaluation/ && peak($0) > d32 { d32 = peak($0) } # with --bf16
    f == 1 && /xclip\.c: rss after evaluation/ && peak($0) > d { d = peak($0) }          # without
    f == 1 && /^peak RSS \(GB\)/ { tr = $5 + 0 }
    f == 1 && /^train step \(s\)/ { ds = $4 + 0 }                                  # without --bf16
    f == 1 && /vs its own float32/ { for (i = 1; i <= NF; i++) if ($i == "step") ds = $(i + 4) + 0 }
    f == 2 && /^train step \(s\)/ { cs = $4 + 0 }
    f == 2 && /^peak RSS \(GB\)/ { cr = $4 + 0 }
    END { dr = d32 > 0 ? d32 : d
          printf "| B/%s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |", P, T, B, T * B, v(dr, 2), v(cr, 2), v(tr, 2),
                 q(dr, tr), q(cr, tr), v(ds, 2), v(cs, 2), q(cs, ds) }' "$log" "$(if [ -e "$clog" ]; then echo "$clog"; else echo /dev/null; fi)")")
done

# How cost grows with T and batch: per frame (B x T frames per step) against the analytic FLOP count, and each
# side's growth from the fewest frames per step to the most against the growth of the work.
scaling() {
  [ -s "$1" ] || return 0
  echo "## How cost grows with T and batch"
  echo
  echo "Per frame of a step (B x T frames). The analytic forward count splits into the per-frame ViT, the cross-frame"
  echo "communication (message tokens, message attention), the MIT and the prompt generator; only the message attention"
  echo "and the MIT have terms in T^2, and the prompt generator grows with the batch but not with T. Times are the"
  echo "table's; \"-\" where a side did not run."
  echo
  echo "| model | T | batch | frames | GFLOP/frame | per-frame ViT | cross-frame | MIT | prompts | fp32 s/frame | PyTorch s/frame | bf16 s/frame | fp32 GFLOP/s |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  awk -F'\t' '
    function v(x, d) { return x > 0 ? sprintf("%." d "f", x) : "-" }
    { F = $2 * $3
      printf "| B/%s | %s | %s | %d | %.1f | %s%% | %s%% | %s%% | %s%% | %s | %s | %s | %s |\n", $1, $2, $3, F, $4 / F, $9, $10, $11,
             $12, v($5 / F, 3), v($6 / F, 3), v($7 / F, 3), v($5 > 0 ? $4 / $5 : 0, 0) }' "$1"
  echo
  echo "From the configuration with the fewest frames per step to the one with the most that the side ran (frames and"
  echo "analytic GFLOP in parentheses: these grow alike when time is proportional to the work):"
  echo
  awk -F'\t' '
    function growth(P, c, name,   k, lo, hi) {
      lo = hi = 0
      for (k = 1; k <= N; k++) if (m[k] == P && y[k, c] > 0) {
        if (!lo || x[k] < x[lo]) lo = k
        if (!hi || x[k] > x[hi]) hi = k
      }
      if (lo && hi && hi != lo)
        printf "- ViT-B/%s, %s: %.3g s to %.3g s, %.1fx (frames %d to %d, %.1fx; GFLOP %.1fx)\n", P, name, y[lo, c], y[hi, c],
               y[hi, c] / y[lo, c], x[lo], x[hi], x[hi] / x[lo], y[hi, 4] / y[lo, 4]
    }
    { N++; m[N] = $1; x[N] = $2 * $3; y[N, 4] = $4; y[N, 5] = $5; y[N, 6] = $6; y[N, 7] = $7; seen[$1] = 1 }
    END {
      for (P = 32; P >= 16; P -= 16) if (P in seen) { growth(P, 5, "xclip.c fp32"); growth(P, 6, "PyTorch fp32"); growth(P, 7, "xclip.c bf16") }
    }' "$1"
  echo
}

# "logs written between HH:MM and HH:MM UTC": the first and last modification time of the files given
span() {
  stat -c %Y "$@" 2>/dev/null | sort -n | sed -n '1p;$p' | xargs -I{} date -u -d @{} +%H:%M | paste -sd' ' |
    awk '{ printf "logs written between %s and %s UTC", $1, $NF }'
}

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
flags=$(grep -o -w 'avx2\|avx512f\|avx512_bf16\|amx_bf16\|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')
core=$(grep -m1 -o 'OpenBLAS core [A-Za-z0-9_]*' "$logs"/*.log | head -1 | sed 's/.*OpenBLAS core //')
{
  echo "# bench/RESULTS.md: X-CLIP training step, evaluation and memory against PyTorch"
  echo
  echo "Written by \`bench/results.sh\` on $(date -u +%Y-%m-%d), the main table in one sitting ($(span "${mains[@]}")): $cpu, $(nproc) cores"
  echo "(flags: ${flags:-none of avx2/avx512/amx}), OpenBLAS core ${core:-?} on both sides, 2 threads, fix_text with K = 400"
  echo "cached class features, random weights. Each configuration runs \`bench_xclip --patch P --frames T --batch B"
  echo "--steps S --rounds R${bf16:+ --bf16}\`: every side in its own process, the sides alternating, the best step of each"
  echo "side kept after a warm-up step (S = 2 steps below 32 frames per step, else 1; R = 2 rounds for B/32 at T = 8 x 2,"
  echo "else 1). Ratios are PyTorch's time over ours (above 1: we are faster) and our peak RSS over PyTorch's. GFLOP:"
  echo "the analytic count of a training step (3x the forward). of SGEMM floor: our float32 step's GFLOP/s over OpenBLAS's"
  echo "SGEMM at 2048^3, timed by bench_xclip in the same rounds (best of each). bf16 vs our fp32: our float32 step time"
  echo "over our bf16 one."
  echo "load: the 1-minute load average before the configuration (the previous configuration's own load decays into it)."
  echo "PyTorch runs under an address-space limit of the machine's memory less 1 GiB: \"-\" where it did not run (its error"
  echo "is in the configuration's log)."
  echo
  if [ -n "$bf16" ]; then
    echo "| model | T | batch | GFLOP/step | step fp32 (s) | PyTorch fp32 | ratio | of SGEMM floor | step bf16 (s) | PyTorch bf16 autocast | ratio | bf16 vs our fp32 | eval fp32 (s) | PyTorch | ratio | eval bf16 (s) | PyTorch bf16 | ratio | peak RSS (GB) | PyTorch | ratio | load |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  else
    echo "| model | T | batch | GFLOP/step | step fp32 (s) | PyTorch fp32 | ratio | of SGEMM floor | eval fp32 (s) | PyTorch | ratio | peak RSS (GB) | PyTorch | ratio | load |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  fi
  printf '%s\n' "${rows[@]}"
  echo
  scaling "$logs/summary.tsv"
  echo "## Peak memory with gradient checkpointing"
  echo
  echo "Our float32 step with \`model.checkpoint = true\` (\`bench_xclip --checkpoint --no-torch --steps 1\`: one step after"
  echo "the warm-up, our side alone; $(span "${checkpointed[@]}")) against the default float32 step of the table"
  echo "above (our peak there covers the training steps and the evaluation) and PyTorch float32's peak there. The"
  echo "backward recomputes each vision block from its input instead of keeping its activations: the weights, AdamW's"
  echo "two moments, the blocks' inputs and one block's activations at a time remain, so the ratio falls as the frames"
  echo "per step grow. time ratio: the checkpointed step's time over the default's (single steps, with this machine's"
  echo "noise)."
  echo
  echo "| model | T | batch | frames | peak RSS (GB) | checkpointed | PyTorch fp32 | ratio | checkpointed ratio | step fp32 (s) | checkpointed (s) | time ratio |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  printf '%s\n' "${mrows[@]}"
  echo
  echo "The raw output of every configuration is in $logs/."
} > bench/RESULTS.md.new
mv bench/RESULTS.md.new bench/RESULTS.md
echo "results.sh: wrote bench/RESULTS.md"
