// adamw.c - see adamw.h. Per element, as torch.optim.AdamW (foreach=False) computes it:
//   p *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#include "optim/adamw.h"
#include "autograd/kernels.h"

#include <math.h>
#include <string.h>

void adamw_init(AdamW *opt, ParamStore *ps, AdamWConfig cfg) {
    memset(opt, 0, sizeof *opt);
    opt->cfg = cfg;
    opt->ps = ps;
    opt->offset = xc_malloc((size_t)(ps->n ? ps->n : 1) * sizeof(int64_t));
    opt->group = xc_calloc((size_t)(ps->n ? ps->n : 1), sizeof(int));
    opt->n_groups = 1;
    opt->last_lr = xc_calloc((size_t)(ps->n ? ps->n : 1), sizeof(float));
    opt->decay = xc_malloc((size_t)(ps->n ? ps->n : 1) * sizeof(bool));
    opt->updated = xc_calloc((size_t)(ps->n ? ps->n : 1), sizeof(int64_t));
    int64_t off = 0;
    for (int i = 0; i < ps->n; i++) { // moments only for parameters that train now (frozen: offset -1)
        opt->offset[i] = ps->p[i]->requires_grad ? off : -1;
        if (ps->p[i]->requires_grad) off += ps->p[i]->numel;
        opt->decay[i] = true;
    }
    opt->numel = off;
    opt->m = xc_calloc((size_t)(off ? off : 1), sizeof(float));
    opt->v = xc_calloc((size_t)(off ? off : 1), sizeof(float));
}

void adamw_free(AdamW *opt) {
    xc_free(opt->m);
    xc_free(opt->v);
    xc_free(opt->offset);
    xc_free(opt->group);
    xc_free(opt->last_lr);
    xc_free(opt->decay);
    xc_free(opt->updated);
    memset(opt, 0, sizeof *opt);
}

OptimState adamw_state(AdamW *opt) {
    return (OptimState){.ps = opt->ps, .step = &opt->step, .total = opt->numel, .beta1 = opt->cfg.beta1,
                        .beta2 = opt->cfg.beta2, .eps = opt->cfg.eps, .weight_decay = opt->cfg.weight_decay,
                        .last_lr = opt->last_lr, .decay = opt->decay, .m = opt->m, .v = opt->v, .offset = opt->offset,
                        .restored = &opt->moments_restored};
}

void adamw_set_group(AdamW *opt, int i, int group, bool decay) {
    XC_CHECK(i >= 0 && i < opt->ps->n, "adamw_set_group: no parameter %d", i);
    XC_CHECK(group >= 0 && group < ADAMW_MAX_GROUPS, "adamw_set_group: group %d of parameter %d", group, i);
    opt->group[i] = group;
    opt->decay[i] = decay;
    if (group + 1 > opt->n_groups) opt->n_groups = group + 1;
}

void adamw_begin_step(AdamW *opt, const float *lr) {
    opt->step++;
    opt->begun++;
    for (int g = 0; g < opt->n_groups; g++) opt->lr[g] = lr[g];
    // scalars in double, as torch computes them in Python before the float32 tensor ops
    opt->bc1 = 1.0 - pow((double)opt->cfg.beta1, (double)opt->step);
    opt->bc2_sqrt = (float)sqrt(1.0 - pow((double)opt->cfg.beta2, (double)opt->step));
}

typedef struct UpdateScalars {
    float b1, b2, eps, bc2_sqrt, decay, step_size;
    bool fresh; // the parameter's first update, its moments still the zeros adamw_init gave them
} UpdateScalars;

// Elements [0, n) of one parameter. fresh: its moments are known to be zero (its first update), so they are
// written without being read: the same values, but their pages, never touched yet, fault once (written) instead
// of twice (read: the shared zero page; then written: a copy, and a TLB flush on every core).
static inline __attribute__((always_inline)) void update_elems(UpdateScalars k, bool fresh, float *w, float *m, float *v,
                                                               const float *gr, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        float g = gr ? gr[j] : 0.0f;
        w[j] *= k.decay;
        m[j] = k.b1 * (fresh ? 0.0f : m[j]) + (1.0f - k.b1) * g;
        v[j] = k.b2 * (fresh ? 0.0f : v[j]) + (1.0f - k.b2) * g * g;
        w[j] -= k.step_size * m[j] / (sqrtf(v[j]) / k.bc2_sqrt + k.eps);
    }
}

// A thread's share of one parameter (an XC_CLONES function, so that it vectorises to the CPU), one loop per case.
XC_CLONES static void update_part(UpdateScalars k, float *w, float *m, float *v, const float *gr, int64_t n) {
    if (k.fresh) update_elems(k, true, w, m, v, gr, n);
    else update_elems(k, false, w, m, v, gr, n);
}

// One parameter's update with gradient gr (NULL: a zero gradient, exactly as a buffer of zeros would give).
static void update(AdamW *opt, int i, const float *gr) {
    Tensor *p = opt->ps->p[i];
    const double lr = (double)opt->lr[opt->group[i]];
    const UpdateScalars k = {.b1 = opt->cfg.beta1, .b2 = opt->cfg.beta2, .eps = opt->cfg.eps, .bc2_sqrt = opt->bc2_sqrt,
                             .decay = opt->decay[i] ? (float)(1.0 - lr * opt->cfg.weight_decay) : 1.0f,
                             .step_size = (float)(lr / opt->bc1), .fresh = opt->updated[i] == 0 && !opt->moments_restored};
    float *w = p->data, *m = opt->m + opt->offset[i], *v = opt->v + opt->offset[i];
    const int64_t n = p->numel;
#pragma omp parallel if (n >= XC_PAR_MIN)
    {
        XC_SHARE(n, lo, len);
        update_part(k, w + lo, m + lo, v + lo, gr ? gr + lo : NULL, len);
    }
    opt->updated[i] = opt->begun;
    opt->last_lr[i] = opt->lr[opt->group[i]];
}

static bool trains(const AdamW *opt, int i) { return opt->ps->p[i]->requires_grad && opt->offset[i] >= 0; }

void adamw_update(AdamW *opt, int i) {
    if (trains(opt, i) && opt->ps->p[i]->grad && opt->updated[i] != opt->begun) update(opt, i, opt->ps->p[i]->grad);
}

void adamw_end_step(AdamW *opt) {
    for (int i = 0; i < opt->ps->n; i++)
        if (trains(opt, i) && opt->updated[i] != opt->begun) update(opt, i, NULL);
}

void adamw_step(AdamW *opt, const float *lr) {
    adamw_begin_step(opt, lr);
    for (int i = 0; i < opt->ps->n; i++) adamw_update(opt, i);
    adamw_end_step(opt);
}

static void adamw_param_ready(void *ctx, Tensor *p) { adamw_update(ctx, p->index); }

void adamw_fuse(AdamW *opt, Graph *g) {
    g->param_ready = adamw_param_ready;
    g->param_ready_ctx = opt;
}
