// test_loader.c - the loader is deterministic: identical batches with 1, 2 and 3 workers, after restoring a
// cursor mid-epoch, across epochs; bad videos are replaced deterministically, reported and counted; a .tar root
// gives the same batches as the folder; mixup targets are rows that sum to 1; test mode shapes; shards (the ranks of
// data-parallel training) deliver exactly the batches of one loader that fall to them, mixup included; a test
// pass asking for more frames per video than the loader samples is refused.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/synth.h"
#include "tests/test_util.h"

#define SZ 32
#define TT 4
#define BB 3

static float *run_sharded(const Dataset *ds, int workers, int epochs, int64_t *nb_out, LoaderCursor *start, int stop_after,
                          int shards, int shard) {
    *nb_out = 0;
    LoaderConfig lc = loader_config_default(SZ, TT, BB);
    lc.shards = shards;
    lc.shard = shard;
    lc.workers = workers;
    lc.seed = 77;
    lc.quiet = 1;
    lc.max_bad_fraction = 0.5;
    XcError err = {{0}};
    Loader *ld = loader_create(ds, &lc, &err);
    XC_EXPECT(ld != NULL, "%s", err.msg);
    if (!ld) return NULL;
    if (start) loader_seek(ld, *start);
    const size_t bf = (size_t)BB * TT * 3 * SZ * SZ;
    int64_t nb = loader_batches_per_epoch(ld);
    float *all = calloc((size_t)(nb * epochs + 1) * (bf + BB * ds->num_classes + BB), sizeof(float));
    int64_t k = 0;
    for (int e = 0; e < epochs; e++) {
        for (;;) {
            const Batch *b;
            int rc = loader_next(ld, &b, &err);
            XC_EXPECT(rc >= 0, "loader_next: %s", err.msg);
            if (rc <= 0) break;
            float *o = all + (size_t)k * (bf + BB * ds->num_classes + BB);
            memcpy(o, b->video, bf * sizeof(float));
            memcpy(o + bf, b->targets, sizeof(float) * BB * ds->num_classes);
            for (int i = 0; i < BB; i++) o[bf + BB * ds->num_classes + i] = (float)b->labels[i];
            for (int i = 0; i < BB; i++) {
                double s = 0;
                for (int c = 0; c < ds->num_classes; c++) s += b->targets[i * ds->num_classes + c];
                XC_EXPECT(fabs(s - 1.0) < 1e-5, "target row sums to %g", s);
            }
            k++;
            if (stop_after && k == stop_after) { *nb_out = k; loader_free(ld); return all; }
        }
    }
    *nb_out = k;
    loader_free(ld);
    return all;
}

static float *run(const Dataset *ds, int workers, int epochs, int64_t *nb_out, LoaderCursor *start, int stop_after) {
    return run_sharded(ds, workers, epochs, nb_out, start, stop_after, 1, 0);
}

