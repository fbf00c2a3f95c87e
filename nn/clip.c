// clip.c - see clip.h.
#include "nn/clip.h"
#include "nn/arch_check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ---- architecture from a weight set -------------------------------------------------------------
static const WeightTensor *need(const WeightSet *ws, const char *name, int ndim, XcError *err) {
    const WeightTensor *t = weights_find(ws, name);
    if (!t) {
        xc_err(err, "weights: no tensor '%s': not a CLIP checkpoint?\nHINT: CLIP weights have visual.conv1.weight, "
                    "token_embedding.weight, text_projection, ...", name);
        return NULL;
    }
    if (t->ndim != ndim) {
        xc_err(err, "weights: '%s' has %d dims, CLIP's has %d", name, t->ndim, ndim);
        return NULL;
    }
    return t;
}

static int64_t count_layers(const WeightSet *ws, const char *prefix) {
    int64_t n = 0;
    char name[256];
    for (;;) {
        snprintf(name, sizeof name, "%s.%lld.attn.in_proj_weight", prefix, (long long)n);
        if (!weights_find(ws, name)) return n;
        n++;
    }
}

// The vision tower's sizes (and E from visual.proj) off the weights; the text fields are left alone.
static int vision_config_from_weights(ClipConfig *cfg, const WeightTensor *conv1, const WeightTensor *vpos,
                                      const WeightTensor *vfc, const WeightSet *ws, XcError *err) {
    cfg->vision_width = conv1->shape[0];
    cfg->patch = conv1->shape[2];
    int64_t n = vpos->shape[0] - 1, grid = (int64_t)llround(sqrt((double)n));
    if (conv1->shape[1] != 3 || conv1->shape[2] != conv1->shape[3] || grid * grid != n || vpos->shape[1] != cfg->vision_width) {
        return xc_err(err, "weights: visual.conv1.weight %lldx%lldx%lldx%lld and visual.positional_embedding %lldx%lld do "
                           "not describe a square ViT", (long long)conv1->shape[0], (long long)conv1->shape[1],
                      (long long)conv1->shape[2], (long long)conv1->shape[3], (long long)vpos->shape[0], (long long)vpos->shape[1]);
    }
    cfg->image_size = grid * cfg->patch;
    cfg->vision_layers = count_layers(ws, "visual.transformer.resblocks");
    cfg->vision_heads = cfg->vision_width / 64 > 0 ? cfg->vision_width / 64 : 1;
    cfg->vision_mlp = vfc->shape[0];
    return XC_OK;
}

int clip_config_from_weights(ClipConfig *cfg, const WeightSet *ws, XcError *err) {
    memset(cfg, 0, sizeof *cfg);
    const WeightTensor *conv1 = need(ws, "visual.conv1.weight", 4, err);
    const WeightTensor *vpos = conv1 ? need(ws, "visual.positional_embedding", 2, err) : NULL;
    const WeightTensor *tproj = vpos ? need(ws, "text_projection", 2, err) : NULL;
    const WeightTensor *lnf = tproj ? need(ws, "ln_final.weight", 1, err) : NULL;
    const WeightTensor *tpos = lnf ? need(ws, "positional_embedding", 2, err) : NULL;
    const WeightTensor *tok = tpos ? need(ws, "token_embedding.weight", 2, err) : NULL;
    const WeightTensor *vfc = tok ? need(ws, "visual.transformer.resblocks.0.mlp.c_fc.weight", 2, err) : NULL;
    const WeightTensor *tfc = vfc ? need(ws, "transformer.resblocks.0.mlp.c_fc.weight", 2, err) : NULL;
    if (!tfc || clip_arch_check_weights(ws, err) != XC_OK) return XC_ERR; // sizes in range and consistent
    if (vision_config_from_weights(cfg, conv1, vpos, vfc, ws, err) != XC_OK) return XC_ERR;
    cfg->embed_dim = tproj->shape[1];
    cfg->text_width = lnf->shape[0];
    cfg->text_layers = count_layers(ws, "transformer.resblocks");
    cfg->text_heads = cfg->text_width / 64 > 0 ? cfg->text_width / 64 : 1;
    cfg->text_mlp = tfc->shape[0];
    cfg->context = tpos->shape[0];
    cfg->vocab = tok->shape[0];
    if (cfg->vision_layers < 1 || cfg->vision_layers > CLIP_MAX_LAYERS || cfg->text_layers < 1 ||
        cfg->text_layers > CLIP_MAX_LAYERS)
        return xc_err(err, "weights: %lld vision and %lld text layers (1..%d supported)", (long long)cfg->vision_layers,
                      (long long)cfg->text_layers, CLIP_MAX_LAYERS);
    if (cfg->vision_width % cfg->vision_heads || cfg->text_width % cfg->text_heads)
        return xc_err(err, "weights: widths %lld / %lld are not multiples of 64 (CLIP's head size)",
                      (long long)cfg->vision_width, (long long)cfg->text_width);
    if (tproj->shape[0] != cfg->text_width || tok->shape[1] != cfg->text_width || tpos->shape[1] != cfg->text_width)
        return xc_err(err, "weights: text tower widths disagree (ln_final %lld, text_projection %lld, token_embedding %lld)",
                      (long long)cfg->text_width, (long long)tproj->shape[0], (long long)tok->shape[1]);
    return XC_OK;
}

