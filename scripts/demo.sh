#!/usr/bin/env bash
# Installs what xclip.c needs, builds it, and runs the main job on its built-in default
# (xclip-train with no config: a small video transformer trained on generated clips).
# Extra arguments go to xclip-train (see build/xclip-train --help).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)"
exec build/xclip-train "$@"
