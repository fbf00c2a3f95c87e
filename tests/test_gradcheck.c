// test_gradcheck.c - finite-difference gradient check of every op, driven by the table in op_cases.h.
//
// loss = sum_i r_i out_i (fixed random r, accumulated in double; r_i = 0 where out_i is -inf). For each input element (all of
// them: the cases are small) the central difference (loss(x+h) - loss(x-h)) / 2h with h = 1e-2 is
// compared with the analytic gradient: |analytic - numeric| <= 2e-3 + 2e-2 |numeric|.
// Float32 forward passes bound the numeric gradient's accuracy at about 1e-4 relative, so these
// tolerances leave a margin of ~10x while still failing on any wrong term (errors are O(1)).
// The check also fails when an op in XC_OPS has no case in the table.
#include "test_util.h"
#include "op_cases.h"

#define H 1e-2f
#define ATOL 2e-3
#define RTOL 2e-2

static double weighted_sum(const Tensor *out, const float *r) {
    double s = 0;
    for (int64_t i = 0; i < out->numel; i++)
        if (r[i] != 0.0f) s += (double)r[i] * out->data[i];
    return s;
}

static void check_case(const OpCase *c) {
    Graph g, fd;
    graph_init(&g, 1 << 20);
    graph_init(&fd, 1 << 20);
    Rng rng = rng_stream(1234, RNG_STREAM_TEST);
    Tensor *in[MAXIN] = {0};
    for (int i = 0; i < c->n_in; i++) {
        in[i] = tensor_new(&g, c->ndim[i], c->shape[i]);
        rng_fill_uniform(&rng, in[i]->data, in[i]->numel, c->positive ? 0.5f : -1.0f, c->positive ? 1.5f : 1.0f);
        in[i]->requires_grad = true;
    }
    Tensor *out = c->fn(&g, in);
    float *r = arena_alloc(&g.step, (size_t)out->numel * sizeof(float));
    rng_fill_uniform(&rng, r, out->numel, -1.0f, 1.0f);
    for (int64_t i = 0; i < out->numel; i++) // masked log-probabilities (-inf) are constants: leave them out
        if (!isfinite(out->data[i])) r[i] = 0.0f;
    graph_backward_from(&g, out, r);

    int bad = 0;
    double worst = 0;
    int64_t checked = 0;
    graph_set_grad(&fd, false);
    for (int i = 0; i < c->n_in; i++) {
        for (int64_t j = 0; j < in[i]->numel; j++) {
            float orig = in[i]->data[j];
            in[i]->data[j] = orig + H;
            double lp = weighted_sum(c->fn(&fd, in), r);
            graph_reset(&fd);
            in[i]->data[j] = orig - H;
            double lm = weighted_sum(c->fn(&fd, in), r);
            graph_reset(&fd);
            in[i]->data[j] = orig;
            double num = (lp - lm) / (2.0 * H);
            double ana = in[i]->grad ? in[i]->grad[j] : 0.0;
            double err = fabs(ana - num);
            if (err > worst) worst = err;
            checked++;
            if (!(err <= ATOL + RTOL * fabs(num))) {
                if (bad < 4) fprintf(stderr, "  %s input %d [%lld]: analytic %.6g numeric %.6g\n", c->id, i, (long long)j, ana, num);
                bad++;
            }
        }
    }
    XC_EXPECT(bad == 0, "%s: %d of %lld gradient entries off (max abs err %.3g)", c->id, bad, (long long)checked, worst);
    printf("  %-22s %-18s %5lld entries  max |err| %.2e\n", c->id, c->op, (long long)checked, worst);
    graph_free(&fd);
    graph_free(&g);
}

int main(void) {
    for (int i = 0; i < n_op_cases; i++) check_case(&op_cases[i]);
    // every op has at least one case
#define XC_HAS_CASE(name)                                                             \
    {                                                                                 \
        bool found = false;                                                           \
        for (int i = 0; i < n_op_cases; i++) found |= strcmp(op_cases[i].op, #name) == 0; \
        XC_EXPECT(found, "op %s has no gradient check case", #name);                  \
    }
    XC_OPS(XC_HAS_CASE)
    return xc_test_summary("test_gradcheck");
}
