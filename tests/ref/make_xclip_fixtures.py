#!/usr/bin/python3
"""Writes tests/fixtures/xclip/<config>/: a small X-CLIP, inputs, and its reference logits, loss, gradients and
AdamW steps, in the xclip-dump contract.

Configurations (2 heads everywhere: vision width, embed dim and text width 128; context 77; vocab 64, EOT = 63;
drop_path 0):
  t3  B=2 T=3 image 32 patch 8 (grid 4x4), vision layers 2, text layers 1, mit layers 1, prompt layers 2, K=5
  t8  B=2 T=8 image 24 patch 8 (grid 3x3), vision layers 1, text layers 1, mit layers 2, prompt layers 1, K=6

Per configuration:
  model.pth  torch.save(state_dict) with the official names, float32
  in.h5      /video float32 [B,T,3,H,W] (already normalised), /tokens int32 [K,77], /labels int64 [B]
  ref.h5     computed in float64 from the float32 weights and inputs, stored float32:
             /logits [B,K]; /video_features [B,E] (MIT output, not normalised); /text_features [K,E] (text tower,
             before the prompts); /loss (plain mean cross entropy of /logits against /labels, train mode);
             /grad/<name> for every tensor that trains under fix_text (visual.*, mit.*, prompts_*);
             /adamw/lr (base lr), /adamw/losses [4] (loss on the same batch before each of 3 AdamW steps and after
             the third, official groups and fix_text, constant lr, float32 run), /adamw/param/<name> after 3 steps.
  t3/names.txt  the state-dict names, one per line, in state_dict() order.
  t3/groups.txt every tensor that trains under fix_text: "<name> <lr multiplier 1|10> <weight decay 1|0>".

The AdamW run is float32, like the C side, at the constant base lr 1e-3 (10x = 1e-2 for message_/mit/prompts):
large steps for these models, the loss rises after the first step and then falls. The float32 losses differ from
the same run in float64 by up to 2.8e-5 relative (t3) and 2.7e-6 (t8), the stored parameters by up to 1.2e-4 of
their largest element (t3 message_fc.weight; see LOSS_F32_VS_F64, measured when the fixtures were written): Adam's
first step is sign(g) * lr for every element, so rounding in small gradients moves whole steps. At lr 1e-4 the
losses fall monotonically and float32 vs float64 is 4.5e-6 (t3). Weight decay 0.001 changes a parameter by
lr * 0.001 relative per step, below that noise: the decay and lr rules are given exactly by t3/groups.txt instead.

Self-checks (the script fails if one does not hold): the XCLIP module against an independent functional
re-implementation written here without nn.Modules; every stored gradient non-trivial; the AdamW losses falling.
With --official DIR (a checkout's X-CLIP/ folder) it also runs the official modules, with small import stubs for
timm/einops/ftfy/tqdm, on the same weights and compares names, logits, gradients and optimiser groups.

Run with Debian's python3-torch:  /usr/bin/python3 tests/ref/make_xclip_fixtures.py [--official DIR]
"""
import argparse
import importlib
import math
import os
import sys
import types

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xclip_ref as X  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "xclip")

CONFIGS = {
    "t3": dict(B=2, K=5, eot=[5, 76, 1, 20, 9], seed=303,
               model=dict(T=3, image=32, patch=8, vision_width=128, vision_layers=2, embed=128, context=77, vocab=64,
                          text_width=128, text_layers=1, mit_layers=1, prompt_layers=2)),
    "t8": dict(B=2, K=6, eot=[3, 12, 76, 1, 40, 7], seed=808,
               model=dict(T=8, image=24, patch=8, vision_width=128, vision_layers=1, embed=128, context=77, vocab=64,
                          text_width=128, text_layers=1, mit_layers=2, prompt_layers=1)),
}
LR = 1e-3
ADAMW_PARAMS = ["visual.conv1.weight", "visual.transformer.resblocks.0.message_fc.weight",
                "mit.positional_embedding", "prompts_generator.alpha"]
# Measured when the fixtures were written: max |loss_f32 - loss_f64| / |loss_f64| over the 4 AdamW losses.
LOSS_F32_VS_F64 = {"t3": 2.8e-5, "t8": 2.7e-6}