int main(void) {
    char dir[] = "/tmp/xclip_loader_XXXXXX";
    XC_CHECK(mkdtemp(dir), "mkdtemp");
    SynthConfig sc = synth_config_default();
    sc.classes = 4; sc.per_class = 3; sc.val_per_class = 1; sc.frames = 12; sc.size = 40;
    XcError err = {{0}};
    XC_EXPECT(synth_write_dataset(dir, &sc, &err) == XC_OK, "%s", err.msg);
    char list[600], root[600], cmd[2048];
    snprintf(list, sizeof list, "%s/train.txt", dir);
    snprintf(root, sizeof root, "%s/videos", dir);
    // one bad video: truncate a file to 100 bytes
    snprintf(cmd, sizeof cmd, "truncate -s 100 %s/videos/c01/train001.mp4", dir);
    XC_EXPECT(system(cmd) == 0, "truncate");
    Dataset *ds = dataset_open(list, root, 4, &err);
    XC_EXPECT(ds != NULL, "%s", err.msg);
    if (!ds) return xc_test_summary("test_loader");
    const size_t per = (size_t)BB * TT * 3 * SZ * SZ + BB * 4 + BB;
    int64_t n1, n2, n3, nr;
    float *a1 = run(ds, 1, 2, &n1, NULL, 0);
    float *a2 = run(ds, 2, 2, &n2, NULL, 0);
    float *a3 = run(ds, 3, 2, &n3, NULL, 0);
    XC_EXPECT(n1 == 8 && n2 == n1 && n3 == n1, "batch counts %lld %lld %lld (want 2 epochs x 4)", (long long)n1,
              (long long)n2, (long long)n3);
    if (a1 && a2 && a3) {
        XC_EXPECT(memcmp(a1, a2, per * n1 * sizeof(float)) == 0, "1 vs 2 workers differ");
        XC_EXPECT(memcmp(a1, a3, per * n1 * sizeof(float)) == 0, "1 vs 3 workers differ");
        XC_EXPECT(memcmp(a1, a1 + per * 4, per * sizeof(float)) != 0, "epoch 2 repeats epoch 1");
    }
    // resume mid-epoch (epoch 0, batch 2) and at epoch 1 batch 1, with 2 workers
    LoaderCursor c = {0, 2};
    float *ar = run(ds, 2, 1, &nr, &c, 0);
    XC_EXPECT(nr == 2 && ar && memcmp(ar, a1 + per * 2, per * 2 * sizeof(float)) == 0, "resume at (0,2) differs");
    free(ar);
    LoaderCursor c2 = {1, 1};
    ar = run(ds, 3, 1, &nr, &c2, 0);
    XC_EXPECT(nr == 3 && ar && memcmp(ar, a1 + per * 5, per * 3 * sizeof(float)) == 0, "resume at (1,1) differs");
    free(ar);
    // cursor after 3 batches
    {
        LoaderConfig lc = loader_config_default(SZ, TT, BB);
        lc.quiet = 1; lc.seed = 77; lc.max_bad_fraction = 0.5;
        Loader *ld = loader_create(ds, &lc, &err);
        const Batch *b;
        for (int i = 0; i < 3; i++) loader_next(ld, &b, &err);
        LoaderCursor cc = loader_cursor(ld);
        XC_EXPECT(cc.epoch == 0 && cc.batch == 3, "cursor (%lld,%lld)", (long long)cc.epoch, (long long)cc.batch);
        int64_t nbad;
        const BadVideo *bv = loader_bad_videos(ld, &nbad);
        XC_EXPECT(nbad <= 1, "bad count %lld", (long long)nbad);
        loader_free(ld);
        ld = loader_create(ds, &lc, &err);
        for (int i = 0; i < 4; i++) loader_next(ld, &b, &err);
        bv = loader_bad_videos(ld, &nbad);
        XC_EXPECT(nbad == 1 && strstr(bv[0].reason, "train001.mp4"), "bad video not reported (%lld)", (long long)nbad);
        if (nbad) printf("  bad video reported: %s\n", bv[0].reason);
        loader_free(ld);
        // too many bad: fraction 0 -> the run stops with a summary
        lc.max_bad_fraction = 0.0;
        ld = loader_create(ds, &lc, &err);
        int rc = 1;
        for (int i = 0; i < 4 && rc > 0; i++) rc = loader_next(ld, &b, &err);
        XC_EXPECT(rc < 0 && strstr(err.msg, "bad"), "loader did not stop: rc %d %s", rc, err.msg);
        printf("  stop message: %.200s\n", err.msg);
        loader_free(ld);
    }
    // shards: 2 shards of 4 batches per epoch take batches 0, 2 and 1, 3 (whole rounds); 3 shards one round of
    // batches 0, 1, 2 (batch 3 makes no round); the same bytes, targets and labels as the one loader's
    for (int shards = 2; shards <= 3; shards++)
        for (int shard = 0; shard < shards; shard++) {
            int64_t ns = 0;
            float *as = run_sharded(ds, 2, 2, &ns, NULL, 0, shards, shard);
            const int64_t per_epoch = 4 / shards;
            XC_EXPECT(ns == 2 * per_epoch, "%d shards, shard %d: %lld batches in 2 epochs, want %lld", shards, shard,
                      (long long)ns, (long long)(2 * per_epoch));
            for (int64_t k = 0; as && k < ns && k < 2 * per_epoch; k++) {
                const int64_t e = k / per_epoch, b = (k % per_epoch) * shards + shard; // the one loader's batch
                XC_EXPECT(memcmp(as + per * k, a1 + per * (e * 4 + b), per * sizeof(float)) == 0,
                          "%d shards, shard %d: its batch %lld is not batch %lld of epoch %lld", shards, shard, (long long)k,
                          (long long)b, (long long)e);
            }
            free(as);
        }
    {   // a shard's cursor counts the whole epoch's batches: after one round of 2 shards, batch 2; seeking there resumes
        LoaderConfig lc = loader_config_default(SZ, TT, BB);
        lc.quiet = 1; lc.seed = 77; lc.max_bad_fraction = 0.5; lc.shards = 2; lc.shard = 1;
        Loader *ld = loader_create(ds, &lc, &err);
        const Batch *b = NULL;
        if (ld) loader_next(ld, &b, &err);
        LoaderCursor cc = ld ? loader_cursor(ld) : (LoaderCursor){-1, -1};
        XC_EXPECT(cc.epoch == 0 && cc.batch == 2 && b && b->index == 1, "shard cursor (%lld,%lld), batch %lld",
                  (long long)cc.epoch, (long long)cc.batch, b ? (long long)b->index : -1LL);
        loader_free(ld);
        int64_t ns = 0;
        LoaderCursor at = {0, 2};
        float *as = run_sharded(ds, 1, 1, &ns, &at, 0, 2, 1);
        XC_EXPECT(ns == 1 && as && memcmp(as, a1 + per * 3, per * sizeof(float)) == 0, "shard 1 resumed at batch 2: not batch 3");
        free(as);
    }
    {   // a test pass of 64 clips x 128 frames per video: refused by the loader, naming both
        LoaderConfig lc = loader_config_default(SZ, 128, BB);
        lc.train = 0; lc.views = 64; lc.quiet = 1;
        Loader *ld = loader_create(ds, &lc, &err);
        XC_EXPECT(!ld && strstr(err.msg, "64 clips x 128 frames = 8192 frames per video"), "64 x 128 frames: %s",
                  ld ? "accepted" : err.msg);
        loader_free(ld);
    }
    // tar root: same batches as the folder
    snprintf(cmd, sizeof cmd, "cd %s/videos && tar -cf %s/videos.tar c00 c01 c02 c03", dir, dir);
    XC_EXPECT(system(cmd) == 0, "tar");
    char tarp[700];
    snprintf(tarp, sizeof tarp, "%s/videos.tar", dir);
    Dataset *dt = dataset_open(list, tarp, 4, &err);
    XC_EXPECT(dt != NULL && dt->n_missing == 0, "tar dataset: %s", dt ? dt->issues : err.msg);
    if (dt) {
        int64_t nt;
        float *at = run(dt, 2, 1, &nt, NULL, 0);
        XC_EXPECT(nt == 4 && at && memcmp(at, a1, per * 4 * sizeof(float)) == 0, "tar root batches differ");
        free(at);
        dataset_free(dt);
    }
    // test mode: 2 views x 3 crops, list order, last batch short
    {
        char vlist[700];
        snprintf(vlist, sizeof vlist, "%s/val.txt", dir);
        Dataset *dv = dataset_open(vlist, root, 4, &err);
        LoaderConfig lc = loader_config_default(SZ, TT, BB);
        lc.train = 0; lc.views = 2; lc.tf.num_crop = 3; lc.quiet = 1;
        Loader *ld = dv ? loader_create(dv, &lc, &err) : NULL;
        XC_EXPECT(ld != NULL, "%s", err.msg);
        if (ld) {
            const Batch *b;
            int nb = 0, total = 0;
            while (loader_next(ld, &b, &err) > 0) {
                XC_EXPECT(b->views == 6 && b->targets == NULL, "views %d", b->views);
                for (int i = 0; i < b->B; i++) XC_EXPECT(b->labels[i] == total + i, "test order: label %d at %d", b->labels[i], total + i);
                total += b->B;
                nb++;
            }
            XC_EXPECT(nb == 2 && total == 4, "test batches %d, samples %d", nb, total);
            loader_free(ld);
        }
        // a bad video in test mode is left out (item and label -1, zero frames), never replaced by a neighbour,
        // which evaluation would then count twice
        if (dv) {
            snprintf(cmd, sizeof cmd, "truncate -s 300 '%s/%s'", root, dv->items[1].path);
            XC_EXPECT(system(cmd) == 0, "truncate");
            lc.max_bad_fraction = 0.5;
            ld = loader_create(dv, &lc, &err);
            const Batch *b;
            int seen[4] = {0}, left_out = 0, total = 0;
            while (ld && loader_next(ld, &b, &err) > 0)
                for (int i = 0; i < b->B; i++, total++) {
                    if (b->items[i] < 0) {
                        left_out++;
                        const float *v = b->video + (size_t)i * (size_t)b->views * TT * 3 * SZ * SZ;
                        bool zero = true;
                        for (size_t q = 0; q < (size_t)b->views * TT * 3 * SZ * SZ; q++) zero &= v[q] == 0.0f;
                        XC_EXPECT(b->labels[i] == -1 && zero && total == 1, "the bad video's sample %d: label %d, frames %s",
                                  total, b->labels[i], zero ? "zero" : "not zero");
                    } else {
                        XC_EXPECT(b->items[i] == total && b->labels[i] == total, "sample %d: item %lld label %d", total,
                                  (long long)b->items[i], b->labels[i]);
                        seen[b->items[i] & 3]++;
                    }
                }
            XC_EXPECT(total == 4 && left_out == 1 && seen[0] == 1 && seen[1] == 0 && seen[2] == 1 && seen[3] == 1,
                      "test mode with a bad video: %d samples, %d left out, items seen %d %d %d %d (want 4, 1, 1 0 1 1)",
                      total, left_out, seen[0], seen[1], seen[2], seen[3]);
            loader_free(ld);
        }
        dataset_free(dv);
    }
    free(a1); free(a2); free(a3);
    dataset_free(ds);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return xc_test_summary("test_loader");
}