int clip_vision_config_from_weights(ClipConfig *cfg, const WeightSet *ws, XcError *err) {
    memset(cfg, 0, sizeof *cfg);
    const WeightTensor *conv1 = need(ws, "visual.conv1.weight", 4, err);
    const WeightTensor *vpos = conv1 ? need(ws, "visual.positional_embedding", 2, err) : NULL;
    const WeightTensor *vproj = vpos ? need(ws, "visual.proj", 2, err) : NULL;
    const WeightTensor *vfc = vproj ? need(ws, "visual.transformer.resblocks.0.mlp.c_fc.weight", 2, err) : NULL;
    if (!vfc || clip_arch_check_vision_weights(ws, err) != XC_OK) return XC_ERR; // sizes in range and consistent
    if (vision_config_from_weights(cfg, conv1, vpos, vfc, ws, err) != XC_OK) return XC_ERR;
    cfg->embed_dim = vproj->shape[1];
    if (cfg->vision_layers < 1 || cfg->vision_layers > CLIP_MAX_LAYERS)
        return xc_err(err, "weights: %lld vision layers (1..%d supported)", (long long)cfg->vision_layers, CLIP_MAX_LAYERS);
    if (cfg->vision_width % cfg->vision_heads)
        return xc_err(err, "weights: vision width %lld is not a multiple of 64 (CLIP's head size)", (long long)cfg->vision_width);
    if (vproj->shape[0] != cfg->vision_width)
        return xc_err(err, "weights: visual.proj is %lldx%lld, want %lld rows (the vision width)", (long long)vproj->shape[0],
                      (long long)vproj->shape[1], (long long)cfg->vision_width);
    return XC_OK;
}

// ---- registration -------------------------------------------------------------------------------
void clip_vision_init_stem(ClipVision *v, ParamStore *ps, const ClipConfig *c) {
    int64_t W = c->vision_width, G = c->image_size / c->patch;
    v->class_embedding = param_new(ps, "visual.class_embedding", 1, (int64_t[]){W});
    v->positional_embedding = param_new(ps, "visual.positional_embedding", 2, (int64_t[]){G * G + 1, W});
    v->proj = param_new(ps, "visual.proj", 2, (int64_t[]){W, c->embed_dim});
    v->conv1 = param_new(ps, "visual.conv1.weight", 4, (int64_t[]){W, 3, c->patch, c->patch});
    layernorm_init(&v->ln_pre, ps, "visual.ln_pre", W);
    layernorm_init(&v->ln_post, ps, "visual.ln_post", W);
}

