// demo.c - see demo.h.
#include "train/demo.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

DemoConfig demo_default_config(void) {
    return (DemoConfig){.frames = 4, .size = 16, .patch = 8, .width = 64, .heads = 4, .layers = 2, .classes = 4,
                        .batch = 32, .steps = 500, .lr = 1e-3f, .smoothing = 0.1f, .seed = 1024};
}

void demo_make_clip(const DemoConfig *cfg, Rng *r, int label, float *clip) {
    static const float colours[2][3] = {{1.0f, -0.6f, -0.6f}, {-0.6f, -0.6f, 1.0f}}; // red, blue
    static const int dirs[4][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1}};                // right, left, down, up
    const int S = cfg->size, T = cfg->frames, side = 4, speed = 3;
    int dir = label % 4, colour = (int)rng_below(r, 2); // colour is a distractor
    int span = S - side - speed * (T - 1); // room for the whole path
    int x0 = (int)rng_below(r, (uint64_t)span + 1), y0 = (int)rng_below(r, (uint64_t)span + 1);
    if (dirs[dir][0] < 0) x0 += speed * (T - 1);
    if (dirs[dir][1] < 0) y0 += speed * (T - 1);
    if (dirs[dir][0] == 0) x0 = (int)rng_below(r, (uint64_t)(S - side) + 1);
    if (dirs[dir][1] == 0) y0 = (int)rng_below(r, (uint64_t)(S - side) + 1);
    for (int t = 0; t < T; t++) {
        int x = x0 + dirs[dir][0] * speed * t, y = y0 + dirs[dir][1] * speed * t;
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < S; i++)
                for (int j = 0; j < S; j++) {
                    bool in = i >= y && i < y + side && j >= x && j < x + side;
                    float noise = 0.2f * (rng_uniform(r) - 0.5f);
                    clip[((t * 3 + c) * S + i) * S + j] = (in ? colours[colour][c] : -0.2f) + noise;
                }
    }
}

