// test_xclip_build.c - building X-CLIP models: from a Hugging Face X-CLIP file, at another frame count
// (refused by default, with linear interpolation of the MIT positional embedding on request), from a
// plain CLIP checkpoint (docs/model.md §7 initialisation of the additions, reproducible from the seed), and
// with fix_text off (the text tower trains: its gradients against finite differences).
#include "test_util.h"
#include "xclip_fixture.h"
#include "optim/adamw.h"
#include "train/param_groups.h"

#include <unistd.h>

static char dir[1024];

static const char *fix(const char *rel, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", dir, rel);
    return buf;
}

static bool load_inputs(H5Array *video, H5Array *tokens, H5Array *labels, H5Array *logits) {
    char p[1200];
    XcError err;
    H5File fi, fr;
    int rc = h5_open(&fi, fix("xclip/t3/in.h5", p, sizeof p), false, &err);
    if (!rc) rc = h5_read(&fi, "video", H5_F32, video, false, &err);
    if (!rc) rc = h5_read(&fi, "tokens", H5_I32, tokens, false, &err);
    if (!rc) rc = h5_read(&fi, "labels", H5_I64, labels, false, &err);
    if (!rc) rc = h5_open(&fr, fix("xclip/t3/ref.h5", p, sizeof p), false, &err);
    if (!rc) rc = h5_read(&fr, "logits", H5_F32, logits, false, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    h5_close(&fi);
    if (!rc) h5_close(&fr);
    return rc == XC_OK;
}

// Build from ws (consumed), run the t3 inputs, return max |logits - ref| / max |ref|.
static double logits_err(WeightSet *ws, bool fix_text_on, H5Array *video, H5Array *tokens, H5Array *ref) {
    XcError err;
    XClipConfig cfg;
    int rc = xclip_config_from_weights(&cfg, ws, video->shape[1], false, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    if (rc) return 1e9;
    cfg.fix_text = fix_text_on;
    ParamStore ps;
    param_store_init(&ps, "params");
    XClip m;
    xclip_init(&m, &ps, &cfg);
    rc = params_load(&ps, ws, NULL, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    Graph g;
    graph_init(&g, 0);
    graph_set_grad(&g, false);
    if (fix_text_on) xclip_cache_text(&m, tokens->data, tokens->shape[0], tokens->shape[1]);
    XClipOut o = xclip_forward(&g, &m, tensor_from(&g, 5, video->shape, video->data), tokens->data, tokens->shape[0],
                               tokens->shape[1], NULL);
    double e = xc_scaled_err(o.logits->data, ref->data, ref->numel);
    graph_free(&g);
    xclip_free(&m);
    param_store_free(&ps);
    return e;
}

static void test_hf_layout(H5Array *video, H5Array *tokens, H5Array *ref) {
    char p[1200];
    XcError err;
    WeightSet ws = {0}, hf = {0}, back = {0};
    XC_EXPECT(weights_load(&ws, fix("xclip/t3/model.pth", p, sizeof p), &err) == XC_OK, "%s", err.msg);
    XC_EXPECT(weights_to_hf_xclip(&hf, &ws, &err) == XC_OK, "%s", err.msg);
    XC_EXPECT(!weights_find(&hf, "mit.positional_embedding") && hf.n > 0, "HF layout renames the tensors");
    char path[] = "/tmp/xclip_hf_XXXXXX.safetensors";
    int fd = mkstemps(path, 12);
    close(fd);
    XC_EXPECT(weights_save_safetensors(&hf, path, &err) == XC_OK, "%s", err.msg);
    XC_EXPECT(weights_load(&back, path, &err) == XC_OK, "%s", err.msg); // detects and maps the HF names back
    unlink(path);
    double e = logits_err(&back, true, video, tokens, ref);
    printf("  Hugging Face X-CLIP layout: logits error %.2e\n", e);
    XC_EXPECT(e <= 1e-4, "HF X-CLIP file: logits off by %.3g", e);
    weights_free(&ws);
    weights_free(&hf);
    weights_free(&back);
}

static void test_frames(void) {
    char p[1200];
    XcError err;
    WeightSet ws = {0};
    XClipConfig cfg;
    XC_EXPECT(weights_load(&ws, fix("xclip/t8/model.pth", p, sizeof p), &err) == XC_OK, "%s", err.msg);
    int rc = xclip_config_from_weights(&cfg, &ws, 3, false, &err);
    XC_EXPECT(rc == XC_ERR && strstr(err.msg, "T = 8") && strstr(err.msg, "HINT"), "frame mismatch message: %s", err.msg);
    const WeightTensor *pos = weights_find(&ws, "mit.positional_embedding");
    int64_t E = pos->shape[2];
    float *orig = malloc((size_t)(8 * E) * sizeof(float));
    memcpy(orig, pos->data, (size_t)(8 * E) * sizeof(float));
    rc = xclip_config_from_weights(&cfg, &ws, 3, true, &err);
    XC_EXPECT(rc == XC_OK, "interpolation allowed: %s", err.msg);
    XC_EXPECT(xclip_adapt_weights(&ws, 3, &err) == XC_OK, "%s", err.msg);
    pos = weights_find(&ws, "mit.positional_embedding");
    // F.interpolate(linear, align_corners=False), 8 -> 3: sources 0.8333, 3.5, 6.1667
    int bad = 0;
    for (int64_t e = 0; e < E; e++) {
        float w0 = orig[0 * E + e] * (1 - 0.8333333f) + orig[1 * E + e] * 0.8333333f;
        float w1 = 0.5f * (orig[3 * E + e] + orig[4 * E + e]);
        float w2 = orig[6 * E + e] * (1 - 0.1666667f) + orig[7 * E + e] * 0.1666667f;
        bad += fabsf(pos->data[e] - w0) > 1e-5f || fabsf(pos->data[E + e] - w1) > 1e-5f || fabsf(pos->data[2 * E + e] - w2) > 1e-5f;
    }
    XC_EXPECT(pos->shape[1] == 3 && bad == 0, "interpolated embedding: %d columns off", bad);
    ParamStore ps;
    param_store_init(&ps, "params");
    XClip m;
    xclip_init(&m, &ps, &cfg);
    XC_EXPECT(params_load(&ps, &ws, NULL, &err) == XC_OK, "interpolated weights load: %s", err.msg);
    xclip_free(&m);
    param_store_free(&ps);
    free(orig);
    weights_free(&ws);
}

static void test_from_clip(void) {
    char p[1200];
    XcError err;
    WeightSet ws = {0};
    XC_EXPECT(weights_load(&ws, fix("clip/small.safetensors", p, sizeof p), &err) == XC_OK, "%s", err.msg);
    XClipConfig cfg;
    XC_EXPECT(xclip_config_from_weights(&cfg, &ws, 8, false, &err) == XC_OK, "%s", err.msg);
    XC_EXPECT(cfg.mit_layers == 1 && cfg.prompt_layers == 2 && cfg.fix_text && fabsf(cfg.prompt_alpha - 0.1f) < 1e-7f,
              "docs/model.md §7.3 defaults: mit 1, prompts 2, alpha 0.1, fix_text");
    float *first = NULL;
    int64_t n_first = 0;
    for (int run = 0; run < 3; run++) {
        ParamStore ps;
        param_store_init(&ps, "params");
        XClip m;
        xclip_init(&m, &ps, &cfg);
        xclip_init_new_tensors(&m, run < 2 ? 42 : 43);
        XC_EXPECT(params_load(&ps, &ws, xclip_is_new_tensor, &err) == XC_OK, "CLIP weights into X-CLIP: %s", err.msg);
        Tensor *mfc = param_find(&ps, "visual.transformer.resblocks.0.message_fc.weight");
        Tensor *pos = param_find(&ps, "mit.positional_embedding");
        Tensor *vp = param_find(&ps, "prompts_visual_proj");
        if (run == 0) {
            float bound = 1.0f / sqrtf((float)cfg.clip.vision_width);
            int out = 0;
            for (int64_t i = 0; i < mfc->numel; i++) out += fabsf(mfc->data[i]) > bound;
            XC_EXPECT(out == 0, "message_fc within +-1/sqrt(W)");
            double s2 = 0, v2 = 0;
            for (int64_t i = 0; i < pos->numel; i++) s2 += pos->data[i] * pos->data[i];
            for (int64_t i = 0; i < vp->numel; i++) v2 += vp->data[i] * vp->data[i];
            double sd = sqrt(s2 / pos->numel), vd = sqrt(v2 / vp->numel);
            XC_EXPECT(fabs(sd - 0.02) < 0.005 && fabs(vd - 1.0) < 0.05, "std: mit pos %.4f (0.02), prompts_visual_proj %.3f (1)", sd, vd);
            XC_EXPECT(param_find(&ps, "prompts_generator.alpha")->data[0] == 0.1f, "alpha 0.1");
            XC_EXPECT(param_find(&ps, "visual.transformer.resblocks.0.message_attn.in_proj_bias")->data[5] == 0.0f &&
                          param_find(&ps, "visual.transformer.resblocks.0.message_ln.weight")->data[3] == 1.0f,
                      "message_attn bias 0, message_ln 1");
            const WeightTensor *conv = weights_find(&ws, "visual.conv1.weight");
            XC_EXPECT(!memcmp(conv->data, param_find(&ps, "visual.conv1.weight")->data, (size_t)conv->numel * 4), "CLIP tensors by name");
            n_first = mfc->numel;
            first = malloc((size_t)n_first * sizeof(float));
            memcpy(first, mfc->data, (size_t)n_first * sizeof(float));
        } else {
            bool same = !memcmp(first, mfc->data, (size_t)n_first * sizeof(float));
            XC_EXPECT(run == 1 ? same : !same, "seed %d: initialisation %s", run < 2 ? 42 : 43, same ? "repeats" : "differs");
        }
        xclip_free(&m);
        param_store_free(&ps);
    }
    free(first);
    weights_free(&ws);
}

// fix_text off: the text tower and logit_scale train; check their gradients by central differences.
static void test_text_trains(H5Array *video, H5Array *tokens, H5Array *labels) {
    char p[1200];
    ParamStore ps;
    XClip m;
    if (!xclip_fixture_load(fix("xclip/t3", p, sizeof p), video->shape[1], (XclipVariant){.text_trains = true}, &m, &ps)) return;
    int64_t B = video->shape[0], K = tokens->shape[0], S = tokens->shape[1];
    Graph g;
    graph_init(&g, 0);
    double loss_at[2];
    static const char *names[] = {"token_embedding.weight", "transformer.resblocks.0.attn.in_proj_weight", "text_projection",
                                  "ln_final.bias", "logit_scale"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        Tensor *t = param_find(&ps, names[k]);
        XC_EXPECT(t && t->requires_grad, "%s trains with fix_text off", names[k]);
        if (!t) continue;
        // analytic
        param_store_zero_grad(&ps);
        Tensor *y = tensor_zeros(&g, 2, (int64_t[]){B, K});
        for (int64_t b = 0; b < B; b++) y->data[b * K + ((int64_t *)labels->data)[b]] = 1.0f;
        Tensor *l = op_soft_cross_entropy(&g, xclip_forward(&g, &m, tensor_from(&g, 5, video->shape, video->data), tokens->data, K, S, NULL).logits, y);
        graph_backward(&g, l);
        graph_reset(&g);
        // the largest-gradient element, by central differences (h = 1e-2, loss in double)
        int64_t j = 0;
        for (int64_t i = 1; i < t->numel; i++) if (fabsf(t->grad[i]) > fabsf(t->grad[j])) j = i;
        float orig = t->data[j];
        for (int s = 0; s < 2; s++) {
            t->data[j] = orig + (s ? -1e-2f : 1e-2f);
            bool prev = graph_set_grad(&g, false);
            Tensor *yy = tensor_zeros(&g, 2, (int64_t[]){B, K});
            for (int64_t b = 0; b < B; b++) yy->data[b * K + ((int64_t *)labels->data)[b]] = 1.0f;
            loss_at[s] = op_soft_cross_entropy(&g, xclip_forward(&g, &m, tensor_from(&g, 5, video->shape, video->data), tokens->data, K, S, NULL).logits, yy)->data[0];
            graph_set_grad(&g, prev);
            graph_reset(&g);
        }
        t->data[j] = orig;
        double num = (loss_at[0] - loss_at[1]) / 2e-2, ana = t->grad[j];
        XC_EXPECT(fabs(num - ana) <= 2e-3 + 2e-2 * fabs(num), "%s[%lld]: analytic %.6g numeric %.6g", names[k], (long long)j, ana, num);
    }
    graph_free(&g);
    xclip_free(&m);
    param_store_free(&ps);
}

// Gradient checkpointing: the same loss and gradients (bit for bit: the recomputation runs the same
// kernels in the same order), with drop-path on so the replayed random masks are checked too, and a
// smaller step arena.
static void test_checkpointing(H5Array *video, H5Array *tokens, H5Array *labels) {
    char p[1200];
    float loss[2];
    float *grads[2] = {NULL, NULL};
    size_t peak[2];
    int64_t total = 0;
    for (int ck = 0; ck < 2; ck++) {
        ParamStore ps;
        XClip m;
        if (!xclip_fixture_load(fix("xclip/t3", p, sizeof p), video->shape[1], (XclipVariant){.checkpoint = ck, .drop_path = 0.3f},
                                &m, &ps))
            return;
        int64_t B = video->shape[0], K = tokens->shape[0], S = tokens->shape[1];
        xclip_cache_text(&m, tokens->data, K, S);
        Graph g;
        graph_init(&g, 0);
        Rng drop = rng_stream(5, RNG_STREAM_DROP);
        Tensor *y = tensor_zeros(&g, 2, (int64_t[]){B, K});
        for (int64_t b = 0; b < B; b++) y->data[b * K + ((int64_t *)labels->data)[b]] = 1.0f;
        Tensor *l = op_soft_cross_entropy(&g, xclip_forward(&g, &m, tensor_from(&g, 5, video->shape, video->data), tokens->data, K, S, &drop).logits, y);
        graph_backward(&g, l);
        loss[ck] = l->data[0];
        peak[ck] = g.step.peak;
        total = 0;
        for (int i = 0; i < ps.n; i++) total += ps.p[i]->requires_grad ? ps.p[i]->numel : 0;
        grads[ck] = malloc((size_t)total * sizeof(float));
        int64_t off = 0;
        for (int i = 0; i < ps.n; i++)
            if (ps.p[i]->requires_grad) {
                memcpy(grads[ck] + off, ps.p[i]->grad, (size_t)ps.p[i]->numel * sizeof(float));
                off += ps.p[i]->numel;
            }
        graph_free(&g);
        xclip_free(&m);
        param_store_free(&ps);
    }
    XC_EXPECT(loss[0] == loss[1], "checkpointing changes the loss: %.9g vs %.9g", loss[0], loss[1]);
    XC_EXPECT(!memcmp(grads[0], grads[1], (size_t)total * sizeof(float)), "checkpointing changes the gradients");
    XC_EXPECT(peak[1] < peak[0], "checkpointing does not lower the step arena peak (%zu vs %zu)", peak[1], peak[0]);
    printf("  gradient checkpointing: identical loss and gradients, step arena peak %.2f -> %.2f MB\n", peak[0] / 1e6, peak[1] / 1e6);
    free(grads[0]);
    free(grads[1]);
}

// The fused optimiser (AdamW applied during backward, transient parameter gradients) gives the same
// parameters bit for bit as backward followed by adamw_step, also with checkpointing, and keeps no
// gradient buffers in the ParamStore.
static void test_fused_adamw(H5Array *video, H5Array *tokens, H5Array *labels) {
    char p[1200];
    float *result[3] = {NULL, NULL, NULL};
    int64_t n_floats = 0;
    size_t store_bytes[3];
    for (int mode = 0; mode < 3; mode++) { // 0: plain, 1: fused, 2: fused + checkpointing
        ParamStore ps;
        XClip m;
        if (!xclip_fixture_load(fix("xclip/t3", p, sizeof p), video->shape[1],
                                (XclipVariant){.checkpoint = mode == 2, .transient = mode > 0}, &m, &ps))
            return;
        int64_t B = video->shape[0], K = tokens->shape[0], S = tokens->shape[1];
        xclip_cache_text(&m, tokens->data, K, S);
        AdamW opt;
        adamw_init(&opt, &ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
        xclip_adamw_groups(&opt);
        Graph g;
        graph_init(&g, 0);
        if (mode) adamw_fuse(&opt, &g);
        for (int step = 0; step < 3; step++) {
            Tensor *y = tensor_zeros(&g, 2, (int64_t[]){B, K});
            for (int64_t b = 0; b < B; b++) y->data[b * K + ((int64_t *)labels->data)[b]] = 1.0f;
            if (mode) adamw_begin_step(&opt, (float[]){1e-3f, 1e-2f});
            Tensor *l = op_soft_cross_entropy(&g, xclip_forward(&g, &m, tensor_from(&g, 5, video->shape, video->data), tokens->data, K, S, NULL).logits, y);
            graph_backward(&g, l);
            if (mode) adamw_end_step(&opt);
            if (!mode) {
                adamw_step(&opt, (float[]){1e-3f, 1e-2f});
                param_store_zero_grad(&ps);
            }
            graph_reset(&g);
        }
        n_floats = ps.total;
        result[mode] = malloc((size_t)n_floats * sizeof(float));
        int64_t off = 0, with_grad = 0;
        for (int i = 0; i < ps.n; i++) {
            memcpy(result[mode] + off, ps.p[i]->data, (size_t)ps.p[i]->numel * sizeof(float));
            off += ps.p[i]->numel;
            with_grad += ps.p[i]->grad != NULL;
        }
        store_bytes[mode] = ps.mem.peak;
        if (mode) XC_EXPECT(with_grad == 0, "fused mode: %lld parameters still hold a gradient", (long long)with_grad);
        graph_free(&g);
        adamw_free(&opt);
        xclip_free(&m);
        param_store_free(&ps);
    }
    XC_EXPECT(!memcmp(result[0], result[1], (size_t)n_floats * sizeof(float)), "fused AdamW differs from adamw_step");
    XC_EXPECT(!memcmp(result[0], result[2], (size_t)n_floats * sizeof(float)), "fused AdamW with checkpointing differs");
    XC_EXPECT(store_bytes[1] < store_bytes[0], "transient gradients do not shrink the parameter store");
    printf("  fused AdamW (with and without checkpointing): same parameters after 3 steps; parameter store %.2f -> %.2f MB\n",
           store_bytes[0] / 1e6, store_bytes[1] / 1e6);
    for (int i = 0; i < 3; i++) free(result[i]);
}

int main(void) {
    snprintf(dir, sizeof dir, "%s", getenv("XCLIP_FIXTURES") ? getenv("XCLIP_FIXTURES") : "tests/fixtures");
    H5Array video, tokens, labels, logits;
    if (!load_inputs(&video, &tokens, &labels, &logits)) return xc_test_summary("test_xclip_build");
    test_hf_layout(&video, &tokens, &logits);
    test_frames();
    test_from_clip();
    test_text_trains(&video, &tokens, &labels);
    test_checkpointing(&video, &tokens, &labels);
    test_fused_adamw(&video, &tokens, &labels);
    h5_array_free(&video); h5_array_free(&tokens); h5_array_free(&labels); h5_array_free(&logits);
    return xc_test_summary("test_xclip_build");
}
