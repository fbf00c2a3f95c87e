// test_op_parity.c - forward and backward of every op case against PyTorch (tests/fixtures/ops.h5,
// written by tests/ref/make_op_fixtures.py from a float64 reference on the same float32 inputs).
// Tolerance, elementwise for outputs and gradients: |c - ref| <= ATOL + RTOL |ref|, 5x (rounded up) the worst
// measured here and with OpenBLAS core types Haswell, Sandybridge and Prescott: ATOL 2.2e-6 from the worst
// |c - ref| of entries with |ref| < 0.1 (4.4e-7: mha_causal's output, where terms of ~4 cancel), RTOL 1e-5 from
// the worst |c - ref| / |ref| of the entries above (1.95e-6). One absolute floor serves every case: the inputs
// are drawn from [-1, 1], so every case has values of order 1 (the largest, mha_causal's, ~5).
// op_checkpoint is no PyTorch op (test_gradcheck checks its gradient; test_xclip_build a checkpointed model).
// dropout / drop_path masks come from our RNG, which PyTorch cannot replay: for them the mask is read
// back from the output and the output and gradient are checked against the formula PyTorch uses
// (x * mask / (1 - p)), plus that whole samples are dropped together for drop_path.
#include "test_util.h"
#include "h5_fixture.h"
#include "op_cases.h"

#define ATOL 2.2e-6
#define RTOL 1e-5

// Achieved: the worst |c - ref| of entries with |ref| < 0.1 and the worst |c - ref| / |ref| of the others.
typedef struct Achieved {
    double abs_small, rel_large;
    const char *abs_id, *rel_id;
} Achieved;
static Achieved worst_out, worst_grad;

static void achieved(Achieved *w, const char *id, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (isinf(b[i]) && a[i] == b[i]) continue;
        double d = fabs((double)a[i] - b[i]), r = fabs((double)b[i]);
        if (r < 0.1 && d > w->abs_small) { w->abs_small = d; w->abs_id = id; }
        if (r >= 0.1 && d / r > w->rel_large) { w->rel_large = d / r; w->rel_id = id; }
    }
}

static void parity_case(hid_t f, const OpCase *c) {
    char name[128];
    Graph g;
    graph_init(&g, 1 << 20);
    Tensor *in[MAXIN] = {0};
    float *bufs[2 * MAXIN + 2] = {0};
    int nb = 0, nd;
    int64_t dims[8];
    for (int i = 0; i < c->n_in; i++) {
        snprintf(name, sizeof name, "%s/in%d", c->id, i);
        float *x = bufs[nb++] = h5f_read(f, name, &nd, dims);
        XC_EXPECT(x != NULL, "fixture has no %s (re-run tests/ref/make_op_fixtures.py)", name);
        if (!x) goto done;
        in[i] = tensor_from(&g, c->ndim[i], c->shape[i], x);
        XC_EXPECT(shape_numel(nd, dims) == in[i]->numel, "%s: fixture shape differs from the case table", name);
        in[i]->requires_grad = true;
    }
    Tensor *out = c->fn(&g, in);
    snprintf(name, sizeof name, "%s/r", c->id);
    float *r = bufs[nb++] = h5f_read(f, name, &nd, dims);
    snprintf(name, sizeof name, "%s/out", c->id);
    float *ref = bufs[nb++] = h5f_read(f, name, &nd, dims);
    XC_EXPECT(r && ref && shape_numel(nd, dims) == out->numel, "%s: fixture output missing or of another size", c->id);
    if (!r || !ref || shape_numel(nd, dims) != out->numel) goto done;
    snprintf(name, sizeof name, "%s out", c->id);
    xc_expect_close(name, out->data, ref, out->numel, ATOL, RTOL);
    achieved(&worst_out, c->id, out->data, ref, out->numel);
    graph_backward_from(&g, out, r);
    for (int i = 0; i < c->n_in; i++) {
        snprintf(name, sizeof name, "%s/gin%d", c->id, i);
        float *gref = bufs[nb++] = h5f_read(f, name, &nd, dims);
        XC_EXPECT(gref != NULL, "fixture has no %s", name);
        if (!gref) continue;
        XC_EXPECT(in[i]->grad != NULL, "%s: no gradient reached input %d", c->id, i);
        if (!in[i]->grad) continue;
        snprintf(name, sizeof name, "%s grad in%d", c->id, i);
        xc_expect_close(name, in[i]->grad, gref, in[i]->numel, ATOL, RTOL);
        achieved(&worst_grad, c->id, in[i]->grad, gref, in[i]->numel);
    }
done:
    for (int i = 0; i < nb; i++) free(bufs[i]);
    graph_free(&g);
}

