// test_bf16.c - the bfloat16 matmul path (a Gemm context at XC_MATMUL_BF16), on each kernel this CPU offers: Intel
// AMX (autograd/gemm_bf16_amx.c), AVX512-BF16's two (autograd/gemm_bf16_avx512.c: VDPBF16PS, or FMAs), and wherever
// AVX512-BF16 is the AMX kernel with TDPBF16PS emulated (amx-emulated), which tests everything else AMX runs:
//   - gemm_init's choice (AMX if usable, else avx512-fma where VDPBF16PS is slow, else avx512-bf16; never
//     amx-emulated); kernel names; a kernel the CPU lacks is refused by name;
//   - every kernel against a naive scalar twin of its arithmetic, bit for bit (test_twins: required of avx512-fma
//     and amx-emulated, reported for the units VDPBF16PS and TDPBF16PS);
//   - gemm_bf16 against a double-precision GEMM of the bf16-rounded operands (round to nearest even):
//     all transpose combinations, sizes off the kernels' blocks (12 x 32 for AVX512-BF16, 16 / 32 tiles for AMX),
//     K = 0, 1 and odd, padded leading dimensions, alpha, beta 0 and 0.5, with and without a bias;
//     |got - ref| <= 5 u S per element, u = 2^-24 and S the sum of the terms' magnitudes (the products are exact,
//     only the float32 sums differ; AVX512-BF16 reaches 2.2 u S), and the result must differ from float32 by bf16
//     rounding (the path really rounds);
//   - the same bits with 1, 2 and 3 threads, on a repeated call and through per-thread contexts inside a parallel
//     region, for every transpose; packing buffers only grow;
//   - the fused prologues (LayerNorm, QuickGELU) and epilogue (QuickGELU's gradient) of every kernel against the
//     unfused route, bit for bit (test_fused);
//   - dispatch: with the precision set, big GEMMs outside parallel regions take the path bit for bit,
//     small ones and those inside a parallel region stay float32 SGEMM, unless through a per-thread context;
//   - attention and cross-attention with bf16 products (test_attention's comment);
//   - the X-CLIP fixtures of test_xclip_parity (t3, t8) with bf16 matmuls against the float32 PyTorch reference,
//     at bf16's accuracy rather than float32's: logits and features within 2e-2 of max |ref| (bf16 keeps 8
//     significant bits, a relative rounding of 2^-9 = 2e-3 per operand; reached: 5.4e-3), and every gradient
//     within 6e-2 of max |ref| (reached: 2.0e-2) with cosine >= 0.999 (reached: 0.99988).
// Exits 77 (ctest: skipped) on a CPU or kernel with neither unit, saying so.
#include "test_util.h"
#include "autograd/kernels.h"
#include "autograd/rng.h"
#include "xclip_fixture.h"

#include <cblas.h>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#define SET_THREADS(n) omp_set_num_threads(n)
#define THREAD_NUM() omp_get_thread_num()
#else
#define SET_THREADS(n) ((void)(n))
#define THREAD_NUM() 0
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

static float *absolute(const float *x, int64_t n) {
    float *y = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
    return y;
}

// A float32 sum of terms t_k has an error of a few unit roundoffs u = 2^-24 times S = sum |t_k| (here the terms of
// alpha sum_k a_ik b_kj, beta c_ij and bias_j). The check: |got - ref| <= GEMM_TOL u S for every element of C.
#define GEMM_U 0x1p-24
#define GEMM_TOL 5.0 // about 2.3x the worst reached on AVX512-BF16 (2.2 u S)

static Gemm g_mm; // the bf16 context of the whole test (main), on the kernel under test

