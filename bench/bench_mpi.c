// bench_mpi - data-parallel training on this machine: the X-CLIP training step at ViT-B/32 size (width 768, 12
// layers, patch 32, 224 px, T = 8, K = 400 cached class features, fix_text: the vision side trains) as
// xclip-train runs it with mpirun, for the same videos per step:
//   1 process x 2 threads, batch 2                     (mpirun -np 1: no MPI at all)
//   2 ranks x 1 thread, batch 1 each                   (mpirun -np 2: gradients summed in buckets during backward)
//   the same over TCP only (--mca btl tcp,self: the loopback as a stand-in for Ethernet), without and with
//   Open MPI's TCP progress thread (--mca btl_tcp_progress_thread 1: transfers advance between MPI calls too)
// alternating, in the same run. Prints seconds per step, the time the step waited for the sums after backward
// (communication not hidden), the time buckets were in flight, a blocking all-reduce of the same gradient bytes
// (what overlap saves) and the all-reduce bandwidth over this machine's loopback for 4, 64 and 256 MB.
//
//   bench_mpi [--steps S] [--rounds R] [--bucket-mb MB]       (needs mpirun: package openmpi-bin)
//   mpirun -np N bench_mpi --worker [--threads T] [--batch B] [--steps S] [--bucket-mb MB]   (one measurement)
#include "autograd/runtime.h"
#include "nn/xclip.h"
#include "train/step.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef XCLIP_HAVE_MPI
#include <mpi.h>
#endif

// One measurement in this process (every rank runs it; rank 0 prints "key value" lines).
static int worker(int threads, int B, int steps, double bucket_mb) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    openblas_set_num_threads(threads);
    const int N = dist_size(), rank = dist_rank();
    ClipConfig clip = {.vision_width = 768, .vision_layers = 12, .vision_heads = 12, .vision_mlp = 3072, .patch = 32,
                       .image_size = 224, .embed_dim = 512, .text_width = 512, .text_layers = 12, .text_heads = 8,
                       .text_mlp = 2048, .context = 77, .vocab = 49408};
    XClipConfig cfg = xclip_config_default(&clip, 8);
    const int64_t K = 400, T = cfg.frames, H = clip.image_size;
    ParamStore ps;
    param_store_init(&ps, "params");
    XClip m;
    xclip_init(&m, &ps, &cfg);
    xclip_init_clip_random(&m, 1);
    xclip_init_new_tensors(&m, 1);
    m.text_cache = xc_malloc(sizeof(float) * (size_t)(K * clip.embed_dim));
    m.text_cache_k = K;
    Rng r = rng_stream(2, RNG_STREAM_TEST);
    rng_fill_normal(&r, m.text_cache, K * clip.embed_dim, 0.0f, 1.0f);
    TrainStep st;
    train_step_init(&st, &m, &ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f}, 10.0, lr_schedule_make(1e-5, 1e-7, 0, 1000),
                    1, 1, false);
    train_step_distribute(&st, (size_t)(bucket_mb * 1e6));
    float *video = xc_malloc(sizeof(float) * (size_t)(B * T * 3 * H * H));
    float *targets = xc_calloc((size_t)(B * K), sizeof(float));
    Rng vr = rng_stream(3 + (uint64_t)rank, RNG_STREAM_TEST);
    rng_fill_normal(&vr, video, B * T * 3 * H * H, 0.0f, 1.0f);
    for (int b = 0; b < B; b++) targets[b * K + (b * 7 + rank) % K] = 1.0f;
    double best = 1e30, sum = 0, wait0 = 0, comm0 = 0;
    for (int s = 0; s <= steps; s++) { // step 0 warms up
        dist_barrier();
        if (s == 1) wait0 = st.reduce.stats.wait, comm0 = st.reduce.stats.comm;
        const double t0 = xc_now();
        train_step_run(&st, video, B, targets, (int64_t)s * N + N - 1, (int64_t)s * N + N - 1, NULL);
        double dt = xc_now() - t0;
        dist_sum_f64(&dt, 1); // the ranks' mean
        dt /= N;
        if (s) sum += dt, best = dt < best ? dt : best;
    }
    int64_t trained = 0;
    for (int i = 0; i < ps.n; i++) trained += ps.p[i]->requires_grad ? ps.p[i]->numel : 0;
    if (rank == 0) {
        printf("ranks %d\nthreads %d\nbatch %d\nstep_s %.4f\nstep_best_s %.4f\ntrained_params %lld\n", N, threads, B,
               sum / steps, best, (long long)trained);
        if (N > 1)
            printf("wait_s %.4f\ncomm_s %.4f\nbuckets_per_step %.1f\n", (st.reduce.stats.wait - wait0) / steps,
                   (st.reduce.stats.comm - comm0) / steps, (double)st.reduce.stats.buckets / (steps + 1));
    }
