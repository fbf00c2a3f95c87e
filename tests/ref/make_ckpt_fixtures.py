#!/usr/bin/python3
"""Build the checkpoint-loader fixtures in tests/fixtures/ckpt/ from a small random CLIP-shaped model.

Run with the system Python that has torch 1.13 (not a pyenv without torch):
    /usr/bin/python3 tests/ref/make_ckpt_fixtures.py [OUT_DIR]

The model follows docs/model.md §1-§2 (official parameter names, nn.MultiheadAttention with stacked
in_proj_*, QuickGELU MLP called c_fc/c_proj, OpenAI's attn_mask as a plain tensor attribute), kept small
so that the fixtures stay under 2 MB: width 64 (one head), image 24, patch 8, 2 vision blocks,
1 text block, vocabulary 32, context 8, embed dim 32. To save space the MLP hidden width is W/2 instead
of 4W (the loaders do not care about the ratio; the names are the official ones), and the TorchScript
archives are rewritten without their *.debug_pkl entries (source-range debug info, optional for
torch.jit.load; the self-check at the end loads the stripped archive with torch). The rewritten archives
are plain zip files as Python's zipfile writes them (code deflated); the .pth files keep torch's own
layout (zip64 end records, data descriptors, 64-byte aligned stored data), so both kinds are covered.

Files written:
  ref.bin               expected float32 values of every tensor (see read_ref in test_checkpoints.c):
                        "XCREF001", u32 count, then per tensor u32 name_len, name, u32 ndim,
                        ndim x i64 dims, float32 data (all little-endian)
  clip_state.pth        torch.save(state_dict) in float32; visual.proj is saved as a non-contiguous
                        (transposed) view and text_projection as a view at an offset inside a larger storage
  clip_nested.pth       {'model': {'module.' + name: fp16 tensor}, 'optimizer': AdamW state, 'epoch': 3,
                        'config': <instance of a custom dict subclass with attributes, like a yacs CfgNode>}
  clip_script_fp32.pt   torch.jit.script(model) saved with torch.jit.save
  clip_script_fp16.pt   the same after .half() (as OpenAI's released ViT-B-32.pt: fp16 parameters, the
                        attn_mask attribute stays float32 and is not part of the state dict)
  clip.safetensors      float32 safetensors written by hand (8-byte header length + JSON + data)
  clip_hf.safetensors   the Hugging Face CLIPModel layout (vision_model.*, text_model.*, q/k/v split,
                        projections as Linear weights [E, W]) in BF16, written by hand
"""
import collections
import json
import os
import struct
import sys
import zipfile

import numpy as np
import torch
import torch.nn as nn