// op(A) (M, K) op(B) (K, N) with padded leading dimensions, alpha 0.7, beta 0 or 0.5, bias or none: the kernel
// against a double GEMM of the bf16-rounded operands (exact products; only the float32 sums differ), and against
// the unrounded operands (bf16-sized differences: the path really rounds).
static void test_gemm(void) {
    Rng r = rng_stream(31, RNG_STREAM_TEST);
    const int64_t sizes[][3] = {{1, 1, 1},     {7, 5, 3},      {12, 32, 2},     {13, 33, 1},     {16, 16, 32},
                                {25, 31, 31},  {33, 17, 65},   {64, 50, 64},    {100, 70, 129},  {5, 7, 0},
                                {257, 96, 768}, {70, 600, 1100}}; // the last: several N panels and K chunks on both kernels
    double worst = 0, worst_fp32 = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int v = 0; v < 16; v++) {
            const int ta = v & 1, tb = v >> 1 & 1, with_beta = v >> 2 & 1, with_bias = v >> 3 & 1;
            int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
            int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2; // padded rows
            int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb;
            float *A = rnd(&r, na + 1), *B = rnd(&r, nb + 1), *Ar = rounded(A, na + 1), *Br = rounded(B, nb + 1);
            float *C1 = rnd(&r, M * ldc), *C2 = malloc((size_t)(M * ldc) * sizeof(float));
            float *C3 = malloc((size_t)(M * ldc) * sizeof(float)), *bias = with_bias ? rnd(&r, N) : NULL;
            float *Aa = absolute(Ar, na + 1), *Ba = absolute(Br, nb + 1), *S = absolute(C1, M * ldc);
            memcpy(C2, C1, (size_t)(M * ldc) * sizeof(float));
            memcpy(C3, C1, (size_t)(M * ldc) * sizeof(float));
            float beta = with_beta ? 0.5f : 0.0f;
            gemm_bf16_bias(&g_mm, ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, bias, C1, ldc);
            xc_gemm_naive(ta, tb, M, N, K, 0.7f, Ar, lda, Br, ldb, beta, C2, ldc);
            xc_gemm_naive(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, C3, ldc);
            xc_gemm_naive(ta, tb, M, N, K, 0.7f, Aa, lda, Ba, ldb, beta, S, ldc);
            for (int64_t i = 0; i < M && bias; i++)
                for (int64_t j = 0; j < N; j++) {
                    C2[i * ldc + j] += bias[j];
                    C3[i * ldc + j] += bias[j];
                    S[i * ldc + j] += fabsf(bias[j]);
                }
            char what[120];
            snprintf(what, sizeof what, "%s gemm %lldx%lldx%lld ta=%d tb=%d beta=%g%s", gemm_bf16_kernel_name(&g_mm),
                     (long long)M, (long long)N, (long long)K, ta, tb, beta, bias ? " bias" : "");
            double e = 0; // max |got - ref| / (u S)
            int64_t bad = 0;
            for (int64_t i = 0; i < M * ldc; i++) {
                double d = fabs((double)C1[i] - C2[i]), t = GEMM_U * S[i];
                if (!(d <= GEMM_TOL * t)) { // also NaN
                    if (bad++ < 3) fprintf(stderr, "  %s [%lld]: got %.9g want %.9g (%.2f u S)\n", what, (long long)i, C1[i], C2[i], d / t);
                }
                if (d > 0) e = fmax(e, d / t);
            }
            XC_EXPECT(!bad, "%s: %lld elements beyond %.0f u S (worst %.2f u S)", what, (long long)bad, GEMM_TOL, e);
            worst = fmax(worst, e);
            if (K >= 64) { // against unrounded operands: bf16-sized differences (2^-9 relative per operand)
                double d = 0, m = 0;
                for (int64_t i = 0; i < M * ldc; i++) {
                    d = fmax(d, fabs((double)C1[i] - C3[i]));
                    m = fmax(m, fabs((double)C3[i]));
                }
                worst_fp32 = fmax(worst_fp32, d / m);
                XC_EXPECT(d / m > 1e-5 && d / m < 3e-2, "%s: %.2e from float32, want bf16 rounding (1e-5 .. 3e-2)", what, d / m);
            }
            free(A); free(B); free(Ar); free(Br); free(Aa); free(Ba); free(S); free(C1); free(C2); free(C3); free(bias);
        }
    printf("  %s gemm: max |diff| %.2f u S against the rounded operands (tolerance %.0f u S); %.2e (of max |C|) "
           "from float32\n", gemm_bf16_kernel_name(&g_mm), worst, GEMM_TOL, worst_fp32);
}

