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

// Where the class scores come from (model.head): X-CLIP's video-text logits, or a linear classifier on the
// video features (tensors head.weight (K, E), head.bias (K); no text tower, no logit_scale, no prompt generator).
typedef enum { XCLIP_HEAD_TEXT, XCLIP_HEAD_LINEAR } XClipHead;

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
    XClipHead head;        // default XCLIP_HEAD_TEXT
    int64_t num_classes;   // K of head.weight (XCLIP_HEAD_LINEAR only)
    bool fix_vision;       // default false: freeze visual.* and the vision-side additions (message_*, mit*, prompts_*)
    int64_t context_tokens; // N CoOp context vectors prompt_learner.ctx (N, D) after SOT (default 0: none)
    int64_t templates;     // M: texts per class (data.templates), ensembled as CLIP does (default 0: one text, as is)
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
    Tensor *logit_scale;            // scalar (XCLIP_HEAD_TEXT only)
    Linear head;                    // head.weight (K, E), head.bias (K) (XCLIP_HEAD_LINEAR only)
    Tensor *prompt_ctx;             // (N, D) prompt_learner.ctx, NULL without context_tokens
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
// head.weight makes a linear-head model (K from its shape; such a checkpoint has no text tower).
int xclip_config_from_weights(XClipConfig *cfg, const WeightSet *ws, int64_t frames, bool interpolate_frames,
                              XcError *err);
// True if ws holds X-CLIP (not just CLIP) tensors: any name xclip_is_new_tensor accepts.
bool xclip_weights_are_xclip(const WeightSet *ws);
// Architecture checks of a config (xclip_init dies on them): the linear head refuses prompt layers and needs K.
int xclip_config_check(const XClipConfig *cfg, XcError *err);
// Does anything train? (fix_text and fix_vision both set leave only the linear head or CoOp's context vectors.)
bool xclip_something_trains(const XClipConfig *cfg);
// Linear head: drop the tensors a linear-head model does not have (text tower, logit_scale, prompt generator) from
// CLIP or X-CLIP weights before params_load. No-op for the text head.
void xclip_drop_unused_weights(WeightSet *ws, const XClipConfig *cfg);
// Resample mit.positional_embedding of ws (1, T0, E) to (1, T, E) by linear interpolation
// (F.interpolate mode 'linear', align_corners False). No-op when T0 == T.
int xclip_adapt_weights(WeightSet *ws, int64_t frames, XcError *err);

void xclip_init(XClip *m, ParamStore *ps, const XClipConfig *cfg);
void xclip_free(XClip *m);
// docs/model.md §7 initialisation of the tensors X-CLIP adds to CLIP, from rng_stream(seed, RNG_STREAM_INIT); the
// linear head last (PyTorch's default nn.Linear init), after everything the text head draws.
void xclip_init_new_tensors(XClip *m, uint64_t seed);
// CoOp's initialisation of prompt_learner.ctx: N(0, 0.02) from its own sub-stream of the init stream (so the
// other tensors' draws are the same with and without it). Part of xclip_init_new_tensors; called alone when the
// context vectors are new on top of X-CLIP weights. No-op without context_tokens.
void xclip_init_context(XClip *m, uint64_t seed);
// CLIP's own random initialisation (training from scratch: pretrained = none).
void xclip_init_clip_random(XClip *m, uint64_t seed);
// A tensor X-CLIP adds to CLIP? (name contains message_, mit or prompts: the official optimiser's rule; and the
// linear head head.* and CoOp's prompt_learner.ctx.) The one rule for the params_load filter (a CLIP checkpoint
// lacks them) and the 10x learning-rate group.
bool xclip_is_new_tensor(const char *name);
// Trained under fix_text? (visual.* and the new tensors) - the official fix_text rule.
bool xclip_trains_under_fix_text(const char *name);
// A text-tower tensor (token_embedding, positional_embedding, transformer.*, ln_final, text_projection)?
// Under fix_text, once xclip_cache_text has run, these are only read again by exports and snapshots:
// param_store_spill(ps, xclip_is_text_tensor, dir, ...) moves them out of memory.
bool xclip_is_text_tensor(const char *name);
// A tensor of the vision branch, frozen by fix_vision? (visual.* and the additions message_*, mit*, prompts_*:
// "the new modules follow vision"; not head.*.)
bool xclip_is_vision_tensor(const char *name);

// Class text features (K, E) with gradient: the K*M token rows (K*M, S) (M = cfg.templates, at least 1; class k's
// rows are k*M .. k*M+M-1) through the text tower, with the context vectors when cfg.context_tokens > 0; with
// templates, CLIP's ensemble (each row's features L2-normalised, averaged over the M rows, normalised again).
Tensor *xclip_text_features(Graph *g, const XClip *m, const int32_t *tokens, int64_t K, int64_t S);
// Text features of K classes' token rows (K*M, S) computed once without gradient (fast path) and kept; always with
// float32 matmuls (a graph of its own, without the caller's Gemm context).
void xclip_cache_text(XClip *m, const int32_t *tokens, int64_t K, int64_t S);
// The same cache from features (K, E) computed earlier by xclip_cache_text on this model (e.g. kept on disk,
// nn/text_cache.h); copied.
void xclip_set_text_cache(XClip *m, const float *features, int64_t K);
// Video features and logits. Linear head: logits = head(video features); tokens, K and S are ignored (no text).
// Text head: the class text features: with fix_text (and no context vectors, which train through the frozen tower
// and so are run every step), or when tokens is NULL, the cached ones
// (xclip_cache_text first; an evaluation of a model whose text tower trains caches its current features and
// passes NULL); otherwise tokens (K*M, S) run through the text tower with gradient (xclip_text_features). drop is the drop-path stream (NULL: eval, no
// drop-path). Outputs are step tensors; video_features / text_features may be NULL.
typedef struct XClipOut {
    Tensor *logits;          // (B, K)
    Tensor *video_features;  // (B, E) MIT output (mit_layers 0: the frames' mean) before normalisation
    Tensor *text_features;   // (K, E) text tower output before prompts
} XClipOut;
XClipOut xclip_forward(Graph *g, const XClip *m, Tensor *video, const int32_t *tokens, int64_t K, int64_t S, Rng *drop);
