// test_gradcheck.c - finite-difference gradient check of every op, driven by the table in op_cases.h.
//
// loss = sum_i r_i out_i (fixed random r, accumulated in double; r_i = 0 where out_i is -inf).
// Analytic gradients come from two backward passes of each case:
//   fresh       the inputs have no gradient yet (kernels that may overwrite a buffer they start, do);
//   accumulate  every input gradient is pre-filled with noise in [-1, 1] and the noise is subtracted (in double)
//               afterwards: backward kernels must accumulate (+=), and one that overwrites (=) is off by O(1).
// Numeric gradient of every input element (the cases are small): central differences with the loss in double
// and the true float32 step in the denominator, D(h) = (loss(x+) - loss(x-)) / (x+ - x-), x+- = float(x +- h),
// Richardson-extrapolated: N = (4 D(h) - D(2h)) / 3 (truncation error O(h^4)). The ops are float32, so the loss
// carries rounding noise of ~1e-7 of its terms, divided by the step; the step h of each op (TOLS) was the best of
// 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5 over 10 input seeds. Ops linear in each input have no truncation error at all
// and take h = 0.5, which leaves their error at float32 rounding (~1e-7 for gradients of ~1).
//
// Tolerance, per op, on |analytic - numeric| (fresh and accumulate alike): 5x the worst error of the op's cases at
// this test's inputs (seed 1234), worst over OpenBLAS core types SkylakeX (this machine, AVX-512), Haswell, Zen,
// Sandybridge and Prescott (OPENBLAS_CORETYPE=...: the GEMM kernels round differently), rounded up to two digits;
// never below 5e-7, about 2 ulp of the pre-filled gradients (noise + gradient rounds to float32 before the noise
// is taken off again), which is the floor for ops whose gradient is exact. The test prints each case's error and its tolerance / error ratio and the worst error per op.
// Fails when an op in XC_OPS (or op_checkpoint) has no case or no tolerance, and when an input gets no gradient.
#include "test_util.h"
#include "op_cases.h"

#define SEED 1234 // inputs and r; the pre-filled noise comes from SEED + 1

typedef struct OpTol {
    const char *op;
    double h;    // finite-difference step
    double tol;  // on |analytic - numeric|
    double worst; // measured here: worst error over the op's cases
} OpTol;

// Worst error measured (seed 1234, worst of the 5 core types) -> tolerance = 5x that, rounded up to 2 digits.
static OpTol TOLS[] = {
    {"matmul", 0.5, 1.4e-6, 0},          // 2.6e-7
    {"linear", 0.5, 1.6e-6, 0},          // 3.1e-7
    {"add", 0.5, 6e-7, 0},               // 1.2e-7 (noise rounding)
    {"sub", 0.5, 7.7e-7, 0},             // 1.5e-7
    {"mul", 0.5, 5.3e-7, 0},             // 1.1e-7
    {"scale", 0.5, 5.1e-7, 0},           // 1.0e-7
    {"exp", 5e-2, 6.4e-6, 0},            // 1.3e-6
    {"sum", 0.5, 5e-7, 0},               // exact: floor
    {"mean", 0.5, 5e-7, 0},              // 4.9e-8: floor
    {"reshape", 0.5, 5e-7, 0},           // exact: floor
    {"permute", 0.5, 5e-7, 0},           // exact: floor
    {"concat", 0.5, 5e-7, 0},            // exact: floor
    {"slice", 0.5, 5e-7, 0},             // exact: floor
    {"gather_rows", 0.5, 5e-7, 0},       // exact: floor
    {"embedding", 0.5, 5e-7, 0},         // exact: floor
    {"layernorm", 2e-2, 5.6e-5, 0},      // 1.1e-5
    {"softmax", 5e-2, 7.6e-6, 0},        // 1.5e-6
    {"log_softmax", 0.1, 1.6e-5, 0},     // 3.1e-6
    {"quick_gelu", 5e-2, 5.6e-6, 0},     // 1.1e-6
    {"attention", 5e-2, 1.1e-5, 0},      // 2.2e-6
    {"mha", 5e-2, 1.8e-4, 0},            // 3.5e-5 (in_proj, attention, out_proj: larger values, a longer chain)
    {"cross_attention", 0.1, 3.4e-6, 0}, // 6.7e-7
    {"patch_embed", 0.5, 7.7e-6, 0},     // 1.5e-6
    {"l2_normalize", 2e-2, 1.8e-5, 0},   // 3.5e-6
    {"soft_cross_entropy", 0.1, 9.5e-7, 0}, // 1.9e-7
    {"dropout", 0.5, 5.8e-7, 0},         // 1.2e-7
    {"drop_path", 0.5, 6e-7, 0},         // 1.2e-7 (noise rounding)
    {"checkpoint", 5e-2, 1.1e-5, 0},     // 2.0e-6
    {"layernorm_linear", 2e-2, 1.9e-4, 0}, // 3.7e-5 (layernorm's error through a linear)
    {"quick_gelu_linear", 5e-2, 1.3e-5, 0}, // 2.6e-6
};
#define N_TOLS ((int)(sizeof TOLS / sizeof TOLS[0]))

