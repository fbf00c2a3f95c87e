// bench_ops - GFLOP/s of the GEMM path (linear forward and forward+backward at the ViT-B/32 block
// shapes: 16 frames x 50 tokens, width 768; the four linears, then c_fc over LayerNorm and c_proj over QuickGELU
// as op_layernorm_linear / op_quick_gelu_linear run them) and of fused attention forward and forward+backward
// (12 heads; also at ViT-B/16's 198 tokens), against a 2048^3 OpenBLAS sgemm (the machine's practical peak) and against the same
// ops in PyTorch on the same machine in the same run (bench/bench_ops_ref.py with /usr/bin/python3).
//
//   bench_ops [--threads N] [--repeats R] [--bf16[=amx|avx512-bf16|avx512-fma|amx-emulated]] [--no-torch]
// --bf16 runs our linear layers and attention with bf16 matmuls (a Gemm context at XC_MATMUL_BF16, on AMX if usable,
// else on AVX512-BF16; =NAME picks the kernel; attention's products only where they reach 64^3 multiply-adds: at
// 198 tokens, not at 50) and adds the bf16 GEMM at 2048^3; PyTorch stays float32 and %peak stays
// relative to float32 SGEMM. Last, one AdamW step over 133.2 M floats (the trained parameters of X-CLIP ViT-B/32),
// a cost of every training step that neither the batch nor bf16 shrinks. Times are the best of R repeats (after
// one warm-up), so other load on the machine shows less.
#include "autograd/runtime.h"
#include "autograd/ops.h"
#include "autograd/kernels.h"
#include "optim/adamw.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define T 16
#define L 50
#define L16 198 // ViT-B/16: 196 patches, the class token and X-CLIP's message token
#define W 768
#define HEADS 12

typedef struct Row {
    char name[32];
    double flops, ms, torch_ms;
} Row;

static int repeats = 5;

static double best_ms(void (*fn)(void *), void *arg) {
    fn(arg);
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t = xc_now();
        fn(arg);
        double dt = xc_now() - t;
        if (dt < best) best = dt;
    }
    return best * 1e3;
}

typedef enum { OP_LINEAR, OP_LAYERNORM_LINEAR, OP_QUICK_GELU_LINEAR, OP_ATTENTION } OpKind;

typedef struct OpArgs {
    Graph *g;
    OpKind kind;
    Tensor *in[5]; // linears: x, w, b (then LayerNorm's weight and bias); attention: qkv
    float *dy;
    bool backward;
} OpArgs;

static void run_op(void *p) {
    OpArgs *a = p;
    Graph *g = a->g;
    Tensor **in = a->in;
    graph_reset(g);
    for (int i = 0; i < 5; i++)
        if (in[i]) in[i]->grad = NULL; // fresh zeroed grads from the step arena
    Tensor *y = a->kind == OP_ATTENTION           ? op_attention(g, in[0], HEADS, NULL)
                : a->kind == OP_LAYERNORM_LINEAR  ? op_layernorm_linear(g, in[0], in[3], in[4], 1e-5f, in[1], in[2])
                : a->kind == OP_QUICK_GELU_LINEAR ? op_quick_gelu_linear(g, in[0], in[1], in[2])
                                                  : op_linear(g, in[0], in[1], in[2]);
    if (a->backward) graph_backward_from(g, y, a->dy);
}

typedef struct GemmArgs {
    float *a, *b, *c;
    Gemm *mm;       // precision (NULL: float32)
} GemmArgs;

static void run_sgemm(void *p) {
    GemmArgs *g = p;
    gemm_run(g->mm, false, false, 2048, 2048, 2048, 1.0f, g->a, 2048, g->b, 2048, 0.0f, g->c, 2048);
}

static void run_adamw(void *p) { adamw_step(p, (float[]){1e-5f}); }

static float *rnd(Rng *r, int64_t n) {
    float *x = xc_malloc((size_t)n * sizeof(float));
    rng_fill_uniform(r, x, n, -1.0f, 1.0f);
    return x;
}

// A leaf tensor that requires grad, with random data owned by the caller.
static Tensor leaf(Rng *r, int ndim, const int64_t *shape) {
    Tensor t = {0};
    t.ndim = ndim;
    t.numel = 1;
    for (int i = 0; i < ndim; i++) { t.shape[i] = shape[i]; t.numel *= shape[i]; }
    t.data = rnd(r, t.numel);
    t.requires_grad = true;
    return t;
}

static double torch_ms(const char *key, const char *out) {
    if (!out) return 0;
    size_t k = strlen(key);
    for (const char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, k) && p[k] == ' ') return atof(p + k + 1);
    return 0;
}

