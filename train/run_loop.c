// run_loop.c - see run.h. run_main reads as its phases: open the run directory (run_dir.c), build the task,
// restore a snapshot (run_resume.c), train epoch by epoch, finish. The Run record they share is in run_internal.h.
#include "train/run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "checkpoints/snapshot.h"
#include "train/curves.h"
#include "train/dist.h"
#include "train/run_internal.h"

RunLog *run_log(Run *r) { return &r->log; }
Gemm *run_gemm(Run *r) { return &r->gemm; }
const TrainConfig *run_config(Run *r) { return r->c; }

// The first parameter holding a NaN or an infinity, or NULL (one pass over the floats, before anything is kept).
static const Tensor *first_nonfinite(const ParamStore *ps) {
    for (int i = 0; i < ps->n; i++)
        if (!xc_all_finite(ps->p[i]->data, ps->p[i]->numel)) return ps->p[i];
    return NULL;
}

// The run cannot go on from diverged numbers: an error naming where they are and the last good snapshot.
static int run_diverged(Run *r, const char *what, XcError *err) {
    char last[CONFIG_PATH_MAX + 160] = "no snapshot was written yet";
    if (*r->last_snap) snprintf(last, sizeof last, "the last good snapshot is %s", r->last_snap);
    return xc_err(err, "%s at epoch %d iteration %lld: stopped, nothing written; %s\nHINT: lower train.lr (and resume "
                       "from that snapshot with --resume PATH, or start over)", what, r->p.epoch + 1,
                  (long long)r->p.iter_in_epoch, last);
}

static int save_weights(ParamStore *ps, const char *path, XcError *err) {
    WeightSet ws = {0};
    params_to_weights(ps, &ws);
    const WeightTensor *bad = weights_first_nonfinite(&ws);
    int rc = bad ? xc_err(err, "%s: not written: tensor '%s' holds NaN or infinite values", path, bad->name)
                 : weights_save_safetensors(&ws, path, err);
    weights_free(&ws);
    param_store_page_out(ps); // a spilled tensor was read back for the file: let it go again
    return rc;
}

// RUN/curves.svg from the metrics so far (a failure is only a warning: the run goes on).
static void run_write_curves(Run *r) {
    if (!r->root) return;
    XcError e = {{0}};
    if (curves_write_svg(r->c->dir, &e) != XC_OK) runlog_say(&r->log, "warning: curves.svg not written: %s\n", e.msg);
}

// Testing hook XCLIP_TEST_NAN_AT = ITER:loss | ITER:weights | ITER:diverge: after batch ITER of the run the loss
// reads NaN, or (weights) the first trained parameter gets a NaN while the loss stays finite - a divergence made
// to order; or (diverge, data-parallel runs) the last rank alone nudges that parameter by 1e-3, as a rank gone
// astray would.
typedef enum { TEST_NAN_LOSS = 1, TEST_NAN_WEIGHTS, TEST_DIVERGE } TestNan;

void run_read_test_nan(Run *r) {
    const char *v = getenv("XCLIP_TEST_NAN_AT");
    if (!v || !*v) return;
    char *end;
    long long at = strtoll(v, &end, 10);
    const TestNan what = !strcmp(end, ":loss") ? TEST_NAN_LOSS : !strcmp(end, ":weights") ? TEST_NAN_WEIGHTS
                                                              : !strcmp(end, ":diverge") ? TEST_DIVERGE : 0;
    if (at <= 0 || !what) {
        fprintf(stderr, "warning: XCLIP_TEST_NAN_AT = '%s' ignored (want ITER:loss, ITER:weights or ITER:diverge)\n", v);
        return;
    }
    r->nan_at = at;
    r->nan_what = what;
}

