#!/usr/bin/env bash
# test_layers.sh - the library's import graph: folders include only the layers below them, and no module
# (x.c + x.h) reaches itself through includes. Layers, lowest first:
#   autograd  <  optim, data  <  checkpoints  <  nn  <  train  (tools/, tests/, bench/ sit on top)
# A failure names the offending include or the modules on a cycle.
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A rank=([autograd]=0 [optim]=1 [data]=1 [checkpoints]=2 [nn]=3 [train]=4)
fail=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for dir in "${!rank[@]}"; do
  for f in "$dir"/*.c "$dir"/*.h; do
    [ -e "$f" ] || continue
    mod="$dir/$(basename "${f%.*}")"
    while read -r inc; do
      to_dir=${inc%%/*}
      [ -n "${rank[$to_dir]+x}" ] || continue                   # system or third-party header
      if [ "$to_dir" != "$dir" ] && [ "${rank[$to_dir]}" -ge "${rank[$dir]}" ]; then
        echo "FAIL $f includes $inc: $dir (layer ${rank[$dir]}) may only include lower layers"; fail=1
      fi
      to="${inc%.h}"
      [ "$to" = "$mod" ] || echo "$mod $to" >> "$edges"
    done < <(sed -n 's/^#include "\([a-z_]*\/[a-z_0-9]*\.h\)".*/\1/p' "$f")
  done
done
if ! out=$(tsort "$edges" 2>&1 >/dev/null) || [ -n "$out" ]; then
  echo "FAIL include cycle between modules:"; echo "$out" | sed 's/^tsort: /  /'; fail=1
fi
n=$(sort -u "$edges" | wc -l)
if [ "$fail" -eq 0 ]; then echo "test_layers: $n module includes, layering respected, no cycle"; echo "1 passed, 0 failed"; exit 0; fi
echo "0 passed, 1 failed"; exit 1
