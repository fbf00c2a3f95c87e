// test_kernels.c - the fast kernels against their naive twins kept beside them: GEMM (OpenBLAS, all
// transpose combinations, odd sizes, padded leading dimensions, beta != 0), the attention head, the
// softmax row and its backward, LayerNorm, xc_expf, and XCLIP_PROFILE's GEMM accounting. Tolerance |fast - naive| <= 1e-5 + 1e-4 |naive| (naive accumulates in double).
#include "test_util.h"
#include "autograd/kernels.h"
#include "autograd/rng.h"
#include "autograd/tensor.h"

#include <sys/wait.h>
#include <unistd.h>

static float *rnd(Rng *r, int64_t n) {
    float *x = malloc((size_t)n * sizeof(float));
    rng_fill_uniform(r, x, n, -1.0f, 1.0f);
    return x;
}

static void test_gemm(void) {
    Rng r = rng_stream(3, RNG_STREAM_TEST);
    const int64_t sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {64, 50, 64}, {50, 64, 50}, {3, 129, 2}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2; // padded rows
                float *A = rnd(&r, (ta ? K : M) * lda), *B = rnd(&r, (tb ? N : K) * ldb);
                float *C1 = rnd(&r, M * ldc), *C2 = malloc((size_t)(M * ldc) * sizeof(float));
                memcpy(C2, C1, (size_t)(M * ldc) * sizeof(float));
                xc_gemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.5f, C1, ldc);
                xc_gemm_naive(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.5f, C2, ldc);
                char what[64];
                snprintf(what, sizeof what, "gemm %lldx%lldx%lld ta=%d tb=%d", (long long)M, (long long)N, (long long)K, ta, tb);
                xc_expect_close(what, C1, C2, M * ldc, 1e-5, 1e-4);
                free(A); free(B); free(C1); free(C2);
            }
}

