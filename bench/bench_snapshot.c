// bench_snapshot - snapshot write and verify+read time and file size at the X-CLIP ViT-B/32 size.
//
//   bench_snapshot [--dir DIR] [--repeats R] [--train-text]
//
// Registers every X-CLIP ViT-B/32 tensor (8 frames, 224 px, 1 MIT layer, 2 prompt layers; official names and
// shapes, random values) in a ParamStore with an AdamW whose moments are random, then times snapshot_save
// (HDF5 write, H5Fclose, read-back checksum, fsync, rename, directory fsync), snapshot_verify (header,
// whole-file checksum, every dataset checksum) and snapshot_load (verify + restore into the run), and
// prints the file size. By default the text tower is frozen (fix_text, docs/model.md §2): its moments are all zero
// and are not stored; --train-text stores moments for every tensor.
// DIR defaults to $TMPDIR or /tmp; the snapshot is deleted at the end.
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoints/snapshot.h"
#include "optim/adamw.h"
#include "tests/xclip_params.h"

// Phase times of the last write, from the snapshot test hook.
static double g_t0, g_phase[6];
static void phase_hook(int point, const char *what) {
    (void)point;
    static const char *marks[6] = {"before H5Fclose", "after H5Fclose", "header written", "file fsynced", "renamed", "directory fsynced"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(what, marks[i])) g_phase[i] = xc_now() - g_t0;
}

int main(int argc, char **argv) {
    const char *dir = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    int repeats = 2;
    bool train_text = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc) repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--train-text")) train_text = true;
        else { fprintf(stderr, "usage: bench_snapshot [--dir DIR] [--repeats R] [--train-text]\n"); return 2; }
    }
    XclipDims d = xclip_dims_b32();
    ParamStore ps;
    param_store_init(&ps, "params");
    xclip_register_params(&ps, &d, !train_text);
    xclip_fill_random(&ps, 1);
    AdamW opt;
    adamw_init(&opt, &ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
    int64_t trainable = 0;
    Rng r = rng_stream(2, RNG_STREAM_TEST);
    for (int i = 0; i < ps.n; i++) {
        if (!ps.p[i]->requires_grad) continue;
        trainable += ps.p[i]->numel;
        rng_fill_normal(&r, opt.m + opt.offset[i], ps.p[i]->numel, 0, 1e-3f);
        rng_fill_uniform(&r, opt.v + opt.offset[i], ps.p[i]->numel, 0, 1e-6f);
    }
    opt.step = 1000;
    int64_t order_len = 240000; // Kinetics-400 train list size
    int64_t *order = xc_malloc((size_t)order_len * sizeof *order);
    rng_permutation(&r, order, order_len);
    SnapshotRng rngs[3] = {{"drop", rng_get_state(&r)}, {"mix", rng_get_state(&r)}, {"order", rng_get_state(&r)}};
    SnapshotState st = {.params = &ps, .opt = adamw_state(&opt), .global_iter = 12345, .epoch = 3, .rngs = rngs, .n_rngs = 3,
                        .order = order, .order_len = order_len, .config = "(config text)"};
    int64_t stored = ps.total + 2 * trainable;
    printf("X-CLIP ViT-B/32: %d tensors, %lld parameters (%lld trainable%s); floats stored with moments: %lld (%.1f M)\n", ps.n,
           (long long)ps.total, (long long)trainable, train_text ? "" : ", text tower frozen", (long long)stored, (double)stored / 1e6);
    char path[4200];
    XcError err;
    double best_w = 1e30, best_v = 1e30, best_l = 1e30;
    for (int k = 0; k < repeats; k++) {
        double t0 = xc_now();
        g_t0 = t0;
        snapshot_set_test_hook(phase_hook);
        if (snapshot_save(dir, &st, path, sizeof path, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double t1 = xc_now();
        snapshot_set_test_hook(NULL);
        if (snapshot_verify(path, NULL, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double t2 = xc_now();
        SnapshotState back = st;
        back.config = NULL;
        if (snapshot_load(path, &back, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); return 1; }
        double t3 = xc_now();
        snapshot_state_free_text(&back);
        printf("write %d: datasets %.2f s, H5Fclose %.2f s, read-back checksum + header %.2f s, fsync %.2f s, rename + dir fsync %.2f s\n",
               k, g_phase[0], g_phase[1] - g_phase[0], g_phase[2] - g_phase[1], g_phase[3] - g_phase[2], g_phase[5] - g_phase[3]);
        if (t1 - t0 < best_w) best_w = t1 - t0;
        if (t2 - t1 < best_v) best_v = t2 - t1;
        if (t3 - t2 < best_l) best_l = t3 - t2;
    }
    struct stat sb;
    stat(path, &sb);
    double gb = (double)sb.st_size / 1e9;
    printf("file %s: %.3f GB (%lld bytes)\n", path, gb, (long long)sb.st_size);
    printf("best of %d: write %.2f s (%.2f GB/s)   verify %.2f s (%.2f GB/s)   load (verify + restore) %.2f s (%.2f GB/s)\n",
           repeats, best_w, gb / best_w, best_v, gb / best_v, best_l, gb / best_l);
    unlink(path);
    xc_free(order);
    adamw_free(&opt);
    param_store_free(&ps);
    return 0;
}
