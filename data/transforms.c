// transforms.c - resize, crops, flip, colour jitter, grayscale, normalisation and the clip pipelines.
// Arithmetic follows the references named in transforms.h; float32 where they use float32.
#include "data/transforms.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/util.h"

// ---- geometry --------------------------------------------------------------------------------------------
typedef struct Tap { int i0, i1; float f; } Tap;

static void make_taps(Tap *t, int dn, int sn) {
    const float scale = (float)sn / (float)dn;
    for (int d = 0; d < dn; d++) {
        float pos = ((float)d + 0.5f) * scale - 0.5f;
        if (pos < 0) pos = 0;
        int i = (int)floorf(pos);
        float f = pos - (float)i;
        if (i >= sn - 1) { i = sn - 1; f = 0; }
        t[d] = (Tap){i, i + 1 < sn ? i + 1 : i, f};
    }
}

void tf_resize_bilinear_u8(uint8_t *dst, int dh, int dw, const uint8_t *src, int sh, int sw, size_t src_stride) {
    XC_CHECK(dh > 0 && dw > 0 && sh > 0 && sw > 0, "tf_resize_bilinear_u8: bad sizes");
    if (dh == sh && dw == sw) {
        for (int y = 0; y < dh; y++) memcpy(dst + (size_t)y * dw * 3, src + (size_t)y * src_stride, (size_t)dw * 3);
        return;
    }
    Tap *tx = xc_malloc(sizeof(Tap) * (size_t)dw), *ty = xc_malloc(sizeof(Tap) * (size_t)dh);
    float *row0 = xc_malloc(sizeof(float) * (size_t)dw * 3), *row1 = xc_malloc(sizeof(float) * (size_t)dw * 3);
    make_taps(tx, dw, sw);
    make_taps(ty, dh, sh);
    int r0 = -1, r1 = -1;
    for (int y = 0; y < dh; y++) {
        // horizontal pass for the two source rows (cached across output rows)
        for (int k = 0; k < 2; k++) {
            int sy = k ? ty[y].i1 : ty[y].i0;
            float *row = k ? row1 : row0;
            if ((k ? r1 : r0) == sy) continue;
            if (k == 0 && r1 == sy) { memcpy(row0, row1, sizeof(float) * (size_t)dw * 3); r0 = sy; continue; }
            const uint8_t *s = src + (size_t)sy * src_stride;
            for (int x = 0; x < dw; x++) {
                const uint8_t *a = s + (size_t)tx[x].i0 * 3, *b = s + (size_t)tx[x].i1 * 3;
                float f = tx[x].f;
                for (int c = 0; c < 3; c++) row[x * 3 + c] = (1.0f - f) * (float)a[c] + f * (float)b[c];
            }
            if (k) r1 = sy; else r0 = sy;
        }
        float f = ty[y].f;
        uint8_t *d = dst + (size_t)y * dw * 3;
        for (int i = 0; i < dw * 3; i++) {
            float v = (1.0f - f) * row0[i] + f * row1[i];
            int q = (int)floorf(v + 0.5f);
            d[i] = (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
        }
    }
    xc_free(tx); xc_free(ty); xc_free(row0); xc_free(row1);
}

static const double kScales[4] = {1.0, 0.875, 0.75, 0.66};

int tf_multiscale_candidates(int img_h, int img_w, int sizes[][2]) {
    int base = img_h < img_w ? img_h : img_w;
    int cs[4];
    for (int i = 0; i < 4; i++) cs[i] = (int)((double)base * kScales[i]);
    int n = 0;
    for (int i = 0; i < 4; i++)        // h level
        for (int j = 0; j < 4; j++)    // w level
            if (abs(i - j) <= 1) { sizes[n][0] = cs[j]; sizes[n][1] = cs[i]; n++; }
    return n;
}

CropBox tf_multiscale_box(int img_h, int img_w, int input_size, int size_choice, int offset_choice) {
    int sizes[16][2];
    int n = tf_multiscale_candidates(img_h, img_w, sizes);
    XC_CHECK(size_choice >= 0 && size_choice < n && offset_choice >= 0 && offset_choice < 5,
             "tf_multiscale_box: bad choice %d/%d", size_choice, offset_choice);
    int cw = sizes[size_choice][0], ch = sizes[size_choice][1];
    if (abs(cw - input_size) < 3) cw = input_size;
    if (abs(ch - input_size) < 3) ch = input_size;
    // a snapped size can exceed a tiny image: keep the box inside (mmaction2 would crop short there)
    if (cw > img_w) cw = img_w;
    if (ch > img_h) ch = img_h;
    int ws = (img_w - cw) / 4, hs = (img_h - ch) / 4;
    static const int ox[5] = {0, 4, 0, 4, 2}, oy[5] = {0, 0, 4, 4, 2};
    return (CropBox){ox[offset_choice] * ws, oy[offset_choice] * hs, cw, ch};
}

CropBox tf_center_box(int img_h, int img_w, int crop) {
    int cw = crop < img_w ? crop : img_w, ch = crop < img_h ? crop : img_h;
    return (CropBox){(img_w - crop) / 2 > 0 ? (img_w - crop) / 2 : 0, (img_h - crop) / 2 > 0 ? (img_h - crop) / 2 : 0,
                     cw, ch};
}

void tf_three_boxes(int img_h, int img_w, int crop, CropBox out[3]) {
    if (img_h == crop) {
        int s = (img_w - crop) / 2;
        out[0] = (CropBox){0, 0, crop, crop};
        out[1] = (CropBox){2 * s, 0, crop, crop};
        out[2] = (CropBox){s, 0, crop, crop};
    } else {
        XC_CHECK(img_w == crop, "tf_three_boxes: one side (%dx%d) must equal the crop %d", img_h, img_w, crop);
        int s = (img_h - crop) / 2;
        out[0] = (CropBox){0, 0, crop, crop};
        out[1] = (CropBox){0, 2 * s, crop, crop};
        out[2] = (CropBox){0, s, crop, crop};
    }
}

void tf_flip_u8(uint8_t *img, int h, int w) {
    for (int y = 0; y < h; y++) {
        uint8_t *row = img + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) { uint8_t t = row[a * 3 + c]; row[a * 3 + c] = row[b * 3 + c]; row[b * 3 + c] = t; }
    }
}

