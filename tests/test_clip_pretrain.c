// test_clip_pretrain.c - CLIP's contrastive pretraining objective (nn/clip_pretrain.h) against the PyTorch
// reference (tests/ref/make_pretrain_fixtures.py -> tests/fixtures/clip/pretrain_ref.h5), on model B of
// test_clip_parity (width 128, 2 + 2 layers) with a batch of 6 image-caption pairs:
//   - the loss (CE over captions per image and over images per caption, averaged), and the gradient of every
//     parameter through both towers, the temperature logit_scale included;
//   - one AdamW step (lr 0.05, weight decay 0.2 on tensors of 2 or more dimensions) followed by the clamp of
//     logit_scale to [0, ln 100]: the start ln 100 + 0.3 leaves the temperature above the bound after the step,
//     so the clamp must act, and the result must equal the reference's (ln 100);
//   - the clamp at both bounds by hand, and in-batch retrieval counting.
// Tolerances as test_clip_parity's: loss within 1e-5 relative, gradients within 1e-4 of max |ref| per tensor and
// elementwise within 1e-4 max|ref| + 1e-3 |ref|; logit_scale after the step and clamp within 1e-6 (a missing
// clamp is off by 0.25, a step of the wrong sign by 0.1).
#include "test_util.h"
#include "h5_fixture.h"
#include "nn/clip.h"
#include "nn/clip_pretrain.h"
#include "optim/adamw.h"

static void test_clamp_by_hand(void) {
    float v = 5.0f;
    Tensor t = {.ndim = 0, .numel = 1, .data = &v};
    XC_EXPECT(clip_clamp_logit_scale(&t) && v == logf(100.0f), "clamp above: %g", v);
    v = -0.5f;
    XC_EXPECT(clip_clamp_logit_scale(&t) && v == 0.0f, "clamp below: %g", v);
    v = 2.0f;
    XC_EXPECT(!clip_clamp_logit_scale(&t) && v == 2.0f, "inside the range: %g", v);
    float l[9] = {3, 1, 0, 0, 2, 5, 1, 1, 4}; // rows 0 and 2 pick their own caption, row 1 does not
    Tensor lt = {.ndim = 2, .shape = {3, 3}, .numel = 9, .data = l};
    XC_EXPECT(clip_batch_matches(&lt) == 2, "batch matches %lld, want 2", (long long)clip_batch_matches(&lt));
}

