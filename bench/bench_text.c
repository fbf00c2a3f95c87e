// bench_text - encoding the 400 Kinetics-400 label names with the CLIP text tower at ViT-B/32 size
// (width 512, 12 layers, 8 heads, context 77, vocabulary 49408, random weights), no grad:
// the fast path (only the first max(EOT)+1 positions), the full 77-token pass, and PyTorch 1.13
// running the reference tower (tests/ref/xclip_ref.py) on the same tokens in the same run.
//
//   bench_text [--threads N] [--repeats R] [--no-torch] [--shared DIR]
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

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    int threads = 2, repeats = 3;
    bool with_torch = true;
    const char *shared = getenv("XCLIP_SHARED") ? getenv("XCLIP_SHARED") : XCLIP_BENCH_DIR "/../../shared";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shared") && i + 1 < argc) shared = argv[++i];
        else if (!strcmp(argv[i], "--no-torch")) with_torch = false;
        else { fprintf(stderr, "usage: bench_text [--threads N] [--repeats R] [--no-torch] [--shared DIR]\n"); return 2; }
    }
    if (threads < 1 || repeats < 1) { fprintf(stderr, "bench_text: --threads and --repeats must be >= 1\n"); return 2; }
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
    int64_t max_eot = 0;
    for (int64_t k = 0; k < K; k++)
        for (int64_t s = 0; s < 77; s++)
            if (tokens[k * 77 + s] == 49407 && s > max_eot) max_eot = s;

    double torch_ms = 0;
    if (with_torch) {
        char tmp[] = "/tmp/bench_text_XXXXXX";
        int fd = mkstemp(tmp);
        if (fd >= 0 && write(fd, tokens, (size_t)K * 77 * sizeof(int32_t)) == (ssize_t)((size_t)K * 77 * sizeof(int32_t))) {
            char cmd[2048];
            snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench_text_ref.py %s %lld %d %d 2>/dev/null", XCLIP_BENCH_DIR, tmp,
                     (long long)K, threads, repeats);
            FILE *p = popen(cmd, "r");
            char line[256];
            if (p) {
                while (fgets(line, sizeof line, p))
                    if (!strncmp(line, "full_ms ", 8)) torch_ms = atof(line + 8);
                pclose(p);
            }
        }
        if (fd >= 0) { close(fd); unlink(tmp); }
        if (torch_ms <= 0) fprintf(stderr, "bench_text: the PyTorch reference did not run: xclip.c figures only\n");
    }

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
    double best[2] = {1e30, 1e30};
    float *out[2] = {xc_malloc((size_t)K * 512 * sizeof(float)), xc_malloc((size_t)K * 512 * sizeof(float))};
    for (int fast = 0; fast < 2; fast++)
        for (int rep = 0; rep <= repeats; rep++) { // rep 0 warms up
            double t = xc_now();
            Tensor *f = clip_encode_text(&g, &m.text, tokens, K, 77, fast);
            double dt = xc_now() - t;
            memcpy(out[fast], f->data, (size_t)K * 512 * sizeof(float));
            graph_reset(&g);
            if (rep && dt < best[fast]) best[fast] = dt;
        }
    double maxdiff = 0;
    for (int64_t i = 0; i < K * 512; i++) maxdiff = fmax(maxdiff, fabs((double)out[0][i] - out[1][i]));
    printf("bench_text: %lld Kinetics-400 label names, longest EOT at position %lld; text tower width 512, 12 layers; "
           "%d threads, best of %d\n", (long long)K, (long long)max_eot, threads, repeats);
    printf("  xclip.c fast path (%lld positions)  %9.1f ms\n", (long long)max_eot + 1, best[1] * 1e3);
    printf("  xclip.c full context (77 positions)  %9.1f ms   fast path speed-up %.2fx, max |diff| %.2g\n", best[0] * 1e3,
           best[0] / best[1], maxdiff);
    if (torch_ms > 0)
        printf("  PyTorch 1.13 full context            %9.1f ms   fast path speed-up %.2fx, full vs full %.2fx\n", torch_ms,
               torch_ms / (best[1] * 1e3), torch_ms / (best[0] * 1e3));
    xc_free(out[0]); xc_free(out[1]); xc_free(tokens);
    graph_free(&g);
    param_store_free(&ps);
    return 0;
}
