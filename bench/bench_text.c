// bench_text - encoding the 400 Kinetics-400 label names with the CLIP text tower at ViT-B/32 size
// (width 512, 12 layers, 8 heads, context 77, vocabulary 49408, random weights), no grad:
// the fast path (rows in groups of similar length, each up to its longest EOT), the same rows all run to the
// longest EOT of all (one common length, the fast path before grouping), the full 77-token pass, and PyTorch 1.13
// running the reference tower (tests/ref/xclip_ref.py) on the same tokens.
// Rounds alternate the sides (PyTorch in its own process, then xclip.c); each figure is the best over the rounds,
// so a slow spell of a shared machine hits both alike. The load average is printed before and after.
//
//   bench_text [--threads N] [--repeats R] [--rounds N] [--no-torch] [--no-full] [--shared DIR]
#include "autograd/runtime.h"
#include "nn/clip.h"
#include "data/tokenizer.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int64_t read_labels(const char *path, int32_t *tokens, int64_t cap, Tokenizer *tok) {
    XcError err;
    size_t len;
    char *csv = xc_read_file(path, 1 << 20, &len, &err);
    if (!csv) { fprintf(stderr, "bench_text: %s\n", err.msg); exit(1); }
    int64_t k = 0;
    char *save = NULL;
    for (char *line = strtok_r(csv, "\r\n", &save); line && k < cap; line = strtok_r(NULL, "\r\n", &save)) {
        char *comma = strchr(line, ',');
        if (!comma || !strncmp(line, "id,", 3)) continue;
        tokenizer_encode(tok, comma + 1, tokens + k * 77, 77);
        k++;
    }
    xc_free(csv);
    return k;
}

// The PyTorch side: its best of `repeats` (after a warm-up) in ms, or 0 if it did not run.
static double torch_best_ms(const int32_t *tokens, int64_t K, int threads, int repeats) {
    char tmp[] = "/tmp/bench_text_XXXXXX";
    int fd = mkstemp(tmp);
    double ms = 0;
    const size_t bytes = (size_t)K * 77 * sizeof(int32_t);
    if (fd >= 0 && write(fd, tokens, bytes) == (ssize_t)bytes) {
        char cmd[2048], line[256];
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench_text_ref.py %s %lld %d %d 2>/dev/null", XCLIP_BENCH_DIR, tmp,
                 (long long)K, threads, repeats);
        FILE *p = popen(cmd, "r");
        if (p) {
            while (fgets(line, sizeof line, p))
                if (!strncmp(line, "full_ms ", 8)) ms = atof(line + 8);
            pclose(p);
        }
    }
    if (fd >= 0) { close(fd); unlink(tmp); }
    return ms;
}

// Best of `repeats` (after a warm-up) of the text tower on tokens (K, 77), in seconds; the features of the last
// run go to out (K, 512).
static double tower_best_s(Graph *g, const Clip *m, const int32_t *tokens, int64_t K, bool fast, int repeats, float *out) {
    double best = 1e30;
    for (int rep = 0; rep <= repeats; rep++) { // rep 0 warms up
        double t = xc_now();
        Tensor *f = clip_encode_text(g, &m->text, tokens, K, 77, fast);
        double dt = xc_now() - t;
        memcpy(out, f->data, (size_t)K * 512 * sizeof(float));
        graph_reset(g);
        if (rep && dt < best) best = dt;
    }
    return best;
}

