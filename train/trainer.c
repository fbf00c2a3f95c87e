// trainer.c - see trainer.h. Letters: B videos, T frames, H input size, K classes, S text context, E embed dim.
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>
#include "checkpoints/snapshot.h"
#include "autograd/kernels.h"
#include "train/param_groups.h"
#include "train/signals.h"

// A step tensor over memory the caller owns (the loader's batch): no copy.
static Tensor *tensor_wrap(Graph *g, int ndim, const int64_t *shape, const float *data) {
    Tensor *t = arena_calloc(&g->step, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->numel = shape_numel(ndim, shape);
    t->data = (float *)data;
    return t;
}

// ---- the optimisation step ----------------------------------------------------------------------------
void train_step_init(TrainStep *s, XClip *m, ParamStore *ps, AdamWConfig ac, double new_lr_scale, LrSchedule sched,
                     int accum, uint64_t seed, bool drop_on) {
    memset(s, 0, sizeof *s);
    XC_CHECK(accum >= 1, "train_step_init: accumulation steps %d", accum);
    s->m = m;
    s->ps = ps;
    s->sched = sched;
    s->accum = accum;
    s->sched_t = -1;
    s->drop = rng_stream(seed, RNG_STREAM_DROP);
    s->drop_on = drop_on;
    adamw_init(&s->opt, ps, ac);
    xclip_param_groups(&s->opt); // decay switches by name; the rates are set before every step
    s->group_scale = xc_malloc(sizeof(float) * (size_t)(ps->n ? ps->n : 1));
    for (int i = 0; i < ps->n; i++)
        s->group_scale[i] = xclip_lr_scale(ps->p[i]->name) > 1.0f ? (float)new_lr_scale : 1.0f;
    graph_init(&s->g, 64u << 20);
    s->fused = false;
    for (int i = 0; i < ps->n; i++) s->fused |= ps->p[i]->grad_transient;
    XC_CHECK(!s->fused || accum == 1, "train_step_init: parameters with transient gradients (fused AdamW) cannot "
                                      "accumulate %d micro-batches", accum);
    if (s->fused) adamw_fuse(&s->opt, &s->g);
}

void train_step_free(TrainStep *s) {
    adamw_free(&s->opt);
    graph_free(&s->g);
    xc_free(s->group_scale);
    memset(s, 0, sizeof *s);
}

void train_step_set_tokens(TrainStep *s, const int32_t *tokens, int64_t K, int64_t S) {
    s->tokens = tokens;
    s->K = K;
    s->S = S;
}

void train_step_epoch_begin(TrainStep *s) { param_store_zero_grad(s->ps); }

static double rate_of(const TrainStep *s, double scale) {
    if (s->sched_t < 0) return lr_schedule_initial(&s->sched) * scale;
    return lr_schedule_at_scaled(&s->sched, s->sched_t, scale);
}

double train_step_next_lr(const TrainStep *s) { return rate_of(s, 1.0); }

float train_step_run(TrainStep *s, const float *video, int B, const float *targets, int64_t idx, int64_t t, bool *stepped) {
    Graph *g = &s->g;
    const XClipConfig *c = &s->m->cfg;
    const int64_t H = c->clip.image_size;
    Tensor *v = tensor_wrap(g, 5, (int64_t[]){B, c->frames, 3, H, H}, video);
    XClipOut o = xclip_forward(g, s->m, v, s->tokens, s->K, s->S, s->drop_on ? &s->drop : NULL);
    const int64_t K = o.logits->shape[1];
    Tensor *y = tensor_wrap(g, 2, (int64_t[]){B, K}, targets);
    Tensor *loss = op_soft_cross_entropy(g, o.logits, y);
    float value = loss->data[0];
    const bool step = (idx + 1) % s->accum == 0;
    if (step) // every group at its own rate (timm decays each group from its own base to the shared floor)
        for (int i = 0; i < s->ps->n; i++) s->opt.lr_scale[i] = (float)rate_of(s, s->group_scale[i]);
    if (s->fused) adamw_begin_step(&s->opt, 1.0f); // the update happens inside backward
    graph_backward(g, s->accum > 1 ? op_scale(g, loss, 1.0f / (float)s->accum) : loss);
    if (s->fused) adamw_end_step(&s->opt); // parameters the loss did not reach
    graph_reset(g);
    if (step) {
        s->last_lr = rate_of(s, 1.0);
        if (!s->fused) {
            adamw_step(&s->opt, 1.0f);
            param_store_zero_grad(s->ps);
        }
        s->sched_t = t; // lr_scheduler.step_update(t): the rate of the next step
        s->opt_steps++;
    }
    if (stepped) *stepped = step;
    return value;
}

// ---- evaluation -----------------------------------------------------------------------------------
static void progress_bar(const char *what, int64_t done, int64_t total, const char *extra) {
    const int width = 30;
    int fill = total > 0 ? (int)((double)width * (double)done / (double)total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = 0;
    printf("\r\033[K%s [%s] %lld/%lld %s", what, bar, (long long)done, (long long)total, extra ? extra : "");
    fflush(stdout);
}

int evaluate(XClip *m, Graph *g, Loader *ld, int64_t n_videos, const int32_t *tokens, int K, int64_t S, int chunk,
             bool progress, EvalResult *res, EvalOutput *out, XcError *err) {
    memset(res, 0, sizeof *res);
    const bool text_trains = !m->cfg.fix_text;
    if (text_trains) { // the text tower is training: its current features, once for the whole pass
        xclip_cache_text(m, tokens, K, S);
        m->cfg.fix_text = true;
    }
    if (out) {
        out->probs = xc_calloc((size_t)n_videos * (size_t)K, sizeof(float));
        out->labels = xc_calloc((size_t)n_videos, sizeof(int32_t));
        out->items = xc_calloc((size_t)n_videos, sizeof(int64_t));
    }
    const int64_t T = m->cfg.frames, H = m->cfg.clip.image_size;
    const size_t clip_floats = (size_t)T * 3 * (size_t)H * (size_t)H;
    int64_t *hit = xc_calloc((size_t)K, sizeof(int64_t)), *count = xc_calloc((size_t)K, sizeof(int64_t));
    double *sum = NULL;
    size_t sum_cap = 0;
    int64_t n = 0, top1 = 0, top5 = 0;
    bool prev = graph_set_grad(g, false);
    int rc = XC_OK;
    for (;;) {
        const Batch *b;
        int r = loader_next(ld, &b, err);
        if (r == 0) break;
        if (r < 0) { rc = XC_ERR; break; }
        const int V = b->views;
        const int64_t clips = (int64_t)b->B * V;
        if ((size_t)b->B * (size_t)K > sum_cap) {
            xc_free(sum);
            sum_cap = (size_t)b->B * (size_t)K;
            sum = xc_malloc(sizeof(double) * sum_cap);
        }
        memset(sum, 0, sizeof(double) * (size_t)b->B * (size_t)K);
        res->views = V;
        for (int64_t c0 = 0; c0 < clips; c0 += chunk) {
            int64_t nc = clips - c0 < chunk ? clips - c0 : chunk;
            Tensor *v = tensor_wrap(g, 5, (int64_t[]){nc, T, 3, H, H}, b->video + (size_t)c0 * clip_floats);
            Tensor *logits = xclip_forward(g, m, v, NULL, K, 0, NULL).logits; // (nc, K)
            XC_CHECK(logits->shape[1] == K, "evaluate: model has %lld classes, expected %d", (long long)logits->shape[1], K);
            for (int64_t j = 0; j < nc; j++) { // softmax of each view, summed per video (official validate)
                const float *l = logits->data + j * K;
                double mx = l[0], z = 0;
                for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
                for (int k = 0; k < K; k++) z += exp((double)l[k] - mx);
                double *acc = sum + ((c0 + j) / V) * K;
                for (int k = 0; k < K; k++) acc[k] += exp((double)l[k] - mx) / z;
            }
            graph_reset(g);
        }
        for (int i = 0; i < b->B; i++) {
            const double *p = sum + (size_t)i * K;
            int y = b->labels[i];
            int rank = 0; // classes scoring strictly higher than the label (ties resolved towards the label)
            for (int k = 0; k < K; k++) rank += p[k] > p[y] || (p[k] == p[y] && k < y);
            top1 += rank == 0;
            top5 += rank < 5;
            if (y >= 0 && y < K) {
                count[y]++;
                hit[y] += rank == 0;
            }
            if (out && n < n_videos) {
                for (int k = 0; k < K; k++) out->probs[n * K + k] = (float)p[k];
                out->labels[n] = y;
                out->items[n] = b->items[i];
            }
            n++;
        }
        if (progress) progress_bar("eval", n, n_videos, NULL);
    }
    if (progress) printf("\r\033[K");
    graph_set_grad(g, prev);
    if (text_trains) m->cfg.fix_text = false;
    res->n = n;
    if (n > 0) {
        res->top1 = 100.0 * (double)top1 / (double)n;
        res->top5 = 100.0 * (double)top5 / (double)n;
        double mc = 0;
        int present = 0;
        for (int k = 0; k < K; k++)
            if (count[k]) {
                mc += (double)hit[k] / (double)count[k];
                present++;
            }
        res->mean_class = present ? 100.0 * mc / present : 0;
    }
    xc_free(sum);
    xc_free(hit);
    xc_free(count);
    return rc;
}

void eval_output_free(EvalOutput *o) {
    xc_free(o->probs);
    xc_free(o->labels);
    xc_free(o->items);
    memset(o, 0, sizeof *o);
}

// ---- building blocks ------------------------------------------------------------------------------
int32_t *class_tokens(Tokenizer *tok, const LabelSet *labels, const char *template_, int64_t S) {
    int32_t *tokens = xc_calloc((size_t)labels->count * (size_t)S, sizeof(int32_t));
    for (int k = 0; k < labels->count; k++) {
        char text[1024];
        const char *at = strstr(template_, "{}");
        if (at) snprintf(text, sizeof text, "%.*s%s%s", (int)(at - template_), template_, labels->names[k], at + 2);
        else snprintf(text, sizeof text, "%s", labels->names[k]);
        tokenizer_encode(tok, text, tokens + (size_t)k * S, (int)S);
    }
    return tokens;
}

int model_build(XClip *m, ParamStore *ps, const TrainConfig *c, const char *weights, bool *is_xclip, XcError *err) {
    const char *path = weights ? weights : c->pretrained;
    const char *key = weights ? "--checkpoint" : "model.pretrained";
    bool none = !weights && config_pretrained_none(c), xw = false;
    XClipConfig xc;
    WeightSet ws = {0};
    if (none) {
        TrainConfig cc = *c;
        if (strcmp(cc.arch, "custom")) config_apply_arch(&cc);
        ClipConfig clip = {.vision_width = cc.vision_width, .vision_layers = cc.vision_layers,
                           .vision_heads = cc.vision_width / 64, .vision_mlp = 4 * (int64_t)cc.vision_width,
                           .patch = cc.patch, .image_size = c->input_size, .embed_dim = cc.embed_dim,
                           .text_width = cc.text_width, .text_layers = cc.text_layers, .text_heads = cc.text_width / 64,
                           .text_mlp = 4 * (int64_t)cc.text_width, .context = cc.context, .vocab = cc.vocab_size};
        if (c->input_size % cc.patch)
            return xc_err(err, "data.input_size %d is not a multiple of the patch size %d", c->input_size, cc.patch);
        xc = xclip_config_default(&clip, c->frames);
        xc.mit_layers = c->mit_layers;
        xc.prompt_layers = c->prompt_layers;
        xc.prompt_alpha = (float)c->prompt_alpha;
    } else {
        if (weights_load(&ws, path, err) != XC_OK) return xc_err(err, "%s = %s: %s", key, path, err->msg);
        xw = xclip_weights_are_xclip(&ws);
        if (xclip_config_from_weights(&xc, &ws, c->frames, c->interpolate_frames, err) != XC_OK ||
            (xw && c->interpolate_frames && xclip_adapt_weights(&ws, c->frames, err) != XC_OK)) {
            weights_free(&ws);
            return xc_err(err, "%s = %s: %s", key, path, err->msg);
        }
        if (!xw) {
            xc.mit_layers = c->mit_layers;
            xc.prompt_layers = c->prompt_layers;
            xc.prompt_alpha = (float)c->prompt_alpha;
        }
        TrainConfig cc = *c;
        if (strcmp(cc.arch, "custom") && config_apply_arch(&cc) &&
            (cc.vision_width != xc.clip.vision_width || cc.patch != xc.clip.patch || cc.vision_layers != xc.clip.vision_layers)) {
            weights_free(&ws);
            return xc_err(err, "%s = %s holds a ViT with width %lld, patch %lld, %lld layers, not model.arch = %s\n"
                               "HINT: set model.arch to the checkpoint's architecture (or custom)",
                          key, path, (long long)xc.clip.vision_width, (long long)xc.clip.patch,
                          (long long)xc.clip.vision_layers, c->arch);
        }
        if (xc.clip.image_size != c->input_size) {
            weights_free(&ws);
            return xc_err(err, "%s = %s expects %lldx%lld inputs but data.input_size = %d\nHINT: set data.input_size = %lld",
                          key, path, (long long)xc.clip.image_size, (long long)xc.clip.image_size, c->input_size,
                          (long long)xc.clip.image_size);
        }
    }
    xc.drop_path = (float)c->drop_path;
    xc.fix_text = c->fix_text;
    xc.checkpoint = c->checkpoint;
    param_store_init(ps, "params");
    ps->transient_grads = config_fused_adamw(c); // gradients only inside backward, consumed by the fused AdamW
    xclip_init(m, ps, &xc);
    if (none) {
        xclip_init_clip_random(m, (uint64_t)c->seed);
        xclip_init_new_tensors(m, (uint64_t)c->seed);
    } else {
        if (!xw) xclip_init_new_tensors(m, (uint64_t)c->seed);
        if (params_load(ps, &ws, xw ? NULL : xclip_is_new_tensor, err) != XC_OK) {
            weights_free(&ws);
            xclip_free(m);
            param_store_free(ps);
            return xc_err(err, "%s = %s: %s", key, path, err->msg);
        }
        weights_free(&ws);
    }
    if (is_xclip) *is_xclip = xw;
    return XC_OK;
}

LoaderConfig loader_config_train(const TrainConfig *c, int num_classes) {
    LoaderConfig lc = loader_config_default(c->input_size, c->frames, c->batch_size);
    lc.train = 1;
    lc.workers = c->workers;
    lc.seed = (uint64_t)c->seed;
    lc.scale = !strcmp(c->resize, "sws") ? VIDEO_SCALE_SWS : VIDEO_SCALE_REF;
    lc.max_bad_fraction = c->max_bad_fraction;
    lc.tf.flip_p = (float)c->flip;
    lc.tf.jitter_p = (float)c->color_jitter;
    lc.tf.gray_p = (float)c->gray_scale;
    lc.tf.brightness = (float)c->brightness;
    lc.tf.contrast = (float)c->contrast;
    lc.tf.saturation = (float)c->saturation;
    lc.tf.hue = (float)c->hue;
    lc.tf.jitter_per_clip = c->jitter_per_clip;
    lc.targets = 1; // soft targets always: smoothing and mixing come from the same place
    lc.mix = mix_config_default(num_classes);
    lc.mix.smoothing = (float)c->label_smooth;
    // the official code builds CutmixMixupBlending only when AUG.MIXUP > 0
    lc.mix.mixup_alpha = c->mixup > 0 ? (float)c->mixup : 0.0f;
    lc.mix.cutmix_alpha = c->mixup > 0 ? (float)c->cutmix : 0.0f;
    lc.mix.switch_prob = (float)c->mixup_switch_prob;
    return lc;
}

LoaderConfig loader_config_test(const TrainConfig *c, int num_clip, int num_crop, int batch) {
    LoaderConfig lc = loader_config_default(c->input_size, c->frames, batch);
    lc.train = 0;
    lc.workers = c->workers;
    lc.seed = (uint64_t)c->seed;
    lc.scale = !strcmp(c->resize, "sws") ? VIDEO_SCALE_SWS : VIDEO_SCALE_REF;
    lc.max_bad_fraction = c->max_bad_fraction;
    lc.targets = 0;
    lc.views = num_clip;
    lc.view_mode = !strcmp(c->view_mode, "random") ? SAMPLE_VIEWS_RANDOM : SAMPLE_VIEWS_SHIFTED;
    lc.tf.num_crop = num_crop;
    return lc;
}

// ---- the whole run ------------------------------------------------------------------------------------
typedef struct Run {
    const TrainConfig *c;
    FILE *log, *metrics;
    bool bar;            // progress bar on stdout
    bool bar_shown;      // a bar line is on screen (clear it before printing)
} Run;

__attribute__((format(printf, 2, 3))) static void say(Run *r, const char *fmt, ...) {
    if (r->bar_shown) {
        printf("\r\033[K");
        r->bar_shown = false;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (r->log) {
        va_start(ap, fmt);
        vfprintf(r->log, fmt, ap);
        va_end(ap);
        fflush(r->log);
    }
}

static int mkdir_p(const char *dir, XcError *err) {
    char buf[CONFIG_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return xc_err(err, "%s: cannot create: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return xc_err(err, "%s: cannot create: %s", buf, strerror(errno));
    return XC_OK;
}

static void fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) { snprintf(buf, n, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static int save_weights(ParamStore *ps, const char *path, XcError *err) {
    WeightSet ws = {0};
    params_to_weights(ps, &ws);
    int rc = weights_save_safetensors(&ws, path, err);
    weights_free(&ws);
    param_store_page_out(ps); // a spilled text tower was read back for the file: let it go again
    return rc;
}

// fix_text, features cached: the frozen text tower leaves memory for an unlinked file in dir (param_store_spill).
// A failure only costs memory, so it is reported and the run goes on.
static void spill_text_tower(Run *r, ParamStore *ps, const char *dir) {
    XcError e;
    size_t moved = 0;
    if (param_store_spill(ps, xclip_is_text_tensor, dir, &moved, &e) != XC_OK)
        say(r, "note: the frozen text tower stays in memory: %s\n", e.msg);
    else if (moved)
        say(r, "memory: frozen text tower (%.1f MB) moved to an unlinked file in %s (model.spill_text)\n", moved / 1e6, dir);
}

// One evaluation pass over the validation list with a fresh test-mode loader.
static int run_eval(Run *r, XClip *m, Graph *g, const Dataset *val, const int32_t *tokens, int K, int64_t S, int clips,
                    int crops, EvalResult *res, XcError *err) {
    const TrainConfig *c = r->c;
    LoaderConfig lc = loader_config_test(c, clips, crops, c->test_batch_size);
    Loader *ld = loader_create(val, &lc, err);
    if (!ld) return XC_ERR;
    int rc = evaluate(m, g, ld, val->n, tokens, K, S, c->test_batch_size, r->bar, res, NULL, err);
    loader_free(ld);
    return rc;
}

// Where a run stands: what a snapshot records besides the model, the optimiser and the drop-path stream.
typedef struct Progress {
    int64_t global_iter;     // loader batches done over the whole run (the next batch's t)
    int epoch;               // current epoch
    int64_t iter_in_epoch;   // batches done in it
    double best;             // best validation top-1 (-1: none)
    int best_epoch;          // -1: none
    int64_t best_iter;       // global_iter of the snapshot that holds the best model (-1: none)
} Progress;

typedef struct SnapCtx {
    const TrainConfig *c;
    TrainStep *st;
    Loader *ld;
    int64_t *order;          // (n) the epoch's permutation of the training list, as the loader draws it
    int64_t n;
    char *fewshot;           // drawn few-shot list (text) or NULL
    char *config;            // effective config (text)
} SnapCtx;

static void epoch_order(const TrainConfig *c, int epoch, int64_t *order, int64_t n) {
    Rng r = rng_substream((uint64_t)c->seed, RNG_STREAM_ORDER, (uint64_t)epoch, 0);
    rng_permutation(&r, order, n);
}

// The one place a snapshot is written (periodic, epoch end, on request). Only at accumulation boundaries,
// where no partial gradient is pending, so a resumed run continues exactly.
static int run_snapshot(Run *r, SnapCtx *sc, const Progress *p, XcError *err) {
    SnapshotRng rngs[1] = {{"drop", rng_get_state(&sc->st->drop)}};
    epoch_order(sc->c, p->epoch, sc->order, sc->n);
    int64_t nbad = 0;
    const BadVideo *bad = loader_bad_videos(sc->ld, &nbad);
    char *bad_text = NULL;
    size_t bad_len = 0;
    FILE *bf = open_memstream(&bad_text, &bad_len);
    for (int64_t i = 0; bf && i < nbad; i++) fprintf(bf, "%lld\t%s\n", (long long)bad[i].item, bad[i].reason);
    if (bf) fclose(bf);
    SnapshotState ss = {.params = sc->st->ps, .opt = &sc->st->opt, .global_iter = p->global_iter, .epoch = p->epoch,
                        .iter_in_epoch = p->iter_in_epoch, .best_acc = p->best, .best_epoch = p->best_epoch,
                        .best_iter = p->best_iter, .rngs = rngs, .n_rngs = 1, .order = sc->order, .order_len = sc->n,
                        .cursor = loader_cursor(sc->ld), .fewshot_list = sc->fewshot, .bad_videos = bad_text,
                        .config = sc->config};
    char path[CONFIG_PATH_MAX + 64];
    double t0 = xc_now();
    int rc = snapshot_save(sc->c->dir, &ss, path, sizeof path, err);
    param_store_page_out(sc->st->ps); // a spilled text tower was read back for the file: let it go again
    free(bad_text);
    if (rc != XC_OK) return XC_ERR;
    if (snapshot_retain(sc->c->dir, sc->c->keep_snapshots, p->best_iter, NULL, err) < 0) return XC_ERR;
    say(r, "snapshot %s (epoch %d, iteration %lld, %.1f s)\n", path, p->epoch + 1, (long long)p->iter_in_epoch, xc_now() - t0);
    return XC_OK;
}

// The one place a run is restored (--resume PATH|auto). 1 resumed, 0 nothing to resume, XC_ERR.
static int run_resume(Run *r, SnapCtx *sc, const char *resume, int64_t n_iter, Progress *p, XcError *err) {
    SnapshotRng rngs[1] = {{"drop", {0}}};
    SnapshotState ss = {.params = sc->st->ps, .opt = &sc->st->opt, .rngs = rngs, .n_rngs = 1, .order = sc->order,
                        .order_len = sc->n};
    char path[CONFIG_PATH_MAX + 64];
    int rc;
    if (!strcmp(resume, "auto")) {
        if (snapshot_remove_stale_temps(sc->c->dir, stdout, err) < 0) return XC_ERR;
        rc = snapshot_resume_latest(sc->c->dir, &ss, path, sizeof path, stdout, err);
        if (rc == 0) {
            say(r, "--resume auto: no snapshot in %s, starting from the beginning\n", sc->c->dir);
            return 0;
        }
        if (rc < 0) return XC_ERR;
    } else {
        snprintf(path, sizeof path, "%s", resume);
        if (snapshot_load(resume, &ss, err) != XC_OK) return xc_err(err, "--resume %s: %s", resume, err->msg);
    }
    if (ss.config && sc->config && strcmp(ss.config, sc->config)) {
        char diff[2048];
        int nd = config_diff(sc->config, ss.config, diff, sizeof diff);
        if (nd > 0)
            say(r, "warning: %d setting%s differ%s from the snapshot's (%s); the run goes on with the current values: %s\n",
                nd, nd == 1 ? "" : "s", nd == 1 ? "s" : "", path, diff);
    }
    snapshot_state_free_text(&ss);
    rng_set_state(&sc->st->drop, rngs[0].state);
    p->global_iter = ss.global_iter;
    p->epoch = (int)ss.epoch;
    p->iter_in_epoch = ss.iter_in_epoch;
    p->best = ss.best_acc;
    p->best_epoch = (int)ss.best_epoch;
    p->best_iter = ss.best_iter;
    // schedule position: the iteration of the last optimiser step (steps happen at (idx + 1) % accum == 0)
    const int64_t a = sc->st->accum;
    int64_t last = -1;
    if (p->iter_in_epoch >= a) last = (int64_t)p->epoch * n_iter + (p->iter_in_epoch / a) * a - 1;
    else if (p->epoch > 0 && n_iter >= a) last = (int64_t)(p->epoch - 1) * n_iter + (n_iter / a) * a - 1;
    sc->st->sched_t = last;
    sc->st->opt_steps = sc->st->opt.step;
    loader_seek(sc->ld, ss.cursor);
    say(r, "resumed from %s: epoch %d, iteration %lld of %lld, %lld optimiser steps, best top-1 %.2f%%\n", path, p->epoch + 1,
        (long long)p->iter_in_epoch, (long long)n_iter, (long long)sc->st->opt_steps, p->best);
    return 1;
}

// ---- test hook: a signal at a chosen iteration ----------------------------------------------------
// XCLIP_TEST_SIGNAL_AT="ITER:SIGNAME" (SIGNAME TERM, INT or USR1; e.g. "5:TERM") makes train_run raise() that signal
// to its own process right after the global iteration count (loader batches over the whole run, a resumed run's
// earlier ones included) reaches ITER, so a test stops or snapshots a run at a known point through the real
// signal handler instead of racing a kill from outside. Read once when the run starts; unset: no effect.
typedef struct TestSignal {
    int64_t at; // global iteration after which to raise (-1: never)
    int sig;
} TestSignal;

static TestSignal test_signal_from_env(void) {
    TestSignal t = {-1, 0};
    const char *v = getenv("XCLIP_TEST_SIGNAL_AT");
    if (!v || !*v) return t;
    char *end;
    long long at = strtoll(v, &end, 10);
    static const struct { const char *name; int sig; } names[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"USR1", SIGUSR1}};
    for (size_t i = 0; *end == ':' && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(end + 1, names[i].name)) t = (TestSignal){at, names[i].sig};
    XC_CHECK(t.sig && at > 0, "XCLIP_TEST_SIGNAL_AT=%s: want ITER:SIGNAME with ITER > 0 and SIGNAME TERM, INT or USR1 (e.g. 5:TERM)", v);
    return t;
}

int train_run(const TrainConfig *c, const TrainRunOptions *o, XcError *err) {
    if (c->threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(c->threads);
#endif
        openblas_set_num_threads(c->threads);
    }
    Run run = {.c = c};
    run.bar = !strcmp(c->progress, "on") || (!strcmp(c->progress, "auto") && isatty(STDOUT_FILENO));
    char path[CONFIG_PATH_MAX + 64];
    if (mkdir_p(c->dir, err) != XC_OK) return XC_ERR;
    snprintf(path, sizeof path, "%s/config.ini", c->dir);
    FILE *f = xc_fopen(path, "w", err);
    if (!f) return XC_ERR;
    config_write(c, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/log.txt", c->dir);
    run.log = xc_fopen(path, o->resume ? "a" : "w", err);
    if (!run.log) return XC_ERR;
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->dir);
    run.metrics = xc_fopen(path, o->resume ? "a" : "w", err);
    if (!run.metrics) { fclose(run.log); return XC_ERR; }

    int rc = XC_ERR;
    Tokenizer *tok = NULL;
    LabelSet labels = {0};
    Dataset *train = NULL, *val = NULL;
    Loader *ld = NULL;
    int32_t *tokens = NULL;
    XClip m;
    ParamStore ps;
    bool model_ok = false, step_ok = false;
    TrainStep st;
    SnapCtx sc = {.c = c};
    signals_install();
    const TestSignal test_signal = test_signal_from_env();
    const MatmulPrecision prev_precision = xc_matmul_precision(); // restored on the way out
    if (config_apply_matmul(c, err) != XC_OK) goto done;

    tok = tokenizer_load_clip(c->vocab, err);
    if (!tok) {
        xc_err(err, "data.vocab = %s: %s\nHINT: CLIP's vocabulary ships with openai/CLIP as clip/bpe_simple_vocab_16e6.txt.gz; "
                    "set data.vocab to its path", c->vocab, err->msg);
        goto done;
    }
    if (labels_load(c->labels, &labels, err) != XC_OK) goto done;
    const int K = labels.count;
    if (c->num_classes && c->num_classes != K) {
        xc_err(err, "data.num_classes = %d but %s has %d classes", c->num_classes, c->labels, K);
        goto done;
    }
    say(&run, "xclip-train: run directory %s (config.ini, log.txt, metrics.jsonl)\n", c->dir);

    // model
    if (config_pretrained_none(c))
        say(&run, "\n*** model.pretrained = none: RANDOM INITIALISATION (no CLIP weights); expect a from-scratch run ***\n\n");
    bool is_xclip = false;
    if (model_build(&m, &ps, c, NULL, &is_xclip, err) != XC_OK) goto done;
    model_ok = true;
    if (o->init) {
        WeightSet ws = {0};
        if (weights_load(&ws, o->init, err) != XC_OK || params_load(&ps, &ws, NULL, err) != XC_OK) {
            weights_free(&ws);
            xc_err(err, "--init %s: %s", o->init, err->msg);
            goto done;
        }
        weights_free(&ws);
        say(&run, "weights initialised from %s (--init)\n", o->init);
    }
    const XClipConfig *mc = &m.cfg;
    const int64_t S = mc->clip.context;
    tokens = class_tokens(tok, &labels, c->template_, S);
    int64_t trainable = 0;
    for (int i = 0; i < ps.n; i++) trainable += ps.p[i]->requires_grad ? ps.p[i]->numel : 0;
    say(&run, "model: %s%s, width %lld, %lld layers, patch %lld, input %lld, T %lld, E %lld, MIT %lld, prompts %lld; "
              "%.2fM parameters, %.2fM trained%s\n",
        config_pretrained_none(c) ? "random " : "", is_xclip ? "X-CLIP weights" : (config_pretrained_none(c) ? "init" : "CLIP weights"),
        (long long)mc->clip.vision_width, (long long)mc->clip.vision_layers, (long long)mc->clip.patch,
        (long long)mc->clip.image_size, (long long)mc->frames, (long long)mc->clip.embed_dim, (long long)mc->mit_layers,
        (long long)mc->prompt_layers, ps.total / 1e6, trainable / 1e6, mc->fix_text ? " (fix_text: text features cached)" : "");

    // data
    if (c->shots > 0) {
        Dataset *full = dataset_open(c->train_list, c->root, K, err);
        if (!full) goto done;
        char fs[CONFIG_PATH_MAX + 64];
        snprintf(fs, sizeof fs, "%s/train_fewshot_k%d_seed%lld.txt", c->dir, c->shots, (long long)c->shot_seed);
        int r = dataset_write_fewshot(full, c->shots, (uint64_t)c->shot_seed, fs, err);
        dataset_free(full);
        if (r != XC_OK) goto done;
        train = dataset_open(fs, c->root, K, err);
        if (!train) goto done;
        say(&run, "few-shot: %d videos per class drawn with seed %lld -> %s\n", c->shots, (long long)c->shot_seed, fs);
    } else {
        train = dataset_open(c->train_list, c->root, K, err);
        if (!train) goto done;
    }
    val = dataset_open(c->val_list, *c->val_root ? c->val_root : c->root, K, err);
    if (!val) goto done;
    if (train->n_missing) say(&run, "warning: %lld training videos are missing:\n%s", (long long)train->n_missing, train->issues);
    if (val->n_missing) say(&run, "warning: %lld validation videos are missing:\n%s", (long long)val->n_missing, val->issues);
    LoaderConfig lc = loader_config_train(c, K);
    ld = loader_create(train, &lc, err);
    if (!ld) goto done;
    const int64_t n_iter = loader_batches_per_epoch(ld), total = (int64_t)c->epochs * n_iter;
    LrSchedule sched = lr_schedule_from_epochs(c->lr, c->min_lr_ratio, c->warmup_epochs, c->epochs, n_iter);
    train_step_init(&st, &m, &ps, (AdamWConfig){(float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay},
                    c->new_lr_scale, sched, c->accumulation_steps, (uint64_t)c->seed, c->drop_path > 0);
    train_step_set_tokens(&st, tokens, K, S);
    step_ok = true;
    sc.st = &st;
    sc.ld = ld;
    sc.n = train->n;
    sc.order = xc_malloc(sizeof(int64_t) * (size_t)train->n);
    {
        size_t len = 0;
        FILE *cf = open_memstream(&sc.config, &len);
        if (cf) {
            config_write(c, cf);
            fclose(cf);
        }
        if (c->shots > 0) sc.fewshot = xc_read_file(train->list_path, 1u << 30, &len, err);
    }
    Progress prog = {.best = -1, .best_epoch = -1, .best_iter = -1};
    if (o->resume && run_resume(&run, &sc, o->resume, n_iter, &prog, err) < 0) goto done;
    if (mc->fix_text) { // after any resume: the features of the text tower the run actually has
        xclip_cache_text(&m, tokens, K, S);
        if (c->spill_text) spill_text_tower(&run, &ps, c->dir);
    }
    say(&run, "optimiser: AdamW%s; matmuls in %s\n", st.fused ? ", applied inside backward (fused: no gradient buffers between steps)" : "",
        xc_matmul_precision() == XC_MATMUL_BF16 ? "bf16 (AMX, float32 sums; train.matmul)" : "float32");
    say(&run, "data: %lld training videos (%lld batches of %d per epoch, accumulation %d: %d videos per step), "
              "%lld validation videos, K = %d\n",
        (long long)train->n, (long long)n_iter, c->batch_size, c->accumulation_steps, c->batch_size * c->accumulation_steps,
        (long long)val->n, K);
    say(&run, "schedule: %d epochs = %lld iterations, warm-up %lld, lr %.3g (new tensors x%g), floor %.3g\n", c->epochs,
        (long long)total, (long long)sched.warmup, c->lr, c->new_lr_scale, sched.min);

    // training
    double best = prog.best, t_start = xc_now(), t_train = 0, t_wait = 0;
    int best_epoch = prog.best_epoch;
    int64_t done_iters = prog.global_iter, run_iters = 0, best_iter = prog.best_iter;
    const int64_t limit = c->max_iters > 0 && c->max_iters < total ? c->max_iters : total;
    double loss_sum = 0, win_time = 0, win_wait = 0;
    int64_t loss_n = 0, win_n = 0;
    bool stop = done_iters >= limit, snap_due = false;
    for (int epoch = prog.epoch; epoch < c->epochs && !stop; epoch++) {
        const int64_t first = epoch == prog.epoch ? prog.iter_in_epoch : 0;
        if (first == 0) train_step_epoch_begin(&st);
        double ep_loss = 0;
        int64_t ep_n = 0;
        for (int64_t idx = first; idx < n_iter; idx++) {
            double t0 = xc_now();
            const Batch *b;
            int r = loader_next(ld, &b, err);
            double t1 = xc_now();
            if (r < 0) goto done;
            XC_CHECK(r == 1, "loader ended the epoch after %lld of %lld batches", (long long)idx, (long long)n_iter);
            const int64_t t = (int64_t)epoch * n_iter + idx;
            float loss = train_step_run(&st, b->video, b->B, b->targets, idx, t, NULL);
            double t2 = xc_now();
            t_train += t2 - t0;
            t_wait += t1 - t0;
            win_time += t2 - t0;
            win_wait += t1 - t0;
            win_n++;
            loss_sum += loss;
            loss_n++;
            ep_loss += loss;
            ep_n++;
            done_iters++;
            run_iters++;
            if (done_iters == test_signal.at) raise(test_signal.sig);
            if (!isfinite(loss)) {
                xc_err(err, "loss is %g at epoch %d iteration %lld\nHINT: lower train.lr", loss, epoch, (long long)idx);
                goto done;
            }
            bool last = done_iters == limit || idx + 1 == n_iter;
            if ((idx + 1) % c->print_freq == 0 || last) {
                char eta[32];
                fmt_duration(t_train / (double)run_iters * (double)(limit - done_iters), eta, sizeof eta);
                double lr = train_step_next_lr(&st);
                say(&run, "train epoch %d/%d iter %lld/%lld  lr %.3e  loss %.4f (avg %.4f)  %.1f videos/s  data wait %.0f%%  "
                          "eta %s  mem %.0f MiB (arena %.0f MiB)\n",
                    epoch + 1, c->epochs, (long long)idx + 1, (long long)n_iter, st.last_lr, loss, loss_sum / (double)loss_n,
                    (double)win_n * c->batch_size / win_time, 100.0 * win_wait / win_time, eta,
                    xc_peak_rss() / 1048576.0, st.g.step.peak / 1048576.0);
                fprintf(run.metrics,
                        "{\"type\": \"train\", \"epoch\": %d, \"iter\": %lld, \"global_iter\": %lld, \"lr\": %.9g, \"next_lr\": %.9g, "
                        "\"loss\": %.6f, \"loss_avg\": %.6f, \"videos_per_s\": %.3f, \"data_wait\": %.4f, \"opt_steps\": %lld, "
                        "\"peak_rss_mib\": %.1f}\n",
                        epoch, (long long)idx, (long long)t, st.last_lr, lr, loss, loss_sum / (double)loss_n,
                        (double)win_n * c->batch_size / win_time, win_wait / win_time, (long long)st.opt_steps,
                        xc_peak_rss() / 1048576.0);
                fflush(run.metrics);
                loss_sum = 0;
                loss_n = 0;
                win_time = win_wait = 0;
                win_n = 0;
            } else if (run.bar) {
                char extra[160];
                snprintf(extra, sizeof extra, "epoch %d/%d loss %.4f", epoch + 1, c->epochs, loss);
                progress_bar("train", idx + 1, n_iter, extra);
                run.bar_shown = true;
            }
            if (done_iters >= limit) {
                stop = true;
                break;
            }
            // snapshots within the epoch: periodic, or asked for by a signal; taken at the next accumulation
            // boundary (no partial gradient pending)
            if (c->snapshot_freq > 0 && done_iters % c->snapshot_freq == 0) snap_due = true;
            unsigned req = signals_poll();
            if (req & (SIGNAL_SNAPSHOT | SIGNAL_STOP)) snap_due = true;
            if (snap_due && ((idx + 1) % c->accumulation_steps == 0 || idx + 1 == n_iter)) {
                Progress pr = {done_iters, epoch, idx + 1, best, best_epoch, best_iter};
                if (run_snapshot(&run, &sc, &pr, err) != XC_OK) goto done;
                snap_due = false;
                signals_clear(SIGNAL_SNAPSHOT);
                if (req & SIGNAL_STOP) {
                    say(&run, "stopped by signal %d after the snapshot; continue with: xclip-train %s --resume auto\n",
                        signals_stop_signal(), *c->source ? c->source : "CONFIG");
                    rc = TRAIN_EXIT_STOPPED;
                    goto done;
                }
            }
        }
        if (!stop) { // the loader reports the end of the epoch once (and starts the next one)
            const Batch *b;
            int r = loader_next(ld, &b, err);
            if (r < 0) goto done;
            XC_CHECK(r == 0, "loader delivered more than %lld batches in an epoch", (long long)n_iter);
        }
        bool final_epoch = epoch + 1 == c->epochs || stop;
        if ((c->eval_freq > 0 && (epoch + 1) % c->eval_freq == 0) || final_epoch) {
            EvalResult er;
            double te = xc_now();
            if (run_eval(&run, &m, &st.g, val, tokens, K, S, c->num_clip, c->num_crop, &er, err) != XC_OK) goto done;
            bool better = er.top1 > best;
            if (better) {
                best = er.top1;
                best_epoch = epoch;
                best_iter = done_iters; // the epoch-end snapshot below holds this model
            }
            say(&run, "eval epoch %d/%d: top-1 %.2f%%  top-5 %.2f%%  mean class %.2f%%  (%lld videos, %d view%s, %.1f s)  "
                      "train loss %.4f  best %.2f%% (epoch %d)\n",
                epoch + 1, c->epochs, er.top1, er.top5, er.mean_class, (long long)er.n, er.views, er.views == 1 ? "" : "s",
                xc_now() - te, ep_n ? ep_loss / (double)ep_n : 0.0, best, best_epoch + 1);
            fprintf(run.metrics,
                    "{\"type\": \"eval\", \"epoch\": %d, \"global_iter\": %lld, \"top1\": %.4f, \"top5\": %.4f, \"mean_class\": %.4f, "
                    "\"videos\": %lld, \"views\": %d, \"train_loss\": %.6f, \"best_top1\": %.4f}\n",
                    epoch, (long long)done_iters, er.top1, er.top5, er.mean_class, (long long)er.n, er.views,
                    ep_n ? ep_loss / (double)ep_n : 0.0, best);
            fflush(run.metrics);
            if (better && c->save_best) {
                snprintf(path, sizeof path, "%s/best.safetensors", c->dir);
                if (save_weights(&ps, path, err) != XC_OK) goto done;
            }
        }
        // epoch-end snapshot (the cursor already points at the next epoch)
        Progress pr = {done_iters, stop ? epoch : epoch + 1, stop ? done_iters - (int64_t)epoch * n_iter : 0, best, best_epoch,
                       best_iter};
        if (run_snapshot(&run, &sc, &pr, err) != XC_OK) goto done;
        snap_due = false;
        if (signals_poll() & SIGNAL_STOP) {
            say(&run, "stopped by signal %d after the snapshot; continue with: xclip-train %s --resume auto\n",
                signals_stop_signal(), *c->source ? c->source : "CONFIG");
            rc = TRAIN_EXIT_STOPPED;
            goto done;
        }
        signals_clear(SIGNAL_SNAPSHOT);
    }
    snprintf(path, sizeof path, "%s/last.safetensors", c->dir);
    if (save_weights(&ps, path, err) != XC_OK) goto done;
    if (c->final_num_clip > 0) {
        EvalResult er;
        double te = xc_now();
        if (run_eval(&run, &m, &st.g, val, tokens, K, S, c->final_num_clip, c->final_num_crop, &er, err) != XC_OK) goto done;
        say(&run, "final eval (%d clips x %d crops): top-1 %.2f%%  top-5 %.2f%%  mean class %.2f%%  (%lld videos, %.1f s)\n",
            c->final_num_clip, c->final_num_crop, er.top1, er.top5, er.mean_class, (long long)er.n, xc_now() - te);
        fprintf(run.metrics,
                "{\"type\": \"final_eval\", \"clips\": %d, \"crops\": %d, \"top1\": %.4f, \"top5\": %.4f, \"mean_class\": %.4f, "
                "\"videos\": %lld}\n",
                c->final_num_clip, c->final_num_crop, er.top1, er.top5, er.mean_class, (long long)er.n);
    }
    char dur[32];
    fmt_duration(xc_now() - t_start, dur, sizeof dur);
    say(&run, "done: %lld iterations, %lld optimiser steps in %s (data wait %.0f%%); best top-1 %.2f%% at epoch %d%s%s%s\n",
        (long long)done_iters, (long long)st.opt_steps, dur, t_train > 0 ? 100.0 * t_wait / t_train : 0.0, best, best_epoch + 1,
        c->save_best ? " -> " : "", c->save_best ? c->dir : "", c->save_best ? "/best.safetensors" : "");
    rc = XC_OK;
done:
    signals_uninstall();
    xc_free(sc.order);
    free(sc.config);
    xc_free(sc.fewshot);
    if (step_ok) train_step_free(&st);
    loader_free(ld);
    dataset_free(train);
    dataset_free(val);
    if (model_ok) {
        xclip_free(&m);
        param_store_free(&ps);
    }
    xc_free(tokens);
    labels_free(&labels);
    tokenizer_free(tok);
    xc_set_matmul_precision(prev_precision, NULL);
    xc_gemm_bf16_free();
    if (rc == XC_ERR && run.log) fprintf(run.log, "error: %s\n", err->msg);
    if (run.log) fclose(run.log);
    if (run.metrics) fclose(run.metrics);
    return rc;
}