// The result does not depend on the thread count (blocks of C are shared out, every element's sum runs in one
// order), for every transpose, with beta and a bias, on a shape with several panels, K chunks and edge blocks.
static void test_threads(void) {
    Rng r = rng_stream(33, RNG_STREAM_TEST);
    const int64_t M = 301, N = 530, K = 701, n = M * N;
    float *A = rnd(&r, M * K), *B = rnd(&r, K * N), *bias = rnd(&r, N), *C0 = rnd(&r, n), *C[3];
    for (int v = 0; v < 4; v++) {
        const bool ta = v & 1, tb = v >> 1 & 1;
        for (int t = 0; t < 3; t++) {
            C[t] = malloc((size_t)n * sizeof(float));
            memcpy(C[t], C0, (size_t)n * sizeof(float));
            SET_THREADS(t + 1);
            gemm_bf16_bias(&g_mm, ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.25f, bias, C[t], N);
        }
        SET_THREADS(2);
        XC_EXPECT(!memcmp(C[0], C[1], sizeof(float) * (size_t)n) && !memcmp(C[0], C[2], sizeof(float) * (size_t)n),
                  "%s: results differ between 1, 2 and 3 threads (ta=%d tb=%d)", gemm_bf16_kernel_name(&g_mm), ta, tb);
        XC_EXPECT(memcmp(C[0], C0, sizeof(float) * (size_t)n), "%s: C unchanged", gemm_bf16_kernel_name(&g_mm));
        // run to run: the same call again gives the same bits
        memcpy(C[1], C0, (size_t)n * sizeof(float));
        gemm_bf16_bias(&g_mm, ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.25f, bias, C[1], N);
        XC_EXPECT(!memcmp(C[0], C[1], sizeof(float) * (size_t)n), "%s: a repeated call differs", gemm_bf16_kernel_name(&g_mm));
        // inside a parallel region, each of 2 threads through its own per-thread context (on the calling thread
        // alone, its own packing buffers, at the same time): the same bits again
        memcpy(C[1], C0, (size_t)n * sizeof(float));
        memcpy(C[2], C0, (size_t)n * sizeof(float));
        Gemm *pt = gemm_per_thread(&g_mm, 2);
#pragma omp parallel for num_threads(2) schedule(static, 1)
        for (int t = 0; t < 2; t++)
            gemm_bf16_bias(&pt[THREAD_NUM()], ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, 0.25f, bias, C[1 + t], N);
        XC_EXPECT(!memcmp(C[0], C[1], sizeof(float) * (size_t)n) && !memcmp(C[0], C[2], sizeof(float) * (size_t)n),
                  "%s: per-thread contexts in a parallel region differ from the call outside (ta=%d tb=%d)",
                  gemm_bf16_kernel_name(&g_mm), ta, tb);
        for (int t = 0; t < 3; t++) free(C[t]);
    }
    // the packing buffers only grow: a smaller GEMM afterwards neither shrinks nor moves them
    uint16_t *ap = g_mm.apack, *bp = g_mm.bpack;
    size_t acap = g_mm.apack_cap, bcap = g_mm.bpack_cap;
    float c[64 * 64];
    gemm_bf16(&g_mm, false, false, 64, 64, 64, 1.0f, A, 64, B, 64, 0.0f, c, 64);
    XC_EXPECT(g_mm.apack == ap && g_mm.bpack == bp && g_mm.apack_cap == acap && g_mm.bpack_cap == bcap,
              "%s: packing buffers reallocated for a smaller GEMM", gemm_bf16_kernel_name(&g_mm));
    free(A); free(B); free(bias); free(C0);
}

