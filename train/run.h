// run.h - the run loop shared by xclip-train (X-CLIP fine-tuning, train/trainer.h) and xclip-pretrain (CLIP
// pretraining, train/pretrain.h): the run directory and its logs, the matmul precision, signal handling, the
// epoch loop with its progress record, snapshots and --resume, evaluation and the best / last weights. A task
// brings the model, the data and the evaluation through a RunTask.
//
//   static int my_build(Run *r, RunTask *t, XcError *err) {      // called once the run directory is open
//       ... build the model (run_gemm(r) for the step's graph), the data, a TrainStep ...
//       *t = (RunTask){.program = "my-train", .items = "images", .ps = &ps, .st = &st, .n_items = n,
//                      .n_iter = batches, .batch_size = B, .ctx = me, .train_batch = my_batch, ...};
//       return XC_OK;
//   }
//   int rc = run_main(&config, &(TrainRunOptions){.resume = "auto"}, my_build, &err);  // RUN_EXIT_STOPPED on a signal
//
// Phases (run_loop.c; the set-up in run_dir.c, --resume in run_resume.c): open the directory (config.ini, log.txt,
// metrics.jsonl) -> task build (and --init weights) -> restore the newest snapshot (--resume) -> task restored
// hook -> epochs: batches, snapshots at accumulation boundaries (periodic, on SIGUSR1, on SIGINT / SIGTERM which
// then stop the run), evaluation, epoch-end snapshot -> last weights, final evaluation, summary.
//
// Testing hook: the environment variable XCLIP_TEST_SIGNAL_AT="ITER:SIG" (SIG one of TERM, INT, USR1) makes the
// run raise that signal at itself right after its ITER-th batch of the whole run, so that tests drive the real
// signal path deterministically.
#pragma once
#include "autograd/kernels.h"
#include "data/loader.h"
#include "train/config.h"
#include "train/report.h"
#include "train/signals.h"
#include "train/step.h"

typedef struct TrainRunOptions {
    const char *init;         // --init: weights loaded over the model before training (NULL: none)
    const char *resume;       // --resume PATH or auto (NULL: none): continue from a snapshot
    bool overwrite;           // --overwrite: a fresh run may replace an earlier run's files in output.dir
} TrainRunOptions;

// Exit status for a run stopped by a signal after a snapshot was written (resume it with --resume auto).
#define RUN_EXIT_STOPPED XC_EXIT_SNAPSHOT_STOP

typedef struct Run Run;

// One evaluation as a task reports it.
typedef struct RunScore {
    double top1;              // what picks the best model (higher is better), in %
    char text[512];           // the measurements for the log line ("top-1 41.50%  top-5 ...")
    Metric fields[16];        // the metrics record's fields
    int n_fields;
} RunScore;

typedef struct RunTask {
    const char *program;      // in messages and the resume hint ("xclip-train")
    const char *items;        // what a training item is, for the log ("videos", "images")
    ParamStore *ps;           // the parameters: snapshots, --init, best / last weights
    TrainStep *st;            // optimiser, drop-path stream, schedule position
    int64_t n_items;          // training items: the length of an epoch's order
    int64_t n_iter;           // batches per epoch
    int batch_size;           // items per batch
    char *fewshot;            // text kept in snapshots (a drawn few-shot list), or NULL (borrowed)
    void *ctx;
    // Batch idx of the epoch (t over the whole run) through st: its loss, and the seconds spent waiting for the
    // data. XC_ERR on a data error.
    int (*train_batch)(void *ctx, int64_t idx, int64_t t, float *loss, double *wait, XcError *err);
    // The data's end of an epoch (after its n_iter batches).
    int (*end_epoch)(void *ctx, XcError *err);
    // Validation (final: the final pass after training, e.g. multi-view): 1 evaluated, 0 nothing to evaluate
    // (no final pass configured), XC_ERR.
    int (*evaluate)(void *ctx, bool final, RunScore *s, XcError *err);
    LoaderCursor (*cursor)(void *ctx); // the next batch the data will deliver
    void (*seek)(void *ctx, LoaderCursor c);
    char *(*bad_items)(void *ctx);     // "item<TAB>reason" lines for snapshots (malloc'd), or NULL (may be NULL)
    int (*restored)(void *ctx, XcError *err); // after any resume, before the first batch (may be NULL)
    void (*free)(void *ctx);
} RunTask;

// The task's set-up: fills *t; the run is open (run_log, run_gemm, run_config work).
typedef int (*RunTaskBuild)(Run *r, RunTask *t, XcError *err);

// 0 on success; XC_ERR + err on failure; RUN_EXIT_STOPPED when stopped on request.
int run_main(const TrainConfig *c, const TrainRunOptions *o, RunTaskBuild build, XcError *err);

RunLog *run_log(Run *r);              // log lines: runlog_say(run_log(r), ...)
Gemm *run_gemm(Run *r);               // the matmul precision of train.matmul, for the task's graphs
const TrainConfig *run_config(Run *r);
