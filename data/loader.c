// loader.c - worker threads, prefetch ring, bad-video replacement and cursors. See loader.h.
#include "data/loader.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Worker {
    struct Loader *ld;
    pthread_t thread;
    uint8_t *frames;           // decoded clip (views*T, oh, ow, 3), grown as needed
    size_t frames_cap;
    uint8_t *scratch;          // (T, S, S, 3)
    float *views_tmp;          // (num_crop, T, 3, S, S) for the test pipeline
    ClipAug *aug;
} Worker;

struct Loader {
    const Dataset *ds;
    LoaderConfig cfg;
    int S, V, C, K;            // input size, clips per video, crops, classes
    size_t sample_floats;      // views*C * T * 3 * S * S
    int64_t nbatches;          // batches of the whole epoch (every shard's)
    int64_t nlocal;            // this shard's: the loader's own batch m is the epoch's batch m * shards + shard
    int64_t *order;            // (n) epoch order
    // ring of prefetched batches
    int P;
    Batch *slots;              // (P)
    int *slot_done;            // (P) samples finished
    int *slot_mixed;           // (P) mixup applied
    float *mix_scratch;        // (B, T, 3, S, S) work space of mix_apply, or NULL without soft targets
    // shared state, under mu
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int64_t epoch;
    int64_t consumed;          // next batch to deliver (this shard's count, as the three below)
    int64_t release_upto;      // batches < this are released (their slots reusable)
    int held;                  // the consumer holds batch consumed-1
    int64_t next_item;         // next sample to claim: sample q is position q % batch of batch q / batch
    int64_t total_items;       // samples of the epoch (positions in the epoch order) that make batches
    int paused, quit, inflight;
    uint64_t generation;
    // bad videos
    uint8_t *bad;              // (n) 1 if known bad
    BadVideo *bad_list;
    int64_t nbad, bad_cap;
    int fatal;
    char fatal_msg[1024];
    int nworkers;
    Worker *workers;
};

LoaderConfig loader_config_default(int input_size, int T, int batch) {
    LoaderConfig c;
    memset(&c, 0, sizeof c);
    c.train = 1;
    c.T = T;
    c.batch = batch;
    c.workers = 1;
    c.prefetch = 0;
    c.seed = 1024;
    c.tf = tf_config_default(input_size);
    c.scale = VIDEO_SCALE_REF;
    c.limits = video_limits_default();
    c.targets = 1;
    c.mix = mix_config_default(0);
    c.views = 1;
    c.view_mode = SAMPLE_VIEWS_SHIFTED;
    c.drop_last = -1; // resolved in loader_create: train 1, test 0
    c.max_bad_fraction = 0.01;
    c.shards = 1;
    return c;
}

// The epoch's batch number of this shard's batch m.
static int64_t global_batch(const Loader *ld, int64_t m) { return m * ld->cfg.shards + ld->cfg.shard; }

static int batch_size_of(const Loader *ld, int64_t b) {
    int64_t left = ld->ds->n - b * ld->cfg.batch;
    return left >= ld->cfg.batch ? ld->cfg.batch : (int)left;
}

void loader_epoch_order(uint64_t seed, int64_t epoch, int64_t *order, int64_t n) {
    Rng r = rng_substream(seed, RNG_STREAM_ORDER, (uint64_t)epoch, 0);
    rng_permutation(&r, order, n);
}

// Set up epoch e starting at batch b0 (mu held, no work in flight).
static void start_epoch(Loader *ld, int64_t e, int64_t b0) {
    const int64_t n = ld->ds->n;
    ld->epoch = e;
    if (ld->cfg.train) {
        loader_epoch_order(ld->cfg.seed, e, ld->order, n);
    } else {
        for (int64_t i = 0; i < n; i++) ld->order[i] = i;
    }
    ld->consumed = ld->release_upto = b0;
    ld->held = 0;
    ld->next_item = b0 * ld->cfg.batch;
    ld->total_items = ld->cfg.drop_last ? ld->nbatches * ld->cfg.batch : n;
    for (int s = 0; s < ld->P; s++) ld->slot_done[s] = ld->slot_mixed[s] = 0;
    ld->generation++;
}

