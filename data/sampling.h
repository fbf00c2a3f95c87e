// sampling.h - which frames of a video a clip uses (mmaction2 SampleFrames with clip_len 1, docs/model.md §8).
//
//   Rng r = rng_substream(seed, RNG_STREAM_DATA, epoch, sample_index);
//   int64_t idx[8];
//   sample_train(n_frames, 8, &r, idx);        // segment-based random draw (training)
//   sample_test(n_frames, 8, idx);             // segment centres (testing, one view)
//   sample_test_views(n_frames, 8, 4, SAMPLE_VIEWS_SHIFTED, NULL, idx32);  // 4 views x 8 frames
//
// Train: a = n // T; if a > 0, index_t = t*a + uniform{0..a-1} (one rng_below(a) per t, in order of t);
// else (n < T) index_t = round(t * n/T) with numpy's half-to-even rounding. Test: a = n/T (real),
// index_t = floor(t*a + a/2). Every index is reduced modulo n.
#pragma once
#include <stdint.h>
#include "autograd/rng.h"

void sample_train(int64_t n, int T, Rng *r, int64_t *idx);
// The same with the uniform offsets given (offsets[t] in [0, a)); sample_train draws them and calls this.
void sample_train_with(int64_t n, int T, const int64_t *offsets, int64_t *idx);
void sample_test(int64_t n, int T, int64_t *idx);

typedef enum SampleViews {
    // Default: view v of V uses index_t = floor(t*a + (v + 0.5)*a/V), a = n/T: V evenly shifted deterministic
    // views (V = 1 gives sample_test).
    SAMPLE_VIEWS_SHIFTED = 0,
    // The official X-CLIP test with num_clip > 1: V independent train-style random draws, concatenated.
    SAMPLE_VIEWS_RANDOM = 1,
} SampleViews;
// idx (V, T). r is used only by SAMPLE_VIEWS_RANDOM.
void sample_test_views(int64_t n, int T, int V, SampleViews mode, Rng *r, int64_t *idx);