#ifdef XCLIP_HAVE_MPI
    if (N > 1) { // a blocking all-reduce of every trained gradient, and the loopback bandwidth
        const size_t sizes[] = {(size_t)trained * sizeof(float), (size_t)4 << 20, (size_t)64 << 20, (size_t)256 << 20};
        const char *names[] = {"allreduce_grads_s", "allreduce_4mb_s", "allreduce_64mb_s", "allreduce_256mb_s"};
        for (int k = 0; k < 4; k++) {
            const size_t n = sizes[k] / sizeof(float);
            float *buf = xc_calloc(n, sizeof(float));
            double t_best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                MPI_Barrier(MPI_COMM_WORLD);
                const double t0 = xc_now();
                for (size_t off = 0; off < n; off += (size_t)1 << 28) // int counts
                    MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)(n - off < ((size_t)1 << 28) ? n - off : (size_t)1 << 28),
                                  MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                double dt = xc_now() - t0;
                t_best = dt < t_best ? dt : t_best;
            }
            if (rank == 0) printf("%s %.4f\n", names[k], t_best);
            xc_free(buf);
        }
    }
#endif
    xc_free(video);
    xc_free(targets);
    train_step_free(&st);
    xclip_free(&m);
    param_store_free(&ps);
    return 0;
}

