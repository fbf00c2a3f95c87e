#!/usr/bin/python3
"""Writes tests/fixtures/clip/pretrain_ref.h5: CLIP's contrastive pretraining objective on model B
(tests/fixtures/clip/small.safetensors, made by make_clip_fixtures.py) for a batch of B image-caption pairs.

  images (B, 3, 32, 32), tokens (B, 77) int32          the pairs (row i of each belongs together)
  logit_scale0                                         the starting logit_scale, ln 100 + 0.3: above the clamp
  loss                                                 (CE(logits, arange) + CE(logits^T, arange)) / 2,
                                                       logits = exp(logit_scale) * norm(img) @ norm(txt)^T
  grad/<name>                                          d loss / d param for every parameter (logit_scale too)
  step/<name>                                          some parameters (STEP_CHECKED) after one torch.optim.AdamW step
                                                       (lr 0.05, betas (0.9, 0.98), eps 1e-8, weight decay 0.2)
                                                       followed by CLIP's clamp of logit_scale to [0, ln 100]
  clamped                                              1 if the clamp changed logit_scale (it must)
The reference runs in float64 on the float32 weights.

Run with Debian's python3-torch:  /usr/bin/python3 tests/ref/make_pretrain_fixtures.py
"""
import math
import os
import struct
import sys
import json

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xclip_ref import CLIP  # noqa: E402
from make_clip_fixtures import make_tokens  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
# parameters whose value after the AdamW step is stored: the temperature, whose gradient is large. (A first Adam
# step moves each element by lr * g / (|g| + eps): elements whose gradient is near eps = 1e-8 land anywhere in
# [-lr, lr] depending on float32 rounding, so stepped weight matrices make no stable reference.)
STEP_CHECKED = ("logit_scale",)


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    sd = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        sd[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.float32).reshape(meta["shape"]).copy())
    return sd


def contrastive_loss(model, images, tokens):
    fi = model.encode_image(images)
    ft = model.encode_text(tokens)
    fi = fi / fi.norm(dim=-1, keepdim=True)
    ft = ft / ft.norm(dim=-1, keepdim=True)
    logits = model.logit_scale.exp() * fi @ ft.t()
    labels = torch.arange(images.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def main():
    rng = np.random.RandomState(777)
    sd = read_safetensors(os.path.join(FIX, "clip", "small.safetensors"))
    model = CLIP()
    model.load_state_dict(sd)
    model = model.double()
    B = 6
    images = rng.uniform(-2, 2, size=(B, 3, 32, 32)).astype(np.float32)
    tokens = make_tokens(rng, B, 77, 64, [5, 9, 3, 12, 7, 20])
    img = torch.from_numpy(images).double()
    txt = torch.from_numpy(tokens).long()
    # a start above ln 100 (as a checkpoint trained without the clamp could hold): the first AdamW step moves
    # logit_scale by about lr, which leaves it above the bound, so the clamp must bring it back to ln 100
    start = math.log(100) + 0.3
    with torch.no_grad():
        model.logit_scale.fill_(float(np.float32(start)))
    model.zero_grad()
    loss = contrastive_loss(model, img, txt)
    loss.backward()
    with h5py.File(os.path.join(FIX, "clip", "pretrain_ref.h5"), "w") as f:
        f["images"] = images
        f["tokens"] = tokens
        f["logit_scale0"] = np.float32(start)
        f["loss"] = np.float32(loss.item())
        for name, p in model.named_parameters():
            f[f"grad/{name}"] = p.grad.float().numpy()
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            (no_decay if p.ndim < 2 else decay).append(p)  # as open_clip: no decay for gains, biases, logit_scale
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.2}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=0.05, betas=(0.9, 0.98), eps=1e-8)
        opt.step()
        before = model.logit_scale.item()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        f["clamped"] = np.int32(model.logit_scale.item() != before)
        assert model.logit_scale.item() != before, "the clamp did not act"
        for name, p in model.named_parameters():
            if name in STEP_CHECKED:
                f[f"step/{name}"] = p.detach().float().numpy()
    print(f"wrote tests/fixtures/clip/pretrain_ref.h5 (loss {loss.item():.6f}, start {start:.4f},"
          f" clamped {before:.4f} -> {model.logit_scale.item():.4f})", file=sys.stderr)


if __name__ == "__main__":
    main()
