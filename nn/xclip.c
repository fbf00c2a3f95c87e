// xclip.c - see xclip.h.
#include "nn/xclip.h"
#include "autograd/kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ---- configuration ------------------------------------------------------------------------------
XClipConfig xclip_config_default(const ClipConfig *clip, int64_t frames) {
    return (XClipConfig){.clip = *clip, .frames = frames, .mit_layers = 1, .prompt_layers = 2,
                         .prompt_alpha = 0.1f, .drop_path = 0.0f, .fix_text = true, .cct = true,
                         .head = XCLIP_HEAD_TEXT, .fix_vision = false};
}

bool xclip_weights_are_xclip(const WeightSet *ws) {
    for (int i = 0; i < ws->n; i++)
        if (xclip_is_new_tensor(ws->t[i].name)) return true;
    return false;
}

int xclip_config_check(const XClipConfig *cfg, XcError *err) {
    if (cfg->head != XCLIP_HEAD_LINEAR) return XC_OK;
    if (cfg->prompt_layers > 0)
        return xc_err(err, "model.head = linear has no class texts for the video-specific prompts: model.prompt_layers "
                           "must be 0 (got %lld)", (long long)cfg->prompt_layers);
    if (cfg->num_classes < 1)
        return xc_err(err, "model.head = linear needs the number of classes K (got %lld)", (long long)cfg->num_classes);
    return XC_OK;
}

// The one place that says whether both freezes leave something to train. Trainable additions outside the
// two towers extend it (CoOp context vectors: `|| cfg->context_tokens > 0`).
bool xclip_something_trains(const XClipConfig *cfg) {
    return !cfg->fix_text || !cfg->fix_vision || cfg->head == XCLIP_HEAD_LINEAR || cfg->context_tokens > 0;
}

void xclip_drop_unused_weights(WeightSet *ws, const XClipConfig *cfg) {
    if (cfg->head != XCLIP_HEAD_LINEAR) return;
    int kept = 0;
    for (int i = 0; i < ws->n; i++) {
        const char *n = ws->t[i].name;
        bool unused = xclip_is_text_tensor(n) || !strcmp(n, "logit_scale") || strstr(n, "prompts");
        if (unused) {
            xc_free(ws->t[i].name);
            xc_free(ws->t[i].data);
        } else {
            ws->t[kept++] = ws->t[i];
        }
    }
    ws->n = kept;
}

static int64_t count_prefixed(const WeightSet *ws, const char *fmt) {
    int64_t n = 0;
    char name[256];
    for (;;) {
        snprintf(name, sizeof name, fmt, (long long)n);
        if (!weights_find(ws, name)) return n;
        n++;
    }
}

