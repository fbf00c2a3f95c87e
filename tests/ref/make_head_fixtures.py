#!/usr/bin/python3
"""Writes tests/fixtures/xclip_head/<config>/: small X-CLIPs with xclip.c's model.head / model.fix_vision switches,
inputs, and their reference logits, loss, gradients (and AdamW steps), for tests/test_head_parity.c.

Configurations (2 heads: vision width and embed dim 128; T=3, image 32, patch 8 (grid 4x4), MIT 1 layer;
drop_path 0):
  linear  head='linear', K=5, 2 vision layers, prompt_layers 0: class scores = head(video features); every tensor trains
          (visual.*, mit.*, head.*; there is no text tower, logit_scale or prompt generator).
  text    head='text', fix_vision=True, fix_text off (use_cache False), 1 vision layer, prompt_layers 1,
          text layers 1, K=4:
          the "text branch": only the text tower and logit_scale train; the frozen prompt generator still sits
          between the text features and the logits (the gradients pass through it).

Per configuration (the format of tests/fixtures/xclip, make_xclip_fixtures.py):
  model.pth  torch.save(state_dict), float32
  in.h5      /video float32 [B,T,3,H,W], /labels int64 [B], and for `text` /tokens int32 [K,77]
  ref.h5     float64 computation on the float32 weights and inputs, stored float32: /logits [B,K],
             /video_features [B,E], /loss (mean cross entropy), /grad/<name> for every trainable tensor;
             `linear` also /adamw/lr, /adamw/losses [4] and /adamw/param/<name> after 3 AdamW steps (float32 run,
             constant lr 1e-4, xclip_ref.param_groups: head.* at 10x lr, decay on head.weight only).
  trained.txt  the trainable tensors: "<name> <lr multiplier 1|10> <weight decay 1|0>".

Self-checks: every stored gradient non-trivial; under fix_vision no visual/mit/prompts/message tensor has a
gradient (p.grad is None after backward), and the linear model's logits equal head(video_features) recomputed by
hand; the AdamW losses fall overall.

Run with Debian's python3-torch:  /usr/bin/python3 tests/ref/make_head_fixtures.py
"""
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xclip_ref as X  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "xclip_head")
BASE = dict(T=3, image=32, patch=8, vision_width=128, vision_layers=2, embed=128, context=77, vocab=64,
            text_width=128, text_layers=1, mit_layers=1)
CONFIGS = {
    "linear": dict(B=2, K=5, seed=505, model=dict(BASE, prompt_layers=0, head="linear", num_classes=5)),
    "text": dict(B=2, K=4, eot=[6, 76, 2, 15], seed=606,
                 model=dict(BASE, vision_layers=1, prompt_layers=1, head="text", fix_vision=True, use_cache=False)),
}
LR = 1e-4
ADAMW_PARAMS = ["visual.conv1.weight", "mit.positional_embedding", "head.weight", "head.bias"]


def randomise(model, gen):
    """As make_xclip_fixtures.randomise_for_tests: every tensor matters (LayerNorms and biases perturbed, MIT and
    prompt Linears at 1/sqrt(fan_in), MIT positional embedding std 0.5, alpha 0.1..1, logit_scale 2.9)."""
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
        model.mit.positional_embedding.copy_(randn(model.mit.positional_embedding, 0.5))
        if model.head_kind == "text":
            alpha = model.prompts_generator.alpha
            alpha.copy_(0.1 + 0.9 * torch.rand(alpha.shape, generator=gen, dtype=alpha.dtype))
            model.logit_scale.fill_(2.9)


def make_tokens(rng, K, S, vocab, eot_positions):
    tok = np.zeros((K, S), dtype=np.int32)
    for k, e in enumerate(eot_positions):
        tok[k, 0] = vocab - 2
        tok[k, 1:e] = rng.randint(1, vocab - 2, size=e - 1)
        tok[k, e] = vocab - 1
    return tok


def build(cfg):
    torch.manual_seed(cfg["seed"])
    model = X.XCLIP(**cfg["model"])
    randomise(model, torch.Generator().manual_seed(cfg["seed"] + 1))
    return {k: v.detach().clone().float().contiguous() for k, v in model.state_dict().items()}


def model_from(cfg, sd, dtype):
    model = X.XCLIP(**cfg["model"])  # fix_vision (a constructor option) freezes at construction
    model.load_state_dict(sd)
    return model.to(dtype).train()