void clip_text_init(ClipText *t, ParamStore *ps, const ClipConfig *c, bool freeze) {
    bool prev = ps->create_frozen;
    ps->create_frozen = freeze; // a frozen tower gets no gradient buffers at all
    int64_t D = c->text_width;
    t->positional_embedding = param_new(ps, "positional_embedding", 2, (int64_t[]){c->context, D});
    t->text_projection = param_new(ps, "text_projection", 2, (int64_t[]){D, c->embed_dim});
    t->token_embedding = param_new(ps, "token_embedding.weight", 2, (int64_t[]){c->vocab, D});
    for (int64_t i = 0; i < c->text_layers; i++) {
        char p[64];
        snprintf(p, sizeof p, "transformer.resblocks.%lld", (long long)i);
        resblock_init_mlp(&t->blocks[i], ps, p, D, (int)c->text_heads, c->text_mlp);
    }
    layernorm_init(&t->ln_final, ps, "ln_final", D);
    t->layers = c->text_layers;
    ps->create_frozen = prev;
}

void clip_init(Clip *m, ParamStore *ps, const ClipConfig *c, bool freeze_text) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    clip_vision_init_stem(&m->visual, ps, c);
    for (int64_t i = 0; i < c->vision_layers; i++) {
        char p[64];
        snprintf(p, sizeof p, "visual.transformer.resblocks.%lld", (long long)i);
        resblock_init_mlp(&m->visual.blocks[i], ps, p, c->vision_width, (int)c->vision_heads, c->vision_mlp);
    }
    m->visual.layers = c->vision_layers;
    clip_text_init(&m->text, ps, c, freeze_text);
    bool prev = ps->create_frozen;
    ps->create_frozen = freeze_text;
    m->logit_scale = param_new(ps, "logit_scale", 0, NULL);
    ps->create_frozen = prev;
}

// ---- forward ------------------------------------------------------------------------------------
Tensor *clip_vision_stem(Graph *g, const ClipVision *v, Tensor *images) {
    int64_t F = images->shape[0], W = v->conv1->shape[0];
    Tensor *x = op_patch_embed(g, images, v->conv1); // (F, N, W)
    char s[64];
    XC_CHECK(x->shape[1] + 1 == v->positional_embedding->shape[0], "images %s give %lld patches, the model has %lld",
             tensor_shape_str(images, s, sizeof s), (long long)x->shape[1], (long long)v->positional_embedding->shape[0] - 1);
    Tensor *cls = op_add(g, tensor_zeros(g, 3, (int64_t[]){F, 1, W}), v->class_embedding);
    Tensor *parts[2] = {cls, x};
    x = op_add(g, op_concat(g, parts, 2, 1), v->positional_embedding);
    return layernorm_forward(g, &v->ln_pre, x);
}

Tensor *clip_encode_image(Graph *g, const Clip *m, Tensor *images) {
    const ClipVision *v = &m->visual;
    Tensor *x = clip_vision_stem(g, v, images);
    for (int64_t i = 0; i < v->layers; i++) x = resblock_forward(g, &v->blocks[i], x, NULL);
    int64_t F = x->shape[0];
    int64_t *zeros = arena_calloc(&g->step, (size_t)F * sizeof(int64_t));
    Tensor *cls = layernorm_forward(g, &v->ln_post, op_gather_rows(g, x, zeros));
    return op_matmul(g, cls, v->proj, false, false);
}

static Tensor *causal_mask(Graph *g, int64_t L) {
    Tensor *m = tensor_new(g, 2, (int64_t[]){L, L});
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < L; j++) m->data[i * L + j] = j > i ? -INFINITY : 0.0f;
    return m;
}

Tensor *clip_encode_text(Graph *g, const ClipText *t, const int32_t *tokens, int64_t K, int64_t S, bool fast) {
    return clip_encode_text_ctx(g, t, tokens, K, S, fast, NULL);
}

