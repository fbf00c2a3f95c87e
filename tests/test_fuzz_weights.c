// test_fuzz_weights.c - deterministic mutation fuzzing of the hand-written parsers (zip, pickle,
// safetensors JSON): flip random bytes of the good fixtures (mostly in headers, the pickle and the zip
// directory) and truncate some, then load each variant. Every load must either succeed with a sane set
// or fail with a message; under ASan+UBSan any out-of-bounds access aborts the test.
// A second, structured part builds .pth files from scratch with random storages, views (sizes, strides and
// offsets drawn from small, edge and huge values: 0 strides, 2^31 x 2^31, 2^62, overlapping layouts), shared
// storages and random module graphs (eager and TorchScript, shared and repeated children, self-references):
// a loaded set must also cost at most twice its storages (plus a few elements each); some pickles have bytes after
// their STOP, which must change nothing.
// A third part writes safetensors files whose __metadata__ is a random JSON value (an object of strings, of
// anything, an array, a scalar; up to 200000 values) beside good tensors: each must load exactly when the
// metadata is an object of at most 65535 strings, and be refused naming __metadata__ otherwise.
// HDF5 files are not fuzzed here: they are parsed by libhdf5, which is not hardened against hostile
// files (see weights.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/json.h"
#include "checkpoints/weights.h"
#include "tests/test_util.h"
#include "tests/weights_gen.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) { // xorshift64*
    g_rng ^= g_rng >> 12; g_rng ^= g_rng << 25; g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
}

static int64_t pick(const int64_t *v, size_t n) { return v[next() % n]; }