// ---- colour (torchvision 0.14 functional_tensor on uint8) -------------------------------------------------
// _blend(img1, img2, ratio) = (ratio*img1 + (1-ratio)*img2).clamp(0, 255).to(uint8): float32, truncation.
static inline uint8_t blend(float ratio, float one_minus, float a, float b) {
    float v = ratio * a + one_minus * b;
    if (!(v > 0)) v = 0;
    if (v > 255) v = 255;
    return (uint8_t)v;
}

static inline uint8_t gray_of(const uint8_t *p) {
    float l = 0.2989f * (float)p[0] + 0.587f * (float)p[1];
    l = l + 0.114f * (float)p[2];
    return (uint8_t)l; // values stay in [0, 255]; .to(uint8) truncates
}

void tf_brightness_u8(uint8_t *img, int64_t npix, float factor) {
    float om = (float)(1.0 - (double)factor);
    for (int64_t i = 0; i < npix * 3; i++) img[i] = blend(factor, om, (float)img[i], 0.0f);
}

void tf_contrast_u8(uint8_t *img, int64_t npix, float factor) {
    double sum = 0;
    for (int64_t i = 0; i < npix; i++) sum += gray_of(img + i * 3);
    float mean = (float)(sum / (double)npix);
    float om = (float)(1.0 - (double)factor);
    for (int64_t i = 0; i < npix * 3; i++) img[i] = blend(factor, om, (float)img[i], mean);
}

void tf_saturation_u8(uint8_t *img, int64_t npix, float factor) {
    float om = (float)(1.0 - (double)factor);
    for (int64_t i = 0; i < npix; i++) {
        uint8_t *p = img + i * 3;
        float g = (float)gray_of(p);
        for (int c = 0; c < 3; c++) p[c] = blend(factor, om, (float)p[c], g);
    }
}