// The blocks on n rows of the K token rows (K, S): rows[i] is the i-th row taken, its first len positions run, and
// the output is the row at its EOT position eot[rows[i]] (< len) before ln_final: (n, D).
static Tensor *text_rows(Graph *g, const ClipText *t, const int32_t *tokens, int64_t S, const int64_t *rows, int64_t n,
                         int64_t len, const int64_t *eot, Tensor *ctx) {
    const int64_t D = t->token_embedding->shape[1];
    int32_t *ids = arena_alloc(&g->step, (size_t)(n * len) * sizeof(int32_t));
    int64_t *at = arena_alloc(&g->step, (size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        memcpy(ids + i * len, tokens + rows[i] * S, (size_t)len * sizeof(int32_t));
        at[i] = eot[rows[i]];
    }
    Tensor *x = op_reshape(g, op_embedding(g, t->token_embedding, ids, n * len), 3, (int64_t[]){n, len, D});
    if (ctx) { // CoOp: the embeddings of slots 1..N are the context vectors (the same for every row)
        const int64_t N = ctx->shape[0];
        XC_CHECK(ctx->ndim == 2 && ctx->shape[1] == D && N + 2 <= len, "clip_encode_text: %lld context vectors of "
                 "width %lld in texts of %lld tokens (width %lld)", (long long)N, (long long)ctx->shape[1], (long long)len,
                 (long long)D);
        Tensor *parts[3] = {op_slice(g, x, 1, 0, 1), op_add(g, tensor_zeros(g, 3, (int64_t[]){n, N, D}), ctx),
                            op_slice(g, x, 1, N + 1, len - N - 1)};
        x = op_concat(g, parts, 3, 1);
    }
    Tensor *pos = len == S ? t->positional_embedding : op_slice(g, t->positional_embedding, 0, 0, len);
    x = op_add(g, x, pos);
    Tensor *mask = causal_mask(g, len);
    for (int64_t i = 0; i < t->layers; i++) x = resblock_forward(g, &t->blocks[i], x, mask);
    return op_gather_rows(g, x, at); // LayerNorm is per row: ln_final comes after the gather
}

// What a group of rows costs beyond its positions, counted in positions through the tower (a padding position
// costs one): a dozen more ops per layer, smaller GEMMs. Not critical: on the 400 Kinetics-400 names (lengths 3-10,
// 1744 positions) 0, 16 and 64 (8, 5 and 3 groups) ran in 0.82-0.90 s, one group (4000 positions) in 1.73 s.
#define TEXT_GROUP_COST 16

// The fast path's groups: the rows sorted by length (EOT + 1, stable) into order[K], cut into groups that each
// run on their longest length. Between one group for all (padding every row to the longest, the cost of the
// plain fast path) and one group per length, the cut with the least cost (tokens run, padding included, plus
// TEXT_GROUP_COST per group) is found by dynamic programming over the distinct lengths. Writes the groups'
// ends (exclusive, into order) to end[] and their lengths to glen[]; returns the number of groups.
static int64_t text_groups(const int64_t *eot, int64_t K, int64_t S, int64_t *order, int64_t *end, int64_t *glen,
                           Arena *a) {
    int64_t *count = arena_calloc(a, (size_t)(S + 1) * sizeof(int64_t)); // rows of each length 1..S
    for (int64_t k = 0; k < K; k++) count[eot[k] + 1]++;
    int64_t *first = arena_alloc(a, (size_t)(S + 2) * sizeof(int64_t)); // counting sort: stable
    first[1] = 0;
    for (int64_t l = 1; l <= S; l++) first[l + 1] = first[l] + count[l];
    int64_t *next = arena_alloc(a, (size_t)(S + 2) * sizeof(int64_t));
    memcpy(next, first, (size_t)(S + 2) * sizeof(int64_t));
    for (int64_t k = 0; k < K; k++) order[next[eot[k] + 1]++] = k;
    // distinct lengths u[0..G-1] with cum[j] = rows of length <= u[j]; best[j] = least cost of the rows up to u[j]
    int64_t G = 0, *u = arena_alloc(a, (size_t)S * sizeof(int64_t)), *cum = arena_alloc(a, (size_t)S * sizeof(int64_t));
    for (int64_t l = 1; l <= S; l++)
        if (count[l]) u[G] = l, cum[G] = first[l + 1], G++;
    int64_t *best = arena_alloc(a, (size_t)G * sizeof(int64_t)), *from = arena_alloc(a, (size_t)G * sizeof(int64_t));
    for (int64_t j = 0; j < G; j++) {
        best[j] = INT64_MAX;
        for (int64_t i = 0; i <= j; i++) { // one group: the lengths u[i..j], run at u[j]
            int64_t c = (i ? best[i - 1] : 0) + TEXT_GROUP_COST + (cum[j] - (i ? cum[i - 1] : 0)) * u[j];
            if (c < best[j]) best[j] = c, from[j] = i;
        }
    }
    int64_t n = 0;
    for (int64_t j = G - 1; j >= 0; j = from[j] - 1) n++;
    int64_t gi = n;
    for (int64_t j = G - 1; j >= 0; j = from[j] - 1) end[--gi] = cum[j], glen[gi] = u[j];
    return n;
}

Tensor *clip_encode_text_ctx(Graph *g, const ClipText *t, const int32_t *tokens, int64_t K, int64_t S, bool fast,
                             Tensor *ctx) {
    XC_CHECK(S == t->positional_embedding->shape[0], "text of %lld tokens, the model's context is %lld", (long long)S,
             (long long)t->positional_embedding->shape[0]);
    int64_t *eot = arena_alloc(&g->step, (size_t)(K ? K : 1) * sizeof(int64_t));
    for (int64_t k = 0; k < K; k++) { // EOT = argmax of the ids (first occurrence, as torch.argmax)
        int64_t best = 0;
        for (int64_t s = 1; s < S; s++)
            if (tokens[k * S + s] > tokens[k * S + best]) best = s;
        eot[k] = best;
    }
    int64_t *order = arena_alloc(&g->step, (size_t)(K ? K : 1) * sizeof(int64_t));
    int64_t *end = arena_alloc(&g->step, (size_t)S * sizeof(int64_t)), *glen = arena_alloc(&g->step, (size_t)S * sizeof(int64_t));
    int64_t groups = 1;
    if (fast && K) groups = text_groups(eot, K, S, order, end, glen, &g->step);
    else glen[0] = fast ? 1 : S;
    if (groups == 1) { // all rows at once in their own order: the full context, or the longest row's length
        for (int64_t k = 0; k < K; k++) order[k] = k;
        end[0] = K;
    }
    // each group through the blocks, the outputs stacked in `order`
    Tensor *x = NULL;
    for (int64_t gi = 0; gi < groups; gi++) {
        int64_t start = gi ? end[gi - 1] : 0;
        Tensor *y = text_rows(g, t, tokens, S, order + start, end[gi] - start, glen[gi], eot, ctx);
        x = x ? op_concat(g, (Tensor *[]){x, y}, 2, 0) : y;
    }
    if (groups > 1) { // back to the rows' own order: inverse[k] = where row k sits in the stack
        int32_t *inverse = arena_alloc(&g->step, (size_t)K * sizeof(int32_t));
        for (int64_t i = 0; i < K; i++) inverse[order[i]] = (int32_t)i;
        x = op_embedding(g, x, inverse, K);
    }
    x = layernorm_forward(g, &t->ln_final, x);
    return op_matmul(g, x, t->text_projection, false, false);
}

// ---- loading by name ----------------------------------------------------------------------------
bool params_load_ignorable(const char *name) {
    static const char *names[] = {"input_resolution", "context_length", "vocab_size", "attn_mask", "position_ids"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]), l = strlen(name);
        if (!strcmp(name, names[i]) || (l > n && name[l - n - 1] == '.' && !strcmp(name + l - n, names[i]))) return true;
    }
    return false;
}

