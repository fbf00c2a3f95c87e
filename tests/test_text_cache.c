// test_text_cache.c - the class-text feature cache files (nn/text_cache.h), without a model:
//   - the weights hash follows the text side's tensors (a value, a name, a shape) and ignores the others;
//   - a file written for a key reads back bit for bit; a key that differs in anything (kind, K, M, S, E,
//     weights, build, one token) does not read it: another file name, or the reason when forced onto the file;
//   - hostile files, made here: every single-byte change, every truncation, one byte more, a foreign file, a
//     folder in its place: never a hit, always a reason naming the file; a missing file is a silent miss;
//   - writing creates the missing folders, leaves no temporary file, replaces an older entry, and fails with a
//     message (nothing left behind) where the folder cannot be made;
//   - the folder: --text-cache, else $XDG_CACHE_HOME/xclip (absolute only), else $HOME/.cache/xclip.
#include "test_util.h"
#include "autograd/rng.h"
#include "autograd/util.h"
#include "checkpoints/hash64.h"
#include "nn/text_cache.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static bool text_side(const char *name) { return strncmp(name, "visual.", 7) != 0; }

static const char *build_dir(void) { return getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build"; }

static int files_in(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    XC_CHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static void test_weights_hash(void) {
    ParamStore ps;
    param_store_init(&ps, "params");
    Tensor *tok = param_new(&ps, "token_embedding.weight", 2, (int64_t[]){10, 4});
    Tensor *vis = param_new(&ps, "visual.conv1.weight", 2, (int64_t[]){3, 3});
    param_new(&ps, "prompt_learner.ctx", 2, (int64_t[]){2, 4});
    Rng r = rng_stream(3, RNG_STREAM_TEST);
    for (int i = 0; i < ps.n; i++) rng_fill_normal(&r, ps.p[i]->data, ps.p[i]->numel, 0.0f, 1.0f);
    uint64_t h0[2], h[2];
    text_cache_hash_weights(&ps, text_side, h0);
    text_cache_hash_weights(&ps, text_side, h);
    XC_EXPECT(h[0] == h0[0] && h[1] == h0[1] && h0[0] != h0[1], "the weights hash repeats, two seeds differ");
    vis->data[4] += 1.0f; // not on the text side
    text_cache_hash_weights(&ps, text_side, h);
    XC_EXPECT(h[0] == h0[0] && h[1] == h0[1], "a vision tensor changed the text weights hash");
    float keep = tok->data[37];
    tok->data[37] = nextafterf(keep, 1e30f); // one ulp of one text value
    text_cache_hash_weights(&ps, text_side, h);
    XC_EXPECT(h[0] != h0[0] && h[1] != h0[1], "one ulp of a text tensor left the hash unchanged");
    tok->data[37] = keep;
    tok->shape[0] = 20, tok->shape[1] = 2; // the same bytes in another shape
    text_cache_hash_weights(&ps, text_side, h);
    XC_EXPECT(h[0] != h0[0] && h[1] != h0[1], "a reshaped text tensor left the hash unchanged");
    tok->shape[0] = 10, tok->shape[1] = 4;
    text_cache_hash_weights(&ps, text_side, h);
    XC_EXPECT(h[0] == h0[0] && h[1] == h0[1], "restored tensors give the first hash again");
    ParamStore renamed; // the same values under another name
    param_store_init(&renamed, "params");
    for (int i = 0; i < ps.n; i++) {
        Tensor *t = param_new(&renamed, i ? ps.p[i]->name : "positional_embedding", ps.p[i]->ndim, ps.p[i]->shape);
        memcpy(t->data, ps.p[i]->data, sizeof(float) * (size_t)t->numel);
    }
    text_cache_hash_weights(&renamed, text_side, h);
    XC_EXPECT(h[0] != h0[0] && h[1] != h0[1], "a renamed text tensor left the hash unchanged");
    param_store_free(&renamed);
    param_store_free(&ps);
}

// A key (K, M, S, E) with random tokens (K*M*S ids in key_tokens) and features (K*E).
typedef struct Case {
    TextCacheKey key;
    int32_t tokens[4 * 2 * 8];
    float features[4 * 6];
} Case;

static void case_init(Case *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->key.kind, sizeof c->key.kind, "xclip");
    c->key.K = 3, c->key.M = 2, c->key.S = 8, c->key.E = 6;
    c->key.weights[0] = 0x1234, c->key.weights[1] = 0x5678;
    c->key.build = text_cache_build_id();
    Rng r = rng_stream(5, RNG_STREAM_TEST);
    for (size_t i = 0; i < sizeof c->tokens / sizeof c->tokens[0]; i++) c->tokens[i] = (int32_t)(rng_uniform(&r) * 49408);
    rng_fill_normal(&r, c->features, (int64_t)(sizeof c->features / sizeof c->features[0]), 0.0f, 1.0f);
    c->key.tokens = c->tokens;
}

// Reading path with key must miss with a reason containing want (and naming the file).
static void expect_unusable(const char *what, const char *path, const TextCacheKey *key, const char *want) {
    XcError err = {{0}};
    float *f = (float *)1;
    TextCacheStatus st = text_cache_read(path, key, &f, &err);
    XC_EXPECT(st == TEXT_CACHE_UNUSABLE && !f && strstr(err.msg, path) && strstr(err.msg, want),
              "%s: status %d, message '%s' (want '%s')", what, (int)st, err.msg, want);
}

static void test_files(const char *work) {
    char dir[1200], path[1400], other[1400];
    snprintf(dir, sizeof dir, "%s/a/b/cache", work); // a and b do not exist yet
    Case c;
    case_init(&c);
    XC_EXPECT(c.key.build != 0 && c.key.build == text_cache_build_id(), "the build id is known and repeats");
    XC_EXPECT(text_cache_path(dir, &c.key, path, sizeof path) == XC_OK && strstr(path, dir) && strstr(path, ".xtf"),
              "path %s", path);
    XcError err = {{0}};
    float *f = (float *)1;
    XC_EXPECT(text_cache_read(path, &c.key, &f, &err) == TEXT_CACHE_ABSENT && !f, "a missing file is a silent miss");
    XC_EXPECT(text_cache_write(path, &c.key, c.features, &err) == XC_OK, "write: %s", err.msg);
    XC_EXPECT(files_in(dir) == 1, "one file in %s after writing, no temporary left: %d", dir, files_in(dir));
    struct stat st;
    XC_EXPECT(stat(path, &st) == 0 && st.st_size == 128 + 3 * 2 * 8 * 4 + 3 * 6 * 4, "file size %lld", (long long)st.st_size);
    XC_EXPECT(text_cache_read(path, &c.key, &f, &err) == TEXT_CACHE_HIT && f && !memcmp(f, c.features, 3 * 6 * sizeof(float)),
              "read back bit for bit: %s", err.msg);
    xc_free(f);

    // keys that differ: another file name (all but the build), and forced onto this file, the reason
    static const struct { const char *what, *reason; bool same_name; } V[] = {
        {"kind", "kind or sizes differ", false},   {"K", "kind or sizes differ", false},
        {"M", "kind or sizes differ", false},      {"S", "kind or sizes differ", false},
        {"E", "kind or sizes differ", false},      {"weights", "other weights", false},
        {"build", "another build", true},          {"one token", "other label texts", false},
    };
    for (size_t v = 0; v < sizeof V / sizeof V[0]; v++) {
        Case d;
        case_init(&d);
        switch (v) {
        case 0: snprintf(d.key.kind, sizeof d.key.kind, "clip"); break;
        case 1: d.key.K = 4; break;
        case 2: d.key.M = 1; break;
        case 3: d.key.S = 7; break;
        case 4: d.key.E = 5; break;
        case 5: d.key.weights[1] ^= 1; break;
        case 6: d.key.build ^= 1; break;
        default: d.tokens[3 * 2 * 8 - 1] ^= 1; break; // the last id of the last row
        }
        XC_EXPECT(text_cache_path(dir, &d.key, other, sizeof other) == XC_OK, "path");
        XC_EXPECT((strcmp(other, path) == 0) == V[v].same_name, "another %s: file name %s vs %s", V[v].what, other, path);
        char what[64];
        snprintf(what, sizeof what, "another %s", V[v].what);
        expect_unusable(what, path, &d.key, V[v].reason);
    }

    // hostile versions of the file: every byte changed, every truncation, one byte more
    size_t len;
    uint8_t *good = xc_read_file(path, 1 << 20, &len, &err);
    XC_CHECK(good, "%s", err.msg);
    snprintf(other, sizeof other, "%s/hostile.xtf", work);
    int hits = 0, silent = 0;
    for (size_t i = 0; i < len; i++) {
        good[i] ^= 0x10;
        write_bytes(other, good, len);
        good[i] ^= 0x10;
        err.msg[0] = 0;
        TextCacheStatus s = text_cache_read(other, &c.key, &f, &err);
        hits += s == TEXT_CACHE_HIT;
        silent += s != TEXT_CACHE_HIT && !strstr(err.msg, other);
        if (s == TEXT_CACHE_HIT) xc_free(f);
    }
    XC_EXPECT(hits == 0 && silent == 0, "%zu one-byte changes: %d read as hits, %d misses without a reason", len, hits, silent);
    hits = silent = 0;
    for (size_t n = 0; n < len; n++) {
        write_bytes(other, good, n);
        err.msg[0] = 0;
        TextCacheStatus s = text_cache_read(other, &c.key, &f, &err);
        hits += s == TEXT_CACHE_HIT;
        silent += s != TEXT_CACHE_HIT && !strstr(err.msg, other);
        if (s == TEXT_CACHE_HIT) xc_free(f);
    }
    XC_EXPECT(hits == 0 && silent == 0, "%zu truncations: %d read as hits, %d misses without a reason", len, hits, silent);
    uint8_t *longer = xc_malloc(len + 1);
    memcpy(longer, good, len);
    longer[len] = 0;
    write_bytes(other, longer, len + 1);
    expect_unusable("one byte more", other, &c.key, "truncated or padded");
    xc_free(longer);
    write_bytes(other, "id,name\n0,abseiling\n", 20);
    expect_unusable("a short foreign file", other, &c.key, "too short");
    char foreign[200];
    memset(foreign, 'x', sizeof foreign);
    write_bytes(other, foreign, sizeof foreign);
    expect_unusable("a foreign file", other, &c.key, "not a text-feature cache file");
    // the header re-sealed with another version, and with another build (checksum recomputed: only the field speaks)
    memcpy(longer = xc_malloc(len), good, len);
    longer[8] = 2;
    uint64_t sum = hash64(longer, 120, 0);
    memcpy(longer + 120, &sum, 8);
    write_bytes(other, longer, len);
    expect_unusable("format version 2", other, &c.key, "another format version");
    memcpy(longer, good, len);
    longer[96] ^= 1;
    sum = hash64(longer, 120, 0);
    memcpy(longer + 120, &sum, 8);
    write_bytes(other, longer, len);
    expect_unusable("another build, re-sealed", other, &c.key, "another build");
    xc_free(longer);
    unlink(other);
    XC_EXPECT(mkdir(other, 0700) == 0, "mkdir %s", other);
    expect_unusable("a folder", other, &c.key, "directory");
    rmdir(other);

    // an older entry is replaced whole
    c.features[0] += 1.0f;
    XC_EXPECT(text_cache_write(path, &c.key, c.features, &err) == XC_OK, "rewrite: %s", err.msg);
    XC_EXPECT(text_cache_read(path, &c.key, &f, &err) == TEXT_CACHE_HIT && f && f[0] == c.features[0], "rewritten entry read");
    xc_free(f);
    XC_EXPECT(files_in(dir) == 1, "one file after the rewrite: %d", files_in(dir));
    xc_free(good);

    // a folder that cannot be made (a file in the way): an error naming it, nothing left behind
    snprintf(other, sizeof other, "%s/blocker", work);
    write_bytes(other, "x", 1);
    char bad[1500];
    snprintf(bad, sizeof bad, "%s/blocker/sub/entry.xtf", work);
    err.msg[0] = 0;
    XC_EXPECT(text_cache_write(bad, &c.key, c.features, &err) == XC_ERR && strstr(err.msg, "blocker"), "write under a file: %s",
              err.msg);
}

static void test_dir(void) {
    char out[256];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char *saved_xdg = xdg ? strdup(xdg) : NULL, *saved_home = home ? strdup(home) : NULL;
    XC_EXPECT(text_cache_dir("/given/dir", out, sizeof out) && !strcmp(out, "/given/dir"), "given: %s", out);
    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    setenv("HOME", "/home/u", 1);
    XC_EXPECT(text_cache_dir(NULL, out, sizeof out) && !strcmp(out, "/x/cache/xclip"), "XDG_CACHE_HOME: %s", out);
    setenv("XDG_CACHE_HOME", "relative/cache", 1); // the XDG spec: a relative path is invalid, ignored
    XC_EXPECT(text_cache_dir(NULL, out, sizeof out) && !strcmp(out, "/home/u/.cache/xclip"), "relative XDG ignored: %s", out);
    unsetenv("XDG_CACHE_HOME");
    XC_EXPECT(text_cache_dir(NULL, out, sizeof out) && !strcmp(out, "/home/u/.cache/xclip"), "HOME: %s", out);
    unsetenv("HOME");
    XC_EXPECT(!text_cache_dir(NULL, out, sizeof out), "no folder without HOME or XDG_CACHE_HOME");
    XC_EXPECT(!text_cache_dir("/a/very/long/folder/name", out, 8), "a folder that does not fit is refused");
    if (saved_xdg) setenv("XDG_CACHE_HOME", saved_xdg, 1);
    if (saved_home) setenv("HOME", saved_home, 1);
    free(saved_xdg);
    free(saved_home);
}

int main(void) {
    char work[1024], cmd[2200];
    snprintf(work, sizeof work, "%s/test_text_cache.d", build_dir());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", work, work);
    XC_CHECK(system(cmd) == 0, "cannot make %s", work);
    test_weights_hash();
    test_files(work);
    test_dir();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    if (xc_tests_failed == 0 && system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", work);
    return xc_test_summary("test_text_cache");
}
