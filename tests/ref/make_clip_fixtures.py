#!/usr/bin/python3
"""Writes tests/fixtures/clip/: reference image and text features and gradients of small CLIP models.

  small.safetensors   model B: 2 heads everywhere (width 128), 2 + 2 layers, MLP 4W, context 77, vocab 64
  clip_ref.h5         for model B and for model A (the checkpoint fixtures of tests/fixtures/ckpt, made by
                      make_ckpt_fixtures.py: width 64, 1 head, MLP W/2, context 8, vocab 32):
                      /<model>/images (F, 3, H, W), /tokens (K, S) int32, /r_image, /r_text (upstream grads),
                      /<precision>/image_features, /text_features for precision fp32, fp16 and bf16 (the
                      weights rounded to that type, as the fp16 and bf16 files store them, computed in float64),
                      /fp32/grad/<name>: d(sum(r_image * image_features) + sum(r_text * text_features))/d param.
The reference runs in float64 on the float32 weights: the stored values are the exact answer rounded once.

Run with Debian's python3-torch:  /usr/bin/python3 tests/ref/make_clip_fixtures.py
"""
import os
import struct
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from xclip_ref import CLIP, randomise_norms  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")


def write_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for name, t in sd.items():
        raw = np.array(t.detach().float().numpy(), dtype=np.float32, order="C").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    import json
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_ref_bin(path):
    """The float32 tensors of model A, as make_ckpt_fixtures.py wrote them."""
    sd = {}
    with open(path, "rb") as f:
        assert f.read(8) == b"XCREF001"
        (n,) = struct.unpack("<I", f.read(4))
        for _ in range(n):
            (ln,) = struct.unpack("<I", f.read(4))
            name = f.read(ln).decode()
            (nd,) = struct.unpack("<I", f.read(4))
            shape = struct.unpack(f"<{nd}q", f.read(8 * nd))
            cnt = int(np.prod(shape)) if nd else 1
            sd[name] = torch.from_numpy(np.frombuffer(f.read(4 * cnt), dtype=np.float32).reshape(shape).copy())
    return sd


def make_tokens(rng, K, S, vocab, eot_positions):
    tok = np.zeros((K, S), dtype=np.int32)
    for k, e in enumerate(eot_positions):
        tok[k, 0] = vocab - 2  # stands in for SOT
        tok[k, 1:e] = rng.randint(1, vocab - 2, size=e - 1)
        tok[k, e] = vocab - 1  # EOT: the largest id
    return tok


def write_model(f, group, model, sd32, images, tokens, rng):
    g = f.create_group(group)
    g["images"] = images
    g["tokens"] = tokens
    model = model.double()
    img = torch.from_numpy(images).double()
    txt = torch.from_numpy(tokens).long()
    r_img = r_txt = None
    for prec, dtype in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(sd32[name].to(dtype).double())
        model.zero_grad()
        fi, ft = model.encode_image(img), model.encode_text(txt)
        if r_img is None:
            r_img = torch.from_numpy(rng.uniform(-1, 1, size=tuple(fi.shape)).astype(np.float32)).double()
            r_txt = torch.from_numpy(rng.uniform(-1, 1, size=tuple(ft.shape)).astype(np.float32)).double()
            g["r_image"] = r_img.float().numpy()
            g["r_text"] = r_txt.float().numpy()
        p = g.create_group(prec)
        p["image_features"] = fi.detach().float().numpy()
        p["text_features"] = ft.detach().float().numpy()
        if prec == "fp32":
            ((fi * r_img).sum() + (ft * r_txt).sum()).backward()
            for name, par in model.named_parameters():
                if par.grad is not None:
                    p[f"grad/{name}"] = par.grad.float().numpy()


def main():
    os.makedirs(os.path.join(FIX, "clip"), exist_ok=True)
    rng = np.random.RandomState(4242)
    with h5py.File(os.path.join(FIX, "clip", "clip_ref.h5"), "w") as f:
        # model B: written here
        torch.manual_seed(77)
        b = CLIP()
        randomise_norms(b)
        sdb = {k: v.detach().clone().float() for k, v in b.state_dict().items()}
        write_safetensors(os.path.join(FIX, "clip", "small.safetensors"), sdb)
        images = rng.uniform(-2, 2, size=(3, 3, 32, 32)).astype(np.float32)
        tokens = make_tokens(rng, 5, 77, 64, [1, 7, 30, 76, 12])
        write_model(f, "B", b, sdb, images, tokens, rng)
        # model A: the checkpoint fixtures
        sda = read_ref_bin(os.path.join(FIX, "ckpt", "ref.bin"))
        a = CLIP(image=24, patch=8, vision_width=64, vision_layers=2, embed=32, context=8, vocab=32, text_width=64,
                 text_layers=1, hidden_ratio=0.5)
        a.load_state_dict(sda)
        images = rng.uniform(-2, 2, size=(2, 3, 24, 24)).astype(np.float32)
        tokens = make_tokens(rng, 4, 8, 32, [3, 7, 1, 5])
        write_model(f, "A", a, sda, images, tokens, rng)
    print("wrote tests/fixtures/clip/{small.safetensors,clip_ref.h5}", file=sys.stderr)


if __name__ == "__main__":
    main()
