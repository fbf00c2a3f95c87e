// xclip.h - the X-CLIP model (docs/model.md §3-§7): cross-frame communication transformer (message tokens),
// multi-frame integration transformer, video-specific prompt generator and the video-text logits,
// with the official parameter names.
//
//   XClipConfig cfg;
//   xclip_config_from_weights(&cfg, &ws, 8, false, &err); // CLIP or X-CLIP weights; T = 8 (no resampling)
//   XClip m; ParamStore ps; param_store_init(&ps, "params");
//   xclip_init(&m, &ps, &cfg);                             // registers every tensor; text frozen if fix_text
//   xclip_init_new_tensors(&m, seed);                      // docs/model.md §7 initialisation of the X-CLIP additions
//   params_load(&ps, &ws, xclip_is_new_tensor, &err);      // CLIP tensors by name (X-CLIP ones may be missing)
//   xclip_cache_text(&m, tokens, K, 77);                   // fix_text: text features once, no grad
//   XClipOut o = xclip_forward(g, &m, video, NULL, K, 77, &drop); // video (B, T, 3, H, W) -> o.logits (B, K)
//
// Layout: tokens batch-first, frame index = b*T + t (as the official code's B*T frames).
#pragma once
#include "nn/clip.h"

#define XCLIP_MAX_LAYERS CLIP_MAX_LAYERS

typedef struct XClipConfig {
    ClipConfig clip;
    int64_t frames;        // T
    int64_t mit_layers;    // default 1; 0 = no MIT (no mit.* tensors): video features = mean over T of the frames
    int64_t prompt_layers; // default 2; 0 = no prompt generator (no prompts_* tensors): class features = text
    float prompt_alpha;    // default 0.1
    float drop_path;       // default 0: largest rate, linear from 0 over the vision blocks
    bool fix_text;         // default true
    bool cct;              // default true: cross-frame communication (message tokens); false = CLIP's plain
                           // blocks per frame, no message_* tensors
    bool checkpoint;       // default false: recompute each vision block in backward (less memory, ~1/3 more compute)
} XClipConfig;

typedef struct CctBlock {
    ResBlock base;                  // ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj
    // the message_* tensors below are NULL without cct (cfg.cct false)
    Linear message_fc;              // (W, W) + bias
    LayerNorm message_ln;
    MultiheadAttention message_attn;
    float drop_path;                // this block's rate
} CctBlock;

typedef struct PromptLayer {
    Linear q_proj, k_proj, v_proj;  // cross_attn.{q,k,v}_proj (E, E), no bias
    Linear proj;                    // cross_attn.proj (E, E) + bias
    LayerNorm norm1, norm3;
    Linear fc1, fc2;                // mlp.0 (4E, E), mlp.3 (E, 4E)
    int heads;
} PromptLayer;

typedef struct XClip {
    XClipConfig cfg;
    ClipVision visual;              // conv1, class/positional embedding, ln_pre, ln_post, proj (blocks unused)
    CctBlock blocks[XCLIP_MAX_LAYERS];
    Tensor *mit_positional_embedding; // (1, T, E); NULL with mit_layers 0
    ResBlock mit[XCLIP_MAX_LAYERS];
    // prompt generator: prompts_norm .. prompts_visual_proj are NULL with prompt_layers 0
    LayerNorm prompts_norm;         // prompts_generator.norm
    PromptLayer prompts[XCLIP_MAX_LAYERS];
    Tensor *prompts_alpha;          // (E)
    LayerNorm prompts_visual_ln;    // (W)
    Tensor *prompts_visual_proj;    // (W, E)
    ClipText text;
    Tensor *logit_scale;            // scalar
    float *text_cache;              // (K, E) cached text features (fix_text), owned
    int64_t text_cache_k;
} XClip;

// Defaults of docs/model.md §7 on top of a CLIP config.
XClipConfig xclip_config_default(const ClipConfig *clip, int64_t frames);
// Reads the architecture off CLIP or X-CLIP weights. For X-CLIP weights T comes from
// mit.positional_embedding and must equal `frames` unless interpolate_frames (then the embedding is
// resampled when loading, see xclip_adapt_weights); for CLIP weights, and X-CLIP weights without MIT, T = frames.
// The ablations are read off the tensors present: cct from message_*, mit_layers from mit.* (0 when absent),
// prompt_layers from prompts_generator.decoder.* (0 when absent). Weights of cct off, MIT 0 and prompts 0
// hold CLIP's tensors only: they are CLIP weights (and that model computes CLIP + mean pooling).
int xclip_config_from_weights(XClipConfig *cfg, const WeightSet *ws, int64_t frames, bool interpolate_frames,
                              XcError *err);
// True if ws holds X-CLIP (not just CLIP) tensors: any name xclip_is_new_tensor accepts.
bool xclip_weights_are_xclip(const WeightSet *ws);
// Resample mit.positional_embedding of ws (1, T0, E) to (1, T, E) by linear interpolation
// (F.interpolate mode 'linear', align_corners False). No-op when T0 == T.
int xclip_adapt_weights(WeightSet *ws, int64_t frames, XcError *err);

void xclip_init(XClip *m, ParamStore *ps, const XClipConfig *cfg);
void xclip_free(XClip *m);
// docs/model.md §7 initialisation of the tensors X-CLIP adds to CLIP, from rng_stream(seed, RNG_STREAM_INIT).
void xclip_init_new_tensors(XClip *m, uint64_t seed);
// CLIP's own random initialisation (training from scratch: pretrained = none).
void xclip_init_clip_random(XClip *m, uint64_t seed);
// A tensor X-CLIP adds to CLIP? (name contains message_, mit or prompts: the official optimiser's rule.) The one
// rule for the params_load filter (a CLIP checkpoint lacks them) and the 10x learning-rate group.
bool xclip_is_new_tensor(const char *name);
// Trained under fix_text? (visual.* and the new tensors) - the official fix_text rule.
bool xclip_trains_under_fix_text(const char *name);
// A text-tower tensor (token_embedding, positional_embedding, transformer.*, ln_final, text_projection)?
// Under fix_text, once xclip_cache_text has run, these are only read again by exports and snapshots:
// param_store_spill(ps, xclip_is_text_tensor, dir, ...) moves them out of memory.
bool xclip_is_text_tensor(const char *name);

// Text features of K token rows (K, S) computed once without gradient (fast path) and kept; always with
// float32 matmuls (a graph of its own, without the caller's Gemm context).
void xclip_cache_text(XClip *m, const int32_t *tokens, int64_t K, int64_t S);
// Video features and logits. The class text features: with fix_text, or when tokens is NULL, the cached ones
// (xclip_cache_text first; an evaluation of a model whose text tower trains caches its current features and
// passes NULL); otherwise tokens (K, S) run through the text tower with gradient. drop is the drop-path stream (NULL: eval, no
// drop-path). Outputs are step tensors; video_features / text_features may be NULL.
typedef struct XClipOut {
    Tensor *logits;          // (B, K)
    Tensor *video_features;  // (B, E) MIT output (mit_layers 0: the frames' mean) before normalisation
    Tensor *text_features;   // (K, E) text tower output before prompts
} XClipOut;
XClipOut xclip_forward(Graph *g, const XClip *m, Tensor *video, const int32_t *tokens, int64_t K, int64_t S, Rng *drop);
