// optim_state.h - an optimiser's state as a snapshot sees it: what must be saved to resume bitwise,
// without the optimiser's type or its private bookkeeping.
//
// The optimiser fills an OptimState with views of its own storage (adamw_state in optim/adamw.h):
// scalars by value, the step, per-parameter settings and moments through borrowed pointers. A snapshot
// (checkpoints/snapshot.h) writes what the view shows and restores the step, settings and moments
// through the same pointers (the hyper-parameters are stored for the record only; a run takes them from
// its config). The view is valid as long as the optimiser lives; it owns nothing and needs no freeing.
// A zero OptimState ({0}: ps NULL) means "no optimiser".
//
//   AdamW opt;
//   adamw_init(&opt, &ps, (AdamWConfig){.beta1 = 0.9f, .beta2 = 0.98f, .eps = 1e-8f, .weight_decay = 0.001f});
//   OptimState os = adamw_state(&opt);                      // a view: nothing copied, nothing to free
//   printf("step %lld, %lld floats per moment\n", (long long)*os.step, (long long)os.total);
//   for (int i = 0; i < os.ps->n; i++) {
//       const float *m = optim_state_moment(&os, 0, i);     // NULL: parameter i has no moments (frozen)
//       if (m) printf("%s: last lr %g, decay %d, m[0] = %g\n", os.ps->p[i]->name, os.last_lr[i], os.decay[i], m[0]);
//   }
//   SnapshotState st = {.params = &ps, .opt = os, ...};     // checkpoints/snapshot.h saves and restores it
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "autograd/tensor.h"

typedef struct OptimState {
    const ParamStore *ps;     // the parameters the state belongs to (n = ps->n); NULL: no optimiser
    int64_t *step;            // updates done so far
    int64_t total;            // floats in m and in v: the numel of every parameter that has moments
    float beta1, beta2, eps, weight_decay; // hyper-parameters, for the record (a snapshot stores them)
    float *last_lr;           // (n) the rate of each parameter's latest update (for the record)
    bool *decay;              // (n) weight decay on / off, per parameter
    float *m, *v;             // (total) first and second moments, parameter after parameter
    const int64_t *offset;    // (n) where parameter i's moments start in m and v; -1: it has none
    bool *restored;           // set by whoever writes m and v (snapshot_load); NULL: nobody to tell
} OptimState;

// Moment k (0: m, 1: v) of parameter i, numel floats; NULL when the parameter has no moments.
static inline float *optim_state_moment(const OptimState *s, int k, int i) {
    if (s->offset[i] < 0) return NULL;
    return (k ? s->v : s->m) + s->offset[i];
}