static void run_test_nan(Run *r, float *loss) {
    if (r->nan_what == TEST_NAN_LOSS) {
        *loss = NAN;
        return;
    }
    if (r->nan_what == TEST_DIVERGE && dist_rank() != r->ranks - 1) return;
    for (int i = 0; i < r->task.ps->n; i++)
        if (r->task.ps->p[i]->requires_grad && r->task.ps->p[i]->numel > 0) {
            float *x = r->task.ps->p[i]->data;
            x[0] = r->nan_what == TEST_DIVERGE ? x[0] + 1e-3f : NAN;
            return;
        }
}

// The stop / snapshot requests (signals.h) of any rank: every rank acts on them at the same point. Called by every
// rank at the same places (a collective with several ranks).
static unsigned run_requests(const Run *r) { return r->ranks > 1 ? dist_or(signals_poll()) : signals_poll(); }

// "signal 15", or the rank that was asked when it was another.
static const char *stop_cause(char *buf, size_t n) {
    if (signals_stop_signal()) snprintf(buf, n, "signal %d", signals_stop_signal());
    else snprintf(buf, n, "a signal to another rank");
    return buf;
}

// With several ranks: every rank must hold the same trained parameters (checked, not assumed). Records when it
// last checked, for the periodic check (train.check_ranks).
static int run_check_ranks(Run *r, const char *when, XcError *err) {
    if (r->ranks <= 1) return XC_OK;
    char what[160];
    snprintf(what, sizeof what, "the trained parameters %s", when);
    r->checked_at = r->task.st->opt_steps;
    if (dist_same_u64(dist_param_checksum(r->task.ps), what, err) == XC_OK) return XC_OK;
    return xc_err(err, "%s\nHINT: every rank must run the same binary, config, weights and data (a shared folder); "
                       "resume from the last snapshot", err->msg);
}

// ---- set-up (the run directory: run_dir.c) ------------------------------------------------------------
// The task (model, data, step), --init weights over its model, the schedule's extent.
static int run_build(Run *r, RunTaskBuild build, XcError *err) {
    const TrainConfig *c = r->c;
    RunTask *t = &r->task;
    if (build(r, t, err) != XC_OK) {
        if (t->free) t->free(t->ctx);
        memset(t, 0, sizeof *t);
        return XC_ERR;
    }
    r->task_ok = true;
    if (r->o->init) {
        WeightSet ws = {0};
        int rc = weights_load(&ws, r->o->init, err);
        if (rc == XC_OK) rc = params_load(t->ps, &ws, NULL, err);
        weights_free(&ws);
        if (rc != XC_OK) return xc_err(err, "--init %s: %s", r->o->init, err->msg);
        runlog_say(&r->log, "weights initialised from %s (--init)\n", r->o->init);
    }
    r->total = (int64_t)c->epochs * t->n_iter;
    r->limit = c->max_iters > 0 && c->max_iters < r->total ? c->max_iters : r->total;
    r->order = xc_malloc(sizeof(int64_t) * (size_t)(t->n_items ? t->n_items : 1));
    return XC_OK;
}

