// xclip_fixture.h - the X-CLIP parity fixtures written by tests/ref/make_xclip_fixtures.py:
// tests/fixtures/xclip/<name>/in.h5 (video, tokens, labels), ref.h5 (the reference's outputs), model.pth.
//
//   XclipFixture fx;
//   if (!xclip_fixture_open(&fx, "t3")) return;          // a failed expectation says why
//   XClip m; ParamStore ps;
//   if (xclip_fixture_model(&fx, false, &m, &ps)) { ...; xclip_free(&m); param_store_free(&ps); }
//   xclip_fixture_close(&fx);
#pragma once
#include "test_util.h"
#include "checkpoints/h5io.h"
#include "nn/xclip.h"

typedef struct XclipFixture {
    char dir[1024];
    H5File in, ref;
    H5Array video, tokens, labels; // float32 (B, T, 3, H, W), int32 (K, S), int64 (B)
} XclipFixture;

static inline bool xclip_fixture_open(XclipFixture *fx, const char *name) {
    char rel[64], path[1100];
    XcError err;
    memset(fx, 0, sizeof *fx);
    snprintf(rel, sizeof rel, "xclip/%s", name);
    XC_FIXTURE(rel, fx->dir);
    snprintf(path, sizeof path, "%s/in.h5", fx->dir);
    int rc = h5_open(&fx->in, path, false, &err);
    if (rc == XC_OK) {
        snprintf(path, sizeof path, "%s/ref.h5", fx->dir);
        if ((rc = h5_open(&fx->ref, path, false, &err)) != XC_OK) h5_close(&fx->in);
    }
    if (rc == XC_OK && ((rc = h5_read(&fx->in, "video", H5_F32, &fx->video, false, &err)) != XC_OK ||
                        (rc = h5_read(&fx->in, "tokens", H5_I32, &fx->tokens, false, &err)) != XC_OK ||
                        (rc = h5_read(&fx->in, "labels", H5_I64, &fx->labels, false, &err)) != XC_OK)) {
        h5_array_free(&fx->video);
        h5_array_free(&fx->tokens);
        h5_close(&fx->in);
        h5_close(&fx->ref);
    }
    XC_EXPECT(rc == XC_OK, "fixture %s: %s", name, err.msg);
    return rc == XC_OK;
}

// Changes to the model a fixture's config describes (all false / 0: as the weights say, fix_text on).
typedef struct XclipVariant {
    bool text_trains;   // fix_text off
    bool checkpoint;    // gradient checkpointing
    bool transient;     // ParamStore.transient_grads (fused AdamW)
    bool fix_vision;    // the vision branch frozen (model.fix_vision)
    float drop_path;
} XclipVariant;

// The model of DIR/model.pth for T frames, as variant v says.
static inline bool xclip_fixture_load(const char *dir, int64_t T, XclipVariant v, XClip *m, ParamStore *ps) {
    char path[1400];
    XcError err;
    WeightSet ws = {0};
    XClipConfig cfg;
    snprintf(path, sizeof path, "%s/model.pth", dir);
    int rc = weights_load(&ws, path, &err);
    if (rc == XC_OK) rc = xclip_config_from_weights(&cfg, &ws, T, false, &err);
    if (rc == XC_OK) {
        cfg.fix_text = !v.text_trains;
        cfg.fix_vision = v.fix_vision;
        cfg.checkpoint = v.checkpoint;
        cfg.drop_path = v.drop_path;
        param_store_init(ps, "params");
        ps->transient_grads = v.transient;
        xclip_init(m, ps, &cfg);
        if ((rc = params_load(ps, &ws, NULL, &err)) != XC_OK) {
            xclip_free(m);
            param_store_free(ps);
        }
    }
    weights_free(&ws);
    XC_EXPECT(rc == XC_OK, "%s: %s", path, err.msg);
    return rc == XC_OK;
}

// The fixture's model (T from its video); transient: ParamStore.transient_grads (fused AdamW).
static inline bool xclip_fixture_model(const XclipFixture *fx, bool transient, XClip *m, ParamStore *ps) {
    return xclip_fixture_load(fx->dir, fx->video.shape[1], (XclipVariant){.transient = transient}, m, ps);
}

// The fixtures' loss: plain mean cross-entropy of logits (B, K) against integer labels (B).
static inline Tensor *xclip_fixture_ce_loss(Graph *g, Tensor *logits, const int64_t *labels) {
    int64_t B = logits->shape[0], K = logits->shape[1];
    Tensor *y = tensor_zeros(g, 2, (int64_t[]){B, K});
    for (int64_t b = 0; b < B; b++) y->data[b * K + labels[b]] = 1.0f;
    return op_soft_cross_entropy(g, logits, y);
}

static inline void xclip_fixture_close(XclipFixture *fx) {
    h5_array_free(&fx->video);
    h5_array_free(&fx->tokens);
    h5_array_free(&fx->labels);
    h5_close(&fx->in);
    h5_close(&fx->ref);
}