int xclip_config_from_weights(XClipConfig *cfg, const WeightSet *ws, int64_t frames, bool interpolate_frames,
                              XcError *err) {
    ClipConfig clip;
    const WeightTensor *head = weights_find(ws, "head.weight"); // a linear-head model: no text tower
    if ((head ? clip_vision_config_from_weights(&clip, ws, err) : clip_config_from_weights(&clip, ws, err)) != XC_OK)
        return XC_ERR;
    if (frames < 1) return xc_err(err, "frames must be >= 1 (got %lld)", (long long)frames);
    *cfg = xclip_config_default(&clip, frames);
    if (head) {
        const WeightTensor *bias = weights_find(ws, "head.bias");
        if (head->ndim != 2 || head->shape[1] != clip.embed_dim || head->shape[0] < 1 || !bias || bias->ndim != 1 ||
            bias->shape[0] != head->shape[0])
            return xc_err(err, "weights: head.weight should be (K, %lld) with head.bias (K)", (long long)clip.embed_dim);
        cfg->head = XCLIP_HEAD_LINEAR;
        cfg->num_classes = head->shape[0];
    }
    const WeightTensor *ctx = weights_find(ws, "prompt_learner.ctx"); // CoOp context vectors (N, D)
    if (ctx) {
        if (ctx->ndim != 2 || ctx->shape[1] != clip.text_width || ctx->shape[0] < 1 || ctx->shape[0] + 3 > clip.context)
            return xc_err(err, "weights: prompt_learner.ctx should be (N, %lld) with 1 <= N <= %lld", (long long)clip.text_width,
                          (long long)clip.context - 3);
        cfg->context_tokens = ctx->shape[0];
    }
    if (!xclip_weights_are_xclip(ws)) return XC_OK; // plain CLIP: X-CLIP tensors are new
    const WeightTensor *pos = weights_find(ws, "mit.positional_embedding"); // absent without MIT
    if (pos && (pos->ndim != 3 || pos->shape[0] != 1 || pos->shape[2] != clip.embed_dim))
        return xc_err(err, "weights: mit.positional_embedding should be (1, T, %lld)", (long long)clip.embed_dim);
    if (pos && pos->shape[1] != frames && !interpolate_frames)
        return xc_err(err, "weights: the checkpoint was trained with T = %lld frames, the run asks for %lld\n"
                           "HINT: set the frame count to %lld, or allow interpolating the MIT positional embedding",
                      (long long)pos->shape[1], (long long)frames, (long long)pos->shape[1]);
    cfg->mit_layers = count_prefixed(ws, "mit.resblocks.%lld.attn.in_proj_weight");
    cfg->prompt_layers = count_prefixed(ws, "prompts_generator.decoder.%lld.cross_attn.q_proj.weight");
    if (xclip_config_check(cfg, err) != XC_OK) return xc_err(err, "weights: %s", err->msg);
    if (cfg->mit_layers > XCLIP_MAX_LAYERS || cfg->prompt_layers > XCLIP_MAX_LAYERS)
        return xc_err(err, "weights: %lld MIT layers and %lld prompt layers (at most %d)", (long long)cfg->mit_layers,
                      (long long)cfg->prompt_layers, XCLIP_MAX_LAYERS);
    if ((pos != NULL) != (cfg->mit_layers > 0))
        return xc_err(err, "weights: %s", pos ? "mit.positional_embedding without mit.resblocks.0 (MIT blocks)"
                                              : "mit.resblocks.0 without mit.positional_embedding");
    if (cfg->prompt_layers == 0 && weights_find(ws, "prompts_generator.alpha"))
        return xc_err(err, "weights: prompts_generator.alpha without prompts_generator.decoder.0: a prompt generator of 0 "
                           "layers (model.prompt_layers = 0 now means no prompt generator at all)");
    // cct: the message tensors of every vision block, or of none
    int64_t messages = count_prefixed(ws, "visual.transformer.resblocks.%lld.message_fc.weight");
    if (messages != 0 && messages != clip.vision_layers)
        return xc_err(err, "weights: message_fc in %lld of %lld vision blocks (cross-frame communication in all or none)",
                      (long long)messages, (long long)clip.vision_layers);
    cfg->cct = messages > 0;
    return XC_OK;
}

int xclip_adapt_weights(WeightSet *ws, int64_t T, XcError *err) {
    const WeightTensor *pos = weights_find(ws, "mit.positional_embedding");
    if (!pos || pos->shape[1] == T) return XC_OK;
    if (pos->ndim != 3 || T < 1) return xc_err(err, "weights: cannot resample mit.positional_embedding");
    int64_t T0 = pos->shape[1], E = pos->shape[2];
    float *out = xc_malloc((size_t)(T * E) * sizeof(float));
    for (int64_t t = 0; t < T; t++) { // source coordinate as F.interpolate(mode='linear', align_corners=False)
        double src = ((double)t + 0.5) * (double)T0 / (double)T - 0.5;
        if (src < 0) src = 0;
        int64_t i0 = (int64_t)floor(src), i1 = i0 + 1 < T0 ? i0 + 1 : T0 - 1;
        double w1 = src - (double)i0;
        for (int64_t e = 0; e < E; e++)
            out[t * E + e] = (float)((1 - w1) * pos->data[i0 * E + e] + w1 * pos->data[i1 * E + e]);
    }
    WeightTensor *w = (WeightTensor *)pos;
    xc_free(w->data);
    w->data = out;
    w->shape[1] = T;
    w->numel = T * E;
    return XC_OK;
}

