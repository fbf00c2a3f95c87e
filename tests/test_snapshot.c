// test_snapshot.c - snapshots: bitwise write/read round trip of every field, refusal of snapshots that do
// not fit (the field named, nothing modified), retention (last N + best), stale temporaries, --resume auto
// (newest valid, falls back past a damaged newest one with a message), XXH64 vectors, signal flags.
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>

#include "checkpoints/hash64.h"
#include "checkpoints/snapshot.h"
#include "optim/adamw.h"
#include "tests/snap_test_util.h"
#include "tests/test_util.h"
#include "tests/xclip_params.h"
#include "train/signals.h"

typedef struct Run {
    ParamStore ps;
    AdamW opt;
    SnapshotRng rngs[3];
    int64_t order[37];
} Run;

static void run_init(Run *r, const XclipDims *d) {
    param_store_init(&r->ps, "params");
    xclip_register_params(&r->ps, d, true);
    adamw_init(&r->opt, &r->ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
    memset(r->rngs, 0, sizeof r->rngs);
    snprintf(r->rngs[0].name, SNAPSHOT_MAX_RNG_NAME, "drop");
    snprintf(r->rngs[1].name, SNAPSHOT_MAX_RNG_NAME, "mix");
    snprintf(r->rngs[2].name, SNAPSHOT_MAX_RNG_NAME, "order");
    memset(r->order, 0, sizeof r->order);
}
static void run_free(Run *r) {
    adamw_free(&r->opt);
    param_store_free(&r->ps);
}
static SnapshotState run_state(Run *r) {
    return (SnapshotState){.params = &r->ps, .opt = adamw_state(&r->opt), .rngs = r->rngs, .n_rngs = 3, .order = r->order, .order_len = 37};
}

// Everything random, with awkward float values in one tensor.
static void run_fill(Run *r, uint64_t seed) {
    xclip_fill_random(&r->ps, seed);
    float *x = r->ps.p[0]->data;
    // -0 and subnormals (NaN and infinities are never written: test_nonfinite_refused)
    uint32_t specials[] = {0x80000000u, 0x00000001u, 0x807fffffu, 0x00800000u};
    memcpy(x, specials, sizeof specials);
    Rng g = rng_stream(seed + 1, RNG_STREAM_TEST);
    rng_fill_normal(&g, r->opt.m, r->opt.numel, 0, 1e-3f); // moments exist for the trainable tensors only
    rng_fill_uniform(&g, r->opt.v, r->opt.numel, 0, 1e-6f);
    for (int i = 0; i < r->ps.n; i++) {
        adamw_set_group(&r->opt, i, (i % 3) ? 0 : 1, i % 2);
        r->opt.last_lr[i] = (i % 3) ? 1e-4f : 1e-3f; // as after a step at those rates
    }
    r->opt.step = 1234 + (int64_t)seed;
    for (int k = 0; k < 3; k++) {
        Rng s = rng_stream(seed * 7 + (uint64_t)k, (uint64_t)k + 2);
        for (int j = 0; j < 5 + k; j++) rng_u32(&s);
        if (k == 1) rng_normal(&s); // leaves a cached Box-Muller value
        r->rngs[k].state = rng_get_state(&s);
    }
    rng_permutation(&g, r->order, 37);
}

static bool bits_equal(const void *a, const void *b, size_t n) { return memcmp(a, b, n) == 0; }

static void expect_same_run(Run *a, Run *b, const char *what) {
    bool same = a->ps.n == b->ps.n;
    for (int i = 0; i < a->ps.n && same; i++)
        same = bits_equal(a->ps.p[i]->data, b->ps.p[i]->data, (size_t)a->ps.p[i]->numel * 4);
    XC_EXPECT(same, "%s: parameters differ", what);
    XC_EXPECT(bits_equal(a->opt.m, b->opt.m, (size_t)a->opt.numel * 4), "%s: m differs", what);
    XC_EXPECT(bits_equal(a->opt.v, b->opt.v, (size_t)a->opt.numel * 4), "%s: v differs", what);
    XC_EXPECT(a->opt.step == b->opt.step, "%s: step %lld vs %lld", what, (long long)a->opt.step, (long long)b->opt.step);
    XC_EXPECT(bits_equal(a->opt.last_lr, b->opt.last_lr, (size_t)a->ps.n * 4), "%s: last_lr differs", what);
    bool dec = true;
    for (int i = 0; i < a->ps.n; i++) dec = dec && a->opt.decay[i] == b->opt.decay[i];
    XC_EXPECT(dec, "%s: decay flags differ", what);
    for (int k = 0; k < 3; k++) {
        RngState x = a->rngs[k].state, y = b->rngs[k].state;
        XC_EXPECT(x.key == y.key && x.counter == y.counter && x.pos == y.pos && x.has_spare == y.has_spare &&
                      bits_equal(&x.spare, &y.spare, 4), "%s: RNG %s differs", what, a->rngs[k].name);
        Rng ra, rb; // and the streams continue identically
        rng_set_state(&ra, x);
        rng_set_state(&rb, y);
        float fa = rng_normal(&ra), fb = rng_normal(&rb);
        XC_EXPECT(bits_equal(&fa, &fb, 4) && rng_u64(&ra) == rng_u64(&rb), "%s: RNG %s continues differently", what, a->rngs[k].name);
    }
    XC_EXPECT(bits_equal(a->order, b->order, sizeof a->order), "%s: data order differs", what);
}

static void test_hash(void) {
    XC_EXPECT(hash64("", 0, 0) == 0xEF46DB3751D8E999ull, "XXH64('')");
    XC_EXPECT(hash64("a", 1, 0) == 0xD24EC4F1A98C6E5Bull, "XXH64('a')");
    XC_EXPECT(hash64("abc", 3, 0) == 0x44BC2CF5AD770999ull, "XXH64('abc')");
    const char *s = "Nobody inspects the spammish repetition";
    XC_EXPECT(hash64(s, strlen(s), 0) == 0xFBCEA83C8A378BF1ull, "XXH64(spammish)");
    uint8_t buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (uint8_t)(i * 131 + 7);
    uint64_t whole = hash64(buf, sizeof buf, 5);
    bool ok = true;
    for (size_t cut = 0; cut <= 1000; cut += 37) { // streaming over any split
        Hash64 h;
        hash64_init(&h, 5);
        hash64_update(&h, buf, cut);
        hash64_update(&h, buf + cut, 1000 - cut);
        ok = ok && hash64_digest(&h) == whole;
    }
    XC_EXPECT(ok, "streaming XXH64 equals one-shot");
}

static void test_round_trip(const char *dir) {
    XclipDims d = xclip_dims_tiny();
    Run a, b;
    run_init(&a, &d);
    run_init(&b, &d);
    run_fill(&a, 3);
    SnapshotState sa = run_state(&a);
    sa.global_iter = 4321;
    sa.epoch = 7;
    sa.iter_in_epoch = 11;
    sa.best_acc = 0.8125;
    sa.best_epoch = 5;
    sa.best_iter = 3000;
    sa.cursor = (LoaderCursor){7, 12};
    sa.fewshot_list = "a/b.mp4 3\nc d/e.mp4 0\n";
    sa.bad_videos = "x.mp4: moov atom not found\n";
    sa.config = "model: ViT-B/32\nlabels: «ünïcode» ✓\n";
    XcError err = {{0}};
    char path[4200];
    XC_EXPECT(snapshot_save(dir, &sa, path, sizeof path, &err) == XC_OK, "save: %s", err.msg);
    XC_EXPECT(st_count(dir, SNAPSHOT_TMP_PREFIX) == 0, "no temporary left after a write");
    SnapshotInfo info;
    XC_EXPECT(snapshot_verify(path, &info, &err) == XC_OK, "verify: %s", err.msg);
    XC_EXPECT(info.global_iter == 4321 && info.epoch == 7, "header iteration/epoch");
    SnapshotState sb = run_state(&b);
    XC_EXPECT(snapshot_load(path, &sb, &err) == XC_OK, "load: %s", err.msg);
    expect_same_run(&a, &b, "round trip");
    XC_EXPECT(sb.global_iter == 4321 && sb.epoch == 7 && sb.iter_in_epoch == 11 && sb.best_acc == 0.8125 &&
                  sb.best_epoch == 5 && sb.best_iter == 3000 && sb.cursor.epoch == 7 && sb.cursor.batch == 12,
              "scalars restored");
    XC_EXPECT(sb.fewshot_list && !strcmp(sb.fewshot_list, sa.fewshot_list), "few-shot list restored");
    XC_EXPECT(sb.bad_videos && !strcmp(sb.bad_videos, sa.bad_videos), "bad-video list restored");
    XC_EXPECT(sb.config && !strcmp(sb.config, sa.config), "config restored");
    snapshot_state_free_text(&sb);

    // the model alone, by the snapshot reader and through weights_load
    WeightSet ws = {0}, ws2 = {0};
    XC_EXPECT(snapshot_load_weights(path, &ws, &err) == XC_OK, "load weights: %s", err.msg);
    XC_EXPECT(weights_load(&ws2, path, &err) == XC_OK, "weights_load of a snapshot: %s", err.msg);
    bool same = ws.n == a.ps.n && ws2.n == a.ps.n;
    for (int i = 0; i < a.ps.n && same; i++)
        same = !strcmp(ws.t[i].name, a.ps.p[i]->name) && !strcmp(ws2.t[i].name, a.ps.p[i]->name) &&
               bits_equal(ws.t[i].data, a.ps.p[i]->data, (size_t)a.ps.p[i]->numel * 4) &&
               bits_equal(ws2.t[i].data, a.ps.p[i]->data, (size_t)a.ps.p[i]->numel * 4);
    XC_EXPECT(same, "model tensors of the snapshot, in parameter order, bitwise");
    weights_free(&ws);
    weights_free(&ws2);

    // a second save of the same iteration replaces the file atomically
    a.opt.step++;
    XC_EXPECT(snapshot_save(dir, &sa, NULL, 0, &err) == XC_OK, "re-save: %s", err.msg);
    XC_EXPECT(snapshot_load(path, &sb, &err) == XC_OK && b.opt.step == a.opt.step, "re-saved snapshot loads: %s", err.msg);
    snapshot_state_free_text(&sb);
    unlink(path);
    run_free(&a);
    run_free(&b);
}

// FNV-1a over every parameter's bytes.
static uint64_t params_hash(const ParamStore *ps) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < ps->n; i++) {
        const unsigned char *b = (const unsigned char *)ps->p[i]->data;
        for (size_t j = 0; j < (size_t)ps->p[i]->numel * sizeof(float); j++) h = (h ^ b[j]) * 1099511628211ull;
    }
    return h;
}

