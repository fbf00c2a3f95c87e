// test_data_synth.c - a synthetic video is the same file byte for byte whatever the heap held before it was
// encoded: each video is written with glibc's malloc perturbation off and then with freshly allocated blocks
// filled with two different bytes. (libx264's AVX-512 macroblock-tree code reads a few bytes of its frame
// buffers that nothing wrote, so with mbtree on, the files depended on the process's allocation history:
// where stdout/stderr pointed, the OpenBLAS core type, the length of the output path. On CPUs without
// AVX-512 this test cannot fail.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "data/synth.h"
#include "tests/test_util.h"

#define NVID 12

// Encode video v into path, with fresh heap blocks filled with ~perturb (0: not filled). The file's bytes
// (xc_malloc'd) or NULL.
static char *encode(const SynthConfig *sc, int v, int perturb, const char *path, size_t *len) {
#ifdef M_PERTURB
    mallopt(M_PERTURB, perturb);
#else
    (void)perturb;
#endif
    XcError err = {{0}};
    int rc = synth_write_video(path, sc, v % sc->classes, (uint64_t)v, &err);
#ifdef M_PERTURB
    mallopt(M_PERTURB, 0);
#endif
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    if (rc != XC_OK) return NULL;
    char *buf = xc_read_file(path, 1 << 24, len, &err);
    XC_EXPECT(buf != NULL, "%s", err.msg);
    return buf;
}

int main(void) {
    char dir[] = "/tmp/xclip_synth_XXXXXX";
    XC_CHECK(mkdtemp(dir), "mkdtemp");
    SynthConfig sc = synth_config_default();
    sc.frames = 16; sc.size = 48;
    char path[600];
    snprintf(path, sizeof path, "%s/v.mp4", dir);
    int same = 0;
    for (int v = 0; v < NVID; v++) {
        size_t n0 = 0, n1 = 0, n2 = 0;
        char *f0 = encode(&sc, v, 0, path, &n0), *f1 = encode(&sc, v, 0x55, path, &n1), *f2 = encode(&sc, v, 0xa3, path, &n2);
        if (f0 && f1 && f2) {
            int ok = n0 == n1 && n0 == n2 && !memcmp(f0, f1, n0) && !memcmp(f0, f2, n0);
            XC_EXPECT(ok, "video %d differs with different heap contents (%zu, %zu, %zu bytes)", v, n0, n1, n2);
            same += ok;
        }
        xc_free(f0); xc_free(f1); xc_free(f2);
    }
    printf("%d/%d videos identical under three heap fillings\n", same, NVID);
    remove(path);
    if (rmdir(dir) != 0) fprintf(stderr, "cleanup of %s failed\n", dir);
    return xc_test_summary("test_data_synth");
}
