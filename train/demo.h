// demo.h - the built-in default job: a small video transformer trained on generated clips.
//
// Each clip is T frames of S x S pixels: a red or blue square moving in one of four directions over a
// noisy background. The class is the direction, so the model must use temporal order; the colour is
// a distractor that changes nothing. The model is a miniature of X-CLIP's video tower built from the same
// blocks: patch embedding, class token, positional embedding, ln_pre, residual blocks per frame,
// ln_post, then a temporal block over the T frame features, mean over T and a linear classifier.
//
//   DemoConfig cfg = demo_default_config();
//   Demo d; demo_init(&d, &cfg);
//   for (int s = 0; s < cfg.steps; s++) { float loss = demo_train_step(&d, s); }
//   double acc = demo_evaluate(&d, 256);
//   demo_free(&d);
#pragma once
#include "nn/layers.h"
#include "optim/adamw.h"

typedef struct DemoConfig {
    int frames;      // T
    int size;        // S (pixels), a multiple of patch
    int patch;       // P
    int width;       // W
    int heads;
    int layers;      // spatial blocks
    int classes;     // 4: right, left, down, up
    int batch;
    int steps;
    float lr;        // peak learning rate (warm-up over the first 10% of steps, then cosine)
    float smoothing; // label smoothing
    uint64_t seed;
} DemoConfig;

typedef struct Demo {
    DemoConfig cfg;
    ParamStore ps;
    Graph g;
    AdamW opt;
    Tensor *conv1, *class_embedding, *positional_embedding, *temporal_embedding;
    LayerNorm ln_pre, ln_post;
    ResBlock *blocks;   // cfg.layers
    ResBlock temporal;
    Linear head;
    Rng data;           // training clip stream
} Demo;

DemoConfig demo_default_config(void);
void demo_init(Demo *d, const DemoConfig *cfg);
void demo_free(Demo *d);
// One training step on a fresh batch (forward, loss, backward, AdamW); returns the loss.
float demo_train_step(Demo *d, int step);
// Top-1 accuracy on n clips of a fixed validation stream (no-grad).
double demo_evaluate(Demo *d, int n);
// Writes clip (T, 3, S, S) of class `label` (normalised pixels) from stream r.
void demo_make_clip(const DemoConfig *cfg, Rng *r, int label, float *clip);
