// trainer.c - see trainer.h: the X-CLIP fine-tuning task of the run loop. Letters: K classes, S text context.
#include "train/trainer.h"

#include <stdlib.h>
#include <string.h>

typedef struct XClipTask {
    const TrainConfig *c;
    RunLog *log;
    Tokenizer *tok;
    LabelSet labels;
    int K;
    int64_t S;
    int32_t *tokens;            // (K*M, S) class texts (M templates, class-major)
    XClip m;
    ParamStore ps;
    bool model_ok, step_ok;
    Dataset *train, *val;
    Loader *ld;
    TrainStep st;
    char *fewshot;              // the drawn few-shot list (text kept in snapshots), or NULL
} XClipTask;

// The trainable branches and the head, for the "model:" line.
static const char *branches_trained(const XClipConfig *mc) {
    if (mc->head == XCLIP_HEAD_LINEAR) return mc->fix_vision ? "head linear (linear probe: frozen vision, the head trains)"
                                                             : "head linear (vision and head train)";
    if (mc->fix_vision && mc->fix_text) return "head text (CoOp on frozen towers: only the context vectors train)";
    if (mc->fix_vision) return "head text (text branch: text tower and logit_scale train, vision frozen)";
    if (mc->fix_text && mc->context_tokens)
        return "head text (vision branch and the context vectors train; the frozen text tower runs every step)";
    return mc->fix_text ? "head text (vision branch trains; fix_text: text features cached)"
                        : "head text (both branches train)";
}

// Vocabulary, labels, the model and the class-text tokens (none for the linear head: it only needs K).
static int task_build_model(XClipTask *x, XcError *err) {
    const TrainConfig *c = x->c;
    const bool linear = c->head == XCLIP_HEAD_LINEAR;
    x->tok = linear ? NULL : tokenizer_load(c->vocab, err);
    if (!linear && !x->tok)
        return xc_err(err, "data.vocab = %s: %s\nHINT: CLIP's vocabulary ships with openai/CLIP as "
                           "clip/bpe_simple_vocab_16e6.txt.gz; set data.vocab to its path", c->vocab, err->msg);
    if (labels_load(c->labels, &x->labels, err) != XC_OK) return XC_ERR;
    x->K = x->labels.count;
    if (c->num_classes && c->num_classes != x->K)
        return xc_err(err, "data.num_classes = %d but %s has %d classes", c->num_classes, c->labels, x->K);
    runlog_say(x->log, "xclip-train: run directory %s (config.ini, log.txt, metrics.jsonl)\n", c->dir);
    const bool none = config_pretrained_none(c);
    if (none)
        runlog_say(x->log, "\n*** model.pretrained = none: RANDOM INITIALISATION (no CLIP weights); expect a from-scratch run ***\n\n");
    bool is_xclip = false;
    TrainConfig ck = *c; // the linear head's K: the label file's
    ck.num_classes = x->K;
    if (model_build(&x->m, &x->ps, &ck, NULL, &is_xclip, err) != XC_OK) return XC_ERR;
    x->model_ok = true;
    const XClipConfig *mc = &x->m.cfg;
    x->S = mc->clip.context;
    if (!linear) {
        ClassTexts ct;
        if (class_texts(x->tok, &x->labels, c, mc->context_tokens, x->S, &ct, err) != XC_OK) return XC_ERR;
        x->tokens = ct.tokens;
        x->m.cfg.templates = ct.templates;
        if (ct.cut.count)
            runlog_say(x->log, "warning: %d class text%s cut to fit the text context (%lld ids after the start token%s), e.g. "
                               "class %d '%s'\n", ct.cut.count, ct.cut.count == 1 ? " is" : "s are", (long long)ct.cut.room,
                       mc->context_tokens ? " and the context vectors" : "", ct.cut.class_index, x->labels.names[ct.cut.class_index]);
        if (ct.M > 1 || *c->templates) runlog_say(x->log, "text: %lld templates per class from %s, ensembled\n", (long long)ct.M, c->templates);
        if (mc->context_tokens) runlog_say(x->log, "text: %lld learnable context vectors (prompt_learner.ctx)\n", (long long)mc->context_tokens);
    }
    int64_t trainable = 0;
    for (int i = 0; i < x->ps.n; i++) trainable += x->ps.p[i]->requires_grad ? x->ps.p[i]->numel : 0;
    runlog_say(x->log, "model: %s%s, width %lld, %lld layers, patch %lld, input %lld, T %lld, E %lld, cct %s, "
                       "MIT %lld, prompts %lld; %.2fM parameters, %.2fM trained; %s\n",
               none ? "random " : "", is_xclip ? "X-CLIP weights" : (none ? "init" : "CLIP weights"),
               (long long)mc->clip.vision_width, (long long)mc->clip.vision_layers, (long long)mc->clip.patch,
               (long long)mc->clip.image_size, (long long)mc->frames, (long long)mc->clip.embed_dim,
               mc->cct ? "on" : "off", (long long)mc->mit_layers, (long long)mc->prompt_layers, x->ps.total / 1e6,
               trainable / 1e6, branches_trained(mc));
    return XC_OK;
}

