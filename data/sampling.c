// sampling.c - frame index sampling, see sampling.h.
#include "data/sampling.h"

#include <math.h>
#include "autograd/util.h"

static int64_t wrap(int64_t i, int64_t n) { int64_t m = i % n; return m < 0 ? m + n : m; }

void sample_train_with(int64_t n, int T, const int64_t *offsets, int64_t *idx) {
    XC_CHECK(n > 0 && T > 0, "sample_train: n = %lld, T = %d", (long long)n, T);
    int64_t a = n / T;
    if (a > 0) {
        for (int t = 0; t < T; t++) {
            XC_CHECK(offsets[t] >= 0 && offsets[t] < a, "sample_train: offset %lld outside [0, %lld)",
                     (long long)offsets[t], (long long)a);
            idx[t] = wrap((int64_t)t * a + offsets[t], n);
        }
    } else {
        double ratio = ((double)n - 1.0 + 1.0) / (double)T; // numpy: (num_frames - ori_clip_len + 1.0) / num_clips
        for (int t = 0; t < T; t++) idx[t] = wrap((int64_t)nearbyint((double)t * ratio), n);
    }
}

void sample_train(int64_t n, int T, Rng *r, int64_t *idx) {
    XC_CHECK(n > 0 && T > 0 && T <= 4096, "sample_train: n = %lld, T = %d", (long long)n, T);
    int64_t a = n / T, off[4096];
    for (int t = 0; t < T; t++) off[t] = a > 0 ? (int64_t)rng_below(r, (uint64_t)a) : 0;
    sample_train_with(n, T, off, idx);
}

void sample_test(int64_t n, int T, int64_t *idx) { sample_test_views(n, T, 1, SAMPLE_VIEWS_SHIFTED, NULL, idx); }

void sample_test_views(int64_t n, int T, int V, SampleViews mode, Rng *r, int64_t *idx) {
    XC_CHECK(n > 0 && T > 0 && V > 0, "sample_test_views: n = %lld, T = %d, V = %d", (long long)n, T, V);
    if (mode == SAMPLE_VIEWS_RANDOM) {
        XC_CHECK(r, "sample_test_views: random views need an Rng");
        for (int v = 0; v < V; v++) sample_train(n, T, r, idx + (int64_t)v * T);
        return;
    }
    double a = (double)n / (double)T; // numpy: (num_frames - 1 + 1) / float(num_clips)
    for (int v = 0; v < V; v++)
        for (int t = 0; t < T; t++) {
            // V = 1: floor(t*a + a/2.0) exactly as mmaction2 (base_offsets + avg_interval / 2.0).astype(int)
            double shift = V == 1 ? a / 2.0 : a * ((double)v + 0.5) / (double)V;
            idx[(int64_t)v * T + t] = wrap((int64_t)floor((double)t * a + shift), n);
        }
}