// Load must fail with `needle` in the message and leave the run untouched (parameters as they were).
static void expect_refused(const char *path, SnapshotState *st, const char *needle, const char *what) {
    XcError err = {{0}};
    uint64_t before = params_hash(st->params);
    int rc = snapshot_load(path, st, &err);
    XC_EXPECT(rc == XC_ERR && st_contains(err.msg, needle), "%s: want an error naming '%s', got rc %d: %s", what, needle, rc, err.msg);
    XC_EXPECT(params_hash(st->params) == before && st->global_iter == 0 && !st->config, "%s: the run was modified by a refused load", what);
    if (rc == XC_OK) snapshot_state_free_text(st);
}

// Rewrite one int64 attribute of a snapshot with libhdf5, then re-seal it (a well-formed file that lies).
static void patch_attr(const char *path, const char *obj, const char *attr, int64_t v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    hid_t a = H5Aopen(o, attr, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    H5Oclose(o);
    H5Fclose(f);
    XcError err;
    snapshot_seal(path, 1, 0, &err);
}

// NaN, -NaN with a payload, +Inf, -Inf in a model tensor: snapshot_write refuses, naming the tensor, and leaves
// no file (a diverged model is never kept, issue 17).
static void test_nonfinite_refused(const char *dir) {
    XclipDims d = xclip_dims_tiny();
    Run a;
    run_init(&a, &d);
    const uint32_t bad[] = {0x7fc00001u, 0xffa00005u, 0x7f800000u, 0xff800000u};
    for (int k = 0; k < 4; k++) {
        run_fill(&a, 9);
        Tensor *p = a.ps.p[a.ps.n - 1];
        memcpy(p->data + p->numel - 1, &bad[k], 4); // the very last float: the check covers every element
        SnapshotState s = run_state(&a);
        s.global_iter = 900 + k;
        XcError err = {{0}};
        char path[4200];
        XC_EXPECT(snapshot_save(dir, &s, path, sizeof path, &err) == XC_ERR && st_contains(err.msg, p->name) &&
                  st_contains(err.msg, "NaN or infinite"), "bits %#x: not refused naming %s: %s", bad[k], p->name, err.msg);
        XC_EXPECT(access(path, F_OK) != 0 && st_count(dir, SNAPSHOT_TMP_PREFIX) == 0, "bits %#x: a file was left", bad[k]);
    }
    run_free(&a);
}

static void test_refusals(const char *dir) {
    XclipDims d = xclip_dims_tiny();
    Run a;
    run_init(&a, &d);
    run_fill(&a, 5);
    SnapshotState sa = run_state(&a);
    sa.global_iter = 1;
    XcError err;
    char path[4200], wpath[4200];
    XC_EXPECT(snapshot_save(dir, &sa, path, sizeof path, &err) == XC_OK, "save: %s", err.msg);
    SnapshotState sw = sa;
    sw.opt = (OptimState){0};
    snprintf(wpath, sizeof wpath, "%s/weights-only.h5", dir);
    XC_EXPECT(snapshot_write(wpath, &sw, &err) == XC_OK, "weights-only save: %s", err.msg);

    { // the run has a parameter the snapshot lacks
        Run b; run_init(&b, &d);
        adamw_free(&b.opt);
        param_new(&b.ps, "extra.weight", 1, (int64_t[]){4});
        adamw_init(&b.opt, &b.ps, a.opt.cfg);
        SnapshotState sb = run_state(&b);
        expect_refused(path, &sb, "model tensor 'extra.weight' missing", "missing tensor");
        run_free(&b);
    }
    { // a parameter of another shape
        XclipDims d2 = d;
        d2.T = 8; // mit.positional_embedding [1, 8, E]
        Run b; run_init(&b, &d2);
        SnapshotState sb = run_state(&b);
        expect_refused(path, &sb, "'mit.positional_embedding' has shape [1, 4, 32] in the snapshot, [1, 8, 32]", "shape mismatch");
        run_free(&b);
    }
    { // the snapshot has a tensor the run lacks (one prompt layer fewer)
        XclipDims d2 = d;
        d2.prompt_layers = 1;
        Run b; run_init(&b, &d2);
        SnapshotState sb = run_state(&b);
        expect_refused(path, &sb, "'prompts_generator.decoder.1.", "extra tensor");
        run_free(&b);
    }
    Run b;
    run_init(&b, &d);
    SnapshotState sb = run_state(&b);
    sb.order_len = 36;
    expect_refused(path, &sb, "data order length: 37 entries in the snapshot, the run has 36", "order length");
    sb = run_state(&b);
    snprintf(b.rngs[2].name, SNAPSHOT_MAX_RNG_NAME, "cutmix");
    expect_refused(path, &sb, "RNG stream 'cutmix' missing", "missing RNG stream");
    sb.n_rngs = 2;
    expect_refused(path, &sb, "RNG stream 'order' is in the snapshot but not in the run", "extra RNG stream");
    snprintf(b.rngs[2].name, SNAPSHOT_MAX_RNG_NAME, "order");
    sb = run_state(&b);
    expect_refused(wpath, &sb, "optimiser state missing", "weights-only snapshot with an optimiser");
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/patched.h5", dir);
    st_copy(path, bad);
    patch_attr(bad, "/optim", "total", a.opt.numel + 1);
    expect_refused(bad, &sb, "optimiser size", "optimiser of another size");
    st_copy(path, bad);
    patch_attr(bad, "/", "format_version", 99);
    expect_refused(bad, &sb, "format_version 99", "future format version");
    // and it still loads after all that
    XC_EXPECT(snapshot_load(path, &sb, &err) == XC_OK, "the good snapshot still loads: %s", err.msg);
    expect_same_run(&a, &b, "after refusals");
    snapshot_state_free_text(&sb);
    // a weights-only snapshot restores the model when no optimiser is asked for
    memset(b.ps.p[3]->data, 0, (size_t)b.ps.p[3]->numel * 4);
    sb.opt = (OptimState){0};
    XC_EXPECT(snapshot_load(wpath, &sb, &err) == XC_OK && !memcmp(b.ps.p[3]->data, a.ps.p[3]->data, (size_t)a.ps.p[3]->numel * 4),
              "weights-only snapshot loads without an optimiser: %s", err.msg);
    snapshot_state_free_text(&sb);
    unlink(path);
    unlink(wpath);
    unlink(bad);
    run_free(&a);
    run_free(&b);
}

// A small weights-only state for directory tests.
static int save_small(const char *dir, int64_t iter) {
    ParamStore ps;
    param_store_init(&ps, "p");
    Tensor *t = param_new(&ps, "w", 1, (int64_t[]){16});
    for (int i = 0; i < 16; i++) t->data[i] = (float)iter + (float)i;
    SnapshotState st = {.params = &ps, .global_iter = iter, .epoch = iter / 100};
    XcError err;
    int rc = snapshot_save(dir, &st, NULL, 0, &err);
    if (rc != XC_OK) fprintf(stderr, "%s\n", err.msg);
    param_store_free(&ps);
    return rc;
}

static void test_retention(const char *dir) {
    for (int64_t it = 10; it <= 60; it += 10) XC_EXPECT(save_small(dir, it) == XC_OK, "save %lld", (long long)it);
    XcError err;
    XC_EXPECT(snapshot_retain(dir, 2, 20, NULL, &err) == 3, "retain deletes 3 of 6: %s", err.msg);
    int64_t *it;
    int n = snapshot_list(dir, &it, &err);
    XC_EXPECT(n == 3 && it[0] == 60 && it[1] == 50 && it[2] == 20, "kept 60, 50 and the best (20); got %d", n);
    xc_free(it);
    XC_EXPECT(snapshot_retain(dir, 1, -1, NULL, &err) == 2, "retain 1 without a best");
    n = snapshot_list(dir, &it, &err);
    XC_EXPECT(n == 1 && it[0] == 60, "only the newest left");
    xc_free(it);
    char p[8400];
    unlink(snapshot_path(dir, 60, p, sizeof p));
}

static void test_stale_temps(const char *dir) {
    pid_t child = fork();
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0); // its pid is now free
    char p[8400];
    const char *names[4];
    char n0[256], n1[256], n2[256];
    snprintf(n0, sizeof n0, "%s%ld-snap-000000000001.h5", SNAPSHOT_TMP_PREFIX, (long)child);     // dead writer
    snprintf(n1, sizeof n1, "%s%ld-snap-000000000002.h5", SNAPSHOT_TMP_PREFIX, (long)getpid());  // ourselves
    snprintf(n2, sizeof n2, "%s%ld-snap-000000000003.h5", SNAPSHOT_TMP_PREFIX, (long)getppid()); // alive
    names[0] = n0; names[1] = n1; names[2] = n2; names[3] = "unrelated.txt";
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        st_write(p, "x", 1);
    }
    XcError err;
    char *log = NULL;
    size_t loglen = 0;
    FILE *lf = open_memstream(&log, &loglen);
    int rc = snapshot_remove_stale_temps(dir, lf, &err);
    fclose(lf);
    XC_EXPECT(rc == 2, "two stale temporaries removed (got %d): %s", rc, err.msg);
    snprintf(p, sizeof p, "%s/%s", dir, n2);
    XC_EXPECT(access(p, F_OK) == 0, "a live writer's temporary is left alone");
    XC_EXPECT(st_contains(log, "still running"), "the live one is reported: %s", log ? log : "");
    snprintf(p, sizeof p, "%s/unrelated.txt", dir);
    XC_EXPECT(access(p, F_OK) == 0, "unrelated files are left alone");
    free(log);
    unlink(p);
    snprintf(p, sizeof p, "%s/%s", dir, n2);
    unlink(p);
}

