// pretrain.c - see pretrain.h. Letters: B pairs per batch, H image side, S text context, E embedding size.
#include "train/pretrain.h"
#include "train/setup.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data/captions.h"
#include "data/dataset.h"
#include "data/transforms.h"
#include "data/world.h"
#include "nn/clip_pretrain.h"
#include "train/dist.h"

typedef struct Pairs {          // a caption list with its captions tokenised once
    CaptionList *cl;
    int32_t *tokens;            // (n, S)
} Pairs;

typedef struct PretrainTask {
    const TrainConfig *c;
    RunLog *log;
    Tokenizer *tok;
    int64_t H, S;
    Pairs train, val;
    Clip m;
    ParamStore ps;
    bool model_ok, step_ok;
    TrainStep st;
    TfConfig tf;                // normalisation statistics of the video pipeline
    int64_t *order;             // (train n) the order of the pairs in epoch order_epoch
    int64_t order_epoch;        // -1: none drawn yet
    LoaderCursor cur;           // the next batch (epoch, batch)
    float *images;              // (B, 3, H, H) the batch being trained
    int32_t *tokens;            // (B, S)
    int64_t bad;                // images that failed to read (replaced by the next pair of the epoch)
} PretrainTask;

// ---- data ------------------------------------------------------------------------------------------------
static int pairs_open(Pairs *p, const char *list, const char *root, Tokenizer *tok, int64_t S, RunLog *log, XcError *err) {
    CaptionListOptions opt = caption_list_options_default();
    opt.tok = tok;
    opt.context = (int)S;
    p->cl = caption_list_open(list, root, &opt, err);
    if (!p->cl) return XC_ERR;
    if (p->cl->n_skipped)
        runlog_say(log, "warning: %s: %lld pairs skipped (%lld missing images, %lld empty and %lld over-long captions):\n%s",
                   list, (long long)p->cl->n_skipped, (long long)p->cl->n_missing, (long long)p->cl->n_empty,
                   (long long)p->cl->n_too_long, p->cl->issues);
    p->tokens = xc_malloc(sizeof(int32_t) * (size_t)p->cl->n * (size_t)S);
    for (int64_t i = 0; i < p->cl->n; i++) tokenizer_encode(tok, p->cl->items[i].caption, p->tokens + i * S, (int)S);
    return XC_OK;
}

static void pairs_free(Pairs *p) {
    caption_list_free(p->cl);
    xc_free(p->tokens);
    memset(p, 0, sizeof *p);
}

// Pairs idx[0..n) into images (n, 3, H, H) normalised and tokens (n, S). A pair whose image cannot be read is
// replaced by the next readable one of idx's list (wrapping), counted in *bad; XC_ERR when none can be read.
static int read_pairs(const Pairs *p, const int64_t *idx, int64_t n, int64_t n_all, const TfConfig *tf, int64_t H, int64_t S,
                      float *images, int32_t *tokens, int64_t *bad, XcError *err) {
    int rc = XC_OK;
    int64_t failed = 0;
#pragma omp parallel for schedule(dynamic, 4) reduction(+ : failed)
    for (int64_t i = 0; i < n; i++) {
        uint8_t rgb[64 * 64 * 3];
        XcError e;
        int64_t k = idx[i], tries = 0;
        while (caption_list_image(p->cl, k, (int)H, rgb, &e) != XC_OK && tries < n_all) {
            failed++;
            k = (k + 1) % n_all;
            tries++;
        }
        if (tries == n_all) {
#pragma omp critical
            rc = xc_err(err, "%s: no image can be read (last: %s)", p->cl->path, e.msg);
            continue;
        }
        tf_normalize(images + i * 3 * H * H, rgb, (int)H, (int)H, tf->mean, tf->std);
        memcpy(tokens + i * S, p->tokens + k * S, sizeof(int32_t) * (size_t)S);
    }
    *bad += failed;
    return rc;
}

static void draw_order(PretrainTask *x, int64_t epoch) {
    loader_epoch_order((uint64_t)x->c->seed, epoch, x->order, x->train.cl->n); // the order the run's snapshots record
    x->order_epoch = epoch;
}

