// gemm_bf16.c - float32 GEMM with bfloat16 products (XC_MATMUL_BF16, see kernels.h): the entry of gemm_bf16_bias and
// gemm_bf16_fused (checks, K = 0, dispatch to the context's kernel), the CPU checks and the kernel on Intel AMX; the
// AVX512 kernels (VDPBF16PS, or FMAs on bf16 operands), the only ones that fuse, are in gemm_bf16_avx512.c.
// Everything outside functions marked AMX_TARGET is baseline x86-64 code.
//
// All kernels compute C = alpha op(A) op(B) + beta C with op(A), op(B) rounded to bfloat16 (round to nearest
// even), products exact and sums in float32, on float32 tensors: the arithmetic of torch's float32 matmul
// precision "medium" (AMP's bf16 matmuls also round their outputs to bf16; these stay float32). The AMX kernel:
//   1. pack op(A) into 16 x 32 bf16 tiles (rows i, 32 consecutive k) and op(B) into 16 x 32 tiles in AMX's
//      pair layout (row r holds (k, k+1) = (2r, 2r+1) of 16 columns), zero-padded to multiples of 32;
//   2. every 32 x 32 block of C is 2 x 2 accumulator tiles fed by TDPBF16PS over the k tiles;
//   3. the block goes back into C through alpha and beta.
// Threads split the rows of C; each walks N in panels whose packed B stays in its L2 cache, and K in chunks
// whose A tiles stay in L1 across the panel (accumulators parked in a small buffer between chunks).
// Packed operands live in the Gemm context's buffers, which only grow (no allocation once the shapes have
// been seen).
#include "autograd/gemm_bf16.h"
#include "autograd/kernels.h"
#include "autograd/util.h"

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))
#define TILE_HALFS 512           // bf16 values per tile (16 rows x 64 bytes)
#define PANEL_BLOCKS 8           // 32-column blocks of C per panel (256 columns)
#define K_CHUNK 16               // k tiles (of 32) per chunk

static int g_amx = -1; // -1 unknown, 0 absent, 1 usable

bool xc_amx_available(void) {
    if (g_amx < 0) {
        __builtin_cpu_init();
        unsigned eax, ebx, ecx, edx;
        bool cpu = false;
        if (__get_cpuid_max(0, NULL) >= 7) {
            __cpuid_count(7, 0, eax, ebx, ecx, edx);
            cpu = (edx >> 22 & 1) && (edx >> 24 & 1) && __builtin_cpu_supports("avx512bw") && // AMX-BF16, AMX-TILE
                  __builtin_cpu_supports("avx512vl");
            __cpuid_count(7, 1, eax, ebx, ecx, edx);
            cpu = cpu && (eax >> 5 & 1); // AVX512_BF16 (the packing converts with VCVTNE2PS2BF16)
        }
        // Linux hands out the 8 KB tile state only on request (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
        g_amx = cpu && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    }
    return g_amx == 1;
}

// ---- packing -------------------------------------------------------------------------------------------
// 32 bf16 of src[0..n) (n <= 32; missing values 0), in order. Masked loads read nothing beyond n.
AMX_TARGET static inline __m512i row32(const float *src, int n) {
    __mmask16 lo = (__mmask16)(n >= 16 ? 0xffff : n > 0 ? (1u << n) - 1 : 0);
    __mmask16 hi = (__mmask16)(n >= 32 ? 0xffff : n > 16 ? (1u << (n - 16)) - 1 : 0);
    __m512 a = _mm512_maskz_loadu_ps(lo, src), b = _mm512_maskz_loadu_ps(hi, src + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

// 16 dwords, dword j = (bf16 x0[j], bf16 x1[j]) for j < n (else 0; n <= 0 in the padding tiles beyond M or
// N); x1 may be NULL (zeros).
AMX_TARGET static inline __m512i pair16(const float *x0, const float *x1, int n) {
    static const short IDX[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                  8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : n > 0 ? (1u << n) - 1 : 0); // n <= 0: a padding tile, all zeros
    __m512 a = _mm512_maskz_loadu_ps(m, x0), b = x1 ? _mm512_maskz_loadu_ps(m, x1) : _mm512_setzero_ps();
    __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, a); // a's 16 then b's 16
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(IDX), both);
}

// Writes v (16 dwords) as column c (dword index) of a 16 x 16-dword tile.
AMX_TARGET static inline void put_column(uint16_t *tile, int c, __m512i v) {
    static const int ROW[16] = {0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240};
    _mm512_i32scatter_epi32((int *)tile + c, _mm512_loadu_si512(ROW), v, 4);
}