static void test_resume_auto(const char *dir) {
    XcError err;
    char path[4200];
    XC_EXPECT(snapshot_find_latest(dir, path, sizeof path, NULL, NULL, &err) == 0, "empty directory: nothing to resume");
    XclipDims d = xclip_dims_tiny();
    Run a;
    run_init(&a, &d);
    for (int64_t it = 100; it <= 300; it += 100) {
        run_fill(&a, (uint64_t)it);
        SnapshotState sa = run_state(&a);
        sa.global_iter = it;
        sa.epoch = it / 100;
        XC_EXPECT(snapshot_save(dir, &sa, NULL, 0, &err) == XC_OK, "save %lld: %s", (long long)it, err.msg);
    }
    SnapshotInfo info;
    XC_EXPECT(snapshot_find_latest(dir, path, sizeof path, &info, NULL, &err) == 1 && info.global_iter == 300, "newest is 300");
    // damage the newest: one flipped bit in the middle
    char p300[4200], p200[4200];
    snapshot_path(dir, 300, p300, sizeof p300);
    snapshot_path(dir, 200, p200, sizeof p200);
    size_t n;
    uint8_t *b = st_read(p300, &n);
    b[n / 2] ^= 0x10;
    st_write(p300, b, n);
    free(b);
    char *log = NULL;
    size_t loglen = 0;
    FILE *lf = open_memstream(&log, &loglen);
    Run c;
    run_init(&c, &d);
    SnapshotState sc = run_state(&c);
    int rc = snapshot_resume_latest(dir, &sc, path, sizeof path, lf, &err);
    fclose(lf);
    XC_EXPECT(rc == 1 && !strcmp(path, p200) && sc.global_iter == 200, "resumed from 200 past the damaged 300 (rc %d, %s): %s", rc, path, err.msg);
    XC_EXPECT(st_contains(log, p300) && st_contains(log, "checksum mismatch"), "the skipped file is named with its problem: %s", log ? log : "");
    run_fill(&a, 200);
    expect_same_run(&a, &c, "resume auto");
    snapshot_state_free_text(&sc);
    free(log);
    // a snapshot of another model is an error, not a silent fall-back
    XclipDims d2 = d;
    d2.W = 128;
    Run e;
    run_init(&e, &d2);
    SnapshotState se = run_state(&e);
    XC_EXPECT(snapshot_resume_latest(dir, &se, path, sizeof path, NULL, &err) == XC_ERR && st_contains(err.msg, "shape"),
              "a mismatching newest valid snapshot is an error: %s", err.msg);
    run_free(&e);
    // nothing usable at all
    char p100[4200];
    snapshot_path(dir, 100, p100, sizeof p100);
    unlink(p200);
    truncate(p100, 1000);
    rc = snapshot_find_latest(dir, path, sizeof path, NULL, NULL, &err);
    XC_EXPECT(rc == XC_ERR && st_contains(err.msg, "none of the 2 snapshots") && st_contains(err.msg, "truncated"),
              "no usable snapshot: %s", err.msg);
    unlink(p100);
    unlink(p300);
    run_free(&a);
    run_free(&c);
}

