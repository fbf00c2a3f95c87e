// clip.h - CLIP's image and text towers (docs/model.md §1-§2, §7) with the official parameter names, and
// loading a ParamStore from a WeightSet by name.
//
//   WeightSet ws = {0};
//   if (weights_load(&ws, "ViT-B-32.pt", &err) != XC_OK) ...
//   ClipConfig cfg;
//   if (clip_config_from_weights(&cfg, &ws, &err) != XC_OK) ...   // architecture read off the file
//   ParamStore ps; param_store_init(&ps, "params");
//   Clip clip; clip_init(&clip, &ps, &cfg, true /* freeze the text tower */);
//   if (params_load(&ps, &ws, NULL, &err) != XC_OK) ...           // missing / unexpected / mis-shaped by name
//   Tensor *img = clip_encode_image(g, &clip, images);             // images (F, 3, H, W) -> (F, E)
//   Tensor *txt = clip_encode_text(g, &clip.text, tokens, K, S, true); // tokens (K, S) int32 -> (K, E)
#pragma once
#include "nn/layers.h"
#include "checkpoints/weights.h"

#define CLIP_MAX_LAYERS 64

typedef struct ClipConfig {
    int64_t vision_width;    // W (conv1 out channels)
    int64_t vision_layers;
    int64_t vision_heads;    // W / 64
    int64_t vision_mlp;      // c_fc out features (4W in CLIP)
    int64_t patch;           // P
    int64_t image_size;      // H = W (pixels)
    int64_t embed_dim;       // E
    int64_t text_width;      // D
    int64_t text_layers;
    int64_t text_heads;      // D / 64
    int64_t text_mlp;
    int64_t context;         // S
    int64_t vocab;
} ClipConfig;

typedef struct ClipVision {
    Tensor *conv1;                // (W, 3, P, P)
    Tensor *class_embedding;      // (W)
    Tensor *positional_embedding; // (L, W), L = N + 1
    Tensor *proj;                 // (W, E), used as x @ proj
    LayerNorm ln_pre, ln_post;
    int64_t layers;
    ResBlock blocks[CLIP_MAX_LAYERS];
} ClipVision;

typedef struct ClipText {
    Tensor *token_embedding;      // (vocab, D)
    Tensor *positional_embedding; // (S, D)
    Tensor *text_projection;      // (D, E), used as x @ text_projection
    LayerNorm ln_final;
    int64_t layers;
    ResBlock blocks[CLIP_MAX_LAYERS];
} ClipText;

typedef struct Clip {
    ClipConfig cfg;
    ClipVision visual;
    ClipText text;
    Tensor *logit_scale;          // scalar
} Clip;

// Reads the architecture off a CLIP-shaped weight set (docs/model.md §7); names what is missing or odd.
int clip_config_from_weights(ClipConfig *cfg, const WeightSet *ws, XcError *err);
// The vision tower's sizes only (E from visual.proj; text fields 0): weights without a text tower.
int clip_vision_config_from_weights(ClipConfig *cfg, const WeightSet *ws, XcError *err);
// Registers every CLIP parameter (zero-initialised) in ps. With freeze_text, the text tower and
// logit_scale are frozen (no gradient buffers).
void clip_init(Clip *m, ParamStore *ps, const ClipConfig *cfg, bool freeze_text);
// registration helpers shared with the X-CLIP model
void clip_vision_init_stem(ClipVision *v, ParamStore *ps, const ClipConfig *cfg);
void clip_text_init(ClipText *t, ParamStore *ps, const ClipConfig *cfg, bool freeze);

// CLIP's own random initialisation (openai/CLIP initialize_parameters; conv1 as nn.Conv2d's default), from
// rng_substream(seed, RNG_STREAM_INIT, 1, 0): training from scratch.
void clip_init_random(Clip *m, uint64_t seed);
// The same on towers held elsewhere (X-CLIP keeps the vision ResBlocks inside its own blocks): vision_blocks
// lists the c->vision_layers blocks of the vision tower. t NULL: no text tower (and no logit_scale); the vision
// tower's numbers are the same.
void clip_init_random_towers(ClipVision *v, ResBlock *const *vision_blocks, ClipText *t, Tensor *logit_scale,
                             const ClipConfig *c, uint64_t seed);

// Normalised text features (K, E) of K token rows (K, S), in a new array (no gradient; g is reset after).
float *clip_text_features(const Clip *m, Graph *g, const int32_t *tokens, int64_t K);
// CLIP's prompt ensemble on normalised features f (K*M, E) (class k's rows k*M .. k*M+M-1): rows 0..K-1 become each
// class's mean over its M rows, normalised again (openai/CLIP zeroshot_classifier).
void clip_text_ensemble(float *f, int64_t K, int64_t M, int64_t E);
// CLIP on videos without X-CLIP's modules ("CLIP + mean pooling", the zero-shot baseline): video (B, T, 3, H, W)
// -> frame features averaged over T, normalised, against text_features (K, E) (normalised) -> logits (B, K)
// scaled by exp(logit_scale).
Tensor *clip_video_logits(Graph *g, const Clip *m, Tensor *video, const float *text_features, int64_t K);

// images (F, 3, H, W) -> (F, E): ln_post(class token) @ proj.
Tensor *clip_encode_image(Graph *g, const Clip *m, Tensor *images);
// Patch tokens + class token + positional embedding + ln_pre: images (F, 3, H, W) -> (F, L, W).
Tensor *clip_vision_stem(Graph *g, const ClipVision *v, Tensor *images);
// tokens (K, S) int32, EOT = the largest id of each row -> (K, E). With fast, the rows run in groups of similar
// length, each group only up to its longest EOT (the same result under the causal mask, to float rounding: the
// GEMMs' shapes differ); the rows come back in their own order. Without fast, all S positions of every row.
Tensor *clip_encode_text(Graph *g, const ClipText *t, const int32_t *tokens, int64_t K, int64_t S, bool fast);
// The same with CoOp context vectors ctx (N, D) (NULL: none): the token embeddings of positions 1..N (placeholder
// slots after the start-of-text token, see class_tokens_prompted) are replaced by ctx before the positional
// embedding is added; the EOT position is still the row's largest id.
Tensor *clip_encode_text_ctx(Graph *g, const ClipText *t, const int32_t *tokens, int64_t K, int64_t S, bool fast,
                             Tensor *ctx);

// Load every parameter of ps from ws by name. Parameters missing from ws are an error unless
// may_be_missing(name) says yes (they keep their values); tensors of ws that match no parameter are
// an error unless ignorable (see params_load_ignorable); a shape mismatch is always an error. The
// error lists up to 8 names of each kind.
typedef bool (*ParamFilter)(const char *name);
int params_load(ParamStore *ps, const WeightSet *ws, ParamFilter may_be_missing, XcError *err);
// Names of non-parameter entries found in CLIP checkpoints ("input_resolution", "context_length",
// "vocab_size", "attn_mask", "position_ids"...), which params_load passes over.
bool params_load_ignorable(const char *name);
// Copy every parameter into a WeightSet (official names), e.g. to save or export.
void params_to_weights(const ParamStore *ps, WeightSet *ws);
