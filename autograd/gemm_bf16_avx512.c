// gemm_bf16_avx512.c - the bf16 GEMM on AVX512-BF16, for CPUs that have it but no usable AMX: AMD Zen 4 / 5, Intel
// Cooper Lake, and Intel AMX parts whose hypervisor hides AMX. Two kernels (kernels.h) share the packing and the
// blocking, and give the same bits where VDPBF16PS adds in Intel's documented order (test_bf16):
//   XC_BF16_AVX512      the products and sums by VDPBF16PS;
//   XC_BF16_AVX512_FMA  the same arithmetic by float32 FMAs on the bf16 values widened in packing, with the
//                       denormals flushed as VDPBF16PS does (MXCSR FTZ and DAZ), for CPUs whose VDPBF16PS runs at
//                       a fraction of the FMA rate (Intel Emerald Rapids: half of it in multiply-adds per second,
//                       xc_vdpbf16ps_speed).
//
// The arithmetic of the AMX kernel (gemm_bf16_amx.c) but for the order of the sums: op(A) and op(B) rounded to
// bfloat16 (nearest even, VCVTNE2PS2BF16), exact products, float32 sums (VDPBF16PS adds the products of k = 2p + 1 and k = 2p to a float32 lane, rounding to nearest even
// after each add; like TDPBF16PS it treats denormal inputs as zero and flushes denormal results), then
// C = alpha sum + beta C (+ bias). Every element of C is summed over k in one fixed order (pairs in order; between
// chunks of P_CHUNK pairs the float32 partial sum is parked and reloaded exactly) by whichever thread computes its
// block: the result does not depend on the thread count.
//
// Letters: op(A) is (M, K), op(B) is (K, N); P = ceil(K / 2) pairs of k; Mp, Np: M, N rounded up to MR, NR.
//   packed A: (Mp / MR, P, MR) dwords: per block of MR = 12 rows, pair p's dwords (A[i][2p], A[i][2p + 1]) of the
//             12 rows one after the other (the micro-kernel broadcasts each);
//   packed B: (Np / NR, P, NR) dwords: per block of NR = 32 columns, pair p's dwords (B[2p][j], B[2p + 1][j]) of the
//             32 columns: VDPBF16PS's pair layout, two zmm per pair.
//   The FMA kernel's packing is twice as wide: per pair the R = MR or NR values of k = 2p + 1 as float32, then those
//   of k = 2p (the order in which VDPBF16PS adds them), each bf16 widened exactly.
// Zero padding (rows beyond M, columns beyond N, k = K when K is odd) adds exact zeros.
// Micro-kernel: a 12 x 32 block of C in 24 zmm accumulators; per pair, 2 loads of B, 12 broadcasts of A (embedded
// {1to16} operands) and 24 VDPBF16PS (FMA kernel: 4 loads of B, 24 broadcasts, 48 FMAs).
// Fused (gemm_bf16_fused, kernels.h): a prologue computes LayerNorm or QuickGELU of the stored values as packing
// reads them, into a few floats on the stack before the conversion; the QuickGELU-gradient epilogue multiplies each
// stored sum by the derivative at the matching element of x and adds it to C.
// Blocking, as the AMX kernel: N in panels whose packed B (P x panel) stays in a core's L2; row blocks of C shared
// out among the threads panel by panel (dynamically: a core slowed by other work takes fewer); K in chunks whose A
// (12 x P_CHUNK pairs, 6 KB; 12 KB widened) stays in L1 across the panel's column blocks, the accumulators parked in
// a small buffer between chunks.
#include "autograd/gemm_bf16.h"
#include "autograd/gemm_bf16_pack.h"
#include "autograd/kernels.h"
#include "autograd/util.h"

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define AVX512BF16_TARGET BF16_PACK_TARGET
#define MR 12                      // rows of C per micro-kernel block
#define NR 32                      // columns of C per micro-kernel block (two zmm)
#define P_CHUNK 128                // k pairs per chunk: A's 12 x 128 dwords (6 KB) stay in L1
#define PANEL_BYTES (512 << 10)    // packed B per panel (half of a Zen 4 core's L2)
#define PANEL_MAX 16               // column blocks per panel at most (the parked accumulators: 16 x 1.5 KB)
#define PACK_PAIRS 16              // pairs per packing unit (32 values of k)

