// mixup.h - Mixup / CutMix with label smoothing on a batch (X-CLIP datasets/blending.py CutmixMixupBlending,
// docs/model.md §8).
//
//   MixConfig mc = mix_config_default(K);            // mixup .8, cutmix 1.0, switch .5, smoothing .1
//   Rng r = rng_substream(seed, RNG_STREAM_MIX, epoch, batch_index);
//   MixDraw d = mix_draw(&mc, &r, B, H, W);          // cutmix or mixup, lambda, partner permutation, box
//   mix_apply(&mc, &d, video, labels, B, T, H, W, targets, NULL); // video (B,T,3,H,W) in place; targets (B,K)
//
// Labels are one-hot smoothed (off = s/K, on = 1 - s + s/K) and mixed with the partner's:
// y = lam * y + (1 - lam) * y[perm]. Mixup: x = lam*x + (1-lam)*x[perm]. CutMix: a box
// cut = int(W*sqrt(1-lam)) x int(H*sqrt(1-lam)) around a uniform centre, clipped to the image, is copied from
// the partner in every frame and channel; lam becomes 1 - box area / (H*W). Draw order as the reference:
// switch u < p -> cutmix: perm, lam ~ Beta(1,1), cx in [0,W), cy in [0,H); mixup: lam ~ Beta(.8,.8), perm.
#pragma once
#include <stdint.h>
#include "autograd/rng.h"

typedef struct MixConfig {
    int num_classes;        // K
    float smoothing;        // 0.1
    float mixup_alpha;      // 0.8 (<= 0: mixup off)
    float cutmix_alpha;     // 1.0 (<= 0: cutmix off)
    float switch_prob;      // 0.5: probability of cutmix when both are on
} MixConfig;

#define MIX_MAX_BATCH 4096
typedef struct MixDraw {
    int cutmix;             // 1 cutmix, 0 mixup, -1 none (label smoothing only)
    float lam;              // drawn lambda (cutmix: recomputed from the clipped box by mix_apply)
    int64_t perm[MIX_MAX_BATCH];
    int cx, cy;             // cutmix box centre
    int x1, y1, x2, y2;     // cutmix box after clipping (filled by mix_draw)
} MixDraw;

MixConfig mix_config_default(int num_classes);
// Gamma(shape, 1) and Beta(a, b) from our Rng (Marsaglia-Tsang; shape < 1 boosted by U^(1/shape)).
double rng_gamma(Rng *r, double shape);
double rng_beta(Rng *r, double a, double b);

MixDraw mix_draw(const MixConfig *mc, Rng *r, int B, int H, int W);
// The CutMix box for a lambda and centre (CutmixMixupBlending.rand_bbox), and the recomputed lambda.
float mix_cutmix_box(float lam, int cx, int cy, int H, int W, int *x1, int *y1, int *x2, int *y2);
// video (B, T, 3, H, W) float32 mixed in place (may be NULL to compute targets only);
// labels (B); targets (B, K) float32; scratch: B*T*3*H*W floats of work space (NULL: allocated and freed
// here - the loader passes its own, so a training step allocates nothing).
void mix_apply(const MixConfig *mc, MixDraw *d, float *video, const int32_t *labels, int B, int T, int H, int W,
               float *targets, float *scratch);
