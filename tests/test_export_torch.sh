#!/usr/bin/env bash
# test_export_torch.sh XCLIP_EXPORT - the .pth files xclip-export writes, checked by PyTorch itself.
# Also the config.json beside each --hf export: its sizes build exactly the exported shapes (transformers is not
# installed: from_pretrained itself is not run). Registered with CTest; it FAILS (never skips) when Debian's
# python3-torch / numpy / h5py are missing: scripts/install-deps.sh installs them. The checks are in tests/check_export_torch.py.
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
"$export_bin" --quiet --allow-nonfinite "$work/src.h5" "$work/official.pth"
"$export_bin" --quiet --allow-nonfinite --flat "$work/src.h5" "$work/flat.pth"
"$export_bin" --quiet --allow-nonfinite --hf "$work/src.h5" "$work/hf.pth"
"$export_bin" --quiet --allow-nonfinite "$work/hf.pth" "$work/back.h5"
"$export_bin" --quiet --allow-nonfinite --hf=clip "$work/src.h5" "$work/clip/pytorch_model.bin"
"$py" "$here/check_export_torch.py" check "$work/src.h5" "$work"

# An exported fine-tuned X-CLIP .pth loads with strict=True into the PyTorch reference model (the official
# architecture and names) and gives the logits xclip-dump computes from the same file.
fix=${XCLIP_FIXTURES:-$here/fixtures}/xclip/t3
dump_bin="$(dirname "$export_bin")/xclip-dump"
"$export_bin" --quiet "$fix/model.pth" "$work/xclip.pth"
"$dump_bin" --checkpoint "$work/xclip.pth" --input "$fix/in.h5" --output "$work/dump.h5" > /dev/null
"$py" - "$work/xclip.pth" "$fix/in.h5" "$work/dump.h5" "$here/ref" <<'PY'
import sys
import h5py
import numpy as np
import torch
sys.path.insert(0, sys.argv[4])
from xclip_ref import XCLIP
sd = torch.load(sys.argv[1], weights_only=True)["model"]
model = XCLIP(T=3, image=32, patch=8, vision_width=128, vision_layers=2, embed=128, context=77, vocab=64,
              text_width=128, text_layers=1, mit_layers=1, prompt_layers=2)
model.load_state_dict(sd, strict=True)
model.eval()
with h5py.File(sys.argv[2]) as f, h5py.File(sys.argv[3]) as d, torch.no_grad():
    logits = model(torch.from_numpy(f["video"][:]), torch.from_numpy(f["tokens"][:]).long()).numpy()
    c = d["logits"][:]
err = np.abs(logits - c).max() / np.abs(logits).max()
print(f"test_export_torch: reference logits from the exported .pth vs xclip-dump: max rel {err:.2e}")
sys.exit(0 if err <= 1e-4 else 1)
PY
