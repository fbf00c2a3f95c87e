// kernels.h - raw compute kernels shared by the ops: GEMM through OpenBLAS and the naive reference
// versions that tests compare the fast ones against.
//
// Threading: OpenBLAS here is the OpenMP build, sharing libgomp's pool with our loops. A GEMM called
// outside a parallel region uses all threads; inside one it runs on the calling thread.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "autograd/util.h"
#ifdef _OPENMP
#include <omp.h>
#endif

// Inside an OpenMP parallel region? (A GEMM there runs on the calling thread.)
static inline bool xc_in_parallel(void) {
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return false;
#endif
}

// C (M, N) = alpha * op(A) op(B) + beta * C, row-major; op(A) is (M, K), op(B) is (K, N): float32, OpenBLAS SGEMM.
void xc_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

// ---- matmul precision: a Gemm context, owned by whoever runs a model -------------------------------------
// The precision of a model's large products (as torch.set_float32_matmul_precision) and the bf16 packing
// buffers belong to a Gemm context that the caller owns (the trainer, xclip-eval, a benchmark) and lends to
// the Graph whose ops it serves (Graph.gemm; NULL there = float32). Nothing about it is process-wide.
//   FP32: OpenBLAS SGEMM.
//   BF16: GEMMs of at least 64^3 multiply-adds called outside a parallel region (or through a per-thread
//         context inside one, gemm_per_thread) round op(A) and op(B) to
//         bfloat16 (nearest even) and sum the exact products in float32; the others stay float32. Tensors,
//         gradients and optimiser state remain float32 either way. Three kernels, the same arithmetic, chosen
//         at run time by what the CPU offers and how fast it runs it (xc_bf16_best_kernel):
//           XC_BF16_AMX         Intel AMX tiles (TDPBF16PS; autograd/gemm_bf16.c), Sapphire Rapids and later;
//           XC_BF16_AVX512      AVX512-BF16 (VDPBF16PS; autograd/gemm_bf16_avx512.c): AMD Zen 4 / 5, Intel
//                               Cooper Lake, and Intel AMX parts where a hypervisor hides AMX;
//           XC_BF16_AVX512_FMA  the same sums by float32 FMAs on the bf16 operands (same file), for CPUs with
//                               AVX512-BF16 whose VDPBF16PS does fewer multiply-adds per second than their FMAs
//                               (Intel Emerald Rapids with AMX hidden: half as many); the same bits as
//                               XC_BF16_AVX512 where VDPBF16PS adds in Intel's documented order.
//         Each gives the same bits whatever the thread count; AMX's differ from the AVX512 ones (its float32
//         sums run in another order). A fourth, XC_BF16_AMX_EMULATED ("amx-emulated", never chosen by gemm_init),
//         runs the AMX kernel with TDPBF16PS emulated by AVX-512 FMAs, so that the AMX kernel's packing, blocking
//         and fusion are tested on CPUs without AMX; it is slow.
//
//   Gemm mm;
//   if (gemm_init(&mm, XC_MATMUL_BF16, &err) != XC_OK) ...   // refused (naming both units) on a CPU with neither
//   printf("bf16 on %s\n", gemm_bf16_kernel_name(&mm));     // "amx", "avx512-bf16" or "avx512-fma"
//   Graph g; graph_init(&g, 0); g.gemm = &mm;                // every op of g multiplies through mm
//   ... forward, backward ...
//   graph_free(&g); gemm_free(&mm);                          // the packing buffers go with their owner
typedef enum { XC_MATMUL_FP32 = 0, XC_MATMUL_BF16 = 1 } MatmulPrecision;
typedef enum {
    XC_BF16_NONE = 0,
    XC_BF16_AMX = 1,
    XC_BF16_AVX512 = 2,
    XC_BF16_AVX512_FMA = 3,
    XC_BF16_AMX_EMULATED = 4,
} Bf16Kernel;
typedef struct Gemm {
    MatmulPrecision precision;
    Bf16Kernel kernel;            // the unit gemm_bf16 runs on (gemm_init: the best available; NONE: neither)
    bool serial;                  // a per-thread context (gemm_per_thread): every GEMM on the calling thread
    uint16_t *apack, *bpack;      // packed bf16 operands, grown to the largest GEMM seen (owned)
    size_t apack_cap, bpack_cap;  // their capacity in bf16 values
    uint64_t bf16_calls;          // GEMMs the bf16 path has run (tests, logs; not counting per_thread's)
    struct Gemm *per_thread;      // gemm_per_thread's contexts (owned), n_per_thread of them
    int n_per_thread;
} Gemm;
// Fails (mm left float32) when BF16 is asked for on a CPU or kernel with neither AMX nor AVX512-BF16.
int gemm_init(Gemm *mm, MatmulPrecision p, XcError *err);
// Runs mm's bf16 GEMMs on kernel k (tests, benchmarks); fails, mm unchanged, when k is not available here.
int gemm_set_bf16_kernel(Gemm *mm, Bf16Kernel k, XcError *err);
void gemm_free(Gemm *mm);
const char *gemm_precision_name(MatmulPrecision p); // "fp32" / "bf16"
const char *gemm_bf16_kernel_name(const Gemm *mm);  // "amx", "avx512-bf16", "avx512-fma", "amx-emulated" or "none"
const char *xc_bf16_kernel_name(Bf16Kernel k);      // the same for a kernel
Bf16Kernel xc_bf16_kernel_named(const char *name);  // the kernel of that name (XC_BF16_NONE: no such kernel)
// AMX-BF16 usable here (CPU support and the kernel's permission for the tile state)?
bool xc_amx_available(void);
// AVX512-BF16 usable here (CPU support for AVX512F/BW/VL/BF16 and the OS saving the zmm state)?
bool xc_avx512bf16_available(void);
bool xc_bf16_kernel_available(Bf16Kernel k); // all but AMX need AVX512-BF16 (its conversion packs)
// Multiply-adds per second of VDPBF16PS on zmm against VFMADD231PS on this core, measured once (about 1 ms; 0 without
// AVX512-BF16): 0.49 measured on Intel Emerald Rapids; about 2 expected on AMD Zen 4 (not measured: there the
// VDPBF16PS kernel ran about twice SGEMM's speed).
double xc_vdpbf16ps_speed(void);
// The kernel gemm_init chooses: AMX if usable, else with AVX512-BF16 XC_BF16_AVX512, or XC_BF16_AVX512_FMA where
// xc_vdpbf16ps_speed() < 0.75, else XC_BF16_NONE. The threshold lies between the 0.49 and the about 2 seen, below 1
// because the FMA kernel packs twice the bytes (at equal multiply-add rates VDPBF16PS should win; not measured).
Bf16Kernel xc_bf16_best_kernel(void);
// Contexts for the GEMMs of an OpenMP loop, one per thread (use [omp_get_thread_num()]; call outside the loop with
// n >= its team size): mm's precision and kernel, their own packing buffers (grown on first use, as mm's), and
// serial, so that a bf16 GEMM runs on the calling thread inside the loop, with the same bits as outside (the kernels'
// sums do not depend on the thread count). Ops that run many small products in parallel, such as attention's per
// (batch, head), multiply through them. NULL when mm is NULL or float32: gemm_run(NULL, ...) is then SGEMM, which
// OpenBLAS runs on the calling thread inside a parallel region.
Gemm *gemm_per_thread(Gemm *mm, int n);
// xc_gemm at mm's precision (mm NULL: float32).
void gemm_run(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
              const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
// C (M, N) = op(A) op(B) + bias (N), bias added to every row (NULL: none); beta 0 (C is only written).
// In BF16 the bias joins the bf16 kernel's epilogue; in FP32 it is copied into C and SGEMM adds to it.
void gemm_bias(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
               int64_t ldb, const float *bias, float *C, int64_t ldc);
// The BF16 path itself on mm->kernel, whatever mm's precision (needs a kernel; not inside a parallel region unless
// mm is serial). It packs into mm's buffers: one caller at a time per context.
void gemm_bf16(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void gemm_bf16_bias(Gemm *mm, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                    int64_t lda, const float *B, int64_t ldb, float beta, const float *bias, float *C, int64_t ldc);
// GEMM accounting for XCLIP_PROFILE (process-wide, unlike Gemm contexts): every SGEMM gemm_run makes and every
// bf16 GEMM (gemm_bf16, gemm_bf16_bias, gemm_bf16_fused) is counted with its multiply-adds and time, by precision
// and by caller: the team (called outside a parallel region, all threads on it: wall seconds) or one thread
// inside a parallel region (attention's per-head products: thread seconds, summed over the threads). Off
// (nothing timed) unless XCLIP_PROFILE is set to something other than "" or "0".
enum { GEMM_PROFILE_TEAM, GEMM_PROFILE_IN_REGION };
typedef struct GemmProfileRow {
    int64_t calls;
    double seconds, flop; // flop: 2 M N K per call
} GemmProfileRow;
typedef struct GemmProfile {
    GemmProfileRow row[2][2]; // [bf16?][GEMM_PROFILE_TEAM or GEMM_PROFILE_IN_REGION]
} GemmProfile;
bool gemm_profile_on(void); // XCLIP_PROFILE set (read once per process; graph_init asks here too)
GemmProfile gemm_profile_now(void); // the counts since the process started (never reset: each user keeps a baseline)
GemmProfile gemm_profile_diff(const GemmProfile *now, const GemmProfile *base); // now - base, row by row
// "profile: ..." lines of p, each row's seconds as a share of wall_seconds (the time the counts cover; 0: no share;
// a share of thread seconds can exceed 100% with several threads).
void gemm_profile_print(const GemmProfile *p, double wall_seconds, FILE *f);

// The same in plain loops (double accumulation), for tests.
void xc_gemm_naive(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

// Attention core for one (batch, head): q (Lq, dh) row stride ldq, k/v (Lk, dh) strides ldk/ldv,
// mask (Lq, Lk) or NULL, p (Lq, Lk) out: probabilities, o (Lq, dh) row stride ldo. Its two products go through
// gemm_run(mm) (NULL: float32; inside a parallel region only a per-thread context takes the bf16 path).
void xc_attention_head(Gemm *mm, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                       const float *mask, float scale, int64_t Lq, int64_t Lk, int64_t dh, float *p, float *o,
                       int64_t ldo);
void xc_attention_head_naive(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                             int64_t ldv, const float *mask, float scale, int64_t Lq, int64_t Lk, int64_t dh,
                             float *p, float *o, int64_t ldo);

// exp(x) for float32 in plain arithmetic that compilers vectorise (no libm call): n = round(x / ln 2),
// r = x - n ln 2 in two parts (Cody-Waite), a degree-7 polynomial for e^r on |r| <= ln2 / 2 (Cephes's
// expf coefficients), times 2^n built in the exponent bits. Within 2 ulp of exp for x in [-87, 88];
// x is clamped to [-87.3, 88.3] (below: a tiny positive number instead of 0; above: 2e38 instead of inf).
static inline float xc_expf(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x); // 2^n stays a normal float
    const float shifter = 12582912.0f; // 1.5 * 2^23: adding and subtracting it rounds to an integer
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    n = n == n ? n : 0.0f; // NaN in, NaN out (through r), without converting NaN to an integer
    int32_t bits = (int32_t)((uint32_t)((int32_t)n + 127) << 23);
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

// A function compiled for AVX-512, AVX2 and baseline x86-64, the first this CPU runs picked at load time
// (target_clones), so that its plain loops vectorise to the machine's width. The build is ISO C (no FMA
// contraction), so every clone computes the same bits.
#define XC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// Inside a parallel region: thread t of nt takes elements [n t / nt, n (t + 1) / nt) (a contiguous share, so that
// each thread can call an XC_CLONES function on it: OpenMP's outlined loop bodies do not inherit the clones' targets).
#ifdef _OPENMP
#define XC_SHARE(n, lo, len)                                                                                       \
    const int64_t lo = (n) * omp_get_thread_num() / omp_get_num_threads(),                                        \
                  len = (n) * (omp_get_thread_num() + 1) / omp_get_num_threads() - lo
#else
#define XC_SHARE(n, lo, len) const int64_t lo = 0, len = (n)
#endif

// Sums and maxima over a row run in XC_LANES partial results, lane j taking the entries j, j + XC_LANES, ...:
// independent chains the compiler keeps in vector registers, whose bits do not depend on the vector width. The
// lanes are then combined in order.
#define XC_LANES 16
static inline float xc_lanes_sum(const float *l) {
    float s = l[0];
    for (int j = 1; j < XC_LANES; j++) s += l[j];
    return s;
}

// sum_i a[i] b[i] over a row (b NULL: sum_i a[i]) in XC_LANES lanes; inlined into XC_CLONES callers.
static inline float xc_lanes_dot(const float *a, const float *b, int64_t n) {
    float l[XC_LANES] = {0};
    const int64_t nv = n / XC_LANES * XC_LANES;
    for (int64_t i = 0; i < nv; i += XC_LANES)
        for (int j = 0; j < XC_LANES; j++) l[j] += b ? a[i + j] * b[i + j] : a[i + j];
    for (int64_t i = nv; i < n; i++) l[i - nv] += b ? a[i] * b[i] : a[i];
    return xc_lanes_sum(l);
}

// Softmax of one row x (n) plus an optional additive mask row m (n) into y (y may be x): max, exponentials
// (xc_expf; a -inf entry gives exactly 0) and their sum in XC_LANES partial sums (lane j takes entries j, j + 16,
// ..., lanes combined in a fixed order), then the scaling. A fully masked row gives zeros.
void xc_softmax_row(const float *x, const float *m, float *y, int64_t n);
// Its backward in place, for one row of probabilities p: d = p * (d - <d, p>), the dot product in XC_LANES lanes.
void xc_softmax_row_bwd(const float *p, float *d, int64_t n);
// The same in plain double loops, for tests (libm exp).
void xc_softmax_row_naive(const float *x, const float *m, float *y, int64_t n);

// LayerNorm of rows: x (R, C) -> y, mean (R), rstd (R).
void xc_layernorm_fwd(const float *x, const float *w, const float *b, float eps, int64_t R, int64_t C,
                      float *y, float *mean, float *rstd);
void xc_layernorm_fwd_naive(const float *x, const float *w, const float *b, float eps, int64_t R, int64_t C,
                            float *y, float *mean, float *rstd);
// Its backward from the saved mean and rstd: dx += d/dx, dw += sum_r dy xhat, db += sum_r dy (a NULL output is
// skipped). Rows in parallel for dx, columns in parallel (rows in order) for dw and db: deterministic.
void xc_layernorm_bwd(const float *x, const float *w, const float *mean, const float *rstd, const float *dy, int64_t R,
                      int64_t C, float *dx, float *dw, float *db);

// Only the statistics: mean and rstd of each row, the same bits as xc_layernorm_fwd's.
void xc_layernorm_stats(const float *x, float eps, int64_t R, int64_t C, float *mean, float *rstd);

// QuickGELU y = x sigmoid(1.702 x) over n elements, and its backward dx += dy y'(x); threaded, each thread on
// its own contiguous share, so the bits do not depend on the thread count.
void xc_quick_gelu_fwd(const float *x, float *y, int64_t n);
void xc_quick_gelu_bwd(const float *x, const float *dy, float *dx, int64_t n);

// The elementwise formulas of LayerNorm's affine output, QuickGELU and QuickGELU's derivative, shared by the
// kernels above and the fused bf16 GEMM below, so that both compute the same bits.
static inline float xc_layernorm1(float x, float mean, float rstd, float w, float b) { return (x - mean) * rstd * w + b; }
static inline float xc_quick_gelu1(float x) { return x / (1.0f + xc_expf(-1.702f * x)); }
static inline float xc_quick_gelu_grad1(float x) {
    const float s = 1.0f / (1.0f + xc_expf(-1.702f * x));
    return s + 1.702f * x * s * (1.0f - s);
}

// ---- elementwise functions fused into the bf16 GEMM ------------------------------------------------------
// Where memory traffic, not arithmetic, costs the time: a linear layer over LayerNorm(x) or QuickGELU(x) would
// write that R x C intermediate and read it back to pack it; fused, the packing reads x and applies the function
// on the way (a prologue), and QuickGELU's backward multiplies by its derivative as the product is stored (an
// epilogue). The bits are those of the unfused route: the same formulas on the same floats, then the same
// bf16 GEMM. Every bf16 kernel fuses (gemm_fuses).
//
// A prologue works on a stored operand that is not transposed (op(A) = A, op(B) = B), element (r, c) of the stored
// matrix: LayerNorm xc_layernorm1(x, mean[r], rstd[r], w[c], b[c]) with the statistics of xc_layernorm_stats, or
// xc_quick_gelu1(x).
typedef enum { XC_PRE_NONE = 0, XC_PRE_LAYERNORM, XC_PRE_QUICK_GELU } PreKind;
typedef struct GemmPre {
    PreKind kind;
    const float *mean, *rstd, *w, *b; // LayerNorm: per row (mean, 1 / std), per column (affine weight and bias)
} GemmPre;

// C (M, N) = pre_a(op(A)) pre_b(op(B)) + beta C (+ bias (N) on every row), the sum of the bf16 products in float32
// as gemm_bf16_bias's (alpha 1); with gelu_x (M, N, row stride ldc) instead C += sum xc_quick_gelu_grad1(gelu_x),
// elementwise (beta must be 1): QuickGELU's backward for the gradient dY W.
typedef struct GemmFused {
    bool ta, tb;
    int64_t M, N, K;
    const float *A, *B;
    int64_t lda, ldb;
    GemmPre pre_a, pre_b; // kind XC_PRE_NONE: the operand as stored
    float beta;
    const float *bias, *gelu_x; // NULL: none
    float *C;
    int64_t ldc;
} GemmFused;

// Does mm run a GEMM of this size in bf16 with fusion (BF16 precision, big enough, outside a parallel region or
// through a per-thread context)? Callers that get false compute the intermediate themselves and call gemm_bias /
// gemm_run.
bool gemm_fuses(const Gemm *mm, int64_t M, int64_t N, int64_t K);
// The fused GEMM, on mm's bf16 kernel whatever mm's precision (tests compare it with the unfused route).
void gemm_bf16_fused(Gemm *mm, const GemmFused *f);