// ---- snapshots --------------------------------------------------------------------------------------------
// The one place a snapshot is written (periodic, epoch end, on request). Only at accumulation boundaries,
// where no partial gradient is pending, so a resumed run continues exactly. at: the data position to record
// (NULL: where the data stands). Routine epoch-end snapshots (routine) are named in log.txt only.
static int run_snapshot(Run *r, const LoaderCursor *at, bool routine, XcError *err) {
    const Progress *p = &r->p;
    const RunTask *t = &r->task;
    const Tensor *bad = first_nonfinite(t->ps); // a diverged model is never kept (snapshot_write refuses it too)
    if (bad) {
        char what[640];
        snprintf(what, sizeof what, "parameter '%.500s' holds NaN or infinite values", bad->name);
        return run_diverged(r, what, err);
    }
    if (run_check_ranks(r, "before the snapshot", err) != XC_OK) return XC_ERR;
    r->t_snap = xc_now();
    if (!r->root) { // rank 0 writes it
        r->snap_due = false;
        signals_clear(SIGNAL_SNAPSHOT);
        return XC_OK;
    }
    SnapshotRng rngs[1] = {{"drop", rng_get_state(&t->st->drop)}};
    loader_epoch_order((uint64_t)r->c->seed, p->epoch, r->order, t->n_items);
    char *bad_text = t->bad_items ? t->bad_items(t->ctx) : NULL;
    SnapshotState ss = {.params = t->ps, .opt = adamw_state(&t->st->opt), .global_iter = p->global_iter, .epoch = p->epoch,
                        .iter_in_epoch = p->iter_in_epoch, .best_acc = p->best, .best_epoch = p->best_epoch,
                        .best_iter = p->best_iter, .rngs = rngs, .n_rngs = 1, .order = r->order, .order_len = t->n_items,
                        .cursor = at ? *at : t->cursor(t->ctx), .fewshot_list = t->fewshot, .bad_videos = bad_text,
                        .config = r->config};
    char path[CONFIG_PATH_MAX + 64];
    double t0 = xc_now();
    int rc = snapshot_save(r->c->dir, &ss, path, sizeof path, err);
    param_store_page_out(t->ps); // a spilled tensor was read back for the file: let it go again
    free(bad_text);
    if (rc != XC_OK) return XC_ERR;
    snprintf(r->last_snap, sizeof r->last_snap, "%s", path);
    if (snapshot_retain(r->c->dir, r->c->keep_snapshots, p->best_iter, NULL, err) < 0) return XC_ERR;
    (routine ? runlog_note : runlog_say)(&r->log, "snapshot %s (epoch %d, iteration %lld, %.1f s)\n", path, p->epoch + 1,
                                         (long long)p->iter_in_epoch, xc_now() - t0);
    r->snap_due = false;
    signals_clear(SIGNAL_SNAPSHOT);
    return XC_OK;
}

// A pending SIGINT / SIGTERM ends the run, saying when and the command that continues it: the run's own effective
// config, which resumes this run whatever config file started it.
static int run_stop(Run *r, const char *when) {
    if (!(run_requests(r) & SIGNAL_STOP)) return XC_OK;
    char cwd[CONFIG_PATH_MAX] = "";
    if (r->c->dir[0] != '/' && !getcwd(cwd, sizeof cwd)) cwd[0] = 0;
    char cause[48];
    runlog_say(&r->log, "stopped by %s %s; continue with: %s%s %s/config.ini --resume auto%s%s%s\n",
               stop_cause(cause, sizeof cause), when, r->ranks > 1 ? "mpirun ... " : "", r->task.program, r->c->dir,
               *cwd ? " (from " : "", cwd, *cwd ? ")" : "");
    return RUN_EXIT_STOPPED;
}

// The one stop handler of training: after a snapshot.
static int run_stop_if_asked(Run *r) { return run_stop(r, "after the snapshot"); }

// A stop during the set-up (model, weights, data, text features, resume) comes before the first batch: nothing
// trained since the start or the resumed snapshot, so there is nothing to save.
static int run_stop_before_training(Run *r) {
    return run_stop(r, "during the set-up, before training (nothing new to save)");
}

// The batches of an epoch that whole rounds take (a round: one batch per rank; the rest are skipped).
static int64_t run_epoch_batches(const Run *r) { return r->task.n_iter / r->ranks * r->ranks; }