// ---- the loss ------------------------------------------------------------------------------------------
typedef struct PairBatch {
    const PretrainTask *x;
    int64_t B;
    const float *images;        // (B, 3, H, H)
    const int32_t *tokens;      // (B, S)
    int64_t matches;            // out: image -> caption top-1 hits within the batch
} PairBatch;

static Tensor *contrastive(void *ctx, Graph *g, Rng *drop) {
    (void)drop;
    PairBatch *b = ctx;
    const PretrainTask *x = b->x;
    Tensor *img = clip_encode_image(g, &x->m, tensor_wrap(g, 4, (int64_t[]){b->B, 3, x->H, x->H}, b->images));
    Tensor *txt = clip_encode_text(g, &x->m.text, b->tokens, b->B, x->S, true);
    Tensor *logits = NULL;
    Tensor *loss = clip_contrastive_loss(g, img, txt, x->m.logit_scale, &logits);
    b->matches = clip_batch_matches(logits);
    return loss;
}

static void clamp_temperature(void *ctx) { clip_clamp_logit_scale(((PretrainTask *)ctx)->m.logit_scale); }

// ---- the task's callbacks ---------------------------------------------------------------------------------
static int task_train_batch(void *ctx, int64_t idx, int64_t t, float *loss, double *wait, XcError *err) {
    PretrainTask *x = ctx;
    const int64_t B = x->c->batch_size;
    if (x->order_epoch != x->cur.epoch) draw_order(x, x->cur.epoch); // a new epoch, or the first batch after a resume
    double t0 = xc_now();
    const int64_t mine = idx - dist_size() + 1 + dist_rank(); // with N ranks, this rank's batch of the round
    if (read_pairs(&x->train, x->order + mine * B, B, x->train.cl->n, &x->tf, x->H, x->S, x->images, x->tokens, &x->bad, err) !=
        XC_OK)
        return XC_ERR;
    *wait = xc_now() - t0;
    PairBatch b = {x, B, x->images, x->tokens, 0};
    *loss = train_step_run_loss(&x->st, contrastive, &b, idx, t, NULL);
    x->cur.batch = idx + 1;
    return XC_OK;
}

static int task_end_epoch(void *ctx, XcError *err) {
    (void)err;
    PretrainTask *x = ctx;
    x->cur.epoch++;
    x->cur.batch = 0;
    return XC_OK;
}

// Image -> caption top-1 of the held-out pairs, within consecutive chunks of B pairs (the training task's
// difficulty), and the mean contrastive loss over the chunks. With N ranks, rank r scores chunks r, r + N, ...
// and the per-chunk results are summed over the ranks (each chunk's once, the others' zeros: exact), then added
// up in chunk order: the same numbers as one process.
static int val_retrieval(PretrainTask *x, Graph *g, double *top1, double *loss, XcError *err) {
    const int64_t B = x->c->batch_size, n = x->val.cl->n, chunks = n / B > 0 ? n / B : 1, Bc = n < B ? n : B;
    float *images = xc_malloc(sizeof(float) * (size_t)(Bc * 3 * x->H * x->H));
    int32_t *tokens = xc_malloc(sizeof(int32_t) * (size_t)(Bc * x->S));
    int64_t *idx = xc_malloc(sizeof(int64_t) * (size_t)Bc), *hits = xc_calloc((size_t)chunks, sizeof(int64_t)), bad = 0;
    double *losses = xc_calloc((size_t)chunks, sizeof(double));
    int rc = XC_OK;
    bool prev = graph_set_grad(g, false);
    for (int64_t ch = dist_rank(); ch < chunks && rc == XC_OK && !(signals_poll() & SIGNAL_STOP); ch += dist_size()) {
        for (int64_t i = 0; i < Bc; i++) idx[i] = ch * Bc + i; // (Ctrl-C: stop early, the run loop discards the result)
        rc = read_pairs(&x->val, idx, Bc, n, &x->tf, x->H, x->S, images, tokens, &bad, err);
        if (rc != XC_OK) break;
        PairBatch b = {x, Bc, images, tokens, 0};
        losses[ch] = contrastive(&b, g, NULL)->data[0];
        hits[ch] = b.matches;
        graph_reset(g);
    }
    graph_set_grad(g, prev);
    dist_sum_f64(losses, (int)chunks); // every rank joins, also after an error (the job then ends on all of them)
    dist_sum_i64(hits, (int)chunks);
    int64_t hit_sum = 0;
    double loss_sum = 0;
    for (int64_t ch = 0; ch < chunks; ch++) {
        hit_sum += hits[ch];
        loss_sum += losses[ch];
    }
    *top1 = 100.0 * (double)hit_sum / (double)(chunks * Bc);
    *loss = loss_sum / (double)chunks;
    xc_free(images);
    xc_free(tokens);
    xc_free(idx);
    xc_free(hits);
    xc_free(losses);
    return rc;
}

