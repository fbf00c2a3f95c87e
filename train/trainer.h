// trainer.h - X-CLIP fine-tuning and evaluation (SPEC.md §6, §8-§10): the optimisation step, the evaluation
// loop, model building from a config, and the whole run behind `xclip-train CONFIG`.
//
//   TrainConfig c; config_load(&c, "configs/demo.ini", &err); config_check(&c, CONFIG_FOR_TRAIN, &err);
//   TrainRunOptions o = {0};                 // o.init = weights to start from (--init)
//   int rc = train_run(&c, &o, &err);        // writes c.dir/{config.ini, log.txt, metrics.jsonl, best.safetensors,
//                                            // last.safetensors, snap-*.h5}; TRAIN_EXIT_STOPPED after SIGINT/SIGTERM
//
// The step on its own (tests, other drivers):
//   TrainStep s;
//   train_step_init(&s, &m, &ps, adamw_cfg, 10.0, lr_schedule_from_epochs(...), accum, seed, drop_path_on);
//   for (epoch) { train_step_epoch_begin(&s);
//       for (idx, batch) loss = train_step_run(&s, batch->video, B, batch->targets, idx, epoch * n_iter + idx, NULL); }
//
// Memory: the step wraps the loader's batch in place (no copy); activations live in the Graph's step arena,
// reset after every micro-batch, so from the second step on a training step allocates nothing.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "data/dataset.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "nn/xclip.h"
#include "optim/adamw.h"
#include "train/config.h"
#include "train/schedule.h"
#include "train/signals.h"

// ---- the optimisation step ----------------------------------------------------------------------------
typedef struct TrainStep {
    XClip *m;                 // borrowed
    ParamStore *ps;           // borrowed
    AdamW opt;
    Graph g;
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

// ---- evaluation -----------------------------------------------------------------------------------
typedef struct EvalResult {
    int64_t n;                // videos
    double top1, top5;        // % of videos
    double mean_class;        // % mean over classes present of per-class top-1
    int views;                // clips x crops per video
} EvalResult;

typedef struct EvalOutput {   // optional per-video outputs (arrays of n, allocated by evaluate)
    float *probs;             // (n, K) summed softmax probabilities over the views
    int32_t *labels;          // (n)
    int64_t *items;           // (n) dataset index
} EvalOutput;

// Run the model over one pass of a test-mode loader (views = clips x crops per video): softmax of every view's
// logits summed per video. chunk = clips per forward pass (memory bound). tokens (K, S): the class texts; with
// fix_text they must already be cached (xclip_cache_text), without it their features are computed once here
// (no gradient) and used for the whole pass. progress: a progress bar on stdout. out may be NULL.
int evaluate(XClip *m, Graph *g, Loader *ld, int64_t n_videos, const int32_t *tokens, int K, int64_t S, int chunk,
             bool progress, EvalResult *res, EvalOutput *out, XcError *err);
void eval_output_free(EvalOutput *o);

// ---- building blocks shared by the programs ------------------------------------------------------
// Tokens (K, S) of the class texts (template with {} replaced by each name). Returns a new array.
int32_t *class_tokens(Tokenizer *tok, const LabelSet *labels, const char *template_, int64_t S);
// The model a config describes: weights from `weights` (CLIP or X-CLIP; NULL: c->pretrained, which may be
// "none" for random initialisation from c->seed), frames c->frames, fix_text / drop_path from c. For CLIP weights
// the X-CLIP additions are initialised as SPEC.md §7 from c->seed. *is_xclip (may be NULL) says which kind
// was loaded. XC_ERR + a message naming the file or the key.
int model_build(XClip *m, ParamStore *ps, const TrainConfig *c, const char *weights, bool *is_xclip, XcError *err);
// Loader configuration of the train / test pipeline from c.
LoaderConfig loader_config_train(const TrainConfig *c, int num_classes);
LoaderConfig loader_config_test(const TrainConfig *c, int num_clip, int num_crop, int batch);

// ---- the whole run ------------------------------------------------------------------------------------
typedef struct TrainRunOptions {
    const char *init;         // --init: weights loaded over the model before training (NULL: none)
    const char *resume;       // --resume PATH or auto (NULL: none): continue from a snapshot
    const char *config_text;  // NULL: the effective config is written from the struct
} TrainRunOptions;

// Exit status for a run stopped by a signal after a snapshot was written (resume it with --resume auto).
#define TRAIN_EXIT_STOPPED XC_EXIT_SNAPSHOT_STOP
// 0 on success; XC_ERR + err on failure; TRAIN_EXIT_STOPPED when stopped on request.
int train_run(const TrainConfig *c, const TrainRunOptions *o, XcError *err);
