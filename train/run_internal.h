// run_internal.h - the Run record behind run.h's opaque Run, shared by the files of the run loop: run_loop.c (the
// phases, the epoch loop, snapshots, the finish), run_dir.c (threads and the run directory) and run_resume.c
// (--resume).
// Tasks never include it: they see a Run through run.h's accessors.
#pragma once
#include "train/run.h"

// Where a run stands: what a snapshot records besides the model, the optimiser and the drop-path stream. The
// one progress record of a run: the loop advances it, snapshots save it, a resume restores it.
typedef struct Progress {
    int64_t global_iter;     // batches done over the whole run (the next batch's t)
    int epoch;               // current epoch
    int64_t iter_in_epoch;   // batches done in it
    double best;             // best validation score (-1: none)
    int best_epoch;          // -1: none
    int64_t best_iter;       // global_iter of the snapshot that holds the best model (-1: none)
} Progress;

// Training figures since the last log line.
typedef struct Window {
    double loss_sum, time, wait;
    int64_t n;
} Window;

struct Run {
    const TrainConfig *c;
    const TrainRunOptions *o;
    RunLog log;
    Gemm gemm;                  // matmul precision (train.matmul) of training and evaluation
    RunTask task;
    bool task_ok;
    int64_t total, limit;       // batches of the schedule, of this run (train.max_iters)
    Progress p;
    int64_t *order;             // (n_items) the epoch's permutation of the training items, as the data draws it
    char *config;               // the effective config, kept in snapshots
    bool snap_due;              // a snapshot is wanted at the next accumulation boundary
    double t_snap;              // when the last snapshot was written (or training started)
    int64_t nan_at;             // testing hook XCLIP_TEST_NAN_AT (0: off)
    int nan_what;               // its TestNan
    char last_snap[CONFIG_PATH_MAX + 64]; // the newest snapshot written or resumed from ("": none)
    double t_start, t_train, t_wait;
    int64_t run_iters;          // batches trained by this process (not counting a resumed run's earlier ones)
    Window win;
    int ranks;                  // data-parallel processes (train/dist.h; 1: this one alone)
    bool root;                  // rank 0: the one that writes the run directory's files
    int64_t checked_at;         // optimiser steps at the last cross-rank parameter check
    int lock_fd;                // rank 0: 1 + the descriptor holding output.dir/.lock (0: none)
};

int run_open(Run *r, XcError *err);                       // run_dir.c: threads, the run directory, signals, matmuls
int run_write_config(Run *r, XcError *err);               // run_dir.c: config.ini, once started or resumed
int run_resume(Run *r, const char *resume, XcError *err); // run_resume.c: 1 resumed, 0 nothing to resume, XC_ERR
void run_read_test_nan(Run *r);                           // run_loop.c: the testing hook XCLIP_TEST_NAN_AT