static int task_evaluate(void *ctx, bool final, RunScore *s, XcError *err) {
    PretrainTask *x = ctx;
    double top1 = 0, vloss = 0;
    ZeroShotResult z = {0};
    if (val_retrieval(x, &x->st.g, &top1, &vloss, err) != XC_OK) return XC_ERR;
    // not after a Ctrl-C; every rank decides alike (the probe is shared out among them)
    const bool probe = *x->c->probe_dir != 0 && !(dist_or(signals_poll()) & SIGNAL_STOP);
    if (probe && clip_zero_shot_probe(&x->m, &x->st.g, x->tok, x->c->probe_dir, &z, err) != XC_OK) return XC_ERR;
    s->top1 = top1;
    int n = snprintf(s->text, sizeof s->text, "val image->caption top-1 %.2f%% (in chunks of %d)  val loss %.4f  "
                                             "temperature %.1f", top1, x->c->batch_size, vloss, expf(x->m.logit_scale->data[0]));
    if (probe && n > 0 && (size_t)n < sizeof s->text)
        snprintf(s->text + n, sizeof s->text - (size_t)n, "%szero-shot colour %.1f%%  shape %.1f%%  size %.1f%%  position %.1f%%  "
                 "colour-shape seen %.1f%% / unseen %.1f%% (%lld probe images)", final ? "\n  " : "  ", z.colour, z.shape,
                 z.size, z.position, z.combo_seen, z.combo_unseen, (long long)z.images);
    Metric f[] = {METRIC_NUM("val_top1", top1), METRIC_NUM("val_loss", vloss),
                  METRIC_NUM("temperature", expf(x->m.logit_scale->data[0])), METRIC_NUM("zs_colour", z.colour),
                  METRIC_NUM("zs_shape", z.shape), METRIC_NUM("zs_size", z.size), METRIC_NUM("zs_position", z.position),
                  METRIC_NUM("zs_combo_seen", z.combo_seen), METRIC_NUM("zs_combo_unseen", z.combo_unseen)};
    s->n_fields = probe ? 9 : 3;
    memcpy(s->fields, f, sizeof(Metric) * (size_t)s->n_fields);
    return 1;
}

static LoaderCursor task_cursor(void *ctx) { return ((PretrainTask *)ctx)->cur; }
static void task_seek(void *ctx, LoaderCursor c) { ((PretrainTask *)ctx)->cur = c; }

static char *task_bad_items(void *ctx) {
    PretrainTask *x = ctx;
    if (!x->bad) return NULL;
    char *text = xc_malloc(96);
    snprintf(text, 96, "-1\t%lld images could not be read and were replaced\n", (long long)x->bad);
    return text;
}

static void task_free(void *ctx) {
    PretrainTask *x = ctx;
    if (!x) return;
    if (x->step_ok) train_step_free(&x->st);
    if (x->model_ok) param_store_free(&x->ps);
    pairs_free(&x->train);
    pairs_free(&x->val);
    tokenizer_free(x->tok);
    xc_free(x->order);
    xc_free(x->images);
    xc_free(x->tokens);
    xc_free(x);
}

// ---- set-up -------------------------------------------------------------------------------------------------
static int need(const TrainConfig *c, const char *key, const char *path, const char *what, XcError *err) {
    if (*path) return XC_OK;
    return xc_err(err, "%s: %s is not set (%s)\nHINT: `xclip-synth world DIR` writes a captioned world; see "
                       "configs/pretrain_world.ini", *c->source ? c->source : "the config", key, what);
}