// ---- registration -------------------------------------------------------------------------------
static void prompt_layer_init(PromptLayer *p, ParamStore *ps, int64_t j, int64_t E) {
    char n[128];
#define PNAME(suffix) (snprintf(n, sizeof n, "prompts_generator.decoder.%lld.%s", (long long)j, suffix), n)
    linear_init(&p->q_proj, ps, PNAME("cross_attn.q_proj"), E, E, false);
    linear_init(&p->k_proj, ps, PNAME("cross_attn.k_proj"), E, E, false);
    linear_init(&p->v_proj, ps, PNAME("cross_attn.v_proj"), E, E, false);
    linear_init(&p->proj, ps, PNAME("cross_attn.proj"), E, E, true);
    layernorm_init(&p->norm1, ps, PNAME("norm1"), E);
    layernorm_init(&p->norm3, ps, PNAME("norm3"), E);
    linear_init(&p->fc1, ps, PNAME("mlp.0"), E, 4 * E, true);
    linear_init(&p->fc2, ps, PNAME("mlp.3"), 4 * E, E, true);
#undef PNAME
    p->heads = (int)(E / 64 > 0 ? E / 64 : 1);
}

void xclip_init(XClip *m, ParamStore *ps, const XClipConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    const ClipConfig *c = &cfg->clip;
    int64_t W = c->vision_width, E = c->embed_dim;
    XC_CHECK(cfg->clip.vision_layers <= XCLIP_MAX_LAYERS && cfg->mit_layers <= XCLIP_MAX_LAYERS &&
                 cfg->prompt_layers <= XCLIP_MAX_LAYERS, "xclip_init: too many layers");
    XcError err;
    XC_CHECK(xclip_config_check(cfg, &err) == XC_OK, "xclip_init: %s", err.msg);
    const bool linear = cfg->head == XCLIP_HEAD_LINEAR;
    bool prev = ps->create_frozen;
    ps->create_frozen = prev || cfg->fix_vision; // fix_vision: visual.* and the additions message_*, mit*, prompts_*
    clip_vision_init_stem(&m->visual, ps, c);
    for (int64_t i = 0; i < c->vision_layers; i++) {
        CctBlock *b = &m->blocks[i];
        char p[128], q[160];
        snprintf(p, sizeof p, "visual.transformer.resblocks.%lld", (long long)i);
        if (cfg->cct) { // without cct the block is CLIP's own: no message tensors
            snprintf(q, sizeof q, "%s.message_fc", p);
            linear_init(&b->message_fc, ps, q, W, W, true);
            snprintf(q, sizeof q, "%s.message_ln", p);
            layernorm_init(&b->message_ln, ps, q, W);
            snprintf(q, sizeof q, "%s.message_attn", p);
            mha_init(&b->message_attn, ps, q, W, (int)c->vision_heads);
        }
        resblock_init_mlp(&b->base, ps, p, W, (int)c->vision_heads, c->vision_mlp);
        // torch.linspace(0, drop_path, layers)
        b->drop_path = c->vision_layers > 1 ? cfg->drop_path * (float)i / (float)(c->vision_layers - 1) : 0.0f;
    }
    m->visual.layers = 0; // the CLIP blocks of ClipVision are not used: X-CLIP has its own
    if (cfg->mit_layers > 0) // without MIT the video feature is the frames' mean: no positional embedding either
        m->mit_positional_embedding = param_new(ps, "mit.positional_embedding", 3, (int64_t[]){1, cfg->frames, E});
    for (int64_t j = 0; j < cfg->mit_layers; j++) {
        char p[64];
        snprintf(p, sizeof p, "mit.resblocks.%lld", (long long)j);
        resblock_init(&m->mit[j], ps, p, E, (int)(E / 64 > 0 ? E / 64 : 1));
    }
    if (linear) { // class scores from head(video features): no prompt generator, no text tower, no logit_scale
        ps->create_frozen = prev;
        linear_init(&m->head, ps, "head", E, cfg->num_classes, true);
        return;
    }
    if (cfg->prompt_layers > 0) { // without prompt layers no generator at all: the class features are the texts'
        layernorm_init(&m->prompts_norm, ps, "prompts_generator.norm", E);
        for (int64_t j = 0; j < cfg->prompt_layers; j++) prompt_layer_init(&m->prompts[j], ps, j, E);
        m->prompts_alpha = param_new(ps, "prompts_generator.alpha", 1, (int64_t[]){E});
        layernorm_init(&m->prompts_visual_ln, ps, "prompts_visual_ln", W);
        m->prompts_visual_proj = param_new(ps, "prompts_visual_proj", 2, (int64_t[]){W, E});
    }
    ps->create_frozen = prev;
    clip_text_init(&m->text, ps, c, cfg->fix_text);
    ps->create_frozen = cfg->fix_text; // the official fix_text freezes everything but visual, mit, prompts
    m->logit_scale = param_new(ps, "logit_scale", 0, NULL);
    ps->create_frozen = false; // CoOp's context vectors train even when the text tower is frozen
    if (cfg->context_tokens > 0)
        m->prompt_ctx = param_new(ps, "prompt_learner.ctx", 2, (int64_t[]){cfg->context_tokens, c->text_width});
    ps->create_frozen = prev;
}

