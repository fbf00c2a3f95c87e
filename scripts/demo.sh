#!/usr/bin/env bash
# Installs what xclip.c needs, builds it and runs configs/demo.ini end to end: generates the synthetic dataset
# (build/demo-data, if absent), trains a small randomly initialised X-CLIP on it (about a minute on 2 cores),
# evaluates the best weights with xclip-eval and prints the accuracy. Extra arguments go to xclip-train
# (e.g. --set train.epochs=10). The built-in job of earlier versions is `build/xclip-train --demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --demo   # no Python packages: the demo never runs Python
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"

vocab=../shared/clip/bpe_simple_vocab_16e6.txt.gz   # configs/demo.ini's data.vocab, relative to the repository
if [ ! -f "$vocab" ]; then
  echo "demo.sh: the CLIP BPE vocabulary is missing: $(pwd)/$vocab" >&2
  echo "  It ships with openai/CLIP as clip/bpe_simple_vocab_16e6.txt.gz. Put it there, or pass" >&2
  echo "  --set data.vocab=/path/to/bpe_simple_vocab_16e6.txt.gz" >&2
  [[ " $* " == *" --set data.vocab="* ]] || exit 1
fi
if [ ! -f build/demo-data/val.txt ]; then
  build/xclip-synth build/demo-data --classes 8 --per-class 64 --val-per-class 16 --frames 16 --size 32
fi
build/xclip-train configs/demo.ini --overwrite "$@"   # the demo starts afresh each time
echo
echo "== evaluation of runs/demo/best.safetensors (chance: 12.5%) =="
eval_args=()
for a in "$@"; do case "$a" in data.vocab=*) eval_args+=(--set "$a");; esac; done
build/xclip-eval configs/demo.ini --checkpoint runs/demo/best.safetensors --predictions runs/demo/predictions "${eval_args[@]}"
