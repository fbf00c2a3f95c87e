#!/usr/bin/python3
"""PyTorch side of bench_xclip: the reference X-CLIP (tests/ref/xclip_ref.py) at ViT-B/32 size, fix_text
with K cached random text features, official AdamW groups. Prints train_s, eval_s (best of STEPS after a
warm-up), train_cpu_s, eval_cpu_s (the same in CPU seconds of all threads) and rss_gb (this process's peak RSS).

Usage: bench_xclip_ref.py THREADS STEPS B T K [bf16]
With bf16 the forward passes run under torch.autocast('cpu', dtype=torch.bfloat16) (mixed precision).
"""
import os
import contextlib
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
from xclip_ref import XCLIP, build_optimizer, fix_text  # noqa: E402

threads, steps, B, T, K = (int(a) for a in sys.argv[1:6])
bf16 = "bf16" in sys.argv[6:]
patch = next((int(a[6:]) for a in sys.argv[6:] if a.startswith("patch=")), 32)  # 16: ViT-B/16


if bf16:  # as CLIP's own LayerNorm (clip/model.py): normalise in float32, return the input's dtype
    def _ln_forward(self, x):
        return torch.nn.functional.layer_norm(x.float(), self.normalized_shape, self.weight, self.bias,
                                              self.eps).to(x.dtype)
    torch.nn.LayerNorm.forward = _ln_forward


def precision():
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

torch.set_num_threads(threads)
torch.manual_seed(0)
model = XCLIP(T=T, image=224, patch=patch, vision_width=768, vision_layers=12, embed=512, context=77, vocab=49408,
              text_width=512, text_layers=12, mit_layers=1, prompt_layers=2)
fix_text(model)
model.cache_text_features = torch.randn(K, 512)  # as if cached from K label names
opt = build_optimizer(model, 1e-5)
video = torch.randn(B, T, 3, 224, 224)
y = torch.zeros(B, K)
for b in range(B):
    y[b, (b * 7) % K] = 1.0
tokens = torch.zeros(K, 77, dtype=torch.long)


def train_step():
    model.train()
    with precision():
        logits = model(video, tokens)
    loss = -(y * logits.float().log_softmax(-1)).sum(-1).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()


def eval_step():
    model.eval()
    with torch.no_grad(), precision():
        model(video, tokens)


for name, fn in (("train", train_step), ("eval", eval_step)):
    best = best_cpu = float("inf")  # wall and CPU seconds (all threads), each the smallest of the steps
    for s in range(steps + 1):
        t, c = time.perf_counter(), time.process_time()
        fn()
        if s:
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
    print(f"{name}_s {best:.4f}\n{name}_cpu_s {best_cpu:.4f}")
print(f"rss_gb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9:.3f}")