// Tiles of X (R, K) = src or src^T (trans; src is then (K, R)), zero-padded to (Rp, Kp): tile t = (rt, kt) covers
// rows 16 rt.. and k 32 kt.., as 16 x 16 dwords, dword (r, p) = (X[r][2p], X[r][2p + 1]). A's tiles are those of
// X = op(A) as they stand; B's pair layout is the dword transpose of the tiles of X = op(B)^T (pair_layout).
AMX_TARGET static void pack(bool trans, int64_t R, int64_t K, const float *src, int64_t ld, int64_t Rp, int64_t Kp,
                            bool pair_layout, bool serial, uint16_t *out) {
    const int64_t nrt = Rp / 16, nkt = Kp / 32;
#pragma omp parallel for schedule(static) if (!serial)
    for (int64_t t = 0; t < nrt * nkt; t++) {
        const int64_t r0 = t / nkt * 16, k0 = t % nkt * 32;
        uint16_t *tile = out + t * TILE_HALFS;
        for (int q = 0; q < 16; q++) {
            __m512i v; // the 16 dwords of X row r0 + q (rows), or of k pair q over the tile's rows (trans)
            if (!trans) {
                v = r0 + q < R ? row32(src + (r0 + q) * ld + k0, (int)(K - k0 < 32 ? K - k0 : 32)) : _mm512_setzero_si512();
            } else {
                const int64_t k = k0 + 2 * q;
                v = k < K ? pair16(src + k * ld + r0, k + 1 < K ? src + (k + 1) * ld + r0 : NULL, (int)(R - r0 < 16 ? R - r0 : 16))
                          : _mm512_setzero_si512();
            }
            if (trans == pair_layout) _mm512_store_si512(tile + q * 32, v); // v is a row of the tile
            else put_column(tile, q, v);
        }
    }
}

// ---- compute -------------------------------------------------------------------------------------------
typedef struct __attribute__((packed)) TileConfig {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} TileConfig;

AMX_TARGET static void tiles_on(void) {
    TileConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) { // tmm0-3 accumulators, tmm4-5 A, tmm6-7 B: all 16 rows x 64 bytes
        cfg.colsb[i] = 64;
        cfg.rows[i] = 16;
    }
    _tile_loadconfig(&cfg);
}

// Block (mb, nb) of C, 32 x 32, over k tiles [k0, k1): accumulators start at zero (first) or from acc, and end
// in acc (32 x 32 floats, row stride 32).
AMX_TARGET static void block_part(const uint16_t *ap, const uint16_t *bp, int64_t nkt, int64_t mb, int64_t nb, int64_t k0,
                                  int64_t k1, bool first, float *acc) {
    const uint16_t *a0 = ap + 2 * mb * nkt * TILE_HALFS, *a1 = a0 + nkt * TILE_HALFS;
    const uint16_t *b0 = bp + 2 * nb * nkt * TILE_HALFS, *b1 = b0 + nkt * TILE_HALFS;
    if (first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    } else {
        _tile_loadd(0, acc, 128);
        _tile_loadd(1, acc + 16, 128);
        _tile_loadd(2, acc + 16 * 32, 128);
        _tile_loadd(3, acc + 16 * 32 + 16, 128);
    }
    for (int64_t kt = k0; kt < k1; kt++) {
        _tile_loadd(4, a0 + kt * TILE_HALFS, 64);
        _tile_loadd(5, a1 + kt * TILE_HALFS, 64);
        _tile_loadd(6, b0 + kt * TILE_HALFS, 64);
        _tile_loadd(7, b1 + kt * TILE_HALFS, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, acc, 128);
    _tile_stored(1, acc + 16, 128);
    _tile_stored(2, acc + 16 * 32, 128);
    _tile_stored(3, acc + 16 * 32 + 16, 128);
}

// acc (block (mb, nb)) into C through alpha and beta, plus bias[j] on every row if bias, clipped to M, N.
AMX_TARGET static void block_store(const float *acc, int64_t mb, int64_t nb, int64_t M, int64_t N, float alpha, float beta,
                                   const float *bias, float *C, int64_t ldc) {
    const int64_t i0 = mb * 32, j0 = nb * 32;
    const int rows = (int)(M - i0 < 32 ? M - i0 : 32), cols = (int)(N - j0 < 32 ? N - j0 : 32);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int r = 0; r < rows; r++) {
        float *c = C + (i0 + r) * ldc + j0;
        for (int h = 0; h < cols; h += 16) {
            __mmask16 m = (__mmask16)(cols - h >= 16 ? 0xffff : (1u << (cols - h)) - 1);
            __m512 v = _mm512_mul_ps(va, _mm512_load_ps(acc + r * 32 + h));
            if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c + h), v);
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j0 + h));
            _mm512_mask_storeu_ps(c + h, m, v);
        }
    }
}

