// gemm.c - row-major GEMM through OpenBLAS (or the bf16 path, see kernels.h), and its naive twin for tests.
#include "autograd/kernels.h"
#include "autograd/gemm_bf16.h"
#include "autograd/util.h"

#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

// Work (M N K) from which XC_MATMUL_BF16 takes the bf16 path: below it packing costs more than it saves.
#define BF16_MIN_WORK (64.0 * 64.0 * 64.0)


// ---- GEMM accounting (XCLIP_PROFILE) ----
static _Atomic int profile_state; // 0: environment not read yet, 1: off, 2: on
static GemmProfile profile;       // since the process started; updated and read atomically (GEMMs inside
                                  // parallel regions count at the same time)

bool gemm_profile_on(void) {
    int st = atomic_load_explicit(&profile_state, memory_order_relaxed);
    if (!st) { // every thread that gets here reads the same environment and stores the same value
        const char *p = getenv("XCLIP_PROFILE");
        st = p && *p && strcmp(p, "0") ? 2 : 1;
        atomic_store_explicit(&profile_state, st, memory_order_relaxed);
    }
    return st == 2;
}

void xc_gemm_profile_add(bool bf16, int64_t M, int64_t N, int64_t K, double seconds) {
    GemmProfileRow *r = &profile.row[bf16][xc_in_parallel() ? GEMM_PROFILE_IN_REGION : GEMM_PROFILE_TEAM];
    const double flop = 2.0 * (double)M * (double)N * (double)K;
#pragma omp atomic
    r->calls++;
#pragma omp atomic
    r->seconds += seconds;
#pragma omp atomic
    r->flop += flop;
}

GemmProfile gemm_profile_now(void) {
    GemmProfile p;
    for (int b = 0; b < 2; b++)
        for (int w = 0; w < 2; w++) { // atomic reads: other threads may be counting
            const GemmProfileRow *r = &profile.row[b][w];
            GemmProfileRow *o = &p.row[b][w];
#pragma omp atomic read
            o->calls = r->calls;
#pragma omp atomic read
            o->seconds = r->seconds;
#pragma omp atomic read
            o->flop = r->flop;
        }
    return p;
}

GemmProfile gemm_profile_diff(const GemmProfile *now, const GemmProfile *base) {
    GemmProfile d;
    for (int b = 0; b < 2; b++)
        for (int w = 0; w < 2; w++) {
            const GemmProfileRow *n = &now->row[b][w], *o = &base->row[b][w];
            d.row[b][w] = (GemmProfileRow){n->calls - o->calls, n->seconds - o->seconds, n->flop - o->flop};
        }
    return d;
}

void gemm_profile_print(const GemmProfile *p, double wall_seconds, FILE *f) {
    static const char *const caller[2] = {"team (wall s)", "in regions (thread s)"};
    for (int b = 0; b < 2; b++)
        for (int w = 0; w < 2; w++) {
            const GemmProfileRow *r = &p->row[b][w];
            if (!r->calls) continue;
            fprintf(f, "profile: gemm %-4s %-22s %8lld calls %9.3f s %9.1f GFLOP %7.1f GFLOP/s", b ? "bf16" : "fp32",
                    caller[w], (long long)r->calls, r->seconds, r->flop / 1e9, r->seconds > 0 ? r->flop / r->seconds / 1e9 : 0.0);
            if (wall_seconds > 0) fprintf(f, "  %5.1f%% of the wall time", 100.0 * r->seconds / wall_seconds);
            fputc('\n', f);
        }
}

static bool use_bf16(const Gemm *mm, int64_t M, int64_t N, int64_t K) {
    return mm && mm->precision == XC_MATMUL_BF16 && (double)M * (double)N * (double)K >= BF16_MIN_WORK &&
           (mm->serial || !xc_in_parallel());
}

bool gemm_fuses(const Gemm *mm, int64_t M, int64_t N, int64_t K) {
    return use_bf16(mm, M, N, K);
}

