// test_snapshot_corrupt.c - damaged snapshots are rejected with a message and never crash the reader.
//
// Forged snapshots (values changed and every checksum recomputed, which anyone can do: XXH64 is unkeyed) that
// would silently change training are refused by the semantic checks of snapshot_load, naming the tensor or
// field: a negative or infinite second moment, a NaN first moment, a decay flag of 7, a negative rate,
// deleted moments of a trained tensor, a negative optimiser step or best epoch.
//
// From one good snapshot, 300+ damaged copies: truncations at many lengths, single bit flips at random
// offsets and in the places that matter (our header, the HDF5 superblock and object headers at the start,
// the metadata HDF5 writes at the end), zeroed 4 KiB pages, garbage appended, files that are not snapshots;
// plus copies damaged inside a tensor and then re-sealed (the whole-file checksum is recomputed), which
// only the per-dataset checksums can catch. Each case runs in a forked child that calls snapshot_verify,
// snapshot_load and weights_load: every one must fail with a message; a child that crashes (signal) or
// accepts the file fails the test. Run under ASan by the sanitizer CI pass as well.
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>

#include "checkpoints/hash64.h"
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

// ---- forging: change a dataset or attribute with libhdf5, recompute its checksum, re-seal the file ----------
typedef void (*Mutate)(void *data, size_t nbytes);
static void m_neg_v(void *d, size_t n) { ((float *)d)[n / 4 / 2] = -1e-3f; }
static void m_inf(void *d, size_t n) { ((float *)d)[n / 4 - 1] = INFINITY; }
static void m_nan(void *d, size_t n) { (void)n; ((float *)d)[0] = NAN; }
static void m_flag7(void *d, size_t n) { ((uint8_t *)d)[n - 1] = 7; }
static void m_neg_rate(void *d, size_t n) { (void)n; ((float *)d)[1] = -0.5f; }

// A copy of good at out with dataset group/name mutated (its xxh64 attribute recomputed), or, with mutate NULL,
// both moments of tensor name deleted (group "optim"), or (attr set) the int64 attribute attr of group set to value. Then re-sealed.
static void forge(const char *good, const char *out, const char *group, const char *name, Mutate mutate,
                  const char *attr, int64_t value) {
    XC_EXPECT(st_copy(good, out) == 0, "copy to %s", out);
    hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (attr) {
        hid_t a = H5Aopen(g, attr, H5P_DEFAULT);
        XC_EXPECT(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0, "forge attribute %s/%s", group, attr);
        H5Aclose(a);
    } else if (!mutate) {
        char m[256], v[256];
        snprintf(m, sizeof m, "m/%s", name);
        snprintf(v, sizeof v, "v/%s", name);
        XC_EXPECT(H5Ldelete(g, m, H5P_DEFAULT) >= 0 && H5Ldelete(g, v, H5P_DEFAULT) >= 0, "forge: delete the moments of %s", name);
    } else {
        hid_t d = H5Dopen2(g, name, H5P_DEFAULT), t = H5Dget_type(d);
        size_t nb = (size_t)H5Dget_storage_size(d);
        void *buf = malloc(nb);
        XC_EXPECT(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "forge: read %s/%s", group, name);
        mutate(buf, nb);
        uint64_t h = hash64(buf, nb, 0);
        hid_t a = H5Aopen(d, "xxh64", H5P_DEFAULT);
        XC_EXPECT(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 && H5Awrite(a, H5T_NATIVE_UINT64, &h) >= 0,
                  "forge: write %s/%s", group, name);
        H5Aclose(a);
        H5Tclose(t);
        H5Dclose(d);
        free(buf);
    }
    H5Gclose(g);
    H5Fclose(f);
    XcError err;
    XC_EXPECT(snapshot_seal(out, 5, 0, &err) == XC_OK, "reseal: %s", err.msg);
}

// The forged file verifies (its checksums are right) but snapshot_load refuses it, naming what is wrong.
static void check_forged(const char *good, const char *label, const char *group, const char *name, Mutate mutate,
                         const char *attr, int64_t value, const char *needle1, const char *needle2) {
    char path[8400];
    snprintf(path, sizeof path, "%s/forged.h5", g_dir);
    forge(good, path, group, name, mutate, attr, value);
    XcError err = {{0}};
    XC_EXPECT(snapshot_verify(path, NULL, &err) == XC_OK, "forged (%s): the checksums should verify: %s", label, err.msg);
    SnapshotState st = state();
    st.config = st.bad_videos = st.fewshot_list = NULL;
    int rc = snapshot_load(path, &st, &err);
    snapshot_state_free_text(&st);
    XC_EXPECT(rc == XC_ERR, "forged (%s): accepted by snapshot_load", label);
    XC_EXPECT(st_contains(err.msg, path) && st_contains(err.msg, needle1) && st_contains(err.msg, needle2),
              "forged (%s): the message should name the snapshot, '%s' and '%s': %s", label, needle1, needle2, err.msg);
    printf("  forged: %s -> %s\n", label, err.msg);
    g_cases++;
    unlink(path);
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
    for (int64_t i = 0; i < g_opt.numel; i++) g_opt.v[i] = fabsf(g_opt.v[i]); // a second moment is >= 0
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
    // forged but consistent: every checksum recomputed; the semantic checks of the load refuse them
    check_forged(good, "negative second moment", "optim/v", "visual.proj", m_neg_v, NULL, 0, "moment v of 'visual.proj'", "negative");
    check_forged(good, "infinite second moment", "optim/v", "mit.positional_embedding", m_inf, NULL, 0,
                 "moment v of 'mit.positional_embedding'", "infinite");
    check_forged(good, "NaN first moment", "optim/m", "visual.conv1.weight", m_nan, NULL, 0, "moment m of 'visual.conv1.weight'", "NaN");
    check_forged(good, "decay flag 7", "optim", "decay", m_flag7, NULL, 0, "optim/decay of '", "is 7");
    check_forged(good, "negative rate", "optim", "lr_scale", m_neg_rate, NULL, 0, "optim/lr_scale of '", "-0.5");
    check_forged(good, "moments deleted", "optim", "visual.proj", NULL, NULL, 0, "moment m of 'visual.proj' missing", "trained");
    check_forged(good, "negative optimiser step", "optim", NULL, NULL, "step", -3, "optimiser step -3", "negative");
    check_forged(good, "best epoch -5", "/", NULL, NULL, "best_epoch", -5, "epoch -5", "out of range");
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
