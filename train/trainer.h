// trainer.h - the whole run behind `xclip-train CONFIG` (docs/model.md §8-§10): directory and logs, model and
// data from the config, resume, the epoch loop with snapshots and signals, evaluation, best / last weights.
// The pieces it is made of have headers of their own: the optimisation step (train/step.h), evaluation
// (train/evaluate.h), building a model and loaders from a config (train/setup.h), logs and metrics
// (train/report.h); this header includes them for the programs.
//
//   TrainConfig c; config_load(&c, "configs/demo.ini", &err); config_check(&c, CONFIG_FOR_TRAIN, &err);
//   TrainRunOptions o = {0};                 // o.init = weights to start from (--init), o.resume = PATH or "auto"
//   int rc = train_run(&c, &o, &err);        // writes c.dir/{config.ini, log.txt, metrics.jsonl, best.safetensors,
//                                            // last.safetensors, snap-*.h5}; TRAIN_EXIT_STOPPED after SIGINT/SIGTERM
#pragma once
#include "train/config.h"
#include "train/evaluate.h"
#include "train/report.h"
#include "train/setup.h"
#include "train/signals.h"
#include "train/step.h"

typedef struct TrainRunOptions {
    const char *init;         // --init: weights loaded over the model before training (NULL: none)
    const char *resume;       // --resume PATH or auto (NULL: none): continue from a snapshot
} TrainRunOptions;

// Exit status for a run stopped by a signal after a snapshot was written (resume it with --resume auto).
#define TRAIN_EXIT_STOPPED XC_EXIT_SNAPSHOT_STOP
// 0 on success; XC_ERR + err on failure; TRAIN_EXIT_STOPPED when stopped on request.
//
// Testing hook: the environment variable XCLIP_TEST_SIGNAL_AT="ITER:SIG" (SIG one of TERM, INT, USR1) makes the
// run raise that signal at itself right after its ITER-th loader batch of the whole run, so that tests drive
// the real signal path deterministically.
int train_run(const TrainConfig *c, const TrainRunOptions *o, XcError *err);
