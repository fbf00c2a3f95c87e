// bench_xclip - one X-CLIP training step (forward, soft-target CE, backward, AdamW) and one evaluation
// forward at ViT-B/32 size (width 768, 12 layers, patch 32, 224 px, embed 512; --patch 16: ViT-B/16), T = 8, batch 2,
// K = 400 cached text features, random weights; against PyTorch 1.13 running the reference model
// (tests/ref/xclip_ref.py) on the same input in the same run, in its own process.
//
//   bench_xclip [--threads N] [--steps S] [--rounds R] [--batch B] [--frames T] [--patch 32|16] [--checkpoint] [--no-fused]
//               [--no-spill] [--bf16[=amx|avx512-bf16|avx512-fma|amx-emulated]] [--no-torch] [--torch-mem GB]
// The C side runs as xclip-train does by default: AdamW applied inside backward with transient gradients (no
// gradient buffers between steps; --no-fused: backward, then adamw_step) and the frozen text tower, which a
// fix_text step never reads, spilled to an unlinked file in $TMPDIR, default /tmp (--no-spill: kept in memory;
// see param_store_spill). --checkpoint recomputes each vision block in backward. --bf16 runs the C side's large
// matmuls in bf16 (a Gemm context at XC_MATMUL_BF16 on gemm_init's kernel, or =NAME's), adds PyTorch under
// torch.autocast('cpu', bfloat16), and runs the C side in float32 too, in the same rounds, for the bf16 / float32
// ratio of our own step.
// PyTorch runs under an address-space limit (--torch-mem GB; default: the machine's memory less 1 GiB), so a
// configuration too large for the machine fails in PyTorch with an error and is reported as not run ("-").
// Prints seconds per step, videos/s, peak RSS, achieved GFLOP/s (model FLOPs counted analytically), the CPU
// seconds of a training step (all threads; each side's smallest) and the cores it kept busy (CPU seconds per wall
// second: under background load, the share of the CPU a side gets), and the ratios. Each side's peak RSS is its
// own process's. Every round also times SGEMM at 2048^3 (OpenBLAS, best of 3, in this process between the
// sides): the float32 step's share of the SGEMM floor (step FLOPs / SGEMM peak) is then measured in the same
// rounds, not against a peak taken at another time on a machine whose speed drifts.
#include "autograd/kernels.h"
#include "autograd/runtime.h"
#include "nn/xclip.h"
#include "optim/adamw.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// OpenBLAS's SGEMM at 2048^3 with the sides' threads, best of 3 after a warm-up call: GFLOP/s.
static double sgemm_peak(int threads) {
    const int n = 2048;
    float *a = xc_malloc(sizeof(float) * n * n), *b = xc_malloc(sizeof(float) * n * n), *c = xc_malloc(sizeof(float) * n * n);
    for (int64_t i = 0; i < (int64_t)n * n; i++) a[i] = b[i] = (float)(i % 17) * 0.0625f - 0.5f;
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        const double t0 = xc_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        const double t = xc_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    xc_free(a);
    xc_free(b);
    xc_free(c);
    return 2.0 * n * n * n / best / 1e9;
}

typedef struct Figures {
    double train_s, eval_s, rss_gb;
    double train_cpu_s, eval_cpu_s; // CPU seconds of all threads (less sensitive to other load than the wall time)
} Figures;

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// Forward FLOPs of the video side (2 per multiply-add), split by where they grow: the per-frame ViT (CLIP's
// blocks over the L = N + 1 tokens of each frame, the patch stem and the projections: linear in B x T), the
// cross-frame communication (the message token in every block, message_fc and the message attention over T:
// linear in B x T, plus a B x T^2 term), the MIT (B x T, plus B x T^2) and the prompt generator (B x K x N, not
// growing with T).
typedef struct Flops {
    double vit, cross, mit, prompts;
} Flops;

// One transformer block of width W over n tokens in each of F frames: qkv + out_proj, the MLP, Q K^T and P V.
static double block_flops(double F, double n, double W) {
    return F * n * 2 * 4 * W * W + F * n * 2 * 8 * W * W + F * 4 * n * n * W;
}