void xclip_free(XClip *m) {
    xc_free(m->text_cache);
    m->text_cache = NULL;
}

// The one rule for "a tensor X-CLIP adds to CLIP", the official optimiser's (utils/optimizer.py): its name
// contains "message_", "mit" or "prompts". It decides which tensors a CLIP checkpoint may lack, which get the
// 10x learning rate, and (with visual.*) which train under fix_text.
bool xclip_is_new_tensor(const char *name) {
    return strstr(name, "message_") || strstr(name, "mit") || strstr(name, "prompts") || !strncmp(name, "head.", 5) ||
           !strncmp(name, "prompt_learner.", 15);
}

bool xclip_is_vision_tensor(const char *name) { // not the linear head, not CoOp's context (text side)
    return !strncmp(name, "visual.", 7) ||
           (xclip_is_new_tensor(name) && strncmp(name, "head.", 5) && strncmp(name, "prompt_learner.", 15));
}

bool xclip_trains_under_fix_text(const char *name) { return !strncmp(name, "visual.", 7) || xclip_is_new_tensor(name); }

bool xclip_is_text_tensor(const char *name) {
    return !xclip_trains_under_fix_text(name) && strcmp(name, "logit_scale") != 0;
}

// ---- initialisation (docs/model.md §7) ------------------------------------------------------------------
static void zero(Tensor *t) { init_constant(t, 0.0f); }

static void init_mha_new(MultiheadAttention *a, Rng *r, bool out_trunc) {
    init_xavier_uniform(a->in_w, r);
    zero(a->in_b);
    if (out_trunc) init_trunc_normal(a->out_w, r, 0.02f);
    else init_linear_default(&(Linear){a->out_w, NULL}, r); // nn.Linear default for the weight
    zero(a->out_b);
}


static void init_linear_trunc(Linear *l, Rng *r) {
    init_trunc_normal(l->w, r, 0.02f);
    if (l->b) zero(l->b);
}

void xclip_init_new_tensors(XClip *m, uint64_t seed) {
    Rng r = rng_stream(seed, RNG_STREAM_INIT);
    const XClipConfig *c = &m->cfg;
    // one stream drawn in this order; an absent module (cct off, mit_layers 0, prompt_layers 0) draws nothing
    for (int64_t i = 0; i < c->clip.vision_layers && c->cct; i++) {
        CctBlock *b = &m->blocks[i];
        init_linear_default(&b->message_fc, &r);
        layernorm_reset(&b->message_ln);
        init_mha_new(&b->message_attn, &r, false);
    }
    if (c->mit_layers > 0) init_trunc_normal(m->mit_positional_embedding, &r, 0.02f);
    for (int64_t j = 0; j < c->mit_layers; j++) {
        ResBlock *b = &m->mit[j];
        layernorm_reset(&b->ln_1);
        layernorm_reset(&b->ln_2);
        init_mha_new(&b->attn, &r, true);
        init_linear_trunc(&b->c_fc, &r);
        init_linear_trunc(&b->c_proj, &r);
    }
    if (c->head == XCLIP_HEAD_LINEAR) { // the head last: PyTorch's nn.Linear default (uniform +-1/sqrt(E))
        init_linear_default(&m->head, &r);
        return;
    }
    if (c->prompt_layers == 0) { // no prompt generator
        xclip_init_context(m, seed);
        return;
    }
    layernorm_reset(&m->prompts_norm);
    for (int64_t j = 0; j < c->prompt_layers; j++) {
        PromptLayer *p = &m->prompts[j];
        Linear *lin[] = {&p->q_proj, &p->k_proj, &p->v_proj, &p->proj, &p->fc1, &p->fc2};
        for (size_t k = 0; k < sizeof lin / sizeof lin[0]; k++) init_linear_trunc(lin[k], &r);
        layernorm_reset(&p->norm1);
        layernorm_reset(&p->norm3);
    }
    init_constant(m->prompts_alpha, c->prompt_alpha);
    layernorm_reset(&m->prompts_visual_ln);
    rng_fill_normal(&r, m->prompts_visual_proj->data, m->prompts_visual_proj->numel, 0.0f, 1.0f);
    xclip_init_context(m, seed);
}