# ---- model ------------------------------------------------------------------------------------------------------

def randomise_for_tests(model, gen):
    """After the official initialisation, make every tensor matter so a slip anywhere shows in the numbers:
    LayerNorms perturbed, biases non-zero, alpha uniform in 0.1..1 per channel, MIT and prompt-generator
    Linears at std 1/sqrt(fan_in) instead of 0.02, the MIT positional embedding at std 0.5, and logit_scale
    away from log(1/0.07) so a hard-coded constant fails."""
    def randn(p, std):
        return torch.randn(p.shape, generator=gen, dtype=p.dtype) * std

    X.randomise_norms(model, 0.2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.add_(randn(p, 0.05))
            if (name.startswith("mit.") or name.startswith("prompts_generator.")) and p.ndim == 2 \
                    and "in_proj" not in name:
                p.copy_(randn(p, p.shape[1] ** -0.5))
        if model.mit is not None:  # (mit_layers 0 / prompt_layers 0: no such module)
            model.mit.positional_embedding.copy_(randn(model.mit.positional_embedding, 0.5))
        if model.prompts_generator is not None:
            alpha = model.prompts_generator.alpha
            alpha.copy_(0.1 + 0.9 * torch.rand(alpha.shape, generator=gen, dtype=alpha.dtype))
        model.logit_scale.fill_(2.9)


def make_tokens(rng, K, S, vocab, eot_positions):
    tok = np.zeros((K, S), dtype=np.int32)
    for k, e in enumerate(eot_positions):
        tok[k, 0] = vocab - 2  # stands in for SOT
        tok[k, 1:e] = rng.randint(1, vocab - 2, size=e - 1)
        tok[k, e] = vocab - 1  # EOT: the largest id
    return tok


# ---- independent functional re-implementation (no nn.Modules) -----------------------------------------------------

def f_ln(x, sd, p):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * sd[p + ".weight"] + sd[p + ".bias"]


def f_lin(x, sd, p, bias=True):
    y = x @ sd[p + ".weight"].t()
    return y + sd[p + ".bias"] if bias else y


def f_softmax_attn(q, k, v, mask=None):
    """q (..., h, n, d), k/v (..., h, m, d) -> (..., h, n, d), scale d^-0.5."""
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s + mask
    s = torch.exp(s - s.max(-1, keepdim=True).values)
    return (s / s.sum(-1, keepdim=True)) @ v


def f_mha(x, sd, p, mask=None):
    """Self-attention over the second-last axis of x (..., n, w): nn.MultiheadAttention's weights."""
    w = x.shape[-1]
    h = w // 64
    qkv = x @ sd[p + ".in_proj_weight"].t() + sd[p + ".in_proj_bias"]
    q, k, v = qkv[..., :w], qkv[..., w:2 * w], qkv[..., 2 * w:]

    def heads(t):
        return t.reshape(t.shape[:-1] + (h, w // h)).transpose(-2, -3)
    o = f_softmax_attn(heads(q), heads(k), heads(v), mask).transpose(-2, -3)
    o = o.reshape(o.shape[:-2] + (w,))
    return o @ sd[p + ".out_proj.weight"].t() + sd[p + ".out_proj.bias"]


def f_mlp(x, sd, p, a="c_fc", b="c_proj"):
    h = f_lin(x, sd, f"{p}.{a}")
    return f_lin(h * torch.sigmoid(1.702 * h), sd, f"{p}.{b}")


def f_block(x, sd, p, mask=None):
    x = x + f_mha(f_ln(x, sd, p + ".ln_1"), sd, p + ".attn", mask)
    return x + f_mlp(f_ln(x, sd, p + ".ln_2"), sd, p + ".mlp")


def count(sd, prefix):
    return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix)})