static int g_avx512bf16 = -1; // -1 unknown, 0 absent, 1 usable

bool xc_avx512bf16_available(void) {
    if (g_avx512bf16 < 0) {
        __builtin_cpu_init(); // libgcc's checks include the OS saving the zmm and mask registers (XCR0)
        bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __get_cpuid_max(0, NULL) >= 7;
        if (ok) {
            unsigned eax, ebx, ecx, edx;
            __cpuid_count(7, 1, eax, ebx, ecx, edx);
            ok = eax >> 5 & 1; // AVX512_BF16
        }
        g_avx512bf16 = ok;
    }
    return g_avx512bf16 == 1;
}

#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
// Seconds for n rounds of 12 independent VDPBF16PS (dp) or VFMADD231PS on zmm registers; the asm barrier keeps the
// operands in registers and the loop from being folded.
AVX512BF16_TARGET static double probe_run(bool dp, int n) {
    __m512 c[12];
    for (int i = 0; i < 12; i++) c[i] = _mm512_set1_ps((float)i);
    __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1.0f);
    const double t0 = xc_now();
    if (dp) {
        for (int r = 0; r < n; r++) {
#define DP(i) c[i] = _mm512_dpbf16_ps(c[i], (__m512bh)x, (__m512bh)y);
            CHAINS(DP)
            __asm__ volatile("" : "+v"(x), "+v"(y));
        }
    } else {
        for (int r = 0; r < n; r++) {
#define FMA(i) c[i] = _mm512_fmadd_ps(x, y, c[i]);
            CHAINS(FMA)
            __asm__ volatile("" : "+v"(x), "+v"(y));
        }
    }
#undef DP
#undef FMA
    const double t = xc_now() - t0;
    for (int i = 1; i < 12; i++) c[0] = _mm512_add_ps(c[0], c[i]);
    __asm__ volatile("" : : "v"(c[0]));
    return t;
}

static double g_dp_speed = -1.0;

double xc_vdpbf16ps_speed(void) {
    if (g_dp_speed < 0.0) {
        g_dp_speed = 0.0;
        if (!xc_avx512bf16_available()) return 0.0;
        double dp = 1e30, fma = 1e30; // best of 5 interleaved runs of 10-50 us each: a preempted run only loses
        probe_run(true, 2000);
        probe_run(false, 2000);
        for (int rep = 0; rep < 5; rep++) {
            const double a = probe_run(true, 4000), b = probe_run(false, 4000);
            dp = a < dp ? a : dp;
            fma = b < fma ? b : fma;
        }
        g_dp_speed = 2.0 * fma / dp; // a VDPBF16PS does two multiply-adds per lane, an FMA one
    }
    return g_dp_speed;
}