void xclip_init_context(XClip *m, uint64_t seed) {
    if (!m->prompt_ctx) return;
    Rng r = rng_substream(seed, RNG_STREAM_INIT, 2, 0); // apart from the X-CLIP additions' and CLIP's streams
    rng_fill_normal(&r, m->prompt_ctx->data, m->prompt_ctx->numel, 0.0f, 0.02f); // CoOp: nn.init.normal_(std=0.02)
}

// CLIP's initialize_parameters (openai/CLIP model.py) for both towers, plus ViT's own scales.

void xclip_init_clip_random(XClip *m, uint64_t seed) {
    ResBlock *vision[XCLIP_MAX_LAYERS]; // CLIP's blocks inside the cross-frame communication blocks
    for (int64_t i = 0; i < m->cfg.clip.vision_layers; i++) vision[i] = &m->blocks[i].base;
    const bool text = m->cfg.head == XCLIP_HEAD_TEXT;
    clip_init_random_towers(&m->visual, vision, text ? &m->text : NULL, m->logit_scale, &m->cfg.clip, seed);
}

// ---- forward ------------------------------------------------------------------------------------
Tensor *xclip_text_features(Graph *g, const XClip *m, const int32_t *tokens, int64_t K, int64_t S) {
    const int64_t M = m->cfg.templates > 0 ? m->cfg.templates : 1, E = m->cfg.clip.embed_dim;
    Tensor *f = clip_encode_text_ctx(g, &m->text, tokens, K * M, S, true, m->prompt_ctx); // (K*M, E)
    if (m->cfg.templates <= 0) return f;
    // CLIP's zeroshot_classifier: normalise each template's features, mean over the M templates, normalise again
    Tensor *each = op_reshape(g, op_l2_normalize(g, f), 3, (int64_t[]){K, M, E});
    return op_l2_normalize(g, op_mean(g, each, 1));
}

void xclip_cache_text(XClip *m, const int32_t *tokens, int64_t K, int64_t S) {
    XC_CHECK(m->cfg.head == XCLIP_HEAD_TEXT, "xclip_cache_text: a linear-head model has no text tower");
    Graph g; // its own graph without a Gemm context: float32 matmuls, whatever the caller's graph uses
    graph_init(&g, 0);
    graph_set_grad(&g, false);
    Tensor *f = xclip_text_features(&g, m, tokens, K, S);
    xc_free(m->text_cache);
    m->text_cache = xc_malloc((size_t)f->numel * sizeof(float));
    memcpy(m->text_cache, f->data, (size_t)f->numel * sizeof(float));
    m->text_cache_k = K;
    graph_free(&g);
}

void xclip_set_text_cache(XClip *m, const float *features, int64_t K) {
    XC_CHECK(m->cfg.head == XCLIP_HEAD_TEXT && K > 0, "xclip_set_text_cache: %lld classes for a model with%s a text tower",
             (long long)K, m->cfg.head == XCLIP_HEAD_TEXT ? "" : "out");
    const size_t n = (size_t)K * (size_t)m->cfg.clip.embed_dim;
    xc_free(m->text_cache);
    m->text_cache = xc_malloc(n * sizeof(float));
    memcpy(m->text_cache, features, n * sizeof(float));
    m->text_cache_k = K;
}

static Tensor *maybe_drop_path(Graph *g, Tensor *x, float p, Rng *drop) {
    return drop && p > 0.0f ? op_drop_path(g, x, p, drop) : x;
}