static OpTol *op_tol(const char *op) {
    for (int i = 0; i < N_TOLS; i++)
        if (!strcmp(TOLS[i].op, op)) return &TOLS[i];
    return NULL;
}

static double weighted_sum(const Tensor *out, const float *r) {
    double s = 0;
    for (int64_t i = 0; i < out->numel; i++)
        if (r[i] != 0.0f) s += (double)r[i] * out->data[i];
    return s;
}

static double loss_at(const OpCase *c, Graph *fd, Tensor **in, const float *r) {
    double l = weighted_sum(c->fn(fd, in), r);
    graph_reset(fd);
    return l;
}

// (loss(x+) - loss(x-)) / (x+ - x-) for the input element *xj (restored afterwards).
static double central_diff(const OpCase *c, Graph *fd, Tensor **in, const float *r, float *xj, double h) {
    float x0 = *xj, xp = (float)((double)x0 + h), xm = (float)((double)x0 - h);
    *xj = xp;
    double lp = loss_at(c, fd, in, r);
    *xj = xm;
    double lm = loss_at(c, fd, in, r);
    *xj = x0;
    return (lp - lm) / ((double)xp - (double)xm);
}

static double numeric_grad(const OpCase *c, Graph *fd, Tensor **in, const float *r, float *xj, double h) {
    double d1 = central_diff(c, fd, in, r, xj, h), d2 = central_diff(c, fd, in, r, xj, 2 * h);
    return (4 * d1 - d2) / 3;
}

// One backward pass on copies of the inputs; grads[i] gets input i's gradient (zeros where none arrived). With
// prefill, every input gradient starts as noise, subtracted again afterwards.
static void analytic(const OpCase *c, float *const *data, const float *r, bool prefill, double **grads) {
    Graph g;
    graph_init(&g, 1 << 20);
    Rng rng = rng_stream(SEED + 1, RNG_STREAM_TEST);
    Tensor *in[MAXIN] = {0};
    float *noise[MAXIN] = {0};
    for (int i = 0; i < c->n_in; i++) {
        in[i] = tensor_from(&g, c->ndim[i], c->shape[i], data[i]);
        in[i]->requires_grad = true;
        if (prefill) {
            size_t bytes = (size_t)in[i]->numel * sizeof(float);
            noise[i] = arena_alloc(&g.step, bytes);
            rng_fill_uniform(&rng, noise[i], in[i]->numel, -1.0f, 1.0f);
            in[i]->grad = arena_alloc(&g.step, bytes);
            memcpy(in[i]->grad, noise[i], bytes);
        }
    }
    graph_backward_from(&g, c->fn(&g, in), r);
    for (int i = 0; i < c->n_in; i++)
        for (int64_t j = 0; j < in[i]->numel; j++)
            grads[i][j] = (in[i]->grad ? (double)in[i]->grad[j] : 0.0) - (prefill ? (double)noise[i][j] : 0.0);
    graph_free(&g);
}

