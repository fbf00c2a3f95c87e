// gemm_bf16_amx.c - the bf16 GEMM on Intel AMX tiles (XC_BF16_AMX), and the same kernel with its one instruction
// of arithmetic, TDPBF16PS, emulated (XC_BF16_AMX_EMULATED), so that everything else it does (packing, the tile
// layouts, blocking, edge tiles, threads, the fused prologues and epilogue) runs and is tested on any CPU with
// AVX512-BF16, where real AMX is missing (test_bf16). gemm_init never chooses the emulated kernel (about half the
// float32 step's speed at ViT-B/32).
//
// The kernel computes C = alpha op(A) op(B) + beta C (+ bias) on float32 tensors with op(A), op(B) rounded to
// bfloat16 (round to nearest even), exact products and float32 sums, as gemm_bf16_fused describes the call
// (kernels.h: a LayerNorm or QuickGELU prologue applied as packing reads an operand, the QuickGELU-gradient
// epilogue applied as the sums are stored):
//   1. pack op(A) into 16 x 32 bf16 tiles (rows i, 32 consecutive k) and op(B) into 16 x 32 tiles in AMX's
//      pair layout (row r holds (k, k+1) = (2r, 2r+1) of 16 columns), zero-padded to multiples of 32;
//   2. every 32 x 32 block of C is 2 x 2 accumulator tiles fed by TDPBF16PS over the k tiles;
//   3. the block goes back into C through the epilogue (store_block, shared with the AVX512 kernels).
// N goes in panels whose packed B stays in a core's L2 cache; the row blocks of C are shared out among the threads
// panel by panel (dynamically); K goes in chunks whose A tiles stay in L1 across the panel (accumulators parked in
// a small buffer between chunks, exactly).
// Packed operands live in the Gemm context's buffers, which only grow (no allocation once the shapes have
// been seen).
//
// TDPBF16PS's sums, as Intel's SDM gives them (and the emulation computes them): for each row m of the A tile and
// column n of C, two float32 sums start at zero and take, pair by pair over the tile's 16 pairs of k, the product
// of the even k and of the odd k by FMA; their sum is then added to C[m][n]. Denormal inputs count as zero and
// denormal results are flushed (MXCSR's DAZ and FTZ while the emulation runs), rounding to nearest even. So the
// sums run in another order than the AVX512 kernels': the bits differ from theirs. Whether the silicon follows
// the SDM to the bit is reported by test_bf16 on an AMX machine, not assumed.
#include "autograd/gemm_bf16.h"
#include "autograd/gemm_bf16_pack.h"
#include "autograd/kernels.h"

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