// gemm_bf16_fused against the route it replaces, bit for bit, with 1, 2 and 3 threads: a LayerNorm
// or QuickGELU prologue on op(A) = A or on op(B) = B (the other operand either way round) against the function
// written out by xc_layernorm_fwd / xc_quick_gelu_fwd and then gemm_bf16_bias; the QuickGELU gradient epilogue
// against gemm_bf16 into a scratch, then xc_quick_gelu_bwd. Sizes off the 12 x 32 blocks, odd K (a last pair with
// one row), N off the 16-column packing units; xc_layernorm_stats's statistics equal xc_layernorm_fwd's.
static void test_fused(void) {
    Rng r = rng_stream(34, RNG_STREAM_TEST);
    const int64_t sizes[][3] = {{1, 1, 1}, {13, 33, 1}, {25, 31, 31}, {33, 17, 65}, {100, 70, 129}, {70, 600, 1100}};
    int cases = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int v = 0; v < 10; v++) {
            // v 0-7: prologue on A (v < 4) or B, LayerNorm (v even) or QuickGELU, the other operand transposed or
            // not (v & 2), a bias and beta 0.5 on odd v / 2; v 8, 9: the epilogue, with A transposed (v 9) or not
            const bool epi = v >= 8, on_a = v < 4, ln = !epi && !(v & 1), other_t = epi ? v == 9 : (v & 2) != 0;
            const bool ta = !on_a && other_t, tb = on_a && other_t, extra = (v / 2) & 1;
            const int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
            const int64_t lda = ta ? M : K, ldb = tb ? K : N, R = on_a ? M : K, Cw = on_a ? K : N; // the stored X: R x Cw
            float *A = rnd(&r, M * K), *B = rnd(&r, K * N), *C0 = rnd(&r, M * N), *bias = rnd(&r, N);
            float *lw = rnd(&r, Cw), *lb = rnd(&r, Cw), *X = on_a ? A : B, *Xp = malloc((size_t)(R * Cw) * sizeof(float));
            float *mean = malloc((size_t)R * sizeof(float)), *rstd = malloc((size_t)R * sizeof(float));
            float *mean2 = malloc((size_t)R * sizeof(float)), *rstd2 = malloc((size_t)R * sizeof(float));
            float *ref = malloc((size_t)(M * N) * sizeof(float)), *got = malloc((size_t)(M * N) * sizeof(float));
            GemmFused f = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .A = A, .B = B, .lda = lda, .ldb = ldb, .ldc = N};
            memcpy(ref, C0, (size_t)(M * N) * sizeof(float));
            if (epi) { // ref = C0 + y'(C0-shaped x) (A B): x is a random (M, N)
                float *gx = rnd(&r, M * N), *prod = malloc((size_t)(M * N) * sizeof(float));
                gemm_bf16(&g_mm, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, prod, N);
                xc_quick_gelu_bwd(gx, prod, ref, M * N);
                f.beta = 1.0f;
                f.gelu_x = gx;
                free(prod);
            } else {
                GemmPre pre = {.kind = ln ? XC_PRE_LAYERNORM : XC_PRE_QUICK_GELU, .mean = mean, .rstd = rstd, .w = lw, .b = lb};
                if (ln) {
                    xc_layernorm_fwd(X, lw, lb, 1e-5f, R, Cw, Xp, mean, rstd);
                    xc_layernorm_stats(X, 1e-5f, R, Cw, mean2, rstd2);
                    XC_EXPECT(!memcmp(mean, mean2, (size_t)R * sizeof(float)) && !memcmp(rstd, rstd2, (size_t)R * sizeof(float)),
                              "xc_layernorm_stats differs from xc_layernorm_fwd's statistics (%lld x %lld)", (long long)R,
                              (long long)Cw);
                } else {
                    xc_quick_gelu_fwd(X, Xp, R * Cw);
                }
                f.beta = extra ? 0.5f : 0.0f;
                f.bias = extra ? bias : NULL;
                if (on_a) f.pre_a = pre;
                else f.pre_b = pre;
                gemm_bf16_bias(&g_mm, ta, tb, M, N, K, 1.0f, on_a ? Xp : A, lda, on_a ? B : Xp, ldb, f.beta, f.bias, ref, N);
            }
            char what[120];
            snprintf(what, sizeof what, "fused %s %lldx%lldx%lld ta=%d tb=%d%s", epi ? "QuickGELU gradient epilogue" :
                     ln ? (on_a ? "LayerNorm on A" : "LayerNorm on B") : (on_a ? "QuickGELU on A" : "QuickGELU on B"),
                     (long long)M, (long long)N, (long long)K, ta, tb, extra ? " beta bias" : "");
            for (int t = 1; t <= 3; t++) {
                memcpy(got, C0, (size_t)(M * N) * sizeof(float));
                f.C = got;
                SET_THREADS(t);
                gemm_bf16_fused(&g_mm, &f);
                XC_EXPECT(!memcmp(got, ref, (size_t)(M * N) * sizeof(float)), "%s, %d threads: not the unfused route's bits",
                          what, t);
            }
            SET_THREADS(2);
            cases++;
            if (epi) free((void *)f.gelu_x);
            free(A); free(B); free(C0); free(bias); free(lw); free(lb); free(Xp); free(mean); free(rstd); free(mean2);
            free(rstd2); free(ref); free(got);
        }
    printf("  %s fused prologues and epilogue: %d cases bitwise equal to the unfused route with 1, 2 and 3 threads\n",
           gemm_bf16_kernel_name(&g_mm), cases);
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
    Gemm *pt = gemm_per_thread(mm, 2); // but through a per-thread context there: the bf16 path, bit for bit
    memset(C[2], 0, sizeof(float) * (size_t)n);
    uint64_t calls0 = pt[0].bf16_calls + pt[1].bf16_calls;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        gemm_run(&pt[THREAD_NUM()], false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C[2], N);
    }
    XC_EXPECT(!memcmp(C[2], C[1], sizeof(float) * (size_t)n) && pt[0].bf16_calls + pt[1].bf16_calls == calls0 + 1,
              "a GEMM through a per-thread context inside a parallel region is not the bf16 path");
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
    XC_EXPECT(!gemm_per_thread(&fp32, 2) && !gemm_per_thread(NULL, 2), "per-thread contexts for float32 (want NULL: SGEMM)");
    gemm_free(&fp32);
    for (int i = 0; i < 4; i++) free(C[i]);
    free(A);
    free(B);
}

// Attention's products in bf16: each (batch, head) in attention's OpenMP loop through that thread's per-thread
// context. Self-attention with a causal mask (batch 3, 70 tokens, 2 heads of 64: Q K^T is 70 x 70 x 64, above the
// bf16 path's 64^3) and cross-attention (66 queries, 75 keys), forward and backward, against the same ops in float32:
// the output and every gradient within ATTN_TOL of their max |ref| (bf16's 2^-9 per operand, P included; reached:
// 3.7e-3) and at least 1e-4 away from float32; all 7 products per (batch, head) on the bf16 path (2 forward, the
// backward's recomputed Q K^T and its 4: one left in float32 fails); the same bits with 1, 2 and 3 threads and run
// to run.
#define ATTN_TOL 1e-2
enum { ATTN_B = 3, ATTN_L = 70, ATTN_LK = 75, ATTN_W = 128, ATTN_HEADS = 2 };

typedef struct AttnRun {
    float *out[4]; // the output, then the gradients of qkv (self) or of q, k, v (cross)
    int64_t n[4];
    int nout;
} AttnRun;

