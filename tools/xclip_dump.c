// xclip-dump - run X-CLIP once on given inputs and write what it computed (parity and debugging).
//
//   xclip-dump --checkpoint CKPT --input IN.h5 --output OUT.h5 [--seed S] [--threads N]
// IN.h5:  /video float32 (B, T, 3, H, W) already normalised; /tokens int32 (K, 77); optional /labels int64 (B).
// OUT.h5: /logits (B, K); /video_features (B, E) (MIT output, before normalisation); /text_features (K, E)
//         (text tower output, before prompts). With /labels also /loss (plain mean cross-entropy of the
//         logits, training mode, drop-path 0) and /grad/<official name> for every tensor that trains under
//         fix_text (visual.*, mit.*, prompts_*).
// CKPT: any weights file the project reads (X-CLIP, or CLIP: then the X-CLIP additions are initialised as
// docs/model.md §7 from --seed, and T comes from /video).
#include "autograd/runtime.h"
#include "nn/xclip.h"
#include "checkpoints/h5io.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void usage(FILE *f) {
    fprintf(f, "usage: xclip-dump --checkpoint CKPT --input IN.h5 --output OUT.h5 [--seed S] [--threads N]\n"
               "                  [--interpolate-frames]\n"
               "\n"
               "Runs X-CLIP (fix_text, drop-path 0) on IN.h5 and writes OUT.h5:\n"
               "  IN.h5   /video float32 (B,T,3,H,W) normalised, /tokens int32 (K,77), optional /labels int64 (B)\n"
               "  OUT.h5  /logits (B,K), /video_features (B,E), /text_features (K,E); with /labels also /loss\n"
               "          (mean cross-entropy) and /grad/<name> for every tensor trained under fix_text\n"
               "CKPT may be any weights file xclip.c reads (X-CLIP or plain CLIP; for CLIP the X-CLIP\n"
               "additions are initialised from --seed, default 1024).\n"
               "--interpolate-frames: run an X-CLIP checkpoint at another frame count than it was trained\n"
               "with, resampling mit.positional_embedding linearly (otherwise that is an error).\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "xclip-dump: %s\n", msg);
    exit(1); // error exits leave the clean-up to the OS (everything stays reachable for LeakSanitizer)
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *ckpt = NULL, *in_path = NULL, *out_path = NULL;
    uint64_t seed = 1024;
    bool interpolate = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--interpolate-frames")) { interpolate = true; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "xclip-dump: %s needs a value\n", a); usage(stderr); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--checkpoint")) ckpt = v;
        else if (!strcmp(a, "--input")) in_path = v;
        else if (!strcmp(a, "--output")) out_path = v;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--threads")) {
            int n = atoi(v);
            if (n < 1) { fprintf(stderr, "xclip-dump: --threads wants a positive integer\n"); return 2; }
#ifdef _OPENMP
            omp_set_num_threads(n);
