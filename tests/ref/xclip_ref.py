"""Reference PyTorch models for xclip.c's parity tests, written from docs/model.md and checked
against the official code (openai/CLIP clip/model.py; microsoft/VideoX X-CLIP/models/).

CLIP here is the official architecture with its state-dict names, made small through the constructor:
layer-norms in float32, QuickGELU, nn.MultiheadAttention with heads = width // 64, a causal text mask,
features = ln_post(class token) @ proj and ln_final(x)[EOT] @ text_projection.

XCLIP adds the official video parts with their state-dict names (visual.* with message tokens, mit.*,
prompts_generator.*, prompts_visual_ln, prompts_visual_proj), the official initialisation, fix_text and the
official AdamW parameter groups. It was checked against microsoft/VideoX X-CLIP (models/*.py, utils/optimizer.py)
run with a few import stubs: identical state-dict names/shapes/order, initial statistics, logits and gradients
(float64, <1e-13) and identical optimiser groups and frozen sets.
"""
import collections
import math

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


# ---------------------------------------------------------------------------------------------------------------
# X-CLIP (microsoft/VideoX X-CLIP/models/{xclip,cct,mit,prompt}.py), written from docs/model.md §3-§7 and checked line by
# line against the official code. Tensors are sequence-first (L, N, W) inside the transformers, as there.
# The official behaviour is implemented throughout; comments marked "Note" point out details that are easy to
# get wrong (docs/model.md §12 lists where xclip.c itself departs from the official code).
# ---------------------------------------------------------------------------------------------------------------

class DropPath(nn.Module):
    """Stochastic depth as the official code uses it (clip/model.py drop_path, timm's formula).

    Note (docs/model.md §3.6): not per-sample stochastic depth: the official mask has shape
    (x.shape[0], 1, ..., 1) and every call site in cct.py passes a sequence-first tensor, so what is dropped is a
    sequence position shared by all samples: a frame index t for the message attention ((T, B, W) input), a
    token position for the intra-frame attention ((L+1, B*T, W)) and the MLP ((L, B*T, W)). With drop_path 0 (the
    default, and the fixtures) it is the identity; it is also the identity in eval mode.
    """

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = (keep + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)).floor_()
        return x.div(keep) * mask


class CrossFramelAttentionBlock(nn.Module):
    """One block of the Cross-frame Communication Transformer (cct.py; the official class name is misspelt).

    x (L, B*T, W), frame index b*T + t. The message token of frame (b, t) is message_fc of its class token; the
    T messages of a video attend to each other (message_attn, pre-LN message_ln, residual); each frame then runs
    the CLIP attention over its L tokens plus its message appended last (index L), which is dropped again before
    the MLP.
    In the first block the message tokens of a video are all equal (the class token entering block 0 is
    ln_pre(class_embedding + positional_embedding[0]) for every frame), so its message attention is uniform:
    the query/key parts of its in_proj get no gradient, in the official model as here, whatever the weights.
    """

    def __init__(self, width, T, drop_path=0.0):
        super().__init__()
        heads = width // 64
        self.T = T
        self.message_fc = nn.Linear(width, width)
        self.message_ln = nn.LayerNorm(width)
        self.message_attn = nn.MultiheadAttention(width, heads)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.mlp = nn.Sequential(collections.OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * width, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x):
        L, BT, W = x.shape
        T = self.T
        B = BT // T
        x = x.view(L, B, T, W)
        m = self.message_fc(x[0])                      # (B, T, W)
        m = m.permute(1, 0, 2)                         # (T, B, W): sequence = the T frames of a video
        h = self.message_ln(m)
        m = m + self.drop_path(self.message_attn(h, h, h, need_weights=False)[0])
        m = m.permute(1, 0, 2).unsqueeze(0)            # (1, B, T, W)
        x = torch.cat([x, m], dim=0).view(L + 1, BT, W)
        h = self.ln_1(x)
        x = x + self.drop_path(self.attn(h, h, h, need_weights=False)[0])
        x = x[:L]
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class FrameBlock(ResidualAttentionBlock):
    """xclip.c's ablation cct=False (not in the official code): CLIP's ResidualAttentionBlock on each frame alone,
    no message tensors, the same DropPath on its two branches as CrossFramelAttentionBlock. x (L, B*T, W)."""

    def __init__(self, width, drop_path=0.0):
        super().__init__(width)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x):
        x = x + self.drop_path(self.attention(self.ln_1(x)))
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class CrossFrameTransformer(nn.Module):
    """cct.py's Transformer: the `resblocks` container (gradient checkpointing of the official code left out).
    cct=False: FrameBlocks instead (xclip.c's model.cct = false)."""

    def __init__(self, width, layers, T, drop_path=None, cct=True):
        super().__init__()
        rates = drop_path if drop_path is not None else [0.0] * layers
        block = (lambda i: CrossFramelAttentionBlock(width, T, rates[i])) if cct else (lambda i: FrameBlock(width, rates[i]))
        self.resblocks = nn.Sequential(*[block(i) for i in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class CrossFrameCommunicationTransformer(nn.Module):
    """Prefix `visual.`: frames (B*T, 3, H, W) -> (ln_post(class token) @ proj (B*T, E), patch tokens (B*T, N, W))."""

    def __init__(self, image, patch, width, layers, embed, T, drop_path=None, cct=True):
        super().__init__()
        g = image // patch
        scale = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(g * g + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = CrossFrameTransformer(width, layers, T, drop_path, cct)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, embed))

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)                     # (BT, N, W), row-major grid
        cls = self.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.transformer(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)  # (BT, L, W)
        return self.ln_post(x[:, 0, :]) @ self.proj, x[:, 1:, :]


