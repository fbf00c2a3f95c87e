#!/usr/bin/python3
"""Writes tests/fixtures/xclip_prompting/<config>/: a tiny X-CLIP with the prompting options of xclip_ref.XCLIP
(docs/model.md "Prompting"), inputs, and the reference logits, loss and gradients, for tests/test_prompting_parity.c.

Configurations (widths 64: one head everywhere; context 16, vocab 64: SOT stands as 62,
EOT = 63, the CoOp placeholder id 7; B = 2, T = 3, image 16, patch 8 (grid 2x2), 1 vision layer, 1 text layer, 1 MIT layer):
  templates   data.templates with M = 3 templates, K = 4 classes (tokens 12 x 16, class-major), fix_text false:
              every tensor trains, the text tower included (ensemble inside the graph); 1 prompt layer
  coop        model.context_tokens N = 4, fix_text true, no video-specific prompts (prompt_layers 0): the
              gradient of prompt_learner.ctx through the frozen text tower, and the vision side's
  coop_prompts  the same with 2 prompt layers (CoOp + X-CLIP's video-specific prompts)

Per configuration:
  model.pth  torch.save(state_dict), float32, official names plus prompt_learner.ctx (CoOp)
  in.h5      /video float32 [B,T,3,H,W], /tokens int32 [K*M,S], /labels int64 [B]
  ref.h5     float64 computation from the float32 weights, stored float32: /logits [B,K], /text_features [K,E]
             (after the ensemble), /loss (mean cross entropy), /grad/<name> for every tensor that trains (zeros
             where the loss does not reach it: prompts_generator.norm without prompt layers), /config/fix_text,
             /config/templates, /config/context_tokens (int64 [1]).

Self-checks: CoOp with ctx set to the placeholder's token embedding equals the model without CoOp on the same
tokens; the ensemble equals a per-class loop written here; every CoOp context gradient non-trivial.

Run with Debian's python3-torch:  /usr/bin/python3 tests/ref/make_prompting_fixtures.py
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xclip_ref as X  # noqa: E402
import make_xclip_fixtures as MX  # noqa: E402  (randomise_for_tests, rel)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "xclip_prompting")
MODEL = dict(T=3, image=16, patch=8, vision_width=64, vision_layers=1, embed=64, context=16, vocab=64,
             text_width=64, text_layers=1, mit_layers=1)
SOT, EOT, SLOT = 62, 63, 7
CONFIGS = {
    "templates": dict(K=4, M=3, N=0, prompt_layers=1, fix_text=False, seed=41),
    "coop": dict(K=4, M=0, N=4, prompt_layers=0, fix_text=True, seed=42),
    "coop_prompts": dict(K=5, M=0, N=4, prompt_layers=2, fix_text=True, seed=43),
}


def make_tokens(rng, rows, S, N):
    """rows texts of random length: [SOT] [N slots] [ids] [EOT] [0...]."""
    tok = np.zeros((rows, S), dtype=np.int32)
    for r in range(rows):
        n = rng.randint(1, S - 2 - N + 1)  # 1 .. S-2-N class ids
        tok[r, 0] = SOT
        tok[r, 1:1 + N] = SLOT
        tok[r, 1 + N:1 + N + n] = rng.randint(1, SOT, size=n)
        tok[r, 1 + N + n] = EOT
    return tok


def model_of(cfg, sd=None, dtype=torch.float64, context_tokens=None):
    N = cfg["N"] if context_tokens is None else context_tokens
    m = X.XCLIP(**MODEL, prompt_layers=cfg["prompt_layers"], prompts_alpha=0.1, drop_path=0.0,
                use_cache=cfg["fix_text"], context_tokens=N, templates=cfg["M"])
    if sd is not None:
        m.load_state_dict(sd)
    m = m.to(dtype).train()
    if cfg["fix_text"]:
        X.fix_text(m)
    return m


def make(name, cfg):
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(cfg["seed"])
    model = model_of(cfg, dtype=torch.float32)
    MX.randomise_for_tests(model, torch.Generator().manual_seed(cfg["seed"] + 1))
    if cfg["N"]:
        with torch.no_grad():  # larger than CoOp's 0.02 so that the context matters in the numbers
            model.prompt_learner.ctx.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(cfg["seed"] + 2))
    sd = {k: v.detach().clone().float().contiguous() for k, v in model.state_dict().items()}
    rng = np.random.RandomState(cfg["seed"])
    B, K, M, N = 2, cfg["K"], max(cfg["M"], 1), cfg["N"]
    video = rng.uniform(-2, 2, size=(B, MODEL["T"], 3, MODEL["image"], MODEL["image"])).astype(np.float32)
    tokens = make_tokens(rng, K * M, MODEL["context"], N)
    labels = rng.randint(0, K, size=B).astype(np.int64)
    v64, tok, lab = torch.from_numpy(video).double(), torch.from_numpy(tokens).long(), torch.from_numpy(labels)

    m = model_of(cfg, sd)
    logits = m(v64, tok)
    loss = F.cross_entropy(logits, lab)
    loss.backward()
    trained = [n for n, p in m.named_parameters() if p.requires_grad]
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach() for n, p in m.named_parameters()
             if p.requires_grad}
    with torch.no_grad():
        text_features = m.text_features(tok)

    # self-checks
    with torch.no_grad():
        if N:  # ctx = the placeholder's embedding: the same numbers as the model without CoOp
            sd_id = dict(sd)
            sd_id["prompt_learner.ctx"] = sd["token_embedding.weight"][SLOT].expand(N, -1).clone()
            plain = model_of(cfg, {k: v for k, v in sd_id.items() if k != "prompt_learner.ctx"}, context_tokens=0)
            coop = model_of(cfg, sd_id)
            e = MX.rel(coop(v64, tok), plain(v64, tok))
            print(f"{name}: CoOp with ctx = the placeholder embedding vs no CoOp: logits rel diff {e:.1e}")
            assert e < 1e-12
        if cfg["M"]:  # the ensemble spelled out per class
            f = m.encode_text(tok)
            loop = []
            for k in range(K):
                rows = f[k * M:(k + 1) * M]
                mean = (rows / rows.norm(dim=-1, keepdim=True)).mean(0)
                loop.append(mean / mean.norm())
            e = MX.rel(torch.stack(loop), text_features)
            print(f"{name}: ensemble vs per-class loop: rel diff {e:.1e}")
            assert e < 1e-12
    if N:
        g = grads["prompt_learner.ctx"]
        assert (g.norm(dim=-1) > 1e-6 * g.abs().max()).all(), "a context vector without gradient"
    gnorm = {n: (g.norm() / g.numel() ** 0.5).item() for n, g in grads.items()}
    print(f"{name}: loss {loss.item():.6f}, {len(grads)} trained tensors, gradient rms from {min(gnorm.values()):.2e} "
          f"to {max(gnorm.values()):.2e}" + (f", ctx {gnorm['prompt_learner.ctx']:.2e}" if N else ""))

    torch.save(sd, os.path.join(out, "model.pth"))
    with h5py.File(os.path.join(out, "in.h5"), "w") as f:
        f["video"] = video
        f["tokens"] = tokens
        f["labels"] = labels
    gz = dict(compression="gzip", compression_opts=9, shuffle=True)
    with h5py.File(os.path.join(out, "ref.h5"), "w") as f:
        f["logits"] = logits.detach().float().numpy()
        f["text_features"] = text_features.float().numpy()
        f["loss"] = np.float32(loss.item())
        for n in trained:
            f.create_dataset(f"grad/{n}", data=grads[n].float().numpy(), **(gz if grads[n].ndim else {}))
        f["config/fix_text"] = np.array([int(cfg["fix_text"])], dtype=np.int64)
        f["config/templates"] = np.array([cfg["M"]], dtype=np.int64)
        f["config/context_tokens"] = np.array([N], dtype=np.int64)


def main():
    torch.set_num_threads(2)
    names = sys.argv[1:] or list(CONFIGS)
    for name in names:
        make(name, CONFIGS[name])
    print(f"wrote {os.path.relpath(OUT)}/{{{','.join(names)}}}", file=sys.stderr)


if __name__ == "__main__":
    main()
