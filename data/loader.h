// loader.h - multi-threaded, deterministic batch loader over a Dataset (docs/model.md §8).
//
// Worker threads decode and augment whole clips into a bounded ring of prefetched batches, delivered in order.
// Every random decision of a sample comes from rng_substream(seed, RNG_STREAM_DATA, epoch, dataset index)
// (frame offsets, then tf_draw_train), the epoch order from rng_substream(seed, RNG_STREAM_ORDER, epoch, 0) and
// mixup/cutmix from rng_substream(seed, RNG_STREAM_MIX, epoch, batch index), so the batches are identical for
// any number of workers and after restoring a cursor.
//
//   LoaderConfig lc = loader_config_default(224, 8, 8);   // input size, T, batch size; train pipeline
//   lc.workers = 2;
//   Loader *ld = loader_create(ds, &lc, &err);
//   for (;;) {
//       const Batch *b;
//       int rc = loader_next(ld, &b, &err);   // 1: a batch, 0: end of the epoch, XC_ERR: too many bad videos
//       if (rc == 0) break;
//       if (rc < 0) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//       // b->video (B, T, 3, S, S), b->labels (B), b->targets (B, K) if mixing/smoothing is on
//   }
//   LoaderCursor cur = loader_cursor(ld);     // save with a checkpoint; loader_seek(ld, cur) resumes there
//   loader_free(ld);
//
// Bad videos (missing, empty, truncated, damaged, audio-only, undecodable) are reported once on stderr with the
// path and the reason, replaced when training by the next video of the epoch order that decodes (its own
// randomness is used, keyed by the replaced sample), left out in test mode (the sample's item -1 and label -1,
// its frames zeros: evaluation skips it), and counted; when more than max_bad_fraction of the dataset has failed,
// loader_next returns XC_ERR with a summary. loader_bad_videos lists them.
// Test mode: the list order, test sampling with `views` clips (SAMPLE_VIEWS_SHIFTED by default) and
// `tf.num_crop` crops: video (B, views*num_crop, T, 3, S, S) with view index = clip * num_crop + crop.
#pragma once
#include <stdint.h>
#include "data/dataset.h"
#include "data/mixup.h"
#include "data/sampling.h"
#include "data/transforms.h"
#include "data/video.h"

typedef struct LoaderConfig {
    int train;                 // 1: train pipeline, shuffled epochs, drop the last incomplete batch
    int T;                     // frames per clip
    int batch;                 // B
    int workers;               // threads (>= 1)
    int prefetch;              // batches in flight (>= 1; default 2 * workers)
    uint64_t seed;
    TfConfig tf;
    VideoScale scale;          // VIDEO_SCALE_REF (default) or VIDEO_SCALE_SWS
    VideoLimits limits;
    int targets;               // train: produce soft targets (label smoothing + mixup/cutmix per mix)
    MixConfig mix;             // mix.num_classes 0: taken from the dataset
    int views;                 // test: clips per video (num_clip)
    SampleViews view_mode;
    int drop_last;             // default: train 1, test 0
    double max_bad_fraction;   // default 0.01
    int quiet;                 // 1: do not print bad videos to stderr
    int shards, shard;         // data-parallel ranks (default 1, 0): this loader delivers the epoch's batches
                               // shard, shard + shards, ... (training: whole rounds only, the same count on
                               // every shard; test: every batch once over the shards)
} LoaderConfig;

LoaderConfig loader_config_default(int input_size, int T, int batch);

typedef struct Batch {
    int B;                     // samples in this batch (the last test batch may be short)
    int views;                 // views per sample (train: 1)
    int64_t epoch, index;      // which batch of which epoch
    float *video;              // (B, views, T, 3, S, S)
    int32_t *labels;           // (B)
    float *targets;            // (B, K) or NULL
    int64_t *items;            // (B) dataset index actually used (after replacement; test mode: -1 = a bad video, left out)
} Batch;

typedef struct LoaderCursor { int64_t epoch, batch; } LoaderCursor;

typedef struct Loader Loader;
Loader *loader_create(const Dataset *ds, const LoaderConfig *cfg, XcError *err);
void loader_free(Loader *ld);
int loader_next(Loader *ld, const Batch **out, XcError *err);
int64_t loader_batches_per_epoch(const Loader *ld);   // this loader's (its shard's) batches of an epoch
int64_t loader_epoch_batches(const Loader *ld);       // the whole epoch's, over all shards
int loader_shards(const Loader *ld);
// The training order of epoch e: a permutation of 0..n-1 from rng_substream(seed, RNG_STREAM_ORDER, e, 0). The
// loader draws it, snapshots record it, other data sources of the run loop use it too.
void loader_epoch_order(uint64_t seed, int64_t epoch, int64_t *order, int64_t n);
// The next batch loader_next will deliver, as the epoch's batch number (with shards: the round's first).
LoaderCursor loader_cursor(const Loader *ld);
void loader_seek(Loader *ld, LoaderCursor c);    // continue from c (waits for work in flight; batch % shards == 0)

typedef struct BadVideo { int64_t item; char reason[512]; } BadVideo;
// The bad videos found so far (in the order found); valid until the next loader call.
const BadVideo *loader_bad_videos(const Loader *ld, int64_t *count);