def adamw_run(cfg, sd, video, tokens, labels, dtype):
    model = model_from(cfg, sd, dtype)
    opt = X.build_optimizer(model, LR)
    v = video.to(dtype)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(model(v, tokens), labels)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    with torch.no_grad():
        losses.append(F.cross_entropy(model(v, tokens), labels).item())
    return np.array(losses), {n: p.detach().clone() for n, p in model.named_parameters()}, opt, model


def make(name, cfg):
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    m = cfg["model"]
    rng = np.random.RandomState(cfg["seed"])
    sd = build(cfg)
    video = rng.uniform(-2, 2, size=(cfg["B"], m["T"], 3, m["image"], m["image"])).astype(np.float32)
    tokens = make_tokens(rng, cfg["K"], m["context"], m["vocab"], cfg["eot"]) if "eot" in cfg else None
    labels = rng.randint(0, cfg["K"], size=cfg["B"]).astype(np.int64)
    v64, lab = torch.from_numpy(video).double(), torch.from_numpy(labels)
    tok = torch.from_numpy(tokens).long() if tokens is not None else None

    model = model_from(cfg, sd, torch.float64)
    logits = model(v64, tok)
    loss = F.cross_entropy(logits, lab)
    loss.backward()
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    grads = {n: p.grad.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert not frozen_with_grad, frozen_with_grad
    with torch.no_grad():
        video_features, _ = model.encode_video(v64)
    if m["head"] == "linear":
        assert trained == list(sd), "the linear-head model trains every tensor"
        sd64 = {k: v.double() for k, v in sd.items()}
        by_hand = video_features @ sd64["head.weight"].t() + sd64["head.bias"]
        assert (by_hand - logits.detach()).abs().max() < 1e-12
    else:
        vision = [n for n in sd if n.startswith("visual.") or "mit" in n or "prompts" in n or "message_" in n]
        assert vision and all(n not in trained for n in vision)
        assert "logit_scale" in trained and "token_embedding.weight" in trained
        assert set(trained) == set(sd) - set(vision)
    gnorm = {n: (g.norm() / math.sqrt(g.numel())).item() for n, g in grads.items()}
    weakest = min(gnorm, key=gnorm.get)
    print(f"{name}: loss {loss.item():.6f}, {len(grads)} gradients, rms from {gnorm[weakest]:.2e} ({weakest}) to "
          f"{max(gnorm.values()):.2e}")
    for n in grads:
        assert gnorm[n] > 1e-6, f"gradient of {n} is trivial"

    gz = dict(compression="gzip", compression_opts=9, shuffle=True)
    torch.save(sd, os.path.join(out, "model.pth"))
    with h5py.File(os.path.join(out, "in.h5"), "w") as f:
        f["video"] = video
        f["labels"] = labels
        if tokens is not None:
            f["tokens"] = tokens
    with h5py.File(os.path.join(out, "ref.h5"), "w") as f:
        f["logits"] = logits.detach().float().numpy()
        f["video_features"] = video_features.float().numpy()
        f["loss"] = np.float32(loss.item())
        for n in trained:
            f.create_dataset(f"grad/{n}", data=grads[n].float().numpy(), **(gz if grads[n].ndim else {}))
        if m["head"] == "linear":
            losses32, params32, opt, model32 = adamw_run(cfg, sd, v64.float(), tok, lab, torch.float32)
            losses64, _, _, _ = adamw_run(cfg, sd, v64, tok, lab, torch.float64)
            print(f"{name}: AdamW losses f32 {np.array2string(losses32, precision=7)}, max rel diff to f64 "
                  f"{np.max(np.abs(losses32 - losses64) / np.abs(losses64)):.1e}")
            assert np.all(np.isfinite(losses32)) and losses32[-1] < losses32[0]
            f["adamw/lr"] = np.float32(LR)
            f["adamw/losses"] = losses32.astype(np.float32)
            for n in ADAMW_PARAMS:
                f.create_dataset(f"adamw/param/{n}", data=params32[n].numpy(), **gz)
    # the optimiser groups of the trainable tensors (xclip_ref.param_groups)
    opt = X.build_optimizer(model, LR)
    names = {id(p): n for n, p in model.named_parameters()}
    order = {n: i for i, n in enumerate(sd)}
    rows = sorted((order[names[id(p)]], f"{names[id(p)]} {round(g['lr'] / LR)} {int(g['weight_decay'] > 0)}")
                  for g in opt.param_groups for p in g["params"])
    with open(os.path.join(out, "trained.txt"), "w") as f:
        f.write("".join(r + "\n" for _, r in rows))


def main():
    torch.set_num_threads(2)
    for name in sys.argv[1:] or list(CONFIGS):
        make(name, CONFIGS[name])
    print(f"wrote {os.path.relpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