def functional_xclip(sd, video, tokens):
    """Batch-first throughout, loops spelled out: (video_features, text_features, logits)."""
    B, T, C, H, W_ = video.shape
    w = sd["visual.conv1.weight"].shape[0]
    P = sd["visual.conv1.weight"].shape[-1]
    G = H // P
    # patches row-major over the grid, each flattened in (c, i, j) order as the conv weight
    fr = video.reshape(B * T, C, G, P, G, P).permute(0, 2, 4, 1, 3, 5).reshape(B * T, G * G, C * P * P)
    x = fr @ sd["visual.conv1.weight"].reshape(w, -1).t()                        # (BT, N, w)
    x = torch.cat([sd["visual.class_embedding"].expand(B * T, 1, w), x], 1) + sd["visual.positional_embedding"]
    x = f_ln(x, sd, "visual.ln_pre")                                               # (BT, L, w)
    L = x.shape[1]
    for i in range(count(sd, "visual.transformer.resblocks.")):
        p = f"visual.transformer.resblocks.{i}"
        msg = f_lin(x[:, 0], sd, p + ".message_fc").reshape(B, T, w)               # frame b*T+t -> [b, t]
        msg = msg + f_mha(f_ln(msg, sd, p + ".message_ln"), sd, p + ".message_attn")
        y = torch.cat([x, msg.reshape(B * T, 1, w)], 1)                            # message token last
        y = y + f_mha(f_ln(y, sd, p + ".ln_1"), sd, p + ".attn")
        x = y[:, :L]
        x = x + f_mlp(f_ln(x, sd, p + ".ln_2"), sd, p + ".mlp")
    frames = (f_ln(x[:, 0], sd, "visual.ln_post") @ sd["visual.proj"]).reshape(B, T, -1)
    E = frames.shape[-1]
    ctx = (f_ln(x[:, 1:], sd, "prompts_visual_ln") @ sd["prompts_visual_proj"]).reshape(B, T, L - 1, E).mean(1)
    y = frames + sd["mit.positional_embedding"]
    for j in range(count(sd, "mit.resblocks.")):
        y = f_block(y, sd, f"mit.resblocks.{j}")
    video_features = (y + frames).mean(1)
    # text
    K, S = tokens.shape
    t = sd["token_embedding.weight"][tokens] + sd["positional_embedding"]
    causal = torch.full((S, S), float("-inf"), dtype=t.dtype).triu(1)
    for i in range(count(sd, "transformer.resblocks.")):
        t = f_block(t, sd, f"transformer.resblocks.{i}", causal)
    t = f_ln(t, sd, "ln_final")
    text_features = t[torch.arange(K), tokens.argmax(-1)] @ sd["text_projection"]
    # prompts
    vis = f_ln(ctx, sd, "prompts_generator.norm")                                  # (B, N, E)
    q = text_features.expand(B, K, E)
    h = E // 64
    for j in range(count(sd, "prompts_generator.decoder.")):
        p = f"prompts_generator.decoder.{j}"
        n1 = f_ln(q, sd, p + ".norm1")
        qh = f_lin(n1, sd, p + ".cross_attn.q_proj", False).reshape(B, K, h, E // h).transpose(1, 2)
        kh = f_lin(vis, sd, p + ".cross_attn.k_proj", False).reshape(B, -1, h, E // h).transpose(1, 2)
        vh = f_lin(vis, sd, p + ".cross_attn.v_proj", False).reshape(B, -1, h, E // h).transpose(1, 2)
        o = f_softmax_attn(qh, kh, vh).transpose(1, 2).reshape(B, K, E)
        q = q + f_lin(o, sd, p + ".cross_attn.proj")
        q = q + f_mlp(f_ln(q, sd, p + ".norm3"), sd, p + ".mlp", "0", "3")
    cls = text_features + sd["prompts_generator.alpha"] * q
    v = video_features / video_features.norm(dim=-1, keepdim=True)
    c = cls / cls.norm(dim=-1, keepdim=True)
    logits = math.exp(sd["logit_scale"].item()) * (c * v[:, None, :]).sum(-1)
    return video_features, text_features, logits


# ---- optional: the official code -----------------------------------------------------------------------------

def official_check(xclip_dir, cfg, sd32, video, tokens, labels):
    """Runs microsoft/VideoX X-CLIP's own modules on the same weights (float64) and compares."""
    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules.setdefault(name, m)

    def unavailable(*a, **k):
        raise RuntimeError("stub")
    stub("timm"), stub("timm.models"), stub("timm.models.layers", trunc_normal_=torch.nn.init.trunc_normal_)
    stub("timm.scheduler"), stub("timm.scheduler.cosine_lr", CosineLRScheduler=None)
    stub("einops", rearrange=unavailable), stub("ftfy", fix_text=lambda s: s), stub("tqdm", tqdm=unavailable)
    sys.path.insert(0, xclip_dir)
    importlib.import_module("clip")  # first: the official packages import each other circularly
    from models.xclip import XCLIP as OfficialXCLIP
    from utils.optimizer import build_optimizer as official_build_optimizer
    m = cfg["model"]
    off = OfficialXCLIP(m["embed"], m["image"], m["vision_layers"], m["vision_width"], m["patch"], m["context"],
                        m["vocab"], m["text_width"], m["text_width"] // 64, m["text_layers"], T=m["T"],
                        mit_layers=m["mit_layers"], prompts_alpha=0.1, prompts_layers=m["prompt_layers"])
    assert list(off.state_dict().keys()) == list(sd32.keys()), "state-dict names differ from the official ones"
    off.load_state_dict(sd32)
    off = off.double().train()
    ns = types.SimpleNamespace
    opt_off = official_build_optimizer(ns(MODEL=ns(FIX_TEXT=True), TRAIN=ns(WEIGHT_DECAY=0.001, LR=LR)), off)
    logits = off(video, tokens)
    F.cross_entropy(logits, labels).backward()
    names = {id(p): n for n, p in off.named_parameters()}
    groups = [(g["lr"], g["weight_decay"], [names[id(p)] for p in g["params"]]) for g in opt_off.param_groups]
    grads = {n: p.grad for n, p in off.named_parameters() if p.grad is not None}
    return logits.detach(), grads, groups


# ---- fixtures -------------------------------------------------------------------------------------------------

def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def build(cfg):
    torch.manual_seed(cfg["seed"])
    model = X.XCLIP(**cfg["model"], prompts_alpha=0.1, drop_path=0.0)
    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    randomise_for_tests(model, gen)
    return {k: v.detach().clone().float().contiguous() for k, v in model.state_dict().items()}


def model_from(cfg, sd, dtype):
    model = X.XCLIP(**cfg["model"], prompts_alpha=0.1, drop_path=0.0)
    model.load_state_dict(sd)
    model = model.to(dtype).train()
    X.fix_text(model)
    return model


def adamw_run(cfg, sd, video, tokens, labels, dtype):
    model = model_from(cfg, sd, dtype)
    opt = X.build_optimizer(model, LR)
    v, y = video.to(dtype), labels
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(model(v, tokens), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(F.cross_entropy(model(v, tokens), y).item())
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    return np.array(losses), params, opt, model


def make(name, cfg, official_dir):
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    m = cfg["model"]
    rng = np.random.RandomState(cfg["seed"])
    sd = build(cfg)
    video = rng.uniform(-2, 2, size=(cfg["B"], m["T"], 3, m["image"], m["image"])).astype(np.float32)
    tokens = make_tokens(rng, cfg["K"], m["context"], m["vocab"], cfg["eot"])
    labels = rng.randint(0, cfg["K"], size=cfg["B"]).astype(np.int64)
    v64, tok, lab = torch.from_numpy(video).double(), torch.from_numpy(tokens).long(), torch.from_numpy(labels)

    # float64 reference on the float32 weights and inputs
    model = model_from(cfg, sd, torch.float64)
    logits = model(v64, tok)
    loss = F.cross_entropy(logits, lab)
    loss.backward()
    grads = {n: p.grad.detach() for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():
        video_features, _ = model.encode_video(v64)
        text_features = model.encode_text(tok)
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trained == [n for n in sd if n.startswith(("visual.", "mit.", "prompts_"))]
    assert all(grads[n] is not None for n in trained)

    # self-check against the functional re-implementation
    sd64 = {k: v.double() for k, v in sd.items()}
    fv, ft, fl = functional_xclip(sd64, v64, tok)
    errs = (rel(fv, video_features), rel(ft, text_features), rel(fl, logits.detach()))
    print(f"{name}: module vs functional (video, text, logits) max rel diff {errs[0]:.1e} {errs[1]:.1e} {errs[2]:.1e}")
    assert max(errs) < 1e-12, "module and functional re-implementation disagree"

    # every gradient non-trivial: no tensor whose gradient is zero or negligible next to the others
    gnorm = {n: (g.norm() / math.sqrt(g.numel())).item() for n, g in grads.items()}
    weakest = sorted(gnorm, key=gnorm.get)[:3]
    print(f"{name}: loss {loss.item():.6f}, {len(grads)} gradients, rms from {gnorm[weakest[0]]:.2e} ({weakest[0]}) "
          f"to {max(gnorm.values()):.2e}")
    for n, g in grads.items():
        assert gnorm[n] > 1e-6, f"gradient of {n} is trivial"
    # Structural zeros (true of the official model too, whatever the weights): the key part of every
    # in_proj_bias (softmax ignores a constant added to all scores of a query), and the query and key parts of
    # the FIRST block's message_attn: before block 0 the class token is class_embedding + positional_embedding[0]
    # through ln_pre, the same for every frame, so the T message tokens are equal and the attention is uniform.
    # These slices hold float64 rounding noise (|g| < 1e-8 max|g|): compare them with an absolute tolerance.
    for n, g in grads.items():
        small = (g.abs() < 1e-8 * g.abs().max()).double().mean().item()
        if small > 0.01:
            print(f"{name}:   {n}: {100 * small:.0f}% of the gradient is structurally zero")

    # AdamW: float32 (stored) and float64 (for the comparison only)
    losses32, params32, opt, model32 = adamw_run(cfg, sd, v64.float(), tok, lab, torch.float32)
    losses64, _, _, _ = adamw_run(cfg, sd, v64, tok, lab, torch.float64)
    print(f"{name}: AdamW losses f32 {np.array2string(losses32, precision=7)}, max rel diff to f64 "
          f"{np.max(np.abs(losses32 - losses64) / np.abs(losses64)):.1e}")
    assert np.all(np.isfinite(losses32)) and losses32[-1] < losses32[0]
    print(f"{name}: AdamW groups (lr, weight decay, size): "
          + ", ".join(f"({g['lr']:g}, {g['weight_decay']:g}, {len(g['params'])})" for g in opt.param_groups))

    if official_dir:
        ol, og, ogroups = official_check(official_dir, cfg, sd, v64, tok, lab)
        gerr = max(rel(grads[n], og[n]) for n in grads)
        assert set(og) == set(grads)
        names = {id(p): n for n, p in model.named_parameters()}
        mine = [(g["lr"], g["weight_decay"], [names[id(p)] for p in g["params"]])
                for g in X.build_optimizer(model, LR).param_groups]
        print(f"{name}: official code: logits rel diff {rel(logits.detach(), ol):.1e}, gradients {gerr:.1e}, "
              f"optimiser groups {'equal' if mine == ogroups else 'DIFFERENT'}")
        assert rel(logits.detach(), ol) < 1e-12 and gerr < 1e-10 and mine == ogroups

    # files
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
            f.create_dataset(f"grad/{n}", data=grads[n].float().numpy(), **gz)
        f["adamw/lr"] = np.float32(LR)
        f["adamw/losses"] = losses32.astype(np.float32)
        for n in ADAMW_PARAMS:
            f.create_dataset(f"adamw/param/{n}", data=params32[n].numpy(), **gz)
    if name == "t3":
        with open(os.path.join(out, "names.txt"), "w") as f:
            f.write("".join(k + "\n" for k in sd))
        # the official AdamW groups spelled out: name, lr multiplier, weight decay applied (1) or not (0)
        names = {id(p): n for n, p in model32.named_parameters()}
        order = {n: i for i, n in enumerate(sd)}
        rows = sorted((order[names[id(p)]], f"{names[id(p)]} {round(g['lr'] / LR)} {int(g['weight_decay'] > 0)}")
                      for g in opt.param_groups for p in g["params"])
        with open(os.path.join(out, "groups.txt"), "w") as f:
            f.write("".join(r + "\n" for _, r in rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", metavar="DIR", help="the official X-CLIP/ folder, to compare with its modules")
    ap.add_argument("configs", nargs="*", default=list(CONFIGS))
    args = ap.parse_args()
    torch.set_num_threads(2)
    for name in args.configs:
        make(name, CONFIGS[name], args.official)
    print(f"wrote {os.path.relpath(OUT)}/{{{','.join(args.configs)}}}", file=sys.stderr)


if __name__ == "__main__":
    main()
