#!/usr/bin/python3
"""Writes tests/fixtures/xclip_ablation/<config>/: tiny X-CLIP models with the ablation switches model.cct and
model.mit_layers = 0 (docs/model.md §14), their inputs and the reference logits, features, loss and gradients,
in the format of make_xclip_fixtures.py (in.h5, ref.h5, model.pth; read by tests/test_ablation_parity.c).

Configurations (width 64 everywhere, so one head of 64; image 16, patch 8: a 2x2 grid; 2 vision layers, 1 text
layer, context 16, vocab 64, B=2, T=3, K=4, drop_path 0):
  nocct      cct off, MIT 1 layer, prompts 1 layer
  nomit      cct on,  MIT 0,       prompts 0
  clip       cct off, MIT 0,       prompts 0: CLIP + mean pooling (holds CLIP's tensors only)
  clip_text  as clip with the text tower and logit_scale training (fix_text off): gradients through the text
             features of the prompt-free logits

ref.h5 as in make_xclip_fixtures.py: /logits [B,K], /video_features [B,E], /text_features [K,E], /loss (mean
cross entropy against /labels), /grad/<name> for every tensor that trains (fix_text: visual.*, mit.*,
prompts_*; clip_text: all), computed in float64 from the float32 weights and inputs, stored float32.

Self-checks: the module against a functional re-implementation (make_xclip_fixtures.py's helpers, the absent
modules left out), the state-dict names (no message_* without cct, no mit.* without MIT, no prompts_* without
prompts), every stored gradient non-trivial.

Run with Debian's python3-torch:  /usr/bin/python3 tests/ref/make_ablation_fixtures.py
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_xclip_fixtures as MX  # noqa: E402
import xclip_ref as X  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "xclip_ablation")

TINY = dict(T=3, image=16, patch=8, vision_width=64, vision_layers=2, embed=64, context=16, vocab=64, text_width=64,
            text_layers=1)
CONFIGS = {
    "nocct": dict(seed=1201, eot=[3, 15, 1, 8], model=dict(TINY, cct=False, mit_layers=1, prompt_layers=1)),
    "nomit": dict(seed=1202, eot=[5, 2, 15, 9], model=dict(TINY, cct=True, mit_layers=0, prompt_layers=0)),
    "clip": dict(seed=1203, eot=[4, 11, 1, 15], model=dict(TINY, cct=False, mit_layers=0, prompt_layers=0)),
    "clip_text": dict(seed=1204, eot=[2, 15, 6, 10], text_trains=True,
                      model=dict(TINY, cct=False, mit_layers=0, prompt_layers=0)),
}
B, K = 2, 4


def randomise_for_tests(model, gen):
    """make_xclip_fixtures.randomise_for_tests for the modules present: norms perturbed, biases non-zero, MIT and
    prompt Linears at std 1/sqrt(fan_in), MIT positional embedding std 0.5, alpha per channel, logit_scale 2.9."""
    def randn(p, std):
        return torch.randn(p.shape, generator=gen, dtype=p.dtype) * std

    X.randomise_norms(model, 0.2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.add_(randn(p, 0.05))
            if name.startswith(("mit.", "prompts_generator.")) and p.ndim == 2 and "in_proj" not in name:
                p.copy_(randn(p, p.shape[1] ** -0.5))
        if model.mit is not None:
            model.mit.positional_embedding.copy_(randn(model.mit.positional_embedding, 0.5))
        if model.prompts_generator is not None:
            alpha = model.prompts_generator.alpha
            alpha.copy_(0.1 + 0.9 * torch.rand(alpha.shape, generator=gen, dtype=alpha.dtype))
        model.logit_scale.fill_(2.9)


def functional(sd, video, tokens):
    """make_xclip_fixtures.functional_xclip with the absent modules left out (decided by the tensors present):
    (video_features, text_features, logits)."""
    Bv, T, C, H, _ = video.shape
    w = sd["visual.conv1.weight"].shape[0]
    P = sd["visual.conv1.weight"].shape[-1]
    G = H // P
    fr = video.reshape(Bv * T, C, G, P, G, P).permute(0, 2, 4, 1, 3, 5).reshape(Bv * T, G * G, C * P * P)
    x = fr @ sd["visual.conv1.weight"].reshape(w, -1).t()
    x = torch.cat([sd["visual.class_embedding"].expand(Bv * T, 1, w), x], 1) + sd["visual.positional_embedding"]
    x = MX.f_ln(x, sd, "visual.ln_pre")
    L = x.shape[1]
    for i in range(MX.count(sd, "visual.transformer.resblocks.")):
        p = f"visual.transformer.resblocks.{i}"
        if p + ".message_fc.weight" in sd:
            msg = MX.f_lin(x[:, 0], sd, p + ".message_fc").reshape(Bv, T, w)
            msg = msg + MX.f_mha(MX.f_ln(msg, sd, p + ".message_ln"), sd, p + ".message_attn")
            y = torch.cat([x, msg.reshape(Bv * T, 1, w)], 1)
            y = y + MX.f_mha(MX.f_ln(y, sd, p + ".ln_1"), sd, p + ".attn")
            x = y[:, :L]
            x = x + MX.f_mlp(MX.f_ln(x, sd, p + ".ln_2"), sd, p + ".mlp")
        else:
            x = MX.f_block(x, sd, p)
    frames = (MX.f_ln(x[:, 0], sd, "visual.ln_post") @ sd["visual.proj"]).reshape(Bv, T, -1)
    E = frames.shape[-1]
    if "mit.positional_embedding" in sd:
        y = frames + sd["mit.positional_embedding"]
        for j in range(MX.count(sd, "mit.resblocks.")):
            y = MX.f_block(y, sd, f"mit.resblocks.{j}")
        video_features = (y + frames).mean(1)
    else:
        video_features = frames.mean(1)
    Kt, S = tokens.shape
    t = sd["token_embedding.weight"][tokens] + sd["positional_embedding"]
    causal = torch.full((S, S), float("-inf"), dtype=t.dtype).triu(1)
    for i in range(MX.count(sd, "transformer.resblocks.")):
        t = MX.f_block(t, sd, f"transformer.resblocks.{i}", causal)
    t = MX.f_ln(t, sd, "ln_final")
    text_features = t[torch.arange(Kt), tokens.argmax(-1)] @ sd["text_projection"]
    cls = text_features.expand(Bv, Kt, E)
    if "prompts_generator.alpha" in sd:
        ctx = (MX.f_ln(x[:, 1:], sd, "prompts_visual_ln") @ sd["prompts_visual_proj"]).reshape(Bv, T, L - 1, E).mean(1)
        vis = MX.f_ln(ctx, sd, "prompts_generator.norm")
        q, h = cls, E // 64
        for j in range(MX.count(sd, "prompts_generator.decoder.")):
            p = f"prompts_generator.decoder.{j}"
            n1 = MX.f_ln(q, sd, p + ".norm1")
            qh = MX.f_lin(n1, sd, p + ".cross_attn.q_proj", False).reshape(Bv, Kt, h, E // h).transpose(1, 2)
            kh = MX.f_lin(vis, sd, p + ".cross_attn.k_proj", False).reshape(Bv, -1, h, E // h).transpose(1, 2)
            vh = MX.f_lin(vis, sd, p + ".cross_attn.v_proj", False).reshape(Bv, -1, h, E // h).transpose(1, 2)
            o = MX.f_softmax_attn(qh, kh, vh).transpose(1, 2).reshape(Bv, Kt, E)
            q = q + MX.f_lin(o, sd, p + ".cross_attn.proj")
            q = q + MX.f_mlp(MX.f_ln(q, sd, p + ".norm3"), sd, p + ".mlp", "0", "3")
        cls = text_features + sd["prompts_generator.alpha"] * q
    v = video_features / video_features.norm(dim=-1, keepdim=True)
    c = cls / cls.norm(dim=-1, keepdim=True)
    logits = math.exp(sd["logit_scale"].item()) * (c * v[:, None, :]).sum(-1)
    return video_features, text_features, logits


def model_from(cfg, sd):
    model = X.XCLIP(**cfg["model"], prompts_alpha=0.1, drop_path=0.0, use_cache=not cfg.get("text_trains", False))
    model.load_state_dict(sd)
    model = model.double().train()
    if not cfg.get("text_trains", False):
        X.fix_text(model)
    return model


def make(name, cfg):
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    m = cfg["model"]
    torch.manual_seed(cfg["seed"])
    model = X.XCLIP(**m, prompts_alpha=0.1, drop_path=0.0)
    randomise_for_tests(model, torch.Generator().manual_seed(cfg["seed"] + 1))
    sd = {k: v.detach().clone().float().contiguous() for k, v in model.state_dict().items()}
    names = list(sd)
    assert m["cct"] or not any(".message_" in n for n in names), "message tensors without cct"
    assert m["mit_layers"] or not any(n.startswith("mit.") for n in names), "mit tensors without MIT"
    assert m["prompt_layers"] or not any(n.startswith("prompts_") for n in names), "prompt tensors without prompts"

    rng = np.random.RandomState(cfg["seed"])
    video = rng.uniform(-2, 2, size=(B, m["T"], 3, m["image"], m["image"])).astype(np.float32)
    tokens = MX.make_tokens(rng, K, m["context"], m["vocab"], cfg["eot"])
    labels = rng.randint(0, K, size=B).astype(np.int64)
    v64, tok, lab = torch.from_numpy(video).double(), torch.from_numpy(tokens).long(), torch.from_numpy(labels)

    model = model_from(cfg, sd)
    logits = model(v64, tok)
    loss = F.cross_entropy(logits, lab)
    loss.backward()
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    grads = {n: p.grad.detach() for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        video_features, _ = model.encode_video(v64)
        text_features = model.encode_text(tok)
    fv, ft, fl = functional({k: v.double() for k, v in sd.items()}, v64, tok)
    errs = (MX.rel(fv, video_features), MX.rel(ft, text_features), MX.rel(fl, logits.detach()))
    print(f"{name}: module vs functional (video, text, logits) max rel diff {errs[0]:.1e} {errs[1]:.1e} {errs[2]:.1e}")
    assert max(errs) < 1e-12, "module and functional re-implementation disagree"
    gnorm = {n: (g.norm() / math.sqrt(g.numel())).item() for n, g in grads.items()}
    print(f"{name}: {len(names)} tensors, loss {loss.item():.6f}, {len(grads)} gradients, rms "
          f"{min(gnorm.values()):.2e} ({min(gnorm, key=gnorm.get)}) .. {max(gnorm.values()):.2e}")
    for n in trained:
        assert gnorm[n] > 1e-6, f"gradient of {n} is trivial"

    torch.save(sd, os.path.join(out, "model.pth"))
    with h5py.File(os.path.join(out, "in.h5"), "w") as f:
        f["video"] = video
        f["tokens"] = tokens
        f["labels"] = labels
    gz = dict(compression="gzip", compression_opts=9, shuffle=True)
    with h5py.File(os.path.join(out, "ref.h5"), "w") as f:
        f["logits"] = logits.detach().float().numpy()
        f["video_features"] = video_features.float().numpy()
        f["text_features"] = text_features.float().numpy()
        f["loss"] = np.float32(loss.item())
        for n in trained:
            f.create_dataset(f"grad/{n}", data=grads[n].float().numpy(), **(gz if grads[n].ndim else {}))  # logit_scale: 0-d
    with open(os.path.join(out, "names.txt"), "w") as f:
        f.write("".join(k + "\n" for k in names))


def main():
    torch.set_num_threads(2)
    todo = sys.argv[1:] or list(CONFIGS)
    for name in todo:
        make(name, CONFIGS[name])
    print(f"wrote {os.path.relpath(OUT)}/{{{','.join(todo)}}}", file=sys.stderr)


if __name__ == "__main__":
    main()
