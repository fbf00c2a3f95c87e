// evaluate.h - X-CLIP over a test list (docs/model.md §8, §10): every view's softmax summed per video, then
// top-1, top-5 and mean-class accuracy, and optionally per-video probabilities.
//
//   Loader *ld = loader_create(ds, &lc, &err);          // test mode: lc from loader_config_test (setup.h)
//   xclip_cache_text(&m, tokens, K, S);                 // fix_text: the class features once
//   EvalResult r; EvalOutput out = {0};
//   if (evaluate(&m, &g, ld, ds->n, tokens, K, S, chunk, false, &r, &out, &err) != XC_OK) ...;
//   printf("top-1 %.2f%%\n", r.top1); eval_output_free(&out);
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "data/loader.h"
#include "nn/xclip.h"

typedef struct EvalResult {
    int64_t n;                // videos
    double top1, top5;        // % of videos
    double mean_class;        // % mean over classes present of per-class top-1
    int views;                // clips x crops per video
} EvalResult;

typedef struct EvalOutput {   // optional per-video outputs (arrays of n, allocated by evaluate)
    float *probs;             // (n, K) summed softmax probabilities over the views
    int32_t *labels;          // (n)
    int64_t *items;           // (n) dataset index
} EvalOutput;

// One pass of a test-mode loader (views = clips x crops per video) through the model in no-grad mode; g's
// Gemm context (g->gemm) sets the matmul precision. chunk = clips per forward pass (memory bound). tokens
// (K, S): the class texts; with fix_text they must already be cached (xclip_cache_text); without it, the
// text tower's current features are cached here once for the whole pass. A linear-head model ignores tokens and
// needs K = its head's classes. progress: a bar on stdout. out may
// be NULL.
int evaluate(XClip *m, Graph *g, Loader *ld, int64_t n_videos, const int32_t *tokens, int K, int64_t S, int chunk,
             bool progress, EvalResult *res, EvalOutput *out, XcError *err);
// CLIP without X-CLIP's modules (clip_video_logits: frame features averaged) against text_features (K, E),
// normalised: the zero-shot "CLIP + mean pooling" baseline. T frames per clip.
int evaluate_clip(const Clip *m, const float *text_features, int64_t T, Graph *g, Loader *ld, int64_t n_videos, int K,
                  int chunk, bool progress, EvalResult *res, EvalOutput *out, XcError *err);
// The pass itself, for any model: fn turns nc clips (nc, T, 3, H, H) into logits (nc, K) on g (no grad mode).
typedef Tensor *(*EvalLogitsFn)(void *ctx, Graph *g, Tensor *clips);
int evaluate_logits(EvalLogitsFn fn, void *ctx, int64_t T, int64_t H, Graph *g, Loader *ld, int64_t n_videos, int K,
                    int chunk, bool progress, EvalResult *res, EvalOutput *out, XcError *err);
void eval_output_free(EvalOutput *o);