// A resume if asked, the task's own restoration, and the plan.
static int run_restore(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    const RunTask *t = &r->task;
    r->p = (Progress){.best = -1, .best_epoch = -1, .best_iter = -1};
    const int64_t per_step = (int64_t)c->accumulation_steps * r->ranks, rounds = run_epoch_batches(r);
    if (per_step > rounds) // an optimiser step comes every per_step batches of an epoch: there would be none
        return xc_err(err, "train.accumulation_steps = %d%s asks for %lld batches per optimiser step, but an epoch has %lld "
                           "(%lld %s, batches of %d): the model would never be updated\nHINT: lower train.accumulation_steps "
                           "or train.batch_size", c->accumulation_steps, r->ranks > 1 ? " (x ranks)" : "",
                      (long long)per_step, (long long)rounds, (long long)t->n_items, t->items, t->batch_size);
    if (r->o->resume && run_resume(r, r->o->resume, err) < 0) return XC_ERR;
    if (t->restored && t->restored(t->ctx, err) != XC_OK) return XC_ERR;
    char matmul[96] = "float32";
    if (r->gemm.precision == XC_MATMUL_BF16)
        snprintf(matmul, sizeof matmul, "bf16 (%s, float32 sums; train.matmul)", gemm_bf16_kernel_name(&r->gemm));
    runlog_say(&r->log, "optimiser: AdamW%s; matmuls in %s\n",
               t->st->fused ? ", applied inside backward (fused: no gradient buffers between steps)" : "", matmul);
    if (r->gemm.precision == XC_MATMUL_BF16 && r->gemm.kernel == XC_BF16_AVX512_FMA)
        runlog_say(&r->log, "note: this CPU's VDPBF16PS does %.2fx the multiply-adds of its FMAs, so bf16 runs on FMAs "
                            "(avx512-fma) at about float32's speed: train.matmul = fp32 is as fast here\n",
                   xc_vdpbf16ps_speed());
    char ranks[64] = "";
    if (r->ranks > 1) snprintf(ranks, sizeof ranks, "%d ranks x ", r->ranks);
    runlog_say(&r->log, "data: %lld training %s, %lld batches of %d per epoch, %saccumulation %d: %d %s per step\n",
               (long long)t->n_items, t->items, (long long)t->n_iter, t->batch_size, ranks, c->accumulation_steps,
               t->batch_size * c->accumulation_steps * r->ranks, t->items);
    if (r->ranks > 1 && t->n_iter % r->ranks)
        runlog_say(&r->log, "data: each round takes one batch per rank: the last %lld batch%s of every epoch %s skipped\n",
                   (long long)(t->n_iter % r->ranks), t->n_iter % r->ranks == 1 ? "" : "es", t->n_iter % r->ranks == 1 ? "is" : "are");
    runlog_say(&r->log, "schedule: %d epochs = %lld iterations, warm-up %lld, lr %.3g (group scales", c->epochs,
               (long long)r->total, (long long)t->st->sched.warmup, c->lr);
    for (int g = 0; g < t->st->groups.n; g++) runlog_say(&r->log, " x%g", t->st->groups.scale[g]);
    runlog_say(&r->log, "), floor %.3g\n", t->st->sched.min);
    if (t->st->sched.warmup >= r->total && r->total > 0)
        runlog_say(&r->log, "warning: the warm-up (%lld iterations, train.warmup_epochs = %g) covers the whole run (%lld "
                            "iterations): the learning rate never reaches train.lr and never decays; lower "
                            "train.warmup_epochs or raise train.epochs\n",
                   (long long)t->st->sched.warmup, (double)c->warmup_epochs, (long long)r->total);
    else if (2 * t->st->sched.warmup > r->total)
        runlog_say(&r->log, "warning: the warm-up (%lld iterations) covers more than half of the run (%lld iterations)\n",
                   (long long)t->st->sched.warmup, (long long)r->total);
    return XC_OK;
}