// One random .pth into out; *budget = the most float elements a load may produce.
static void random_pth(Buf *out, int64_t *budget) {
    static const int64_t sizes[] = {0, 1, 1, 2, 3, 4, 4, 7, 16, (int64_t)1 << 31, (int64_t)1 << 40, (int64_t)1 << 62, 0x7fffffffffffffffLL, -1};
    static const int64_t strides[] = {0, 1, 1, 1, 2, 3, 4, 16, 64, (int64_t)1 << 31, (int64_t)1 << 62, -1};
    static const int64_t numels[] = {0, 1, 4, 16, 64, 1024};
    static const char *const types[] = {"FloatStorage", "HalfStorage", "DoubleStorage", "BFloat16Storage"};
    static const size_t esize[] = {4, 2, 8, 2};
    int ns = 1 + (int)(next() % 3), nt = 1 + (int)(next() % 6), nm = next() % 3 ? 0 : 1 + (int)(next() % 6);
    bool script = next() % 2;
    int64_t numel[3];
    size_t bytes[3];
    int type[3];
    *budget = 0;
    for (int i = 0; i < ns; i++) {
        numel[i] = pick(numels, sizeof numels / sizeof numels[0]);
        type[i] = (int)(next() % 4);
        bytes[i] = (size_t)numel[i] * esize[type[i]];
        *budget += 2 * numel[i] + 64;
    }
    Buf pk = {0};
    put8(&pk, 0x80); put8(&pk, 2);
    // tensors first, each memoised at 1000 + t (storages at 2000 + s once seen)
    bool seen[3] = {false, false, false};
    for (int t = 0; t < nt; t++) {
        int st = (int)(next() % (uint64_t)ns), nd = (int)(next() % 5);
        pk_global(&pk, "torch._utils", "_rebuild_tensor_v2"); put8(&pk, '(');
        if (seen[st] && next() % 4) pk_memo_get(&pk, 2000u + (uint32_t)st);
        else {
            char key[8];
            snprintf(key, sizeof key, "%d", st);
            put8(&pk, '('); pk_str(&pk, "storage"); pk_global(&pk, "torch", types[type[st]]); pk_str(&pk, key); pk_str(&pk, "cpu");
            pk_long(&pk, next() % 8 ? numel[st] : pick(sizes, sizeof sizes / sizeof sizes[0])); put8(&pk, 't'); put8(&pk, 'Q');
            pk_memo_put(&pk, 2000u + (uint32_t)st);
            seen[st] = true;
        }
        int64_t sz[4], sd[4], c = 1;
        for (int d = nd - 1; d >= 0; d--) { // mostly sane (contiguous or transposed), sometimes hostile
            sz[d] = next() % 3 ? (int64_t)(next() % 5) : pick(sizes, sizeof sizes / sizeof sizes[0]);
            sd[d] = next() % 3 ? c : pick(strides, sizeof strides / sizeof strides[0]);
            if (sz[d] > 0 && sz[d] < 1000) c *= sz[d];
        }
        if (nd == 2 && next() % 4 == 0) { int64_t x = sd[0]; sd[0] = sd[1]; sd[1] = x; }
        bool whole = next() % 6 == 0; // the whole storage (for shared storages)
        if (whole) { nd = 1; sz[0] = numel[st]; sd[0] = 1; }
        pk_long(&pk, whole || next() % 2 ? 0 : next() % 3 ? (int64_t)(next() % 8) : pick(sizes, sizeof sizes / sizeof sizes[0]));
        put8(&pk, '('); for (int d = 0; d < nd; d++) pk_long(&pk, sz[d]); put8(&pk, 't');
        put8(&pk, '('); for (int d = 0; d < nd; d++) pk_long(&pk, sd[d]); put8(&pk, 't');
        put8(&pk, 0x89); put8(&pk, ')'); put8(&pk, 't'); put8(&pk, 'R');
        pk_memo_put(&pk, 1000u + (uint32_t)t); put8(&pk, '0');
    }
    if (!nm) { // a plain state dict, names possibly repeated
        put8(&pk, '}'); put8(&pk, '(');
        for (int t = 0; t < nt; t++) {
            char name[16];
            snprintf(name, sizeof name, "w%d", next() % 8 ? t : 0);
            pk_str(&pk, name); pk_memo_get(&pk, 1000u + (uint32_t)(next() % 3 ? t : (int)(next() % (uint64_t)nt)));
        }
        for (int k = 0; next() % 4 == 0 && k < 3; k++) { // more names on tensor 0
            char name[16];
            snprintf(name, sizeof name, "x%d", k);
            pk_str(&pk, name); pk_memo_get(&pk, 1000u);
        }
        put8(&pk, 'u');
    } else { // modules 0..nm-1 bottom-up, memoised at m; the last is the root
        for (int m = 0; m < nm; m++) {
            bool self = next() % 8 == 0;
            pk_module_begin(&pk, script ? "__torch__" : "__main__", "M");
            if (self) pk_memo_put(&pk, (uint32_t)m);
            put8(&pk, '}'); put8(&pk, '(');
            int nten = (int)(next() % 3), nch = m ? (int)(next() % 4) : 0;
            if (!script) { pk_str(&pk, "_parameters"); put8(&pk, '}'); put8(&pk, '('); }
            for (int k = 0; k < nten; k++) {
                char name[16];
                snprintf(name, sizeof name, "p%d", k);
                pk_str(&pk, name); pk_memo_get(&pk, 1000u + (uint32_t)(next() % (uint64_t)nt));
            }
            if (!script) { put8(&pk, 'u'); pk_str(&pk, "_buffers"); put8(&pk, '}'); pk_str(&pk, "_modules"); put8(&pk, '}'); put8(&pk, '('); }
            for (int k = 0; k < nch; k++) {
                char name[16];
                snprintf(name, sizeof name, "m%d", k);
                pk_str(&pk, name); pk_memo_get(&pk, (uint32_t)(next() % (uint64_t)m));
            }
            if (self) { pk_str(&pk, "me"); pk_memo_get(&pk, (uint32_t)m); }
            if (!script) put8(&pk, 'u');
            put8(&pk, 'u'); pk_build(&pk);
            if (!self) pk_memo_put(&pk, (uint32_t)m);
            if (m < nm - 1) put8(&pk, '0');
        }
    }
    put8(&pk, '.');
    for (int k = next() % 4 ? 0 : (int)(next() % 3000); k > 0; k--) put8(&pk, (uint8_t)next()); // never read: after STOP
    torch_build(out, &pk, ns, bytes, next() % 2);
    free(pk.p);
}

// A random JSON value of about `size` values at most `depth` deep.
static void rand_json(Buf *j, int depth, int64_t size) {
    static const char *const scalars[] = {"0", "-1.5e3", "\"x\"", "true", "null", "\"\\u00e9\"", "[]", "{}"};
    uint64_t r = next() % 3;
    if (depth <= 0 || size <= 1 || r == 0) { puts_(j, scalars[next() % 8]); return; }
    bool obj = r == 1;
    int64_t n = 1 + (int64_t)(next() % (uint64_t)(size < 4 ? size : size / 2));
    put8(j, obj ? '{' : '[');
    for (int64_t i = 0; i < n; i++) {
        if (i) put8(j, ',');
        if (obj) { char k[32]; snprintf(k, sizeof k, "\"k%lld\":", (long long)i); puts_(j, k); }
        rand_json(j, depth - 1, next() % 4 ? 1 : size / n);
    }
    put8(j, obj ? '}' : ']');
}

