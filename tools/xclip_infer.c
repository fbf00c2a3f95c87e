// xclip-infer - zero-shot classification of one's own videos against free-text labels.
//
//   xclip-infer --checkpoint CKPT VIDEO... (--labels "a,b,c" | --label-file F) [--template "{}"] [--topk 5]
//               [--views CLIPSxCROPS] [--frames T] [--vocab PATH]
// With an X-CLIP checkpoint the full model runs (frames from the checkpoint unless --frames, which then
// resamples the MIT positional embedding). With a plain CLIP checkpoint every frame goes through CLIP's image
// tower, the frame features are averaged and normalised and compared with the text features (the usual
// CLIP-on-video baseline); the program says so.
#include "autograd/runtime.h"
#include "data/sampling.h"
#include "data/tokenizer.h"
#include "data/transforms.h"
#include "data/video.h"
#include "nn/xclip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-infer --checkpoint CKPT VIDEO... (--labels \"a,b,c\" | --label-file F) [--template \"{}\"]\n"
            "                   [--topk 5] [--views CLIPSxCROPS] [--frames T] [--vocab PATH]\n"
            "\n"
            "Zero-shot classification of videos against free-text labels; prints the top-k labels with their\n"
            "probabilities for each video.\n"
            "  --checkpoint CKPT  X-CLIP weights (full model), or plain CLIP weights (frame features averaged)\n"
            "  --labels L         comma-separated label texts\n"
            "  --label-file F     one label per line, or a CSV with header id,name\n"
            "  --template T       text of a label: {} replaced by the label (default \"{}\"; e.g. \"a video of {}\")\n"
            "  --topk N           labels printed per video (default 5)\n"
            "  --views CxK        clips x crops per video, probabilities summed (default 1x1; K = 1 or 3)\n"
            "  --frames T         frames per clip (default: the checkpoint's for X-CLIP, 8 for CLIP)\n"
            "  --vocab PATH       CLIP BPE vocabulary (default ../shared/clip/bpe_simple_vocab_16e6.txt.gz)\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "xclip-infer: %s\n", msg);
    exit(1); // error exits leave the clean-up to the OS (everything stays reachable for LeakSanitizer)
}