// ---- training ------------------------------------------------------------------------------------------
// The log line (and metrics record) after batch idx of an epoch, every output.print_freq batches; the
// progress bar in between.
static void run_report_iteration(Run *r, int epoch, int64_t idx, float loss) {
    const TrainConfig *c = r->c;
    const RunTask *task = &r->task;
    const bool last = r->p.global_iter >= r->limit || idx + 1 + r->ranks > task->n_iter;
    if ((idx + 1) / c->print_freq == (idx + 1 - r->ranks) / c->print_freq && !last) { // no multiple of print_freq crossed
        char extra[160];
        snprintf(extra, sizeof extra, "epoch %d/%d loss %.4f", epoch + 1, c->epochs, loss);
        runlog_bar(&r->log, "train", idx + 1, task->n_iter, extra);
        return;
    }
    Window *w = &r->win;
    char eta[32];
    fmt_duration(r->t_train / (double)r->run_iters * (double)(r->limit - r->p.global_iter), eta, sizeof eta);
    const double avg = w->loss_sum / (double)w->n, ips = (double)w->n * task->batch_size * r->ranks / w->time;
    runlog_say(&r->log, "train epoch %d/%d iter %lld/%lld  lr %.3e  loss %.4f (avg %.4f)  %.1f %s/s  data wait %.0f%%  "
                        "eta %s  mem %.0f MiB (arena %.0f MiB)\n",
               epoch + 1, c->epochs, (long long)idx + 1, (long long)task->n_iter, task->st->last_lr, loss, avg, ips,
               task->items, 100.0 * w->wait / w->time, eta, xc_peak_rss() / 1048576.0, task->st->g.step.peak / 1048576.0);
    runlog_metrics(&r->log, "train",
                   (Metric[]){METRIC_INT("epoch", epoch + 1), METRIC_INT("iter", idx + 1), METRIC_INT("global_iter", r->p.global_iter),
                              METRIC_NUM("lr", task->st->last_lr), METRIC_NUM("next_lr", train_step_next_lr(task->st)),
                              METRIC_NUM("loss", loss), METRIC_NUM("loss_avg", avg), METRIC_NUM("items_per_s", ips),
                              METRIC_NUM("data_wait", w->wait / w->time), METRIC_INT("opt_steps", task->st->opt_steps),
                              METRIC_NUM("peak_rss_mib", xc_peak_rss() / 1048576.0)},
                   11);
    *w = (Window){0};
}

// One round through the task: with N ranks, the epoch's batches idx - N + 1 .. idx, one per rank (one process:
// batch idx). The loss shown is the ranks' mean. Sets *stop when the run's iteration limit is reached.
static int run_iteration(Run *r, int epoch, int64_t idx, double *ep_loss, bool *stop, XcError *err) {
    const RunTask *task = &r->task;
    const int64_t t = (int64_t)epoch * task->n_iter + idx;
    double t0 = xc_now(), wait = 0;
    float loss;
    if (task->train_batch(task->ctx, idx, t, &loss, &wait, err) != XC_OK) return XC_ERR;
    if (r->ranks > 1) {
        double sum = loss;
        dist_sum_f64(&sum, 1); // a NaN on any rank reaches every rank
        loss = (float)(sum / r->ranks);
    }
    double t2 = xc_now();
    r->t_train += t2 - t0;
    r->t_wait += wait;
    r->win.time += t2 - t0;
    r->win.wait += wait;
    r->win.loss_sum += loss;
    r->win.n++;
    *ep_loss += loss;
    r->p.global_iter += r->ranks;
    r->p.epoch = epoch;
    r->p.iter_in_epoch = idx + 1;
    r->run_iters++;
    if (r->nan_at > r->p.global_iter - r->ranks && r->nan_at <= r->p.global_iter) run_test_nan(r, &loss);
    if (!isfinite(loss)) {
        char what[64];
        snprintf(what, sizeof what, "the loss is %g", loss);
        return run_diverged(r, what, err);
    }
    run_report_iteration(r, epoch, idx, loss);
    signals_poll_at(SIGNAL_AT_TRAIN_ITER, r->p.global_iter); // the testing hook's chance; run_epoch acts on requests
    *stop = r->p.global_iter >= r->limit;
    return XC_OK;
}