// A safetensors file with two F32 tensors and a random __metadata__; *valid: whether it should load (decided with
// json_parse and a walk of the tree it builds, not with the member-by-member reader under test).
static void random_metadata_file(Buf *out, bool *valid) {
    Buf j = {0}, meta = {0};
    int kind = (int)(next() % 5);
    int64_t n = next() % 3 ? (int64_t)(next() % 50) : (int64_t)(next() % 200000);
    if (kind <= 1) { // an object of strings; kind 1: one value drawn from rand_json instead
        int64_t odd = kind == 1 ? (int64_t)(next() % (uint64_t)(n + 1)) : -1;
        put8(&meta, '{');
        for (int64_t i = 0; i < n; i++) {
            char kv[48];
            snprintf(kv, sizeof kv, "%s\"m%lld\":", i ? "," : "", (long long)i);
            puts_(&meta, kv);
            if (i == odd) rand_json(&meta, 3, 1 + (int64_t)(next() % 1000));
            else puts_(&meta, "\"v\"");
        }
        put8(&meta, '}');
    } else {
        rand_json(&meta, 4, n);
    }
    JsonValue root;
    XcError err;
    *valid = json_parse(&root, (const char *)meta.p, meta.n, "metadata", &err) == XC_OK && root.type == JSON_OBJECT &&
             root.n < 65536;
    for (int64_t i = 0; *valid && i < root.n; i++) *valid = root.items[i].type == JSON_STRING;
    json_free(&root);
    int pos = (int)(next() % 3);
    puts_(&j, "{");
    const char *t0 = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    const char *t1 = "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}";
    for (int k = 0; k < 3; k++) {
        if (k) put8(&j, ',');
        if (k == pos) { puts_(&j, "\"__metadata__\":"); put(&j, meta.p, meta.n); }
        else puts_(&j, k == (pos == 0 ? 1 : 0) ? t0 : t1);
    }
    puts_(&j, "}");
    out->n = 0;
    put64(out, j.n);
    put(out, j.p, j.n);
    for (int k = 0; k < 12; k++) put8(out, 0);
    free(j.p);
    free(meta.p);
}

// The first len bytes of p into path; false (with the reason on stderr) if that fails.
static bool write_bytes(const char *path, const void *p, size_t len) {
    FILE *o = fopen(path, "wb");
    bool ok = o && fwrite(p, 1, len, o) == len;
    if (o && fclose(o) != 0) ok = false;
    if (!ok) perror(path);
    return ok;
}

