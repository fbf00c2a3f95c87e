#!/usr/bin/env bash
# test_experiments_quick.sh - `experiments/run all --quick --jobs 2` end to end with the real programs, into a
# folder of its own under the build directory (XCLIP_EXP_OUT, XCLIP_EXP_WORLD): every study's results.csv (the
# header, one row per run or split), table.md, the PNG plots, the runs' small files; a run that fails is a
# failed row with its log tail, never a stopped study. The only accuracy checked: the quick pretrained CLIP beats
# chance on the probe's colours (12.5%). Labelled `long` (a few minutes): not repeated under ASan.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export XCLIP_BUILD=${XCLIP_BUILD:-$ROOT/build}
OUT=$XCLIP_BUILD/test_experiments_quick
export XCLIP_EXP_OUT=$OUT/out XCLIP_EXP_WORLD=$OUT/world
rm -rf "$OUT"; mkdir -p "$OUT"
fails=0
check() { if [ "$1" = 0 ]; then echo "  ok   $2"; else echo "  FAIL $2"; fails=$((fails + 1)); fi; }
t0=$(date +%s)
"$ROOT/experiments/run" all --quick --jobs 2 > "$OUT/run.log" 2>&1
rc=$?
echo "  experiments/run all --quick --jobs 2: exit $rc in $(( $(date +%s) - t0 )) s (printed, not checked); log $OUT/run.log"
check "$rc" "experiments/run exits 0"
header="study,method,dataset,shots,seed,top1,top5,mean_class,train_s,config_hash,status"
# rows with --quick (1 seed, K = 2 4): components 4; few-shot 4 methods x 2 datasets x 2 K; zero-shot the CLIP's
# 4 probe rows + 3 splits, 2 methods x 3 splits; branches 3 x 3; prompts 4 x (2 K + 3 splits)
for sn in components:4 few-shot:16 zero-shot:13 branches:9 prompts:20; do
    s=${sn%%:*} want=${sn#*:} d=$XCLIP_EXP_OUT/${sn%%:*}
    check "$([ "$(head -n1 "$d/results.csv" 2>/dev/null)" = "$header" ] && echo 0 || echo 1)" "$s: results.csv header"
    got=$(($(wc -l < "$d/results.csv" 2>/dev/null || echo 1) - 1))
    check "$([ "$got" = "$want" ] && echo 0 || echo 1)" "$s: $got rows, want $want"
    check "$(awk -F, 'NR > 1 && (NF != 11 || ($11 != "ok" && $11 != "failed") || ($11 == "ok" && $6 == "")) { bad = 1 } END { exit bad + 0 }' "$d/results.csv"; echo $?)" \
          "$s: every row has 11 fields, a status, and a top-1 when ok"
    check "$(grep -q '^| method | dataset | shots | top-1 (%) |' "$d/table.md" 2>/dev/null && echo 0 || echo 1)" "$s: table.md"
    # every run of the study has its folder: a finished one its config and log, a failed one its log tail
    check "$(for r in "$d"/runs/*/; do [ -f "$r/log.txt" ] || [ -f "$r/failed.txt" ] || echo "$r"; done | wc -l)" "$s: runs/NAME/ holds each run's log (or why it did not run)"
    check "$(find "$d" -name '*.safetensors' -o -name '*.h5' | wc -l)" "$s: no weights or snapshots among the study's files"
done
pngs="components/components.png components/curves_source.png few-shot/fewshot_target_hmdb.png few-shot/fewshot_target_ucf.png
      few-shot/curves_target_hmdb.png few-shot/curves_target_ucf.png zero-shot/zeroshot.png branches/branches.png
      branches/curves_source.png branches/curves_target_hmdb.png prompts/prompts.png prompts/curves_target_hmdb.png"
for p in $pngs; do
    f=$XCLIP_EXP_OUT/$p
    check "$([ -s "$f" ] && [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && echo 0 || echo 1)" "$p: a non-empty PNG"
done
# the methods that need no new switch always run: X-CLIP everywhere, + MIT, random init, the CLIP's evaluation
csv=$XCLIP_EXP_OUT
check "$(cat "$csv"/*/results.csv | awk -F, '($2 == "X-CLIP" || $2 == "+MIT" || $2 == "X-CLIP random init" || $2 == "video-specific" || $2 == "both" || $2 ~ /^CLIP \(pretrained/) && $11 != "ok" { print; bad = 1 } END { exit bad + 0 }'; echo $?)" \
      "the methods without new switches finished"
# failures (switches this build lacks, if any) are rows with a reason, and the study went on
nf=$(cat "$csv"/*/results.csv | grep -c ',failed$')
echo "  $nf failed rows (runs needing switches this build lacks, if any)"
colour=$(awk -F, '$3 == "probe_colour" { print $6 }' "$csv/zero-shot/results.csv")
check "$(awk -v c="${colour:-0}" 'BEGIN { exit !(c >= 25) }'; echo $?)" "the quick pretrained CLIP's probe colour accuracy ${colour:-?}% >= 25% (chance 12.5%)"
# a second call finds everything finished: no run starts
"$ROOT/experiments/run" all --quick --jobs 2 > "$OUT/run2.log" 2>&1
check "$([ $? = 0 ] && grep -q "^skip " "$OUT/run2.log" && ! grep -q "^done " "$OUT/run2.log" && echo 0 || echo 1)" "a second call skips every finished run (retries only failed ones)"
if [ "$fails" -ne 0 ]; then echo "--- run.log:"; cat "$OUT/run.log"; echo "test_experiments_quick: $fails FAILED"; exit 1; fi
echo "test_experiments_quick: all passed"
rm -rf "$OUT"
