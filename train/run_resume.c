// run_resume.c - --resume PATH|auto (train/run.h): the snapshot read on every rank, its position checked against
// this run's data and schedule, then the progress, the drop-path stream and the data cursor restored.
#include "train/run_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoints/snapshot.h"
#include "train/dist.h"

// A snapshot's counters and data cursor are input: checked against this run's data and schedule before any is
// used. The snapshot's batches per epoch follow from its counters (global_iter = epoch x batches + iter_in_epoch);
// when they differ from this run's (train.batch_size or the training list changed), a snapshot taken at an epoch's
// start or end continues from the same place in the items (the counters are recounted in this run's batches);
// one from the middle of an epoch is refused. Anything else out of range is refused, naming the field.
static int run_check_position(Run *r, const char *path, SnapshotState *ss, XcError *err) {
    const RunTask *t = &r->task;
    const int64_t n = t->n_iter, E = r->c->epochs;
    const int64_t e = ss->epoch, i = ss->iter_in_epoch, g = ss->global_iter;
    if (e < 0 || e > E)
        return xc_err(err, "snapshot %s: epoch = %lld is outside this run's 0..%lld (train.epochs = %lld)", path,
                      (long long)e, (long long)E, (long long)E);
    if (i < 0 || g < 0 || g < i || (e == 0 && g != i) || (e > 0 && (g - i) % e != 0))
        return xc_err(err, "snapshot %s: global_iter = %lld does not fit epoch = %lld and iter_in_epoch = %lld", path,
                      (long long)g, (long long)e, (long long)i);
    if (ss->cursor.epoch != e || ss->cursor.batch != i)
        return xc_err(err, "snapshot %s: data cursor (epoch %lld, batch %lld) differs from its counters (epoch %lld, "
                           "iter_in_epoch %lld)", path, (long long)ss->cursor.epoch, (long long)ss->cursor.batch,
                      (long long)e, (long long)i);
    if (ss->best_epoch < -1 || ss->best_epoch > e || ss->best_iter < -1 || ss->best_iter > g)
        return xc_err(err, "snapshot %s: best_epoch = %lld / best_iter = %lld lie beyond the snapshot (epoch %lld, "
                           "global_iter %lld)", path, (long long)ss->best_epoch, (long long)ss->best_iter,
                      (long long)e, (long long)g);
    // the snapshot's batches per epoch: from the counters after the first epoch, else from its train.batch_size
    // (training batches are whole: items / batch size)
    int64_t then = e > 0 ? (g - i) / e : n;
    char bs[32] = "";
    if (e == 0 && i > 0 && config_text_value(ss->config, "train", "batch_size", bs, sizeof bs) && atoll(bs) != t->batch_size)
        then = atoll(bs) > 0 ? t->n_items / atoll(bs) : -1; // -1: unknown, but not this run's
    if (then == n) {
        if (i > n || (e == E && i > 0))
            return xc_err(err, "snapshot %s: iter_in_epoch = %lld is beyond an epoch of %lld batches%s", path, (long long)i,
                          (long long)n, e == E ? " (or past the last epoch)" : "");
        return XC_OK;
    }
    if (i != 0 && i != then) {
        char was[64] = "";
        if (then > 0) snprintf(was, sizeof was, "%lld", (long long)then);
        else snprintf(was, sizeof was, "? (train.batch_size = %s)", bs);
        return xc_err(err, "snapshot %s: it stopped in the middle of epoch %lld (iter_in_epoch = %lld of %s batches); this "
                           "run has %lld batches per epoch (train.batch_size = %d): the place in the data cannot be "
                           "carried over\nHINT: resume with the snapshot's train.batch_size and training list, or "
                           "from a snapshot taken at an epoch's end", path, (long long)e + 1, (long long)i, was,
                      (long long)n, t->batch_size);
    }
    if (e == E && i > 0)
        return xc_err(err, "snapshot %s: iter_in_epoch = %lld past the last epoch", path, (long long)i);
    // at an epoch's start or end: the same place in the items, counted in this run's batches
    const int64_t ni = i ? n : 0;
    runlog_say(&r->log, "note: the snapshot has %lld batches per epoch, this run %lld (train.batch_size or the training "
                        "list changed): it resumes at the %s of epoch %lld, the iteration count becomes %lld (was %lld)\n",
               (long long)then, (long long)n, i ? "end" : "start", (long long)e + 1, (long long)(e * n + ni), (long long)g);
    ss->iter_in_epoch = ss->cursor.batch = ni;
    ss->global_iter = e * n + ni;
    return XC_OK;
}