// The training list (or its few-shot draw, saved in the run directory), the validation list.
static int task_open_lists(XClipTask *x, XcError *err) {
    const TrainConfig *c = x->c;
    if (c->shots > 0) {
        Dataset *full = dataset_open(c->train_list, c->root, x->K, err);
        if (!full) return XC_ERR;
        char fs[CONFIG_PATH_MAX + 64];
        snprintf(fs, sizeof fs, "%s/train_fewshot_k%d_seed%lld.txt", c->dir, c->shots, (long long)c->shot_seed);
        // the other ranks draw the same list into a file of their own, read it and remove it
        char mine[CONFIG_PATH_MAX + 80];
        if (dist_rank()) snprintf(mine, sizeof mine, "%s.rank%d", fs, dist_rank());
        else snprintf(mine, sizeof mine, "%s", fs);
        int rc = dataset_write_fewshot(full, c->shots, (uint64_t)c->shot_seed, mine, err);
        dataset_free(full);
        if (rc != XC_OK) return XC_ERR;
        x->train = dataset_open(mine, c->root, x->K, err);
        if (dist_rank()) remove(mine);
        if (!x->train) return XC_ERR;
        size_t len = 0;
        if (!dist_rank() && !(x->fewshot = xc_read_file(x->train->list_path, 1u << 30, &len, err))) return XC_ERR;
        runlog_say(x->log, "few-shot: %d videos per class drawn with seed %lld -> %s\n", c->shots, (long long)c->shot_seed, fs);
    } else {
        x->train = dataset_open(c->train_list, c->root, x->K, err);
        if (!x->train) return XC_ERR;
    }
    x->val = dataset_open(c->val_list, *c->val_root ? c->val_root : c->root, x->K, err);
    if (!x->val) return XC_ERR;
    if (x->train->n_missing)
        runlog_say(x->log, "warning: %lld training videos are missing:\n%s", (long long)x->train->n_missing, x->train->issues);
    if (x->val->n_missing)
        runlog_say(x->log, "warning: %lld validation videos are missing:\n%s", (long long)x->val->n_missing, x->val->issues);
    runlog_say(x->log, "data: %lld training and %lld validation videos, K = %d classes\n", (long long)x->train->n,
               (long long)x->val->n, x->K);
    return XC_OK;
}

// ---- the task's callbacks ---------------------------------------------------------------------------------
static int task_train_batch(void *ctx, int64_t idx, int64_t t, float *loss, double *wait, XcError *err) {
    XClipTask *x = ctx;
    double t0 = xc_now();
    const Batch *b;
    int got = loader_next(x->ld, &b, err);
    *wait = xc_now() - t0;
    if (got < 0) return XC_ERR;
    XC_CHECK(got == 1, "loader ended the epoch after %lld batches", (long long)idx);
    *loss = train_step_run(&x->st, b->video, b->B, b->targets, idx, t, NULL);
    return XC_OK;
}

static int task_end_epoch(void *ctx, XcError *err) { // the loader reports the end of the epoch once
    XClipTask *x = ctx;
    const Batch *b;
    int got = loader_next(x->ld, &b, err);
    if (got < 0) return XC_ERR;
    XC_CHECK(got == 0, "loader delivered more than %lld batches in an epoch", (long long)loader_batches_per_epoch(x->ld));
    return XC_OK;
}

// Single-view validation after an epoch, or the final multi-view one (test.final_num_clip x final_num_crop).
static int task_evaluate(void *ctx, bool final, RunScore *s, XcError *err) {
    XClipTask *x = ctx;
    const TrainConfig *c = x->c;
    const int clips = final ? c->final_num_clip : c->num_clip, crops = final ? c->final_num_crop : c->num_crop;
    if (clips <= 0) return 0;
    LoaderConfig lc = loader_config_test(c, clips, crops, c->test_batch_size);
    lc.shards = dist_size(); // each rank scores its share of the batches; evaluate adds the counts up
    lc.shard = dist_rank();
    Loader *ld = loader_create(x->val, &lc, err);
    if (!ld) return XC_ERR;
    EvalResult er;
    int rc = evaluate(&x->m, &x->st.g, ld, x->val->n, x->tokens, x->K, x->S, c->test_batch_size, x->log->bar, &er, NULL, err);
    loader_free(ld);
    if (rc != XC_OK) return XC_ERR;
    s->top1 = er.top1;
    snprintf(s->text, sizeof s->text, "top-1 %.2f%%  top-5 %.2f%%  mean class %.2f%%  (%lld videos, %d clip%s x %d crop%s)",
             er.top1, er.top5, er.mean_class, (long long)er.n, clips, clips == 1 ? "" : "s", crops, crops == 1 ? "" : "s");
    Metric f[] = {METRIC_NUM("top1", er.top1), METRIC_NUM("top5", er.top5), METRIC_NUM("mean_class", er.mean_class),
                  METRIC_INT("videos", er.n), METRIC_INT("clips", clips), METRIC_INT("crops", crops)};
    memcpy(s->fields, f, sizeof f);
    s->n_fields = (int)(sizeof f / sizeof f[0]);
    return 1;
}