static char *run_torch(int threads) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench_ops_ref.py %d %d 2>/dev/null", XCLIP_BENCH_DIR, threads, repeats);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16;
    char *out = xc_calloc(cap, 1);
    size_t n = fread(out, 1, cap - 1, p);
    if (pclose(p) != 0 || n == 0) { xc_free(out); return NULL; }
    return out;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    int threads = 2;
    bool with_torch = true, bf16 = false;
    const char *kernel = NULL; // --bf16=NAME
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) with_torch = false;
        else if (!strcmp(argv[i], "--bf16")) bf16 = true;
        else if (!strncmp(argv[i], "--bf16=", 7)) { bf16 = true; kernel = argv[i] + 7; }
        else { fprintf(stderr, "usage: bench_ops [--threads N] [--repeats R] [--bf16[=amx|avx512-bf16|avx512-fma|amx-emulated]] [--no-torch]\n"); return 2; }
    }
    if (threads < 1 || repeats < 1) { fprintf(stderr, "bench_ops: --threads and --repeats must be >= 1\n"); return 2; }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    openblas_set_num_threads(threads);

    char *tout = with_torch ? run_torch(threads) : NULL; // PyTorch runs first, alone on the machine
    if (with_torch && !tout) fprintf(stderr, "bench_ops: the PyTorch reference did not run (python3-torch missing?): xclip.c figures only\n");

    XcError err;
    Gemm mm;
    if (gemm_init(&mm, bf16 ? XC_MATMUL_BF16 : XC_MATMUL_FP32, &err) != XC_OK) { fprintf(stderr, "bench_ops: --bf16: %s\n", err.msg); return 1; }
    if (kernel) {
        Bf16Kernel k = xc_bf16_kernel_named(kernel);
        if (k == XC_BF16_NONE || gemm_set_bf16_kernel(&mm, k, &err) != XC_OK) {
            fprintf(stderr, "bench_ops: --bf16=%s: %s\n", kernel, k == XC_BF16_NONE ? "want amx, avx512-bf16, avx512-fma or amx-emulated" : err.msg);
            return 2;
        }
    }
    Rng r = rng_stream(1, RNG_STREAM_TEST);
    Graph g;
    graph_init(&g, 256u << 20);
    g.gemm = &mm;
    Row rows[24];
    int nr = 0;
    // the block's four linears, then the two with their input's LayerNorm or QuickGELU fused in (the model's
    // ln_2 + c_fc and QuickGELU + c_proj: the pre-op is recomputed in the backward, not kept)
    const struct { const char *name, *key; int in, out; OpKind kind; } lin[] = {
        {"linear qkv", "qkv", W, 3 * W, OP_LINEAR},           {"linear out_proj", "out_proj", W, W, OP_LINEAR},
        {"linear c_fc", "c_fc", W, 4 * W, OP_LINEAR},         {"linear c_proj", "c_proj", 4 * W, W, OP_LINEAR},
        {"ln+c_fc", "ln_c_fc", W, 4 * W, OP_LAYERNORM_LINEAR}, {"gelu+c_proj", "gelu_c_proj", 4 * W, W, OP_QUICK_GELU_LINEAR}};
    for (int i = 0; i < 6; i++) {
        Tensor x = leaf(&r, 2, (int64_t[]){T * L, lin[i].in}), w = leaf(&r, 2, (int64_t[]){lin[i].out, lin[i].in});
        Tensor b = leaf(&r, 1, (int64_t[]){lin[i].out});
        Tensor ln_w = leaf(&r, 1, (int64_t[]){lin[i].in}), ln_b = leaf(&r, 1, (int64_t[]){lin[i].in});
        float *dy = rnd(&r, (int64_t)T * L * lin[i].out);
        double f = 2.0 * T * L * lin[i].in * lin[i].out;
        char key[64];
        for (int bwd = 0; bwd < 2; bwd++) {
            OpArgs a = {&g, lin[i].kind, {&x, &w, &b, &ln_w, &ln_b}, dy, bwd};
            Row *row = &rows[nr++];
            snprintf(row->name, sizeof row->name, "%s %s", lin[i].name, bwd ? "fwd+bwd" : "fwd");
            snprintf(key, sizeof key, "%s_%s", lin[i].key, bwd ? "fwdbwd" : "fwd");
            row->flops = bwd ? 3 * f : f;
            row->ms = best_ms(run_op, &a);
            row->torch_ms = torch_ms(key, tout);
        }
        xc_free(x.data); xc_free(w.data); xc_free(b.data); xc_free(ln_w.data); xc_free(ln_b.data); xc_free(dy);
    }
    // attention at ViT-B/32's sequence, then at ViT-B/16's 197 tokens plus X-CLIP's message token (whose per-head
    // products reach the bf16 path's 64^3 multiply-adds; B/32's stay float32)
    const int64_t lens[2] = {L, L16};
    for (int s = 0; s < 2; s++) {
        const int64_t n = lens[s];
        Tensor qkv = leaf(&r, 3, (int64_t[]){T, n, 3 * W});
        float *dy = rnd(&r, (int64_t)T * n * W);
        double f = 4.0 * T * n * n * W; // Q K^T and P V, 2 flops per multiply-add
        for (int bwd = 0; bwd < 2; bwd++) {
            OpArgs a = {&g, OP_ATTENTION, {&qkv}, dy, bwd};
            Row *row = &rows[nr++];
            char key[64];
            snprintf(row->name, sizeof row->name, "attention L%lld %s", (long long)n, bwd ? "fwd+bwd" : "fwd");
            snprintf(key, sizeof key, "attention%s_%s", s ? "198" : "", bwd ? "fwdbwd" : "fwd");
            row->flops = bwd ? 3 * f : f;
            row->ms = best_ms(run_op, &a);
            row->torch_ms = torch_ms(key, tout);
        }
        xc_free(qkv.data); xc_free(dy);
    }
    GemmArgs ga = {rnd(&r, 2048 * 2048), rnd(&r, 2048 * 2048), rnd(&r, 2048 * 2048), NULL};
    if (bf16) { // the bf16 GEMM at the same size, then the float32 peak the %peak column refers to
        Row *row = &rows[nr++];
        snprintf(row->name, sizeof row->name, "bf16 gemm 2048^3");
        row->flops = 2.0 * 2048 * 2048 * 2048;
        ga.mm = &mm;
        row->ms = best_ms(run_sgemm, &ga);
        row->torch_ms = torch_ms("sgemm2048", tout);
        ga.mm = NULL;
    }
    // AdamW over as many floats as X-CLIP ViT-B/32 trains (one tensor): a cost per step that does not shrink with
    // the batch or with bf16 matmuls. Its memory traffic: weights, both moments and the gradient read, the first
    // three written (7 x 4 bytes per float).
    const int64_t adam_n = 133157632;
    ParamStore ps;
    param_store_init(&ps, "bench");
    Tensor *ap = param_new(&ps, "p", 1, (int64_t[]){adam_n});
    rng_fill_normal(&r, ap->grad, adam_n, 0.0f, 1e-3f);
    AdamW opt;
    adamw_init(&opt, &ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
    const double adam_ms = best_ms(run_adamw, &opt), adam_torch_ms = torch_ms("adamw", tout);
    adamw_free(&opt);
    param_store_free(&ps);
    Row *peak = &rows[nr++];
    snprintf(peak->name, sizeof peak->name, "sgemm 2048^3 (peak)");
    peak->flops = 2.0 * 2048 * 2048 * 2048;
    peak->ms = best_ms(run_sgemm, &ga);
    peak->torch_ms = torch_ms("sgemm2048", tout);
    double peak_gf = peak->flops / peak->ms / 1e6;

    printf("bench_ops: %d threads, best of %d, OpenBLAS core %s (both sides); ViT-B/32 shapes: %d frames x %d tokens, "
           "width %d, %d heads%s%s%s\n", threads, repeats, xc_blas_core(), T, L, W, HEADS,
           bf16 ? "; xclip.c's linear layers and attention with bf16 matmuls (" : "", bf16 ? gemm_bf16_kernel_name(&mm) : "",
           bf16 ? "), PyTorch float32, %peak of float32 SGEMM" : "");
    printf("%-24s %10s %9s %7s %10s %9s %8s\n", "op", "xclip ms", "GFLOP/s", "%peak", "torch ms", "GFLOP/s", "speedup");
    for (int i = 0; i < nr; i++) {
        double gf = rows[i].flops / rows[i].ms / 1e6, tg = rows[i].torch_ms > 0 ? rows[i].flops / rows[i].torch_ms / 1e6 : 0;
        printf("%-24s %10.3f %9.1f %6.0f%% ", rows[i].name, rows[i].ms, gf, 100.0 * gf / peak_gf);
        if (rows[i].torch_ms > 0) printf("%10.3f %9.1f %7.2fx\n", rows[i].torch_ms, tg, rows[i].torch_ms / rows[i].ms);
        else printf("%10s %9s %8s\n", "-", "-", "-");
    }
    printf("%-24s %10.3f %9s %7s ", "adamw 133.2M floats", adam_ms, "-", "-");
    if (adam_torch_ms > 0) printf("%10.3f %9s %7.2fx\n", adam_torch_ms, "-", adam_torch_ms / adam_ms);
    else printf("%10s %9s %8s\n", "-", "-", "-");
    printf("(adamw: %.1f GB/s of weights, moments and gradients; per training step at any batch and precision)\n",
           28.0 * (double)adam_n / adam_ms / 1e6);
    xc_free(ga.a); xc_free(ga.b); xc_free(ga.c);
    xc_free(tout);
    graph_free(&g);
    gemm_free(&mm);
    return 0;
}
