"""Checks xclip-export's PyTorch and Hugging Face output against PyTorch itself (run by test_export_torch.sh).

  check_export_torch.py make SRC.h5          write a small random X-CLIP state dict (official names, awkward
                                             float values, a 0-d and an empty tensor) as HDF5
  check_export_torch.py check SRC.h5 DIR     check the files xclip-export wrote into DIR:
      official.pth   torch.load(weights_only=True) gives {'model': sd} equal bitwise to SRC, in order,
                     and the file is byte-identical to torch.save({'model': OrderedDict(...)}, file object)
      flat.pth       the same for the bare state dict
      hf.pth         equal to an independent Python implementation of the Hugging Face XCLIPModel
                     conversion (rename rules of transformers' convert_x_clip_original_pytorch_to_hf.py:
                     q/k/v split, projections transposed), byte-identical to torch.save of that dict
      back.h5        hf.pth read back by xclip-export: equal bitwise to SRC
      config.json    (written beside hf.pth) an XCLIPConfig whose sizes build exactly the shapes of hf.pth
      clip/          --hf=clip of SRC: pytorch_model.bin + config.json, a CLIPConfig whose sizes build exactly
                     the shapes of the state dict (no mit / prompts / message tensors), the CLIP tensors of SRC
  The shapes a config builds are written here from transformers' modeling_clip.py / modeling_x_clip.py
  (CLIPModel, XCLIPModel: module names and nn.Linear / nn.LayerNorm / nn.Parameter shapes); transformers itself
  is not installed, so from_pretrained is not run: this checks that it would find every key it creates, with
  its shape, and no other (position_ids buffers aside).
Exit status 0 when every check passes; each failure is printed.
"""
import collections
import io
import json
import sys

import h5py
import numpy as np
import torch

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL", msg)


def xclip_shapes(W=64, vl=2, P=8, image=32, E=32, D=64, tl=2, S=8, V=50, T=4, ml=1, pl=2):
    sd = collections.OrderedDict()
    G = image // P

    def block(pre, w):
        for name, shape in [("attn.in_proj_weight", (3 * w, w)), ("attn.in_proj_bias", (3 * w,)),
                            ("attn.out_proj.weight", (w, w)), ("attn.out_proj.bias", (w,)),
                            ("ln_1.weight", (w,)), ("ln_1.bias", (w,)), ("mlp.c_fc.weight", (4 * w, w)),
                            ("mlp.c_fc.bias", (4 * w,)), ("mlp.c_proj.weight", (w, 4 * w)), ("mlp.c_proj.bias", (w,)),
                            ("ln_2.weight", (w,)), ("ln_2.bias", (w,))]:
            sd[pre + name] = shape

    sd["visual.class_embedding"] = (W,)
    sd["visual.positional_embedding"] = (G * G + 1, W)
    sd["visual.proj"] = (W, E)
    sd["visual.conv1.weight"] = (W, 3, P, P)
    sd["visual.ln_pre.weight"] = (W,)
    sd["visual.ln_pre.bias"] = (W,)
    for i in range(vl):
        pre = f"visual.transformer.resblocks.{i}."
        for name, shape in [("message_fc.weight", (W, W)), ("message_fc.bias", (W,)), ("message_ln.weight", (W,)),
                            ("message_ln.bias", (W,)), ("message_attn.in_proj_weight", (3 * W, W)),
                            ("message_attn.in_proj_bias", (3 * W,)), ("message_attn.out_proj.weight", (W, W)),
                            ("message_attn.out_proj.bias", (W,))]:
            sd[pre + name] = shape
        block(pre, W)
    sd["visual.ln_post.weight"] = (W,)
    sd["visual.ln_post.bias"] = (W,)
    for i in range(tl):
        block(f"transformer.resblocks.{i}.", D)
    sd["token_embedding.weight"] = (V, D)
    sd["positional_embedding"] = (S, D)
    sd["ln_final.weight"] = (D,)
    sd["ln_final.bias"] = (D,)
    sd["text_projection"] = (D, E)
    sd["logit_scale"] = ()
    sd["prompts_visual_ln.weight"] = (W,)
    sd["prompts_visual_ln.bias"] = (W,)
    sd["prompts_visual_proj"] = (W, E)
    sd["mit.positional_embedding"] = (1, T, E)
    for j in range(ml):
        block(f"mit.resblocks.{j}.", E)
    sd["prompts_generator.norm.weight"] = (E,)
    sd["prompts_generator.norm.bias"] = (E,)
    for j in range(pl):
        pre = f"prompts_generator.decoder.{j}."
        for name, shape in [("cross_attn.q_proj.weight", (E, E)), ("cross_attn.k_proj.weight", (E, E)),
                            ("cross_attn.v_proj.weight", (E, E)), ("cross_attn.proj.weight", (E, E)),
                            ("cross_attn.proj.bias", (E,)), ("norm1.weight", (E,)), ("norm1.bias", (E,)),
                            ("norm3.weight", (E,)), ("norm3.bias", (E,)), ("mlp.0.weight", (4 * E, E)),
                            ("mlp.0.bias", (4 * E,)), ("mlp.3.weight", (E, 4 * E)), ("mlp.3.bias", (E,))]:
            sd[pre + name] = shape
    sd["prompts_generator.alpha"] = (E,)
    sd["extra.empty"] = (0, 3)
    return sd


