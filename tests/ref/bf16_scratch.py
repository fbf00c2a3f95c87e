#!/usr/bin/env python3
"""bf16 from random initialisation, PyTorch side by side with xclip-train (issue 14, goal 5).

Trains the reference X-CLIP (xclip_ref.XCLIP) with the architecture, initial weights, data and optimiser of a
run configuration (configs/demo.ini), in float32 or under torch.autocast('cpu', dtype=torch.bfloat16), and logs
the training loss per epoch and the single-view top-1 every test.eval_freq epochs, as xclip-train does.

What is shared with xclip-train, so that only the arithmetic differs:
  - initial weights: build/ref_demo_batches (tests/ref/demo_batches.c) builds the model with the trainer's own
    model_build (random init from train.seed) and writes it as init.pth, loaded here strictly;
  - data: the same program runs the trainer's loaders and streams every training batch (clips after sampling
    and cropping, soft targets after label smoothing) in the order xclip-train uses them, and writes the
    single-view validation clips once;
  - class texts: its tokens (class_texts); with fix_text the text features are computed once, in float32 (as
    xclip-train caches them; under autocast too), and the text tower and logit_scale stay frozen;
  - optimiser: AdamW (betas 0.9/0.98, eps 1e-8) with the official decay / no-decay split (xclip_ref.param_groups),
    every group at lr x new_lr_scale where the official code has 10x (demo: x1); the schedule of train/schedule.c
    (linear warm-up from 0 over int(warmup_epochs x batches) iterations, cosine to lr x min_lr_ratio over the
    whole run), step n at the rate of iteration n-1 (0 for the first), as timm's step_update;
  - loss: soft-target cross-entropy, mean over the batch.
Not shared: drop-path (the demo has none) and the final multi-view evaluation (not run here).
Under autocast the loss's log-softmax is computed in float32 from the bf16 logits (as the official training's
torch.nn.functional cross-entropy under AMP on GPUs), everything else as autocast decides.

Run from the repository root after building (build/ref_demo_batches):
    nice -n 15 /usr/bin/python3 tests/ref/bf16_scratch.py configs/demo.ini --precision bf16 --seed 7 \
        --out build/b16runs/torch-bf16-s7.csv [--set train.epochs=15] [--stop-after 2]
Writes a CSV: epoch,loss_avg,top1 (top1 empty when not evaluated). Needs Debian's python3-torch and numpy.
"""
import argparse
import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before torch loads libgomp: spinning threads on a busy machine
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xclip_ref  # noqa: E402


def read_config(path, sets):
    """The INI keys this script needs (section.key -> value string), with --set overrides applied."""
    out, section = {}, ""
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line.startswith("["):
                section = line.strip("[]").strip()
            elif "=" in line:
                k, v = line.split("=", 1)
                out[f"{section}.{k.strip()}"] = v.strip()
    for s in sets:
        k, v = s.split("=", 1)
        out[k] = v
    return out


def fp32_layer_norm(ln):
    """openai/CLIP's LayerNorm (used by X-CLIP's cct.py and mit.py): statistics and output in float32, returned in
    the input's dtype. torch 1.13's CPU autocast has no rule for layer_norm (a bf16 input with float32 weights is
    an error), so under autocast every LayerNorm behaves as CLIP's; in float32 this is nn.LayerNorm unchanged."""
    def forward(x):
        return F.layer_norm(x.float(), ln.normalized_shape, ln.weight, ln.bias, ln.eps).to(x.dtype)
    return forward