static int task_build(Run *r, RunTask *t, XcError *err) {
    const TrainConfig *c = run_config(r);
    PretrainTask *x = xc_calloc(1, sizeof *x);
    x->c = c;
    x->log = run_log(r);
    *t = (RunTask){.program = "xclip-pretrain", .items = "pairs", .ctx = x, .free = task_free};
    if (need(c, "data.train_list", c->train_list, "the captioned training pairs, image<TAB>caption", err) ||
        need(c, "data.root", c->root, "folder or .tar of the training images", err) ||
        need(c, "data.val_list", c->val_list, "held-out captioned pairs", err))
        return XC_ERR;
    TrainConfig cc = *c;
    config_apply_arch(&cc);
    x->H = c->input_size;
    x->S = cc.context;
    if (x->H > 64) return xc_err(err, "data.input_size = %lld: pretraining reads images of at most 64x64", (long long)x->H);
    if (c->input_size % cc.patch) return xc_err(err, "data.input_size %d is not a multiple of model.patch %d", c->input_size, cc.patch);
    x->tok = tokenizer_load(c->vocab, err);
    if (!x->tok) return xc_err(err, "data.vocab = %s: %s", c->vocab, err->msg);
    runlog_say(x->log, "xclip-pretrain: run directory %s (config.ini, log.txt, metrics.jsonl)\n", c->dir);
    if (pairs_open(&x->train, c->train_list, c->root, x->tok, x->S, x->log, err) != XC_OK ||
        pairs_open(&x->val, c->val_list, *c->val_root ? c->val_root : c->root, x->tok, x->S, x->log, err) != XC_OK)
        return XC_ERR;
    const int64_t B = c->batch_size, n_iter = x->train.cl->n / B;
    if (n_iter < dist_size())
        return xc_err(err, "%s: %lld pairs, fewer than %s of train.batch_size = %lld", c->train_list,
                      (long long)x->train.cl->n, dist_size() > 1 ? "one batch per rank" : "one batch", (long long)B);
    ClipConfig cfg = {.vision_width = cc.vision_width, .vision_layers = cc.vision_layers, .vision_heads = cc.vision_width / 64,
                      .vision_mlp = 4 * (int64_t)cc.vision_width, .patch = cc.patch, .image_size = x->H,
                      .embed_dim = cc.embed_dim, .text_width = cc.text_width, .text_layers = cc.text_layers,
                      .text_heads = cc.text_width / 64, .text_mlp = 4 * (int64_t)cc.text_width, .context = x->S,
                      .vocab = cc.vocab_size};
    param_store_init(&x->ps, "params");
    x->ps.transient_grads = config_fused_adamw(c);
    clip_init(&x->m, &x->ps, &cfg, false);
    clip_init_random(&x->m, (uint64_t)c->seed);
    x->model_ok = true;
    runlog_say(x->log, "model: CLIP from random initialisation, vision width %lld x %lld layers, patch %lld, input %lld; text "
                       "width %lld x %lld layers, context %lld; E %lld; %.2fM parameters\n",
               (long long)cfg.vision_width, (long long)cfg.vision_layers, (long long)cfg.patch, (long long)x->H,
               (long long)cfg.text_width, (long long)cfg.text_layers, (long long)x->S, (long long)cfg.embed_dim, x->ps.total / 1e6);
    runlog_say(x->log, "data: %lld training pairs (%s), %lld held-out pairs; longest caption %d tokens of %lld\n",
               (long long)x->train.cl->n, c->train_list, (long long)x->val.cl->n, x->train.cl->max_tokens, (long long)x->S);
    LrSchedule sched = lr_schedule_from_epochs(c->lr, c->min_lr_ratio, c->warmup_epochs, c->epochs, n_iter);
    StepGroups groups = {.n = 1, .scale = {1.0f}, .group_of = NULL, .decays = clip_pretrain_decays};
    train_step_init_groups(&x->st, &x->ps, (AdamWConfig){(float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay},
                           groups, sched, c->accumulation_steps, (uint64_t)c->seed, false);
    x->step_ok = true;
    if (!x->st.fused) train_step_distribute(&x->st, (size_t)(c->bucket_mb * 1e6));
    x->st.g.gemm = run_gemm(r);
    x->st.after_update = clamp_temperature;
    x->st.after_ctx = x;
    x->tf = tf_config_default((int)x->H);
    x->order = xc_malloc(sizeof(int64_t) * (size_t)x->train.cl->n);
    x->order_epoch = -1;
    x->images = xc_malloc(sizeof(float) * (size_t)(B * 3 * x->H * x->H));
    x->tokens = xc_malloc(sizeof(int32_t) * (size_t)(B * x->S));
    *t = (RunTask){.program = "xclip-pretrain", .items = "pairs", .ps = &x->ps, .st = &x->st, .n_items = x->train.cl->n,
                   .n_iter = n_iter, .batch_size = (int)B, .ctx = x, .train_batch = task_train_batch,
                   .end_epoch = task_end_epoch, .evaluate = task_evaluate, .cursor = task_cursor, .seek = task_seek,
                   .bad_items = task_bad_items, .free = task_free};
    return XC_OK;
}

int pretrain_run(const TrainConfig *c, const TrainRunOptions *o, XcError *err) { return run_main(c, o, task_build, err); }

// ---- zero-shot probe ------------------------------------------------------------------------------------------
// Features (n, E) of the class names of a label CSV, normalised; NULL + err.
static float *class_features(const Clip *m, Graph *g, Tokenizer *tok, const char *csv, int *K, XcError *err) {
    LabelSet labels = {0};
    if (labels_load(csv, &labels, err) != XC_OK) return NULL;
    int32_t *tokens = class_tokens(tok, &labels, "{}", m->cfg.context);
    float *out = clip_text_features(m, g, tokens, labels.count);
    *K = labels.count;
    xc_free(tokens);
    labels_free(&labels);
    return out;
}

// Normalised image features (n, E) of every image of the probe list (probe.txt, folder dir), in list order. With
// N ranks, rank r encodes chunks r, r + N, ... and each chunk's owner then sends it to the others: every rank
// holds all features, the same bits as one process computes (the chunks are the same).
static float *probe_features(const Clip *m, Graph *g, const char *dir, Dataset **out, XcError *err) {
    char list[1200], root[1200];
    snprintf(list, sizeof list, "%s/probe.txt", dir);
    snprintf(root, sizeof root, "%s/probe.tar", dir);
    Dataset *ds = dataset_open(list, root, 0, err);
    if (!ds) return NULL;
    const int64_t H = m->cfg.image_size, E = m->cfg.embed_dim, chunk = 256;
    TfConfig tf = tf_config_default((int)H);
    float *img = xc_malloc(sizeof(float) * (size_t)(chunk * 3 * H * H));
    float *feat = xc_malloc(sizeof(float) * (size_t)(ds->n * E));
    int rc = XC_OK;
    for (int64_t c0 = dist_rank() * chunk; c0 < ds->n && rc == XC_OK; c0 += dist_size() * chunk) {
        const int64_t nc = ds->n - c0 < chunk ? ds->n - c0 : chunk;
        for (int64_t i = 0; i < nc && rc == XC_OK; i++) {
            const DatasetItem *it = &ds->items[c0 + i];
            uint8_t rgb[64 * 64 * 3];
            if (ppm_read(root, it->offset, it->size, it->path, (int)H, rgb, err) != XC_OK) rc = XC_ERR;
            else tf_normalize(img + i * 3 * H * H, rgb, (int)H, (int)H, tf.mean, tf.std);
        }
        if (rc != XC_OK) break;
        Tensor *f = op_l2_normalize(g, clip_encode_image(g, m, tensor_wrap(g, 4, (int64_t[]){nc, 3, H, H}, img)));
        memcpy(feat + c0 * E, f->data, sizeof(float) * (size_t)(nc * E));
        graph_reset(g);
    }
    for (int64_t c0 = 0; c0 < ds->n && rc == XC_OK && dist_size() > 1; c0 += chunk) // an error ends the job instead
        dist_bcast(feat + c0 * E, sizeof(float) * (size_t)((ds->n - c0 < chunk ? ds->n - c0 : chunk) * E),
                   (int)(c0 / chunk % dist_size()));
    xc_free(img);
    if (rc != XC_OK) {
        xc_free(feat);
        dataset_free(ds);
        return NULL;
    }
    *out = ds;
    return feat;
}

// Top-1 of the probe images against the classes of one attribute (probe_<attr>.txt: the images of probe.txt in
// the same order, labelled by <attr>.csv's classes). With acc_unseen, the images whose label is an unseen
// colour-shape combination are counted apart.
static int probe_attribute(const Clip *m, Graph *g, Tokenizer *tok, const char *dir, const Dataset *all, const float *feat,
                           const char *attr, double *acc, double *acc_unseen, int64_t *images, XcError *err) {
    char list[1200], csv[1200];
    snprintf(list, sizeof list, "%s/probe_%s.txt", dir, attr);
    snprintf(csv, sizeof csv, "%s/%s.csv", dir, !strcmp(attr, "combo") ? "combos" : attr);
    int K = 0;
    float *cf = class_features(m, g, tok, csv, &K, err);
    if (!cf) return XC_ERR;
    Dataset *ds = dataset_open(list, *all->root ? all->root : dir, K, err);
    int rc = ds ? XC_OK : XC_ERR;
    if (ds && ds->n != all->n) rc = xc_err(err, "%s: %lld images, probe.txt has %lld", list, (long long)ds->n, (long long)all->n);
    const int64_t E = m->cfg.embed_dim;
    int64_t hits[2] = {0, 0}, count[2] = {0, 0};
    for (int64_t i = 0; rc == XC_OK && i < ds->n; i++) {
        if (strcmp(ds->items[i].path, all->items[i].path)) {
            rc = xc_err(err, "%s:%d: %s, probe.txt has %s there", list, ds->items[i].line, ds->items[i].path, all->items[i].path);
            break;
        }
        const int y = ds->items[i].label;
        int best = 0;
        double best_s = -1e30;
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int64_t e = 0; e < E; e++) s += (double)feat[i * E + e] * cf[(size_t)k * E + e];
            if (s > best_s) {
                best_s = s;
                best = k;
            }
        }
        const int unseen = acc_unseen && world_unseen_index(y / WORLD_SHAPES, y % WORLD_SHAPES) >= 0;
        hits[unseen] += best == y;
        count[unseen]++;
    }
    *acc = count[0] ? 100.0 * (double)hits[0] / (double)count[0] : 0;
    if (acc_unseen) *acc_unseen = count[1] ? 100.0 * (double)hits[1] / (double)count[1] : 0;
    if (images) *images = count[0] + count[1];
    xc_free(cf);
    dataset_free(ds);
    return rc;
}