void demo_init(Demo *d, const DemoConfig *cfg) {
    memset(d, 0, sizeof *d);
    d->cfg = *cfg;
    XC_CHECK(cfg->size % cfg->patch == 0 && cfg->classes == 4, "demo: bad configuration");
    int64_t W = cfg->width, N = (int64_t)(cfg->size / cfg->patch) * (cfg->size / cfg->patch);
    ParamStore *ps = &d->ps;
    param_store_init(ps, "params");
    d->conv1 = param_new(ps, "visual.conv1.weight", 4, (int64_t[]){W, 3, cfg->patch, cfg->patch});
    d->class_embedding = param_new(ps, "visual.class_embedding", 1, (int64_t[]){W});
    d->positional_embedding = param_new(ps, "visual.positional_embedding", 2, (int64_t[]){N + 1, W});
    layernorm_init(&d->ln_pre, ps, "visual.ln_pre", W);
    d->blocks = xc_calloc((size_t)cfg->layers, sizeof *d->blocks);
    for (int i = 0; i < cfg->layers; i++) {
        char p[64];
        snprintf(p, sizeof p, "visual.transformer.resblocks.%d", i);
        resblock_init(&d->blocks[i], ps, p, W, cfg->heads);
    }
    layernorm_init(&d->ln_post, ps, "visual.ln_post", W);
    d->temporal_embedding = param_new(ps, "mit.positional_embedding", 2, (int64_t[]){cfg->frames, W});
    resblock_init(&d->temporal, ps, "mit.resblocks.0", W, cfg->heads);
    linear_init(&d->head, ps, "head", W, cfg->classes, true);

    // initialisation: CLIP-like scales for embeddings, std 0.02 for linear weights, xavier for in_proj
    Rng init = rng_stream(cfg->seed, RNG_STREAM_INIT);
    float scale = 1.0f / sqrtf((float)W);
    rng_fill_normal(&init, d->conv1->data, d->conv1->numel, 0.0f, 1.0f / sqrtf(3.0f * cfg->patch * cfg->patch));
    rng_fill_normal(&init, d->class_embedding->data, W, 0.0f, scale);
    rng_fill_normal(&init, d->positional_embedding->data, d->positional_embedding->numel, 0.0f, scale);
    rng_fill_normal(&init, d->temporal_embedding->data, d->temporal_embedding->numel, 0.0f, scale);
    for (int i = 0; i <= cfg->layers; i++) {
        ResBlock *b = i < cfg->layers ? &d->blocks[i] : &d->temporal;
        init_xavier_uniform(b->attn.in_w, &init);
        init_trunc_normal(b->attn.out_w, &init, 0.02f);
        init_trunc_normal(b->c_fc.w, &init, 0.02f);
        init_trunc_normal(b->c_proj.w, &init, 0.02f);
    }
    init_trunc_normal(d->head.w, &init, 0.02f);

    adamw_init(&d->opt, ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
    for (int i = 0; i < ps->n; i++) // no decay for 1-D tensors and positional embeddings (docs/model.md §9)
        adamw_set_group(&d->opt, i, 0, ps->p[i]->ndim > 1 && !strstr(ps->p[i]->name, "positional_embedding"));
    graph_init(&d->g, 8u << 20);
    d->data = rng_stream(cfg->seed, RNG_STREAM_DATA);
}

void demo_free(Demo *d) {
    adamw_free(&d->opt);
    graph_free(&d->g);
    param_store_free(&d->ps);
    xc_free(d->blocks);
    memset(d, 0, sizeof *d);
}

// video (B, T, 3, S, S) -> logits (B, K)
static Tensor *demo_forward(Demo *d, Tensor *video) {
    Graph *g = &d->g;
    const DemoConfig *c = &d->cfg;
    int64_t B = video->shape[0], T = c->frames, W = c->width, N = d->positional_embedding->shape[0] - 1;
    Tensor *frames = op_reshape(g, video, 4, (int64_t[]){B * T, 3, c->size, c->size});
    Tensor *x = op_patch_embed(g, frames, d->conv1); // (BT, N, W)
    Tensor *cls = op_add(g, tensor_zeros(g, 3, (int64_t[]){B * T, 1, W}), d->class_embedding);
    Tensor *parts[2] = {cls, x};
    x = op_add(g, op_concat(g, parts, 2, 1), d->positional_embedding); // (BT, N+1, W)
    x = layernorm_forward(g, &d->ln_pre, x);
    for (int i = 0; i < c->layers; i++) x = resblock_forward(g, &d->blocks[i], x, NULL);
    int64_t *zeros = arena_calloc(&g->step, (size_t)(B * T) * sizeof(int64_t));
    Tensor *f = layernorm_forward(g, &d->ln_post, op_gather_rows(g, x, zeros)); // (BT, W) class tokens
    (void)N;
    f = op_add(g, op_reshape(g, f, 3, (int64_t[]){B, T, W}), d->temporal_embedding);
    f = resblock_forward(g, &d->temporal, f, NULL);
    return linear_forward(g, &d->head, op_mean(g, f, 1));
}

static Tensor *make_batch(Demo *d, Rng *r, int64_t B, int *labels) {
    const DemoConfig *c = &d->cfg;
    int64_t clip = (int64_t)c->frames * 3 * c->size * c->size;
    Tensor *video = tensor_new(&d->g, 5, (int64_t[]){B, c->frames, 3, c->size, c->size});
    for (int64_t b = 0; b < B; b++) {
        labels[b] = (int)rng_below(r, (uint64_t)c->classes);
        demo_make_clip(c, r, labels[b], video->data + b * clip);
    }
    return video;
}

float demo_train_step(Demo *d, int step) {
    const DemoConfig *c = &d->cfg;
    Graph *g = &d->g;
    int labels[256];
    XC_CHECK(c->batch <= 256, "demo batch at most 256");
    Tensor *video = make_batch(d, &d->data, c->batch, labels);
    Tensor *logits = demo_forward(d, video);
    Tensor *y = tensor_new(g, 2, (int64_t[]){c->batch, c->classes});
    for (int b = 0; b < c->batch; b++)
        for (int k = 0; k < c->classes; k++)
            y->data[b * c->classes + k] = c->smoothing / c->classes + (k == labels[b] ? 1.0f - c->smoothing : 0.0f);
    Tensor *loss = op_soft_cross_entropy(g, logits, y);
    graph_backward(g, loss);
    int warm = c->steps / 10 > 0 ? c->steps / 10 : 1;
    float lr = step < warm ? c->lr * (float)(step + 1) / (float)warm
                           : c->lr * 0.5f * (1.0f + cosf((float)M_PI * (float)(step - warm) / (float)(c->steps - warm)));
    adamw_step(&d->opt, (float[]){lr});
    param_store_zero_grad(&d->ps);
    float l = loss->data[0];
    graph_reset(g);
    return l;
}

double demo_evaluate(Demo *d, int n) {
    Graph *g = &d->g;
    Rng val = rng_stream(d->cfg.seed, RNG_STREAM_TEST); // the same clips every time
    bool prev = graph_set_grad(g, false);
    int correct = 0, labels[64];
    for (int done = 0; done < n; done += 64) {
        int B = n - done < 64 ? n - done : 64;
        Tensor *logits = demo_forward(d, make_batch(d, &val, B, labels));
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int k = 1; k < d->cfg.classes; k++)
                if (logits->data[b * d->cfg.classes + k] > logits->data[b * d->cfg.classes + best]) best = k;
            correct += best == labels[b];
        }
        graph_reset(g);
    }
    graph_set_grad(g, prev);
    return (double)correct / (double)n;
}