int gemm_init(Gemm *mm, MatmulPrecision p, XcError *err) {
    memset(mm, 0, sizeof *mm);
    mm->kernel = xc_bf16_best_kernel(); // also for FP32: gemm_bf16 called directly runs on it
    if (p == XC_MATMUL_BF16 && mm->kernel == XC_BF16_NONE)
        return xc_err(err, "bf16 matmul needs Intel AMX (AMX-BF16 and AMX-TILE, Linux >= 5.16) or AVX512-BF16 (AVX512F, "
                           "BW, VL and BF16: AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids and later); this CPU "
                           "or kernel offers neither");
    mm->precision = p;
    return XC_OK;
}

int gemm_set_bf16_kernel(Gemm *mm, Bf16Kernel k, XcError *err) {
    if (!xc_bf16_kernel_available(k))
        return xc_err(err, "the %s bf16 kernel is not available on this CPU or kernel", xc_bf16_kernel_name(k));
    mm->kernel = k;
    return XC_OK;
}

void gemm_free(Gemm *mm) {
    for (int t = 0; t < mm->n_per_thread; t++) gemm_free(&mm->per_thread[t]);
    xc_free(mm->per_thread);
    xc_free(mm->apack);
    xc_free(mm->bpack);
    memset(mm, 0, sizeof *mm);
}

Gemm *gemm_per_thread(Gemm *mm, int n) {
    if (!mm || mm->precision != XC_MATMUL_BF16) return NULL;
    XC_CHECK(!xc_in_parallel() && !mm->serial, "gemm_per_thread inside a parallel region or on a per-thread context");
    if (n > mm->n_per_thread) { // the existing contexts keep their buffers
        mm->per_thread = xc_realloc(mm->per_thread, (size_t)n * sizeof *mm->per_thread);
        for (int t = mm->n_per_thread; t < n; t++)
            mm->per_thread[t] = (Gemm){.precision = mm->precision, .kernel = mm->kernel, .serial = true};
        mm->n_per_thread = n;
    }
    for (int t = 0; t < n; t++) mm->per_thread[t].kernel = mm->kernel; // gemm_set_bf16_kernel may have changed it
    return mm->per_thread;
}

const char *gemm_precision_name(MatmulPrecision p) { return p == XC_MATMUL_BF16 ? "bf16" : "fp32"; }

const char *gemm_bf16_kernel_name(const Gemm *mm) { return xc_bf16_kernel_name(mm->kernel); }

void gemm_run(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    XC_CHECK(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX && lda <= INT32_MAX && ldb <= INT32_MAX &&
                 ldc <= INT32_MAX, "GEMM dimension beyond 32-bit BLAS range (%lld x %lld x %lld)",
             (long long)M, (long long)N, (long long)K);
    if (K == 0) { // BLAS would leave C untouched only for beta == 1
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
        return;
    }
    if (use_bf16(mm, M, N, K)) {
        gemm_bf16(mm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const bool timed = gemm_profile_on();
    const double t0 = timed ? xc_now() : 0;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    if (timed) xc_gemm_profile_add(false, M, N, K, xc_now() - t0);
}

void xc_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gemm_run(NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bias(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
               int64_t ldb, const float *bias, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K > 0 && use_bf16(mm, M, N, K)) {
        gemm_bf16_bias(mm, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C, ldc);
        return;
    }
    if (bias) {
#pragma omp parallel for schedule(static) if (M * N >= XC_PAR_MIN)
        for (int64_t r = 0; r < M; r++) memcpy(C + r * ldc, bias, (size_t)N * sizeof(float));
    }
    gemm_run(mm, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, bias ? 1.0f : 0.0f, C, ldc);
}

void xc_gemm_naive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += (double)a * b;
            }
            float c = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
            C[i * ldc + j] = c + alpha * (float)s;
        }
}
