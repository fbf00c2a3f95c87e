#!/usr/bin/env bash
# test_experiments.sh - experiments/run's bookkeeping, in seconds, with stand-in programs instead of xclip-train /
# xclip-eval (they write what the real ones write, with made-up numbers): every study's rows and files; a run
# that fails (an unknown key) recorded as a failed row while the study goes on; identical runs shared across
# studies (one hash); a second call skipping every finished run and retrying only the failed ones; the hash
# following the world, the CLIP and the --set list; table.md's mean +- sample std from a hand-made results.csv.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/test_experiments.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
check() { # condition-result message
    if [ "$1" = 0 ]; then echo "  ok   $2"; else echo "  FAIL $2"; fails=$((fails + 1)); fi
}

# ---- stand-ins ------------------------------------------------------------------------------------------------
mkdir -p "$T/bin" "$T/world/images"
cat > "$T/bin/xclip-train" <<'EOF'
#!/usr/bin/env bash
# stand-in: refuses model.cct like a build without the switch; else writes a run directory whose numbers
# come from the --set list (so different runs get different numbers, the same run the same)
dir="" sets=""
while [ $# -gt 0 ]; do
  if [ "$1" = --set ]; then
    case "$2" in output.dir=*) dir=${2#output.dir=};; train.threads=*) ;; *) sets="$sets $2";; esac
    shift
  fi
  shift
done
echo "train$sets" >> "$STUB_CALLS"
case "$sets " in *model.cct=*) echo "xclip-train: --set 'model.cct=false': unknown key 'cct' in [model]" >&2; exit 2;; esac
mkdir -p "$dir"
c=$(printf '%s' "$sets" | cksum | cut -d' ' -f1)
top1=$(( c % 9000 ))
echo "[data]" > "$dir/config.ini"
echo "training$sets" > "$dir/log.txt"
{ for e in 0 1; do
    printf '{"type": "train", "epoch": %d, "iter": 4, "global_iter": %d, "loss": 2.0, "loss_avg": %d.5, "items_per_s": 10}\n' $e $((e * 10 + 4)) $((3 - e))
    printf '{"type": "train", "epoch": %d, "iter": 9, "global_iter": %d, "loss": 1.0, "loss_avg": %d.0, "items_per_s": 10}\n' $e $((e * 10 + 9)) $((2 - e))
  done
  printf '{"type": "final_eval", "top1": %d.%02d, "top5": 99.5, "mean_class": 12.25, "videos": 10, "clips": 1, "crops": 1}\n' $((top1 / 100)) $((top1 % 100))
} > "$dir/metrics.jsonl"
echo weights > "$dir/last.safetensors"; echo weights > "$dir/best.safetensors"; echo snap > "$dir/snap-000000000001.h5"
EOF
cat > "$T/bin/xclip-eval" <<'EOF'
#!/usr/bin/env bash
echo "eval $*" >> "$STUB_CALLS"
[ -f "$3" ] || { echo "xclip-eval: $3: no such checkpoint" >&2; exit 2; }
probe=0 n=0
while [ $# -gt 0 ]; do
  case "$1" in
    --probe) probe=1;;
    --list) n=$((n + 1)); lists[$n]=$2;;
  esac
  shift
done
[ $probe = 1 ] && echo "zero-shot on 128 probe images of x (chance): colour 93.0% (12.5)  shape 14.1% (12.5)  size 50.0% (50)  position 14.1% (12.5)"
for i in $(seq 1 $n); do echo "${lists[$i]} (labels, K = 10): top-1 $((30 + i)).50%  top-5 80.00%  mean class $((30 + i)).25%  (20 videos, 1 view, 0.1 s)"; done
EOF
printf '#!/bin/sh\nexit 1\n' > "$T/bin/xclip-pretrain"; printf '#!/bin/sh\nexit 1\n' > "$T/bin/xclip-synth"
chmod +x "$T/bin/"*
echo "seed = 1" > "$T/world/world.txt"
echo "clip" > "$T/clip.safetensors"
export STUB_CALLS=$T/calls XCLIP_BUILD=$T/bin XCLIP_EXP_OUT=$T/out XCLIP_EXP_WORLD=$T/world
run() { "$ROOT/experiments/run" "$@" --clip "$T/clip.safetensors"; }