// The batches of one epoch from where the run stands, with the snapshots due within it: periodic
// (output.snapshot_freq) or asked for by a signal, taken at the next accumulation boundary. With N ranks the
// epoch goes in rounds of N batches (every rank calls the same collectives in the same order).
static int run_epoch(Run *r, int epoch, double *ep_loss, int64_t *ep_n, bool *stop, XcError *err) {
    const TrainConfig *c = r->c;
    const RunTask *task = &r->task;
    const int N = r->ranks;
    const int64_t first = epoch == r->p.epoch ? r->p.iter_in_epoch : 0;
    const int64_t per_step = (int64_t)c->accumulation_steps * N, end = run_epoch_batches(r);
    if (first == 0) train_step_epoch_begin(task->st);
    for (int64_t idx = first + N - 1; idx < end; idx += N) {
        if (run_iteration(r, epoch, idx, ep_loss, stop, err) != XC_OK) return XC_ERR;
        (*ep_n)++;
        const bool boundary = (idx + 1) % per_step == 0 || idx + 1 == end;
        if (*stop && boundary) return XC_OK; // train.max_iters: at the first accumulation boundary from there on, so a
        *stop = false;                       // resumed run goes on as if never stopped (no micro-batch's gradient lost)
        const int64_t gi = r->p.global_iter;
        if (c->snapshot_freq > 0 && gi / c->snapshot_freq != (gi - N) / c->snapshot_freq) r->snap_due = true;
        if (run_requests(r) & (SIGNAL_SNAPSHOT | SIGNAL_STOP)) r->snap_due = true;
        if (r->snap_due && boundary) { // (a snapshot checks the ranks' parameters too)
            if (run_snapshot(r, NULL, false, err) != XC_OK) return XC_ERR;
            int rc = run_stop_if_asked(r);
            if (rc != XC_OK) return rc;
        } else if (N > 1 && c->check_ranks > 0 && boundary && task->st->opt_steps >= r->checked_at + c->check_ranks) {
            if (run_check_ranks(r, "after an optimiser step", err) != XC_OK) return XC_ERR;
        }
    }
    if (end < task->n_iter) { // the batches no round could share out count as done, as the schedule counts them
        r->p.global_iter += task->n_iter - r->p.iter_in_epoch;
        r->p.iter_in_epoch = task->n_iter;
    }
    return task->end_epoch(task->ctx, err);
}

// An evaluation that SIGINT / SIGTERM cut short (the evaluation loop stops at its next batch): its partial
// numbers are shown as such and recorded nowhere. True if that happened.
static bool run_eval_interrupted(Run *r, const char *what, const RunScore *s, const char *then) {
    if (!(run_requests(r) & SIGNAL_STOP)) return false;
    char cause[48];
    runlog_say(&r->log, "%s interrupted by %s (partial: %s): not recorded; %s\n", what, stop_cause(cause, sizeof cause), s->text,
               then);
    return true;
}

// Evaluation after an epoch (every train.eval_freq epochs and after the last); best weights. 1 when a stop
// request interrupted it (nothing recorded).
static int run_epoch_eval(Run *r, int epoch, double train_loss, bool last, XcError *err) {
    const TrainConfig *c = r->c;
    const RunTask *task = &r->task;
    RunScore s = {0};
    double te = xc_now();
    int rc = task->evaluate(task->ctx, false, &s, err);
    if (rc <= 0) return rc;
    char what[48];
    snprintf(what, sizeof what, "eval epoch %d/%d", epoch + 1, c->epochs);
    if (run_eval_interrupted(r, what, &s, last ? "a resumed run goes on to the final evaluation"
                                               : "a resumed run evaluates this epoch again"))
        return 1;
    Progress *p = &r->p;
    const bool better = s.top1 > p->best;
    if (better) {
        p->best = s.top1;
        p->best_epoch = epoch;
        p->best_iter = p->global_iter; // the epoch-end snapshot holds this model
    }
    char loss[64] = "train loss - (resumed after the epoch's batches)"; // NaN: none trained by this process
    if (isfinite(train_loss)) snprintf(loss, sizeof loss, "train loss %.4f", train_loss);
    runlog_say(&r->log, "eval epoch %d/%d: %s  (%.1f s)  %s  best %.2f%% (epoch %d)\n", epoch + 1, c->epochs, s.text,
               xc_now() - te, loss, p->best, p->best_epoch + 1);
    Metric f[24];
    int n = 0;
    f[n++] = METRIC_INT("epoch", epoch + 1);
    f[n++] = METRIC_INT("global_iter", p->global_iter);
    for (int i = 0; i < s.n_fields && n < 21; i++) f[n++] = s.fields[i];
    if (isfinite(train_loss)) f[n++] = METRIC_NUM("train_loss", train_loss);
    f[n++] = METRIC_NUM("best_top1", p->best);
    f[n++] = METRIC_INT("best_epoch", p->best_epoch + 1);
    runlog_metrics(&r->log, "eval", f, n);
    run_write_curves(r);
    if (!better || !c->save_best || !r->root) return XC_OK;
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/best.safetensors", c->dir);
    return save_weights(task->ps, path, err);
}