// ---- packing -------------------------------------------------------------------------------------------
// Stores the pair dwords v (lanes in m) of one pair of k at out, the start of that pair's R values in a packed
// block: as they are, or (fma) widened to the floats of k = 2p + 1 at out and those of k = 2p at out + R.
AVX512BF16_TARGET static inline void put_pairs(uint32_t *out, __mmask16 m, __m512i v, bool fma, int64_t R) {
    if (!fma) {
        _mm512_mask_storeu_epi32(out, m, v);
        return;
    }
    _mm512_mask_storeu_epi32(out, m, _mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
    _mm512_mask_storeu_epi32(out + R, m, _mm512_slli_epi32(v, 16));
}

// Packs op(A) (M, K) into out (Mp / MR, P, MR) dwords, work-shared over the enclosing parallel region (no barrier at
// the end). Rows of op(A) are rows of A unless ta: then units of (row block, 16 pairs), 32 values of k along each of
// 12 rows transposed in registers, consecutive units going on along the same rows. When ta, units of 16 pairs of
// rows of A, each pair read whole (across all row blocks). Both read few streams at a time: the operands come from
// memory, and the hardware prefetchers lose track of many concurrent strided streams. pre (only when !ta; NULL:
// none) is applied to A's values as they are read. fma: the FMA kernel's layout (two words per dword).
AVX512BF16_TARGET static void pack_a(bool ta, int64_t M, int64_t K, const float *A, int64_t lda, const GemmPre *pre,
                                     int64_t P, bool fma, uint32_t *out) {
    const int64_t nrb = (M + MR - 1) / MR, npg = (P + PACK_PAIRS - 1) / PACK_PAIRS, w = fma ? 2 : 1;
    if (!ta) {
#pragma omp for schedule(dynamic, 4) nowait
        for (int64_t u = 0; u < nrb * npg; u++) {
            const int64_t rb = u / npg, p0 = u % npg * PACK_PAIRS;
            __m512i r[16];
            for (int q = 0; q < 16; q++) {
                const int64_t i = rb * MR + q;
                r[q] = q < MR && i < M ? pairs_along_pre(pre, A + i * lda, i, 2 * p0, K - 2 * p0) : _mm512_setzero_si512();
            }
            transpose16(r); // r[q] lane i: row i's pair p0 + q
            for (int q = 0; q < PACK_PAIRS && p0 + q < P; q++)
                put_pairs(out + (rb * P + p0 + q) * MR * w, (1u << MR) - 1, r[q], fma, MR);
        }
    } else {
#pragma omp for schedule(dynamic, 4) nowait
        for (int64_t g = 0; g < npg; g++)
            for (int64_t p = g * PACK_PAIRS; p < (g + 1) * PACK_PAIRS && p < P; p++) {
                const float *k0 = A + 2 * p * lda, *k1 = 2 * p + 1 < K ? k0 + lda : NULL;
                for (int64_t rb = 0; rb < nrb; rb++) {
                    const int64_t i0 = rb * MR, n = M - i0 < MR ? M - i0 : MR;
                    put_pairs(out + (rb * P + p) * MR * w, (1u << MR) - 1, pairs_across(k0 + i0, k1 ? k1 + i0 : NULL, n),
                              fma, MR);
                }
            }
    }
}

// Packs op(B) (K, N) into out (Np / NR, P, NR) dwords, as pack_a: when tb (columns of op(B) are rows of B) units of
// (16 columns, 16 pairs) transposed in registers, going on along the same rows; else units of 16 pairs of rows of
// B, each pair read whole, pre (only when !tb; NULL: none) applied to them as they are read.
AVX512BF16_TARGET static void pack_b(bool tb, int64_t N, int64_t K, const float *B, int64_t ldb, const GemmPre *pre,
                                     int64_t P, bool fma, uint32_t *out) {
    const int64_t ncb = (N + NR - 1) / NR, npg = (P + PACK_PAIRS - 1) / PACK_PAIRS, w = fma ? 2 : 1;
    if (tb) {
#pragma omp for schedule(dynamic, 4) nowait
        for (int64_t u = 0; u < 2 * ncb * npg; u++) {
            const int64_t hb = u / npg, cb = hb / 2, h = hb % 2, p0 = u % npg * PACK_PAIRS;
            const int64_t j0 = cb * NR + 16 * h;
            __m512i r[16];
            for (int q = 0; q < 16; q++)
                r[q] = j0 + q < N ? pairs_along(B + (j0 + q) * ldb + 2 * p0, K - 2 * p0) : _mm512_setzero_si512();
            transpose16(r); // r[q] lane j: column j0 + j's pair p0 + q
            for (int q = 0; q < PACK_PAIRS && p0 + q < P; q++)
                put_pairs(out + (cb * P + p0 + q) * NR * w + 16 * h, 0xffff, r[q], fma, NR);
        }
    } else {
#pragma omp for schedule(dynamic, 4) nowait
        for (int64_t g = 0; g < npg; g++)
            for (int64_t p = g * PACK_PAIRS; p < (g + 1) * PACK_PAIRS && p < P; p++) {
                const float *k0 = B + 2 * p * ldb, *k1 = 2 * p + 1 < K ? k0 + ldb : NULL;
                for (int64_t j0 = 0; j0 < ncb * NR; j0 += 16) // zeros beyond N
                    put_pairs(out + (j0 / NR * P + p) * NR * w + j0 % NR, 0xffff,
                              pairs_across_pre(pre, k0, k1, 2 * p, j0, N - j0), fma, NR);
            }
    }
}

// ---- compute -------------------------------------------------------------------------------------------
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define ACC_DECLARE(r) __m512 c##r##l, c##r##h;
#define ACC_ZERO(r) c##r##l = _mm512_setzero_ps(); c##r##h = _mm512_setzero_ps();
#define ACC_LOAD(r) c##r##l = _mm512_load_ps(acc + (r) * NR); c##r##h = _mm512_load_ps(acc + (r) * NR + 16);
#define ACC_STORE(r) _mm512_store_ps(acc + (r) * NR, c##r##l); _mm512_store_ps(acc + (r) * NR + 16, c##r##h);
// The 24 accumulators of a micro-kernel, from zero (first) or from acc.
#define ACC_BEGIN(first)                                                            \
    ROWS(ACC_DECLARE)                                                               \
    if (first) {                                                                    \
        ROWS(ACC_ZERO)                                                              \
    } else {                                                                        \
        ROWS(ACC_LOAD)                                                              \
    }
#define ACC_STEP(r)                                                                 \
    {                                                                               \
        const __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[(r)]);                \
        c##r##l = _mm512_dpbf16_ps(c##r##l, b0, x);                                 \
        c##r##h = _mm512_dpbf16_ps(c##r##h, b1, x);                                 \
    }

