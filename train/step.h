// step.h - one optimisation step (docs/model.md §9): forward and loss of a micro-batch, backward, gradient
// accumulation, learning-rate groups on the schedule with the official one-step lag, AdamW (after backward, or
// fused into it). The loss comes from the caller (train_step_run_loss); train_step_run is X-CLIP's (§6).
//
//   TrainStep s;   // X-CLIP fine-tuning: the official groups (new tensors at new_lr_scale x lr, decay by name)
//   train_step_init(&s, &m, &ps, adamw_cfg, 10.0, lr_schedule_from_epochs(...), accum, seed, drop_path_on);
//   s.g.gemm = &mm;                                     // optional: the matmul precision (autograd/kernels.h)
//   train_step_set_tokens(&s, tokens, K, S);            // needed when the text tower trains
//   for (epoch) { train_step_epoch_begin(&s);
//       for (idx, batch) loss = train_step_run(&s, batch->video, B, batch->targets, idx, epoch * n_iter + idx, NULL); }
//   train_step_free(&s);
//
//   // any other objective (CLIP pretraining): groups of one's own and a loss callback
//   train_step_init_groups(&s, &ps, adamw_cfg, groups, sched, accum, seed, false);
//   s.after_update = clamp_fn; s.after_ctx = &clip;     // e.g. CLIP's temperature clamp after each update
//   loss = train_step_run_loss(&s, my_loss, &my_batch, idx, t, NULL);
//
// Memory: the step wraps the loader's batch in place (no copy); activations live in the Graph's step arena,
// reset after every micro-batch, so from the second step on a training step allocates nothing.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "autograd/rng.h"
#include "nn/xclip.h"
#include "optim/adamw.h"
#include "train/dist.h"
#include "train/schedule.h"

#define STEP_MAX_GROUPS ADAMW_MAX_GROUPS

// How the parameters split into learning-rate groups, and which are weight-decayed. Group g decays from
// scale[g] x the schedule's base rate to the schedule's floor (shared by every group, as timm does).
typedef struct StepGroups {
    int n;                                        // groups, 1..STEP_MAX_GROUPS
    float scale[STEP_MAX_GROUPS];                 // base-rate multiplier of each group
    int (*group_of)(const char *name);            // a parameter's group (by its state-dict name)
    bool (*decays)(const char *name, int ndim);   // weight decay on for this parameter?
} StepGroups;

// The official X-CLIP rule (utils/optimizer.py; param_groups.h): group 1 = the tensors X-CLIP adds to CLIP
// (xclip_is_new_tensor) at new_lr_scale x lr, group 0 = CLIP's at lr; no decay for 1-D tensors, biases and
// positional embeddings.
StepGroups xclip_step_groups(double new_lr_scale);

// The loss of one micro-batch: ctx's forward on g (drop: the drop-path stream, NULL when off) -> a scalar.
typedef Tensor *(*StepLossFn)(void *ctx, Graph *g, Rng *drop);

typedef struct TrainStep {
    ParamStore *ps;           // borrowed
    AdamW opt;
    Graph g;                  // g.gemm: borrowed matmul precision (NULL: float32)
    LrSchedule sched;         // rates of a scale-1 group
    StepGroups groups;        // the parameters' groups are in opt.group
    int accum;                // micro-batches per optimiser step (on each rank)
    int ranks;                // processes whose micro-batches make one step together (1: this one alone)
    GradReducer reduce;       // ranks > 1: the gradients' sum over the ranks, started during backward
    bool fused;               // AdamW inside backward (the parameters have transient gradients)
    int64_t sched_t;          // iteration whose rate the next optimiser step uses (-1: the initial rate)
    int64_t opt_steps;        // optimiser steps done
    double last_lr;           // scale-1 rate of the last optimiser step
    Rng drop;                 // drop-path stream of the current micro-batch
    uint64_t drop_seed;       // the streams are keyed by the micro-batch's iteration (same on any number of ranks)
    bool drop_on;             // pass the stream to the forward (drop_path > 0)
    void (*after_update)(void *ctx); // called after every optimiser step (NULL: nothing)
    void *after_ctx;
    // X-CLIP's loss (train_step_run): the model and, when its text tower trains, the class tokens
    XClip *m;                 // borrowed
    const int32_t *tokens;    // (K, S)
    int64_t K, S;
} TrainStep;

void train_step_init_groups(TrainStep *s, ParamStore *ps, AdamWConfig ac, StepGroups groups, LrSchedule sched, int accum,
                            uint64_t seed, bool drop_on);
// X-CLIP: train_step_init_groups with xclip_step_groups(new_lr_scale), and the model for train_step_run.
void train_step_init(TrainStep *s, XClip *m, ParamStore *ps, AdamWConfig ac, double new_lr_scale, LrSchedule sched,
                     int accum, uint64_t seed, bool drop_on);
void train_step_free(TrainStep *s);
// Class tokens for the text tower (needed when fix_text is off; ignored otherwise). Borrowed.
void train_step_set_tokens(TrainStep *s, const int32_t *tokens, int64_t K, int64_t S);
// Start of an epoch: gradients cleared (a partial accumulation left by the previous epoch is dropped, as the
// official loop's optimizer.zero_grad() at epoch start).
void train_step_epoch_begin(TrainStep *s);
// Data-parallel training over the ranks of train/dist.h (after train_step_init, dist_size() > 1): each step takes
// one micro-batch per rank (accum of them with accumulation); the gradients are summed across the ranks during
// the step's last backward and AdamW runs on each bucket once its sum is in. Not with fused AdamW.
// bucket_bytes: see dist.h.
void train_step_distribute(TrainStep *s, size_t bucket_bytes);
// One micro-batch: loss = fn(ctx, g, drop); backward of loss / (accum x ranks); when (idx + 1) % (accum x ranks)
// == 0 the optimiser steps with the lagged rate (see schedule.h), after_update runs, and the rate of iteration t
// is computed for the next step. Returns the loss (not divided); *stepped (may be NULL) says whether the
// optimiser stepped. idx and t count micro-batches of all ranks: with N ranks, each call covers the N
// micro-batches idx - N + 1 .. idx of the epoch (this rank's is idx - N + 1 + rank, which keys its drop-path
// stream), the same numbering as one process accumulating N.
float train_step_run_loss(TrainStep *s, StepLossFn fn, void *ctx, int64_t idx, int64_t t, bool *stepped);
// X-CLIP's micro-batch: video (B, T, 3, H, H) normalised (borrowed, not modified), targets (B, K) soft targets;
// the loss is the soft-target cross-entropy averaged over the batch.
float train_step_run(TrainStep *s, const float *video, int B, const float *targets, int64_t idx, int64_t t, bool *stepped);
// Scale-1 rate the next optimiser step will use.
double train_step_next_lr(const TrainStep *s);
// Position the schedule after a resume at (epoch, iter_in_epoch) of n_iter batches per epoch, the optimiser
// having done opt.step steps.
void train_step_resume_at(TrainStep *s, int64_t epoch, int64_t iter_in_epoch, int64_t n_iter);