// Decode and transform dataset item j with randomness r into out (views*C, T, 3, S, S). XC_ERR + err if bad.
static int process(Worker *w, int64_t j, Rng *r, float *out, XcError *err) {
    Loader *ld = w->ld;
    const LoaderConfig *cfg = &ld->cfg;
    const DatasetItem *it = &ld->ds->items[j];
    char pbuf[4096];
    VideoSource src = dataset_source(ld->ds, j, pbuf, sizeof pbuf);
    if (it->missing)
        return xc_err(err, "%s: no such %s", src.name ? src.name : src.path, ld->ds->is_tar ? "member in the tar" : "file");
    Video *v = video_open(src, &cfg->limits, err);
    if (!v) return XC_ERR;
    const int T = cfg->T, nv = cfg->train ? 1 : ld->V;
    int64_t idx[4 * TF_MAX_FRAMES];
    XC_CHECK((int64_t)nv * T <= 4 * TF_MAX_FRAMES, "loader: views*T too large");
    int64_t n = video_frame_count(v);
    int short_side;
    if (cfg->train) {
        sample_train(n, T, r, idx);
        short_side = cfg->tf.resize_short;
    } else {
        sample_test_views(n, T, nv, cfg->view_mode, r, idx);
        short_side = tf_test_short_side(&cfg->tf);
    }
    int oh, ow;
    video_output_size(v, short_side, &oh, &ow);
    size_t need = (size_t)nv * T * oh * ow * 3;
    if (need > w->frames_cap) {
        xc_free(w->frames);
        w->frames = xc_malloc(need);
        w->frames_cap = need;
    }
    int rc = video_read_frames(v, idx, nv * T, short_side, cfg->scale, w->frames, err);
    video_close(v);
    if (rc != XC_OK) return XC_ERR;
    if (cfg->train) {
        tf_draw_train(&cfg->tf, r, T, oh, ow, w->aug);
        tf_apply_train(&cfg->tf, w->aug, w->frames, T, oh, ow, out, w->scratch);
    } else {
        const size_t clip = (size_t)T * 3 * ld->S * ld->S;
        for (int k = 0; k < nv; k++)
            tf_apply_test(&cfg->tf, w->frames + (size_t)k * T * oh * ow * 3, T, oh, ow, out + (size_t)k * ld->C * clip);
    }
    return XC_OK;
}

// Record a bad video (mu held). Prints it once.
static void mark_bad(Loader *ld, int64_t j, const char *reason) {
    if (ld->bad[j]) return;
    ld->bad[j] = 1;
    if (ld->nbad == ld->bad_cap) {
        ld->bad_cap = ld->bad_cap ? ld->bad_cap * 2 : 16;
        ld->bad_list = xc_realloc(ld->bad_list, sizeof(BadVideo) * (size_t)ld->bad_cap);
    }
    BadVideo *b = &ld->bad_list[ld->nbad++];
    b->item = j;
    size_t rl = strlen(reason);
    if (rl >= sizeof b->reason) rl = sizeof b->reason - 1;
    memcpy(b->reason, reason, rl);
    b->reason[rl] = 0;
    if (!ld->cfg.quiet) {
        // only the first line of the reason (no HINT) to keep the log readable
        const char *nl = strchr(reason, '\n');
        fprintf(stderr, "xclip: bad video (list line %d) skipped: %.*s\n", ld->ds->items[j].line,
                nl ? (int)(nl - reason) : (int)strlen(reason), reason);
    }
    if ((double)ld->nbad > ld->cfg.max_bad_fraction * (double)ld->ds->n && !ld->fatal) {
        ld->fatal = 1;
        snprintf(ld->fatal_msg, sizeof ld->fatal_msg,
                 "%.200s: %lld of %lld videos are bad (%.2f%%), more than the allowed %.2f%%; first: %.400s\n"
                 "HINT: run xclip-check-data on the list to see them all, or raise max_bad_fraction",
                 ld->ds->list_path, (long long)ld->nbad, (long long)ld->ds->n,
                 100.0 * (double)ld->nbad / (double)ld->ds->n, 100.0 * ld->cfg.max_bad_fraction, ld->bad_list[0].reason);
    }
}