// acc (MR x NR floats, row stride NR) = (first ? 0 : acc) + the products of pairs [0, np) of a (np x MR dwords, one
// row block's chunk of packed A) and b (np x NR dwords, one column block's chunk of packed B).
AVX512BF16_TARGET static void micro_kernel(const uint32_t *a, const uint32_t *b, int64_t np, bool first, float *acc) {
    ACC_BEGIN(first)
    for (int64_t p = 0; p < np; p++, a += MR, b += NR) {
        const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
        ROWS(ACC_STEP)
    }
    ROWS(ACC_STORE)
}

#define ACC_FMA(r)                                                                  \
    {                                                                               \
        const __m512 x = _mm512_set1_ps(ak[(r)]);                                   \
        c##r##l = _mm512_fmadd_ps(x, b0, c##r##l);                                  \
        c##r##h = _mm512_fmadd_ps(x, b1, c##r##h);                                  \
    }

// micro_kernel's sum by FMAs, on the FMA kernel's packing (np x 2 x MR floats of A, np x 2 x NR of B): per pair the
// products of k = 2p + 1, then those of k = 2p, each added to the accumulator and rounded, as VDPBF16PS does.
// The caller flushes denormals (MXCSR FTZ and DAZ), as VDPBF16PS does.
AVX512BF16_TARGET static void micro_kernel_fma(const float *a, const float *b, int64_t np, bool first, float *acc) {
    ACC_BEGIN(first)
    for (int64_t p = 0; p < np; p++, a += 2 * MR, b += 2 * NR) {
        for (int h = 0; h < 2; h++) { // k = 2p + 1, then k = 2p
            const float *ak = a + h * MR;
            const __m512 b0 = _mm512_load_ps(b + h * NR), b1 = _mm512_load_ps(b + h * NR + 16);
            ROWS(ACC_FMA)
        }
    }
    ROWS(ACC_STORE)
}