// Built with AMX enabled; the emulated kernel runs the same functions but executes no AMX instruction.
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
// Tiles of X (R, K) = pre(src) or src^T (trans; src is then (K, R), and pre applies to its rows k), zero-padded to
// (Rp, Kp): tile t = (rt, kt) covers rows 16 rt.. and k 32 kt.., as 16 x 16 dwords, dword (r, p) = (X[r][2p],
// X[r][2p + 1]). A's tiles are those of X = op(A) as they stand; B's pair layout is the dword transpose of the tiles
// of X = op(B)^T (pair_layout). pre NULL: the values as stored. Work-shared over the enclosing parallel region (no
// barrier at the end).
AMX_TARGET static void pack(bool trans, int64_t R, int64_t K, const float *src, int64_t ld, const GemmPre *pre, int64_t Rp,
                            int64_t Kp, bool pair_layout, uint16_t *out) {
    const int64_t nrt = Rp / 16, nkt = Kp / 32;
    // Consecutive units go on along the rows read (k when !trans, r when trans), so that each thread reads few
    // memory streams at a time, in order.
#pragma omp for schedule(static) nowait
    for (int64_t u = 0; u < nrt * nkt; u++) {
        const int64_t rt = trans ? u % nrt : u / nkt, kt = trans ? u / nrt : u % nkt, r0 = rt * 16, k0 = kt * 32;
        uint16_t *tile = out + (rt * nkt + kt) * TILE_HALFS;
        __m512i v[16]; // the 16 dwords of X row r0 + q (rows), or of k pair q over the tile's rows (trans)
        for (int q = 0; q < 16; q++) {
            if (!trans) {
                v[q] = r0 + q < R ? pairs_along_pre(pre, src + (r0 + q) * ld, r0 + q, k0, K - k0) : _mm512_setzero_si512();
            } else {
                const int64_t k = k0 + 2 * q;
                v[q] = k < K ? pairs_across_pre(pre, src + k * ld, k + 1 < K ? src + (k + 1) * ld : NULL, k, r0, R - r0)
                             : _mm512_setzero_si512();
            }
        }
        if (trans != pair_layout) transpose16(v); // v[q] was column q of the tile; now row q
        for (int q = 0; q < 16; q++) _mm512_store_si512(tile + q * 32, v[q]);
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

// TDPBF16PS emulated (the SDM's order, see the top; the caller sets MXCSR's FTZ and DAZ): c (16 x 16 floats, row
// stride 32) += the A tile a (16 rows of 16 pair dwords) times the B tile b (pair layout: row p holds pair p of 16
// columns).
AMX_TARGET static void tile_dp_emulated(float *c, const uint16_t *a, const uint16_t *b) {
    const __m512i high = _mm512_set1_epi32((int)0xffff0000u);
    for (int m = 0; m < 16; m++) {
        const uint32_t *arow = (const uint32_t *)a + 16 * m;
        __m512 even = _mm512_setzero_ps(), odd = _mm512_setzero_ps();
        for (int p = 0; p < 16; p++) {
            const __m512i bpair = _mm512_load_si512(b + 32 * p); // 16 columns' dwords (k even low, k odd high)
            const __m512i apair = _mm512_set1_epi32((int)arow[p]);
            even = _mm512_fmadd_ps((__m512)_mm512_slli_epi32(apair, 16), (__m512)_mm512_slli_epi32(bpair, 16), even);
            odd = _mm512_fmadd_ps((__m512)_mm512_and_si512(apair, high), (__m512)_mm512_and_si512(bpair, high), odd);
        }
        _mm512_store_ps(c + 32 * m, _mm512_add_ps(_mm512_load_ps(c + 32 * m), _mm512_add_ps(even, odd)));
    }
}

// block_part with TDPBF16PS emulated: the same tiles, in the same order, into acc.
AMX_TARGET static void block_part_emulated(const uint16_t *ap, const uint16_t *bp, int64_t nkt, int64_t mb, int64_t nb,
                                           int64_t k0, int64_t k1, bool first, float *acc) {
    const uint16_t *a0 = ap + 2 * mb * nkt * TILE_HALFS, *a1 = a0 + nkt * TILE_HALFS;
    const uint16_t *b0 = bp + 2 * nb * nkt * TILE_HALFS, *b1 = b0 + nkt * TILE_HALFS;
    if (first) memset(acc, 0, 32 * 32 * sizeof(float));
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); // FTZ, DAZ
    for (int64_t kt = k0; kt < k1; kt++) {
        tile_dp_emulated(acc, a0 + kt * TILE_HALFS, b0 + kt * TILE_HALFS);
        tile_dp_emulated(acc + 16, a0 + kt * TILE_HALFS, b1 + kt * TILE_HALFS);
        tile_dp_emulated(acc + 16 * 32, a1 + kt * TILE_HALFS, b0 + kt * TILE_HALFS);
        tile_dp_emulated(acc + 16 * 32 + 16, a1 + kt * TILE_HALFS, b1 + kt * TILE_HALFS);
    }
    _mm_setcsr(csr);
}

AMX_TARGET void gemm_bf16_amx(Gemm *mm, float alpha, const GemmFused *f) {
    const bool emulated = mm->kernel == XC_BF16_AMX_EMULATED;
    const int64_t M = f->M, N = f->N, K = f->K;
    const int64_t Mp = (M + 31) / 32 * 32, Np = (N + 31) / 32 * 32, Kp = (K + 31) / 32 * 32, nkt = Kp / 32;
    uint16_t *ap = gemm_bf16_grow(&mm->apack, &mm->apack_cap, (size_t)(Mp * Kp)),
             *bp = gemm_bf16_grow(&mm->bpack, &mm->bpack_cap, (size_t)(Np * Kp));
    const GemmPre *pa = f->pre_a.kind ? &f->pre_a : NULL, *pb = f->pre_b.kind ? &f->pre_b : NULL;
    const int64_t nmb = Mp / 32, nnb = Np / 32;
#pragma omp parallel if (!mm->serial) // serial: a team of one, the work-sharing below binds to it
    {
        pack(f->ta, M, K, f->A, f->lda, pa, Mp, Kp, false, ap);  // X = op(A)
        pack(!f->tb, N, K, f->B, f->ldb, pb, Np, Kp, true, bp); // X = op(B)^T: B itself when tb
#pragma omp barrier
        if (!emulated) tiles_on();
        // Panel by panel, row blocks of C (32 rows) handed out dynamically, as in the AVX512 kernels: a core
        // slowed by other work takes fewer (which thread computes a block does not change its bits). N goes in
        // panels whose packed B stays in L2; K in chunks whose 2 A tiles per k step (32 KB for the chunk) stay in
        // L1 while the panel's blocks use them.
        float acc[PANEL_BLOCKS][32 * 32] __attribute__((aligned(64)));
        for (int64_t p0 = 0; p0 < nnb; p0 += PANEL_BLOCKS) {
            const int64_t p1 = p0 + PANEL_BLOCKS < nnb ? p0 + PANEL_BLOCKS : nnb;
#pragma omp for schedule(dynamic, 1) nowait
            for (int64_t mb = 0; mb < nmb; mb++) {
                for (int64_t k0 = 0; k0 < nkt; k0 += K_CHUNK) {
                    const int64_t k1 = k0 + K_CHUNK < nkt ? k0 + K_CHUNK : nkt;
                    for (int64_t nb = p0; nb < p1; nb++) {
                        if (emulated) block_part_emulated(ap, bp, nkt, mb, nb, k0, k1, k0 == 0, acc[nb - p0]);
                        else block_part(ap, bp, nkt, mb, nb, k0, k1, k0 == 0, acc[nb - p0]);
                    }
                }
                for (int64_t nb = p0; nb < p1; nb++) {
                    const int64_t i0 = mb * 32, j0 = nb * 32;
                    store_block(acc[nb - p0], 32, i0, j0, M - i0 < 32 ? M - i0 : 32, N - j0 < 32 ? N - j0 : 32, alpha, f);
                }
            }
        }
        if (!emulated) _tile_release();
    }
}
