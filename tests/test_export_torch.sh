#!/usr/bin/env bash
# test_export_torch.sh XCLIP_EXPORT - the .pth files xclip-export writes, checked by PyTorch itself.
# Registered with CTest; it FAILS (never skips) when Debian's python3-torch / numpy / h5py are missing:
# scripts/install-deps.sh installs them. The checks are in tests/check_export_torch.py.
set -euo pipefail
export_bin=${1:?usage: test_export_torch.sh path/to/xclip-export}
py=${XCLIP_PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
if ! "$py" -c "import torch, numpy, h5py" 2>/dev/null; then
  echo "test_export_torch: FAIL: $py cannot import torch, numpy and h5py" >&2
  echo "HINT: run scripts/install-deps.sh as root (packages python3-torch python3-numpy python3-h5py)" >&2
  exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/xclip-export-torch-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$py" "$here/check_export_torch.py" make "$work/src.h5"
"$export_bin" --quiet "$work/src.h5" "$work/official.pth"
"$export_bin" --quiet --flat "$work/src.h5" "$work/flat.pth"
"$export_bin" --quiet --hf "$work/src.h5" "$work/hf.pth"
"$export_bin" --quiet "$work/hf.pth" "$work/back.h5"
"$py" "$here/check_export_torch.py" check "$work/src.h5" "$work"
