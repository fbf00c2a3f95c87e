// config.h - run configuration: INI files with sections [data] [model] [train] [aug] [test] [output]
// (docs/model.md §8-§10), command-line overrides, validation and the effective config of a run.
//
//   TrainConfig c;
//   XcError err;
//   if (config_load(&c, "configs/k400_8f.ini", &err)) ...            // defaults, then the file
//   if (config_set(&c, "train.lr=1e-5", &err)) ...                      // --set section.key=value
//   if (config_check(&c, CONFIG_FOR_TRAIN, &err)) ...                  // names every key still to set
//   config_write(&c, stdout);                                           // every key, with its meaning
//
// Syntax: `[section]` lines, `key = value` lines, comments from `#` or `;` at the start of a line or after
// whitespace; blank lines ignored; values may be quoted with "..." to keep leading/trailing blanks or '#'.
// Unknown sections and keys, values of the wrong type or out of range, and a key given twice in one file are
// errors reported as "file:line: ...". Every key, its default and its meaning are in one table (config.c,
// printed by `xclip-train --keys` and copied into configs/README.md).
//
// Paths. Input paths written in a config file (lists, root, labels, vocabulary, checkpoints) are relative to
// the directory of that file; those given with --set or left at their default are relative to the current
// directory. The output directory is always relative to the current directory. config_write prints the
// resolved (absolute when resolvable) paths, so the effective config of a run can be reused from anywhere.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "autograd/kernels.h"
#include "autograd/util.h"
#include "data/sampling.h"
#include "data/video.h"
#include "nn/xclip.h"

#define CONFIG_PATH_MAX 1024

// Enumerated settings are parsed once into these (or into the enum of the module they configure:
// VideoScale, MatmulPrecision, SampleViews); the values follow the order of the key's choices in config.c.
typedef enum { ARCH_VIT_B32, ARCH_VIT_B16, ARCH_VIT_L14, ARCH_VIT_L14_336, ARCH_CUSTOM } ConfigArch;
typedef enum { FUSED_ADAMW_AUTO, FUSED_ADAMW_ON, FUSED_ADAMW_OFF } ConfigFusedAdamw;
typedef enum { PROGRESS_AUTO, PROGRESS_ON, PROGRESS_OFF } ConfigProgress;

typedef struct TrainConfig {
    // [data]
    char root[CONFIG_PATH_MAX];         // folder or .tar of the training videos
    char val_root[CONFIG_PATH_MAX];     // folder or .tar of the validation videos ("" = root)
    char train_list[CONFIG_PATH_MAX];
    char val_list[CONFIG_PATH_MAX];
    char labels[CONFIG_PATH_MAX];       // CSV id,name
    char vocab[CONFIG_PATH_MAX];        // CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz)
    char template_[256];                // text of class c = template with "{}" replaced by the class name
    char templates[CONFIG_PATH_MAX];    // file of templates, one per line, ensembled ("" = data.template alone)
    int num_classes;                    // K; 0 = from the label file
    int frames;                         // T
    int input_size;                     // H = W
    int workers;                        // loader threads
    int shots;                          // few-shot: K videos per class drawn from train_list (0 = whole list)
    int64_t shot_seed;
    VideoScale resize;                  // ref (mmcv geometry) or sws (swscale, faster)
    double max_bad_fraction;
    char probe_dir[CONFIG_PATH_MAX];    // xclip-pretrain: a world's probe images (zero-shot per attribute), "" = none
    // [model]
    char pretrained[CONFIG_PATH_MAX];   // CLIP or X-CLIP weights, or "none" (random initialisation)
    ConfigArch arch;                    // ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14-336, custom (config_arch_name)
    int vision_width, vision_layers, patch, embed_dim, text_width, text_layers, context, vocab_size; // custom
    int mit_layers, prompt_layers;      // 0 = no multi-frame integration transformer / no prompt generator
    bool cct;                           // model.cct: cross-frame communication (message tokens); false = CLIP's blocks
    int context_tokens;                 // N CoOp context vectors (0 = none)
    double prompt_alpha, drop_path;
    bool fix_text;
    XClipHead head;           // model.head: text (X-CLIP's video-text logits) or linear (a classifier on the video features)
    bool fix_vision;          // model.fix_vision: freeze visual.* and message_*, mit*, prompts_*
    bool interpolate_frames;
    bool checkpoint;          // model.checkpoint: recompute vision blocks in backward
    bool spill_text;          // model.spill_text: fix_text: frozen text tower to an unlinked file once cached
    // [train]
    int epochs;
    double warmup_epochs;
    double lr, min_lr_ratio, weight_decay, beta1, beta2, eps, new_lr_scale;
    int batch_size, accumulation_steps;
    ConfigFusedAdamw fused_adamw;       // auto, on or off: AdamW inside backward (config_fused_adamw)
    MatmulPrecision matmul;             // fp32 or bf16 (config_gemm_init)
    int64_t seed;
    int threads;                        // 0 = OMP_NUM_THREADS or all cores
    int eval_freq;                      // epochs between single-view evaluations (0 = none until the end)
    int64_t max_iters;                  // stop after this many loader batches (0 = the whole schedule)
    double bucket_mb;                   // data-parallel: gradient bucket size
    int check_ranks;                    // data-parallel: optimiser steps between parameter checksums (0: snapshots only)
    // [aug]
    double label_smooth, mixup, cutmix, mixup_switch_prob;
    double flip, color_jitter, gray_scale, brightness, contrast, saturation, hue;
    bool jitter_per_clip;
    // [test]
    int num_clip, num_crop;
    SampleViews view_mode;              // shifted or random
    int test_batch_size;
    int final_num_clip, final_num_crop; // final multi-view evaluation (0 clips = none)
    // [output]
    char dir[CONFIG_PATH_MAX];
    int print_freq;                     // iterations between log lines
    ConfigProgress progress;            // auto, on, off (config_progress_bar)
    bool save_best;                     // export best.safetensors
    int64_t snapshot_freq;              // iterations between snapshots (0 = epoch ends only)
    int keep_snapshots;
    double snapshot_min_seconds;        // epoch-end snapshots closer than this to the last one are skipped
    char source[CONFIG_PATH_MAX];       // the config file read (for messages), "" if none
} TrainConfig;