def lr_at(t, base, floor, warmup, total):
    """train/schedule.c lr_schedule_at_scaled."""
    if t < warmup:
        return base * t / warmup
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * t / total))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--precision", choices=("fp32", "bf16"), required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True, help="CSV of the curve")
    ap.add_argument("--set", action="append", default=[], help="section.key=value, also passed to ref_demo_batches")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest for this tiny model)")
    ap.add_argument("--batches", default="build/ref_demo_batches")
    ap.add_argument("--stop-after", type=int, default=0,
                    help="stop after this many epochs (the schedule still spans train.epochs; 0 = all)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sets = a.set + [f"train.seed={a.seed}"]
    cfg = read_config(a.config, sets)
    g = lambda k, d=None: cfg.get(k, d)  # noqa: E731

    tmp = tempfile.mkdtemp(prefix="bf16_scratch_")
    cmd = [a.batches, a.config, tmp] + [x for s in sets for x in ("--set", s)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, bufsize=1 << 20)
    # the files are written before the first batch is streamed
    while not os.path.exists(os.path.join(tmp, "meta.txt")):
        if proc.poll() is not None:
            sys.exit(f"bf16_scratch: {' '.join(cmd)} failed (exit {proc.returncode})")
        time.sleep(0.1)
    K, S, T, H, B, n_iter, epochs, n_val = (int(x) for x in open(os.path.join(tmp, "meta.txt")).read().split())
    tokens = torch.from_numpy(np.fromfile(os.path.join(tmp, "tokens.i32"), dtype=np.int32).astype(np.int64)).view(K, S)
    val = torch.from_numpy(np.fromfile(os.path.join(tmp, "val.f32"), dtype=np.float32)).view(n_val, T, 3, H, H)
    val_y = torch.from_numpy(np.fromfile(os.path.join(tmp, "val.i32"), dtype=np.int32).astype(np.int64))
    state = torch.load(os.path.join(tmp, "init.pth"), weights_only=True)

    width = int(g("model.vision_width"))
    model = xclip_ref.XCLIP(T=T, image=H, patch=int(g("model.patch")), vision_width=width,
                            vision_layers=int(g("model.vision_layers")), embed=int(g("model.embed_dim")), context=S,
                            vocab=state["token_embedding.weight"].shape[0], text_width=int(g("model.text_width")),
                            text_layers=int(g("model.text_layers")), mit_layers=int(g("model.mit_layers")),
                            prompt_layers=int(g("model.prompt_layers")))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        sys.exit(f"bf16_scratch: init.pth does not fit the model: missing {missing}, unexpected {unexpected}")
    assert g("model.fix_text", "true") == "true", "this script trains with fix_text"
    for mod in model.modules():
        if isinstance(mod, torch.nn.LayerNorm):
            mod.forward = fp32_layer_norm(mod)
    xclip_ref.fix_text(model)
    model.cache_text(tokens)  # float32, once (as xclip-train's cache)

    base, wd = float(g("train.lr")), float(g("train.weight_decay"))
    scale = float(g("train.new_lr_scale", "10"))
    groups = xclip_ref.param_groups(model, base, wd)
    for grp in groups:  # official: 10x for the new tensors; here lr x new_lr_scale
        grp["scale"] = 1.0 if grp["lr"] == base else scale
        grp["lr"] = 0.0
    opt = torch.optim.AdamW([grp for grp in groups if grp["params"]], betas=(0.9, 0.98), eps=1e-8)
    warmup = int(float(g("train.warmup_epochs")) * n_iter)
    total = epochs * n_iter
    floor = base * float(g("train.min_lr_ratio", "0.01"))
    eval_freq = int(g("train.eval_freq", "1"))

    bf16 = a.precision == "bf16"
    def ctx():  # the forward (and the loss's input) under autocast, or plain float32
        return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    clip_bytes, tgt_bytes = B * T * 3 * H * H * 4, B * K * 4

    def evaluate():
        model.eval()
        right = 0
        with torch.no_grad():
            for i in range(0, n_val, 16):
                with ctx():
                    logits = model(val[i:i + 16], tokens)
                right += int((logits.float().argmax(dim=1) == val_y[i:i + 16]).sum())
        model.train()
        return 100.0 * right / n_val

    rows, t_step, best = [], 0, 0.0
    t0 = time.time()
    for epoch in range(1, epochs + 1):
        losses = []
        for it in range(n_iter):
            buf = proc.stdout.read(clip_bytes + tgt_bytes)
            if len(buf) != clip_bytes + tgt_bytes:
                sys.exit(f"bf16_scratch: the batch stream ended at epoch {epoch} batch {it}")
            video = torch.frombuffer(bytearray(buf[:clip_bytes]), dtype=torch.float32).view(B, T, 3, H, H)
            target = torch.frombuffer(bytearray(buf[clip_bytes:]), dtype=torch.float32).view(B, K)
            rate = 0.0 if t_step == 0 else lr_at(t_step - 1, base, floor, warmup, total)
            for grp in opt.param_groups:
                grp["lr"] = rate * grp["scale"]
            with ctx():
                logits = model(video, tokens)
            loss = -(target * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            t_step += 1
        top1 = evaluate() if eval_freq and (epoch % eval_freq == 0 or epoch == epochs) else None
        if top1 is not None:
            best = max(best, top1)
        rows.append((epoch, sum(losses) / len(losses), top1))
        print(f"{a.precision} seed {a.seed} epoch {epoch}/{epochs} loss {rows[-1][1]:.4f}"
              + (f" top-1 {top1:.2f}% (best {best:.2f}%)" if top1 is not None else "")
              + f"  {time.time() - t0:.0f} s", flush=True)
        if epoch == a.stop_after:
            proc.kill()
            break
    proc.stdout.close()
    proc.wait()  # killed (-9) after --stop-after
    shutil.rmtree(tmp)
    with open(a.out, "w") as f:
        f.write("epoch,loss_avg,top1\n")
        for e, l, t in rows:
            f.write(f"{e},{l:.5f},{'' if t is None else f'{t:.3f}'}\n")
    evaluated = any(t is not None for _, _, t in rows)
    print(f"best top-1 {best:.2f}%" if evaluated else "best top-1: not evaluated (stopped before the first evaluation)")


if __name__ == "__main__":
    main()