// One cross-frame communication block. x (BT, L, W) -> (BT, L, W).
static Tensor *cct_block(Graph *g, const CctBlock *b, Tensor *x, int64_t B, int64_t T, Rng *drop) {
    int64_t BT = x->shape[0], L = x->shape[1], W = x->shape[2];
    int64_t *zeros = arena_calloc(&g->step, (size_t)BT * sizeof(int64_t));
    // message tokens: m = message_fc(class token), then self-attention across the T frames of each video
    Tensor *msg = op_reshape(g, linear_forward(g, &b->message_fc, op_gather_rows(g, x, zeros)), 3, (int64_t[]){B, T, W});
    msg = op_add_residual(g, msg, maybe_drop_path(g, mha_ln_forward(g, &b->message_attn, &b->message_ln, msg, NULL),
                                         b->drop_path, drop));
    // intra-frame attention over the L tokens plus the frame's message token; the message token is
    // dropped again afterwards, so only the first L rows of the attention output are kept
    Tensor *parts[2] = {x, op_reshape(g, msg, 3, (int64_t[]){BT, 1, W})};
    Tensor *xm = op_concat(g, parts, 2, 1);
    Tensor *att = op_slice_consume(g, mha_ln_forward(g, &b->base.attn, &b->base.ln_1, xm, NULL), 1, 0, L);
    x = op_add_residual(g, x, maybe_drop_path(g, att, b->drop_path, drop));
    Tensor *h = mlp_ln_forward(g, &b->base.ln_2, &b->base.c_fc, &b->base.c_proj, x);
    return op_add_residual(g, x, maybe_drop_path(g, h, b->drop_path, drop));
}

// Without cct (model.cct = false): CLIP's residual attention block on each frame alone, with the same per-frame
// drop path on its two branches. x (BT, L, W) -> (BT, L, W).
static Tensor *plain_block(Graph *g, const CctBlock *b, Tensor *x, Rng *drop) {
    Tensor *att = mha_ln_forward(g, &b->base.attn, &b->base.ln_1, x, NULL);
    x = op_add_residual(g, x, maybe_drop_path(g, att, b->drop_path, drop));
    Tensor *h = mlp_ln_forward(g, &b->base.ln_2, &b->base.c_fc, &b->base.c_proj, x);
    return op_add_residual(g, x, maybe_drop_path(g, h, b->drop_path, drop));
}

typedef struct CctArgs {
    const CctBlock *b;
    int64_t B, T;
    bool cct;
} CctArgs;

static Tensor *cct_block_fn(Graph *g, const void *ctx, Tensor *x, Rng *drop) {
    const CctArgs *a = ctx;
    return a->cct ? cct_block(g, a->b, x, a->B, a->T, drop) : plain_block(g, a->b, x, drop);
}

// text (B, K, E), visual (B, N, E) (already normalised) -> text + cross_attn + mlp
static Tensor *prompt_layer(Graph *g, const PromptLayer *p, Tensor *text, Tensor *visual) {
    Tensor *q = layernorm_linear_forward(g, &p->norm1, p->q_proj.w, p->q_proj.b, text);
    Tensor *a = op_cross_attention(g, q, linear_forward(g, &p->k_proj, visual),
                                   linear_forward(g, &p->v_proj, visual), p->heads);
    text = op_add_residual(g, text, linear_forward(g, &p->proj, a));
    return op_add_residual(g, text, mlp_ln_forward(g, &p->norm3, &p->fc1, &p->fc2, text));
}