int main(void) {
    const char *fixtures[] = {"ckpt/clip_state.pth", "ckpt/clip_nested.pth", "ckpt/clip_script_fp16.pt",
                              "ckpt/clip_script_fp32.pt", "ckpt/clip.safetensors", "ckpt/clip_hf.safetensors"};
    const int iters = 300;
    char dir[] = "/tmp/xclip_fuzz_XXXXXX", path[1024], out[1100];
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    int loaded = 0, rejected = 0;
    for (size_t f = 0; f < sizeof fixtures / sizeof fixtures[0]; f++) {
        XC_FIXTURE(fixtures[f], path);
        FILE *fp = fopen(path, "rb");
        if (!fp) { perror(path); return 1; }
        fseek(fp, 0, SEEK_END);
        size_t n = (size_t)ftell(fp);
        fseek(fp, 0, SEEK_SET);
        uint8_t *good = malloc(n), *m = malloc(n);
        if (fread(good, 1, n, fp) != n) { perror(path); return 1; }
        fclose(fp);
        snprintf(out, sizeof out, "%s/fuzz%s", dir, strrchr(fixtures[f], '.'));
        for (int it = 0; it < iters; it++) {
            memcpy(m, good, n);
            int flips = 1 + (int)(next() % 8);
            for (int k = 0; k < flips; k++) {
                uint64_t r = next();
                size_t pos = r % 3 == 0 ? n - 1 - (size_t)(next() % 400)          // zip directory / tail
                           : r % 3 == 1 ? (size_t)(next() % 6000)                  // local headers, pickle, JSON
                                        : (size_t)(next() % n);                    // anywhere
                m[pos % n] = (uint8_t)next();
            }
            size_t len = next() % 10 == 0 ? (size_t)(next() % n) : n;
            if (!write_bytes(out, m, len)) return 1;
            WeightSet ws = {0};
            XcError err = {0};
            if (weights_load(&ws, out, &err) == XC_OK) {
                loaded++;
                bool sane = ws.n > 0;
                for (int i = 0; i < ws.n && sane; i++) {
                    int64_t numel = 1;
                    for (int d = 0; d < ws.t[i].ndim; d++) numel *= ws.t[i].shape[d];
                    sane = numel == ws.t[i].numel && ws.t[i].name[0] && (numel == 0 || ws.t[i].data);
                }
                XC_EXPECT(sane, "%s variant %d loaded an inconsistent set", fixtures[f], it);
            } else {
                rejected++;
                XC_EXPECT(err.msg[0] != 0, "%s variant %d rejected without a message", fixtures[f], it);
            }
            weights_free(&ws);
        }
        free(good);
        free(m);
    }
    printf("%d mutated files: %d loaded, %d rejected\n", loaded + rejected, loaded, rejected);

    int gen_loaded = 0, gen_rejected = 0;
    snprintf(out, sizeof out, "%s/gen.pth", dir);
    for (int it = 0; it < 2000; it++) {
        Buf z = {0};
        int64_t budget;
        random_pth(&z, &budget);
        const bool written = write_bytes(out, z.p, z.n);
        free(z.p);
        if (!written) return 1;
        WeightSet ws = {0};
        XcError err = {0};
        if (weights_load(&ws, out, &err) == XC_OK) {
            gen_loaded++;
            int64_t total = 0;
            bool sane = ws.n > 0;
            for (int i = 0; i < ws.n && sane; i++) {
                int64_t numel = 1;
                for (int d = 0; d < ws.t[i].ndim; d++) numel *= ws.t[i].shape[d];
                sane = numel == ws.t[i].numel && (numel == 0 || ws.t[i].data);
                total += numel;
            }
            XC_EXPECT(sane && total <= budget, "generated file %d: %d tensors, %lld floats for a budget of %lld",
                      it, ws.n, (long long)total, (long long)budget);
        } else {
            gen_rejected++;
            XC_EXPECT(err.msg[0] != 0, "generated file %d rejected without a message", it);
            if (getenv("XCLIP_VERBOSE")) printf("gen %d: %s\n", it, err.msg);
        }
        weights_free(&ws);
    }
    printf("%d generated .pth files (views, shared storages, module graphs): %d loaded, %d rejected\n",
           gen_loaded + gen_rejected, gen_loaded, gen_rejected);
    XC_EXPECT(gen_loaded > 50 && gen_rejected > 50, "the generator should make both kinds (%d loaded, %d rejected)", gen_loaded, gen_rejected);

    int meta_loaded = 0, meta_rejected = 0;
    snprintf(out, sizeof out, "%s/meta.safetensors", dir);
    for (int it = 0; it < 300; it++) {
        Buf z = {0};
        bool valid;
        random_metadata_file(&z, &valid);
        const bool written = write_bytes(out, z.p, z.n);
        free(z.p);
        if (!written) return 1;
        WeightSet ws = {0};
        XcError err = {0};
        int rc = weights_load(&ws, out, &err);
        if (rc == XC_OK) meta_loaded++; else meta_rejected++;
        XC_EXPECT(valid ? rc == XC_OK && ws.n == 2 : rc == XC_ERR && strstr(err.msg, "__metadata__"),
                  "metadata file %d (%s): %s", it, valid ? "valid" : "invalid", rc == XC_OK ? "loaded" : err.msg);
        weights_free(&ws);
    }
    printf("%d safetensors files with random __metadata__: %d loaded, %d rejected\n", meta_loaded + meta_rejected, meta_loaded, meta_rejected);
    XC_EXPECT(meta_loaded > 30 && meta_rejected > 30, "the metadata generator should make both kinds (%d loaded, %d rejected)",
              meta_loaded, meta_rejected);
#if !defined(__SANITIZE_ADDRESS__) // (ASan's redzones and quarantine make the figure meaningless)
    uint64_t rss = xc_peak_rss();
    XC_EXPECT(rss < ((uint64_t)256 << 20), "peak RSS %llu MB", (unsigned long long)(rss >> 20));
#endif
    snprintf(out, sizeof out, "rm -rf '%s'", dir);
    if (system(out) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return xc_test_summary("test_fuzz_weights");
}