AMX_TARGET void gemm_bf16_amx(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                              int64_t lda, const float *B, int64_t ldb, float beta, const float *bias, float *C, int64_t ldc) {
    const int64_t Mp = (M + 31) / 32 * 32, Np = (N + 31) / 32 * 32, Kp = (K + 31) / 32 * 32, nkt = Kp / 32;
    uint16_t *ap = gemm_bf16_grow(&mm->apack, &mm->apack_cap, (size_t)(Mp * Kp)),
             *bp = gemm_bf16_grow(&mm->bpack, &mm->bpack_cap, (size_t)(Np * Kp));
    pack(ta, M, K, A, lda, Mp, Kp, false, mm->serial, ap);   // X = op(A)
    pack(!tb, N, K, B, ldb, Np, Kp, true, mm->serial, bp);   // X = op(B)^T: B itself when tb
    const int64_t nmb = Mp / 32, nnb = Np / 32;
#pragma omp parallel if (!mm->serial)
    {
        tiles_on();
#ifdef _OPENMP
        const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
#else
        const int64_t nt = 1, id = 0;
#endif
        // Rows of C split evenly (by 32-row blocks). N goes in panels whose packed B stays in L2; K in chunks
        // whose 2 A tiles per k step (32 KB for the chunk) stay in L1 while the panel's blocks use them.
        const int64_t m_lo = nmb * id / nt, m_hi = nmb * (id + 1) / nt;
        float acc[PANEL_BLOCKS][32 * 32] __attribute__((aligned(64)));
        for (int64_t p0 = 0; p0 < nnb; p0 += PANEL_BLOCKS) {
            const int64_t p1 = p0 + PANEL_BLOCKS < nnb ? p0 + PANEL_BLOCKS : nnb;
            for (int64_t mb = m_lo; mb < m_hi; mb++) {
                for (int64_t k0 = 0; k0 < nkt; k0 += K_CHUNK) {
                    const int64_t k1 = k0 + K_CHUNK < nkt ? k0 + K_CHUNK : nkt;
                    for (int64_t nb = p0; nb < p1; nb++) block_part(ap, bp, nkt, mb, nb, k0, k1, k0 == 0, acc[nb - p0]);
                }
                for (int64_t nb = p0; nb < p1; nb++) block_store(acc[nb - p0], mb, nb, M, N, alpha, beta, bias, C, ldc);
            }
        }
        _tile_release();
    }
}

// ---- entry ---------------------------------------------------------------------------------------------
bool xc_bf16_kernel_available(Bf16Kernel k) {
    return k == XC_BF16_AMX ? xc_amx_available()
           : k == XC_BF16_AVX512 || k == XC_BF16_AVX512_FMA ? xc_avx512bf16_available()
                                                            : false;
}

Bf16Kernel xc_bf16_best_kernel(void) {
    if (xc_amx_available()) return XC_BF16_AMX;
    if (!xc_avx512bf16_available()) return XC_BF16_NONE;
    return xc_vdpbf16ps_speed() < 0.75 ? XC_BF16_AVX512_FMA : XC_BF16_AVX512;
}

static const char *const KERNEL_NAMES[] = {"none", "amx", "avx512-bf16", "avx512-fma"};

const char *xc_bf16_kernel_name(Bf16Kernel k) {
    return k >= XC_BF16_NONE && k <= XC_BF16_AVX512_FMA ? KERNEL_NAMES[k] : "none";
}

Bf16Kernel xc_bf16_kernel_named(const char *name) {
    for (int k = XC_BF16_AMX; k <= XC_BF16_AVX512_FMA; k++)
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
    const bool fused = f->pre_a.kind || f->pre_b.kind || f->gelu_x;
    XC_CHECK(!fused || mm->kernel != XC_BF16_AMX, "gemm_bf16_fused on kernel '%s': only the AVX512 kernels fuse",
             xc_bf16_kernel_name(mm->kernel));
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
    if (mm->kernel == XC_BF16_AMX)
        gemm_bf16_amx(mm, f->ta, f->tb, f->M, f->N, f->K, alpha, f->A, f->lda, f->B, f->ldb, f->beta, f->bias, f->C, f->ldc);
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