void tf_hue_u8(uint8_t *img, int64_t npix, float factor) {
    XC_CHECK(factor >= -0.5f && factor <= 0.5f, "tf_hue_u8: factor %g outside [-0.5, 0.5]", factor);
    for (int64_t i = 0; i < npix; i++) {
        uint8_t *p = img + i * 3;
        float r = (float)p[0] / 255.0f, g = (float)p[1] / 255.0f, b = (float)p[2] / 255.0f;
        // _rgb2hsv
        float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
        int eqc = maxc == minc;
        float cr = maxc - minc;
        float s = cr / (eqc ? 1.0f : maxc);
        float crd = eqc ? 1.0f : cr;
        float rc = (maxc - r) / crd, gc = (maxc - g) / crd, bc = (maxc - b) / crd;
        float hr = (maxc == r) ? (bc - gc) : 0.0f;
        float hg = (maxc == g && maxc != r) ? (2.0f + rc - bc) : 0.0f;
        float hb = (maxc != g && maxc != r) ? (4.0f + gc - rc) : 0.0f;
        float h = hr + hg + hb;
        h = fmodf(h / 6.0f + 1.0f, 1.0f);
        float v = maxc;
        // (h + factor) % 1.0 as torch.remainder
        h = h + factor;
        float m = fmodf(h, 1.0f);
        if (m != 0 && m < 0) m += 1.0f;
        h = m;
        // _hsv2rgb
        float fi = floorf(h * 6.0f);
        float f = h * 6.0f - fi;
        int ii = ((int)fi % 6 + 6) % 6;
        float pp = fminf(fmaxf(v * (1.0f - s), 0.0f), 1.0f);
        float q = fminf(fmaxf(v * (1.0f - s * f), 0.0f), 1.0f);
        float t = fminf(fmaxf(v * (1.0f - s * (1.0f - f)), 0.0f), 1.0f);
        float o[3];
        switch (ii) {
        case 0: o[0] = v; o[1] = t; o[2] = pp; break;
        case 1: o[0] = q; o[1] = v; o[2] = pp; break;
        case 2: o[0] = pp; o[1] = v; o[2] = t; break;
        case 3: o[0] = pp; o[1] = q; o[2] = v; break;
        case 4: o[0] = t; o[1] = pp; o[2] = v; break;
        default: o[0] = v; o[1] = pp; o[2] = q; break;
        }
        for (int c = 0; c < 3; c++) {
            float x = o[c] * 255.0f;
            p[c] = (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
        }
    }
}

void tf_grayscale_u8(uint8_t *img, int64_t npix) {
    for (int64_t i = 0; i < npix; i++) {
        uint8_t g = gray_of(img + i * 3);
        img[i * 3] = img[i * 3 + 1] = img[i * 3 + 2] = g;
    }
}

JitterParams tf_jitter_draw(Rng *r, float brightness, float contrast, float saturation, float hue) {
    JitterParams p;
    int64_t perm[4];
    rng_permutation(r, perm, 4);
    for (int i = 0; i < 4; i++) p.order[i] = (int)perm[i];
    float lo;
    lo = 1.0f - brightness > 0 ? 1.0f - brightness : 0;
    p.b = lo + (1.0f + brightness - lo) * rng_uniform(r);
    lo = 1.0f - contrast > 0 ? 1.0f - contrast : 0;
    p.c = lo + (1.0f + contrast - lo) * rng_uniform(r);
    lo = 1.0f - saturation > 0 ? 1.0f - saturation : 0;
    p.s = lo + (1.0f + saturation - lo) * rng_uniform(r);
    p.h = -hue + 2.0f * hue * rng_uniform(r);
    return p;
}

void tf_jitter_apply_u8(uint8_t *img, int64_t npix, const JitterParams *p) {
    for (int k = 0; k < 4; k++) {
        switch (p->order[k]) {
        case 0: tf_brightness_u8(img, npix, p->b); break;
        case 1: tf_contrast_u8(img, npix, p->c); break;
        case 2: tf_saturation_u8(img, npix, p->s); break;
        default: tf_hue_u8(img, npix, p->h); break;
        }
    }
}

void tf_normalize(float *dst, const uint8_t *src, int h, int w, const float mean[3], const float std[3]) {
    const size_t hw = (size_t)h * w;
    for (int c = 0; c < 3; c++) {
        const float m = mean[c], inv = (float)(1.0 / (double)std[c]);
        float *d = dst + c * hw;
        for (size_t i = 0; i < hw; i++) d[i] = ((float)src[i * 3 + c] - m) * inv;
    }
}

// ---- pipelines -----------------------------------------------------------------------------------------------
TfConfig tf_config_default(int input_size) {
    TfConfig c = {0};
    c.input_size = input_size;
    c.resize_short = (int)(256.0 / 224.0 * (double)input_size);
    c.flip_p = 0.5f;
    c.jitter_p = 0.8f;
    c.gray_p = 0.2f;
    c.brightness = 0.4f; c.contrast = 0.4f; c.saturation = 0.2f; c.hue = 0.1f;
    c.jitter_per_clip = 0;
    c.num_crop = 1;
    const float mean[3] = {123.675f, 116.28f, 103.53f}, std[3] = {58.395f, 57.12f, 57.375f};
    memcpy(c.mean, mean, sizeof mean);
    memcpy(c.std, std, sizeof std);
    return c;
}

int tf_test_short_side(const TfConfig *cfg) { return cfg->num_crop == 3 ? cfg->input_size : cfg->resize_short; }

void tf_draw_train(const TfConfig *cfg, Rng *r, int T, int img_h, int img_w, ClipAug *aug) {
    XC_CHECK(T > 0 && T <= TF_MAX_FRAMES, "tf_draw_train: T = %d outside [1, %d]", T, TF_MAX_FRAMES);
    int sizes[16][2];
    int n = tf_multiscale_candidates(img_h, img_w, sizes);
    aug->size_choice = (int)rng_below(r, (uint64_t)n);
    aug->offset_choice = (int)rng_below(r, 5);
    aug->crop = tf_multiscale_box(img_h, img_w, cfg->input_size, aug->size_choice, aug->offset_choice);
    aug->flip = rng_uniform(r) < cfg->flip_p;
    aug->jitter = rng_uniform(r) < cfg->jitter_p;
    aug->gray = rng_uniform(r) < cfg->gray_p;
    aug->nparams = aug->jitter ? (cfg->jitter_per_clip ? 1 : T) : 0;
    for (int t = 0; t < aug->nparams; t++)
        aug->params[t] = tf_jitter_draw(r, cfg->brightness, cfg->contrast, cfg->saturation, cfg->hue);
}

void tf_apply_train(const TfConfig *cfg, const ClipAug *aug, const uint8_t *frames, int T, int img_h, int img_w,
                    float *out, uint8_t *scratch) {
    const int S = cfg->input_size;
    const size_t fin = (size_t)img_h * img_w * 3, fout = (size_t)S * S * 3;
    uint8_t *buf = scratch ? scratch : xc_malloc(fout);
    const CropBox b = aug->crop;
    XC_CHECK(b.x >= 0 && b.y >= 0 && b.x + b.w <= img_w && b.y + b.h <= img_h, "tf_apply_train: crop outside image");
    for (int t = 0; t < T; t++) {
        const uint8_t *f = frames + (size_t)t * fin;
        uint8_t *img = scratch ? buf + (size_t)t * fout : buf;
        tf_resize_bilinear_u8(img, S, S, f + ((size_t)b.y * img_w + b.x) * 3, b.h, b.w, (size_t)img_w * 3);
        if (aug->flip) tf_flip_u8(img, S, S);
        if (aug->jitter) tf_jitter_apply_u8(img, (int64_t)S * S, &aug->params[aug->nparams == 1 ? 0 : t]);
        if (aug->gray) tf_grayscale_u8(img, (int64_t)S * S);
        tf_normalize(out + (size_t)t * fout, img, S, S, cfg->mean, cfg->std);
    }
    if (!scratch) xc_free(buf);
}

void tf_apply_test(const TfConfig *cfg, const uint8_t *frames, int T, int img_h, int img_w, float *out) {
    const int S = cfg->input_size;
    const size_t fin = (size_t)img_h * img_w * 3, fout = (size_t)S * S * 3;
    CropBox boxes[3];
    int nc = cfg->num_crop == 3 ? 3 : 1;
    if (nc == 3) tf_three_boxes(img_h, img_w, S, boxes);
    else boxes[0] = tf_center_box(img_h, img_w, S);
    uint8_t *buf = xc_malloc(fout);
    for (int k = 0; k < nc; k++) {
        const CropBox b = boxes[k];
        for (int t = 0; t < T; t++) {
            const uint8_t *f = frames + (size_t)t * fin;
            // a crop larger than the frame (tiny videos) is resized up, so the output is always S x S
            tf_resize_bilinear_u8(buf, S, S, f + ((size_t)b.y * img_w + b.x) * 3, b.h, b.w, (size_t)img_w * 3);
            tf_normalize(out + ((size_t)k * T + t) * fout, buf, S, S, cfg->mean, cfg->std);
        }
    }
    xc_free(buf);
}
