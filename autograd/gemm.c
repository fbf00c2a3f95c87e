// gemm.c - row-major GEMM through OpenBLAS (or the bf16 AMX path, see kernels.h), and its naive twin for tests.
#include "autograd/kernels.h"
#include "autograd/util.h"

#include <cblas.h>
#include <string.h>

// Work (M N K) from which XC_MATMUL_BF16 takes the AMX path: below it packing costs more than it saves.
#define BF16_MIN_WORK (64.0 * 64.0 * 64.0)


static bool use_bf16(int64_t M, int64_t N, int64_t K) {
    return xc_matmul_precision() == XC_MATMUL_BF16 && (double)M * (double)N * (double)K >= BF16_MIN_WORK && !xc_in_parallel();
}

void xc_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
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
    if (use_bf16(M, N, K)) {
        xc_gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
                (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void xc_gemm_bias(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                  int64_t ldb, const float *bias, float *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (K > 0 && use_bf16(M, N, K)) {
        xc_gemm_bf16_bias(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C, ldc);
        return;
    }
    if (bias) {
#pragma omp parallel for schedule(static) if (M * N >= XC_PAR_MIN)
        for (int64_t r = 0; r < M; r++) memcpy(C + r * ldc, bias, (size_t)N * sizeof(float));
    }
    xc_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, bias ? 1.0f : 0.0f, C, ldc);
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