static LoaderCursor task_cursor(void *ctx) { return loader_cursor(((XClipTask *)ctx)->ld); }
static void task_seek(void *ctx, LoaderCursor cur) { loader_seek(((XClipTask *)ctx)->ld, cur); }

static char *task_bad_items(void *ctx) {
    XClipTask *x = ctx;
    int64_t nbad = 0;
    const BadVideo *bad = loader_bad_videos(x->ld, &nbad);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (int64_t i = 0; f && i < nbad; i++) fprintf(f, "%lld\t%s\n", (long long)bad[i].item, bad[i].reason);
    if (f) fclose(f);
    return text;
}

// After any resume: the class text features of the text tower the run actually has (fix_text), and the frozen
// tower out of memory (model.spill_text; a failure only costs memory).
static int task_restored(void *ctx, XcError *err) {
    (void)err;
    XClipTask *x = ctx;
    const TrainConfig *c = x->c;
    // nothing cached: no text tower, one that trains, or context vectors run through it every step
    if (!x->m.cfg.fix_text || x->m.cfg.head == XCLIP_HEAD_LINEAR || x->m.prompt_ctx) return XC_OK;
    if (dist_rank() == 0) xclip_cache_text(&x->m, x->tokens, x->K, x->S);
    if (dist_size() > 1) { // computed once, sent to every rank
        const size_t bytes = sizeof(float) * (size_t)x->K * (size_t)x->m.cfg.clip.embed_dim;
        if (dist_rank() != 0) {
            xc_free(x->m.text_cache);
            x->m.text_cache = xc_malloc(bytes);
            x->m.text_cache_k = x->K;
        }
        dist_bcast(x->m.text_cache, bytes, 0);
    }
    size_t moved = 0;
    XcError e;
    if (c->spill_text && param_store_spill(&x->ps, xclip_is_text_tensor, c->dir, &moved, &e) != XC_OK)
        runlog_say(x->log, "note: the frozen text tower stays in memory: %s\n", e.msg);
    else if (moved)
        runlog_say(x->log, "memory: frozen text tower (%.1f MB) moved to an unlinked file in %s (model.spill_text)\n",
                   moved / 1e6, c->dir);
    return XC_OK;
}

static void task_free(void *ctx) {
    XClipTask *x = ctx;
    if (!x) return;
    xc_free(x->fewshot);
    if (x->step_ok) train_step_free(&x->st);
    loader_free(x->ld);
    dataset_free(x->train);
    dataset_free(x->val);
    if (x->model_ok) {
        xclip_free(&x->m);
        param_store_free(&x->ps);
    }
    xc_free(x->tokens);
    labels_free(&x->labels);
    tokenizer_free(x->tok);
    xc_free(x);
}

static int task_build(Run *r, RunTask *t, XcError *err) {
    const TrainConfig *c = run_config(r);
    XClipTask *x = xc_calloc(1, sizeof *x);
    x->c = c;
    x->log = run_log(r);
    *t = (RunTask){.program = "xclip-train", .items = "videos", .ctx = x, .free = task_free};
    if (task_build_model(x, err) != XC_OK || task_open_lists(x, err) != XC_OK) return XC_ERR;
    LoaderConfig lc = loader_config_train(c, x->K);
    lc.shards = dist_size(); // rank r trains the epoch's batches r, r + N, ...
    lc.shard = dist_rank();
    x->ld = loader_create(x->train, &lc, err);
    if (!x->ld) return XC_ERR;
    const int64_t n_iter = loader_epoch_batches(x->ld); // of all ranks: the schedule counts them all
    LrSchedule sched = lr_schedule_from_epochs(c->lr, c->min_lr_ratio, c->warmup_epochs, c->epochs, n_iter);
    train_step_init(&x->st, &x->m, &x->ps, (AdamWConfig){(float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay},
                    c->new_lr_scale, sched, c->accumulation_steps, (uint64_t)c->seed, c->drop_path > 0);
    x->step_ok = true;
    if (!x->st.fused) train_step_distribute(&x->st, (size_t)(c->bucket_mb * 1e6));
    x->st.g.gemm = run_gemm(r);
    train_step_set_tokens(&x->st, x->tokens, x->K, x->S);
    t->ps = &x->ps;
    t->st = &x->st;
    t->n_items = x->train->n;
    t->n_iter = n_iter;
    t->batch_size = c->batch_size;
    t->fewshot = x->fewshot;
    t->train_batch = task_train_batch;
    t->end_epoch = task_end_epoch;
    t->evaluate = task_evaluate;
    t->cursor = task_cursor;
    t->seek = task_seek;
    t->bad_items = task_bad_items;
    t->restored = task_restored;
    return XC_OK;
}

int train_run(const TrainConfig *c, const TrainRunOptions *o, XcError *err) { return run_main(c, o, task_build, err); }