// gemm_bias without a context (float32): op(A) op(B) + bias on every row, C only written.
static void test_gemm_bias(void) {
    Rng r = rng_stream(6, RNG_STREAM_TEST);
    const int64_t M = 37, N = 29, K = 41;
    float *A = rnd(&r, M * K), *B = rnd(&r, N * K), *bias = rnd(&r, N), *C1 = rnd(&r, M * N), *C2 = rnd(&r, M * N);
    gemm_bias(NULL, false, true, M, N, K, A, K, B, K, bias, C1, N);
    xc_gemm_naive(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    for (int64_t i = 0; i < M * N; i++) C2[i] += bias[i % N];
    xc_expect_close("gemm with bias", C1, C2, M * N, 1e-5, 1e-4);
    free(A); free(B); free(bias); free(C1); free(C2);
}

static void test_attention_head(void) {
    Rng r = rng_stream(4, RNG_STREAM_TEST);
    const int64_t Lq = 9, Lk = 13, dh = 16, ld = 48; // q/k/v read with a row stride, as in packed qkv
    float *q = rnd(&r, Lq * ld), *k = rnd(&r, Lk * ld), *v = rnd(&r, Lk * ld), *mask = rnd(&r, Lq * Lk);
    for (int64_t j = 0; j < Lk; j++) mask[2 * Lk + j] = -INFINITY; // a fully masked row
    mask[0] = -INFINITY;
    float *p1 = malloc(Lq * Lk * sizeof(float)), *p2 = malloc(Lq * Lk * sizeof(float));
    float *o1 = calloc(Lq * ld, sizeof(float)), *o2 = calloc(Lq * ld, sizeof(float));
    xc_attention_head(NULL, q, ld, k, ld, v, ld, mask, 0.25f, Lq, Lk, dh, p1, o1, ld);
    xc_attention_head_naive(q, ld, k, ld, v, ld, mask, 0.25f, Lq, Lk, dh, p2, o2, ld);
    xc_expect_close("attention probabilities", p1, p2, Lq * Lk, 1e-6, 1e-5);
    xc_expect_close("attention output", o1, o2, Lq * ld, 1e-5, 1e-4);
    free(q); free(k); free(v); free(mask); free(p1); free(p2); free(o1); free(o2);
}

// xc_softmax_row against its double twin, on rows shorter than, equal to and off the 16 lanes (1, 7, 16, 17, 50,
// 198, 257), scores in [-30, 30], with no mask, a finite mask, -inf entries (exactly 0 out) and a fully masked row
// (all 0), written in place as attention does: |got - ref| <= (SOFTMAX_TOL + |v - max|) u ref per entry (u = 2^-24;
// float32's v - max rounds by up to u |v - max|, an error exp keeps; then xc_expf's 2 ulp, the float32 sum and the
// scaling; reached: 3.9 u beyond the first term; the backward 2.1 u). Its backward d = p (d - <d, p>) against double: within
// SOFTMAX_TOL u p (|d| + sum |d p|), the terms' scale. A lane dropped from a sum, a tail left out, a masked entry
// given exp's tiny clamp value or the max taken over the wrong entries fails.
#define SOFTMAX_TOL 10.0
static void test_softmax_row(void) {
    Rng r = rng_stream(6, RNG_STREAM_TEST);
    const int64_t ns[] = {1, 7, 16, 17, 50, 198, 257};
    double worst = 0, worst_bwd = 0;
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++)
        for (int kind = 0; kind < 4; kind++) { // no mask, finite mask, some -inf, all -inf
            const int64_t n = ns[t];
            float *x = rnd(&r, n), *m = rnd(&r, n), *y = malloc((size_t)n * sizeof(float)), *ref = malloc((size_t)n * sizeof(float));
            for (int64_t i = 0; i < n; i++) x[i] *= 30.0f;
            if (kind >= 2)
                for (int64_t i = 0; i < n; i++)
                    if (kind == 3 || (i % 3 == 1 && i != n - 1)) m[i] = -INFINITY;
            const float *mask = kind ? m : NULL;
            xc_softmax_row_naive(x, mask, ref, n);
            memcpy(y, x, (size_t)n * sizeof(float));
            xc_softmax_row(y, mask, y, n); // in place
            float mx = -INFINITY; // the entries' max, as both compute it
            for (int64_t i = 0; i < n; i++) mx = fmaxf(mx, mask ? x[i] + mask[i] : x[i]);
            bool ok = true;
            for (int64_t i = 0; i < n; i++) {
                double d = fabs((double)y[i] - ref[i]) / 0x1p-24 / ref[i];
                double arg = ref[i] == 0.0f ? 0.0 : fabs((double)(mask ? x[i] + mask[i] : x[i]) - mx);
                if (ref[i] == 0.0f ? y[i] != 0.0f : !(d <= SOFTMAX_TOL + arg)) ok = false;
                if (ref[i] > 0) worst = fmax(worst, d - arg);
            }
            XC_EXPECT(ok, "softmax row n=%lld mask kind %d: off its double twin (or a masked entry not exactly 0)",
                      (long long)n, kind);
            float *d = rnd(&r, n), *dd = malloc((size_t)n * sizeof(float));
            double dot = 0, scale_dot = 0;
            for (int64_t i = 0; i < n; i++) dot += (double)d[i] * ref[i], scale_dot += fabs((double)d[i] * ref[i]);
            memcpy(dd, d, (size_t)n * sizeof(float));
            xc_softmax_row_bwd(ref, dd, n);
            ok = true;
            for (int64_t i = 0; i < n; i++) {
                double want = ref[i] * ((double)d[i] - dot), scale = ref[i] * (fabs((double)d[i]) + scale_dot);
                double e = fabs(dd[i] - want);
                if (!(e <= SOFTMAX_TOL * 0x1p-24 * scale)) ok = false;
                if (scale > 0) worst_bwd = fmax(worst_bwd, e / scale / 0x1p-24);
            }
            XC_EXPECT(ok, "softmax row backward n=%lld mask kind %d: off its double twin", (long long)n, kind);
            free(x); free(m); free(y); free(ref); free(d); free(dd);
        }
    printf("  softmax row: worst %.2f u of each probability beyond u |v - max|, backward %.2f u of its scale (bound %.0f u)\n", worst,
           worst_bwd, SOFTMAX_TOL);
}

