// trainer.c - see trainer.h. train_run reads as its phases: open the run directory, build the model, build the
// data and the step, restore a snapshot, train epoch by epoch, finish. Letters: K classes, S text context.
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>
#include "checkpoints/snapshot.h"

// Where a run stands: what a snapshot records besides the model, the optimiser and the drop-path stream. The
// one progress record of a run: the loop advances it, snapshots save it, a resume restores it.
typedef struct Progress {
    int64_t global_iter;     // loader batches done over the whole run (the next batch's t)
    int epoch;               // current epoch
    int64_t iter_in_epoch;   // batches done in it
    double best;             // best validation top-1 (-1: none)
    int best_epoch;          // -1: none
    int64_t best_iter;       // global_iter of the snapshot that holds the best model (-1: none)
} Progress;

// Training figures since the last log line.
typedef struct Window {
    double loss_sum, time, wait;
    int64_t n;
} Window;

typedef struct Run {
    const TrainConfig *c;
    const TrainRunOptions *o;
    RunLog log;
    Gemm gemm;                  // matmul precision (train.matmul) of training and evaluation
    Tokenizer *tok;
    LabelSet labels;
    int K;
    int64_t S;
    int32_t *tokens;            // (K, S) class texts
    XClip m;
    ParamStore ps;
    bool model_ok, step_ok;
    Dataset *train, *val;
    Loader *ld;
    TrainStep st;
    int64_t n_iter, total, limit; // batches per epoch, of the schedule, of this run (train.max_iters)
    Progress p;
    int64_t *order;             // (train->n) the epoch's permutation of the training list, as the loader draws it
    char *fewshot, *config;     // texts the snapshots keep: the drawn few-shot list (or NULL), the effective config
    bool snap_due;              // a snapshot is wanted at the next accumulation boundary
    double t_start, t_train, t_wait;
    int64_t run_iters;          // batches trained by this process (not counting a resumed run's earlier ones)
    Window win;
    int64_t signal_at;          // XCLIP_TEST_SIGNAL_AT: raise signal_sig after this global iteration (0: never)
    int signal_sig;
} Run;

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

static int save_weights(ParamStore *ps, const char *path, XcError *err) {
    WeightSet ws = {0};
    params_to_weights(ps, &ws);
    int rc = weights_save_safetensors(&ws, path, err);
    weights_free(&ws);
    param_store_page_out(ps); // a spilled text tower was read back for the file: let it go again
    return rc;
}

static void read_test_signal_hook(Run *r) {
    const char *v = getenv("XCLIP_TEST_SIGNAL_AT");
    if (!v || !*v) return;
    char *end;
    long long at = strtoll(v, &end, 10);
    const char *name = *end == ':' ? end + 1 : "";
    int sig = !strcmp(name, "TERM") ? SIGTERM : !strcmp(name, "INT") ? SIGINT : !strcmp(name, "USR1") ? SIGUSR1 : 0;
    if (at <= 0 || !sig) {
        runlog_say(&r->log, "warning: XCLIP_TEST_SIGNAL_AT = '%s' ignored (want ITER:TERM|INT|USR1)\n", v);
        return;
    }
    r->signal_at = at;
    r->signal_sig = sig;
}