static void name_list_add(char *buf, size_t cap, int *count, const char *name) {
    (*count)++;
    if (*count > 8) return;
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", name);
}

int params_load(ParamStore *ps, const WeightSet *ws, ParamFilter may_be_missing, XcError *err) {
    char missing[512] = "", shaped[768] = "", unexpected[512] = "";
    int n_missing = 0, n_shaped = 0, n_unexpected = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *p = ps->p[i];
        const WeightTensor *w = weights_find(ws, p->name);
        if (!w) {
            if (!may_be_missing || !may_be_missing(p->name)) name_list_add(missing, sizeof missing, &n_missing, p->name);
            continue;
        }
        bool ok = w->numel == p->numel && (w->ndim == p->ndim || (p->ndim == 0 && w->numel == 1));
        for (int d = 0; ok && d < p->ndim; d++) ok = w->shape[d] == p->shape[d];
        if (!ok) {
            char one[200], ps_[64];
            snprintf(one, sizeof one, "%s (file %lld elements in %d dims, model %s)", p->name, (long long)w->numel,
                     w->ndim, tensor_shape_str(p, ps_, sizeof ps_));
            name_list_add(shaped, sizeof shaped, &n_shaped, one);
        }
    }
    for (int i = 0; i < ws->n; i++)
        if (!param_find(ps, ws->t[i].name) && !params_load_ignorable(ws->t[i].name))
            name_list_add(unexpected, sizeof unexpected, &n_unexpected, ws->t[i].name);
    if (n_missing || n_shaped || n_unexpected) {
        return xc_err(err, "weights do not fit the model: %d missing%s%s%s, %d unexpected%s%s%s, %d mis-shaped%s%s%s\n"
                           "HINT: is this checkpoint for this architecture?",
                      n_missing, n_missing ? " (" : "", missing, n_missing ? (n_missing > 8 ? ", ...)" : ")") : "",
                      n_unexpected, n_unexpected ? " (" : "", unexpected, n_unexpected ? (n_unexpected > 8 ? ", ...)" : ")") : "",
                      n_shaped, n_shaped ? " (" : "", shaped, n_shaped ? (n_shaped > 8 ? ", ...)" : ")") : "");
    }
    for (int i = 0; i < ps->n; i++) {
        const WeightTensor *w = weights_find(ws, ps->p[i]->name);
        if (w) memcpy(ps->p[i]->data, w->data, (size_t)w->numel * sizeof(float));
    }
    return XC_OK;
}