static void test_against_reference(void) {
    char path[1024], name[600];
    XcError err;
    hid_t f = H5Fopen(XC_FIXTURE("clip/pretrain_ref.h5", path), H5F_ACC_RDONLY, H5P_DEFAULT);
    XC_EXPECT(f >= 0, "cannot open %s", path);
    if (f < 0) return;
    WeightSet ws = {0};
    XC_EXPECT(weights_load(&ws, XC_FIXTURE("clip/small.safetensors", path), &err) == XC_OK, "%s", err.msg);
    ClipConfig cfg;
    XC_EXPECT(clip_config_from_weights(&cfg, &ws, &err) == XC_OK, "%s", err.msg);
    ParamStore ps;
    param_store_init(&ps, "params");
    Clip m;
    clip_init(&m, &ps, &cfg, false);
    XC_EXPECT(params_load(&ps, &ws, NULL, &err) == XC_OK, "%s", err.msg);
    weights_free(&ws);

    int nd;
    int64_t dims[8], tdims[8], sdims[8];
    float *img = h5f_read(f, "images", &nd, dims);
    float *tokf = h5f_read(f, "tokens", &nd, tdims);
    float *start = h5f_read(f, "logit_scale0", &nd, sdims), *loss_ref = h5f_read(f, "loss", &nd, sdims);
    float *clamped = h5f_read(f, "clamped", &nd, sdims);
    XC_EXPECT(img && tokf && start && loss_ref && clamped, "fixture incomplete");
    if (!(img && tokf && start && loss_ref && clamped)) return;
    const int64_t B = dims[0], S = tdims[1];
    int32_t *tok = malloc((size_t)(B * S) * sizeof(int32_t));
    for (int64_t i = 0; i < B * S; i++) tok[i] = (int32_t)tokf[i];
    m.logit_scale->data[0] = start[0];

    Graph g;
    graph_init(&g, 64u << 20);
    Tensor *fi = clip_encode_image(&g, &m, tensor_from(&g, 4, dims, img));
    Tensor *ft = clip_encode_text(&g, &m.text, tok, B, S, true);
    Tensor *logits = NULL;
    Tensor *loss = clip_contrastive_loss(&g, fi, ft, m.logit_scale, &logits);
    const double le = fabs((double)loss->data[0] - loss_ref[0]) / fabs((double)loss_ref[0]);
    XC_EXPECT(le <= 1e-5, "loss %.7f, reference %.7f (relative error %.2e)", loss->data[0], loss_ref[0], le);
    XC_EXPECT(logits && logits->shape[0] == B && logits->shape[1] == B, "logits (B, B)");
    graph_backward(&g, loss);
    double worst = 0;
    int compared = 0;
    for (int i = 0; i < ps.n; i++) {
        Tensor *p = ps.p[i];
        snprintf(name, sizeof name, "grad/%s", p->name);
        float *gref = h5f_read(f, name, &nd, dims);
        XC_EXPECT(gref && p->grad, "%s: no gradient (reference %p, ours %p)", p->name, (void *)gref, (void *)p->grad);
        if (!gref || !p->grad) { free(gref); continue; }
        snprintf(name, sizeof name, "grad %s", p->name);
        worst = fmax(worst, xc_expect_scaled(name, p->grad, gref, p->numel, 1e-4));
        double scale = 0;
        for (int64_t j = 0; j < p->numel; j++) scale = fmax(scale, fabs(gref[j]));
        xc_expect_close(name, p->grad, gref, (long)p->numel, 1e-4 * scale, 1e-3);
        compared++;
        free(gref);
    }
    XC_EXPECT(compared == ps.n, "compared %d of %d gradients", compared, ps.n);
    printf("  contrastive loss %.6f (reference %.6f, rel %.1e); %d gradients within %.2e of max |ref|; d/d logit_scale %.6f\n",
           loss->data[0], loss_ref[0], le, compared, worst, m.logit_scale->grad[0]);

    // one AdamW step (the reference's groups: decay on tensors of 2 or more dimensions), then the clamp
    AdamW opt;
    adamw_init(&opt, &ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.2f});
    for (int i = 0; i < ps.n; i++) adamw_set_group(&opt, i, 0, ps.p[i]->ndim >= 2);
    adamw_step(&opt, (float[]){0.05f});
    const float before = m.logit_scale->data[0];
    bool changed = clip_clamp_logit_scale(m.logit_scale);
    XC_EXPECT(changed && clamped[0] == 1.0f, "the clamp did not act (logit_scale %.5f after the step)", before);
    int stepped = 0;
    for (int i = 0; i < ps.n; i++) {
        Tensor *p = ps.p[i];
        snprintf(name, sizeof name, "step/%s", p->name);
        float *ref = h5f_read(f, name, &nd, dims);
        if (!ref) continue;
        snprintf(name, sizeof name, "after the step: %s", p->name);
        xc_expect_scaled(name, p->data, ref, p->numel, 1e-6);
        stepped++;
        free(ref);
    }
    XC_EXPECT(stepped == 1, "%d stepped tensors in the fixture, want logit_scale", stepped);
    printf("  AdamW step + clamp: logit_scale %.5f -> %.5f (ln 100), %d tensors checked\n", before, m.logit_scale->data[0], stepped);
    adamw_free(&opt);
    graph_free(&g);
    param_store_free(&ps);
    free(img); free(tokf); free(tok); free(start); free(loss_ref); free(clamped);
    H5Fclose(f);
}

int main(void) {
    test_clamp_by_hand();
    test_against_reference();
    return xc_test_summary("test_clip_pretrain");
}