// Whether the snapshot at the end of an epoch is written: always at the run's last epoch (last), when the epoch's
// evaluation found a new best model (the snapshot keeps it), on a stop or snapshot request, and otherwise once
// output.snapshot_min_seconds have passed since the last snapshot. A snapshot is a collective: with several ranks
// any rank's wish counts, so all decide alike.
static bool run_epoch_snapshot_wanted(Run *r, bool last) {
    const double min = r->c->snapshot_min_seconds;
    if (last || min <= 0 || r->p.best_iter == r->p.global_iter) return true; // the same on every rank
    unsigned want = xc_now() - r->t_snap >= min || (signals_poll() & (SIGNAL_STOP | SIGNAL_SNAPSHOT));
    if (r->ranks > 1) want = dist_or(want);
    if (!want)
        runlog_note(&r->log, "no snapshot at the end of epoch %d: %.1f s since the last one or the start (output.snapshot_min_seconds "
                    "= %g)\n", r->p.epoch, xc_now() - r->t_snap, min);
    return want != 0;
}

// Epoch after epoch from where the run stands: train, evaluate, snapshot at the epoch's end.
static int run_train(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    r->t_start = r->t_snap = xc_now();
    bool stop = r->p.global_iter >= r->limit;
    for (int epoch = r->p.epoch; epoch < c->epochs && !stop; epoch++) {
        double ep_loss = 0;
        int64_t ep_n = 0;
        int rc = run_epoch(r, epoch, &ep_loss, &ep_n, &stop, err);
        if (rc != XC_OK) return rc;
        if ((c->eval_freq > 0 && (epoch + 1) % c->eval_freq == 0) || epoch + 1 == c->epochs || stop) {
            rc = run_epoch_eval(r, epoch, ep_n ? ep_loss / (double)ep_n : NAN, stop, err);
            if (rc < 0) return XC_ERR;
            if (rc > 0) { // stopped inside the evaluation: the snapshot leaves the epoch unfinished (its batches
                          // done, the data at its end), so a resumed run evaluates it before going on
                const LoaderCursor at = {r->p.epoch, r->p.iter_in_epoch};
                if (run_snapshot(r, &at, false, err) != XC_OK) return XC_ERR;
                return run_stop_if_asked(r);
            }
        }
        // the data's cursor already points at the next epoch. When train.max_iters stopped the run at this epoch's
        // last batch, the data has not moved on yet, but the epoch is done (evaluated above): the snapshot says so,
        // so that a resumed run goes on with the next epoch rather than evaluate this one again.
        const bool done_at_stop = stop && r->p.iter_in_epoch >= run_epoch_batches(r);
        const LoaderCursor next = {epoch + 1, 0};
        if (!stop || done_at_stop) {
            r->p.epoch = epoch + 1;
            r->p.iter_in_epoch = 0;
        }
        if (run_epoch_snapshot_wanted(r, stop || epoch + 1 == c->epochs) &&
            run_snapshot(r, done_at_stop ? &next : NULL, !(signals_poll() & SIGNAL_STOP), err) != XC_OK)
            return XC_ERR;
        if ((rc = run_stop_if_asked(r)) != XC_OK) return rc;
    }
    return XC_OK;
}

