#!/usr/bin/python3
"""Writes tests/fixtures/data/data_ref.h5: reference values for the data pipeline (tests/test_data_transforms.c).

- sample/*: mmaction2 SampleFrames (clip_len 1) as X-CLIP uses it: test offsets, and train offsets for given
  uniform draws (stored as offs_*), numpy rounding for n < T, modulo n.
- msc/*: mmaction2 MultiScaleCrop(input_size 224, scales (1, .875, .75, .66), max_wh_scale_gap 1,
  random_crop False, 5 fixed crops) boxes [x, y, w, h] for every (size choice, offset choice).
- resize/*: torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False) in float64 of
  uint8 inputs (the geometry of mmcv.imresize / cv2 INTER_LINEAR), not rounded: the C side rounds to uint8.
- color/*: torchvision 0.14 transforms.functional on uint8 CHW tensors (adjust_brightness/contrast/saturation/
  hue, rgb_to_grayscale(3 channels)), single ops and a jitter in a fixed order; hflip; mmcv-style normalise.
- mix/*: CutmixMixupBlending (X-CLIP datasets/blending.py) label mixing and image mixing for given lam, perm
  and cutmix centre; rand_bbox with the same centre.

Run with Debian's python3-torch and python3-torchvision:  /usr/bin/python3 tests/ref/make_data_fixtures.py
"""
import os

import h5py
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "data", "data_ref.h5")
rs = np.random.RandomState(0)


def put(f, name, arr):
    a = np.asarray(arr, dtype=np.float32)
    f.create_dataset(name, data=a, **({"compression": "gzip", "compression_opts": 9} if a.size > 256 else {}))


def sample_test(n, T):
    avg = (n - 1 + 1) / float(T)
    offs = (np.arange(T) * avg + avg / 2.0).astype(np.int64)
    return np.mod(offs, n)


def sample_train(n, T, draws):
    a = (n - 1 + 1) // T
    if a > 0:
        offs = np.arange(T) * a + draws
    else:
        ratio = (n - 1 + 1.0) / T
        offs = np.around(np.arange(T) * ratio)
    return np.mod(offs.astype(np.int64), n)


