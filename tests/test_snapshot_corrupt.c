// test_snapshot_corrupt.c - damaged snapshots are rejected with a message and never crash the reader.
//
// From one good snapshot, 300+ damaged copies: truncations at many lengths, single bit flips at random
// offsets and in the places that matter (our header, the HDF5 superblock and object headers at the start,
// the metadata HDF5 writes at the end), zeroed 4 KiB pages, garbage appended, files that are not snapshots;
// plus copies damaged inside a tensor and then re-sealed (the whole-file checksum is recomputed), which
// only the per-dataset checksums can catch. Each case runs in a forked child that calls snapshot_verify,
// snapshot_load and weights_load: every one must fail with a message; a child that crashes (signal) or
// accepts the file fails the test. Run under ASan by the sanitizer CI pass as well.
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>

#include "checkpoints/snapshot.h"
#include "optim/adamw.h"
#include "tests/snap_test_util.h"
#include "tests/test_util.h"
#include "tests/xclip_params.h"

static ParamStore g_ps;
static AdamW g_opt;
static SnapshotRng g_rng[1];
static int64_t g_order[12];
static char g_dir[4096];
static int g_cases, g_crashes, g_accepted;

static SnapshotState state(void) {
    return (SnapshotState){.params = &g_ps, .opt = adamw_state(&g_opt), .global_iter = 5, .rngs = g_rng, .n_rngs = 1,
                           .order = g_order, .order_len = 12, .config = "x: 1\n", .bad_videos = "", .fewshot_list = "a 1\n"};
}

// Run the three readers on path in a child. Returns 0 all rejected, 1 something accepted, 2 crash.
static int probe(const char *path, bool expect_ok, bool weights_may_pass, char *msg, size_t cap) {
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); exit(1); }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        XcError e1 = {{0}}, e2 = {{0}}, e3 = {{0}};
        SnapshotState st = state();
        st.config = st.bad_videos = st.fewshot_list = NULL; // the load allocates them
        int a = snapshot_verify(path, NULL, &e1);
        int b = snapshot_load(path, &st, &e2);
        WeightSet ws = {0};
        int c = weights_load(&ws, path, &e3);
        weights_free(&ws);
        snapshot_state_free_text(&st);
        bool all_rejected = a == XC_ERR && b == XC_ERR && (c == XC_ERR || weights_may_pass) && e1.msg[0] && e2.msg[0] && (e3.msg[0] || c == XC_OK);
        bool all_ok = a == XC_OK && b == XC_OK && c == XC_OK;
        ssize_t w = write(fds[1], e2.msg, strlen(e2.msg));
        (void)w;
        _exit(expect_ok ? (all_ok ? 0 : 1) : (all_rejected ? 0 : 1));
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fds[0], msg + got, cap - 1 - got)) > 0) got += (size_t)r;
    msg[got] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return 2;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static void check_case(const uint8_t *data, size_t n, const char *label, const char *needle) {
    char path[8400], msg[1100];
    snprintf(path, sizeof path, "%s/case.h5", g_dir);
    st_write(path, data, n);
    int rc = probe(path, false, false, msg, sizeof msg);
    g_cases++;
    if (rc == 2) g_crashes++;
    if (rc == 1) g_accepted++;
    XC_EXPECT(rc == 0, "%s: %s", label, rc == 2 ? "CRASHED" : "was not rejected by every reader");
    if (needle) XC_EXPECT(st_contains(msg, needle), "%s: message should mention '%s': %s", label, needle, msg);
    if (g_cases % 60 == 1) printf("  e.g. %s -> %s\n", label, msg);
}

// Offset in the file of the first byte of dataset /model/<name> (or -1).
static int64_t data_offset(const char *path, const char *group, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    haddr_t a = H5Dget_offset(d);
    H5Dclose(d);
    H5Gclose(g);
    H5Fclose(f);
    return a == HADDR_UNDEF ? -1 : (int64_t)a;
}