// The one place a run is restored (--resume PATH|auto). 1 resumed, 0 nothing to resume, XC_ERR.
int run_resume(Run *r, const char *resume, XcError *err) {
    RunTask *t = &r->task;
    SnapshotRng rngs[1] = {{"drop", {0}}};
    SnapshotState ss = {.params = t->ps, .opt = adamw_state(&t->st->opt), .rngs = rngs, .n_rngs = 1, .order = r->order,
                        .order_len = t->n_items};
    char path[CONFIG_PATH_MAX + 64] = "";
    if (r->root && !strcmp(resume, "auto")) {
        if (snapshot_remove_stale_temps(r->c->dir, stdout, err) < 0) return XC_ERR;
        int rc = snapshot_resume_latest(r->c->dir, &ss, path, sizeof path, stdout, err);
        if (rc < 0) return XC_ERR;
        if (rc == 0) {
            runlog_say(&r->log, "--resume auto: no snapshot in %s, starting from the beginning\n", r->c->dir);
            path[0] = 0;
        }
    } else if (r->root) {
        snprintf(path, sizeof path, "%s", resume);
        if (snapshot_load(resume, &ss, err) != XC_OK) return xc_err(err, "--resume %s: %s", resume, err->msg);
    }
    if (r->ranks > 1) { // rank 0 found the snapshot (or none): the others read the same file
        dist_bcast(path, sizeof path, 0);
        if (!r->root && *path && snapshot_load(path, &ss, err) != XC_OK)
            return xc_err(err, "rank %d: --resume %s: %s\nHINT: with several machines the run directory must be a folder "
                               "they share", dist_rank(), path, err->msg);
    }
    if (!*path) return 0;
    if (ss.config && r->config && strcmp(ss.config, r->config)) {
        char diff[2048];
        int nd = config_diff(r->config, ss.config, diff, sizeof diff);
        if (nd > 0)
            runlog_say(&r->log, "warning: %d setting%s differ%s from the snapshot's (%s); the run goes on with the current "
                                "values: %s\n", nd, nd == 1 ? "" : "s", nd == 1 ? "s" : "", path, diff);
    }
    int rc = run_check_position(r, path, &ss, err);
    if (rc == XC_OK && ss.iter_in_epoch % r->ranks && ss.iter_in_epoch != t->n_iter) // a round takes one batch per rank
        rc = xc_err(err, "snapshot %s: it stopped after batch %lld of epoch %lld, where %d ranks cannot take up the data "
                         "(a round takes one batch per rank, from a multiple of %d)\nHINT: resume with a number of ranks "
                         "that divides %lld (one process always can), or from a snapshot taken at an epoch's end",
                    path, (long long)ss.iter_in_epoch, (long long)ss.epoch + 1, r->ranks, r->ranks,
                    (long long)ss.iter_in_epoch);
    if (rc == XC_OK && r->root) { // newer snapshots would outrank this run's next ones: set them aside
        char where[CONFIG_PATH_MAX + 96];
        const int moved = snapshot_set_aside(r->c->dir, ss.global_iter, path, where, sizeof where, err);
        if (moved < 0) rc = XC_ERR;
        else if (moved > 0)
            runlog_say(&r->log, "note: %d snapshot%s from iteration %lld on (a branch of this run left behind, or files "
                                "that did not verify) moved to %s, so that --resume auto and output.keep_snapshots follow "
                                "this run from %s; best.safetensors and last.safetensors stay until this run rewrites them\n",
                       moved, moved == 1 ? "" : "s", (long long)ss.global_iter, where, path);
    }
    snprintf(r->last_snap, sizeof r->last_snap, "%s", path);
    snapshot_state_free_text(&ss);
    if (rc != XC_OK) return XC_ERR;
    rng_set_state(&t->st->drop, rngs[0].state);
    r->p = (Progress){.global_iter = ss.global_iter, .epoch = (int)ss.epoch, .iter_in_epoch = ss.iter_in_epoch,
                      .best = ss.best_acc, .best_epoch = (int)ss.best_epoch, .best_iter = ss.best_iter};
    train_step_resume_at(t->st, r->p.epoch, r->p.iter_in_epoch, t->n_iter);
    t->seek(t->ctx, ss.cursor);
    char best[64] = "no evaluation yet";
    if (r->p.best_epoch >= 0) snprintf(best, sizeof best, "best %.2f%% (epoch %d)", r->p.best, r->p.best_epoch + 1);
    runlog_say(&r->log, "resumed from %s: epoch %d, iteration %lld of %lld, %lld optimiser steps, %s\n", path,
               r->p.epoch + 1, (long long)r->p.iter_in_epoch, (long long)t->n_iter, (long long)t->st->opt_steps, best);
    return 1;
}
