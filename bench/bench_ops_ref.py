#!/usr/bin/python3
"""PyTorch side of bench_ops: times the same ops on the same shapes; prints 'name milliseconds' lines.

Usage: bench_ops_ref.py THREADS REPEATS
"""
import sys
import time

import torch
import torch.nn.functional as F

threads, reps = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
torch.manual_seed(0)
T, L, W, H = 16, 50, 768, 12
R = T * L


def timeit(fn):
    fn()  # warm-up
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def linear_case(name, n_in, n_out, pre=None):
    """x W^T + b at (R, n_in) -> (R, n_out), of pre(x) when pre is 'ln' (LayerNorm) or 'gelu' (QuickGELU)."""
    x = torch.randn(R, n_in, requires_grad=True)
    w = torch.randn(n_out, n_in, requires_grad=True)
    b = torch.randn(n_out, requires_grad=True)
    ln_w = torch.randn(n_in, requires_grad=True)
    ln_b = torch.randn(n_in, requires_grad=True)
    g = torch.randn(R, n_out)

    def fwd():
        a = F.layer_norm(x, (n_in,), ln_w, ln_b, 1e-5) if pre == "ln" else x * torch.sigmoid(1.702 * x) if pre == "gelu" else x
        return F.linear(a, w, b)
    print(f"{name}_fwd {timeit(fwd):.4f}")

    def fb():
        x.grad = w.grad = b.grad = ln_w.grad = ln_b.grad = None
        fwd().backward(g)
    print(f"{name}_fwdbwd {timeit(fb):.4f}")


linear_case("qkv", W, 3 * W)
linear_case("out_proj", W, W)
linear_case("c_fc", W, 4 * W)
linear_case("c_proj", 4 * W, W)
linear_case("ln_c_fc", W, 4 * W, "ln")
linear_case("gelu_c_proj", 4 * W, W, "gelu")

a = torch.randn(2048, 2048)
b = torch.randn(2048, 2048)
print(f"sgemm2048 {timeit(lambda: a @ b):.4f}")

def sdpa(qkv, n):
    q, k, v = qkv.chunk(3, -1)
    dh = W // H
    q = q.reshape(T, n, H, dh).transpose(1, 2) * dh ** -0.5
    k = k.reshape(T, n, H, dh).transpose(1, 2)
    v = v.reshape(T, n, H, dh).transpose(1, 2)
    return ((q @ k.transpose(-1, -2)).softmax(-1) @ v).transpose(1, 2).reshape(T, n, W)


# ViT-B/32's 50 tokens, then ViT-B/16's 197 plus X-CLIP's message token
for n, key in ((L, "attention"), (198, "attention198")):
    qkv = torch.randn(T, n, 3 * W, requires_grad=True)
    go = torch.randn(T, n, W)
    print(f"{key}_fwd {timeit(lambda: sdpa(qkv, n)):.4f}")

    def att_fb():
        qkv.grad = None
        sdpa(qkv, n).backward(go)
    print(f"{key}_fwdbwd {timeit(att_fb):.4f}")

# AdamW over the trained parameters of X-CLIP ViT-B/32 (133.2 M floats, one tensor), as bench_ops times ours
adam_n = 133157632
p = torch.zeros(adam_n, requires_grad=True)
p.grad = torch.randn(adam_n) * 1e-3
opt = torch.optim.AdamW([p], lr=1e-5, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.001)
print(f"adamw {timeit(opt.step):.4f}")