# ---- a whole pass: every study, 2 seeds, 2 at once ------------------------------------------------------------
: > "$T/calls"
run all --seeds 2 --jobs 2 > "$T/pass1.log" 2>&1
check $? "experiments/run all exits 0 although runs fail (see the log below on failure)"
header="study,method,dataset,shots,seed,top1,top5,mean_class,train_s,config_hash,status"
# rows per study: components 4 methods x 2 seeds; few-shot 4 x 2 datasets x 4 K x 2; zero-shot the CLIP's
# 4 probe + 3 split rows and 2 methods x 2 seeds x 3 splits; branches 3 x 2 x 3 settings; prompts 4 x 2 x (2 K + 3 splits)
for sn in components:8 few-shot:64 zero-shot:19 branches:18 prompts:40; do
    s=${sn%%:*} want=${sn#*:} d=$T/out/${sn%%:*}
    check "$([ "$(head -n1 "$d/results.csv" 2>/dev/null)" = "$header" ] && echo 0 || echo 1)" "$s: results.csv header"
    got=$(($(wc -l < "$d/results.csv") - 1))
    check "$([ "$got" = "$want" ] && echo 0 || echo 1)" "$s: $got rows, want $want"
    check "$(grep -q '^| method | dataset | shots | top-1' "$d/table.md" && echo 0 || echo 1)" "$s: table.md"
    for png in "$d"/*.png; do
        check "$([ -s "$png" ] && [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && echo 0 || echo 1)" "$s: $(basename "$png") is a PNG"
    done
done
for png in components/components.png few-shot/fewshot_target_hmdb.png few-shot/fewshot_target_ucf.png few-shot/curves_target_hmdb.png \
           zero-shot/zeroshot.png branches/branches.png branches/curves_source.png prompts/prompts.png prompts/curves_target_hmdb.png; do
    check "$([ -s "$T/out/$png" ] && echo 0 || echo 1)" "plot $png written"
done
# failed runs: the methods using model.cct (unknown to the stand-in) and the zero-shot evaluation of such a run
csv() { cat "$T/out/$1/results.csv"; }
check "$(csv components | awk -F, '$2 == "baseline" && $11 != "failed" || $2 == "X-CLIP" && $11 != "ok" { bad = 1 } END { exit bad }'; echo $?)" \
      "components: baseline (model.cct) failed, X-CLIP ok"
check "$(csv zero-shot | awk -F, '$2 ~ /fine-tuned/ && $11 != "failed" { bad = 1 } END { exit bad }'; echo $?)" \
      "zero-shot: the evaluation of a failed run is a failed row"
check "$(grep -q 'FAILED .*unknown key .cct' "$T/pass1.log" && echo 0 || echo 1)" "progress names the failure's reason"
check "$([ -f "$T/out/components/runs/baseline_source_s1/failed.txt" ] && echo 0 || echo 1)" "a failed run keeps its log tail (runs/NAME/failed.txt)"
check "$([ -f "$T/out/components/runs/X-CLIP_source_s2/metrics.jsonl" ] && [ -f "$T/out/components/runs/X-CLIP_source_s2/config.ini" ] && echo 0 || echo 1)" \
      "a finished run's config.ini and metrics.jsonl copied into the study"
check "$(ls "$T/out/components/runs/X-CLIP_source_s2/" | grep -c safetensors)" "no weights copied into the study"
# the numbers of a row are the run's: top1 from final_eval, the zero-shot splits in order, the probe
x=$(csv components | awk -F, '$2 == "X-CLIP" && $5 == 1 { print $10 }')
check "$([ -n "$x" ] && [ -f "$T/out/runs/$x/result.tsv" ] && echo 0 || echo 1)" "config_hash names the run folder"
check "$(csv zero-shot | grep -q '^zero-shot,X-CLIP,split2,0,1,32.50,80.00,32.25,' && echo 0 || echo 1)" "zero-shot split rows parsed"
check "$(csv zero-shot | grep -q '^zero-shot,CLIP (pretrained only),probe_colour,0,0,93.0,,,' && echo 0 || echo 1)" "probe rows parsed"
check "$(find "$T/out/runs" -name 'snap-*' -o -name best.safetensors | wc -l)" "snapshots and best weights removed after success"
# one hash for the same run in several studies: X-CLIP on the source (components), "both" (branches)
y=$(csv branches | awk -F, '$2 == "both" && $3 == "source" && $5 == 1 { print $10 }')
check "$([ "$x" = "$y" ] && echo 0 || echo 1)" "components X-CLIP and branches 'both' share one run ($x / $y)"
n_train=$(grep -c '^train' "$T/calls")
n_unique=$(sort -u "$T/calls" | grep -c '^train')
check "$([ "$n_train" = "$n_unique" ] && echo 0 || echo 1)" "every training run ran once ($n_train calls, $n_unique distinct)"
# training curves: the epoch means weigh windows by their iterations: epoch 1 = (3.5 x 5 + 2 x 5) / 10
echo -e "m\t$T/out/runs/$x/metrics.jsonl" > "$T/curves.list"
check "$(awk -F'\t' -f "$ROOT/experiments/lib/curves.awk" "$T/curves.list" 2>/dev/null | awk 'NR == 2 && $0 == "1 2.75000" { ok = 1 } END { exit !ok }'; echo $?)" \
      "curves.awk: epoch loss weighted by iterations"

# ---- a second pass: finished runs skipped, failed ones retried --------------------------------------------------
n_failed=$(awk '/^FAILED/ && !/its training run/' "$T/pass1.log" | wc -l)
: > "$T/calls"
run all --seeds 2 --jobs 2 > "$T/pass2.log" 2>&1
check $? "second pass exits 0"
check "$([ "$(grep -c '^train' "$T/calls")" = "$n_failed" ] && echo 0 || echo 1)" \
      "second pass: only the $n_failed failed training runs retried ($(grep -c '^train' "$T/calls") ran)"
check "$(grep -c '^eval' "$T/calls")" "second pass: no finished evaluation repeated"
check "$(grep -q '^skip ' "$T/pass2.log" && echo 0 || echo 1)" "skips are reported"
# a run folder removed: only that run again
rm -rf "${T:?}/out/runs/$x"; : > "$T/calls"
run components --seeds 2 > "$T/pass3.log" 2>&1
check "$([ "$(grep -c '^train' "$T/calls")" = 3 ] && echo 0 || echo 1)" "components again after removing one run: it + the 2 failed ones ($(grep -c '^train' "$T/calls") ran)"

# ---- the hash follows the world, the CLIP and the --set list -------------------------------------------------
h() { run components --seeds 1 --dry-run "$@" | awk '$1 == "X-CLIP_source_s1" { print $2 }'; }
h0=$(h)
echo "seed = 2" > "$T/world/world.txt"; h1=$(h); echo "seed = 1" > "$T/world/world.txt"
echo "clip2" > "$T/clip.safetensors"; h2=$(h); echo "clip" > "$T/clip.safetensors"
h3=$(h --seeds 2); h4=$(h --quick 2>/dev/null)
check "$([ -n "$h0" ] && [ "$h0" = "$(echo "$x" | cut -c1-10)" ] && echo 0 || echo 1)" "dry-run prints the run's hash ($h0)"
check "$([ "$h1" != "$h0" ] && [ "$h2" != "$h0" ] && echo 0 || echo 1)" "another world.txt or another CLIP: another hash"
check "$([ "$h3" = "$h0" ] && [ -n "$h4" ] && [ "$h4" != "$h0" ] && echo 0 || echo 1)" "--seeds leaves seed 1's hash; --quick's 1 epoch changes it"
check "$(run few-shot --seeds 1 --dry-run | grep -c 'same run as')" "few-shot lists no run twice"
run bogus > /dev/null 2>&1; check "$([ $? = 2 ] && echo 0 || echo 1)" "an unknown study is refused"
XCLIP_BUILD=$T/nowhere run components > "$T/nobuild.log" 2>&1
check "$(grep -q 'cmake -S . -B build' "$T/nobuild.log" && echo 0 || echo 1)" "missing programs: the build command is named"

# ---- table.md from a hand-made results.csv ----------------------------------------------------------------------
cat > "$T/hand.csv" <<'EOF'
study,method,dataset,shots,seed,top1,top5,mean_class,train_s,config_hash,status
s,A,d,2,1,10,50,1,5,h1,ok
s,A,d,2,2,20,60,2,5,h2,ok
s,A,d,2,3,30,70,6,5,h3,ok
s,A,d,8,1,1,2,3,5,h4,ok
s,A,d,8,2,2,2,3,5,h5,ok
s,A,d,8,3,,,,,h6,failed
s,B,split1,0,1,40,,,1,h7,ok
s,B,split2,0,1,50,,,1,h7,ok
s,B,split3,0,1,60,,,1,h7,ok
s,B,probe_colour,0,0,93.0,,,1,h8,ok
s,C,d,2,1,,,,,h9,failed
EOF
cat > "$T/hand.md" <<'EOF'
| method | dataset | shots | top-1 (%) | top-5 (%) | mean class (%) | n | failed |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
| A | d | 2 | 20.00 ± 10.00 | 60.00 ± 10.00 | 3.00 ± 2.65 | 3 | 0 |
| A | d | 8 | 1.50 ± 0.71 | 2.00 ± 0.00 | 3.00 ± 0.00 | 2 | 1 |
| B | splits | all | 50.00 ± 10.00 | - | - | 3 | 0 |
| B | probe_colour | all | 93.00 | - | - | 1 | 0 |
| C | d | 2 | - | - | - | 0 | 1 |
EOF
"$ROOT/experiments/run" --table "$T/hand.csv" > "$T/hand.out" 2>&1
check "$(cmp -s "$T/hand.out" "$T/hand.md"; echo $?)" "table.md of a hand-made results.csv (mean ± sample std, splits pooled, failed counted)"
cmp -s "$T/hand.out" "$T/hand.md" || diff "$T/hand.md" "$T/hand.out"
echo "study,method" > "$T/bad.csv"
"$ROOT/experiments/run" --table "$T/bad.csv" > "$T/bad.out" 2>&1
check "$([ $? != 0 ] && grep -q 'not a results.csv header' "$T/bad.out" && echo 0 || echo 1)" "a file without the header is refused"

if [ "$fails" -ne 0 ]; then echo "--- pass 1 log:"; cat "$T/pass1.log"; echo "test_experiments: $fails FAILED"; exit 1; fi
echo "test_experiments: all passed"
