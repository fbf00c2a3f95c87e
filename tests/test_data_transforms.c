// test_data_transforms.c - sampling, MultiScaleCrop, resize, colour ops, normalisation and mixup/cutmix against
// tests/fixtures/data/data_ref.h5 (tests/ref/make_data_fixtures.py: numpy / torch / torchvision 0.14 / the X-CLIP
// blending code). Tolerances: sampling, crop boxes, flip, grayscale, brightness/contrast/saturation/hue on uint8:
// exact (0 levels; the C code repeats torchvision's float32 arithmetic and truncation) except where torch's
// float32 summation order for the contrast mean can flip a truncation (allowed: <= 1 level on <= 0.5% of values);
// resize: our uint8 output vs torch's float64 bilinear: |diff| <= 0.5 + 1e-3 (rounding only); normalise and
// mixup: 1e-6 relative.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/util.h"
#include "data/mixup.h"
#include "data/sampling.h"
#include "data/transforms.h"
#include "tests/h5_fixture.h"
#include "tests/test_util.h"

static hid_t F;

static float *need(const char *name, int64_t *n) {
    int nd = 0;
    int64_t d[8];
    float *x = h5f_read(F, name, &nd, d);
    XC_CHECK(x, "fixture %s missing: regenerate with tests/ref/make_data_fixtures.py", name);
    *n = 1;
    for (int i = 0; i < nd; i++) *n *= d[i];
    return x;
}

static void cmp_u8(const char *what, const uint8_t *got, const float *ref, int64_t n, int maxdiff, double frac) {
    int64_t bad = 0, off = 0;
    int worst = 0;
    for (int64_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)lrintf(ref[i]));
        if (d) off++;
        if (d > maxdiff) bad++;
        if (d > worst) worst = d;
    }
    XC_EXPECT(bad == 0 && (double)off <= frac * (double)n, "%s: %lld values off by > %d, %lld off at all (max %d)",
              what, (long long)bad, maxdiff, (long long)off, worst);
    if (off) printf("  %s: %lld of %lld values differ by <= %d\n", what, (long long)off, (long long)n, worst);
}