static Flops forward_flops(const XClipConfig *c, int64_t B, int64_t K) {
    const ClipConfig *k = &c->clip;
    double W = (double)k->vision_width, E = (double)k->embed_dim, T = (double)c->frames;
    double N = (double)(k->image_size / k->patch) * (k->image_size / k->patch), L = N + 1, F = (double)B * T;
    double vit_block = block_flops(F, L, W);
    double cross_block = block_flops(F, L + 1, W) - vit_block - F * 2 * 8 * W * W // the message token skips the MLP
                         + F * 2 * W * W                                            // message_fc
                         + F * 2 * 4 * W * W + (double)B * 4 * T * T * W;           // message attention over T
    double stem = F * N * 2 * 3 * k->patch * k->patch * W;
    double heads = F * 2 * W * E + F * N * 2 * W * E;
    return (Flops){
        .vit = (double)k->vision_layers * vit_block + stem + heads,
        .cross = (double)k->vision_layers * cross_block,
        .mit = (double)c->mit_layers * (B * T * 2 * 12 * E * E + B * 2 * 2 * T * T * E),
        .prompts = (double)c->prompt_layers * (B * K * 2 * 10 * E * E + B * N * 2 * 2 * E * E + B * 2 * 2 * K * N * E)};
}

// Resident memory after each phase of the C run (stderr-free: echoed by the parent).
static void phase(const char *what) {
    printf("rss after %-28s %.3f GB (peak %.3f GB)\n", what, xc_rss() / 1e9, xc_peak_rss() / 1e9);
}