static uint64_t per_thread_calls(const Gemm *mm) {
    uint64_t n = 0;
    for (int t = 0; mm && t < mm->n_per_thread; t++) n += mm->per_thread[t].bf16_calls;
    return n;
}

static void attention_case(Gemm *mm, bool cross, AttnRun *run) {
    Rng r = rng_stream(34, RNG_STREAM_TEST);
    ParamStore ps;
    param_store_init(&ps, "attention");
    Tensor *in[3];
    int nin = cross ? 3 : 1;
    if (cross) {
        in[0] = param_new(&ps, "q", 3, (int64_t[]){ATTN_B, ATTN_L, ATTN_W});
        in[1] = param_new(&ps, "k", 3, (int64_t[]){ATTN_B, ATTN_LK, ATTN_W});
        in[2] = param_new(&ps, "v", 3, (int64_t[]){ATTN_B, ATTN_LK, ATTN_W});
    } else {
        in[0] = param_new(&ps, "qkv", 3, (int64_t[]){ATTN_B, ATTN_L, 3 * ATTN_W});
    }
    for (int i = 0; i < nin; i++) rng_fill_uniform(&r, in[i]->data, in[i]->numel, -1.0f, 1.0f);
    float *dy = rnd(&r, (int64_t)ATTN_B * ATTN_L * ATTN_W);
    Graph g;
    graph_init(&g, 16u << 20);
    g.gemm = mm;
    Tensor *y;
    const uint64_t calls0 = per_thread_calls(mm);
    if (cross) {
        y = op_cross_attention(&g, in[0], in[1], in[2], ATTN_HEADS);
    } else {
        Tensor *mask = tensor_zeros(&g, 2, (int64_t[]){ATTN_L, ATTN_L});
        for (int64_t i = 0; i < ATTN_L; i++)
            for (int64_t j = i + 1; j < ATTN_L; j++) mask->data[i * ATTN_L + j] = -INFINITY;
        y = op_attention(&g, in[0], ATTN_HEADS, mask);
    }
    graph_backward_from(&g, y, dy);
    const uint64_t calls = per_thread_calls(mm) - calls0, want = mm ? 7 * ATTN_B * ATTN_HEADS : 0;
    XC_EXPECT(calls == want, "%s: %llu products on the bf16 path, want %llu", cross ? "cross-attention" : "attention",
              (unsigned long long)calls, (unsigned long long)want);
    run->nout = 1 + nin;
    for (int i = 0; i < run->nout; i++) {
        const Tensor *t = i == 0 ? y : in[i - 1];
        run->n[i] = t->numel;
        run->out[i] = malloc((size_t)t->numel * sizeof(float));
        memcpy(run->out[i], i == 0 ? t->data : t->grad, (size_t)t->numel * sizeof(float));
    }
    graph_free(&g);
    param_store_free(&ps);
    free(dy);
}

static bool attention_same(const AttnRun *a, const AttnRun *b) {
    for (int i = 0; i < a->nout; i++)
        if (memcmp(a->out[i], b->out[i], (size_t)a->n[i] * sizeof(float))) return false;
    return true;
}

static void attention_free(AttnRun *run) {
    for (int i = 0; i < run->nout; i++) free(run->out[i]);
}