def make(path):
    rng = np.random.default_rng(1234)
    with h5py.File(path, "w", track_order=True) as f:
        for name, shape in xclip_shapes().items():
            a = rng.standard_normal(shape).astype(np.float32)
            if name == "visual.class_embedding":  # NaN payloads, signed zero, infinities, subnormals
                bits = np.array([0x7fc00001, 0xffa00005, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x807fffff],
                                dtype=np.uint32)
                a[:7] = bits.view(np.float32)
            f.create_dataset(name, data=a)


def read_h5(path):
    out = collections.OrderedDict()
    with h5py.File(path, "r") as f:
        order = []
        try:  # creation order (both writers track it); h5py's own iteration is by name
            f.id.links.iterate(lambda n: order.append(n.decode()), idx_type=h5py.h5.INDEX_CRT_ORDER)
        except Exception:
            order = list(f.keys())
        for n in order:
            out[n] = np.array(f[n][()], dtype=np.float32).reshape(f[n].shape)
    return out


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def same(a, b):
    return a.shape == b.shape and np.array_equal(bits(a), bits(b))


def compare_sd(what, got, want):
    if list(got.keys()) != list(want.keys()):
        missing = [k for k in want if k not in got][:5]
        extra = [k for k in got if k not in want][:5]
        fail(f"{what}: names differ (missing {missing}, unexpected {extra}, order equal: {sorted(got) == sorted(want)})")
    for k, v in want.items():
        if k not in got:
            continue
        g = got[k]
        g = g.numpy() if isinstance(g, torch.Tensor) else g
        if isinstance(got[k], torch.Tensor) and got[k].dtype != torch.float32:
            fail(f"{what}: {k} has dtype {got[k].dtype}")
        if not same(g, v):
            fail(f"{what}: {k} differs (shape {g.shape} vs {v.shape})")


def torch_bytes(obj):
    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()


def as_torch(sd):
    # fresh tensors with torch's own contiguous strides (from_numpy gives an empty array strides (0, 0))
    out = collections.OrderedDict()
    for k, v in sd.items():
        t = torch.empty(v.shape, dtype=torch.float32)
        t.copy_(torch.from_numpy(np.array(v, dtype=np.float32, copy=True)))
        out[k] = t
    return out


def hf_xclip(sd):
    """The official -> XCLIPModel conversion, written from the rename rules of transformers'
    convert_x_clip_original_pytorch_to_hf.py (in_proj split, the two CLIP projections transposed)."""
    out = collections.OrderedDict()
    for key, val in sd.items():
        if "attn.in_proj" in key:
            parts = key.split(".")
            kind = "weight" if key.endswith("weight") else "bias"
            if key.startswith("visual"):
                base = f"vision_model.encoder.layers.{parts[3]}." + ("message_attn" if "message_attn" in key else "self_attn")
            elif key.startswith("mit"):
                base = f"mit.encoder.layers.{parts[2]}.self_attn"
            else:
                base = f"text_model.encoder.layers.{parts[2]}.self_attn"
            d = val.shape[0] // 3
            for j, q in enumerate("qkv"):
                out[f"{base}.{q}_proj.{kind}"] = val[j * d:(j + 1) * d]
            continue
        name = key
        if name == "token_embedding.weight":
            name = "text_model.embeddings.token_embedding.weight"
        if name == "positional_embedding":
            name = "text_model.embeddings.position_embedding.weight"
        name = name.replace("ln_1", "layer_norm1").replace("ln_2", "layer_norm2")
        name = name.replace("c_fc", "fc1").replace("c_proj", "fc2")
        if name.startswith("transformer.resblocks"):
            name = name.replace("transformer.resblocks", "text_model.encoder.layers")
        if "attn.out_proj" in name and "message" not in name:
            name = name.replace("attn.out_proj", "self_attn.out_proj")
        name = name.replace("ln_final", "text_model.final_layer_norm")
        if name == "visual.class_embedding":
            name = "vision_model.embeddings.class_embedding"
        if name == "visual.positional_embedding":
            name = "vision_model.embeddings.position_embedding.weight"
        if name.startswith("visual.transformer.resblocks"):
            name = name.replace("visual.transformer.resblocks", "vision_model.encoder.layers")
        name = name.replace("visual.conv1", "vision_model.embeddings.patch_embedding")
        name = name.replace("visual.ln_pre", "vision_model.pre_layernorm")
        name = name.replace("visual.ln_post", "vision_model.post_layernorm")
        if name == "visual.proj":
            name = "visual_projection.weight"
        if name == "text_projection":
            name = "text_projection.weight"
        name = name.replace("prompts_visual_proj", "prompts_visual_projection")
        name = name.replace("prompts_visual_ln", "prompts_visual_layernorm")
        if name == "mit.positional_embedding":
            name = "mit.position_embedding"
        if name.startswith("mit.resblocks"):
            name = name.replace("mit.resblocks", "mit.encoder.layers")
        if name.startswith("prompts_generator.norm"):
            name = name.replace("prompts_generator.norm", "prompts_generator.layernorm")
        if name in ("visual_projection.weight", "text_projection.weight"):
            val = np.ascontiguousarray(val.T)
        out[name] = val
    return out


