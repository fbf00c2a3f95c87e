// setup.h - what the programs build from a run configuration: the model (from CLIP or X-CLIP weights, or at
// random), the class-text tokens, and the loader settings of the train and test pipelines. xclip-train,
// xclip-eval and xclip-infer all start here.
//
//   TrainConfig c; config_load(&c, "configs/demo.ini", &err);
//   XClip m; ParamStore ps;
//   if (model_build(&m, &ps, &c, NULL, NULL, &err) != XC_OK) ...;    // c.pretrained (or "none": random)
//   ClassTexts ct;                                                   // data.template(s), CoOp slots
//   if (class_texts(tok, &labels, &c, m.cfg.context_tokens, m.cfg.clip.context, &ct, &err) != XC_OK) ...;
//   m.cfg.templates = ct.templates;                                  // ct.tokens (K*M, S), ensembled by the model
//   LoaderConfig lc = loader_config_test(&c, c.num_clip, c.num_crop, c.test_batch_size);
//   ... xclip_free(&m); param_store_free(&ps); xc_free(ct.tokens);
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "data/dataset.h"
#include "data/loader.h"
#include "data/templates.h"
#include "data/tokenizer.h"
#include "nn/xclip.h"
#include "train/config.h"

// Tokens (K, S) of the class texts (template with {} replaced by each name). Returns a new array.
int32_t *class_tokens(Tokenizer *tok, const LabelSet *labels, const char *template_, int64_t S);

// Class texts cut to fit the context: how many, the first one's class and the ids it had room for.
typedef struct PromptCut {
    int count;
    int class_index;
    int64_t room;
} PromptCut;
// Tokens (K*M, S) of K classes under M templates (class k's rows k*M .. k*M+M-1), each row laid out for N CoOp
// context vectors: [SOT] [N placeholder slots] [class text ids] [EOT] [0...] (N = 0: class_tokens' rows). A class
// text longer than S-2-N ids is cut (its start kept) and counted in *cut (may be NULL). Returns a new array.
int32_t *class_tokens_prompted(Tokenizer *tok, const LabelSet *labels, const char *const *templates, int M, int64_t N,
                               int64_t S, PromptCut *cut);

// A run's class texts in an S-token context: data.templates (M templates, to be ensembled) or data.template
// (M = 1), with N CoOp slots (the model's context_tokens; refused with data.templates). The caller sets
// XClipConfig.templates = out->templates, says what out->cut counted (a warning) and frees out->tokens.
typedef struct ClassTexts {
    int32_t *tokens;   // (K*M, S)
    int64_t K, M;
    int64_t templates; // M from data.templates, 0 for data.template alone (XClipConfig.templates)
    PromptCut cut;
} ClassTexts;
int class_texts(Tokenizer *tok, const LabelSet *labels, const TrainConfig *c, int64_t N, int64_t S, ClassTexts *out,
                XcError *err);
// The model a config describes: weights from `weights` (CLIP or X-CLIP; NULL: c->pretrained, which may be
// "none" for random initialisation from c->seed), frames c->frames, fix_text / fix_vision / drop_path from c. For
// CLIP weights the X-CLIP additions are initialised as docs/model.md §7 says, from c->seed; model.head = linear
// takes K from c->num_classes (set it from the label file) and leaves CLIP's text tower unloaded. X-CLIP weights
// bring their own head (head.weight: linear); as model.pretrained it must be model.head's. *is_xclip (may be
// NULL) says which kind was loaded. XC_ERR + a message naming the file or the key.
int model_build(XClip *m, ParamStore *ps, const TrainConfig *c, const char *weights, bool *is_xclip, XcError *err);
// model_build(m, ps, c, path, ...) on weights already read from path (a program that looks at them first, as
// xclip-eval does to choose between X-CLIP and plain CLIP, reads the file once). ws is changed (tensors the model
// does not load dropped) and stays the caller's to free.
int model_build_from_weights(XClip *m, ParamStore *ps, const TrainConfig *c, WeightSet *ws, const char *path,
                             XcError *err);
// The checks model_build makes of weights read from path against c (architecture, input size, frames), without
// building anything: for a program that builds something else from them (xclip-eval: a plain CLIP).
int model_check_weights(const TrainConfig *c, WeightSet *ws, const char *path, XcError *err);
// A plain CLIP from a checkpoint (any format; architecture read off it), the text tower frozen. XC_ERR + a message
// naming the file. clip_model_from_weights: the same from weights already read from path.
int clip_model_load(Clip *m, ParamStore *ps, const char *path, XcError *err);
int clip_model_from_weights(Clip *m, ParamStore *ps, const WeightSet *ws, const char *path, XcError *err);
// Loader configuration of the train / test pipeline from c.
LoaderConfig loader_config_train(const TrainConfig *c, int num_classes);
LoaderConfig loader_config_test(const TrainConfig *c, int num_clip, int num_crop, int batch);