static void test_layernorm(void) {
    Rng r = rng_stream(5, RNG_STREAM_TEST);
    const int64_t R = 37, C = 768;
    float *x = rnd(&r, R * C), *w = rnd(&r, C), *b = rnd(&r, C);
    for (int64_t i = 0; i < R * C; i++) x[i] = 3.0f + 2.0f * x[i]; // offset mean: stresses the variance
    float *y1 = malloc(R * C * sizeof(float)), *y2 = malloc(R * C * sizeof(float));
    float m1[37], m2[37], s1[37], s2[37];
    xc_layernorm_fwd(x, w, b, 1e-5f, R, C, y1, m1, s1);
    xc_layernorm_fwd_naive(x, w, b, 1e-5f, R, C, y2, m2, s2);
    xc_expect_close("layernorm y", y1, y2, R * C, 1e-5, 1e-4);
    xc_expect_close("layernorm mean", m1, m2, R, 1e-6, 1e-5);
    xc_expect_close("layernorm rstd", s1, s2, R, 1e-6, 1e-5);
    free(x); free(w); free(b); free(y1); free(y2);
}

// xc_expf against exp in double over [-87, 88]: within 2 ulp (relative 2^-22); the clamp's values outside.
static void test_expf(void) {
    double worst = 0, worst_x = 0;
    for (int64_t i = 0; i <= 2000000; i++) {
        float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        double ref = exp((double)x), rel = fabs((double)xc_expf(x) - ref) / ref;
        if (rel > worst) worst = rel, worst_x = x;
    }
    XC_EXPECT(worst <= 0x1p-22, "xc_expf: relative error %.3g at x = %.7g (> 2 ulp)", worst, worst_x);
    XC_EXPECT(xc_expf(-200.0f) > 0 && xc_expf(-200.0f) < 1e-37f && isfinite(xc_expf(200.0f)) && xc_expf(200.0f) > 1e38f,
              "xc_expf clamp: %g %g", xc_expf(-200.0f), xc_expf(200.0f));
    XC_EXPECT(xc_expf(0.0f) == 1.0f, "xc_expf(0) = %.9g", xc_expf(0.0f));
    printf("  xc_expf: max relative error %.3g (%.2f ulp) at x = %.6g\n", worst, worst / 0x1p-24, worst_x);
}

// XCLIP_PROFILE's GEMM accounting. Off without the variable: a child process, before anything else starts
// OpenMP or OpenBLAS threads in this one, runs a GEMM and must count nothing. On: GEMMs by the team and inside a
// parallel region counted apart (exact calls and multiply-adds, from several threads at once), bf16 apart where
// a kernel exists, the printed rows and shares; a graph's profile shows every GEMM since it started, those of
// another graph freed meanwhile (which printed its own) included, and none after graph_profile_reset.
static void test_gemm_profile_off(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        unsetenv("XCLIP_PROFILE");
        float a[64] = {0}, c[64];
        xc_gemm(false, false, 8, 8, 8, 1.0f, a, 8, a, 8, 0.0f, c, 8);
        GemmProfile p = gemm_profile_now();
        _exit(!gemm_profile_on() && p.row[0][GEMM_PROFILE_TEAM].calls == 0 ? 0 : 1);
    }
    int st = 0;
    XC_EXPECT(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "gemm profile without XCLIP_PROFILE: counted (child status %d)", st);
}

// What was written to f (a tmpfile), into buf; closes f.
static void read_back(FILE *f, char *buf, size_t cap) {
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
}

// The call count printed after label ("team (wall s)"): -1 when there is none.
static long long calls_after(const char *buf, const char *label) {
    const char *p = strstr(buf, label);
    long long n = -1;
    if (!p || sscanf(p + strlen(label), "%lld calls", &n) != 1) n = -1;
    return n;
}