// "key value" of a worker's output, NAN if absent.
static double value(const char *out, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = strstr(out, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

// The transports the 2 ranks are measured over.
static const char *const TRANSPORT[] = {"shared memory", "TCP loopback", "TCP + progress thread"};
static const char *const TRANSPORT_MCA[] = {"", "--mca btl tcp,self ", "--mca btl tcp,self --mca btl_tcp_progress_thread 1 "};
#define N_TRANSPORTS 3

// One worker run under mpirun over transport t; its output (malloc'd) or NULL.
static char *measure(const char *self, int np, int t, int threads, int B, int steps, double bucket_mb) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mpirun --allow-run-as-root --oversubscribe --bind-to none %s-np %d '%s' --worker --threads %d "
             "--batch %d --steps %d --bucket-mb %g", TRANSPORT_MCA[t], np, self, threads, B, steps, bucket_mb);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char *out = xc_calloc(1, 65536);
    out[0] = '\n';
    size_t n = fread(out + 1, 1, 65534, p);
    out[n + 1] = 0;
    if (pclose(p) != 0) {
        fprintf(stderr, "bench_mpi: %s failed:\n%s\n", cmd, out);
        xc_free(out);
        return NULL;
    }
    return out;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv);
    int steps = 3, rounds = 2, threads = 2, B = 2;
    double bucket_mb = 4;
    bool is_worker = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--worker")) is_worker = true;
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--bucket-mb") && i + 1 < argc) bucket_mb = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_mpi [--steps S] [--rounds R] [--bucket-mb MB]\n"
                            "       mpirun -np N bench_mpi --worker [--threads T] [--batch B] [--steps S] [--bucket-mb MB]\n");
            return 2;
        }
    }
    if (steps < 1 || rounds < 1 || threads < 1 || B < 1 || !(bucket_mb > 0)) { fprintf(stderr, "bench_mpi: bad arguments\n"); return 2; }
    XcError err;
    if (dist_init(&argc, &argv, &err) != XC_OK) { fprintf(stderr, "bench_mpi: %s\n", err.msg); return 2; }
    if (is_worker) {
        int rc = worker(threads, B, steps, bucket_mb);
        dist_finalize();
        return rc;
    }
    if (!dist_built_with_mpi()) { fprintf(stderr, "bench_mpi: this build has no MPI\n"); return 2; }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) { fprintf(stderr, "bench_mpi: cannot find its own program\n"); return 2; }
    self[len] = 0;
    printf("bench_mpi: X-CLIP ViT-B/32, T = 8, K = 400, fix_text; 2 videos per step; %d steps x %d rounds, alternating; "
           "buckets of %g MB\n", steps, rounds, bucket_mb);
    double one = 1e30, two[N_TRANSPORTS], wait[N_TRANSPORTS] = {0}, comm[N_TRANSPORTS] = {0}, block[N_TRANSPORTS] = {0};
    double bw[N_TRANSPORTS][3] = {{0}};
    for (int t = 0; t < N_TRANSPORTS; t++) two[t] = 1e30;
    double trained = 0, buckets = 0;
    for (int round = 0; round < rounds; round++) {
        char *a = measure(self, 1, 0, 2, 2, steps, bucket_mb);
        if (!a) return 1;
        const double sa = value(a, "step_s");
        printf("round %d: 1 process x 2 threads %.3f s/step", round + 1, sa);
        one = sa < one ? sa : one;
        xc_free(a);
        for (int t = 0; t < N_TRANSPORTS; t++) {
            char *b = measure(self, 2, t, 1, 1, steps, bucket_mb);
            if (!b) return 1;
            const double sb = value(b, "step_s");
            printf(", 2 ranks x 1 thread (%s) %.3f s/step", TRANSPORT[t], sb);
            if (sb < two[t]) {
                two[t] = sb, wait[t] = value(b, "wait_s"), comm[t] = value(b, "comm_s"), block[t] = value(b, "allreduce_grads_s");
                bw[t][0] = value(b, "allreduce_4mb_s"), bw[t][1] = value(b, "allreduce_64mb_s"), bw[t][2] = value(b, "allreduce_256mb_s");
                trained = value(b, "trained_params"), buckets = value(b, "buckets_per_step");
            }
            xc_free(b);
        }
        printf("\n");
    }
    printf("\nbest of the rounds (mean over each run's steps):\n");
    printf("  1 process x 2 threads, batch 2:   %.3f s/step\n", one);
    printf("  gradients: %.0fM trained floats = %.3f GB per step in %.0f buckets\n", trained / 1e6, trained * 4 / 1e9, buckets);
    const double mb[3] = {4, 64, 256};
    for (int t = 0; t < N_TRANSPORTS; t++) {
        printf("  2 ranks x 1 thread, batch 1 each, %s: %.3f s/step (%.2fx the single process)\n", TRANSPORT[t], two[t],
               one / two[t]);
        printf("    all-reduce per step: in flight %.3f s, waited for after backward %.3f s (%.1f%% of the step)\n", comm[t],
               wait[t], 100 * wait[t] / two[t]);
        printf("    a blocking all-reduce of the same bytes: %.3f s -> overlap hid %.0f%% of it\n", block[t],
               block[t] > 0 ? 100 * (1 - wait[t] / block[t]) : 0);
        for (int k = 0; k < 3; k++) // with 2 ranks each byte crosses once each way: bus = algorithm bandwidth
            printf("    all-reduce of %3.0f MB: %.3f s = %.2f GB/s\n", mb[k], bw[t][k], mb[k] * 1.048576e-3 / bw[t][k]);
    }
    return 0;
}