// Fill one sample: the scheduled item at epoch position k; a bad one is replaced by the next good one in the epoch
// order when training, and left out in test mode (*used = -1, label -1, zeros), where every video counts once:
// a replacement would count its neighbour twice.
static void do_item(Worker *w, int64_t epoch, int64_t k, float *out, int32_t *label, int64_t *used) {
    Loader *ld = w->ld;
    const int64_t n = ld->ds->n;
    const int64_t scheduled = ld->order[k];
    for (int64_t a = 0; a < (ld->cfg.train ? n : 1); a++) {
        int64_t j = ld->order[(k + a) % n];
        pthread_mutex_lock(&ld->mu);
        int known_bad = ld->bad[j], fatal = ld->fatal;
        pthread_mutex_unlock(&ld->mu);
        if (fatal) break;
        if (known_bad) continue;
        Rng r = rng_substream(ld->cfg.seed, RNG_STREAM_DATA, (uint64_t)epoch, (uint64_t)scheduled);
        XcError err = {{0}};
        if (process(w, j, &r, out, &err) == XC_OK) {
            *label = ld->ds->items[j].label;
            *used = j;
            return;
        }
        pthread_mutex_lock(&ld->mu);
        mark_bad(ld, j, err.msg);
        pthread_mutex_unlock(&ld->mu);
    }
    memset(out, 0, sizeof(float) * ld->sample_floats);
    *used = -1;
    if (!ld->cfg.train) { // left out; the data error (too many bad videos) is the caller's through loader_next
        *label = -1;
        return;
    }
    pthread_mutex_lock(&ld->mu);
    if (!ld->fatal) {
        ld->fatal = 1;
        snprintf(ld->fatal_msg, sizeof ld->fatal_msg, "%.500s: no video of the list could be decoded", ld->ds->list_path);
    }
    pthread_mutex_unlock(&ld->mu);
    *label = 0;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    Loader *ld = w->ld;
    pthread_mutex_lock(&ld->mu);
    for (;;) {
        if (ld->quit) break;
        const int64_t q = ld->next_item, b = q / ld->cfg.batch;
        const int64_t k = global_batch(ld, b) * ld->cfg.batch + q % ld->cfg.batch; // its position in the epoch order
        if (!ld->paused && !ld->fatal && b < ld->nlocal && k < ld->total_items && b < ld->release_upto + ld->P) {
            ld->next_item++;
            ld->inflight++;
            uint64_t gen = ld->generation;
            int64_t epoch = ld->epoch;
            int slot = (int)(b % ld->P);
            int pos = (int)(q % ld->cfg.batch);
            Batch *bt = &ld->slots[slot];
            pthread_mutex_unlock(&ld->mu);
            do_item(w, epoch, k, bt->video + (size_t)pos * ld->sample_floats, &bt->labels[pos], &bt->items[pos]);
            pthread_mutex_lock(&ld->mu);
            ld->inflight--;
            if (gen == ld->generation) ld->slot_done[slot]++;
            pthread_cond_broadcast(&ld->cv_done);
            continue;
        }
        pthread_cond_wait(&ld->cv_work, &ld->mu);
    }
    pthread_mutex_unlock(&ld->mu);
    return NULL;
}