static void test_attention(void) {
    const char *kn = gemm_bf16_kernel_name(&g_mm);
    for (int cross = 0; cross < 2; cross++) {
        static const char *self_names[2] = {"output", "grad qkv"}, *cross_names[4] = {"output", "grad q", "grad k", "grad v"};
        AttnRun ref, run[3];
        attention_case(NULL, cross, &ref);
        for (int t = 0; t < 3; t++) {
            SET_THREADS(t + 1);
            attention_case(&g_mm, cross, &run[t]);
        }
        SET_THREADS(2);
        double worst = 0, least = 1;
        for (int i = 0; i < ref.nout; i++) {
            char name[96];
            snprintf(name, sizeof name, "%s bf16 (%s) %s", cross ? "cross-attention" : "attention", kn,
                     cross ? cross_names[i] : self_names[i]);
            double e = xc_expect_scaled(name, run[1].out[i], ref.out[i], ref.n[i], ATTN_TOL);
            XC_EXPECT(e >= 1e-4, "%s: %.2e from float32: its products did not round to bf16", name, e);
            worst = fmax(worst, e);
            least = fmin(least, e);
        }
        XC_EXPECT(attention_same(&run[0], &run[1]) && attention_same(&run[0], &run[2]),
                  "%s bf16 (%s): results differ between 1, 2 and 3 threads", cross ? "cross-attention" : "attention", kn);
        AttnRun again;
        attention_case(&g_mm, cross, &again);
        XC_EXPECT(attention_same(&run[1], &again), "%s bf16 (%s): a repeated run differs",
                  cross ? "cross-attention" : "attention", kn);
        printf("  %s with bf16 products on %s: %.2e .. %.2e of max |ref| from float32 (tolerance %.1e); "
               "the same bits with 1, 2, 3 threads\n", cross ? "cross-attention" : "attention", kn, least, worst, ATTN_TOL);
        attention_free(&ref);
        attention_free(&again);
        for (int t = 0; t < 3; t++) attention_free(&run[t]);
    }
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
    const char *kn = gemm_bf16_kernel_name(&g_mm);
    snprintf(name, sizeof name, "%s bf16 (%s) logits", cfgname, kn);
    double e_feat = xc_expect_scaled(name, o.logits->data, logits.data, logits.numel, 2e-2);
    snprintf(name, sizeof name, "%s bf16 (%s) video_features", cfgname, kn);
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
        snprintf(name, sizeof name, "%s bf16 (%s) grad %s", cfgname, kn, p->name);
        e_grad = fmax(e_grad, xc_expect_scaled(name, p->grad, gref.data, gref.numel, 6e-2));
        double c = cosine(p->grad, gref.data, gref.numel);
        worst_cos = fmin(worst_cos, c);
        XC_EXPECT(c >= 0.999, "%s: cosine with the reference %.5f < 0.999", name, c);
        compared++;
        h5_array_free(&gref);
    }
    XC_EXPECT(calls > 0 && compared > 0, "%s: %llu bf16 GEMMs, %d gradients compared", cfgname, (unsigned long long)calls, compared);
    printf("  %s with bf16 matmuls on %s (%llu GEMMs): logits/features %.2e, gradients %.2e (worst cosine %.5f, %d tensors)\n",
           cfgname, kn, (unsigned long long)calls, e_feat, e_grad, worst_cos, compared);
    graph_free(&g);
    xclip_free(&m);
    param_store_free(&ps);
    h5_array_free(&logits);
    h5_array_free(&vfeat);
    xclip_fixture_close(&fx);
}

// The naive twins of the kernels' arithmetic: element by element, the sum of the bf16-rounded operands' products
// (zeros beyond K), each add a scalar FMA or add under MXCSR's FTZ and DAZ; then the epilogue in the kernels' order:
// alpha sum, beta C fused in, the bias added (without FTZ / DAZ).
//   pairs (VDPBF16PS as Intel documents it; the AVX512 kernels): over the pairs of k in order, the product of
//          k = 2p + 1 added first, then that of k = 2p;
//   tiles (TDPBF16PS as Intel's SDM gives it; the AMX kernel): over tiles of 32 k in order, two sums from zero of
//          the products of even and of odd k, pair by pair, then their sum added to the total.
__attribute__((target("fma"))) static float fma1(float a, float b, float c) {
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

__attribute__((target("fma"))) static void gemm_twin(bool tiles, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                                     float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                                                     float beta, const float *bias, float *C, int64_t ldc) {
    const unsigned csr = _mm_getcsr();
#define TWIN_A(k) ((k) < K ? bf16_round(ta ? A[(k) * lda + i] : A[i * lda + (k)]) : 0.0f)
#define TWIN_B(k) ((k) < K ? bf16_round(tb ? B[j * ldb + (k)] : B[(k) * ldb + j]) : 0.0f)
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float sum = 0.0f;
            _mm_setcsr(csr | 0x8040); // FTZ, DAZ
            if (!tiles) {
                for (int64_t k = 0; k < K; k += 2) {
                    sum = fma1(TWIN_A(k + 1), TWIN_B(k + 1), sum);
                    sum = fma1(TWIN_A(k), TWIN_B(k), sum);
                }
            } else {
                for (int64_t k0 = 0; k0 < K; k0 += 32) {
                    float even = 0.0f, odd = 0.0f;
                    for (int64_t k = k0; k < k0 + 32; k += 2) {
                        even = fma1(TWIN_A(k), TWIN_B(k), even);
                        odd = fma1(TWIN_A(k + 1), TWIN_B(k + 1), odd);
                    }
                    sum = sum + (even + odd);
                }
            }
            _mm_setcsr(csr);
            float v = alpha * sum;
            if (beta != 0.0f) v = fma1(beta, C[i * ldc + j], v);
            if (bias) v += bias[j];
            C[i * ldc + j] = v;
        }
#undef TWIN_A
#undef TWIN_B
}

