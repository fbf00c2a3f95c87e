// test_bf16.c - the bfloat16 matmul path (a Gemm context at XC_MATMUL_BF16 on Intel AMX, autograd/gemm_bf16.c):
//   - gemm_bf16 against a double-precision GEMM of the bf16-rounded operands (round to nearest even):
//     all transpose combinations, sizes off the 16 / 32 tile grid, padded leading dimensions, alpha, beta;
//     |got - ref| <= 1e-5 + 1e-5 |ref| (the products are exact, only the float32 sums differ), and the
//     result must differ from float32 SGEMM by bf16 rounding (the path really rounds);
//   - the same bits with 1, 2 and 3 threads;
//   - dispatch: with the precision set, big GEMMs outside parallel regions take the path bit for bit,
//     small ones and those inside a parallel region stay float32 SGEMM.
//   - the X-CLIP fixtures of test_xclip_parity (t3, t8) with bf16 matmuls against the float32 PyTorch reference,
//     at bf16's accuracy rather than float32's: logits and features within 2e-2 of max |ref| (bf16 keeps 8
//     significant bits, a relative rounding of 2^-9 = 2e-3 per operand; 2e-2 allows about ten such errors
//     through the layers), and every gradient pointing the same way (cosine >= 0.99) within 1e-1 of max |ref|.
// Exits 77 (ctest: skipped) on a CPU or kernel without AMX, saying so.
#include "test_util.h"
#include "autograd/kernels.h"
#include "autograd/rng.h"
#include "xclip_fixture.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#define SET_THREADS(n) omp_set_num_threads(n)
#else
#define SET_THREADS(n) ((void)(n))
#endif

static float *rnd(Rng *r, int64_t n) {
    float *x = malloc((size_t)n * sizeof(float));
    rng_fill_uniform(r, x, n, -1.0f, 1.0f);
    return x;
}

static float bf16_round(float f) { // round to nearest even, as VCVTNE2PS2BF16 (inputs here are finite)
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static float *rounded(const float *x, int64_t n) {
    float *y = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) y[i] = bf16_round(x[i]);
    return y;
}

static Gemm g_mm; // the bf16 context of the whole test (main)

static void test_gemm(void) {
    Rng r = rng_stream(31, RNG_STREAM_TEST);
    const int64_t sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {16, 16, 32}, {33, 17, 65}, {64, 50, 64}, {100, 70, 129}, {257, 96, 768},
                               {70, 600, 1100}}; // the last: several N panels and K chunks
    double worst = 0, worst_fp32 = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int with_beta = 0; with_beta < 2; with_beta++) {
                    int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                    int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2; // padded rows
                    int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb;
                    float *A = rnd(&r, na), *B = rnd(&r, nb), *Ar = rounded(A, na), *Br = rounded(B, nb);
                    float *C1 = rnd(&r, M * ldc), *C2 = malloc((size_t)(M * ldc) * sizeof(float));
                    float *C3 = malloc((size_t)(M * ldc) * sizeof(float));
                    memcpy(C2, C1, (size_t)(M * ldc) * sizeof(float));
                    memcpy(C3, C1, (size_t)(M * ldc) * sizeof(float));
                    float beta = with_beta ? 0.5f : 0.0f;
                    gemm_bf16(&g_mm, ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C1, ldc);
                    xc_gemm_naive(ta, tb, M, N, K, 0.7f, Ar, lda, Br, ldb, beta, C2, ldc);
                    xc_gemm_naive(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C3, ldc);
                    char what[80];
                    snprintf(what, sizeof what, "bf16 gemm %lldx%lldx%lld ta=%d tb=%d beta=%g", (long long)M, (long long)N,
                             (long long)K, ta, tb, beta);
                    worst = fmax(worst, xc_expect_close(what, C1, C2, M * ldc, 1e-5, 1e-5));
                    if (K >= 64) { // against unrounded operands: bf16-sized differences (2^-9 relative per operand)
                        double d = 0, m = 0;
                        for (int64_t i = 0; i < M * ldc; i++) {
                            d = fmax(d, fabs((double)C1[i] - C3[i]));
                            m = fmax(m, fabs((double)C3[i]));
                        }
                        worst_fp32 = fmax(worst_fp32, d / m);
                        XC_EXPECT(d / m > 1e-5 && d / m < 3e-2, "%s: %.2e from float32, want bf16 rounding (1e-5 .. 3e-2)", what, d / m);
                    }
                    free(A); free(B); free(Ar); free(Br); free(C1); free(C2); free(C3);
                }
    printf("  bf16 gemm: max |diff| %.2e against the rounded operands; %.2e (of max |C|) from float32\n", worst, worst_fp32);
}