// Label texts from "a,b,c" or a file (plain lines, or CSV id,name with that header). Returns the count.
static int read_labels(const char *inline_list, const char *file, char ***out, XcError *err) {
    char **names = NULL;
    int n = 0, cap = 0;
    char *text = NULL;
    if (inline_list) text = strdup(inline_list);
    else {
        size_t len;
        text = xc_read_file(file, 16u << 20, &len, err);
        if (!text) return -1;
    }
    const char *sep = inline_list ? "," : "\n";
    bool csv = !inline_list && !strncmp(text, "id,name", 7);
    int line = 0;
    for (char *save = NULL, *tok = strtok_r(text, sep, &save); tok; tok = strtok_r(NULL, sep, &save)) {
        line++;
        if (csv && line == 1) continue;
        while (*tok == ' ' || *tok == '\t') tok++;
        size_t l = strlen(tok);
        while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\r' || tok[l - 1] == '\t')) tok[--l] = 0;
        if (csv) {
            char *comma = strchr(tok, ',');
            if (!comma) { free(text); return xc_err(err, "%s:%d: expected id,name", file, line), -1; }
            tok = comma + 1;
        }
        if (!*tok) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            names = xc_realloc(names, sizeof(char *) * (size_t)cap);
        }
        names[n++] = strdup(tok);
    }
    free(text);
    if (n == 0) return xc_err(err, "no labels given"), -1;
    *out = names;
    return n;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *ckpt = NULL, *labels_inline = NULL, *label_file = NULL, *templ = "{}";
    const char *vocab = "../shared/clip/bpe_simple_vocab_16e6.txt.gz";
    const char *videos[1024];
    int nvideos = 0, topk = 5, clips = 1, crops = 1, frames = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (a[0] == '-' && a[1] == '-') {
            if (i + 1 >= argc) { fprintf(stderr, "xclip-infer: %s needs a value\n", a); return 2; }
            const char *v = argv[++i];
            char extra;
            if (!strcmp(a, "--checkpoint")) ckpt = v;
            else if (!strcmp(a, "--labels")) labels_inline = v;
            else if (!strcmp(a, "--label-file")) label_file = v;
            else if (!strcmp(a, "--template")) templ = v;
            else if (!strcmp(a, "--vocab")) vocab = v;
            else if (!strcmp(a, "--topk")) {
                if (sscanf(v, "%d%c", &topk, &extra) != 1 || topk < 1) { fprintf(stderr, "xclip-infer: --topk wants a positive integer\n"); return 2; }
            } else if (!strcmp(a, "--frames")) {
                if (sscanf(v, "%d%c", &frames, &extra) != 1 || frames < 1 || frames > 1024) { fprintf(stderr, "xclip-infer: --frames wants 1..1024\n"); return 2; }
            } else if (!strcmp(a, "--views")) {
                if (sscanf(v, "%dx%d%c", &clips, &crops, &extra) != 2 || clips < 1 || clips > 64 || (crops != 1 && crops != 3)) {
                    fprintf(stderr, "xclip-infer: --views wants CLIPSxCROPS with CROPS 1 or 3, e.g. 4x3\n");
                    return 2;
                }
            } else { fprintf(stderr, "xclip-infer: unknown option %s\n", a); usage(stderr); return 2; }
            continue;
        }
        if (nvideos == 1024) return fail("more than 1024 videos");
        videos[nvideos++] = a;
    }
    if (!ckpt || !nvideos || (!labels_inline == !label_file)) {
        if (ckpt && nvideos && labels_inline && label_file) fprintf(stderr, "xclip-infer: give --labels or --label-file, not both\n");
        usage(stderr);
        return 2;
    }
    if (!strstr(templ, "{}")) return fail("--template needs {} where the label goes");
    XcError err = {{0}};
    char **names = NULL;
    int K = read_labels(labels_inline, label_file, &names, &err);
    if (K < 0) return fail(err.msg);
    Tokenizer *tok = tokenizer_load_clip(vocab, &err);
    if (!tok) {
        fprintf(stderr, "xclip-infer: %s\nHINT: give CLIP's bpe_simple_vocab_16e6.txt.gz (openai/CLIP) with --vocab\n", err.msg);
        exit(1);
    }

    WeightSet ws = {0};
    if (weights_load(&ws, ckpt, &err) != XC_OK) return fail(err.msg);
    const bool is_xclip = xclip_weights_are_xclip(&ws);
    ParamStore ps;
    param_store_init(&ps, "params");
    XClip xm;
    Clip cm;
    ClipConfig cc;
    int64_t T;
    if (is_xclip) {
        int64_t t0 = weights_find(&ws, "mit.positional_embedding")->shape[1];
        T = frames ? frames : t0;
        XClipConfig xc;
        if (xclip_config_from_weights(&xc, &ws, T, true, &err) != XC_OK || xclip_adapt_weights(&ws, T, &err) != XC_OK)
            return fail(err.msg);
        xc.fix_text = true;
        xclip_init(&xm, &ps, &xc);
        if (params_load(&ps, &ws, NULL, &err) != XC_OK) return fail(err.msg);
        cc = xc.clip;
        printf("xclip-infer: X-CLIP checkpoint (T = %lld%s), %d labels\n", (long long)T,
               T != t0 ? ", MIT positional embedding resampled" : "", K);
    } else {
        T = frames ? frames : 8;
        if (clip_config_from_weights(&cc, &ws, &err) != XC_OK) return fail(err.msg);
        clip_init(&cm, &ps, &cc, true);
        if (params_load(&ps, &ws, NULL, &err) != XC_OK) return fail(err.msg);
        printf("xclip-infer: plain CLIP checkpoint: frame features of %lld frames averaged (no X-CLIP video modules), "
               "%d labels\n", (long long)T, K);
    }
    weights_free(&ws);

    // class texts
    const int64_t S = cc.context;
    int32_t *tokens = xc_calloc((size_t)K * (size_t)S, sizeof(int32_t));
    for (int k = 0; k < K; k++) {
        char text[2048];
        const char *at = strstr(templ, "{}");
        snprintf(text, sizeof text, "%.*s%s%s", (int)(at - templ), templ, names[k], at + 2);
        tokenizer_encode(tok, text, tokens + (size_t)k * S, (int)S);
    }
    Graph g;
    graph_init(&g, 64u << 20);
    graph_set_grad(&g, false);
    float *text_feat = NULL; // (K, E) normalised, CLIP path
    if (is_xclip) xclip_cache_text(&xm, tokens, K, S);
    else {
        Tensor *t = op_l2_normalize(&g, clip_encode_text(&g, &cm.text, tokens, K, S, true));
        text_feat = xc_malloc(sizeof(float) * (size_t)t->numel);
        memcpy(text_feat, t->data, sizeof(float) * (size_t)t->numel);
        graph_reset(&g);
    }

    const int H = (int)cc.image_size;
    TfConfig tf = tf_config_default(H);
    tf.num_crop = crops;
    const size_t clip_floats = (size_t)T * 3 * H * H;
    float *input = xc_malloc(sizeof(float) * clip_floats * (size_t)crops * (size_t)clips);
    int64_t *idx = xc_malloc(sizeof(int64_t) * (size_t)(clips * T));
    double *prob = xc_malloc(sizeof(double) * (size_t)K);
    int *order = xc_malloc(sizeof(int) * (size_t)K);
    VideoLimits lim = video_limits_default();
    int status = 0;
    for (int vi = 0; vi < nvideos; vi++) {
        Video *v = video_open((VideoSource){.path = videos[vi]}, &lim, &err);
        if (!v) {
            fprintf(stderr, "xclip-infer: %s\n", err.msg);
            status = 1;
            continue;
        }
        int64_t n = video_frame_count(v);
        sample_test_views(n, (int)T, clips, SAMPLE_VIEWS_SHIFTED, NULL, idx);
        int short_side = tf_test_short_side(&tf), oh, ow;
        video_output_size(v, short_side, &oh, &ow);
        uint8_t *frames_rgb = xc_malloc((size_t)clips * T * oh * ow * 3);
        int rc = video_read_frames(v, idx, (int)(clips * T), short_side, VIDEO_SCALE_REF, frames_rgb, &err);
        video_close(v);
        if (rc != XC_OK) {
            fprintf(stderr, "xclip-infer: %s\n", err.msg);
            xc_free(frames_rgb);
            status = 1;
            continue;
        }
        for (int c = 0; c < clips; c++)
            tf_apply_test(&tf, frames_rgb + (size_t)c * T * oh * ow * 3, (int)T, oh, ow, input + (size_t)c * crops * clip_floats);
        xc_free(frames_rgb);
        for (int k = 0; k < K; k++) prob[k] = 0;
        const int nviews = clips * crops;
        for (int view = 0; view < nviews; view++) {
            const float *x = input + (size_t)view * clip_floats;
            Tensor *logits;
            if (is_xclip) {
                Tensor *vt = tensor_from(&g, 5, (int64_t[]){1, T, 3, H, H}, x);
                logits = xclip_forward(&g, &xm, vt, NULL, K, S, NULL).logits;
            } else { // mean of the normalised-later frame features, as CLIP-on-video baselines do
                Tensor *ft = clip_encode_image(&g, &cm, tensor_from(&g, 4, (int64_t[]){T, 3, H, H}, x)); // (T, E)
                Tensor *vf = op_l2_normalize(&g, op_reshape(&g, op_mean(&g, op_reshape(&g, ft, 3, (int64_t[]){1, T, cc.embed_dim}), 1),
                                                           2, (int64_t[]){1, cc.embed_dim}));
                Tensor *tt = tensor_from(&g, 2, (int64_t[]){K, cc.embed_dim}, text_feat);
                logits = op_mul(&g, op_matmul(&g, vf, tt, false, true), op_exp(&g, cm.logit_scale));
            }
            double mx = logits->data[0], z = 0;
            for (int k = 1; k < K; k++) mx = fmax(mx, logits->data[k]);
            for (int k = 0; k < K; k++) z += exp(logits->data[k] - mx);
            for (int k = 0; k < K; k++) prob[k] += exp(logits->data[k] - mx) / z / nviews;
            graph_reset(&g);
        }
        for (int k = 0; k < K; k++) order[k] = k;
        for (int a = 0; a < K && a < topk; a++) // partial selection sort
            for (int b = a + 1; b < K; b++)
                if (prob[order[b]] > prob[order[a]]) {
                    int t = order[a];
                    order[a] = order[b];
                    order[b] = t;
                }
        printf("%s (%lld frames, %d view%s):\n", videos[vi], (long long)n, nviews, nviews == 1 ? "" : "s");
        for (int a = 0; a < K && a < topk; a++) printf("  %6.2f%%  %s\n", 100.0 * prob[order[a]], names[order[a]]);
    }
    xc_free(input);
    xc_free(idx);
    xc_free(prob);
    xc_free(order);
    xc_free(text_feat);
    xc_free(tokens);
    for (int k = 0; k < K; k++) free(names[k]);
    xc_free(names);
    graph_free(&g);
    if (is_xclip) xclip_free(&xm);
    param_store_free(&ps);
    tokenizer_free(tok);
    return status;
}