int main(void) {
    char path[512];
    F = H5Fopen(XC_FIXTURE("data/data_ref.h5", path), H5F_ACC_RDONLY, H5P_DEFAULT);
    XC_CHECK(F >= 0, "cannot open %s", path);
    int64_t n;
    // ---- sampling
    const int ns[] = {1, 3, 7, 8, 9, 31, 280, 300, 1000}, Ts[] = {8, 16, 32};
    for (int a = 0; a < 9; a++)
        for (int b = 0; b < 3; b++) {
            char k[64];
            int64_t got[32], offs[32];
            snprintf(k, sizeof k, "sample/offs_%d_%d", ns[a], Ts[b]);
            float *o = need(k, &n);
            for (int t = 0; t < Ts[b]; t++) offs[t] = (int64_t)o[t];
            sample_train_with(ns[a], Ts[b], offs, got);
            snprintf(k, sizeof k, "sample/train_%d_%d", ns[a], Ts[b]);
            float *ref = need(k, &n);
            int ok = 1;
            for (int t = 0; t < Ts[b]; t++) ok &= got[t] == (int64_t)ref[t];
            XC_EXPECT(ok, "%s", k);
            sample_test(ns[a], Ts[b], got);
            snprintf(k, sizeof k, "sample/test_%d_%d", ns[a], Ts[b]);
            float *rt = need(k, &n);
            ok = 1;
            for (int t = 0; t < Ts[b]; t++) ok &= got[t] == (int64_t)rt[t];
            XC_EXPECT(ok, "%s", k);
            // shifted views: view 0 of 1 is the test clip; every view is inside [0, n)
            int64_t views[4 * 32];
            sample_test_views(ns[a], Ts[b], 4, SAMPLE_VIEWS_SHIFTED, NULL, views);
            for (int i = 0; i < 4 * Ts[b]; i++) XC_EXPECT(views[i] >= 0 && views[i] < ns[a], "view index");
            free(o); free(ref); free(rt);
        }
    {   // random train draws stay in their segments; random views = independent train draws
        Rng r = rng_stream(1, RNG_STREAM_TEST);
        int64_t idx[8];
        sample_train(100, 8, &r, idx);
        for (int t = 0; t < 8; t++) XC_EXPECT(idx[t] >= t * 12 && idx[t] < (t + 1) * 12, "segment %d: %lld", t, (long long)idx[t]);
    }
    // ---- MultiScaleCrop boxes
    const int hw[][2] = {{256, 340}, {256, 455}, {256, 256}, {298, 256}, {230, 400}, {224, 224}};
    for (int c = 0; c < 6; c++) {
        char k[64];
        snprintf(k, sizeof k, "msc/%dx%d", hw[c][0], hw[c][1]);
        float *ref = need(k, &n);
        int ok = 1;
        for (int s = 0; s < 10; s++)
            for (int o = 0; o < 5; o++) {
                CropBox b = tf_multiscale_box(hw[c][0], hw[c][1], 224, s, o);
                const float *r = ref + (s * 5 + o) * 4;
                ok &= b.x == (int)r[0] && b.y == (int)r[1] && b.w == (int)r[2] && b.h == (int)r[3];
            }
        XC_EXPECT(ok, "%s boxes", k);
        free(ref);
    }
    // ---- resize
    float *imgf = need("in/img", &n);
    const int H = 40, W = 56;
    uint8_t img[40 * 56 * 3], out[128 * 128 * 3];
    for (int i = 0; i < H * W * 3; i++) img[i] = (uint8_t)imgf[i];
    const int rs[][2] = {{24, 30}, {64, 90}, {37, 37}, {40, 56}, {13, 101}};
    double worst = 0;
    for (int c = 0; c < 5; c++) {
        char k[64];
        snprintf(k, sizeof k, "resize/%dx%d", rs[c][0], rs[c][1]);
        float *ref = need(k, &n);
        tf_resize_bilinear_u8(out, rs[c][0], rs[c][1], img, H, W, (size_t)W * 3);
        float *gf = malloc(sizeof(float) * n);
        for (int64_t i = 0; i < n; i++) gf[i] = out[i];
        double d = xc_expect_close(k, gf, ref, n, 0.5 + 1e-3, 0);
        if (d > worst) worst = d;
        free(gf); free(ref);
    }
    {
        float *ref = need("resize/crop_7_3_33_29_to_24", &n);
        tf_resize_bilinear_u8(out, 24, 24, img + (3 * W + 7) * 3, 29, 33, (size_t)W * 3);
        float *gf = malloc(sizeof(float) * n);
        for (int64_t i = 0; i < n; i++) gf[i] = out[i];
        double d = xc_expect_close("resize crop", gf, ref, n, 0.5 + 1e-3, 0);
        if (d > worst) worst = d;
        free(gf); free(ref);
    }
    printf("  resize: max |ours - torch float64 bilinear| = %.4f levels\n", worst);
    // ---- colour
    uint8_t t[40 * 56 * 3];
    const int64_t np_ = H * W;
    struct { const char *key; int op; float f; } ops[] = {
        {"color/brightness_0.6", 0, 0.6f}, {"color/brightness_1.0", 0, 1.0f}, {"color/brightness_1.3", 0, 1.3f},
        {"color/brightness_1.4", 0, 1.4f}, {"color/contrast_0.6", 1, 0.6f}, {"color/contrast_0.85", 1, 0.85f},
        {"color/contrast_1.4", 1, 1.4f}, {"color/saturation_0.8", 2, 0.8f}, {"color/saturation_1.15", 2, 1.15f},
        {"color/hue_-0.1", 3, -0.1f}, {"color/hue_-0.03", 3, -0.03f}, {"color/hue_0.07", 3, 0.07f},
        {"color/hue_0.1", 3, 0.1f}, {"color/hue_0.5", 3, 0.5f}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        memcpy(t, img, sizeof t);
        switch (ops[i].op) {
        case 0: tf_brightness_u8(t, np_, ops[i].f); break;
        case 1: tf_contrast_u8(t, np_, ops[i].f); break;
        case 2: tf_saturation_u8(t, np_, ops[i].f); break;
        default: tf_hue_u8(t, np_, ops[i].f); break;
        }
        float *ref = need(ops[i].key, &n);
        cmp_u8(ops[i].key, t, ref, n, ops[i].op == 1 ? 1 : 0, ops[i].op == 1 ? 0.005 : 0);
        free(ref);
    }
    memcpy(t, img, sizeof t);
    tf_grayscale_u8(t, np_);
    float *ref = need("color/gray", &n);
    cmp_u8("gray", t, ref, n, 0, 0);
    free(ref);
    memcpy(t, img, sizeof t);
    tf_flip_u8(t, H, W);
    ref = need("color/hflip", &n);
    cmp_u8("hflip", t, ref, n, 0, 0);
    free(ref);
    memcpy(t, img, sizeof t);
    JitterParams jp = {{2, 0, 3, 1}, 0.73f, 1.21f, 0.91f, -0.06f};
    tf_jitter_apply_u8(t, np_, &jp);
    ref = need("color/jitter_2031", &n);
    cmp_u8("jitter order 2,0,3,1", t, ref, n, 1, 0.005);
    free(ref);
    {
        float *nrm = malloc(sizeof(float) * 3 * np_);
        const float mean[3] = {123.675f, 116.28f, 103.53f}, std[3] = {58.395f, 57.12f, 57.375f};
        tf_normalize(nrm, img, H, W, mean, std);
        ref = need("color/normalize_chw", &n);
        xc_expect_close("normalize", nrm, ref, n, 1e-6, 1e-6);
        free(ref); free(nrm);
    }
    // ---- mixup / cutmix
    {
        const int K = 5, B = 3, T = 2, MH = 6, MW = 7;
        float *vid = need("mix/video", &n);
        float *lab = need("mix/labels", &n), *perm = need("mix/perm", &n);
        int32_t labels[3];
        MixConfig mc = mix_config_default(K);
        MixDraw d;
        memset(&d, 0, sizeof d);
        for (int b = 0; b < B; b++) { labels[b] = (int32_t)lab[b]; d.perm[b] = (int64_t)perm[b]; }
        const int64_t nv = (int64_t)B * T * 3 * MH * MW;
        float *v = malloc(sizeof(float) * nv), tg[15];
        memcpy(v, vid, sizeof(float) * nv);
        d.cutmix = 0;
        d.lam = 0.62f;
        mix_apply(&mc, &d, v, labels, B, T, MH, MW, tg, NULL);
        ref = need("mix/mixup_video", &n);
        xc_expect_close("mixup video", v, ref, n, 1e-6, 1e-6);
        free(ref);
        ref = need("mix/mixup_targets", &n);
        xc_expect_close("mixup targets", tg, ref, n, 1e-7, 1e-6);
        free(ref);
        const float cl[3] = {0.3f, 0.8f, 0.05f};
        const int cxy[3][2] = {{2, 5}, {0, 0}, {6, 3}};
        for (int c = 0; c < 3; c++) {
            char k[96];
            memcpy(v, vid, sizeof(float) * nv);
            d.cutmix = 1;
            d.lam = cl[c];
            d.cx = cxy[c][0];
            d.cy = cxy[c][1];
            mix_apply(&mc, &d, v, labels, B, T, MH, MW, tg, NULL);
            snprintf(k, sizeof k, "mix/cutmix_%g_%d_%d_box", cl[c], cxy[c][0], cxy[c][1]);
            float *bx = need(k, &n);
            XC_EXPECT(d.x1 == (int)bx[0] && d.y1 == (int)bx[1] && d.x2 == (int)bx[2] && d.y2 == (int)bx[3] &&
                      fabsf(d.lam - bx[4]) < 1e-7f, "%s: got %d %d %d %d %g", k, d.x1, d.y1, d.x2, d.y2, d.lam);
            free(bx);
            snprintf(k, sizeof k, "mix/cutmix_%g_%d_%d_video", cl[c], cxy[c][0], cxy[c][1]);
            ref = need(k, &n);
            xc_expect_close(k, v, ref, n, 0, 0);
            free(ref);
            snprintf(k, sizeof k, "mix/cutmix_%g_%d_%d_targets", cl[c], cxy[c][0], cxy[c][1]);
            ref = need(k, &n);
            xc_expect_close(k, tg, ref, n, 1e-7, 1e-6);
            free(ref);
        }
        mc.mixup_alpha = mc.cutmix_alpha = 0;
        Rng r = rng_stream(2, RNG_STREAM_TEST);
        d = mix_draw(&mc, &r, B, MH, MW);
        mix_apply(&mc, &d, NULL, labels, B, T, MH, MW, tg, NULL);
        ref = need("mix/smooth_targets", &n);
        xc_expect_close("smoothing only", tg, ref, n, 1e-7, 1e-6);
        free(ref);
        // Beta sampling: mean and variance of Beta(.8, .8) and Beta(1, 1)
        for (int k = 0; k < 2; k++) {
            double a = k ? 1.0 : 0.8, s1 = 0, s2 = 0;
            const int N = 20000;
            for (int i = 0; i < N; i++) { double x = rng_beta(&r, a, a); s1 += x; s2 += x * x; }
            double m = s1 / N, var = s2 / N - m * m, want = 1.0 / (4 * (2 * a + 1));
            XC_EXPECT(fabs(m - 0.5) < 0.01 && fabs(var - want) < 0.01, "Beta(%g): mean %g var %g (want .5, %g)", a, m, var, want);
        }
        free(v); free(vid); free(lab); free(perm);
    }
    free(imgf);
    H5Fclose(F);
    return xc_test_summary("test_data_transforms");
}
