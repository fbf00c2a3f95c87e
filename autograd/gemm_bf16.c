// gemm_bf16.c - float32 GEMM with bfloat16 products (XC_MATMUL_BF16, see kernels.h): the entry of gemm_bf16_bias and
// gemm_bf16_fused (checks, K = 0, dispatch to the context's kernel), the kernels' names and gemm_init's choice.
// The kernels: Intel AMX (and AMX emulated, for tests) in gemm_bf16_amx.c, the AVX512 ones (VDPBF16PS, or FMAs on
// bf16 operands) in gemm_bf16_avx512.c. This file is baseline x86-64 code, so a CPU without a unit gets a message,
// not SIGILL.
//
// All kernels compute C = alpha op(A) op(B) + beta C with op(A), op(B) rounded to bfloat16 (round to nearest
// even), products exact and sums in float32, on float32 tensors: the arithmetic of torch's float32 matmul
// precision "medium" (AMP's bf16 matmuls also round their outputs to bf16; these stay float32). All fuse a
// LayerNorm or QuickGELU prologue and the QuickGELU-gradient epilogue (gemm_bf16_fused).
#include "autograd/gemm_bf16.h"
#include "autograd/kernels.h"
#include "autograd/util.h"

#include <string.h>

// ---- entry ---------------------------------------------------------------------------------------------
bool xc_bf16_kernel_available(Bf16Kernel k) {
    switch (k) {
    case XC_BF16_AMX: return xc_amx_available();
    case XC_BF16_AVX512:
    case XC_BF16_AVX512_FMA:
    case XC_BF16_AMX_EMULATED: return xc_avx512bf16_available(); // all pack with VCVTNE2PS2BF16
    default: return false;
    }
}

Bf16Kernel xc_bf16_best_kernel(void) {
    if (xc_amx_available()) return XC_BF16_AMX;
    if (!xc_avx512bf16_available()) return XC_BF16_NONE;
    return xc_vdpbf16ps_speed() < 0.75 ? XC_BF16_AVX512_FMA : XC_BF16_AVX512;
}

static const char *const KERNEL_NAMES[] = {"none", "amx", "avx512-bf16", "avx512-fma", "amx-emulated"};

const char *xc_bf16_kernel_name(Bf16Kernel k) {
    return k >= XC_BF16_NONE && k <= XC_BF16_AMX_EMULATED ? KERNEL_NAMES[k] : "none";
}

Bf16Kernel xc_bf16_kernel_named(const char *name) {
    for (int k = XC_BF16_AMX; k <= XC_BF16_AMX_EMULATED; k++)
        if (!strcmp(name, KERNEL_NAMES[k])) return (Bf16Kernel)k;
    return XC_BF16_NONE;
}

uint16_t *gemm_bf16_grow(uint16_t **buf, size_t *cap, size_t halfs) {
    if (halfs > *cap) {
        xc_free(*buf);
        *buf = xc_aligned_alloc(64, halfs * sizeof(uint16_t));
        *cap = halfs;
    }
    return *buf;
}

// The checks run in code built for the baseline CPU, so a CPU without the unit (or AVX-512) gets the message, not SIGILL.
static void bf16_entry(Gemm *mm, float alpha, const GemmFused *f) {
    XC_CHECK(xc_bf16_kernel_available(mm->kernel), "gemm_bf16 on kernel '%s', which this CPU does not offer (AMX: %s, "
             "AVX512-BF16: %s)", xc_bf16_kernel_name(mm->kernel), xc_amx_available() ? "yes" : "no",
             xc_avx512bf16_available() ? "yes" : "no");
    XC_CHECK(mm->serial || !xc_in_parallel(), "gemm_bf16 inside a parallel region (only a per-thread context may)");
    XC_CHECK(!(f->pre_a.kind && f->ta) && !(f->pre_b.kind && f->tb), "gemm_bf16_fused: a prologue on a transposed operand");
    XC_CHECK(!f->gelu_x || (f->beta == 1.0f && !f->bias), "gemm_bf16_fused: the QuickGELU gradient epilogue adds to C "
             "(beta 1, no bias)");
    if (f->M <= 0 || f->N <= 0) return;
    if (f->K <= 0) { // no products: C = beta C (+ bias); the epilogue would add 0 y'(x), so C stays
        if (f->gelu_x) return;
        for (int64_t i = 0; i < f->M; i++)
            for (int64_t j = 0; j < f->N; j++) {
                float *c = f->C + i * f->ldc + j;
                *c = (f->beta == 0.0f ? 0.0f : f->beta * *c) + (f->bias ? f->bias[j] : 0.0f);
            }
        return;
    }
    mm->bf16_calls++;
    const bool timed = gemm_profile_on();
    const double t0 = timed ? xc_now() : 0;
    if (mm->kernel == XC_BF16_AMX || mm->kernel == XC_BF16_AMX_EMULATED) gemm_bf16_amx(mm, alpha, f);
    else gemm_bf16_avx512(mm, alpha, f);
    if (timed) xc_gemm_profile_add(true, f->M, f->N, f->K, xc_now() - t0);
}

void gemm_bf16_bias(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, const float *bias, float *C, int64_t ldc) {
    bf16_entry(mm, alpha, &(GemmFused){.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .A = A, .B = B, .lda = lda, .ldb = ldb,
                                       .beta = beta, .bias = bias, .C = C, .ldc = ldc});
}

void gemm_bf16_fused(Gemm *mm, const GemmFused *f) { bf16_entry(mm, 1.0f, f); }

void gemm_bf16(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gemm_bf16_bias(mm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc);
}
