// adamw.h - AdamW exactly as torch.optim.AdamW (decoupled weight decay, bias-corrected moments), with
// parameter groups (docs/model.md §9): each parameter belongs to a learning-rate group and has a weight-decay
// switch; every step gives each group its rate.
//
//   AdamW opt;
//   adamw_init(&opt, &params, (AdamWConfig){.beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f, .weight_decay = 0.001f});
//   adamw_set_group(&opt, i, 1, false);           // parameter i: group 1, no weight decay (default: group 0, decay)
//   ... backward ...
//   adamw_step(&opt, (float[]){lr, 10 * lr});     // one update of every trainable parameter at its group's rate
//   param_store_zero_grad(&params);
//
// Moments live in one allocation made at init (no allocation per step), for the parameters that are
// trainable at that moment only: freeze first, then create the optimiser. Updates are elementwise,
// so the result does not depend on the thread count.
#pragma once
#include "autograd/tensor.h"
#include "optim/optim_state.h"

typedef struct AdamWConfig {
    float beta1, beta2, eps, weight_decay;
} AdamWConfig;

#define ADAMW_MAX_GROUPS 4

typedef struct AdamW {
    AdamWConfig cfg;
    ParamStore *ps;
    float *m, *v;          // first and second moments, numel floats each, in parameter order
    int64_t numel;         // floats of the parameters that were trainable at adamw_init
    int64_t *offset;       // (n params) offset of each parameter in m and v; -1: frozen at init (no moments)
    int *group;            // (n params) learning-rate group, 0..ADAMW_MAX_GROUPS-1 (adamw_set_group; default 0)
    int n_groups;          // 1 + the largest group in use
    bool *decay;           // (n params) apply weight decay?
    float *last_lr;        // (n params) the rate of each parameter's latest update (for the record: snapshots keep it)
    int64_t *updated;      // (n params) the value of 'begun' when each parameter was last updated
    int64_t step;          // number of updates done (torch's per-parameter 'step', shared here; a restored
                           // snapshot sets it, backwards too)
    int64_t begun;         // steps begun by this AdamW (adamw_begin_step): never goes back, so a restore that
                           // sets an earlier step cannot make a parameter look updated already
    bool moments_restored; // m and v were written from outside (snapshot_load, through adamw_state): a parameter
                           // never updated here no longer has zero moments for sure
    float lr[ADAMW_MAX_GROUPS]; // rate of each group in the current step (adamw_begin_step)
    double bc1;            // 1 - beta1^step
    float bc2_sqrt;        // sqrt(1 - beta2^step)
} AdamW;

void adamw_init(AdamW *opt, ParamStore *ps, AdamWConfig cfg);
void adamw_free(AdamW *opt);
void adamw_set_group(AdamW *opt, int param_index, int group, bool decay);
// Every parameter that trains is updated once per step; one without a gradient buffer counts as a zero
// gradient (weight and moment decay still apply), exactly as a buffer of zeros would. lr holds the rate of
// every group a parameter belongs to (lr[g] for group g).
void adamw_step(AdamW *opt, const float *lr);  // = adamw_begin_step, adamw_update of every parameter, adamw_end_step
void adamw_begin_step(AdamW *opt, const float *lr);
void adamw_update(AdamW *opt, int param_index); // with its gradient, if it has one and is not updated yet
void adamw_end_step(AdamW *opt);                // zero-gradient updates of the parameters not updated this step
// Fused update: the graph's backward updates each parameter as soon as its gradient is complete, so
// with ParamStore.transient_grads no parameter keeps a gradient between steps (no gradient
// accumulation then). Per step: adamw_begin_step(opt, lr); forward; graph_backward; adamw_end_step(opt)
// (parameters the loss did not reach); no adamw_step.
// The arithmetic is adamw_step's, element for element: the same parameters result.
void adamw_fuse(AdamW *opt, Graph *g);

// What a snapshot saves of opt (optim/optim_state.h): a view of its step, groups and moments, valid while
// opt lives; restoring through it changes opt.
OptimState adamw_state(AdamW *opt);