static Figures run_c(const XClipConfig *cfg, int64_t B, int64_t K, int steps, bool fused, const char *spill_dir, bool bf16,
                     const char *kernel) {
    ParamStore ps;
    param_store_init(&ps, "params");
    ps.transient_grads = fused; // gradients live only inside backward
    XClip m;
    xclip_init(&m, &ps, cfg);
    xclip_init_clip_random(&m, 1);
    xclip_init_new_tensors(&m, 1);
    // K cached text features (random rows, as if from K label names)
    m.text_cache = xc_malloc((size_t)(K * cfg->clip.embed_dim) * sizeof(float));
    m.text_cache_k = K;
    Rng r = rng_stream(2, RNG_STREAM_TEST);
    rng_fill_normal(&r, m.text_cache, K * cfg->clip.embed_dim, 0.0f, 1.0f);
    phase("model");
    if (spill_dir) { // fix_text: the frozen text tower is not needed once the features are cached
        XcError err;
        size_t moved;
        if (param_store_spill(&ps, xclip_is_text_tensor, spill_dir, &moved, &err) != XC_OK)
            printf("the frozen text tower stays in memory: %s\n", err.msg); // as xclip-train: a note, not a failure
        else
            printf("spilled the frozen text tower (%.2f GB) to %s\n", moved / 1e9, spill_dir);
        phase("spill");
    }
    AdamW opt;
    adamw_init(&opt, &ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
    phase("optimiser");
    Gemm mm;
    XcError err;
    if (gemm_init(&mm, bf16 ? XC_MATMUL_BF16 : XC_MATMUL_FP32, &err) != XC_OK) xc_fatal("--bf16: %s", err.msg);
    if (bf16 && kernel && gemm_set_bf16_kernel(&mm, xc_bf16_kernel_named(kernel), &err) != XC_OK)
        xc_fatal("--bf16=%s: %s", kernel, err.msg);
    Graph g;
    graph_init(&g, 0);
    g.gemm = &mm;
    if (fused) adamw_fuse(&opt, &g); // AdamW applied in backward
    int64_t S = cfg->clip.image_size, T = cfg->frames;
    int64_t vshape[5] = {B, T, 3, S, S};
    float *video = xc_malloc((size_t)(B * T * 3 * S * S) * sizeof(float));
    rng_fill_normal(&r, video, B * T * 3 * S * S, 0.0f, 1.0f);
    Figures f = {1e30, 1e30, 0, 1e30, 1e30};
    for (int s = 0; s <= steps; s++) { // step 0 warms up (and sizes the arena)
        double t0 = xc_now(), c0 = cpu_now();
        Tensor *v = tensor_from(&g, 5, vshape, video);
        XClipOut o = xclip_forward(&g, &m, v, NULL, K, 77, NULL);
        Tensor *y = tensor_zeros(&g, 2, (int64_t[]){B, K});
        for (int64_t b = 0; b < B; b++) y->data[b * K + (b * 7) % K] = 1.0f;
        if (fused) adamw_begin_step(&opt, (float[]){1e-5f});
        graph_backward(&g, op_soft_cross_entropy(&g, o.logits, y));
        if (fused) adamw_end_step(&opt);
        if (!fused) {
            adamw_step(&opt, (float[]){1e-5f});
            param_store_zero_grad(&ps);
        }
        graph_reset(&g);
        double dt = xc_now() - t0, dc = cpu_now() - c0;
        if (s && dt < f.train_s) f.train_s = dt;
        if (s && dc < f.train_cpu_s) f.train_cpu_s = dc;
        if (!s) {
            phase("first training step");
            graph_profile_reset(&g); // XCLIP_PROFILE: the steps after the warm-up only
        }
    }
    phase("training steps");
    if (g.profile) {
        fprintf(stderr, "profile of the %d training steps after the warm-up:\n", steps);
        graph_profile_print(&g, stderr);
    }
    graph_set_grad(&g, false);
    for (int s = 0; s <= steps; s++) {
        double t0 = xc_now(), c0 = cpu_now();
        Tensor *v = tensor_from(&g, 5, vshape, video);
        xclip_forward(&g, &m, v, NULL, K, 77, NULL);
        graph_reset(&g);
        double dt = xc_now() - t0, dc = cpu_now() - c0;
        if (s && dt < f.eval_s) f.eval_s = dt;
        if (s && dc < f.eval_cpu_s) f.eval_cpu_s = dc;
        if (!s) graph_profile_reset(&g);
    }
    phase("evaluation");
    f.rss_gb = (double)xc_peak_rss() / 1e9;
    printf("%lld parameters (%lld trained), step arena peak %.2f GB, matmuls in %s%s\n", (long long)ps.total,
           (long long)opt.numel, g.step.peak / 1e9, bf16 ? "bf16 on " : "float32", bf16 ? gemm_bf16_kernel_name(&mm) : "");
    xc_free(video);
    adamw_free(&opt);
    if (g.profile) fprintf(stderr, "profile of the %d evaluation forwards after the warm-up:\n", steps);
    graph_free(&g); // prints the profile
    gemm_free(&mm);
    xclip_free(&m);
    param_store_free(&ps);
    return f;
}

// Best of two measurements: the shorter times, the larger peak RSS (0 = not measured).
static void keep_best(Figures *best, Figures f) {
    if (f.train_s > 0 && (best->train_s <= 0 || f.train_s < best->train_s)) best->train_s = f.train_s;
    if (f.eval_s > 0 && (best->eval_s <= 0 || f.eval_s < best->eval_s)) best->eval_s = f.eval_s;
    if (f.rss_gb > best->rss_gb) best->rss_gb = f.rss_gb;
    if (f.train_cpu_s > 0 && (best->train_cpu_s <= 0 || f.train_cpu_s < best->train_cpu_s)) best->train_cpu_s = f.train_cpu_s;
    if (f.eval_cpu_s > 0 && (best->eval_cpu_s <= 0 || f.eval_cpu_s < best->eval_cpu_s)) best->eval_cpu_s = f.eval_cpu_s;
}

// Runs a command and reads its "train_s / eval_s / rss_gb" lines; other lines are echoed. A side that exits
// with an error (PyTorch out of memory, say) is reported by name, and its figures stay 0 (not measured).
static Figures run_side(const char *cmd, const char *tag) {
    Figures f = {0, 0, 0, 0, 0};
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) return f;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, "train_s ", 8)) f.train_s = atof(line + 8);
        else if (!strncmp(line, "eval_s ", 7)) f.eval_s = atof(line + 7);
        else if (!strncmp(line, "rss_gb ", 7)) f.rss_gb = atof(line + 7);
        else if (!strncmp(line, "train_cpu_s ", 12)) f.train_cpu_s = atof(line + 12);
        else if (!strncmp(line, "eval_cpu_s ", 11)) f.eval_cpu_s = atof(line + 11);
        else printf("  %s: %s", tag, line);
    }
    int st = pclose(p);
    if (st != 0) {
        printf("  %s: failed (%s %d)\n", tag, WIFSIGNALED(st) ? "killed by signal" : "exit status",
               WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        f = (Figures){0, 0, 0, 0, 0};
    }
    return f;
}