// Each kernel against its naive twin, bit for bit: every transpose, beta and bias at sizes off the blocks, on
// operands of ordinary size and on tiny ones whose products and partial sums fall below float32's normal range
// (2^-126), where only the flushing keeps the bits. The kernels built to that arithmetic must match (avx512-fma, and
// amx-emulated, which differs from the real AMX kernel only in TDPBF16PS); the units' matches are reported, not
// required: Intel documents these orders and flushing (and the Emerald Rapids VM here follows VDPBF16PS's), other
// vendors' or later implementations may round otherwise.
static void test_twins(void) {
    const struct { Bf16Kernel kernel; bool tiles, required; } kern[] = {
        {XC_BF16_AVX512_FMA, false, true}, {XC_BF16_AVX512, false, false},
        {XC_BF16_AMX_EMULATED, true, true}, {XC_BF16_AMX, true, false}};
    enum { NK = sizeof kern / sizeof kern[0] };
    XcError err;
    Gemm mm[NK];
    bool here[NK];
    for (int q = 0; q < NK; q++) {
        here[q] = xc_bf16_kernel_available(kern[q].kernel);
        if (here[q] && (gemm_init(&mm[q], XC_MATMUL_BF16, &err) != XC_OK || gemm_set_bf16_kernel(&mm[q], kern[q].kernel, &err) != XC_OK)) {
            XC_EXPECT(false, "%s refused although available: %s", xc_bf16_kernel_name(kern[q].kernel), err.msg);
            return;
        }
    }
    Rng r = rng_stream(37, RNG_STREAM_TEST);
    const int64_t sizes[][3] = {{1, 1, 1}, {13, 33, 1}, {25, 31, 31}, {33, 17, 65}, {100, 70, 129}, {70, 600, 1100}};
    int cases = 0, same[NK] = {0};
    long long elems = 0, differ[NK] = {0}, differ_twins = 0;
    for (int tiny = 0; tiny < 2; tiny++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int v = 0; v < 16; v++) {
                const int ta = v & 1, tb = v >> 1 & 1, with_beta = v >> 2 & 1, with_bias = v >> 3 & 1;
                const int64_t M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
                if (M * N * K > 1000000 && (with_beta != with_bias)) continue; // the largest size: 8 variants
                const int64_t lda = (ta ? M : K) + 1, ldb = (tb ? K : N) + 3, ldc = N + 2;
                const int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb;
                float *A = rnd(&r, na), *B = rnd(&r, nb), *C0 = rnd(&r, M * ldc), *bias = with_bias ? rnd(&r, N) : NULL;
                float *C = malloc((size_t)(M * ldc) * sizeof(float)), *ref[2];
                if (tiny) { // products below 2^-124, mostly below 2^-126: some partial sums flushed, some kept
                    for (int64_t i = 0; i < na; i++) A[i] *= 0x1p-60f;
                    for (int64_t i = 0; i < nb; i++) B[i] *= 0x1p-64f;
                    for (int64_t i = 0; i < M * ldc; i++) C0[i] *= 0x1p-126f;
                }
                const float beta = with_beta ? 0.5f : 0.0f;
                for (int t = 0; t < 2; t++) {
                    ref[t] = malloc((size_t)(M * ldc) * sizeof(float));
                    memcpy(ref[t], C0, (size_t)(M * ldc) * sizeof(float));
                    gemm_twin(t == 1, ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, bias, ref[t], ldc);
                }
                for (int q = 0; q < NK; q++) {
                    if (!here[q]) continue;
                    memcpy(C, C0, (size_t)(M * ldc) * sizeof(float));
                    gemm_bf16_bias(&mm[q], ta, tb, M, N, K, 0.7f, A, lda, B, ldb, beta, bias, C, ldc);
                    const float *want = ref[kern[q].tiles];
                    int bad = 0;
                    for (int64_t i = 0; i < M; i++)
                        for (int64_t j = 0; j < N; j++) bad += memcmp(&C[i * ldc + j], &want[i * ldc + j], sizeof(float)) != 0;
                    if (kern[q].required)
                        XC_EXPECT(bad == 0, "%s differs from its naive twin in %d of %lld elements (%s operands, "
                                  "M %lld N %lld K %lld, ta %d tb %d beta %g bias %d)", xc_bf16_kernel_name(kern[q].kernel),
                                  bad, (long long)(M * N), tiny ? "tiny" : "ordinary", (long long)M, (long long)N,
                                  (long long)K, ta, tb, beta, with_bias);
                    same[q] += bad == 0;
                    differ[q] += bad;
                }
                int64_t apart = 0; // the two orders must give different bits somewhere, or the tile twin tests nothing new
                for (int64_t i = 0; i < M * ldc; i++) apart += memcmp(&ref[0][i], &ref[1][i], sizeof(float)) != 0;
                elems += M * N;
                differ_twins += apart;
                cases++;
                free(A), free(B), free(C0), free(C), free(ref[0]), free(ref[1]), free(bias);
            }
    printf("  naive twins of the kernels' arithmetic (scalar FMAs, FTZ / DAZ; ordinary and tiny operands, every transpose, "
           "beta, bias; %lld of %lld elements differ between the pairs' and the tiles' order):\n", differ_twins, elems);
    for (int q = 0; q < NK; q++) {
        if (!here[q]) {
            printf("    %s: not available here\n", xc_bf16_kernel_name(kern[q].kernel));
            continue;
        }
        printf("    %s (%s, %s): the same bits in %d of %d cases, %lld of %lld elements differing\n",
               xc_bf16_kernel_name(kern[q].kernel), kern[q].tiles ? "tiles' twin" : "pairs' twin",
               kern[q].required ? "required" : "reported, not required", same[q], cases, differ[q], elems);
        gemm_free(&mm[q]);
    }
    XC_EXPECT(differ_twins > 0, "the pairs' and the tiles' twins agree everywhere: the test cannot tell the orders apart");
}