static void test_signals(void) {
    signals_install();
    XC_EXPECT(signals_poll() == 0, "no request at start");
    raise(SIGUSR1);
    XC_EXPECT(signals_poll() == SIGNAL_SNAPSHOT, "SIGUSR1 asks for a snapshot");
    signals_clear(SIGNAL_SNAPSHOT);
    raise(SIGTERM);
    XC_EXPECT(signals_poll() == SIGNAL_STOP && signals_stop_signal() == SIGTERM, "SIGTERM asks to stop");
    signals_clear(SIGNAL_STOP);
    raise(SIGINT);
    XC_EXPECT(signals_poll() == SIGNAL_STOP && signals_stop_signal() == SIGINT, "SIGINT asks to stop");
    signals_clear(SIGNAL_STOP | SIGNAL_SNAPSHOT);
    signals_uninstall();
    XC_EXPECT(XC_EXIT_SNAPSHOT_STOP == 75, "exit code");
}

int main(void) {
    char dir[4096];
    st_mkdtemp(dir, sizeof dir, "snap");
    test_hash();
    test_round_trip(dir);
    test_refusals(dir);
    test_nonfinite_refused(dir);
    test_retention(dir);
    test_stale_temps(dir);
    test_resume_auto(dir);
    test_signals();
    st_rmdir(dir);
    return xc_test_summary("test_snapshot");
}
