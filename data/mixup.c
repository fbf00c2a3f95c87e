// mixup.c - Mixup / CutMix with label smoothing, see mixup.h.
#include "data/mixup.h"

#include <math.h>
#include <string.h>
#include "autograd/util.h"

MixConfig mix_config_default(int num_classes) {
    return (MixConfig){.num_classes = num_classes, .smoothing = 0.1f, .mixup_alpha = 0.8f, .cutmix_alpha = 1.0f,
                       .switch_prob = 0.5f};
}

double rng_gamma(Rng *r, double shape) {
    XC_CHECK(shape > 0, "rng_gamma: shape %g <= 0", shape);
    if (shape < 1.0) {
        double u = rng_uniform_double(r);
        return rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do { x = (double)rng_normal(r); v = 1.0 + c * x; } while (v <= 0);
        v = v * v * v;
        double u = rng_uniform_double(r);
        if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
        if (u > 0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
    }
}

double rng_beta(Rng *r, double a, double b) {
    double x = rng_gamma(r, a), y = rng_gamma(r, b);
    return x + y > 0 ? x / (x + y) : 0.5;
}

float mix_cutmix_box(float lam, int cx, int cy, int H, int W, int *x1, int *y1, int *x2, int *y2) {
    float cut_rat = sqrtf(1.0f - lam);
    int cw = (int)((float)W * cut_rat), ch = (int)((float)H * cut_rat);
#define CLAMP(v, hi) ((v) < 0 ? 0 : (v) > (hi) ? (hi) : (v))
    *x1 = CLAMP(cx - cw / 2, W);
    *y1 = CLAMP(cy - ch / 2, H);
    *x2 = CLAMP(cx + cw / 2, W);
    *y2 = CLAMP(cy + ch / 2, H);
#undef CLAMP
    return 1.0f - (float)((int64_t)(*x2 - *x1) * (*y2 - *y1)) / (float)((int64_t)W * H);
}

MixDraw mix_draw(const MixConfig *mc, Rng *r, int B, int H, int W) {
    XC_CHECK(B > 0 && B <= MIX_MAX_BATCH, "mix_draw: batch %d outside [1, %d]", B, MIX_MAX_BATCH);
    MixDraw d;
    memset(&d, 0, sizeof d);
    int use_mix = mc->mixup_alpha > 0, use_cut = mc->cutmix_alpha > 0;
    if (!use_mix && !use_cut) {
        d.cutmix = -1;
        d.lam = 1.0f;
        for (int b = 0; b < B; b++) d.perm[b] = b;
        return d;
    }
    int cut = use_cut && (!use_mix || rng_uniform(r) < mc->switch_prob);
    d.cutmix = cut;
    if (cut) {
        rng_permutation(r, d.perm, B);
        d.lam = (float)rng_beta(r, mc->cutmix_alpha, mc->cutmix_alpha);
        d.cx = (int)rng_below(r, (uint64_t)W);
        d.cy = (int)rng_below(r, (uint64_t)H);
        mix_cutmix_box(d.lam, d.cx, d.cy, H, W, &d.x1, &d.y1, &d.x2, &d.y2);
    } else {
        d.lam = (float)rng_beta(r, mc->mixup_alpha, mc->mixup_alpha);
        rng_permutation(r, d.perm, B);
    }
    return d;
}

void mix_apply(const MixConfig *mc, MixDraw *d, float *video, const int32_t *labels, int B, int T, int H, int W,
               float *targets, float *scratch) {
    const int K = mc->num_classes;
    const float off = mc->smoothing / (float)K, on = 1.0f - mc->smoothing + off;
    float lam = d->lam;
    const size_t frame = (size_t)3 * H * W, clip = (size_t)T * frame;
    if (d->cutmix == 1) {
        lam = mix_cutmix_box(d->lam, d->cx, d->cy, H, W, &d->x1, &d->y1, &d->x2, &d->y2);
        const int bw = d->x2 - d->x1, bh = d->y2 - d->y1;
        if (video && bw > 0 && bh > 0) {
            // gather every partner's box first (the reference's right-hand side is a copy), then scatter
            const size_t per = (size_t)T * 3 * bh * bw;
            float *tmp = scratch ? scratch : xc_malloc(sizeof(float) * per * (size_t)B); // per <= clip
            for (int b = 0; b < B; b++)
                for (size_t p = 0; p < (size_t)T * 3; p++)
                    for (int y = 0; y < bh; y++)
                        memcpy(tmp + (size_t)b * per + (p * bh + y) * bw,
                               video + (size_t)d->perm[b] * clip + p * H * W + (size_t)(d->y1 + y) * W + d->x1,
                               sizeof(float) * bw);
            for (int b = 0; b < B; b++)
                for (size_t p = 0; p < (size_t)T * 3; p++)
                    for (int y = 0; y < bh; y++)
                        memcpy(video + (size_t)b * clip + p * H * W + (size_t)(d->y1 + y) * W + d->x1,
                               tmp + (size_t)b * per + (p * bh + y) * bw, sizeof(float) * bw);
            if (!scratch) xc_free(tmp);
        }
        d->lam = lam;
    } else if (d->cutmix == 0 && video) {
        float *orig = scratch ? scratch : xc_malloc(sizeof(float) * clip * (size_t)B);
        memcpy(orig, video, sizeof(float) * clip * (size_t)B);
        const float oml = 1.0f - lam;
        for (int b = 0; b < B; b++) {
            const float *x = orig + (size_t)b * clip, *y = orig + (size_t)d->perm[b] * clip;
            float *o = video + (size_t)b * clip;
            for (size_t i = 0; i < clip; i++) o[i] = lam * x[i] + oml * y[i];
        }
        if (!scratch) xc_free(orig);
    }
    const float oml = 1.0f - lam;
    for (int b = 0; b < B; b++) {
        XC_CHECK(labels[b] >= 0 && labels[b] < K, "mix_apply: label %d outside [0, %d)", labels[b], K);
        float *t = targets + (size_t)b * K;
        int la = labels[b], lb = labels[d->perm[b]];
        for (int k = 0; k < K; k++) {
            float ya = k == la ? on : off, yb = k == lb ? on : off;
            t[k] = d->cutmix < 0 ? ya : lam * ya + oml * yb;
        }
    }
}