int main(void) {
    XclipDims d = xclip_dims_tiny();
    d.vision_layers = 1;
    d.text_layers = 1;
    param_store_init(&g_ps, "params");
    xclip_register_params(&g_ps, &d, true);
    xclip_fill_random(&g_ps, 11);
    adamw_init(&g_opt, &g_ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
    Rng r = rng_stream(12, RNG_STREAM_TEST);
    rng_fill_normal(&r, g_opt.m, g_opt.numel, 0, 1);
    rng_fill_normal(&r, g_opt.v, g_opt.numel, 0, 1);
    snprintf(g_rng[0].name, SNAPSHOT_MAX_RNG_NAME, "drop");
    g_rng[0].state = rng_get_state(&r);
    rng_permutation(&r, g_order, 12);
    st_mkdtemp(g_dir, sizeof g_dir, "snapcorrupt");

    char good[8400], msg[1100];
    XcError err;
    SnapshotState st = state();
    snapshot_path(g_dir, 5, good, sizeof good);
    XC_EXPECT(snapshot_save(g_dir, &st, NULL, 0, &err) == XC_OK, "save: %s", err.msg);
    size_t n;
    uint8_t *orig = st_read(good, &n);
    XC_EXPECT(orig && n > 4096, "snapshot read back");
    if (!orig) return xc_test_summary("test_snapshot_corrupt");
    XC_EXPECT(probe(good, true, false, msg, sizeof msg) == 0, "control: the undamaged snapshot is accepted by every reader: %s", msg);
    printf("snapshot of %zu bytes\n", n);
    uint8_t *buf = malloc(n + 8192);
    char label[128];

    // truncations: every length below 600, then 60 spread over the file, then the last bytes
    size_t cuts[200];
    int nc = 0;
    size_t small[] = {0, 1, 7, 8, 9, 63, 64, 100, 511, 512, 513, 519, 520, 521, 600};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) cuts[nc++] = small[i];
    for (int i = 1; i <= 60; i++) cuts[nc++] = 600 + (n - 600) * (size_t)i / 61;
    size_t tail[] = {n - 4096, n - 512, n - 9, n - 8, n - 1};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) cuts[nc++] = tail[i];
    for (int i = 0; i < nc; i++) {
        snprintf(label, sizeof label, "truncated to %zu bytes", cuts[i]);
        check_case(orig, cuts[i], label, cuts[i] < 520 ? "a snapshot has at least 520" : "truncated");
    }
    // bit flips: header fields, superblock / root metadata, the end (metadata written at close), random
    size_t flips[300];
    int nf = 0;
    for (size_t o = 0; o < 56; o += 3) flips[nf++] = o;                       // our header
    for (size_t o = 512; o < 512 + 2048; o += 53) flips[nf++] = o;            // superblock, root group
    for (size_t o = n - 3000; o < n; o += 97) flips[nf++] = o;                // trailing metadata
    Rng fr = rng_stream(99, RNG_STREAM_TEST);
    for (int i = 0; i < 100; i++) flips[nf++] = 512 + rng_below(&fr, n - 512);
    for (int i = 0; i < nf; i++) {
        memcpy(buf, orig, n);
        int bit = (int)rng_below(&fr, 8);
        buf[flips[i]] ^= (uint8_t)(1u << bit);
        snprintf(label, sizeof label, "bit %d flipped at offset %zu", bit, flips[i]);
        check_case(buf, n, label, flips[i] < 56 ? NULL : "checksum mismatch");
    }
    // zeroed 4 KiB pages
    for (int i = 0; i < 24; i++) {
        memcpy(buf, orig, n);
        size_t page = i < 4 ? (size_t)i : (size_t)rng_below(&fr, n / 4096);
        size_t len = page * 4096 + 4096 <= n ? 4096 : n - page * 4096;
        memset(buf + page * 4096, 0, len);
        snprintf(label, sizeof label, "page %zu zeroed", page);
        check_case(buf, n, label, NULL);
    }
    // garbage appended
    size_t extra[] = {1, 7, 8, 100, 512, 4096, 8000};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        memcpy(buf, orig, n);
        for (size_t j = 0; j < extra[i]; j++) buf[n + j] = (uint8_t)rng_u32(&fr);
        snprintf(label, sizeof label, "%zu bytes appended", extra[i]);
        check_case(buf, n + extra[i], label, "appended");
    }
    // not snapshots at all: an empty file, text, a plain HDF5 file (no user block header)
    check_case((const uint8_t *)"", 0, "empty file", NULL);
    memset(buf, 'a', 4096);
    check_case(buf, 4096, "text file", "not a snapshot");
    check_case(orig + 512, n - 512, "HDF5 part without the user block", "not a snapshot");

    // damage inside tensor data, then re-seal: only the per-dataset checksums catch it
    const char *victims[][2] = {{"model", "visual.conv1.weight"}, {"model", "logit_scale"}, {"model", "prompts_generator.alpha"},
                                {"optim/m", "visual.proj"}, {"optim/v", "mit.positional_embedding"}, {"data", "order"},
                                {"rng", "drop"}, {"text", "config"}};
    for (size_t i = 0; i < sizeof victims / sizeof victims[0]; i++) {
        int64_t off = data_offset(good, victims[i][0], victims[i][1]);
        XC_EXPECT(off > 0, "offset of %s/%s", victims[i][0], victims[i][1]);
        if (off <= 0) continue;
        char path[8400];
        snprintf(path, sizeof path, "%s/resealed.h5", g_dir);
        memcpy(buf, orig, n);
        buf[off] ^= 0x01; // H5Dget_offset counts from the start of the file, user block included
        st_write(path, buf, n);
        XC_EXPECT(snapshot_seal(path, 5, 0, &err) == XC_OK, "reseal: %s", err.msg);
        // the model-only reader (weights_load) rightly accepts damage outside /model
        int rc = probe(path, false, strcmp(victims[i][0], "model") != 0, msg, sizeof msg);
        g_cases++;
        if (rc == 2) g_crashes++;
        XC_EXPECT(rc == 0 && st_contains(msg, "checksum mismatch (damaged data)"),
                  "re-sealed damage in %s/%s: rc %d: %s", victims[i][0], victims[i][1], rc, msg);
        printf("  re-sealed damage in %s/%s -> %s\n", victims[i][0], victims[i][1], msg);
        unlink(path);
    }
    printf("%d damaged files: %d crashes, %d accepted\n", g_cases, g_crashes, g_accepted);
    XC_EXPECT(g_cases >= 200, "at least 200 damaged files (%d)", g_cases);
    XC_EXPECT(g_crashes == 0, "no crash");
    free(buf);
    free(orig);
    st_rmdir(g_dir);
    adamw_free(&g_opt);
    param_store_free(&g_ps);
    return xc_test_summary("test_snapshot_corrupt");
}
