// pretrain.h - CLIP's contrastive pretraining (docs/model.md §13) as a task of the shared run loop
// (train/run.h), behind `xclip-pretrain CONFIG`: both towers from random initialisation, trained on a list of
// captioned images (data/captions.h; the world of `xclip-synth world` writes one), with the same snapshots,
// --resume, signals, logs and metrics as xclip-train. The output is CLIP weights under OpenAI's state-dict
// names (best.safetensors, last.safetensors in output.dir) that model.pretrained takes like any CLIP checkpoint.
//
//   TrainConfig c; config_load(&c, "configs/pretrain_world.ini", &err);
//   if (config_check(&c, CONFIG_FOR_PRETRAIN, &err) != XC_OK) ...;
//   int rc = pretrain_run(&c, &(TrainRunOptions){0}, &err);          // RUN_EXIT_STOPPED after SIGINT / SIGTERM
//
// The config's keys (configs/README.md): data.train_list / data.root (caption list, .tar or folder of PPM images),
// data.val_list / data.val_root (held-out pairs: the validation score that picks best.safetensors is the
// image -> caption top-1 within chunks of train.batch_size pairs), data.probe_dir (the world's probe images:
// zero-shot accuracy per attribute, reported at every evaluation and at the end), model.* (custom sizes:
// vision_width, vision_layers, patch, embed_dim, text_width, text_layers, context), train.* as for xclip-train.
// Images are normalised with the statistics of the video pipeline (docs/model.md §8.4), so that the weights
// carry over to X-CLIP fine-tuning on the same kind of pixels.
#pragma once
#include "data/tokenizer.h"
#include "nn/clip.h"
#include "train/config.h"
#include "train/run.h"

int pretrain_run(const TrainConfig *c, const TrainRunOptions *o, XcError *err);

// Zero-shot classification of the probe images of a world (dir: images/ of `xclip-synth world`): for each
// attribute (colour, shape, size, position, and the 64 colour-shape combinations, seen and unseen ones apart)
// the images' CLIP features are compared with the features of the attribute's class names (<attr>.csv,
// template "{}"), top-1 accuracy in % against chance. g: a graph (its gemm sets the precision). With several
// ranks (train/dist.h) every rank calls it: each encodes a share of the images and receives the others'.
typedef struct ZeroShotResult {
    double colour, shape, size, position;   // % top-1 (chance 12.5, 12.5, 50, 11.1)
    double combo_seen, combo_unseen;        // % top-1 among all 64 combinations, on seen / unseen ones (chance 1.6)
    int64_t images;                         // probe images classified
} ZeroShotResult;
int clip_zero_shot_probe(const Clip *m, Graph *g, Tokenizer *tok, const char *dir, ZeroShotResult *res, XcError *err);
