// gemm_bf16_pack.h - private to the bf16 GEMM: what the AMX kernel (gemm_bf16_amx.c) and the AVX512 kernels
// (gemm_bf16_avx512.c) share. Packing converts float32 operands to pairs of bfloat16 (round to nearest even,
// VCVTNE2PS2BF16), a fused prologue applying LayerNorm or QuickGELU to the values on the way (kernels.h,
// GemmPre); the epilogue stores a block of float32 sums into C (alpha, beta, bias, or QuickGELU's gradient).
// A pair dword holds two bf16 values, the first (even k) in its low word: the layout VDPBF16PS and TDPBF16PS read.
// Static inline, built for AVX512-BF16: callers are functions built for that or more (the AMX kernel's target
// includes it).
#pragma once
#include "autograd/kernels.h"

#include <immintrin.h>

#define BF16_PACK_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

// The first n of 16 lanes (n <= 0: none).
static inline __mmask16 mask16(int64_t n) { return (__mmask16)(n >= 16 ? 0xffff : n > 0 ? (1u << n) - 1 : 0); }

// 16 dwords, dword q = (bf16 x[2q], bf16 x[2q + 1]) of x[0..n) (values from n on are 0; n <= 0: all zero).
// Masked loads read nothing beyond n.
BF16_PACK_TARGET static inline __m512i pairs_along(const float *x, int64_t n) {
    __m512 lo = _mm512_maskz_loadu_ps(mask16(n), x), hi = _mm512_maskz_loadu_ps(mask16(n - 16), x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); // lo's 16 values in the low half: k even in the low word
}

// 16 dwords, dword j = (bf16 x0[j], bf16 x1[j]) for j < n (else 0); x1 NULL: zeros.
BF16_PACK_TARGET static inline __m512i pairs_across(const float *x0, const float *x1, int64_t n) {
    static const short INTERLEAVE[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                         8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __m512 a = _mm512_maskz_loadu_ps(mask16(n), x0), b = x1 ? _mm512_maskz_loadu_ps(mask16(n), x1) : _mm512_setzero_ps();
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, a); // a's 16 then b's 16
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(INTERLEAVE), both);
}

// In-place transpose of 16 x 16 dwords (r[i] lane c <-> r[c] lane i): at scale s = 8, 4, 2, 1 rows i and i + s
// (bit s of i clear) swap their off-diagonal s x s blocks.
BF16_PACK_TARGET static inline void transpose16(__m512i r[16]) {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
#pragma GCC unroll 4
    for (int s = 8; s >= 1; s /= 2) {
        __mmask16 hi = _mm512_test_epi32_mask(lane, _mm512_set1_epi32(s)); // lanes with bit s set
        // row i keeps its lanes without bit s and takes row i + s's lanes without bit s into the others;
        // row i + s takes row i's lanes with bit s into its lanes without it and keeps its lanes with it
        __m512i take_lo = _mm512_mask_add_epi32(lane, hi, lane, _mm512_set1_epi32(16 - s));
        __m512i take_hi = _mm512_mask_add_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(s)), hi, lane, _mm512_set1_epi32(16));
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
            if (!(i & s)) {
                __m512i x = r[i], y = r[i + s];
                r[i] = _mm512_permutex2var_epi32(x, take_lo, y);
                r[i + s] = _mm512_permutex2var_epi32(x, take_hi, y);
            }
    }
}

// t[0..n) = pre(x[0..n)), x being row r of the stored operand from column c0 (n <= 32; nothing written when n <= 0).
BF16_PACK_TARGET static inline void pre_apply(const GemmPre *pre, const float *x, int64_t r, int64_t c0, int64_t n, float *t) {
    if (pre->kind == XC_PRE_LAYERNORM) {
        const float m = pre->mean[r], s = pre->rstd[r], *w = pre->w + c0, *b = pre->b + c0;
        for (int64_t j = 0; j < n; j++) t[j] = xc_layernorm1(x[j], m, s, w[j], b[j]);
    } else {
        for (int64_t j = 0; j < n; j++) t[j] = xc_quick_gelu1(x[j]);
    }
}

// pairs_along of pre(row r from column c0) (pre NULL: the row as stored).
BF16_PACK_TARGET static inline __m512i pairs_along_pre(const GemmPre *pre, const float *row, int64_t r, int64_t c0, int64_t n) {
    if (!pre) return pairs_along(row + c0, n);
    float t[32];
    n = n < 32 ? n : 32;
    pre_apply(pre, row + c0, r, c0, n, t);
    return pairs_along(t, n);
}

// pairs_across of pre(rows r and r + 1 from column c0) (pre NULL: as stored; x1 NULL: zeros).
BF16_PACK_TARGET static inline __m512i pairs_across_pre(const GemmPre *pre, const float *x0, const float *x1, int64_t r,
                                                        int64_t c0, int64_t n) {
    if (!pre) return pairs_across(x0 + c0, x1 ? x1 + c0 : NULL, n);
    float t0[16], t1[16];
    n = n < 16 ? n : 16;
    pre_apply(pre, x0 + c0, r, c0, n, t0);
    if (x1) pre_apply(pre, x1 + c0, r + 1, c0, n, t1);
    return pairs_across(t0, x1 ? t1 : NULL, n);
}

// The block of sums acc (row stride acc_ld, 64-byte aligned rows) for C's rows i0.. and columns j0.., clipped to
// rows x cols: C = alpha acc, then beta C fused in, then the bias added; or with f->gelu_x C += alpha acc
// xc_quick_gelu_grad1(gelu_x) (xc_quick_gelu_bwd's arithmetic on the product as gemm_bf16 would store it).
BF16_PACK_TARGET static inline void store_block(const float *acc, int64_t acc_ld, int64_t i0, int64_t j0, int64_t rows,
                                                int64_t cols, float alpha, const GemmFused *f) {
    const int64_t ldc = f->ldc;
    if (f->gelu_x) {
        for (int64_t r = 0; r < rows; r++) {
            float *c = f->C + (i0 + r) * ldc + j0;
            const float *x = f->gelu_x + (i0 + r) * ldc + j0, *a = acc + r * acc_ld;
            for (int64_t j = 0; j < cols; j++) c[j] += alpha * a[j] * xc_quick_gelu_grad1(x[j]);
        }
        return;
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(f->beta);
    for (int64_t r = 0; r < rows; r++) {
        float *c = f->C + (i0 + r) * ldc + j0;
        for (int64_t h = 0; h < cols; h += 16) {
            const __mmask16 m = mask16(cols - h);
            __m512 v = _mm512_mul_ps(va, _mm512_load_ps(acc + r * acc_ld + h));
            if (f->beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c + h), v);
            if (f->bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, f->bias + j0 + h));
            _mm512_mask_storeu_ps(c + h, m, v);
        }
    }
}