static void print_load(const char *when) {
    double la[3];
    if (getloadavg(la, 3) == 3) printf("  load average %s: %.2f %.2f %.2f\n", when, la[0], la[1], la[2]);
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    int threads = 2, repeats = 3, rounds = 1;
    bool with_torch = true, with_full = true;
    const char *shared = getenv("XCLIP_SHARED") ? getenv("XCLIP_SHARED") : XCLIP_BENCH_DIR "/../../shared";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc) shared = argv[++i];
        else if (!strcmp(argv[i], "--no-torch")) with_torch = false;
        else if (!strcmp(argv[i], "--no-full")) with_full = false;
        else {
            fprintf(stderr, "usage: bench_text [--threads N] [--repeats R] [--rounds N] [--no-torch] [--no-full] [--shared DIR]\n");
            return 2;
        }
    }
    if (threads < 1 || repeats < 1 || rounds < 1) { fprintf(stderr, "bench_text: --threads, --repeats and --rounds must be >= 1\n"); return 2; }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    openblas_set_num_threads(threads);
    char path[1024];
    XcError err;
    snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz", shared);
    Tokenizer *tok = tokenizer_load_clip(path, &err);
    if (!tok) { fprintf(stderr, "bench_text: %s\n", err.msg); return 1; }
    int32_t *tokens = xc_calloc(400 * 77, sizeof(int32_t));
    snprintf(path, sizeof path, "%s/labels/kinetics_400_labels.csv", shared);
    int64_t K = read_labels(path, tokens, 400, tok);
    tokenizer_free(tok);
    // the same rows with every EOT moved to the longest EOT: one common length, the work of the fast path before
    // it ran rows in groups (timing only: these are other texts)
    int64_t max_eot = 0, positions = 0;
    int32_t *padded = xc_calloc(400 * 77, sizeof(int32_t));
    for (int64_t k = 0; k < K; k++)
        for (int64_t s = 0; s < 77; s++)
            if (tokens[k * 77 + s] == 49407) {
                max_eot = s > max_eot ? s : max_eot;
                positions += s + 1;
            }
    for (int64_t k = 0; k < K; k++)
        for (int64_t s = 0; s <= max_eot; s++)
            padded[k * 77 + s] = s == max_eot ? 49407 : tokens[k * 77 + s] == 49407 ? 1 : tokens[k * 77 + s];

    ClipConfig cfg = {.vision_width = 64, .vision_layers = 1, .vision_heads = 1, .vision_mlp = 256, .patch = 32,
                      .image_size = 32, .embed_dim = 512, .text_width = 512, .text_layers = 12, .text_heads = 8,
                      .text_mlp = 2048, .context = 77, .vocab = 49408};
    ParamStore ps;
    param_store_init(&ps, "params");
    Clip m;
    clip_init(&m, &ps, &cfg, true);
    Rng r = rng_stream(1, RNG_STREAM_TEST);
    for (int i = 0; i < ps.n; i++) rng_fill_normal(&r, ps.p[i]->data, ps.p[i]->numel, 0.0f, 0.02f);
    Graph g;
    graph_init(&g, 512u << 20);
    graph_set_grad(&g, false);
    printf("bench_text: %lld Kinetics-400 label names, %lld positions up to their EOTs, longest EOT at position %lld; "
           "text tower width 512, 12 layers; %d threads, best of %d x %d rounds, OpenBLAS core %s\n", (long long)K,
           (long long)positions, (long long)max_eot, threads, repeats, rounds, xc_blas_core());
    print_load("before");
    float *out[2] = {xc_malloc((size_t)K * 512 * sizeof(float)), xc_malloc((size_t)K * 512 * sizeof(float))};
    double torch_ms = 0, fast_s = 1e30, padded_s = 1e30, full_s = 0;
    for (int round = 0; round < rounds; round++) {
        if (with_torch) {
            double ms = torch_best_ms(tokens, K, threads, repeats);
            if (ms > 0 && (torch_ms == 0 || ms < torch_ms)) torch_ms = ms;
        }
        fast_s = fmin(fast_s, tower_best_s(&g, &m, tokens, K, true, repeats, out[1]));
        padded_s = fmin(padded_s, tower_best_s(&g, &m, padded, K, true, repeats, out[0]));
    }
    if (with_torch && torch_ms <= 0) fprintf(stderr, "bench_text: the PyTorch reference did not run: xclip.c figures only\n");
    printf("  xclip.c fast path (in groups)        %9.1f ms\n", fast_s * 1e3);
    printf("  xclip.c one common length (%2lld pos.)  %9.1f ms   groups speed-up %.2fx\n", (long long)max_eot + 1,
           padded_s * 1e3, padded_s / fast_s);
    if (with_full) { // once, after the rounds: a minute on 2 cores
        full_s = tower_best_s(&g, &m, tokens, K, false, 1, out[0]);
        double maxdiff = 0;
        for (int64_t i = 0; i < K * 512; i++) maxdiff = fmax(maxdiff, fabs((double)out[0][i] - out[1][i]));
        printf("  xclip.c full context (77 positions)  %9.1f ms   fast path speed-up %.2fx, max |diff| %.2g (once)\n",
               full_s * 1e3, full_s / fast_s, maxdiff);
    }
    if (torch_ms > 0) {
        printf("  PyTorch 1.13 full context            %9.1f ms   fast path speed-up %.2fx, one common length %.2fx",
               torch_ms, torch_ms / (fast_s * 1e3), torch_ms / (padded_s * 1e3));
        if (with_full) printf(", full vs full %.2fx", torch_ms / (full_s * 1e3));
        printf("\n");
    }
    print_load("after");
    xc_free(out[0]); xc_free(out[1]); xc_free(tokens); xc_free(padded);
    graph_free(&g);
    param_store_free(&ps);
    return 0;
}