// Compares both analytic gradients of every element of every input with the numeric one; returns the worst error.
static double check_case(const OpCase *c, const OpTol *t) {
    Graph g, fd;
    graph_init(&g, 1 << 20);
    graph_init(&fd, 1 << 20);
    graph_set_grad(&fd, false);
    Rng rng = rng_stream(SEED, RNG_STREAM_TEST);
    Tensor *in[MAXIN] = {0};
    float *data[MAXIN] = {0};
    double *fresh[MAXIN] = {0}, *acc[MAXIN] = {0};
    for (int i = 0; i < c->n_in; i++) {
        in[i] = tensor_new(&g, c->ndim[i], c->shape[i]);
        rng_fill_uniform(&rng, in[i]->data, in[i]->numel, c->positive ? 0.5f : -1.0f, c->positive ? 1.5f : 1.0f);
        data[i] = in[i]->data;
        fresh[i] = malloc((size_t)in[i]->numel * sizeof(double));
        acc[i] = malloc((size_t)in[i]->numel * sizeof(double));
    }
    Tensor *out = c->fn(&fd, in);
    float *r = arena_alloc(&g.step, (size_t)out->numel * sizeof(float));
    rng_fill_uniform(&rng, r, out->numel, -1.0f, 1.0f);
    for (int64_t i = 0; i < out->numel; i++) // masked log-probabilities (-inf) are constants: leave them out
        if (!isfinite(out->data[i])) r[i] = 0.0f;
    graph_reset(&fd);
    analytic(c, data, r, false, fresh);
    analytic(c, data, r, true, acc);

    const double tol = t ? t->tol : 0; // no tolerance: every entry fails
    const double h = t ? t->h : 1e-2;
    int bad = 0;
    double worst = 0, nmax = 0;
    int64_t checked = 0;
    for (int i = 0; i < c->n_in; i++) {
        double amax = 0;
        for (int64_t j = 0; j < in[i]->numel; j++) {
            double num = numeric_grad(c, &fd, in, r, &in[i]->data[j], h);
            const double ana[2] = {fresh[i][j], acc[i][j]};
            for (int k = 0; k < 2; k++) {
                double err = fabs(ana[k] - num);
                if (err > worst || err != err) worst = err;
                if (!(err <= tol)) {
                    if (bad < 4)
                        fprintf(stderr, "  %s input %d [%lld] (%s): analytic %.9g numeric %.9g, |err| %.3g > tol %.2g\n", c->id,
                                i, (long long)j, k ? "accumulate" : "fresh", ana[k], num, err, tol);
                    bad++;
                }
            }
            nmax = fmax(nmax, fabs(num));
            amax = fmax(amax, fabs(fresh[i][j]));
            checked += 2;
        }
        XC_EXPECT(amax > 0, "%s: input %d received no gradient", c->id, i);
    }
    XC_EXPECT(bad == 0, "%s: %d of %lld gradient entries (fresh and accumulate) off: max |err| %.3g, tol %.2g", c->id, bad,
              (long long)checked, worst, tol);
    printf("  %-20s %-18s %5lld  %9.2e  %9.2e  %7.1e  %7.1f\n", c->id, c->op, (long long)checked, nmax, worst, tol,
           worst > 0 ? tol / worst : INFINITY);
    for (int i = 0; i < c->n_in; i++) {
        free(fresh[i]);
        free(acc[i]);
    }
    graph_free(&fd);
    graph_free(&g);
    return worst;
}

int main(void) {
    printf("  %-20s %-18s %5s  %9s  %9s  %7s  %7s\n", "case", "op", "grads", "max |num|", "max |err|", "tol", "tol/err");
    for (int i = 0; i < n_op_cases; i++) {
        OpTol *t = op_tol(op_cases[i].op);
        XC_EXPECT(t != NULL, "case %s: op %s has no gradient check tolerance", op_cases[i].id, op_cases[i].op);
        double w = check_case(&op_cases[i], t);
        if (t) t->worst = fmax(t->worst, w);
    }
    printf("  worst error per op (tolerance):\n");
    for (int i = 0; i < N_TOLS; i++) {
        char ratio[32] = "exact";
        if (TOLS[i].worst > 0) snprintf(ratio, sizeof ratio, "%.1fx", TOLS[i].tol / TOLS[i].worst);
        printf("    %-18s %9.2e (tol %.1e, %5s)%s", TOLS[i].op, TOLS[i].worst, TOLS[i].tol, ratio, i % 2 ? "\n" : "");
    }
    if (N_TOLS % 2) printf("\n");
    // every op has at least one case
#define XC_HAS_CASE(name)                                                                 \
    {                                                                                     \
        bool found = false;                                                               \
        for (int i = 0; i < n_op_cases; i++) found |= strcmp(op_cases[i].op, #name) == 0; \
        XC_EXPECT(found, "op %s has no gradient check case", #name);                      \
    }
    XC_OPS(XC_HAS_CASE)
    XC_HAS_CASE(checkpoint)
    return xc_test_summary("test_gradcheck");
}