// The PyTorch side's default address-space limit in KiB (--torch-mem GB sets another): the machine's memory less
// 1 GiB, so that a configuration too large for the machine fails inside PyTorch ("can't allocate memory") instead
// of waking the kernel's OOM killer.
// (PyTorch's address space exceeds its resident peak by about 1 GB: 4.0 against 3.1 GB at ViT-B/32, T = 8 x 1.)
static long long torch_mem_limit_kib(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    long long total = 0;
    if (f) {
        if (fscanf(f, "MemTotal: %lld kB", &total) != 1) total = 0;
        fclose(f);
    }
    return total > (2LL << 20) ? total - (1LL << 20) : 0;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    int threads = 2, steps = 3, rounds = 1;
    int64_t B = 2, T = 8, K = 400, P = 32;
    bool with_torch = true, c_only = false, checkpoint = false, fused = true, spill = true; // the trainer's defaults
    bool bf16 = false;
    const char *kernel = NULL; // --bf16=NAME
    double torch_mem_gb = 0; // 0: the machine's memory less 1 GiB
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--frames") && i + 1 < argc) T = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--patch") && i + 1 < argc) P = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) with_torch = false;
        else if (!strcmp(argv[i], "--c-only")) c_only = true; // internal: the C side in its own process
        else if (!strcmp(argv[i], "--checkpoint")) checkpoint = true;
        else if (!strcmp(argv[i], "--no-fused")) fused = false;
        else if (!strcmp(argv[i], "--no-spill")) spill = false;
        else if (!strcmp(argv[i], "--bf16")) bf16 = true;
        else if (!strncmp(argv[i], "--bf16=", 7)) {
            bf16 = true;
            kernel = argv[i] + 7;
            if (xc_bf16_kernel_named(kernel) == XC_BF16_NONE) {
                fprintf(stderr, "bench_xclip: --bf16=%s: want amx, avx512-bf16, avx512-fma or amx-emulated\n", kernel);
                return 2;
            }
        } else if (!strcmp(argv[i], "--torch-mem") && i + 1 < argc) torch_mem_gb = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_xclip [--threads N] [--steps S] [--rounds R] [--batch B] [--frames T] [--patch 32|16]\n"
                            "                   [--checkpoint] [--no-fused] [--no-spill] [--bf16[=amx|avx512-bf16|avx512-fma|amx-emulated]]\n"
                            "                   [--no-torch] [--torch-mem GB]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1 || rounds < 1 || B < 1 || T < 1 || (P != 32 && P != 16) || torch_mem_gb < 0) {
        fprintf(stderr, "bench_xclip: bad arguments\n");
        return 2;
    }
    ClipConfig clip = {.vision_width = 768, .vision_layers = 12, .vision_heads = 12, .vision_mlp = 3072, .patch = P,
                       .image_size = 224, .embed_dim = 512, .text_width = 512, .text_layers = 12, .text_heads = 8,
                       .text_mlp = 2048, .context = 77, .vocab = 49408};
    XClipConfig cfg = xclip_config_default(&clip, T);
    cfg.checkpoint = checkpoint;
    if (c_only) { // each side runs in a process of its own, so each peak RSS is that side's alone
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
        openblas_set_num_threads(threads);
        const char *tmp = getenv("TMPDIR");
        Figures f = run_c(&cfg, B, K, steps, fused, spill ? (tmp && *tmp ? tmp : "/tmp") : NULL, bf16, kernel);
        printf("train_s %.4f\neval_s %.4f\nrss_gb %.3f\ntrain_cpu_s %.4f\neval_cpu_s %.4f\n", f.train_s, f.eval_s, f.rss_gb,
               f.train_cpu_s, f.eval_cpu_s);
        return 0;
    }
    const Flops fl = forward_flops(&cfg, B, K);
    const double flops_fwd = fl.vit + fl.cross + fl.mit + fl.prompts, flops_train = 3 * flops_fwd;
    printf("bench_xclip: X-CLIP ViT-B/%lld, T=%lld, batch %lld, K=%lld cached text features, %d threads, best of %d steps x %d "
           "rounds, OpenBLAS core %s (both sides)%s%s%s%s%s%s\n", (long long)P, (long long)T, (long long)B, (long long)K, threads, steps, rounds, xc_blas_core(),
           checkpoint ? ", xclip.c with gradient checkpointing" : "", fused ? ", AdamW fused into backward" : "",
           spill ? ", frozen text tower spilled to disk" : "",
           bf16 ? ", xclip.c matmuls in bf16 (" : "", bf16 ? (kernel ? kernel : xc_bf16_kernel_name(xc_bf16_best_kernel())) : "",
           bf16 ? "), PyTorch also under bf16 autocast" : "");
    char cmd[1024], limit[64] = "";
    const long long mem_kib = torch_mem_gb > 0 ? (long long)(torch_mem_gb * (1 << 20)) : torch_mem_limit_kib();
    if (mem_kib > 0) snprintf(limit, sizeof limit, "ulimit -v %lld; ", mem_kib);
    Figures tf = {0}, tb = {0}, cf = {0}, cf32 = {0};
    double peak = 0; // SGEMM GFLOP/s, the best of the rounds
    char self[512] = {0};
    if (readlink("/proc/self/exe", self, sizeof self - 1) <= 0) { fprintf(stderr, "bench_xclip: cannot find itself\n"); return 1; }
    // Rounds alternate the sides (PyTorch, then xclip.c), each in a process of its own; every figure is the best
    // over the rounds (RSS: the largest), so a slow spell of a shared machine hits both sides alike.
    for (int round = 0; round < rounds; round++) {
        if (with_torch) {
            snprintf(cmd, sizeof cmd, "%sexec /usr/bin/python3 %s/bench_xclip_ref.py %d %d %lld %lld %lld patch=%lld 2>&1", limit,
                     XCLIP_BENCH_DIR, threads, steps, (long long)B, (long long)T, (long long)K, (long long)P);
            keep_best(&tf, run_side(cmd, "torch"));
            if (bf16) { // like for like: torch.autocast('cpu', bfloat16) (oneDNN)
                snprintf(cmd, sizeof cmd, "%sexec /usr/bin/python3 %s/bench_xclip_ref.py %d %d %lld %lld %lld bf16 patch=%lld 2>&1",
                         limit, XCLIP_BENCH_DIR, threads, steps, (long long)B, (long long)T, (long long)K, (long long)P);
                keep_best(&tb, run_side(cmd, "torch bf16"));
            }
        }
        for (int side = bf16 ? 0 : 1; side < 2; side++) { // with --bf16: the C side in float32 first, then in bf16
            const bool side_bf16 = bf16 && side == 1;
            snprintf(cmd, sizeof cmd, "'%s' --c-only --threads %d --steps %d --batch %lld --frames %lld --patch %lld%s%s%s%s%s%s",
                     self, threads, steps, (long long)B, (long long)T, (long long)P, checkpoint ? " --checkpoint" : "",
                     fused ? "" : " --no-fused", spill ? "" : " --no-spill", side_bf16 ? " --bf16" : "",
                     side_bf16 && kernel ? "=" : "", side_bf16 && kernel ? kernel : "");
            Figures f = run_side(cmd, side_bf16 || !bf16 ? "xclip.c" : "xclip.c fp32");
            printf("  round %d: xclip.c%s step %.3f s (%.2f CPU s), eval %.3f s (%.2f CPU s)\n", round + 1,
                   bf16 ? (side_bf16 ? " bf16" : " fp32") : "", f.train_s, f.train_cpu_s, f.eval_s, f.eval_cpu_s);
            keep_best(side_bf16 || !bf16 ? &cf : &cf32, f);
        }
        const double gf = sgemm_peak(threads);
        printf("  round %d: SGEMM 2048^3 %.1f GFLOP/s\n", round + 1, gf);
        peak = gf > peak ? gf : peak;
    }
    if (with_torch && tf.train_s <= 0) fprintf(stderr, "bench_xclip: the PyTorch reference did not run (its output is above)\n");
    if (with_torch && bf16 && tb.train_s <= 0)
        fprintf(stderr, "bench_xclip: PyTorch under bf16 autocast did not run (its output is above)\n");
    if (cf.train_s <= 0) { fprintf(stderr, "bench_xclip: the C run failed\n"); return 1; }

    // columns: xclip.c, PyTorch (float32), ratio, and with --bf16 PyTorch under bf16 autocast and its ratio;
    // "-" where a side did not run
    const Figures *cols[2] = {&tf, &tb};
    const int ncols = with_torch ? (bf16 ? 2 : 1) : 0;
    printf("%-22s %12s", "", bf16 ? "xclip.c bf16" : "xclip.c");
    if (ncols >= 1) printf(" %12s %8s", "PyTorch", "ratio");
    if (ncols >= 2) printf(" %14s %8s", "PyTorch bf16", "ratio");
    printf("\n");
    const struct { const char *name; int what; bool ratio; } ROWS[] = {
        {"train step (s)", 0, true}, {"train videos/s", 1, false}, {"train GFLOP/s", 2, false}, {"eval forward (s)", 3, true},
        {"eval videos/s", 4, false}, {"eval GFLOP/s", 5, false}, {"peak RSS (GB)", 6, true},
        {"train CPU s/step", 7, true}, {"train cores busy", 8, false}};
    for (size_t r = 0; r < sizeof ROWS / sizeof ROWS[0]; r++) {
        double v[3];
        const Figures *fs[3] = {&cf, cols[0], cols[1]};
        for (int k = 0; k < 3; k++) {
            const Figures *f = fs[k];
            switch (ROWS[r].what) {
            case 0: v[k] = f->train_s; break;
            case 1: v[k] = f->train_s > 0 ? B / f->train_s : 0; break;
            case 2: v[k] = f->train_s > 0 ? flops_train / f->train_s / 1e9 : 0; break;
            case 3: v[k] = f->eval_s; break;
            case 4: v[k] = f->eval_s > 0 ? B / f->eval_s : 0; break;
            case 5: v[k] = f->eval_s > 0 ? flops_fwd / f->eval_s / 1e9 : 0; break;
            case 6: v[k] = f->rss_gb; break;
            case 7: v[k] = f->train_cpu_s; break;
            default: v[k] = f->train_s > 0 ? f->train_cpu_s / f->train_s : 0; break; // CPU seconds per second
            }
        }
        printf("%-22s %12.3f", ROWS[r].name, v[0]);
        for (int k = 1; k <= ncols; k++) {
            // times: how many times faster xclip.c is; memory: xclip.c's share of PyTorch's
            const int width = k == 1 ? 12 : 14;
            if (v[k] <= 0 || v[0] <= 0) {
                printf(" %*s %8s", width, "-", ROWS[r].ratio ? "-" : "");
                continue;
            }
            printf(" %*.3f", width, v[k]);
            if (ROWS[r].ratio) printf(" %7.2fx", ROWS[r].what == 6 ? v[0] / v[k] : v[k] / v[0]);
            else printf(" %8s", "");
        }
        printf("\n");
    }
    printf("(model forward %.1f GFLOP per step, training counted as 3x forward; of the forward: per-frame ViT %.2f%%, "
           "cross-frame communication %.2f%%, MIT %.3f%%, prompt generator %.2f%%)\n", flops_fwd / 1e9,
           100 * fl.vit / flops_fwd, 100 * fl.cross / flops_fwd, 100 * fl.mit / flops_fwd, 100 * fl.prompts / flops_fwd);
    const Figures *f32 = bf16 ? &cf32 : &cf;
    if (f32->train_s > 0)
        printf("xclip.c float32 step at %.0f%% of the SGEMM floor: %.1f GFLOP/s against SGEMM's %.1f (2048^3, best of the "
               "same rounds)\n", 100 * flops_train / f32->train_s / 1e9 / peak, flops_train / f32->train_s / 1e9, peak);
    if (bf16 && cf32.train_s > 0)
        printf("xclip.c bf16 vs its own float32 (best of the same rounds): step %.3f s vs %.3f s (%.2fx; CPU time %.2fx), "
               "eval %.3f s vs %.3f s (%.2fx; CPU time %.2fx)\n", cf.train_s, cf32.train_s, cf32.train_s / cf.train_s,
               cf32.train_cpu_s / cf.train_cpu_s, cf.eval_s, cf32.eval_s, cf32.eval_s / cf.eval_s,
               cf32.eval_cpu_s / cf.eval_cpu_s);
    return 0;
}
