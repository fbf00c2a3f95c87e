// transforms.h - the X-CLIP image transforms (docs/model.md §8) on uint8 RGB frames, and the clip pipelines.
//
// Frames are (H, W, 3) uint8 RGB, rows contiguous unless a stride is given; a clip is T frames of one size.
// Each transform reproduces the reference's arithmetic:
//   - resize: mmcv.imresize 'bilinear' = cv2 INTER_LINEAR geometry (source x = (dst x + 0.5) * sw/dw - 0.5,
//     clamped to the edge, no antialiasing), computed in float and rounded to nearest: within 0.5 of
//     torch.nn.functional.interpolate(bilinear, align_corners=False) and within 1 level of cv2's fixed point;
//   - MultiScaleCrop (mmaction2, random_crop=False, max_wh_scale_gap=1, 5 fixed crops), CenterCrop, ThreeCrop;
//   - colour jitter, grayscale: torchvision 0.14 functional_tensor on uint8 tensors (float32 arithmetic,
//     truncation back to uint8); normalise as mmcv.imnormalize (float32 (x - mean) * (1/std)).
//
//   TfConfig cfg = tf_config_default(224);           // train pipeline, input size 224
//   Rng r = rng_substream(seed, RNG_STREAM_DATA, epoch, sample);
//   ClipAug aug;
//   tf_draw_train(&cfg, &r, T, frame_h, frame_w, &aug);   // crop box, flip, jitter, grayscale for this clip
//   tf_apply_train(&cfg, &aug, frames, T, frame_h, frame_w, out);  // frames (T,h,w,3) -> out (T,3,224,224)
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "autograd/rng.h"

typedef struct CropBox { int x, y, w, h; } CropBox;

// ---- geometry --------------------------------------------------------------------------------------------
// dst (dh, dw, 3) <- src (sh, sw, 3) with row stride src_stride bytes (crop views need no copy).
void tf_resize_bilinear_u8(uint8_t *dst, int dh, int dw, const uint8_t *src, int sh, int sw, size_t src_stride);
// MultiScaleCrop candidates for an img_h x img_w image: crop sizes int(min(h,w) * s) for s in
// (1, .875, .75, .66), all (w, h) pairs whose scale levels differ by <= 1 (10 pairs), in mmaction2's order
// (outer loop h level, inner loop w level). Returns the count; sizes[k] = {w, h} before snapping.
int tf_multiscale_candidates(int img_h, int img_w, int sizes[][2]);
// The crop for candidate size_choice (index into the list above) and offset_choice (0 upper left, 1 upper right,
// 2 lower left, 3 lower right, 4 centre); a size within 3 px of input_size snaps to it.
CropBox tf_multiscale_box(int img_h, int img_w, int input_size, int size_choice, int offset_choice);
CropBox tf_center_box(int img_h, int img_w, int crop);
// Three crops of size crop x crop along the long side (the short side must equal crop): left/top, right/bottom,
// middle, in mmaction2's order.
void tf_three_boxes(int img_h, int img_w, int crop, CropBox out[3]);
void tf_flip_u8(uint8_t *img, int h, int w);

// ---- colour ----------------------------------------------------------------------------------------------
void tf_brightness_u8(uint8_t *img, int64_t npix, float factor);
void tf_contrast_u8(uint8_t *img, int64_t npix, float factor);
void tf_saturation_u8(uint8_t *img, int64_t npix, float factor);
void tf_hue_u8(uint8_t *img, int64_t npix, float factor);   // factor in [-0.5, 0.5]
void tf_grayscale_u8(uint8_t *img, int64_t npix);           // 0.2989 R + 0.587 G + 0.114 B, truncated, x3

typedef struct JitterParams {
    int order[4];       // a permutation of 0 brightness, 1 contrast, 2 saturation, 3 hue
    float b, c, s, h;   // factors
} JitterParams;
// torchvision.transforms.ColorJitter.get_params: order = randperm(4), then b, c, s, h uniform in
// [1-B, 1+B], [1-C, 1+C], [1-S, 1+S], [-H, H] (drawn from our Rng, in that order).
JitterParams tf_jitter_draw(Rng *r, float brightness, float contrast, float saturation, float hue);
void tf_jitter_apply_u8(uint8_t *img, int64_t npix, const JitterParams *p);

// (H, W, 3) uint8 -> (3, H, W) float32: (x - mean) * (1 / std), as mmcv.imnormalize on 0..255 pixels.
void tf_normalize(float *dst, const uint8_t *src, int h, int w, const float mean[3], const float std[3]);

// ---- clip pipelines ----------------------------------------------------------------------------------------
typedef struct TfConfig {
    int input_size;            // S (224)
    int resize_short;          // first resize: int(256/224 * S)
    float flip_p;              // 0.5
    float jitter_p;            // 0.8 (AUG.COLOR_JITTER)
    float gray_p;              // 0.2 (AUG.GRAY_SCALE)
    float brightness, contrast, saturation, hue;   // .4 .4 .2 .1
    int jitter_per_clip;       // 0: factors and order drawn for every frame (reference); 1: once per clip
    int num_crop;              // test: 1 (centre) or 3 (three crops)
    float mean[3], std[3];
} TfConfig;
TfConfig tf_config_default(int input_size);

#define TF_MAX_FRAMES 1024
typedef struct ClipAug {       // every random decision of one training clip
    CropBox crop;
    int size_choice, offset_choice;
    int flip, jitter, gray;
    int nparams;               // 1 (per clip) or T (per frame) when jitter is on, else 0
    JitterParams params[TF_MAX_FRAMES];
} ClipAug;

// Draw the clip's decisions, in this order: crop size, crop offset, flip, jitter on/off, grayscale on/off,
// then the jitter parameters (once, or per frame) if jitter is on.
void tf_draw_train(const TfConfig *cfg, Rng *r, int T, int img_h, int img_w, ClipAug *aug);
// frames (T, img_h, img_w, 3) (already resized to resize_short) -> out (T, 3, S, S). Needs a scratch of
// T * S * S * 3 bytes (allocated per call when scratch is NULL).
void tf_apply_train(const TfConfig *cfg, const ClipAug *aug, const uint8_t *frames, int T, int img_h, int img_w,
                    float *out, uint8_t *scratch);
// Test: frames (T, img_h, img_w, 3) resized to resize_short (1 crop) or to S (3 crops) ->
// out (num_crop, T, 3, S, S): centre crop, or the three crops in tf_three_boxes order.
void tf_apply_test(const TfConfig *cfg, const uint8_t *frames, int T, int img_h, int img_w, float *out);
// The short-side length the decoder should produce for the test pipeline.
int tf_test_short_side(const TfConfig *cfg);
