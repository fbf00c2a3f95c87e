// trainer.h - the run behind `xclip-train CONFIG` (docs/model.md §8-§10): X-CLIP fine-tuning as a task of the
// shared run loop (train/run.h: directory and logs, snapshots and --resume, signals, evaluation, best / last
// weights). The task builds the model and the video data from the config, runs its batches through the
// optimisation step (train/step.h) and evaluates with train/evaluate.h. This header includes the train layer's
// headers for the programs.
//
//   TrainConfig c; config_load(&c, "configs/demo.ini", &err); config_check(&c, CONFIG_FOR_TRAIN, &err);
//   TrainRunOptions o = {0};                 // o.init = weights to start from (--init), o.resume = PATH or "auto"
//   int rc = train_run(&c, &o, &err);        // writes c.dir/{config.ini, log.txt, metrics.jsonl, best.safetensors,
//                                            // last.safetensors, snap-*.h5}; TRAIN_EXIT_STOPPED after SIGINT/SIGTERM
#pragma once
#include "train/config.h"
#include "train/evaluate.h"
#include "train/report.h"
#include "train/run.h"
#include "train/setup.h"
#include "train/signals.h"
#include "train/step.h"

// Exit status for a run stopped by a signal after a snapshot was written (resume it with --resume auto).
#define TRAIN_EXIT_STOPPED RUN_EXIT_STOPPED
// 0 on success; XC_ERR + err on failure; TRAIN_EXIT_STOPPED when stopped on request.
int train_run(const TrainConfig *c, const TrainRunOptions *o, XcError *err);