// The result does not depend on the thread count (rows of C are split, every block's sums run in one order).
static void test_threads(void) {
    Rng r = rng_stream(33, RNG_STREAM_TEST);
    const int64_t M = 300, N = 530, K = 700;
    float *A = rnd(&r, M * K), *B = rnd(&r, K * N), *C[3];
    for (int t = 0; t < 3; t++) {
        C[t] = calloc((size_t)(M * N), sizeof(float));
        SET_THREADS(t + 1);
        gemm_bf16(&g_mm, false, false, M, N, K, 1.0f, A, K, B, N, 0.0f, C[t], N);
    }
    SET_THREADS(2);
    XC_EXPECT(!memcmp(C[0], C[1], sizeof(float) * (size_t)(M * N)) && !memcmp(C[0], C[2], sizeof(float) * (size_t)(M * N)),
              "bf16 GEMM results differ between 1, 2 and 3 threads");
    for (int t = 0; t < 3; t++) free(C[t]);
    free(A);
    free(B);
}

static void test_dispatch(void) {
    Rng r = rng_stream(32, RNG_STREAM_TEST);
    const int64_t M = 96, N = 80, K = 112, n = M * N;
    float *A = rnd(&r, M * K), *B = rnd(&r, K * N), *C[4];
    for (int i = 0; i < 4; i++) C[i] = calloc((size_t)n, sizeof(float));
    Gemm *mm = &g_mm;
    gemm_run(mm, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C[0], N);
    gemm_bf16(mm, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C[1], N);
    XC_EXPECT(!memcmp(C[0], C[1], sizeof(float) * (size_t)n), "gemm_run in a bf16 context is not the bf16 path");
    gemm_run(mm, false, true, 8, 8, 8, 1.0f, A, K, B, K, 0.0f, C[2], N); // small: float32
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 8, 8, 8, 1.0f, A, (int)K, B, (int)K, 0.0f, C[3], (int)N);
    XC_EXPECT(!memcmp(C[2], C[3], sizeof(float) * (size_t)n), "a small GEMM left float32");
    memset(C[2], 0, sizeof(float) * (size_t)n);
    memset(C[3], 0, sizeof(float) * (size_t)n);
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        gemm_run(mm, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C[2], N); // inside a parallel region: float32
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, (int)K, 0.0f, C[3], (int)N);
    XC_EXPECT(!memcmp(C[2], C[3], sizeof(float) * (size_t)n), "a GEMM inside a parallel region left float32");
    // with a bias: the epilogue adds it; equal to the plain path plus the bias up to one float32 rounding
    float *bias = rnd(&r, N);
    gemm_bias(mm, false, true, M, N, K, A, K, B, K, bias, C[0], N);
    for (int64_t i = 0; i < n; i++) C[1][i] += bias[i % N];
    xc_expect_close("bf16 gemm with bias", C[0], C[1], (long)n, 1e-6, 1e-6);
    free(bias);
    memset(C[0], 0, sizeof(float) * (size_t)n);
    gemm_run(NULL, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C[0], N);
    XC_EXPECT(!memcmp(C[0], C[3], sizeof(float) * (size_t)n), "without a context the GEMM is not SGEMM");
    Gemm fp32;
    XcError err;
    XC_EXPECT(gemm_init(&fp32, XC_MATMUL_FP32, &err) == XC_OK, "%s", err.msg);
    memset(C[0], 0, sizeof(float) * (size_t)n);
    gemm_run(&fp32, false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C[0], N);
    XC_EXPECT(!memcmp(C[0], C[3], sizeof(float) * (size_t)n), "a float32 context's GEMM is not SGEMM");
    gemm_free(&fp32);
    for (int i = 0; i < 4; i++) free(C[i]);
    free(A);
    free(B);
}

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa == 0 && bb == 0 ? 1.0 : ab / sqrt(aa * bb + 1e-300);
}