// The last weights, the final evaluation, the summary line.
static int run_finish(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    const RunTask *task = &r->task;
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/last.safetensors", c->dir);
    if (r->root && save_weights(task->ps, path, err) != XC_OK) return XC_ERR;
    RunScore s = {0};
    double te = xc_now();
    int rc = task->evaluate(task->ctx, true, &s, err);
    if (rc < 0) return XC_ERR;
    // interrupted: the last snapshot (at the end of training) makes a resumed run do the final evaluation
    if (rc > 0 && run_eval_interrupted(r, "final eval", &s, "a resumed run does the final evaluation")) return run_stop_if_asked(r);
    if (rc > 0) { // a final evaluation ran
        runlog_say(&r->log, "final eval: %s  (%.1f s)\n", s.text, xc_now() - te);
        runlog_metrics(&r->log, "final_eval", s.fields, s.n_fields);
    }
    char dur[32];
    fmt_duration(xc_now() - r->t_start, dur, sizeof dur);
    char best[CONFIG_PATH_MAX + 96] = "no evaluation during training";
    if (r->p.best_epoch >= 0)
        snprintf(best, sizeof best, "best %.2f%% at epoch %d%s%s%s", r->p.best, r->p.best_epoch + 1, c->save_best ? " -> " : "",
                 c->save_best ? c->dir : "", c->save_best ? "/best.safetensors" : "");
    runlog_say(&r->log, "done: %lld iterations, %lld optimiser steps in %s (data wait %.0f%%); %s\n",
               (long long)r->p.global_iter, (long long)task->st->opt_steps, dur,
               r->t_train > 0 ? 100.0 * r->t_wait / r->t_train : 0.0, best);
    if (r->ranks > 1) {
        const DistStats *d = &task->st->reduce.stats;
        runlog_say(&r->log, "data-parallel: %lld steps summed %.2f GB of gradients per rank in %lld buckets; buckets in "
                            "flight %.1f s, waited for after backward %.1f s (%.0f%% of the training time)\n",
                   (long long)d->steps, d->bytes / 1e9, (long long)d->buckets, d->comm, d->wait,
                   r->t_train > 0 ? 100.0 * d->wait / r->t_train : 0.0);
    }
    return XC_OK;
}

static void run_close(Run *r, int rc, XcError *err) {
    signals_uninstall();
    if (r->log.metrics) run_write_curves(r); // the picture of the run as it ends, however it ends
    xc_free(r->order);
    free(r->config);
    if (r->task_ok && r->task.free) r->task.free(r->task.ctx);
    gemm_free(&r->gemm);
    if (rc == XC_ERR && r->log.log) fprintf(r->log.log, "error: %s\n", err->msg);
    runlog_close(&r->log);
    if (r->lock_fd) close(r->lock_fd - 1); // the lock goes with it
}

int run_main(const TrainConfig *c, const TrainRunOptions *o, RunTaskBuild build, XcError *err) {
    Run r = {.c = c, .o = o};
    int rc = run_open(&r, err);
    if (rc == XC_OK) rc = run_build(&r, build, err);
    if (rc == XC_OK) rc = run_restore(&r, err);
    if (rc == XC_OK) rc = run_write_config(&r, err);
    if (rc == XC_OK) rc = run_check_ranks(&r, "at the start (initialisation, --init or snapshot)", err);
    if (rc == XC_OK) rc = run_stop_before_training(&r);
    if (rc == XC_OK) rc = run_train(&r, err);
    if (rc == XC_OK) rc = run_finish(&r, err);
    run_close(&r, rc, err);
    return rc;
}