#endif
            openblas_set_num_threads(n);
        } else { fprintf(stderr, "xclip-dump: unknown option %s\n", a); usage(stderr); return 2; }
    }
    if (!ckpt || !in_path || !out_path) { usage(stderr); return 2; }

    XcError err;
    H5File fin;
    H5Array video = {0}, tokens = {0}, labels = {0};
    if (h5_open(&fin, in_path, false, &err) || h5_read(&fin, "video", H5_F32, &video, false, &err) ||
        h5_read(&fin, "tokens", H5_I32, &tokens, false, &err) || h5_read(&fin, "labels", H5_I64, &labels, true, &err))
        return fail(err.msg);
    h5_close(&fin);
    if (video.ndim != 5 || video.shape[2] != 3) return fail("/video must be float32 (B, T, 3, H, W)");
    if (tokens.ndim != 2 || tokens.shape[1] < 1) return fail("/tokens must be int32 (K, S)");
    int64_t B = video.shape[0], T = video.shape[1], K = tokens.shape[0], S = tokens.shape[1];
    if (labels.data && (labels.ndim != 1 || labels.shape[0] != B)) return fail("/labels must be int64 (B)");
    for (int64_t b = 0; labels.data && b < B; b++)
        if (((int64_t *)labels.data)[b] < 0 || ((int64_t *)labels.data)[b] >= K) return fail("/labels out of [0, K)");

    WeightSet ws = {0};
    XClipConfig cfg;
    if (weights_load(&ws, ckpt, &err) || xclip_config_from_weights(&cfg, &ws, T, interpolate, &err) ||
        xclip_adapt_weights(&ws, T, &err))
        return fail(err.msg);
    if (S != cfg.clip.context) {
        snprintf(err.msg, sizeof err.msg, "/tokens has %lld columns, the model's context is %lld", (long long)S,
                 (long long)cfg.clip.context);
        return fail(err.msg);
    }
    for (int64_t i = 0; i < K * S; i++)
        if (((int32_t *)tokens.data)[i] < 0 || ((int32_t *)tokens.data)[i] >= cfg.clip.vocab) return fail("/tokens has ids outside the vocabulary");
    ParamStore ps;
    param_store_init(&ps, "params");
    XClip m;
    xclip_init(&m, &ps, &cfg);
    bool is_xclip = xclip_weights_are_xclip(&ws);
    if (!is_xclip) xclip_init_new_tensors(&m, seed);
    if (params_load(&ps, &ws, is_xclip ? NULL : xclip_is_new_tensor, &err)) return fail(err.msg);
    weights_free(&ws);
    if (!is_xclip) fprintf(stderr, "xclip-dump: %s holds CLIP weights: X-CLIP additions initialised from seed %llu\n", ckpt,
                           (unsigned long long)seed);

    xclip_cache_text(&m, tokens.data, K, S);
    Graph g;
    graph_init(&g, 64u << 20);
    bool train = labels.data != NULL;
    graph_set_grad(&g, train);
    Tensor *vt = tensor_from(&g, 5, video.shape, video.data);
    XClipOut o = xclip_forward(&g, &m, vt, tokens.data, K, S, NULL); // drop-path 0
    H5File fout;
    if (h5_open(&fout, out_path, true, &err) || h5_write_f32(&fout, "logits", 2, o.logits->shape, o.logits->data, &err) ||
        h5_write_f32(&fout, "video_features", 2, o.video_features->shape, o.video_features->data, &err) ||
        h5_write_f32(&fout, "text_features", 2, o.text_features->shape, o.text_features->data, &err))
        return fail(err.msg);
    if (train) {
        Tensor *y = tensor_zeros(&g, 2, (int64_t[]){B, K});
        for (int64_t b = 0; b < B; b++) y->data[b * K + ((int64_t *)labels.data)[b]] = 1.0f;
        Tensor *loss = op_soft_cross_entropy(&g, o.logits, y);
        graph_backward(&g, loss);
        if (h5_write_f32(&fout, "loss", 0, NULL, loss->data, &err)) return fail(err.msg);
        for (int i = 0; i < ps.n; i++) {
            Tensor *p = ps.p[i];
            if (!p->requires_grad) continue;
            char name[512];
            snprintf(name, sizeof name, "grad/%s", p->name);
            if (h5_write_f32(&fout, name, p->ndim, p->shape, p->grad, &err)) return fail(err.msg);
        }
    }
    h5_close(&fout);
    printf("xclip-dump: B=%lld T=%lld K=%lld E=%lld -> %s%s\n", (long long)B, (long long)T, (long long)K,
           (long long)cfg.clip.embed_dim, out_path, train ? " (with loss and gradients)" : "");
    graph_free(&g);
    xclip_free(&m);
    param_store_free(&ps);
    h5_array_free(&video);
    h5_array_free(&tokens);
    h5_array_free(&labels);
    return 0;
}