class MultiframeIntegrationTransformer(nn.Module):
    """Prefix `mit.`: frame features (B, T, E) -> video feature (B, E) (mit.py)."""

    def __init__(self, T, embed, layers):
        super().__init__()
        self.T = T
        self.positional_embedding = nn.Parameter(torch.empty(1, T, embed))
        nn.init.trunc_normal_(self.positional_embedding, std=0.02)
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(embed) for _ in range(layers)])
        self.apply(_trunc_normal_init)

    def forward(self, x):
        y = (x + self.positional_embedding).permute(1, 0, 2)            # (T, B, E)
        y = self.resblocks(y).permute(1, 0, 2)
        return (y + x).mean(dim=1)                                      # residual around the whole MIT, mean over T


class PromptCrossAttention(nn.Module):
    """prompt.py's MulitHeadAttention: q from the text, k and v from the visual tokens, no qkv bias."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q, k, v):  # q (B, K, E), k = v (B, N, E)
        B, K, C = q.shape
        N = k.shape[1]
        h = self.heads
        q = self.q_proj(q).reshape(B, K, h, C // h).permute(0, 2, 1, 3)
        k = self.k_proj(k).reshape(B, N, h, C // h).permute(0, 2, 1, 3)
        v = self.v_proj(v).reshape(B, N, h, C // h).permute(0, 2, 1, 3)
        a = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)     # (B, h, K, N)
        return self.proj((a @ v).transpose(1, 2).reshape(B, K, C))


class PromptGeneratorLayer(nn.Module):
    """prompt.py: x = x + cross_attn(norm1(x), visual, visual); x = x + mlp(norm3(x)). The visual tokens are not
    normalised again here (VideoSpecificPrompt.norm did it once). mlp indices 0 and 3 are the Linears (1 is
    QuickGELU, 2 a Dropout with p 0 in the official code; the dropouts there are all p 0 and left out here)."""

    def __init__(self, dim):
        super().__init__()
        self.cross_attn = PromptCrossAttention(dim, dim // 64)
        self.norm1 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), QuickGELU(), nn.Identity(), nn.Linear(4 * dim, dim))

    def forward(self, x, visual):
        q = self.norm1(x)
        x = x + self.cross_attn(q, visual, visual)
        return x + self.mlp(self.norm3(x))


class VideoSpecificPrompt(nn.Module):
    """Prefix `prompts_generator.`: returns alpha * decoder(text, norm(visual)) (B, K, E)."""

    def __init__(self, layers, embed, alpha):
        super().__init__()
        self.norm = nn.LayerNorm(embed)
        self.decoder = nn.ModuleList([PromptGeneratorLayer(embed) for _ in range(layers)])
        self.alpha = nn.Parameter(torch.ones(embed) * alpha)
        self.apply(_trunc_normal_init)

    def forward(self, text, visual):
        visual = self.norm(visual)
        for layer in self.decoder:
            text = layer(text, visual)
        return self.alpha * text


def _trunc_normal_init(m):
    """mit.py / prompt.py _init_weights: Linear (incl. nn.MultiheadAttention.out_proj, a Linear subclass) weight
    truncated normal std 0.02 (cut at +-2 absolute, as timm's trunc_normal_), bias 0; LayerNorm 1 and 0.
    nn.MultiheadAttention's own in_proj keeps its xavier-uniform weight and zero bias."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class XCLIP(nn.Module):
    """xclip.py's XCLIP. Sub-modules and parameters are registered in the official order, so state_dict() lists
    the same names in the same order. heads = width // 64 everywhere (text, vision, MIT, prompts).

    xclip.c's ablations (docs/model.md §14; the defaults are the official model): cct=False gives CLIP's plain
    blocks per frame (no message_* tensors); mit_layers=0 no MIT at all (no mit.* tensors): the video feature is
    the frames' mean; prompt_layers=0 no prompt generator at all (no prompts_* tensors): the class features are
    the text features. All three together: CLIP + mean pooling.
    Ablation options of xclip.c (not in the official code; the defaults are the official model, unchanged):
      head='linear'   class scores = head(video features), head = nn.Linear(embed, num_classes) registered last
                      with PyTorch's default initialisation; no prompt generator, no prompts_visual_*, no text
                      tower, no logit_scale (prompt_layers must be 0); forward(video, text=None) ignores text.
      fix_vision=True freezes the vision branch (fix_vision below): visual.* and message_*, mit*, prompts_*."""

    def __init__(self, T=8, image=32, patch=8, vision_width=128, vision_layers=2, embed=128, context=77, vocab=64,
                 text_width=128, text_layers=1, mit_layers=1, prompt_layers=2, prompts_alpha=0.1, drop_path=0.0,
                 use_cache=True, cct=True, head="text", num_classes=None, fix_vision=False, context_tokens=0,
                 templates=0):
        """Prompting options (not in the official code; docs/model.md "Prompting"): context_tokens = N adds CoOp's
        learnable context prompt_learner.ctx (N, text_width), whose rows replace the token embeddings of positions
        1..N (placeholder slots after SOT) and which trains (and is never cached) under fix_text; templates = M > 0
        says the text holds M rows per class (class k: rows k*M .. k*M+M-1), ensembled as CLIP's
        zeroshot_classifier (normalise, mean over M, normalise). Both 0: the official model, unchanged."""
        super().__init__()
        assert head in ("text", "linear")
        assert head == "text" or (prompt_layers == 0 and num_classes), "head='linear': prompt_layers 0 and num_classes"
        self.head_kind = head
        self.context_length = context
        self.prompts_generator = VideoSpecificPrompt(prompt_layers, embed, prompts_alpha) if prompt_layers > 0 else None
        self.use_cache = use_cache
        self.mit = MultiframeIntegrationTransformer(T, embed, mit_layers) if mit_layers > 0 else None
        rates = [x.item() for x in torch.linspace(0, drop_path, vision_layers)] if drop_path > 0.0 else None
        self.visual = CrossFrameCommunicationTransformer(image, patch, vision_width, vision_layers, embed, T, rates, cct)
        if head == "linear":
            self.head = nn.Linear(embed, num_classes)
            if fix_vision:
                fix_vision_branch(self)
            return
        mask = torch.full((context, context), float("-inf")).triu_(1)
        self.transformer = Transformer(text_width, text_layers, 4 * text_width, mask)
        self.vocab_size = vocab
        self.token_embedding = nn.Embedding(vocab, text_width)
        self.positional_embedding = nn.Parameter(torch.empty(context, text_width))
        self.ln_final = nn.LayerNorm(text_width)
        self.text_projection = nn.Parameter(torch.empty(text_width, embed))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.cache_text_features = None
        if prompt_layers > 0:
            self.prompts_visual_ln = nn.LayerNorm(vision_width)
            self.prompts_visual_proj = nn.Parameter(torch.randn(vision_width, embed))
        self._init_text()
        self.templates = templates
        self.prompt_learner = None
        if context_tokens:
            self.prompt_learner = nn.Module()
            self.prompt_learner.ctx = nn.Parameter(torch.empty(context_tokens, text_width))
            nn.init.normal_(self.prompt_learner.ctx, std=0.02)  # CoOp's initialisation
        if fix_vision:
            fix_vision_branch(self)

    def _init_text(self):
        """CLIP.initialize_parameters as xclip.py calls it: only the text tower and text_projection."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        width, layers = self.ln_final.weight.shape[0], len(self.transformer.resblocks)
        proj_std = width ** -0.5 * (2 * layers) ** -0.5
        for blk in self.transformer.resblocks:
            nn.init.normal_(blk.attn.in_proj_weight, std=width ** -0.5)
            nn.init.normal_(blk.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(blk.mlp.c_fc.weight, std=(2 * width) ** -0.5)
            nn.init.normal_(blk.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width ** -0.5)

    def encode_text(self, text):  # (K, S) ids -> (K, E), as CLIP; with CoOp's context in slots 1..N
        x = self.token_embedding(text)
        if self.prompt_learner is not None:
            ctx = self.prompt_learner.ctx
            x = torch.cat([x[:, :1], ctx.unsqueeze(0).expand(x.shape[0], -1, -1), x[:, 1 + ctx.shape[0]:]], dim=1)
        x = x + self.positional_embedding
        x = self.ln_final(self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def encode_video(self, video):
        """(B, T, 3, H, W) -> video features (B, E) (MIT output, not normalised), patch context (B, T, N, E)."""
        b, t, c, h, w = video.shape
        cls, patches = self.visual(video.reshape(-1, c, h, w))
        cls = cls.view(b, t, -1)
        video_features = self.mit(cls) if self.mit is not None else cls.mean(dim=1)  # mit_layers 0: the frames' mean
        if self.prompts_generator is None:  # prompt_layers 0: no visual context needed
            return video_features, None
        patches = self.prompts_visual_ln(patches) @ self.prompts_visual_proj
        return video_features, patches.view(b, t, -1, cls.shape[-1])

    def cache_text(self, text):
        """With fix_text (use_cache) the text features are computed once, in eval mode and without gradients,
        and reused for every later call whatever text is passed. As in the official code this ends with
        self.train(), also when called from an eval-mode forward.
        Note: official validate() calls model.eval() once, then every forward runs
        cache_text, which leaves the model in train mode, so from the second validation batch on the video
        encoder runs in train mode: with drop_path > 0 evaluation would be stochastic (the default drop_path 0
        hides this; no other train/eval difference exists in X-CLIP). The cache is never invalidated either."""
        self.eval()
        with torch.no_grad():
            if self.cache_text_features is None:
                self.cache_text_features = self.text_features(text)
        self.train()
        return self.cache_text_features

    def text_features(self, text):
        """Class text features (K, E): encode_text, then with templates CLIP's ensemble over each class's M rows."""
        f = self.encode_text(text)
        if not self.templates:
            return f
        f = f / f.norm(dim=-1, keepdim=True)
        f = f.view(-1, self.templates, f.shape[-1]).mean(dim=1)
        return f / f.norm(dim=-1, keepdim=True)

    def class_features(self, text_features, context):
        """text (K, E), context (B, N, E) -> class features (B, K, E) = text + prompts."""
        text = text_features.unsqueeze(0).expand(context.shape[0], -1, -1)
        return text + self.prompts_generator(text, context)

    def forward(self, video, text=None):
        video_features, patches = self.encode_video(video)
        if self.head_kind == "linear":
            return self.head(video_features)
        cached = self.use_cache and self.prompt_learner is None  # CoOp's context trains through the frozen tower
        if self.prompts_generator is None:  # prompt_layers 0: CLIP's logits against the text features
            text_features = self.cache_text(text) if cached else self.text_features(text)
            v = video_features / video_features.norm(dim=-1, keepdim=True)
            c = text_features / text_features.norm(dim=-1, keepdim=True)
            return self.logit_scale.exp() * v @ c.t()
        context = patches.mean(dim=1)
        cached = self.use_cache and self.prompt_learner is None  # CoOp's context trains through the frozen tower
        text_features = self.cache_text(text) if cached else self.text_features(text)
        cls = self.class_features(text_features, context)
        v = video_features / video_features.norm(dim=-1, keepdim=True)
        c = cls / cls.norm(dim=-1, keepdim=True)
        return torch.einsum("bd,bkd->bk", v, self.logit_scale.exp() * c)


# ---- training rules of the official code (utils/optimizer.py) --------------------------------------------------

def fix_text(model):
    """utils/optimizer.py fix_text: every parameter whose name contains none of "visual.", "mit", "prompts" is
    frozen: the text tower (token_embedding, positional_embedding, transformer.*, ln_final, text_projection) and
    logit_scale. prompts_visual_ln / prompts_visual_proj stay trainable through "prompts" ("visual." has a dot).
    Note (docs/model.md §2.4): logit_scale is frozen too, not only the text encoder. main.py also sets
    use_cache = FIX_TEXT, so the text features are computed once (cache_text)."""
    for name, p in model.named_parameters():
        if not ("visual." in name or "mit" in name or "prompts" in name or name.startswith("prompt_learner.")):
            p.requires_grad_(False)


def fix_vision_branch(model):
    """xclip.c's model.fix_vision: the vision branch frozen, i.e. visual.* and the X-CLIP additions named message_,
    mit or prompts ("the new modules follow vision", prompts_generator included). Not head.*, not the text tower
    or logit_scale (fix_text decides those)."""
    for name, p in model.named_parameters():
        if "visual." in name or "mit" in name or "prompts" in name or "message_" in name:
            p.requires_grad_(False)


def _no_decay(name, p, skip_keywords=("positional_embedding",)):
    # set_weight_decay: 1-D tensors, names ending in ".bias", and names containing a no_weight_decay_keywords
    # entry (XCLIP.no_weight_decay_keywords = {'positional_embedding'}; XCLIP has no no_weight_decay list).
    return p.ndim == 1 or name.endswith(".bias") or any(k in name for k in skip_keywords)


def param_groups(model, lr, weight_decay=0.001):
    """utils/optimizer.py build_optimizer: four set_weight_decay calls, each giving a (decay, no-decay) pair of
    groups, concatenated in the order clip, mit, prompts, msg:
      clip:    names containing none of "prompts", "mit", "message_"   lr
      mit:     names containing "mit"                                  10 lr
      prompts: names containing "prompts"                              10 lr
      msg:     names containing "message_"                             10 lr
    Frozen parameters (requires_grad False) are skipped. Returns a list for torch.optim.AdamW.
    Note (docs/model.md §9.1): a 0-d tensor is not "1-D", so logit_scale (trainable only without fix_text) gets weight decay;
    in_proj_bias does not end in ".bias" but is 1-D, so no decay. The group order (clip, mit, prompts, msg; decay
    before no-decay; named_parameters order inside) numbers the parameters in optimizer.state_dict(), which the
    official checkpoints save ('optimizer')."""
    def groups(select, group_lr):
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            if p.requires_grad and select(name):
                (no_decay if _no_decay(name, p) else decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay, "lr": group_lr},
                {"params": no_decay, "weight_decay": 0.0, "lr": group_lr}]

    out = (groups(lambda n: not any(k in n for k in ("prompts", "mit", "message_", "prompt_learner."))
                  and not n.startswith("head."), lr)
           + groups(lambda n: "mit" in n, 10 * lr)
           + groups(lambda n: "prompts" in n, 10 * lr)
           + groups(lambda n: "message_" in n, 10 * lr))
    if any(n.startswith("head.") for n, _ in model.named_parameters()):  # xclip.c's linear head: a new tensor, 10x
        out += groups(lambda n: n.startswith("head."), 10 * lr)
    if getattr(model, "prompt_learner", None) is not None:  # CoOp's context vectors: new, 10x
        out += groups(lambda n: n.startswith("prompt_learner."), 10 * lr)
    return out


def build_optimizer(model, lr, weight_decay=0.001):
    """AdamW as the official build_optimizer makes it (betas (0.9, 0.98), eps 1e-8, decay per group)."""
    return torch.optim.AdamW(param_groups(model, lr, weight_decay), betas=(0.9, 0.98), eps=1e-8)