int clip_zero_shot_probe(const Clip *m, Graph *g, Tokenizer *tok, const char *dir, ZeroShotResult *res, XcError *err) {
    memset(res, 0, sizeof *res);
    bool prev = graph_set_grad(g, false);
    Dataset *all = NULL;
    float *feat = probe_features(m, g, dir, &all, err); // every probe image once
    int rc = feat ? XC_OK : XC_ERR;
    if (rc == XC_OK) rc = probe_attribute(m, g, tok, dir, all, feat, "colour", &res->colour, NULL, NULL, err);
    if (rc == XC_OK) rc = probe_attribute(m, g, tok, dir, all, feat, "shape", &res->shape, NULL, NULL, err);
    if (rc == XC_OK) rc = probe_attribute(m, g, tok, dir, all, feat, "size", &res->size, NULL, NULL, err);
    if (rc == XC_OK) rc = probe_attribute(m, g, tok, dir, all, feat, "position", &res->position, NULL, NULL, err);
    if (rc == XC_OK)
        rc = probe_attribute(m, g, tok, dir, all, feat, "combo", &res->combo_seen, &res->combo_unseen, &res->images, err);
    xc_free(feat);
    dataset_free(all);
    graph_set_grad(g, prev);
    if (rc != XC_OK) return xc_err(err, "zero-shot probe of %s: %s", dir, err->msg);
    return XC_OK;
}