XClipOut xclip_forward(Graph *g, const XClip *m, Tensor *video, const int32_t *tokens, int64_t K, int64_t S, Rng *drop) {
    const XClipConfig *c = &m->cfg;
    char s[64];
    XC_CHECK(video->ndim == 5 && video->shape[1] == c->frames && video->shape[2] == 3,
             "xclip_forward: video %s, want (B, %lld, 3, H, W)", tensor_shape_str(video, s, sizeof s), (long long)c->frames);
    int64_t B = video->shape[0], T = c->frames, W = c->clip.vision_width, E = c->clip.embed_dim;
    XClipOut out = {0};
    const bool linear = c->head == XCLIP_HEAD_LINEAR;

    // text features (K, E)
    Tensor *text = NULL;
    if (linear) {
        // no text: class scores from the head
    } else if ((c->fix_text && !m->prompt_ctx) || !tokens) { // the cached features
        XC_CHECK(m->text_cache && (!tokens || m->text_cache_k == K), "xclip_forward: no cached text features of %lld "
                 "classes (xclip_cache_text first)", (long long)K);
        text = tensor_from(g, 2, (int64_t[]){m->text_cache_k, E}, m->text_cache);
        K = m->text_cache_k;
    } else {
        text = xclip_text_features(g, m, tokens, K, S);
    }
    out.text_features = text;

    // cross-frame communication transformer over the B*T frames; a frozen vision branch (fix_vision) records no
    // tape: its blocks run as in evaluation, released one by one (nothing upstream needs a gradient)
    const bool vision_grad = g->grad_enabled && !c->fix_vision;
    Tensor *x = clip_vision_stem(g, &m->visual, op_reshape(g, video, 4, (int64_t[]){B * T, 3, video->shape[3], video->shape[4]}));
    for (int64_t i = 0; i < c->clip.vision_layers; i++) {
        CctArgs args = {&m->blocks[i], B, T, c->cct};
        if (!vision_grad) x = graph_run_released(g, cct_block_fn, &args, x, drop); // evaluation: one block's memory
        else if (c->checkpoint) x = op_checkpoint(g, cct_block_fn, &args, sizeof args, x, drop);
        else x = cct_block_fn(g, &args, x, drop);
    }
    int64_t L = x->shape[1], N = L - 1;
    int64_t *zeros = arena_calloc(&g->step, (size_t)(B * T) * sizeof(int64_t));
    Tensor *frame = op_matmul(g, layernorm_forward(g, &m->visual.ln_post, op_gather_rows(g, x, zeros)), m->visual.proj, false, false);
    Tensor *context = NULL; // (B, N, E)
    if (c->prompt_layers > 0) { // visual context for the prompts: patch tokens of the last block, averaged over T
        Tensor *patches = op_matmul(g, layernorm_forward(g, &m->prompts_visual_ln, op_slice(g, x, 1, 1, N)),
                                    m->prompts_visual_proj, false, false); // (BT, N, E)
        context = op_mean(g, op_reshape(g, patches, 4, (int64_t[]){B, T, N, E}), 1);
    }
    Tensor *f = op_reshape(g, frame, 3, (int64_t[]){B, T, E});
    Tensor *video_features; // (B, E)
    if (c->mit_layers > 0) { // multi-frame integration transformer: y = f + pos; blocks; + f; mean over T
        Tensor *y = op_add(g, f, m->mit_positional_embedding);
        for (int64_t j = 0; j < c->mit_layers; j++) y = resblock_forward(g, &m->mit[j], y, NULL);
        video_features = op_mean(g, op_add(g, y, f), 1);
    } else { // no MIT: the frames' mean, as CLIP + mean pooling
        video_features = op_mean(g, f, 1);
    }
    out.video_features = video_features;
    if (linear) {
        out.logits = linear_forward(g, &m->head, video_features); // (B, K)
        return out;
    }
    if (c->prompt_layers == 0) { // no prompt generator: the class features are the text features, CLIP's logits
        Tensor *v = op_l2_normalize(g, video_features);
        out.logits = op_mul(g, op_matmul(g, v, op_l2_normalize(g, text), false, true), op_exp(g, m->logit_scale));
        return out;
    }

    // video-specific prompts: class features = text + alpha * generator(text, visual)
    Tensor *t = op_add(g, tensor_zeros(g, 3, (int64_t[]){B, K, E}), text);
    Tensor *vis = layernorm_forward(g, &m->prompts_norm, context);
    for (int64_t j = 0; j < c->prompt_layers; j++) t = prompt_layer(g, &m->prompts[j], t, vis);
    Tensor *classes = op_add(g, op_mul(g, t, m->prompts_alpha), text); // (B, K, E)

    // logits[b, k] = exp(logit_scale) <v_b / |v_b|, c_bk / |c_bk|>
    Tensor *v = op_reshape(g, op_l2_normalize(g, video_features), 3, (int64_t[]){B, E, 1});
    Tensor *dots = op_reshape(g, op_matmul(g, op_l2_normalize(g, classes), v, false, false), 2, (int64_t[]){B, K});
    out.logits = op_mul(g, dots, op_exp(g, m->logit_scale));
    (void)W;
    return out;
}