// gemm_init's choice, and a kernel the CPU lacks refused with mm unchanged.
static void test_choice(void) {
    XcError err;
    Gemm mm;
    XC_EXPECT(gemm_init(&mm, XC_MATMUL_BF16, &err) == XC_OK, "gemm_init(BF16): %s", err.msg);
    const double speed = xc_vdpbf16ps_speed();
    const Bf16Kernel want = xc_amx_available() ? XC_BF16_AMX : speed < 0.75 ? XC_BF16_AVX512_FMA : XC_BF16_AVX512;
    XC_EXPECT(mm.kernel == xc_bf16_best_kernel() && mm.kernel == want, "gemm_init chose %s, want AMX if usable, else "
              "avx512-fma where VDPBF16PS does < 0.75x the FMA's multiply-adds (%.2fx here), else avx512-bf16",
              gemm_bf16_kernel_name(&mm), speed);
    XC_EXPECT(speed > 0, "VDPBF16PS's speed was not measured (%g)", speed);
    printf("  units here: AMX %s, AVX512-BF16 %s (VDPBF16PS: %.2fx the multiply-adds of FMA); gemm_init chose %s\n",
           xc_amx_available() ? "yes" : "no", xc_avx512bf16_available() ? "yes" : "no", speed, gemm_bf16_kernel_name(&mm));
    for (Bf16Kernel k = XC_BF16_AMX; k <= XC_BF16_AMX_EMULATED; k++)
        XC_EXPECT(xc_bf16_kernel_named(xc_bf16_kernel_name(k)) == k, "kernel %d's name '%s' names another", k, xc_bf16_kernel_name(k));
    XC_EXPECT(xc_bf16_kernel_named("avx512") == XC_BF16_NONE, "an unknown kernel name accepted");
    const Bf16Kernel all[] = {XC_BF16_AMX, XC_BF16_AVX512, XC_BF16_AVX512_FMA, XC_BF16_AMX_EMULATED};
    for (int i = 0; i < 4; i++) {
        Bf16Kernel before = mm.kernel;
        int rc = gemm_set_bf16_kernel(&mm, all[i], &err);
        if (xc_bf16_kernel_available(all[i])) {
            XC_EXPECT(rc == XC_OK && mm.kernel == all[i], "%s available but not taken", xc_bf16_kernel_name(all[i]));
        } else {
            XC_EXPECT(rc != XC_OK && mm.kernel == before && strstr(err.msg, xc_bf16_kernel_name(all[i])),
                      "%s missing here but not refused by name (or mm changed)", xc_bf16_kernel_name(all[i]));
        }
    }
    gemm_free(&mm);
}

int main(void) {
    const Bf16Kernel all[] = {XC_BF16_AMX, XC_BF16_AVX512, XC_BF16_AVX512_FMA, XC_BF16_AMX_EMULATED};
    if (xc_bf16_best_kernel() == XC_BF16_NONE) {
        XcError err;
        Gemm mm;
        int rc = gemm_init(&mm, XC_MATMUL_BF16, &err);
        printf("test_bf16: SKIPPED: this CPU or kernel offers neither AMX-BF16 nor AVX512-BF16 (the bf16 matmul path "
               "cannot run here; gemm_init %s: %s)\n", rc == XC_OK ? "accepted it anyway" : "refuses it",
               rc == XC_OK ? "" : err.msg);
        return rc == XC_OK ? 1 : 77;
    }
    test_choice();
    test_twins();
    for (int i = 0; i < 4; i++) {
        if (!xc_bf16_kernel_available(all[i])) {
            printf("  %s: not available here, not tested\n", xc_bf16_kernel_name(all[i]));
            continue;
        }
        XcError err;
        if (gemm_init(&g_mm, XC_MATMUL_BF16, &err) != XC_OK || gemm_set_bf16_kernel(&g_mm, all[i], &err) != XC_OK) {
            fprintf(stderr, "FAIL: a bf16 context on %s refused although the unit is available: %s\n",
                    xc_bf16_kernel_name(all[i]), err.msg);
            return 1;
        }
        test_gemm();
        test_threads();
        test_fused();
        test_dispatch();
        test_attention();
        test_model("t3");
        test_model("t8");
        gemm_free(&g_mm);
    }
    return xc_test_summary("test_bf16");
}