static void test_model(const char *cfgname) {
    XclipFixture fx;
    if (!xclip_fixture_open(&fx, cfgname)) return;
    XcError err;
    H5Array logits = {0}, vfeat = {0};
    XClip m;
    ParamStore ps;
    int rc = h5_read(&fx.ref, "logits", H5_F32, &logits, false, &err);
    if (rc == XC_OK) rc = h5_read(&fx.ref, "video_features", H5_F32, &vfeat, false, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    if (rc != XC_OK || !xclip_fixture_model(&fx, false, &m, &ps)) {
        h5_array_free(&logits);
        h5_array_free(&vfeat);
        xclip_fixture_close(&fx);
        return;
    }
    const int64_t B = fx.video.shape[0], K = fx.tokens.shape[0], S = fx.tokens.shape[1];
    xclip_cache_text(&m, fx.tokens.data, K, S);
    uint64_t calls0 = g_mm.bf16_calls;
    Graph g;
    graph_init(&g, 16u << 20);
    g.gemm = &g_mm; // this graph's matmuls in bf16 (xclip_cache_text above ran in float32 regardless)
    XClipOut o = xclip_forward(&g, &m, tensor_from(&g, 5, fx.video.shape, fx.video.data), NULL, K, S, NULL);
    char name[600];
    snprintf(name, sizeof name, "%s bf16 logits", cfgname);
    double e_feat = xc_expect_scaled(name, o.logits->data, logits.data, logits.numel, 2e-2);
    snprintf(name, sizeof name, "%s bf16 video_features", cfgname);
    e_feat = fmax(e_feat, xc_expect_scaled(name, o.video_features->data, vfeat.data, vfeat.numel, 2e-2));
    Tensor *y = tensor_zeros(&g, 2, (int64_t[]){B, K});
    for (int64_t b = 0; b < B; b++) y->data[b * K + ((int64_t *)fx.labels.data)[b]] = 1.0f;
    graph_backward(&g, op_soft_cross_entropy(&g, o.logits, y));
    uint64_t calls = g_mm.bf16_calls - calls0;
    double e_grad = 0, worst_cos = 1;
    int compared = 0;
    for (int i = 0; i < ps.n; i++) {
        Tensor *p = ps.p[i];
        if (!p->requires_grad) continue;
        snprintf(name, sizeof name, "grad/%s", p->name);
        H5Array gref;
        if (h5_read(&fx.ref, name, H5_F32, &gref, true, &err) != XC_OK || !gref.data) continue;
        snprintf(name, sizeof name, "%s bf16 grad %s", cfgname, p->name);
        e_grad = fmax(e_grad, xc_expect_scaled(name, p->grad, gref.data, gref.numel, 1e-1));
        double c = cosine(p->grad, gref.data, gref.numel);
        worst_cos = fmin(worst_cos, c);
        XC_EXPECT(c >= 0.99, "%s: cosine with the reference %.4f < 0.99", name, c);
        compared++;
        h5_array_free(&gref);
    }
    XC_EXPECT(calls > 0 && compared > 0, "%s: %llu bf16 GEMMs, %d gradients compared", cfgname, (unsigned long long)calls, compared);
    printf("  %s with bf16 matmuls (%llu GEMMs): logits/features %.2e, gradients %.2e (worst cosine %.5f, %d tensors)\n",
           cfgname, (unsigned long long)calls, e_feat, e_grad, worst_cos, compared);
    graph_free(&g);
    xclip_free(&m);
    param_store_free(&ps);
    h5_array_free(&logits);
    h5_array_free(&vfeat);
    xclip_fixture_close(&fx);
}

int main(void) {
    if (!xc_amx_available()) {
        printf("test_bf16: SKIPPED: this CPU or kernel has no usable AMX-BF16 (the bf16 matmul path cannot run here)\n");
        return 77;
    }
    XcError err;
    if (gemm_init(&g_mm, XC_MATMUL_BF16, &err) != XC_OK) {
        fprintf(stderr, "FAIL: gemm_init(XC_MATMUL_BF16) refused although AMX is available: %s\n", err.msg);
        return 1;
    }
    test_gemm();
    test_threads();
    test_dispatch();
    test_model("t3");
    test_model("t8");
    gemm_free(&g_mm);
    return xc_test_summary("test_bf16");
}
