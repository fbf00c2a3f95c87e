// gemm_bf16.h - private to the bf16 GEMM: the kernels behind gemm_bf16 / gemm_bf16_bias / gemm_bf16_fused
// (kernels.h). gemm_bf16.c holds the entry (checks in baseline code, K = 0, dispatch on mm->kernel),
// gemm_bf16_amx.c the AMX kernel (real or emulated), gemm_bf16_avx512.c the two AVX512 ones. All take the call as
// gemm_bf16_fused describes it (kernels.h, with its prologues and epilogue) at any alpha (alpha sum in place of the
// sum) and compute, for M, N, K >= 1 outside a parallel region (anywhere when mm->serial: then on the calling thread
// alone),
//   C (M, N) = alpha op(A) op(B) + beta C (+ bias (N) on every row; NULL: none)
// with op(A), op(B) rounded to bfloat16 (nearest even), exact products and float32 sums in an order that does not
// depend on the thread count, packing into mm's buffers.
#pragma once
#include "autograd/kernels.h"

// mm->kernel XC_BF16_AMX or XC_BF16_AMX_EMULATED.
void gemm_bf16_amx(Gemm *mm, float alpha, const GemmFused *f);
// mm->kernel XC_BF16_AVX512 or XC_BF16_AVX512_FMA.
void gemm_bf16_avx512(Gemm *mm, float alpha, const GemmFused *f);

// A packing buffer of *cap bf16 values grown to at least halfs (64-byte aligned; contents not kept).
uint16_t *gemm_bf16_grow(uint16_t **buf, size_t *cap, size_t halfs);

// Counts one GEMM into XCLIP_PROFILE's accounting (gemm.c; kernels.h, gemm_profile_now), by the calling thread.
void xc_gemm_profile_add(bool bf16, int64_t M, int64_t N, int64_t K, double seconds);
