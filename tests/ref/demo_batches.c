// demo_batches.c - what xclip-train would train on, for tests/ref/bf16_scratch.py: the same initial weights,
// class-text tokens, validation clips and training batches, produced by the trainer's own code (model_build,
// class_texts, the train and test loaders), so that PyTorch trains the same model on the same inputs.
//
//   build/ref_demo_batches CONFIG OUTDIR [--set section.key=value]...
//
// Writes into OUTDIR (which must exist):
//   init.pth     the initial weights (random init from train.seed, or model.pretrained), official names, flat
//                state dict (torch.load(..., weights_only=True))
//   meta.txt     "K S T H B n_iter epochs n_val" (one line)
//   tokens.i32   (K, S) int32 class-text tokens
//   val.f32      (n_val, T, 3, H, H) float32: the single-view validation clips (test.num_clip x num_crop must be 1)
//   val.i32      (n_val) int32 labels
// then streams to stdout, for epoch 0..epochs-1 and batch 0..n_iter-1 in the order xclip-train uses them:
//   video (B, T, 3, H, H) float32, then targets (B, K) float32 (label smoothing / mixing applied).
// Streaming keeps 30 epochs of the demo (1.5 GB) off the disk. A test-support program, not installed.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoints/weights.h"
#include "nn/clip.h"
#include "train/config.h"
#include "train/setup.h"

static int fail(const char *msg) {
    fprintf(stderr, "ref_demo_batches: %s\n", msg);
    return 1;
}

static int write_file(const char *dir, const char *name, const void *p, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "ref_demo_batches: %s: cannot create\n", path);
        return 1;
    }
    int bad = bytes && fwrite(p, 1, bytes, f) != bytes;
    bad |= fclose(f) != 0;
    if (bad) fprintf(stderr, "ref_demo_batches: %s: write failed\n", path);
    return bad;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ref_demo_batches CONFIG OUTDIR [--set section.key=value]...\n");
        return 2;
    }
    const char *outdir = argv[2];
    XcError err = {0};
    TrainConfig c;
    if (config_load(&c, argv[1], &err) != XC_OK) return fail(err.msg);
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--set") || i + 1 >= argc) return fail("expected --set section.key=value");
        if (config_set(&c, argv[++i], &err) != XC_OK) return fail(err.msg);
    }
    if (config_check(&c, CONFIG_FOR_TRAIN, &err) != XC_OK) return fail(err.msg);
    if (c.num_clip != 1 || c.num_crop != 1) return fail("test.num_clip and test.num_crop must be 1");

    LabelSet labels;
    if (labels_load(c.labels, &labels, &err) != XC_OK) return fail(err.msg);
    const int K = labels.count;
    Tokenizer *tok = tokenizer_load(c.vocab, &err);
    if (!tok) return fail(err.msg);
    XClip m;
    ParamStore ps;
    TrainConfig ck = c;
    ck.num_classes = K;
    if (model_build(&m, &ps, &ck, NULL, NULL, &err) != XC_OK) return fail(err.msg);
    const int64_t S = m.cfg.clip.context, T = c.frames, H = c.input_size;
    ClassTexts ct;
    if (class_texts(tok, &labels, &c, m.cfg.context_tokens, S, &ct, &err) != XC_OK) return fail(err.msg);
    if (ct.M != 1) return fail("one text per class expected (no data.templates)");

    // the initial weights, exactly as the trainer's first step sees them
    WeightSet ws = {0};
    params_to_weights(&ps, &ws);
    char path[4096];
    snprintf(path, sizeof path, "%s/init.pth", outdir);
    if (weights_save_torch(&ws, path, false, &err) != XC_OK) return fail(err.msg);
    weights_free(&ws);
    if (write_file(outdir, "tokens.i32", ct.tokens, sizeof(int32_t) * (size_t)(K * S))) return 1;

    Dataset *train = dataset_open(c.train_list, c.root, K, &err);
    Dataset *val = train ? dataset_open(c.val_list, *c.val_root ? c.val_root : c.root, K, &err) : NULL;
    if (!val) return fail(err.msg);

    // validation: the single-view test pipeline of the periodic evaluation
    const size_t clip_floats = (size_t)(T * 3 * H * H);
    float *vv = malloc(sizeof(float) * clip_floats * (size_t)val->n);
    int32_t *vl = malloc(sizeof(int32_t) * (size_t)val->n);
    LoaderConfig lt = loader_config_test(&c, 1, 1, c.test_batch_size);
    Loader *ld = loader_create(val, &lt, &err);
    if (!ld || !vv || !vl) return fail(ld ? "out of memory" : err.msg);
    int64_t n_val = 0;
    for (;;) {
        const Batch *b;
        int rc = loader_next(ld, &b, &err);
        if (rc < 0) return fail(err.msg);
        if (rc == 0) break;
        for (int i = 0; i < b->B && n_val < val->n; i++, n_val++) {
            memcpy(vv + (size_t)n_val * clip_floats, b->video + (size_t)i * clip_floats, sizeof(float) * clip_floats);
            vl[n_val] = b->labels[i];
        }
    }
    loader_free(ld);
    if (write_file(outdir, "val.f32", vv, sizeof(float) * clip_floats * (size_t)n_val) ||
        write_file(outdir, "val.i32", vl, sizeof(int32_t) * (size_t)n_val))
        return 1;

    LoaderConfig lc = loader_config_train(&c, K);
    ld = loader_create(train, &lc, &err);
    if (!ld) return fail(err.msg);
    const int64_t n_iter = loader_epoch_batches(ld);
    char meta[256];
    int len = snprintf(meta, sizeof meta, "%d %lld %lld %lld %d %lld %d %lld\n", K, (long long)S, (long long)T,
                       (long long)H, c.batch_size, (long long)n_iter, c.epochs, (long long)n_val);
    if (write_file(outdir, "meta.txt", meta, (size_t)len)) return 1;

    for (int e = 0; e < c.epochs; e++) {
        for (int64_t i = 0;; i++) {
            const Batch *b;
            int rc = loader_next(ld, &b, &err);
            if (rc < 0) return fail(err.msg);
            if (rc == 0) {
                if (i != n_iter) return fail("an epoch ended early");
                break;
            }
            if (b->B != c.batch_size || !b->targets) return fail("unexpected batch");
            if (fwrite(b->video, sizeof(float), clip_floats * (size_t)b->B, stdout) != clip_floats * (size_t)b->B ||
                fwrite(b->targets, sizeof(float), (size_t)(b->B * K), stdout) != (size_t)(b->B * K))
                return 0; // the reader stopped early (a shortened run): not an error
        }
    }
    fflush(stdout);
    loader_free(ld);
    dataset_free(train);
    dataset_free(val);
    free(vv);
    free(vl);
    xc_free(ct.tokens);
    xclip_free(&m);
    param_store_free(&ps);
    tokenizer_free(tok);
    labels_free(&labels);
    return 0;
}
