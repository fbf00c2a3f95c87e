// step.h - one optimisation step of X-CLIP fine-tuning (docs/model.md §6, §9): forward, soft-target
// cross-entropy, backward, gradient accumulation, the official learning-rate groups and schedule lag, AdamW
// (after backward, or fused into it).
//
//   TrainStep s;
//   train_step_init(&s, &m, &ps, adamw_cfg, 10.0, lr_schedule_from_epochs(...), accum, seed, drop_path_on);
//   s.g.gemm = &mm;                                     // optional: the matmul precision (autograd/kernels.h)
//   train_step_set_tokens(&s, tokens, K, S);            // needed when the text tower trains
//   for (epoch) { train_step_epoch_begin(&s);
//       for (idx, batch) loss = train_step_run(&s, batch->video, B, batch->targets, idx, epoch * n_iter + idx, NULL); }
//   train_step_free(&s);
//
// Memory: the step wraps the loader's batch in place (no copy); activations live in the Graph's step arena,
// reset after every micro-batch, so from the second step on a training step allocates nothing.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "autograd/rng.h"
#include "nn/xclip.h"
#include "optim/adamw.h"
#include "train/schedule.h"

typedef struct TrainStep {
    XClip *m;                 // borrowed
    ParamStore *ps;           // borrowed
    AdamW opt;
    Graph g;                  // g.gemm: borrowed matmul precision (NULL: float32)
    LrSchedule sched;         // rates of the scale-1 group; a group of scale s decays from s x base
    float *group_scale;       // (n params) 1 or new_lr_scale (by name, utils/optimizer.py)
    int accum;                // micro-batches per optimiser step
    bool fused;               // AdamW inside backward (the model's parameters have transient gradients)
    int64_t sched_t;          // iteration whose rate the next optimiser step uses (-1: the initial rate)
    int64_t opt_steps;        // optimiser steps done
    double last_lr;           // scale-1 rate of the last optimiser step
    Rng drop;                 // drop-path stream
    bool drop_on;             // pass the stream to the forward (drop_path > 0)
    const int32_t *tokens;    // (K, S) class tokens: used when the text tower trains (fix_text off)
    int64_t K, S;
} TrainStep;

void train_step_init(TrainStep *s, XClip *m, ParamStore *ps, AdamWConfig ac, double new_lr_scale, LrSchedule sched,
                     int accum, uint64_t seed, bool drop_on);
void train_step_free(TrainStep *s);
// Class tokens for the text tower (needed when fix_text is off; ignored otherwise). Borrowed.
void train_step_set_tokens(TrainStep *s, const int32_t *tokens, int64_t K, int64_t S);
// Start of an epoch: gradients cleared (a partial accumulation left by the previous epoch is dropped, as the
// official loop's optimizer.zero_grad() at epoch start).
void train_step_epoch_begin(TrainStep *s);
// One micro-batch: video (B, T, 3, H, H) normalised (borrowed, not modified), targets (B, K) soft targets.
// loss = soft-target CE averaged over the batch; backward of loss / accum; when (idx + 1) % accum == 0 the
// optimiser steps with the lagged rate (see schedule.h) and the rate of iteration t is computed for the next
// step. Returns the loss (not divided); *stepped (may be NULL) says whether the optimiser stepped.
float train_step_run(TrainStep *s, const float *video, int B, const float *targets, int64_t idx, int64_t t, bool *stepped);
// Scale-1 rate the next optimiser step will use.
double train_step_next_lr(const TrainStep *s);
// Position the schedule after a resume: the run has done global_iter loader batches (epoch, iter_in_epoch
// within it, n_iter per epoch) and the optimiser opt.step steps.
void train_step_resume_at(TrainStep *s, int64_t epoch, int64_t iter_in_epoch, int64_t n_iter);