W, IMAGE, PATCH, V_LAYERS, T_LAYERS, VOCAB, CTX, EMBED, HIDDEN = 64, 24, 8, 2, 1, 32, 8, 32, 32


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, attn_mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, width // 64)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(collections.OrderedDict([
            ("c_fc", nn.Linear(width, HIDDEN)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(HIDDEN, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.attn_mask = attn_mask

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=self.attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, attn_mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        g = IMAGE // PATCH
        self.conv1 = nn.Conv2d(3, W, PATCH, PATCH, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(W) * W ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(g * g + 1, W) * W ** -0.5)
        self.ln_pre = nn.LayerNorm(W)
        self.transformer = Transformer(W, V_LAYERS)
        self.ln_post = nn.LayerNorm(W)
        self.proj = nn.Parameter(torch.randn(W, EMBED) * W ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self):
        super().__init__()
        self.visual = VisionTransformer()
        mask = torch.full((CTX, CTX), float("-inf")).triu_(1)
        self.transformer = Transformer(W, T_LAYERS, mask)
        self.token_embedding = nn.Embedding(VOCAB, W)
        self.positional_embedding = nn.Parameter(torch.randn(CTX, W) * 0.01)
        self.ln_final = nn.LayerNorm(W)
        self.text_projection = nn.Parameter(torch.randn(W, EMBED) * W ** -0.5)
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.ln_final(self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image, text):
        return self.logit_scale.exp() * self.visual(image) @ self.encode_text(text).t()


class Config(dict):
    """Stands in for a yacs CfgNode: a dict subclass with attributes, pickled by class reference."""
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.frozen = True


def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, np.ndarray float32); dtype 'F32' or 'BF16' (round to nearest even)."""
    header, blobs, off = {"__metadata__": {"format": "pt", "writer": "make_ckpt_fixtures.py"}}, [], 0
    for name, a in tensors:
        a = np.array(a, dtype=np.float32, order="C")  # keeps 0-d arrays 0-d (ascontiguousarray would not)
        if dtype == "F32":
            raw = a.tobytes()
        else:
            raw = torch.from_numpy(a).to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def strip_debug(path):
    """Rewrite a TorchScript zip without *.debug_pkl entries (stored entries, as torch writes data)."""
    with zipfile.ZipFile(path) as z:
        items = [(i, z.read(i.filename)) for i in z.infolist() if not i.filename.endswith(".debug_pkl")]
    with zipfile.ZipFile(path, "w") as z:
        for info, data in items:
            z.writestr(info, data, compress_type=info.compress_type)


def hf_layout(sd):
    out = []
    towers = [("visual.", "vision_model.", V_LAYERS), ("", "text_model.", T_LAYERS)]
    for src, dst, layers in towers:
        emb = {"visual.": [("conv1.weight", "embeddings.patch_embedding.weight"),
                           ("class_embedding", "embeddings.class_embedding"),
                           ("positional_embedding", "embeddings.position_embedding.weight")],
               "": [("token_embedding.weight", "embeddings.token_embedding.weight"),
                    ("positional_embedding", "embeddings.position_embedding.weight")]}[src]
        for a, b in emb:
            out.append((dst + b, sd[src + a]))
        if src:
            out += [(dst + "pre_layrnorm.weight", sd["visual.ln_pre.weight"]), (dst + "pre_layrnorm.bias", sd["visual.ln_pre.bias"])]
        for i in range(layers):
            p, q = f"{src}transformer.resblocks.{i}.", f"{dst}encoder.layers.{i}."
            for kind in ("weight", "bias"):
                qkv = sd[p + "attn.in_proj_" + kind]
                for j, name in enumerate("qkv"):
                    out.append((q + f"self_attn.{name}_proj.{kind}", qkv[j * W:(j + 1) * W]))
                out.append((q + f"self_attn.out_proj.{kind}", sd[p + f"attn.out_proj.{kind}"]))
                out.append((q + f"layer_norm1.{kind}", sd[p + f"ln_1.{kind}"]))
                out.append((q + f"mlp.fc1.{kind}", sd[p + f"mlp.c_fc.{kind}"]))
                out.append((q + f"mlp.fc2.{kind}", sd[p + f"mlp.c_proj.{kind}"]))
                out.append((q + f"layer_norm2.{kind}", sd[p + f"ln_2.{kind}"]))
        if src:
            out += [(dst + "post_layernorm.weight", sd["visual.ln_post.weight"]), (dst + "post_layernorm.bias", sd["visual.ln_post.bias"])]
        else:
            out += [(dst + "final_layer_norm.weight", sd["ln_final.weight"]), (dst + "final_layer_norm.bias", sd["ln_final.bias"])]
    out.append(("visual_projection.weight", sd["visual.proj"].T))
    out.append(("text_projection.weight", sd["text_projection"].T))
    out.append(("logit_scale", sd["logit_scale"]))
    # position_ids: an int64 buffer older transformers versions saved; the loader must skip it
    return out


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "ckpt")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    model = CLIP().eval()
    with torch.no_grad():  # LayerNorms are 1/0 at init: randomise them so every tensor is distinctive
        for name, p in model.named_parameters():
            if "ln" in name:
                p.add_(torch.randn_like(p) * 0.1)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    npsd = {k: v.numpy() for k, v in sd.items()}

    with open(os.path.join(out, "ref.bin"), "wb") as f:
        f.write(b"XCREF001" + struct.pack("<I", len(sd)))
        for k, v in npsd.items():
            f.write(struct.pack("<I", len(k)) + k.encode() + struct.pack("<I", v.ndim))
            f.write(struct.pack(f"<{v.ndim}q", *v.shape) + np.array(v, dtype=np.float32, order="C").tobytes())

    # torch.save of the state dict, two tensors as non-trivial views
    state = collections.OrderedDict(sd)
    state["visual.proj"] = sd["visual.proj"].t().contiguous().t()          # strides (1, W)
    big = torch.zeros(sd["text_projection"].numel() + 40)
    big[17:17 + sd["text_projection"].numel()] = sd["text_projection"].flatten()
    state["text_projection"] = big[17:17 + sd["text_projection"].numel()].view(W, EMBED)  # offset 17
    assert state["visual.proj"].stride() == (1, W) and state["text_projection"].storage_offset() == 17
    torch.save(state, os.path.join(out, "clip_state.pth"))

    # an X-CLIP-style training checkpoint, DataParallel names, fp16 storages
    opt = torch.optim.AdamW([model.logit_scale], lr=1e-3)
    model.logit_scale.grad = torch.ones([])
    opt.step()
    model.logit_scale.grad = None
    with torch.no_grad():
        model.logit_scale.copy_(sd["logit_scale"])
    cfg = Config(MODEL=Config(ARCH="ViT-B/32"), TRAIN=Config(EPOCHS=30, LR=8e-6))
    torch.save({"model": collections.OrderedDict(("module." + k, v.half()) for k, v in sd.items()),
                "optimizer": opt.state_dict(), "epoch": 3, "max_accuracy": 0.5, "config": cfg},
               os.path.join(out, "clip_nested.pth"))

    scripted = torch.jit.script(model)
    torch.jit.save(scripted, os.path.join(out, "clip_script_fp32.pt"))
    torch.jit.save(scripted.half(), os.path.join(out, "clip_script_fp16.pt"))
    for f in ("clip_script_fp32.pt", "clip_script_fp16.pt"):
        strip_debug(os.path.join(out, f))
    model.float()

    write_safetensors(os.path.join(out, "clip.safetensors"), list(npsd.items()), "F32")
    write_safetensors(os.path.join(out, "clip_hf.safetensors"), hf_layout(npsd), "BF16")

    # self-checks: what torch reads back
    for f in ("clip_state.pth",):
        back = torch.load(os.path.join(out, f))
        assert all(torch.equal(back[k], sd[k]) for k in sd)
    back = torch.jit.load(os.path.join(out, "clip_script_fp32.pt")).state_dict()
    assert list(back.keys()) == list(sd.keys()) and all(torch.equal(back[k], sd[k]) for k in sd)
    back = torch.jit.load(os.path.join(out, "clip_script_fp16.pt")).state_dict()
    assert list(back.keys()) == list(sd.keys()), (list(back.keys()), list(sd.keys()))
    assert all(torch.equal(back[k].float(), sd[k].half().float()) for k in sd)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"wrote {len(os.listdir(out))} files, {total} bytes, {len(sd)} tensors, "
          f"{sum(v.numel() for v in sd.values())} parameters to {out}")


if __name__ == "__main__":
    main()