// dropout / drop-path against the formula, on a larger tensor so the drop rate can be checked too.
static void masked_formula(const char *what, bool per_sample, float p) {
    Graph g;
    graph_init(&g, 1 << 20);
    Rng rng = rng_stream(5, RNG_STREAM_TEST), drop = rng_stream(6, RNG_STREAM_DROP);
    int64_t shape[3] = {400, 5, 7};
    Tensor *x = tensor_new(&g, 3, shape);
    rng_fill_uniform(&rng, x->data, x->numel, 0.5f, 1.5f); // nonzero, so the mask can be read back
    x->requires_grad = true;
    Tensor *y = per_sample ? op_drop_path(&g, x, p, &drop) : op_dropout(&g, x, p, &drop);
    float *r = arena_alloc(&g.step, (size_t)y->numel * sizeof(float));
    rng_fill_uniform(&rng, r, y->numel, -1.0f, 1.0f);
    graph_backward_from(&g, y, r);
    int64_t kept = 0, bad = 0, per = per_sample ? 35 : 1;
    for (int64_t i = 0; i < x->numel; i++) {
        bool keep = y->data[i] != 0.0f, keep0 = y->data[(i / per) * per] != 0.0f;
        kept += keep;
        float want = keep ? x->data[i] / (1.0f - p) : 0.0f, gwant = keep ? r[i] / (1.0f - p) : 0.0f;
        if (fabsf(y->data[i] - want) > 1e-6f * fabsf(want) || fabsf(x->grad[i] - gwant) > 1e-6f * fabsf(gwant) + 1e-7f ||
            keep != keep0)
            bad++;
    }
    double rate = 1.0 - (double)kept / (double)x->numel;
    // 2800 elements (dropout) or 400 samples (drop-path): 5 sigma bounds on the drop rate
    double sigma = sqrt(p * (1 - p) / (double)(x->numel / per));
    XC_EXPECT(bad == 0, "%s: %lld elements differ from x * mask / (1 - p)", what, (long long)bad);
    XC_EXPECT(fabs(rate - p) < 5 * sigma, "%s: drop rate %.3f for p = %.2f", what, rate, p);
    printf("  %-22s formula ok on %lld elements, drop rate %.3f (p %.2f)\n", what, (long long)x->numel, rate, p);
    graph_free(&g);
}

int main(void) {
    char path[1024];
    hid_t f = H5Fopen(XC_FIXTURE("ops.h5", path), H5F_ACC_RDONLY, H5P_DEFAULT);
    XC_EXPECT(f >= 0, "cannot open %s", path);
    if (f < 0) return xc_test_summary("test_op_parity");
    int covered = 0;
    for (int i = 0; i < n_op_cases; i++) {
        const OpCase *c = &op_cases[i];
        if (!strcmp(c->op, "dropout") || !strcmp(c->op, "drop_path") || !strcmp(c->op, "checkpoint")) continue;
        parity_case(f, c);
        covered++;
    }
    H5Fclose(f);
    // every op has a parity case (dropout and drop_path: the formula check below)
#define XC_HAS_PARITY(name)                                                                    \
    {                                                                                          \
        bool found = !strcmp(#name, "dropout") || !strcmp(#name, "drop_path");                 \
        for (int i = 0; i < n_op_cases; i++) found |= strcmp(op_cases[i].op, #name) == 0;      \
        XC_EXPECT(found, "op %s has no PyTorch parity case", #name);                           \
    }
    XC_OPS(XC_HAS_PARITY)
    masked_formula("dropout", false, 0.3f);
    masked_formula("drop_path", true, 0.25f);
    printf("  %d cases against PyTorch (ATOL %.1e, RTOL %.1e)\n", covered, ATOL, RTOL);
    printf("    outputs:   worst |c - ref| where |ref| < 0.1 %.2e (%s), worst |c - ref| / |ref| elsewhere %.2e (%s)\n",
           worst_out.abs_small, worst_out.abs_id, worst_out.rel_large, worst_out.rel_id);
    printf("    gradients: worst |c - ref| where |ref| < 0.1 %.2e (%s), worst |c - ref| / |ref| elsewhere %.2e (%s)\n",
           worst_grad.abs_small, worst_grad.abs_id, worst_grad.rel_large, worst_grad.rel_id);
    return xc_test_summary("test_op_parity");
}
