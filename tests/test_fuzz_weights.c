// test_fuzz_weights.c - deterministic mutation fuzzing of the hand-written parsers (zip, pickle,
// safetensors JSON): flip random bytes of the good fixtures (mostly in headers, the pickle and the zip
// directory) and truncate some, then load each variant. Every load must either succeed with a sane set
// or fail with a message; under ASan+UBSan any out-of-bounds access aborts the test.
// HDF5 files are not fuzzed here: they are parsed by libhdf5, which is not hardened against hostile
// files (see weights.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/weights.h"
#include "tests/test_util.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) { // xorshift64*
    g_rng ^= g_rng >> 12; g_rng ^= g_rng << 25; g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ull;
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
            FILE *o = fopen(out, "wb");
            if (!o || fwrite(m, 1, len, o) != len) { perror(out); return 1; }
            fclose(o);
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
    snprintf(out, sizeof out, "rm -rf '%s'", dir);
    if (system(out) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return xc_test_summary("test_fuzz_weights");
}
