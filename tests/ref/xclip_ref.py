"""Reference PyTorch models for xclip.c's parity tests, written from ../shared/SPEC.md and checked
against the official code (openai/CLIP clip/model.py; microsoft/VideoX X-CLIP/models/).

CLIP here is the official architecture with its state-dict names, made small through the constructor:
layer-norms in float32, QuickGELU, nn.MultiheadAttention with heads = width // 64, a causal text mask,
features = ln_post(class token) @ proj and ln_final(x)[EOT] @ text_projection.
"""
import collections

import torch
import torch.nn as nn


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width, hidden=None, attn_mask=None):
        super().__init__()
        hidden = hidden or 4 * width
        self.attn = nn.MultiheadAttention(width, max(width // 64, 1))
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(collections.OrderedDict([
            ("c_fc", nn.Linear(width, hidden)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(hidden, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.attn_mask = attn_mask

    def attention(self, x):
        mask = self.attn_mask.to(x.dtype) if self.attn_mask is not None else None
        return self.attn(x, x, x, need_weights=False, attn_mask=mask)[0]

    def forward(self, x):  # x (L, N, W), as the official code runs it
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, hidden=None, attn_mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, hidden, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self, image, patch, width, layers, embed, hidden=None):
        super().__init__()
        g = image // patch
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(g * g + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, hidden)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed))

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self, image=32, patch=8, vision_width=128, vision_layers=2, embed=64, context=77, vocab=64,
                 text_width=128, text_layers=2, hidden_ratio=4):
        super().__init__()
        self.visual = VisionTransformer(image, patch, vision_width, vision_layers, embed, int(hidden_ratio * vision_width))
        mask = torch.full((context, context), float("-inf")).triu_(1)
        self.transformer = Transformer(text_width, text_layers, int(hidden_ratio * text_width), mask)
        self.token_embedding = nn.Embedding(vocab, text_width)
        self.positional_embedding = nn.Parameter(torch.randn(context, text_width) * 0.01)
        self.ln_final = nn.LayerNorm(text_width)
        self.text_projection = nn.Parameter(torch.randn(text_width, embed) * text_width ** -0.5)
        self.logit_scale = nn.Parameter(torch.ones([]) * torch.log(torch.tensor(1 / 0.07)))

    def encode_image(self, image):
        return self.visual(image)

    def encode_text(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.ln_final(self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection


def randomise_norms(model, scale=0.1):
    """LayerNorms start at 1/0: perturb them so a swapped weight/bias cannot go unnoticed."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name or "norm" in name:
                p.add_(torch.randn_like(p) * scale)
