#!/usr/bin/python3
"""Writes tests/fixtures/ops.h5: PyTorch reference values for every case of tests/op_cases.h.

For each case id: inputs in0..inN (float32, uniform in [-1, 1]), r (the upstream gradient), out
(the op's output) and gin0..ginN (d sum(r*out) / d input). The reference runs in float64 on the same
float32 inputs, so the stored values are the exact answer rounded once to float32.
Fully masked softmax rows (all -inf) are defined as zeros with zero gradient in xclip.c, where
PyTorch returns NaN: those rows are set to 0 here.
dropout and drop_path have random masks that PyTorch cannot reproduce; test_op_parity.c checks them
against the formula of F.dropout / timm's drop_path with the mask read back, so they have no entry.

Run with Debian's python3-torch:  /usr/bin/python3 tests/ref/make_op_fixtures.py
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "ops.h5")


def causal(L):
    return torch.triu(torch.full((L, L), -math.inf), 1)


def odd_mask(L):
    m = torch.zeros(L, L)
    for i in range(L):
        for j in range(L):
            m[i, j] = -math.inf if (i == 1 or j == 0) else 0.25 * (i - j)
    return m


def sdpa(q, k, v, heads, mask=None):
    """nn.MultiheadAttention's core: q (B, Lq, W), k/v (B, Lk, W)."""
    B, Lq, W = q.shape
    Lk = k.shape[1]
    dh = W // heads
    qh = q.reshape(B, Lq, heads, dh).transpose(1, 2) * dh ** -0.5
    kh = k.reshape(B, Lk, heads, dh).transpose(1, 2)
    vh = v.reshape(B, Lk, heads, dh).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2)
    if mask is not None:
        s = s + mask
    return (s.softmax(-1) @ vh).transpose(1, 2).reshape(B, Lq, W)


def mha(x, in_w, in_b, packed_out):
    W = x.shape[2]
    L = x.shape[1]
    xt = x.transpose(0, 1)  # nn.MultiheadAttention takes (L, B, W)
    y, _ = F.multi_head_attention_forward(
        xt, xt, xt, W, 2, in_w, in_b, None, None, False, 0.0, packed_out[:W], packed_out[W],
        training=False, need_weights=False, attn_mask=causal(L))
    return y.transpose(0, 1)


def soft_targets(B, K):
    y = torch.zeros(B, K)
    off, on = 0.1 / K, 0.9 + 0.1 / K
    for b in range(B):
        for k in range(K):
            a = on if k == b % K else off
            c = on if k == (b + 2) % K else off
            y[b, k] = (1.0 if k == 1 else 0.0) if b == 0 else 0.7 * a + 0.3 * c
    return y


def soft_ce(x):
    y = soft_targets(*x.shape)
    return (-(y * x.log_softmax(-1)).sum(-1)).mean()