Loader *loader_create(const Dataset *ds, const LoaderConfig *cfg_in, XcError *err) {
    LoaderConfig cfg = *cfg_in;
    if (cfg.T <= 0 || cfg.T > TF_MAX_FRAMES || cfg.batch <= 0 || cfg.batch > MIX_MAX_BATCH || cfg.workers <= 0 ||
        cfg.tf.input_size <= 0 || cfg.views <= 0 || cfg.shards < 1 || cfg.shard < 0 || cfg.shard >= cfg.shards) {
        xc_err(err, "loader: bad configuration (T %d, batch %d, workers %d, input size %d, views %d, shard %d of %d)", cfg.T,
               cfg.batch, cfg.workers, cfg.tf.input_size, cfg.views, cfg.shard, cfg.shards);
        return NULL;
    }
    if (!cfg.train && (int64_t)cfg.views * cfg.T > 4 * TF_MAX_FRAMES) { // the frames one worker samples per video
        xc_err(err, "loader: %d clips x %d frames = %lld frames per video, more than the %d one video may give",
               cfg.views, cfg.T, (long long)cfg.views * cfg.T, 4 * TF_MAX_FRAMES);
        return NULL;
    }
    if (cfg.drop_last < 0) cfg.drop_last = cfg.train;
    if (cfg.prefetch <= 0) cfg.prefetch = 2 * cfg.workers;
    if (cfg.mix.num_classes <= 0) cfg.mix.num_classes = ds->num_classes;
    Loader *ld = xc_calloc(1, sizeof *ld);
    ld->ds = ds;
    ld->cfg = cfg;
    ld->S = cfg.tf.input_size;
    ld->V = cfg.train ? 1 : cfg.views;
    ld->C = cfg.train ? 1 : (cfg.tf.num_crop == 3 ? 3 : 1);
    ld->K = cfg.mix.num_classes;
    ld->nbatches = cfg.drop_last ? ds->n / cfg.batch : (ds->n + cfg.batch - 1) / cfg.batch;
    // shards: training takes whole rounds (one batch per shard each); a test pass shares out every batch
    ld->nlocal = cfg.train ? ld->nbatches / cfg.shards
                           : (ld->nbatches > cfg.shard ? (ld->nbatches - cfg.shard + cfg.shards - 1) / cfg.shards : 0);
    if (ld->nbatches == 0 || (cfg.train && ld->nlocal == 0)) {
        xc_err(err, "%s: %lld videos make no full %s of %d", ds->list_path, (long long)ds->n,
               cfg.shards > 1 ? "round of one batch per rank" : "batch", cfg.shards > 1 ? cfg.shards * cfg.batch : cfg.batch);
        xc_free(ld);
        return NULL;
    }
    ld->sample_floats = (size_t)ld->V * ld->C * cfg.T * 3 * ld->S * ld->S;
    ld->order = xc_malloc(sizeof(int64_t) * (size_t)ds->n);
    ld->bad = xc_calloc((size_t)ds->n, 1);
    ld->P = cfg.prefetch;
    ld->slots = xc_calloc((size_t)ld->P, sizeof(Batch));
    ld->slot_done = xc_calloc((size_t)ld->P, sizeof(int));
    ld->slot_mixed = xc_calloc((size_t)ld->P, sizeof(int));
    if (cfg.train && cfg.targets) // mixup / cutmix work space: one batch of clips, used by loader_next only
        ld->mix_scratch = xc_malloc(sizeof(float) * (size_t)cfg.batch * (size_t)cfg.T * 3 * (size_t)ld->S * (size_t)ld->S);
    for (int s = 0; s < ld->P; s++) {
        Batch *b = &ld->slots[s];
        b->video = xc_malloc(sizeof(float) * ld->sample_floats * (size_t)cfg.batch);
        b->labels = xc_malloc(sizeof(int32_t) * (size_t)cfg.batch);
        b->items = xc_malloc(sizeof(int64_t) * (size_t)cfg.batch);
        b->targets = cfg.train && cfg.targets ? xc_malloc(sizeof(float) * (size_t)cfg.batch * (size_t)ld->K) : NULL;
        b->views = ld->V * ld->C;
    }
    pthread_mutex_init(&ld->mu, NULL);
    pthread_cond_init(&ld->cv_work, NULL);
    pthread_cond_init(&ld->cv_done, NULL);
    start_epoch(ld, 0, 0);
    ld->nworkers = cfg.workers;
    ld->workers = xc_calloc((size_t)cfg.workers, sizeof(Worker));
    for (int i = 0; i < cfg.workers; i++) {
        Worker *w = &ld->workers[i];
        w->ld = ld;
        w->scratch = xc_malloc((size_t)cfg.T * ld->S * ld->S * 3);
        w->aug = xc_malloc(sizeof(ClipAug));
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) xc_fatal("loader: pthread_create failed");
    }
    return ld;
}

void loader_free(Loader *ld) {
    if (!ld) return;
    pthread_mutex_lock(&ld->mu);
    ld->quit = 1;
    pthread_cond_broadcast(&ld->cv_work);
    pthread_mutex_unlock(&ld->mu);
    for (int i = 0; i < ld->nworkers; i++) {
        pthread_join(ld->workers[i].thread, NULL);
        xc_free(ld->workers[i].frames);
        xc_free(ld->workers[i].scratch);
        xc_free(ld->workers[i].aug);
    }
    xc_free(ld->workers);
    for (int s = 0; s < ld->P; s++) {
        xc_free(ld->slots[s].video);
        xc_free(ld->slots[s].labels);
        xc_free(ld->slots[s].items);
        xc_free(ld->slots[s].targets);
    }
    xc_free(ld->slots);
    xc_free(ld->slot_done);
    xc_free(ld->slot_mixed);
    xc_free(ld->mix_scratch);
    xc_free(ld->order);
    xc_free(ld->bad);
    xc_free(ld->bad_list);
    pthread_mutex_destroy(&ld->mu);
    pthread_cond_destroy(&ld->cv_work);
    pthread_cond_destroy(&ld->cv_done);
    xc_free(ld);
}