static void test_gemm_profile(void) {
    XC_EXPECT(gemm_profile_on(), "XCLIP_PROFILE=1: gemm_profile_on() false");
    const GemmProfile base = gemm_profile_now();
    Rng r = rng_stream(9, RNG_STREAM_TEST);
    const int64_t M = 33, N = 17, K = 65;
    float *A = rnd(&r, M * K), *B = rnd(&r, K * N), *C = rnd(&r, 8 * M * N);
    xc_gemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    gemm_run(NULL, false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    int active = 0; // did the region run on several threads? (OMP_THREAD_LIMIT=1, say, makes it a team of one)
#ifdef _OPENMP
    omp_set_dynamic(0);
#endif
#pragma omp parallel for schedule(static) num_threads(3) reduction(| : active)
    for (int i = 0; i < 8; i++) {
        active |= xc_in_parallel();
        xc_gemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C + i * M * N, N);
    }
    if (!active) printf("  gemm profile: the parallel region ran on one thread: in-region accounting not exercised\n");
    const double flop = 2.0 * M * N * K;
    const int64_t n_in = active ? 8 : 0, n_team = 10 - n_in;
    const GemmProfile now = gemm_profile_now(), p = gemm_profile_diff(&now, &base);
    const GemmProfileRow *team = &p.row[0][GEMM_PROFILE_TEAM], *in = &p.row[0][GEMM_PROFILE_IN_REGION];
    XC_EXPECT(team->calls == n_team && team->flop == (double)n_team * flop && team->seconds > 0,
              "gemm profile, team: %lld calls, %g flop, %g s", (long long)team->calls, team->flop, team->seconds);
    XC_EXPECT(in->calls == n_in && in->flop == (double)n_in * flop && (in->seconds > 0) == (n_in > 0),
              "gemm profile, in regions: %lld calls, %g flop", (long long)in->calls, in->flop);
    XC_EXPECT(p.row[1][0].calls == 0 && p.row[1][1].calls == 0, "gemm profile: float32 GEMMs counted as bf16");
    char buf[2048];
    FILE *f = tmpfile();
    gemm_profile_print(&p, team->seconds * 4, f);
    read_back(f, buf, sizeof buf);
    XC_EXPECT(calls_after(buf, "profile: gemm fp32 team (wall s)") == n_team && strstr(buf, "25.0% of the wall time") &&
                  (strstr(buf, "in regions (thread s)") != NULL) == (n_in > 0) && !strstr(buf, "bf16"),
              "gemm profile print:\n%s", buf);
    Gemm mm;
    XcError err;
    if (gemm_init(&mm, XC_MATMUL_BF16, &err) == XC_OK) { // bf16 counted as such; 64^3 and above take that path
        float *A2 = rnd(&r, 64 * 64), *C2 = malloc(64 * 64 * sizeof(float));
        const GemmProfile before = gemm_profile_now();
        gemm_run(&mm, false, false, 64, 64, 64, 1.0f, A2, 64, A2, 64, 0.0f, C2, 64);
        const GemmProfile after = gemm_profile_now(), d = gemm_profile_diff(&after, &before);
        XC_EXPECT(d.row[1][GEMM_PROFILE_TEAM].calls == 1 && d.row[1][GEMM_PROFILE_TEAM].flop == 2.0 * 64 * 64 * 64 &&
                      d.row[0][GEMM_PROFILE_TEAM].calls == 0, "gemm profile, bf16 on %s: %lld calls",
                  gemm_bf16_kernel_name(&mm), (long long)d.row[1][GEMM_PROFILE_TEAM].calls);
        gemm_free(&mm);
        free(A2); free(C2);
    } else {
        printf("  gemm profile: no bf16 unit here, bf16 accounting not exercised\n");
    }
    // a graph's profile against another graph's in between (as a text-feature graph inside an evaluation)
    Graph g1, g2;
    graph_init(&g1, 0);
    xc_gemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    graph_init(&g2, 0);
    xc_gemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    printf("  gemm profile: a second graph's profile, printed when it is freed:\n");
    fflush(stdout);
    graph_free(&g2);
    xc_gemm(false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    f = tmpfile();
    graph_profile_print(&g1, f);
    read_back(f, buf, sizeof buf);
    XC_EXPECT(g1.profile && calls_after(buf, "profile: gemm fp32 team (wall s)") == 3 && strstr(buf, "no ops recorded"),
              "gemm profile of a graph with another freed meanwhile:\n%s", buf);
    graph_profile_reset(&g1);
    f = tmpfile();
    graph_profile_print(&g1, f);
    read_back(f, buf, sizeof buf);
    XC_EXPECT(!strstr(buf, "profile: gemm"), "gemm profile after graph_profile_reset:\n%s", buf);
    graph_free(&g1);
    free(A); free(B); free(C);
}

int main(void) {
    test_gemm_profile_off(); // first: no threads started yet
    setenv("XCLIP_PROFILE", "1", 1);
    test_gemm_profile();
    test_expf();
    test_gemm();
    test_gemm_bias();
    test_attention_head();
    test_softmax_row();
    test_layernorm();
    return xc_test_summary("test_kernels");
}