// acc (block (mb, nb)) into C, clipped to M, N (store_block: the epilogue the AMX kernel shares).
AVX512BF16_TARGET static void block_store(const float *acc, int64_t mb, int64_t nb, float alpha, const GemmFused *f) {
    const int64_t i0 = mb * MR, j0 = nb * NR;
    store_block(acc, NR, i0, j0, f->M - i0 < MR ? f->M - i0 : MR, f->N - j0 < NR ? f->N - j0 : NR, alpha, f);
}

// One thread's share of C, panel by panel: row blocks handed out dynamically (which thread computes a block does not
// change its bits). fma: the FMA kernel, its sums with MXCSR's FTZ and DAZ set (only while they run: the epilogue
// runs as the VDPBF16PS kernel's does).
AVX512BF16_TARGET static void compute(const uint32_t *ap, const uint32_t *bp, int64_t P, bool fma, float alpha,
                                      const GemmFused *f) {
    const int64_t nmb = (f->M + MR - 1) / MR, nnb = (f->N + NR - 1) / NR, w = fma ? 2 : 1;
    const unsigned csr = _mm_getcsr(), FTZ_DAZ = 0x8040;
    int64_t panel = PANEL_BYTES / (P * NR * w * (int64_t)sizeof(uint32_t)); // column blocks whose packed B fits
    panel = panel < 1 ? 1 : panel > PANEL_MAX ? PANEL_MAX : panel;
    float acc[PANEL_MAX][MR * NR] __attribute__((aligned(64)));
    for (int64_t p0 = 0; p0 < nnb; p0 += panel) {
        const int64_t p1 = p0 + panel < nnb ? p0 + panel : nnb;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t mb = 0; mb < nmb; mb++) {
            if (fma) _mm_setcsr(csr | FTZ_DAZ);
            for (int64_t c0 = 0; c0 < P; c0 += P_CHUNK) {
                const int64_t c1 = c0 + P_CHUNK < P ? c0 + P_CHUNK : P;
                for (int64_t nb = p0; nb < p1; nb++) {
                    const uint32_t *a = ap + (mb * P + c0) * MR * w, *b = bp + (nb * P + c0) * NR * w;
                    if (fma) micro_kernel_fma((const float *)a, (const float *)b, c1 - c0, c0 == 0, acc[nb - p0]);
                    else micro_kernel(a, b, c1 - c0, c0 == 0, acc[nb - p0]);
                }
            }
            if (fma) _mm_setcsr(csr);
            for (int64_t nb = p0; nb < p1; nb++) block_store(acc[nb - p0], mb, nb, alpha, f);
        }
    }
}

void gemm_bf16_avx512(Gemm *mm, float alpha, const GemmFused *f) {
    const bool fma = mm->kernel == XC_BF16_AVX512_FMA;
    const int64_t P = (f->K + 1) / 2, Mp = (f->M + MR - 1) / MR * MR, Np = (f->N + NR - 1) / NR * NR;
    const int64_t halfs = fma ? 4 : 2; // 16-bit slots per (row or column, pair): a dword, or two floats widened
    uint32_t *ap = (uint32_t *)gemm_bf16_grow(&mm->apack, &mm->apack_cap, (size_t)(Mp * P * halfs)),
             *bp = (uint32_t *)gemm_bf16_grow(&mm->bpack, &mm->bpack_cap, (size_t)(Np * P * halfs));
    const GemmPre *pa = f->pre_a.kind ? &f->pre_a : NULL, *pb = f->pre_b.kind ? &f->pre_b : NULL;
#pragma omp parallel if (!mm->serial) // serial: a team of one, the work-sharing below binds to it
    {
        pack_a(f->ta, f->M, f->K, f->A, f->lda, pa, P, fma, ap);
        pack_b(f->tb, f->N, f->K, f->B, f->ldb, pb, P, fma, bp);
#pragma omp barrier
        compute(ap, bp, P, fma, alpha, f);
    }
}