int64_t loader_batches_per_epoch(const Loader *ld) { return ld->nlocal; }
int64_t loader_epoch_batches(const Loader *ld) { return ld->nbatches; }
int loader_shards(const Loader *ld) { return ld->cfg.shards; }

static void release_held(Loader *ld) {
    if (!ld->held) return;
    int slot = (int)(ld->release_upto % ld->P);
    ld->slot_done[slot] = 0;
    ld->slot_mixed[slot] = 0;
    ld->release_upto++;
    ld->held = 0;
    pthread_cond_broadcast(&ld->cv_work);
}

int loader_next(Loader *ld, const Batch **out, XcError *err) {
    *out = NULL;
    pthread_mutex_lock(&ld->mu);
    release_held(ld);
    if (ld->fatal) {
        int rc = xc_err(err, "%s", ld->fatal_msg);
        pthread_mutex_unlock(&ld->mu);
        return rc;
    }
    if (ld->consumed >= ld->nlocal) { // end of the epoch: the next call starts the next one
        ld->paused = 1;
        while (ld->inflight > 0) pthread_cond_wait(&ld->cv_done, &ld->mu);
        start_epoch(ld, ld->epoch + 1, 0);
        ld->paused = 0;
        pthread_cond_broadcast(&ld->cv_work);
        pthread_mutex_unlock(&ld->mu);
        return 0;
    }
    const int64_t m = ld->consumed, b = global_batch(ld, m);
    const int slot = (int)(m % ld->P);
    const int B = batch_size_of(ld, b);
    while (ld->slot_done[slot] < B && !ld->fatal) pthread_cond_wait(&ld->cv_done, &ld->mu);
    if (ld->fatal) {
        int rc = xc_err(err, "%s", ld->fatal_msg);
        pthread_mutex_unlock(&ld->mu);
        return rc;
    }
    Batch *bt = &ld->slots[slot];
    bt->B = B;
    bt->epoch = ld->epoch;
    bt->index = b;
    const int64_t epoch = ld->epoch;
    ld->consumed++;
    ld->held = 1;
    pthread_mutex_unlock(&ld->mu);
    if (bt->targets && !ld->slot_mixed[slot]) {
        Rng r = rng_substream(ld->cfg.seed, RNG_STREAM_MIX, (uint64_t)epoch, (uint64_t)b);
        MixDraw d = mix_draw(&ld->cfg.mix, &r, B, ld->S, ld->S);
        mix_apply(&ld->cfg.mix, &d, bt->video, bt->labels, B, ld->cfg.T, ld->S, ld->S, bt->targets, ld->mix_scratch);
        ld->slot_mixed[slot] = 1;
    }
    *out = bt;
    return 1;
}

LoaderCursor loader_cursor(const Loader *ld) {
    pthread_mutex_lock((pthread_mutex_t *)&ld->mu);
    LoaderCursor c = {ld->epoch, ld->consumed * ld->cfg.shards};
    pthread_mutex_unlock((pthread_mutex_t *)&ld->mu);
    return c;
}

void loader_seek(Loader *ld, LoaderCursor c) {
    XC_CHECK(c.epoch >= 0 && c.batch >= 0 && c.batch <= ld->nbatches && (c.batch % ld->cfg.shards == 0 || c.batch == ld->nbatches),
             "loader_seek: cursor (%lld, %lld) invalid for %lld batches in %d shards", (long long)c.epoch,
             (long long)c.batch, (long long)ld->nbatches, ld->cfg.shards);
    pthread_mutex_lock(&ld->mu);
    ld->paused = 1;
    while (ld->inflight > 0) pthread_cond_wait(&ld->cv_done, &ld->mu);
    start_epoch(ld, c.epoch, c.batch / ld->cfg.shards < ld->nlocal ? c.batch / ld->cfg.shards : ld->nlocal);
    ld->paused = 0;
    pthread_cond_broadcast(&ld->cv_work);
    pthread_mutex_unlock(&ld->mu);
}

const BadVideo *loader_bad_videos(const Loader *ld, int64_t *count) {
    *count = ld->nbad;
    return ld->bad_list;
}