// Every key at its default.
void config_defaults(TrainConfig *c);
// Defaults, then the file. XC_ERR + "path:line: problem".
int config_load(TrainConfig *c, const char *path, XcError *err);
// One override "section.key=value" (paths relative to the current directory). XC_ERR + a message naming
// the override.
int config_set(TrainConfig *c, const char *assignment, XcError *err);

typedef enum ConfigUse {
    CONFIG_FOR_TRAIN,  // train + val lists, root(s), labels, vocabulary, pretrained weights
    CONFIG_FOR_EVAL,   // val list, val root, labels, vocabulary (the checkpoint is given separately)
} ConfigUse;
// Cross-key checks and existence of every input path the use needs. All the paths that are not set or not
// found are named in one message, one line each with what the key should hold, and a HINT with the --set of
// each. A relative data.vocab that does not exist from the current directory is looked for beside the
// program and in the source tree (xc_locate_file, autograd/runtime.h) and replaced by the path found; when
// it is nowhere, the message lists every place looked at.
int config_check(TrainConfig *c, ConfigUse use, XcError *err);

// The effective configuration as an INI file, each key with its meaning as a comment.
void config_write(const TrainConfig *c, FILE *f);
// Keys whose values differ between two effective-config texts (config_write's output, e.g. the run's and a
// snapshot's): their number, and "section.key = NOW (snapshot: THEN); ..." in out (n bytes, cut with "...").
int config_diff(const char *now, const char *then, char *out, size_t n);
// The value of section.key in an effective-config text (config_write's format) into v (n bytes); false if absent.
bool config_text_value(const char *text, const char *section, const char *key, char *v, size_t n);
// Markdown table of every key (section, key, default, meaning): configs/README.md's reference part.
void config_write_keys_markdown(FILE *f);
// Number of keys in the table and the i-th "section.key" (for tests).
int config_key_count(void);
const char *config_key_name(int i, char *buf, size_t n);

// The named architectures: fills the custom fields from arch (false: custom).
bool config_apply_arch(TrainConfig *c);
const char *config_arch_name(ConfigArch a);
// "none" (any case) = random initialisation.
bool config_pretrained_none(const TrainConfig *c);
// A Gemm context at train.matmul's precision (gemm_init); the error names the key.
int config_gemm_init(const TrainConfig *c, Gemm *mm, XcError *err);
// Is output.progress on (auto: when stdout is a terminal)?
bool config_progress_bar(const TrainConfig *c);
// Does training apply AdamW inside backward (train.fused_adamw on, or auto with accumulation_steps 1)?
bool config_fused_adamw(const TrainConfig *c);