CASES = {
    "matmul_nn": ([(3, 4), (4, 5)], lambda a, b: a @ b),
    "matmul_tn_batched": ([(2, 4, 3), (2, 4, 5)], lambda a, b: a.transpose(-1, -2) @ b),
    "matmul_nt_batched": ([(2, 1, 3, 4), (2, 1, 5, 4)], lambda a, b: a @ b.transpose(-1, -2)),
    "matmul_tt": ([(4, 3), (5, 4)], lambda a, b: a.t() @ b.t()),
    "matmul_shared_b": ([(2, 3, 4), (4, 5)], lambda a, b: a @ b),
    "matmul_shared_b_t": ([(2, 3, 4), (5, 4)], lambda a, b: a @ b.t()),
    "matmul_shared_b_ta": ([(2, 4, 3), (4, 5)], lambda a, b: a.transpose(-1, -2) @ b),
    "linear_3d": ([(2, 3, 4), (5, 4), (5,)], F.linear),
    "linear_nobias": ([(1, 4), (3, 4)], F.linear),
    "add_same": ([(3, 4), (3, 4)], torch.add),
    "add_suffix": ([(2, 3, 4), (3, 4)], torch.add),
    "add_size1": ([(2, 1, 4), (1, 3, 1)], torch.add),
    "sub_bcast": ([(2, 3, 4), (4,)], torch.sub),
    "sub_lhs_bcast": ([(3, 1), (2, 3, 4)], torch.sub),
    "mul_same": ([(3, 4), (3, 4)], torch.mul),
    "mul_bcast": ([(2, 3, 1), (1, 1, 4)], torch.mul),
    "mul_scalar": ([(3, 4), (1,)], torch.mul),
    "scale": ([(2, 1, 3)], lambda x: -1.7 * x),
    "exp": ([(3, 4)], torch.exp),
    "sum_dim0": ([(3, 2, 4)], lambda x: x.sum(0)),
    "sum_dim1": ([(3, 1, 4)], lambda x: x.sum(1)),
    "mean_last": ([(2, 3, 5)], lambda x: x.mean(-1)),
    "reshape": ([(4, 3)], lambda x: x.reshape(3, -1, 2)),
    "permute": ([(2, 3, 1, 4)], lambda x: x.permute(2, 0, 3, 1)),
    "transpose": ([(2, 3, 4)], lambda x: x.transpose(0, 2)),
    "concat3": ([(2, 1, 3), (2, 2, 3), (2, 3, 3)], lambda a, b, c: torch.cat([a, b, c], 1)),
    "slice": ([(2, 5, 3)], lambda x: x[:, 1:4]),
    "gather_rows": ([(3, 5, 4)], lambda x: x[torch.arange(3), torch.tensor([4, 0, 2])]),
    "embedding": ([(6, 4)], lambda t: F.embedding(torch.tensor([3, 0, 3, 5, 1, 3, 0]), t)),
    "layernorm": ([(2, 3, 7), (7,), (7,)], lambda x, w, b: F.layer_norm(x, (7,), w, b, 1e-5)),
    "layernorm_1row": ([(1, 16), (16,), (16,)], lambda x, w, b: F.layer_norm(x, (16,), w, b, 1e-5)),
    "softmax": ([(2, 3, 5)], lambda x: x.softmax(-1)),
    "softmax_causal": ([(2, 4, 4)], lambda x: (x + causal(4)).softmax(-1)),
    "softmax_masked_row": ([(2, 4, 4)], lambda x: (x + odd_mask(4)).softmax(-1)),
    "log_softmax": ([(3, 6)], lambda x: x.log_softmax(-1)),
    "log_softmax_causal": ([(1, 4, 4)], lambda x: (x + causal(4)).log_softmax(-1)),
    "quick_gelu": ([(4, 5)], lambda x: x * torch.sigmoid(1.702 * x)),
    "attention": ([(2, 5, 12)], lambda qkv: sdpa(*qkv.chunk(3, -1), 2)),
    "attention_causal": ([(1, 4, 18)], lambda qkv: sdpa(*qkv.chunk(3, -1), 3, causal(4))),
    "cross_attention": ([(2, 3, 8), (2, 5, 8), (2, 5, 8)], lambda q, k, v: sdpa(q, k, v, 2)),
    "mha_causal": ([(2, 4, 8), (24, 8), (24,), (9, 8)], mha),
    "patch_embed": ([(2, 3, 6, 9), (4, 3, 3, 3)],
                    lambda img, w: F.conv2d(img, w, stride=3).flatten(2).transpose(1, 2)),
    "l2_normalize": ([(2, 3, 5)], lambda x: x / x.norm(dim=-1, keepdim=True)),
    "soft_cross_entropy": ([(3, 5)], soft_ce),
    # appended, so the cases above keep their random inputs
    "layernorm_linear": ([(2, 3, 7), (7,), (7,), (5, 7), (5,)],
                         lambda x, lw, lb, w, b: F.linear(F.layer_norm(x, (7,), lw, lb, 1e-5), w, b)),
    "quick_gelu_linear": ([(2, 3, 4), (5, 4), (5,)], lambda x, w, b: F.linear(x * torch.sigmoid(1.702 * x), w, b)),
    "quick_gelu_linear_nobias": ([(3, 4), (2, 4)], lambda x, w: F.linear(x * torch.sigmoid(1.702 * x), w)),
    "sub_same": ([(3, 4), (3, 4)], torch.sub),
    "add_self": ([(3, 4)], lambda x: x + x),
    "sub_const_lhs": ([(3, 4)], lambda x: (torch.arange(12.0).reshape(3, 4) * 0.25 - 1) - x),
    "add_const_lhs": ([(3, 4)], lambda x: (torch.arange(12.0).reshape(3, 4) * 0.25 - 1) + x),
}


def main():
    rng = np.random.RandomState(20221025)
    with h5py.File(OUT, "w") as f:
        for cid, (shapes, fn) in CASES.items():
            ins32 = [rng.uniform(-1, 1, size=s).astype(np.float32) for s in shapes]
            ins = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in ins32]
            out = fn(*ins)
            r = torch.tensor(rng.uniform(-1, 1, size=tuple(out.shape)).astype(np.float32), dtype=torch.float64)
            r[~torch.isfinite(out.detach())] = 0.0  # masked log-probabilities are constants
            (torch.nan_to_num(out, nan=0.0, neginf=0.0) * r).sum().backward()
            g = f.create_group(cid)
            for i, a in enumerate(ins32):
                g[f"in{i}"] = a
                g[f"gin{i}"] = torch.nan_to_num(ins[i].grad, nan=0.0).numpy().astype(np.float32)
            g["r"] = r.numpy().astype(np.float32)
            o = out.detach().clone()
            o[torch.isnan(o)] = 0.0
            g["out"] = o.numpy().astype(np.float32)
    print(f"wrote {len(CASES)} cases to {os.path.relpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
