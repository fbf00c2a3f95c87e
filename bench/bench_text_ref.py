#!/usr/bin/python3
"""PyTorch side of bench_text: the CLIP text tower at ViT-B/32 size (width 512, 12 layers, 8 heads,
context 77) on the token rows in TOKENS (int32 (K, 77), raw), no grad; prints 'full_ms X'.

Usage: bench_text_ref.py TOKENS K THREADS REPEATS
"""
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from xclip_ref import CLIP  # noqa: E402

path, K, threads, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
tokens = torch.from_numpy(np.fromfile(path, dtype=np.int32).reshape(K, 77).astype(np.int64))
model = CLIP(image=32, patch=32, vision_width=64, vision_layers=1, embed=512, context=77, vocab=49408,
             text_width=512, text_layers=12).eval()
with torch.no_grad():
    model.encode_text(tokens)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        model.encode_text(tokens)
        best = min(best, time.perf_counter() - t)
print(f"full_ms {best * 1e3:.3f}")