// ---- phases ---------------------------------------------------------------------------------------------
// Threads, the run directory (config.ini, log.txt, metrics.jsonl), signal handlers, the matmul precision.
static int run_open(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    if (c->threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(c->threads);
#endif
        openblas_set_num_threads(c->threads);
    }
    if (mkdir_p(c->dir, err) != XC_OK) return XC_ERR;
    char path[CONFIG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/config.ini", c->dir);
    FILE *f = xc_fopen(path, "w", err);
    if (!f) return XC_ERR;
    config_write(c, f);
    fclose(f);
    if (runlog_open(&r->log, c->dir, r->o->resume != NULL, config_progress_bar(c), err) != XC_OK) return XC_ERR;
    signals_install();
    read_test_signal_hook(r);
    return config_gemm_init(c, &r->gemm, err);
}

// Vocabulary, labels, the model (with --init weights over it) and the class-text tokens.
static int run_build_model(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    r->tok = tokenizer_load_clip(c->vocab, err);
    if (!r->tok)
        return xc_err(err, "data.vocab = %s: %s\nHINT: CLIP's vocabulary ships with openai/CLIP as "
                           "clip/bpe_simple_vocab_16e6.txt.gz; set data.vocab to its path", c->vocab, err->msg);
    if (labels_load(c->labels, &r->labels, err) != XC_OK) return XC_ERR;
    r->K = r->labels.count;
    if (c->num_classes && c->num_classes != r->K)
        return xc_err(err, "data.num_classes = %d but %s has %d classes", c->num_classes, c->labels, r->K);
    runlog_say(&r->log, "xclip-train: run directory %s (config.ini, log.txt, metrics.jsonl)\n", c->dir);
    const bool none = config_pretrained_none(c);
    if (none)
        runlog_say(&r->log, "\n*** model.pretrained = none: RANDOM INITIALISATION (no CLIP weights); expect a from-scratch run ***\n\n");
    bool is_xclip = false;
    if (model_build(&r->m, &r->ps, c, NULL, &is_xclip, err) != XC_OK) return XC_ERR;
    r->model_ok = true;
    if (r->o->init) {
        WeightSet ws = {0};
        int rc = weights_load(&ws, r->o->init, err);
        if (rc == XC_OK) rc = params_load(&r->ps, &ws, NULL, err);
        weights_free(&ws);
        if (rc != XC_OK) return xc_err(err, "--init %s: %s", r->o->init, err->msg);
        runlog_say(&r->log, "weights initialised from %s (--init)\n", r->o->init);
    }
    const XClipConfig *mc = &r->m.cfg;
    r->S = mc->clip.context;
    r->tokens = class_tokens(r->tok, &r->labels, c->template_, r->S);
    int64_t trainable = 0;
    for (int i = 0; i < r->ps.n; i++) trainable += r->ps.p[i]->requires_grad ? r->ps.p[i]->numel : 0;
    runlog_say(&r->log, "model: %s%s, width %lld, %lld layers, patch %lld, input %lld, T %lld, E %lld, MIT %lld, "
                        "prompts %lld; %.2fM parameters, %.2fM trained%s\n",
               none ? "random " : "", is_xclip ? "X-CLIP weights" : (none ? "init" : "CLIP weights"),
               (long long)mc->clip.vision_width, (long long)mc->clip.vision_layers, (long long)mc->clip.patch,
               (long long)mc->clip.image_size, (long long)mc->frames, (long long)mc->clip.embed_dim,
               (long long)mc->mit_layers, (long long)mc->prompt_layers, r->ps.total / 1e6, trainable / 1e6,
               mc->fix_text ? " (fix_text: text features cached)" : "");
    return XC_OK;
}

// The training list (or its few-shot draw, saved in the run directory), the validation list.
static int run_open_lists(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    if (c->shots > 0) {
        Dataset *full = dataset_open(c->train_list, c->root, r->K, err);
        if (!full) return XC_ERR;
        char fs[CONFIG_PATH_MAX + 64];
        snprintf(fs, sizeof fs, "%s/train_fewshot_k%d_seed%lld.txt", c->dir, c->shots, (long long)c->shot_seed);
        int rc = dataset_write_fewshot(full, c->shots, (uint64_t)c->shot_seed, fs, err);
        dataset_free(full);
        if (rc != XC_OK) return XC_ERR;
        r->train = dataset_open(fs, c->root, r->K, err);
        if (!r->train) return XC_ERR;
        runlog_say(&r->log, "few-shot: %d videos per class drawn with seed %lld -> %s\n", c->shots, (long long)c->shot_seed, fs);
    } else {
        r->train = dataset_open(c->train_list, c->root, r->K, err);
        if (!r->train) return XC_ERR;
    }
    r->val = dataset_open(c->val_list, *c->val_root ? c->val_root : c->root, r->K, err);
    if (!r->val) return XC_ERR;
    if (r->train->n_missing)
        runlog_say(&r->log, "warning: %lld training videos are missing:\n%s", (long long)r->train->n_missing, r->train->issues);
    if (r->val->n_missing)
        runlog_say(&r->log, "warning: %lld validation videos are missing:\n%s", (long long)r->val->n_missing, r->val->issues);
    return XC_OK;
}

// Lists, the training loader, the optimisation step, and the texts snapshots keep.
static int run_build_data(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    if (run_open_lists(r, err) != XC_OK) return XC_ERR;
    LoaderConfig lc = loader_config_train(c, r->K);
    r->ld = loader_create(r->train, &lc, err);
    if (!r->ld) return XC_ERR;
    r->n_iter = loader_batches_per_epoch(r->ld);
    r->total = (int64_t)c->epochs * r->n_iter;
    r->limit = c->max_iters > 0 && c->max_iters < r->total ? c->max_iters : r->total;
    LrSchedule sched = lr_schedule_from_epochs(c->lr, c->min_lr_ratio, c->warmup_epochs, c->epochs, r->n_iter);
    train_step_init(&r->st, &r->m, &r->ps, (AdamWConfig){(float)c->beta1, (float)c->beta2, (float)c->eps, (float)c->weight_decay},
                    c->new_lr_scale, sched, c->accumulation_steps, (uint64_t)c->seed, c->drop_path > 0);
    r->st.g.gemm = &r->gemm;
    train_step_set_tokens(&r->st, r->tokens, r->K, r->S);
    r->step_ok = true;
    r->order = xc_malloc(sizeof(int64_t) * (size_t)r->train->n);
    size_t len = 0;
    FILE *cf = open_memstream(&r->config, &len);
    if (cf) {
        config_write(c, cf);
        fclose(cf);
    }
    if (c->shots > 0 && !(r->fewshot = xc_read_file(r->train->list_path, 1u << 30, &len, err))) return XC_ERR;
    return XC_OK;
}

// ---- snapshots --------------------------------------------------------------------------------------------
static void epoch_order(const TrainConfig *c, int epoch, int64_t *order, int64_t n) {
    Rng rng = rng_substream((uint64_t)c->seed, RNG_STREAM_ORDER, (uint64_t)epoch, 0);
    rng_permutation(&rng, order, n);
}

// The one place a snapshot is written (periodic, epoch end, on request). Only at accumulation boundaries,
// where no partial gradient is pending, so a resumed run continues exactly.
static int run_snapshot(Run *r, XcError *err) {
    const Progress *p = &r->p;
    SnapshotRng rngs[1] = {{"drop", rng_get_state(&r->st.drop)}};
    epoch_order(r->c, p->epoch, r->order, r->train->n);
    int64_t nbad = 0;
    const BadVideo *bad = loader_bad_videos(r->ld, &nbad);
    char *bad_text = NULL;
    size_t bad_len = 0;
    FILE *bf = open_memstream(&bad_text, &bad_len);
    for (int64_t i = 0; bf && i < nbad; i++) fprintf(bf, "%lld\t%s\n", (long long)bad[i].item, bad[i].reason);
    if (bf) fclose(bf);
    SnapshotState ss = {.params = &r->ps, .opt = &r->st.opt, .global_iter = p->global_iter, .epoch = p->epoch,
                        .iter_in_epoch = p->iter_in_epoch, .best_acc = p->best, .best_epoch = p->best_epoch,
                        .best_iter = p->best_iter, .rngs = rngs, .n_rngs = 1, .order = r->order, .order_len = r->train->n,
                        .cursor = loader_cursor(r->ld), .fewshot_list = r->fewshot, .bad_videos = bad_text,
                        .config = r->config};
    char path[CONFIG_PATH_MAX + 64];
    double t0 = xc_now();
    int rc = snapshot_save(r->c->dir, &ss, path, sizeof path, err);
    param_store_page_out(&r->ps); // a spilled text tower was read back for the file: let it go again
    free(bad_text);
    if (rc != XC_OK) return XC_ERR;
    if (snapshot_retain(r->c->dir, r->c->keep_snapshots, p->best_iter, NULL, err) < 0) return XC_ERR;
    runlog_say(&r->log, "snapshot %s (epoch %d, iteration %lld, %.1f s)\n", path, p->epoch + 1, (long long)p->iter_in_epoch,
               xc_now() - t0);
    r->snap_due = false;
    signals_clear(SIGNAL_SNAPSHOT);
    return XC_OK;
}

// The one stop handler: after a snapshot, a pending SIGINT / SIGTERM ends the run.
static int run_stop_if_asked(Run *r) {
    if (!(signals_poll() & SIGNAL_STOP)) return XC_OK;
    runlog_say(&r->log, "stopped by signal %d after the snapshot; continue with: xclip-train %s --resume auto\n",
               signals_stop_signal(), *r->c->source ? r->c->source : "CONFIG");
    return TRAIN_EXIT_STOPPED;
}

// The one place a run is restored (--resume PATH|auto). 1 resumed, 0 nothing to resume, XC_ERR.
static int run_resume(Run *r, const char *resume, XcError *err) {
    SnapshotRng rngs[1] = {{"drop", {0}}};
    SnapshotState ss = {.params = &r->ps, .opt = &r->st.opt, .rngs = rngs, .n_rngs = 1, .order = r->order,
                        .order_len = r->train->n};
    char path[CONFIG_PATH_MAX + 64];
    if (!strcmp(resume, "auto")) {
        if (snapshot_remove_stale_temps(r->c->dir, stdout, err) < 0) return XC_ERR;
        int rc = snapshot_resume_latest(r->c->dir, &ss, path, sizeof path, stdout, err);
        if (rc < 0) return XC_ERR;
        if (rc == 0) {
            runlog_say(&r->log, "--resume auto: no snapshot in %s, starting from the beginning\n", r->c->dir);
            return 0;
        }
    } else {
        snprintf(path, sizeof path, "%s", resume);
        if (snapshot_load(resume, &ss, err) != XC_OK) return xc_err(err, "--resume %s: %s", resume, err->msg);
    }
    if (ss.config && r->config && strcmp(ss.config, r->config)) {
        char diff[2048];
        int nd = config_diff(r->config, ss.config, diff, sizeof diff);
        if (nd > 0)
            runlog_say(&r->log, "warning: %d setting%s differ%s from the snapshot's (%s); the run goes on with the current "
                                "values: %s\n", nd, nd == 1 ? "" : "s", nd == 1 ? "s" : "", path, diff);
    }
    snapshot_state_free_text(&ss);
    rng_set_state(&r->st.drop, rngs[0].state);
    r->p = (Progress){.global_iter = ss.global_iter, .epoch = (int)ss.epoch, .iter_in_epoch = ss.iter_in_epoch,
                      .best = ss.best_acc, .best_epoch = (int)ss.best_epoch, .best_iter = ss.best_iter};
    train_step_resume_at(&r->st, r->p.epoch, r->p.iter_in_epoch, r->n_iter);
    loader_seek(r->ld, ss.cursor);
    runlog_say(&r->log, "resumed from %s: epoch %d, iteration %lld of %lld, %lld optimiser steps, best top-1 %.2f%%\n", path,
               r->p.epoch + 1, (long long)r->p.iter_in_epoch, (long long)r->n_iter, (long long)r->st.opt_steps, r->p.best);
    return 1;
}

// A resume if asked, then the class text features of the text tower the run actually has, and the plan.
static int run_restore(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    r->p = (Progress){.best = -1, .best_epoch = -1, .best_iter = -1};
    if (r->o->resume && run_resume(r, r->o->resume, err) < 0) return XC_ERR;
    if (r->m.cfg.fix_text) {
        xclip_cache_text(&r->m, r->tokens, r->K, r->S);
        size_t moved = 0;
        XcError e;
        if (c->spill_text && param_store_spill(&r->ps, xclip_is_text_tensor, c->dir, &moved, &e) != XC_OK)
            runlog_say(&r->log, "note: the frozen text tower stays in memory: %s\n", e.msg); // costs memory only
        else if (moved)
            runlog_say(&r->log, "memory: frozen text tower (%.1f MB) moved to an unlinked file in %s (model.spill_text)\n",
                       moved / 1e6, c->dir);
    }
    char matmul[96];
    if (r->gemm.precision == XC_MATMUL_BF16)
        snprintf(matmul, sizeof matmul, "bf16 (%s, float32 sums; train.matmul)", gemm_bf16_kernel_name(&r->gemm));
    else
        snprintf(matmul, sizeof matmul, "float32");
    runlog_say(&r->log, "optimiser: AdamW%s; matmuls in %s\n",
               r->st.fused ? ", applied inside backward (fused: no gradient buffers between steps)" : "", matmul);
    runlog_say(&r->log, "data: %lld training videos (%lld batches of %d per epoch, accumulation %d: %d videos per step), "
                        "%lld validation videos, K = %d\n",
               (long long)r->train->n, (long long)r->n_iter, c->batch_size, c->accumulation_steps,
               c->batch_size * c->accumulation_steps, (long long)r->val->n, r->K);
    runlog_say(&r->log, "schedule: %d epochs = %lld iterations, warm-up %lld, lr %.3g (new tensors x%g), floor %.3g\n",
               c->epochs, (long long)r->total, (long long)r->st.sched.warmup, c->lr, c->new_lr_scale, r->st.sched.min);
    return XC_OK;
}

// ---- training ------------------------------------------------------------------------------------------
// One evaluation pass over the validation list with a fresh test-mode loader.
static int run_eval(Run *r, int clips, int crops, EvalResult *res, XcError *err) {
    const TrainConfig *c = r->c;
    LoaderConfig lc = loader_config_test(c, clips, crops, c->test_batch_size);
    Loader *ld = loader_create(r->val, &lc, err);
    if (!ld) return XC_ERR;
    int rc = evaluate(&r->m, &r->st.g, ld, r->val->n, r->tokens, r->K, r->S, c->test_batch_size, r->log.bar, res, NULL, err);
    loader_free(ld);
    return rc;
}

// The log line (and metrics record) after batch idx of an epoch, every output.print_freq batches; the
// progress bar in between.
static void run_report_iteration(Run *r, int epoch, int64_t idx, int64_t t, float loss) {
    const TrainConfig *c = r->c;
    const bool last = r->p.global_iter == r->limit || idx + 1 == r->n_iter;
    if ((idx + 1) % c->print_freq != 0 && !last) {
        char extra[160];
        snprintf(extra, sizeof extra, "epoch %d/%d loss %.4f", epoch + 1, c->epochs, loss);
        runlog_bar(&r->log, "train", idx + 1, r->n_iter, extra);
        return;
    }
    Window *w = &r->win;
    char eta[32];
    fmt_duration(r->t_train / (double)r->run_iters * (double)(r->limit - r->p.global_iter), eta, sizeof eta);
    const double avg = w->loss_sum / (double)w->n, vps = (double)w->n * c->batch_size / w->time;
    runlog_say(&r->log, "train epoch %d/%d iter %lld/%lld  lr %.3e  loss %.4f (avg %.4f)  %.1f videos/s  data wait %.0f%%  "
                        "eta %s  mem %.0f MiB (arena %.0f MiB)\n",
               epoch + 1, c->epochs, (long long)idx + 1, (long long)r->n_iter, r->st.last_lr, loss, avg, vps,
               100.0 * w->wait / w->time, eta, xc_peak_rss() / 1048576.0, r->st.g.step.peak / 1048576.0);
    runlog_metrics(&r->log, "train",
                   (Metric[]){METRIC_INT("epoch", epoch), METRIC_INT("iter", idx), METRIC_INT("global_iter", t),
                              METRIC_NUM("lr", r->st.last_lr), METRIC_NUM("next_lr", train_step_next_lr(&r->st)),
                              METRIC_NUM("loss", loss), METRIC_NUM("loss_avg", avg), METRIC_NUM("videos_per_s", vps),
                              METRIC_NUM("data_wait", w->wait / w->time), METRIC_INT("opt_steps", r->st.opt_steps),
                              METRIC_NUM("peak_rss_mib", xc_peak_rss() / 1048576.0)},
                   11);
    *w = (Window){0};
}

// One loader batch through the step. Sets *stop when the run's iteration limit is reached.
static int run_iteration(Run *r, int epoch, int64_t idx, double *ep_loss, bool *stop, XcError *err) {
    double t0 = xc_now();
    const Batch *b;
    int got = loader_next(r->ld, &b, err);
    double t1 = xc_now();
    if (got < 0) return XC_ERR;
    XC_CHECK(got == 1, "loader ended the epoch after %lld of %lld batches", (long long)idx, (long long)r->n_iter);
    const int64_t t = (int64_t)epoch * r->n_iter + idx;
    float loss = train_step_run(&r->st, b->video, b->B, b->targets, idx, t, NULL);
    double t2 = xc_now();
    r->t_train += t2 - t0;
    r->t_wait += t1 - t0;
    r->win.time += t2 - t0;
    r->win.wait += t1 - t0;
    r->win.loss_sum += loss;
    r->win.n++;
    *ep_loss += loss;
    r->p.global_iter++;
    r->p.epoch = epoch;
    r->p.iter_in_epoch = idx + 1;
    r->run_iters++;
    if (!isfinite(loss))
        return xc_err(err, "loss is %g at epoch %d iteration %lld\nHINT: lower train.lr", loss, epoch, (long long)idx);
    run_report_iteration(r, epoch, idx, t, loss);
    if (r->signal_at == r->p.global_iter) raise(r->signal_sig);
    *stop = r->p.global_iter >= r->limit;
    return XC_OK;
}

// The batches of one epoch from where the run stands, with the snapshots due within it: periodic
// (output.snapshot_freq) or asked for by a signal, taken at the next accumulation boundary.
static int run_epoch(Run *r, int epoch, double *ep_loss, int64_t *ep_n, bool *stop, XcError *err) {
    const TrainConfig *c = r->c;
    const int64_t first = epoch == r->p.epoch ? r->p.iter_in_epoch : 0;
    if (first == 0) train_step_epoch_begin(&r->st);
    for (int64_t idx = first; idx < r->n_iter; idx++) {
        if (run_iteration(r, epoch, idx, ep_loss, stop, err) != XC_OK) return XC_ERR;
        (*ep_n)++;
        if (*stop) return XC_OK;
        if (c->snapshot_freq > 0 && r->p.global_iter % c->snapshot_freq == 0) r->snap_due = true;
        if (signals_poll() & (SIGNAL_SNAPSHOT | SIGNAL_STOP)) r->snap_due = true;
        if (r->snap_due && ((idx + 1) % c->accumulation_steps == 0 || idx + 1 == r->n_iter)) {
            if (run_snapshot(r, err) != XC_OK) return XC_ERR;
            int rc = run_stop_if_asked(r);
            if (rc != XC_OK) return rc;
        }
    }
    const Batch *b; // the loader reports the end of the epoch once (and starts the next one)
    int got = loader_next(r->ld, &b, err);
    if (got < 0) return XC_ERR;
    XC_CHECK(got == 0, "loader delivered more than %lld batches in an epoch", (long long)r->n_iter);
    return XC_OK;
}

// Single-view evaluation after an epoch (every train.eval_freq epochs and after the last); best weights.
static int run_epoch_eval(Run *r, int epoch, double train_loss, XcError *err) {
    const TrainConfig *c = r->c;
    EvalResult er;
    double te = xc_now();
    if (run_eval(r, c->num_clip, c->num_crop, &er, err) != XC_OK) return XC_ERR;
    Progress *p = &r->p;
    const bool better = er.top1 > p->best;
    if (better) {
        p->best = er.top1;
        p->best_epoch = epoch;
        p->best_iter = p->global_iter; // the epoch-end snapshot holds this model
    }
    runlog_say(&r->log, "eval epoch %d/%d: top-1 %.2f%%  top-5 %.2f%%  mean class %.2f%%  (%lld videos, %d view%s, %.1f s)  "
                        "train loss %.4f  best %.2f%% (epoch %d)\n",
               epoch + 1, c->epochs, er.top1, er.top5, er.mean_class, (long long)er.n, er.views, er.views == 1 ? "" : "s",
               xc_now() - te, train_loss, p->best, p->best_epoch + 1);
    runlog_metrics(&r->log, "eval",
                   (Metric[]){METRIC_INT("epoch", epoch), METRIC_INT("global_iter", p->global_iter), METRIC_NUM("top1", er.top1),
                              METRIC_NUM("top5", er.top5), METRIC_NUM("mean_class", er.mean_class), METRIC_INT("videos", er.n),
                              METRIC_INT("views", er.views), METRIC_NUM("train_loss", train_loss), METRIC_NUM("best_top1", p->best)},
                   9);
    if (!better || !c->save_best) return XC_OK;
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/best.safetensors", c->dir);
    return save_weights(&r->ps, path, err);
}

// Epoch after epoch from where the run stands: train, evaluate, snapshot at the epoch's end.
static int run_train(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    r->t_start = xc_now();
    bool stop = r->p.global_iter >= r->limit;
    for (int epoch = r->p.epoch; epoch < c->epochs && !stop; epoch++) {
        double ep_loss = 0;
        int64_t ep_n = 0;
        int rc = run_epoch(r, epoch, &ep_loss, &ep_n, &stop, err);
        if (rc != XC_OK) return rc;
        if ((c->eval_freq > 0 && (epoch + 1) % c->eval_freq == 0) || epoch + 1 == c->epochs || stop)
            if (run_epoch_eval(r, epoch, ep_n ? ep_loss / (double)ep_n : 0.0, err) != XC_OK) return XC_ERR;
        if (!stop) { // the cursor already points at the next epoch
            r->p.epoch = epoch + 1;
            r->p.iter_in_epoch = 0;
        }
        if (run_snapshot(r, err) != XC_OK) return XC_ERR;
        if ((rc = run_stop_if_asked(r)) != XC_OK) return rc;
    }
    return XC_OK;
}

// The last weights, the final multi-view evaluation, the summary line.
static int run_finish(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/last.safetensors", c->dir);
    if (save_weights(&r->ps, path, err) != XC_OK) return XC_ERR;
    if (c->final_num_clip > 0) {
        EvalResult er;
        double te = xc_now();
        if (run_eval(r, c->final_num_clip, c->final_num_crop, &er, err) != XC_OK) return XC_ERR;
        runlog_say(&r->log, "final eval (%d clips x %d crops): top-1 %.2f%%  top-5 %.2f%%  mean class %.2f%%  (%lld videos, %.1f s)\n",
                   c->final_num_clip, c->final_num_crop, er.top1, er.top5, er.mean_class, (long long)er.n, xc_now() - te);
        runlog_metrics(&r->log, "final_eval",
                       (Metric[]){METRIC_INT("clips", c->final_num_clip), METRIC_INT("crops", c->final_num_crop),
                                  METRIC_NUM("top1", er.top1), METRIC_NUM("top5", er.top5),
                                  METRIC_NUM("mean_class", er.mean_class), METRIC_INT("videos", er.n)},
                       6);
    }
    char dur[32];
    fmt_duration(xc_now() - r->t_start, dur, sizeof dur);
    runlog_say(&r->log, "done: %lld iterations, %lld optimiser steps in %s (data wait %.0f%%); best top-1 %.2f%% at epoch %d%s%s%s\n",
               (long long)r->p.global_iter, (long long)r->st.opt_steps, dur, r->t_train > 0 ? 100.0 * r->t_wait / r->t_train : 0.0,
               r->p.best, r->p.best_epoch + 1, c->save_best ? " -> " : "", c->save_best ? c->dir : "",
               c->save_best ? "/best.safetensors" : "");
    return XC_OK;
}

static void run_close(Run *r, int rc, XcError *err) {
    signals_uninstall();
    xc_free(r->order);
    free(r->config);
    xc_free(r->fewshot);
    if (r->step_ok) train_step_free(&r->st);
    loader_free(r->ld);
    dataset_free(r->train);
    dataset_free(r->val);
    if (r->model_ok) {
        xclip_free(&r->m);
        param_store_free(&r->ps);
    }
    xc_free(r->tokens);
    labels_free(&r->labels);
    tokenizer_free(r->tok);
    gemm_free(&r->gemm);
    if (rc == XC_ERR && r->log.log) fprintf(r->log.log, "error: %s\n", err->msg);
    runlog_close(&r->log);
}

int train_run(const TrainConfig *c, const TrainRunOptions *o, XcError *err) {
    Run r = {.c = c, .o = o};
    int rc = run_open(&r, err);
    if (rc == XC_OK) rc = run_build_model(&r, err);
    if (rc == XC_OK) rc = run_build_data(&r, err);
    if (rc == XC_OK) rc = run_restore(&r, err);
    if (rc == XC_OK) rc = run_train(&r, err);
    if (rc == XC_OK) rc = run_finish(&r, err);
    run_close(&r, rc, err);
    return rc;
}