def msc_box(h, w, inp, size_choice, off_choice):
    base = min(h, w)
    cs = [int(base * s) for s in (1, 0.875, 0.75, 0.66)]
    cand = []
    for i, hh in enumerate(cs):
        for j, ww in enumerate(cs):
            if abs(i - j) <= 1:
                cand.append([ww, hh])
    size = list(cand[size_choice])
    for i in range(2):
        if abs(size[i] - inp) < 3:
            size[i] = inp
    cw, ch = size
    ws, hs = (w - cw) // 4, (h - ch) // 4
    offs = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]
    x, y = offs[off_choice]
    return [x, y, cw, ch], len(cand)


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with h5py.File(OUT, "w") as f:
        for n in (1, 3, 7, 8, 9, 31, 280, 300, 1000):
            for T in (8, 16, 32):
                a = n // T
                draws = rs.randint(a, size=T) if a > 0 else np.zeros(T, np.int64)
                put(f, f"sample/offs_{n}_{T}", draws)
                put(f, f"sample/train_{n}_{T}", sample_train(n, T, draws))
                put(f, f"sample/test_{n}_{T}", sample_test(n, T))
        for (h, w) in ((256, 340), (256, 455), (256, 256), (298, 256), (230, 400), (224, 224)):
            boxes = np.zeros((10, 5, 4))
            for s in range(10):
                for o in range(5):
                    boxes[s, o], ncand = msc_box(h, w, 224, s, o)
            assert ncand == 10
            put(f, f"msc/{h}x{w}", boxes)

        img = rs.randint(0, 256, size=(40, 56, 3)).astype(np.uint8)
        img[5:15, 5:20] = [200, 30, 30]          # flat areas and edges
        img[20:35, 30:50] = [10, 220, 120]
        put(f, "in/img", img)
        x = torch.from_numpy(img.astype(np.float64)).permute(2, 0, 1)[None]
        for (oh, ow) in ((24, 30), (64, 90), (37, 37), (40, 56), (13, 101)):
            y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
            put(f, f"resize/{oh}x{ow}", y[0].permute(1, 2, 0).numpy())
        # a crop view resized (box x=7, y=3, w=33, h=29 -> 24x24)
        y = F.interpolate(x[:, :, 3:32, 7:40], size=(24, 24), mode="bilinear", align_corners=False)
        put(f, "resize/crop_7_3_33_29_to_24", y[0].permute(1, 2, 0).numpy())

        t = torch.from_numpy(img).permute(2, 0, 1).contiguous()  # uint8 CHW tensor

        def hwc(u):
            return u.permute(1, 2, 0).numpy()

        def f32(v):  # ColorJitter draws its factors as float32 (torch.empty(1).uniform_), then float()
            return float(np.float32(v))

        for b in (0.6, 1.0, 1.3, 1.4):
            put(f, f"color/brightness_{b}", hwc(TF.adjust_brightness(t, f32(b))))
        for c in (0.6, 0.85, 1.4):
            put(f, f"color/contrast_{c}", hwc(TF.adjust_contrast(t, f32(c))))
        for s in (0.8, 1.15):
            put(f, f"color/saturation_{s}", hwc(TF.adjust_saturation(t, f32(s))))
        for h in (-0.1, -0.03, 0.07, 0.1, 0.5):
            put(f, f"color/hue_{h}", hwc(TF.adjust_hue(t, f32(h))))
        put(f, "color/gray", hwc(TF.rgb_to_grayscale(t, num_output_channels=3)))
        put(f, "color/hflip", hwc(TF.hflip(t)))
        # ColorJitter.forward with order [2, 0, 3, 1] and factors b .73 c 1.21 s .91 h -.06
        order, fac = [2, 0, 3, 1], {0: 0.73, 1: 1.21, 2: 0.91, 3: -0.06}
        u = t
        for k in order:
            u = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue][k](u, f32(fac[k]))
        put(f, "color/jitter_2031", hwc(u))
        mean = np.array([123.675, 116.28, 103.53], np.float32)
        std = np.array([58.395, 57.12, 57.375], np.float32)
        stdinv = (1 / std.astype(np.float64)).astype(np.float32)
        nrm = (img.astype(np.float32) - mean) * stdinv        # mmcv.imnormalize_ in float32
        put(f, "color/normalize_chw", nrm.transpose(2, 0, 1))

        # mixup / cutmix with given draws
        K, B, T, H, W, s = 5, 3, 2, 6, 7, 0.1
        labels = torch.tensor([3, 0, 3])
        perm = torch.tensor([2, 0, 1])
        off, on = s / K, 1 - s + s / K
        onehot = torch.full((B, K), off).scatter_(1, labels.view(-1, 1), on)
        vid = torch.from_numpy(rs.standard_normal((B, T, 3, H, W)).astype(np.float32))
        put(f, "mix/video", vid.numpy())
        put(f, "mix/labels", labels.numpy())
        put(f, "mix/perm", perm.numpy())
        lam = torch.tensor(0.62, dtype=torch.float32)
        put(f, "mix/mixup_lam", [0.62])
        put(f, "mix/mixup_video", (lam * vid + (1 - lam) * vid[perm, :]).numpy())
        put(f, "mix/mixup_targets", (lam * onehot + (1 - lam) * onehot[perm, :]).numpy())
        for (clam, cx, cy) in ((0.3, 2, 5), (0.8, 0, 0), (0.05, 6, 3)):
            lamc = torch.tensor(clam, dtype=torch.float32)
            cut_rat = torch.sqrt(1. - lamc)
            cut_w, cut_h = torch.tensor(int(W * cut_rat)), torch.tensor(int(H * cut_rat))
            bx1 = torch.clamp(cx - cut_w // 2, 0, W); by1 = torch.clamp(cy - cut_h // 2, 0, H)
            bx2 = torch.clamp(cx + cut_w // 2, 0, W); by2 = torch.clamp(cy + cut_h // 2, 0, H)
            v2 = vid.clone()
            v2[:, ..., by1:by2, bx1:bx2] = v2[perm, ..., by1:by2, bx1:bx2]
            lam2 = 1 - (1.0 * (bx2 - bx1) * (by2 - by1) / (W * H))
            tg = lam2 * onehot + (1 - lam2) * onehot[perm, :]
            key = f"mix/cutmix_{clam}_{cx}_{cy}"
            put(f, key + "_box", [int(bx1), int(by1), int(bx2), int(by2), float(lam2)])
            put(f, key + "_video", v2.numpy())
            put(f, key + "_targets", tg.numpy())
        put(f, "mix/smooth_targets", onehot.numpy())
    print("wrote", OUT)


if __name__ == "__main__":
    main()