void params_to_weights(const ParamStore *ps, WeightSet *ws) {
    for (int i = 0; i < ps->n; i++) weights_add(ws, ps->p[i]->name, ps->p[i]->ndim, ps->p[i]->shape, ps->p[i]->data);
}

// ---- random initialisation (openai/CLIP initialize_parameters) -------------------------------------------
static void init_block(ResBlock *b, Rng *r, int64_t width, int64_t layers) {
    float attn_std = 1.0f / sqrtf((float)width), proj_std = attn_std / sqrtf(2.0f * (float)layers);
    float fc_std = 1.0f / sqrtf(2.0f * (float)width);
    rng_fill_normal(r, b->attn.in_w->data, b->attn.in_w->numel, 0.0f, attn_std);
    init_constant(b->attn.in_b, 0.0f);
    rng_fill_normal(r, b->attn.out_w->data, b->attn.out_w->numel, 0.0f, proj_std);
    init_constant(b->attn.out_b, 0.0f);
    rng_fill_normal(r, b->c_fc.w->data, b->c_fc.w->numel, 0.0f, fc_std);
    init_constant(b->c_fc.b, 0.0f);
    rng_fill_normal(r, b->c_proj.w->data, b->c_proj.w->numel, 0.0f, proj_std);
    init_constant(b->c_proj.b, 0.0f);
    layernorm_reset(&b->ln_1);
    layernorm_reset(&b->ln_2);
}