def hf_expected_shapes(cfg):
    """Parameter names and shapes CLIPModel / XCLIPModel create from a config.json (model_type clip / xclip)."""
    xclip = cfg["model_type"] == "xclip"
    t, v, E = cfg["text_config"], cfg["vision_config"], cfg["projection_dim"]
    out = collections.OrderedDict()

    def linear(name, n_out, n_in, bias=True):
        out[name + ".weight"] = (n_out, n_in)
        if bias:
            out[name + ".bias"] = (n_out,)

    def norm(name, n):
        out[name + ".weight"] = (n,)
        out[name + ".bias"] = (n,)

    def encoder_layer(pre, w, inter):
        for p in "qkv":
            linear(f"{pre}self_attn.{p}_proj", w, w)
        linear(f"{pre}self_attn.out_proj", w, w)
        norm(f"{pre}layer_norm1", w)
        linear(f"{pre}mlp.fc1", inter, w)
        linear(f"{pre}mlp.fc2", w, inter)
        norm(f"{pre}layer_norm2", w)

    D, W, P = t["hidden_size"], v["hidden_size"], v["patch_size"]
    out["text_model.embeddings.token_embedding.weight"] = (t["vocab_size"], D)
    out["text_model.embeddings.position_embedding.weight"] = (t["max_position_embeddings"], D)
    for i in range(t["num_hidden_layers"]):
        encoder_layer(f"text_model.encoder.layers.{i}.", D, t["intermediate_size"])
    norm("text_model.final_layer_norm", D)
    out["vision_model.embeddings.class_embedding"] = (W,)
    out["vision_model.embeddings.patch_embedding.weight"] = (W, v["num_channels"], P, P)
    out["vision_model.embeddings.position_embedding.weight"] = ((v["image_size"] // P) ** 2 + 1, W)
    norm("vision_model.pre_layernorm" if xclip else "vision_model.pre_layrnorm", W)
    for i in range(v["num_hidden_layers"]):
        pre = f"vision_model.encoder.layers.{i}."
        if xclip:  # XCLIPVisionEncoderLayer: message_fc, message_ln, message_attn before CLIP's layer
            linear(pre + "message_fc", W, W)
            norm(pre + "message_ln", W)
            for p in "qkv":
                linear(f"{pre}message_attn.{p}_proj", W, W)
            linear(pre + "message_attn.out_proj", W, W)
        encoder_layer(pre, W, v["intermediate_size"])
    norm("vision_model.post_layernorm", W)
    linear("visual_projection", E, W, bias=False)
    linear("text_projection", E, D, bias=False)
    out["logit_scale"] = ()
    if xclip:
        norm("prompts_visual_layernorm", W)
        out["prompts_visual_projection"] = (W, E)
        M = v["mit_hidden_size"]
        out["mit.position_embedding"] = (1, v["num_frames"], M)
        for i in range(v["mit_num_hidden_layers"]):
            encoder_layer(f"mit.encoder.layers.{i}.", M, v["mit_intermediate_size"])
        norm("prompts_generator.layernorm", E)
        for j in range(cfg["prompt_layers"]):
            pre = f"prompts_generator.decoder.{j}."
            for p in "qkv":
                linear(f"{pre}cross_attn.{p}_proj", E, E, bias=False)
            linear(pre + "cross_attn.proj", E, E)
            norm(pre + "norm1", E)
            norm(pre + "norm3", E)
            linear(pre + "mlp.0", 4 * E, E)
            linear(pre + "mlp.3", E, 4 * E)
        out["prompts_generator.alpha"] = (E,)
    return out


def check_config(what, cfg_path, sd, model_type, ignore=()):
    """config.json parses, names the class, and builds exactly the state dict's names and shapes."""
    try:
        cfg = json.load(open(cfg_path))
    except Exception as e:  # noqa: BLE001 - any failure to parse is the finding
        fail(f"{what}: config.json does not parse: {e}")
        return
    arch = {"clip": "CLIPModel", "xclip": "XCLIPModel"}[model_type]
    if cfg.get("model_type") != model_type or cfg.get("architectures") != [arch]:
        fail(f"{what}: model_type {cfg.get('model_type')} / architectures {cfg.get('architectures')}")
        return
    for sub, mt in [("text_config", model_type + "_text_model"), ("vision_config", model_type + "_vision_model")]:
        if cfg[sub].get("model_type") != mt:
            fail(f"{what}: {sub}.model_type {cfg[sub].get('model_type')}")
        heads, hidden = cfg[sub]["num_attention_heads"], cfg[sub]["hidden_size"]
        if hidden % heads or (hidden >= 64 and hidden // heads != 64):
            fail(f"{what}: {sub}: {heads} heads for width {hidden} (CLIP's heads are 64 wide)")
    want = hf_expected_shapes(cfg)
    got = collections.OrderedDict((k, tuple(t.shape)) for k, t in sd.items() if k not in ignore)
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    shapes = [f"{k} {got[k]} vs {want[k]}" for k in want if k in got and got[k] != want[k]]
    if missing or extra or shapes:
        fail(f"{what}: config.json vs tensors: missing {missing[:4]}, unexpected {extra[:4]}, shapes {shapes[:4]}")
    else:
        print(f"{what}: config.json builds the {len(want)} tensors' names and shapes exactly")


def check(src_path, d):
    src = read_h5(src_path)
    n = sum(v.size for v in src.values())
    print(f"source: {len(src)} tensors, {n} floats")
    # official names, {'model': ...}
    got = torch.load(f"{d}/official.pth", weights_only=True)
    if not isinstance(got, dict) or list(got.keys()) != ["model"]:
        fail("official.pth: not {'model': ...}")
    else:
        compare_sd("official.pth", got["model"], src)
    if open(f"{d}/official.pth", "rb").read() != torch_bytes({"model": as_torch(src)}):
        fail("official.pth: bytes differ from torch.save({'model': OrderedDict}) to a file object")
    # bare state dict
    got = torch.load(f"{d}/flat.pth", weights_only=True)
    compare_sd("flat.pth", got, src)
    if open(f"{d}/flat.pth", "rb").read() != torch_bytes(as_torch(src)):
        fail("flat.pth: bytes differ from torch.save(OrderedDict)")
    # Hugging Face XCLIPModel
    want = hf_xclip(src)
    got = torch.load(f"{d}/hf.pth", weights_only=True)
    compare_sd("hf.pth (XCLIPModel names)", got, want)
    if open(f"{d}/hf.pth", "rb").read() != torch_bytes(as_torch(want)):
        fail("hf.pth: bytes differ from torch.save of the converted dict")
    for must in ["vision_model.encoder.layers.1.message_attn.k_proj.bias", "mit.encoder.layers.0.self_attn.v_proj.weight",
                 "vision_model.pre_layernorm.weight", "prompts_generator.layernorm.bias", "mit.position_embedding",
                 "prompts_visual_projection", "visual_projection.weight"]:
        if must not in got:
            fail(f"hf.pth: no {must}")
    check_config("hf.pth (XCLIPModel)", f"{d}/config.json", got, "xclip", ignore=("extra.empty",))
    # and back
    compare_sd("back.h5 (hf.pth read back)", read_h5(f"{d}/back.h5"), src)
    # --hf=clip: a clean CLIPModel of the CLIP tensors, as pytorch_model.bin + config.json
    clip = torch.load(f"{d}/clip/pytorch_model.bin", weights_only=True)
    bad = [k for k in clip if "mit" in k or "prompt" in k or "message" in k]
    if bad:
        fail(f"clip/pytorch_model.bin: X-CLIP tensors {bad[:4]}")
    check_config("clip/ (CLIPModel)", f"{d}/clip/config.json", clip, "clip")
    if not np.array_equal(bits(clip["vision_model.embeddings.class_embedding"].numpy()), bits(src["visual.class_embedding"])):
        fail("clip/pytorch_model.bin: class_embedding differs from the source")
    print("all checks passed" if not FAILS else f"{len(FAILS)} checks failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make":
        make(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    print(__doc__)
    sys.exit(2)