void clip_init_random_towers(ClipVision *v, ResBlock *const *vision_blocks, ClipText *t, Tensor *logit_scale,
                             const ClipConfig *c, uint64_t seed) {
    Rng r = rng_substream(seed, RNG_STREAM_INIT, 1, 0); // apart from the X-CLIP additions' stream
    float scale = 1.0f / sqrtf((float)c->vision_width);
    float conv_bound = 1.0f / sqrtf((float)(3 * c->patch * c->patch)); // nn.Conv2d default (kaiming a=sqrt(5))
    rng_fill_uniform(&r, v->conv1->data, v->conv1->numel, -conv_bound, conv_bound);
    rng_fill_normal(&r, v->class_embedding->data, v->class_embedding->numel, 0.0f, scale);
    rng_fill_normal(&r, v->positional_embedding->data, v->positional_embedding->numel, 0.0f, scale);
    rng_fill_normal(&r, v->proj->data, v->proj->numel, 0.0f, scale);
    layernorm_reset(&v->ln_pre);
    layernorm_reset(&v->ln_post);
    for (int64_t i = 0; i < c->vision_layers; i++) init_block(vision_blocks[i], &r, c->vision_width, c->vision_layers);
    if (!t) return; // a model without a text tower (X-CLIP's linear head): no text tensors, no logit_scale
    rng_fill_normal(&r, t->token_embedding->data, t->token_embedding->numel, 0.0f, 0.02f);
    rng_fill_normal(&r, t->positional_embedding->data, t->positional_embedding->numel, 0.0f, 0.01f);
    for (int64_t i = 0; i < c->text_layers; i++) init_block(&t->blocks[i], &r, c->text_width, c->text_layers);
    layernorm_reset(&t->ln_final);
    rng_fill_normal(&r, t->text_projection->data, t->text_projection->numel, 0.0f, 1.0f / sqrtf((float)c->text_width));
    logit_scale->data[0] = logf(1.0f / 0.07f);
}

void clip_init_random(Clip *m, uint64_t seed) {
    ResBlock *vision[CLIP_MAX_LAYERS];
    for (int64_t i = 0; i < m->cfg.vision_layers; i++) vision[i] = &m->visual.blocks[i];
    clip_init_random_towers(&m->visual, vision, &m->text, m->logit_scale, &m->cfg, seed);
}

Tensor *clip_video_logits(Graph *g, const Clip *m, Tensor *video, const float *text_features, int64_t K) {
    char s[64];
    XC_CHECK(video->ndim == 5 && video->shape[2] == 3, "clip_video_logits: video %s, want (B, T, 3, H, W)",
             tensor_shape_str(video, s, sizeof s));
    const int64_t B = video->shape[0], T = video->shape[1], E = m->cfg.embed_dim;
    Tensor *frames = op_reshape(g, video, 4, (int64_t[]){B * T, 3, video->shape[3], video->shape[4]});
    Tensor *f = op_reshape(g, clip_encode_image(g, m, frames), 3, (int64_t[]){B, T, E});
    Tensor *v = op_l2_normalize(g, op_mean(g, f, 1)); // (B, E)
    Tensor *t = tensor_wrap(g, 2, (int64_t[]){K, E}, text_features);
    return op_mul(g, op_matmul(g, v, t, false, true), op_exp(g, m->logit_scale));
}

void clip_text_ensemble(float *f, int64_t K, int64_t M, int64_t E) {
    double *acc = xc_malloc(sizeof(double) * (size_t)(E > 0 ? E : 1));
    for (int64_t k = 0; k < K; k++) {
        double norm = 0;
        for (int64_t e = 0; e < E; e++) acc[e] = 0;
        for (int64_t j = 0; j < M; j++)
            for (int64_t e = 0; e < E; e++) acc[e] += f[(k * M + j) * E + e];
        for (int64_t e = 0; e < E; e++) norm += acc[e] * acc[e];
        norm = sqrt(norm) > 1e-12 ? sqrt(norm) : 1e-12;
        for (int64_t e = 0; e < E; e++) f[k * E + e] = (float)(acc[e] / norm); // row k*M >= k: read before written
    }
    xc_free(acc);
}

float *clip_text_features(const Clip *m, Graph *g, const int32_t *tokens, int64_t K) {
    bool prev = graph_set_grad(g, false);
    Tensor *t = op_l2_normalize(g, clip_encode_text(g, &m->text, tokens, K, m->cfg.context, true));
    float *out = xc_malloc(sizeof(float) * (size_t)t->numel);
    memcpy(out, t->data, sizeof(float) * (size_t)t->numel);
    graph_reset(g);
    graph_set_grad(g, prev);
    return out;
}
