// test_util.h - helpers shared by the test programs. Every check feeds the exit status.
//
//   int main(void) {
//       XC_EXPECT(x == 3, "x was %d", x);
//       xc_expect_close("logits", got, ref, n, 1e-5, 1e-4);
//       xc_expect_elementwise("grad w", got, ref, n, 3e-6, 3e-5);  // floor relative to max |ref|
//       return xc_test_summary("test_name");   // prints "N passed, M failed", returns 0 or 1
//   }
#pragma once
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

static int xc_tests_passed, xc_tests_failed;

#define XC_EXPECT(cond, ...)                                                    \
    do {                                                                        \
        if (cond) { xc_tests_passed++; }                                        \
        else {                                                                  \
            xc_tests_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

// |got-ref| <= atol + rtol*|ref| elementwise; prints the first mismatches and the max difference.
// Returns the max abs difference; counts one pass or one fail.
static inline double xc_expect_close(const char *what, const float *got, const float *ref, long n,
                                     double atol, double rtol) {
    double maxdiff = 0, maxrel = 0;
    long bad = 0;
    for (long i = 0; i < n; i++) {
        if (isinf(ref[i]) && got[i] == ref[i]) continue; // equal infinities (masked entries) match
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= atol + rtol * fabs((double)ref[i]))) { // also catches NaN
            if (bad < 5) fprintf(stderr, "  %s[%ld]: got %.8g want %.8g (diff %.3g)\n", what, i, got[i], ref[i], d);
            bad++;
        }
        if (d > maxdiff || d != d) maxdiff = d;
        double r = d / (fabs((double)ref[i]) + 1e-12);
        if (fabs((double)ref[i]) > atol && r > maxrel) maxrel = r;
    }
    if (bad) {
        xc_tests_failed++;
        fprintf(stderr, "FAIL %s: %ld/%ld elements off (max abs diff %.3g, max rel %.3g; atol %.1g rtol %.1g)\n",
                what, bad, n, maxdiff, maxrel, atol, rtol);
    } else {
        xc_tests_passed++;
    }
    return maxdiff;
}

// max |got - ref| / max |ref|: the error relative to the reference tensor's scale (meaningful where
// elementwise relative errors are not, e.g. near-zero entries of features and gradients).
static inline double xc_scaled_err(const float *got, const float *ref, int64_t n) {
    double scale = 0, err = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++) err = fmax(err, fabs((double)got[i] - ref[i]));
    return err / (scale > 0 ? scale : 1);
}

// Expects xc_scaled_err <= tol (one pass or one fail); returns the error.
static inline double xc_expect_scaled(const char *what, const float *got, const float *ref, int64_t n, double tol) {
    double e = xc_scaled_err(got, ref, n);
    if (e <= tol) { xc_tests_passed++; }
    else {
        xc_tests_failed++;
        fprintf(stderr, "FAIL %s: max |diff| / max |ref| = %.3g > %.1g\n", what, e, tol);
    }
    return e;
}

// Elementwise with a floor: |got - ref| <= floor * max |ref| + rtol * |ref| for every element (one pass or one
// fail; prints the first mismatches as xc_expect_close does). Beside xc_expect_scaled, which lets every entry be
// off by tol * max |ref|, this holds an entry far below the tensor's largest to its own size (rtol) down to the
// floor, so a small error in small entries cannot hide behind the large ones. The floor is relative to the
// tensor's largest value: float32 rounding in an entry follows the size of the terms summed into it, which
// follows the tensor's scale rather than the entry's own size (tiny entries come from cancellation).
// Returns the largest |got - ref| / (floor * max |ref| + rtol * |ref|): the share of the tolerance used.
static inline double xc_expect_elementwise(const char *what, const float *got, const float *ref, int64_t n, double floor,
                                           double rtol) {
    double scale = 0, used = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    xc_expect_close(what, got, ref, (long)n, floor * scale, rtol);
    for (int64_t i = 0; i < n; i++) {
        double allowed = floor * scale + rtol * fabs((double)ref[i]), d = fabs((double)got[i] - ref[i]);
        if (allowed > 0) used = fmax(used, d / allowed);
        else if (d > 0 || d != d) used = INFINITY;
    }
    return used;
}

// Path to a file under $XCLIP_FIXTURES or $XCLIP_SHARED (set by CTest); falls back to the source layout.
static inline const char *xc_test_path(const char *env, const char *fallback, const char *rel, char *buf, size_t n) {
    const char *root = getenv(env);
    snprintf(buf, n, "%s/%s", root ? root : fallback, rel);
    return buf;
}
// Do two files hold the same bytes? (false if either cannot be read)
static inline bool xc_same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    char x[65536], y[65536];
    while (same) {
        size_t na = fread(x, 1, sizeof x, fa), nb = fread(y, 1, sizeof y, fb);
        same = na == nb && !memcmp(x, y, na);
        if (na < sizeof x) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

#define XC_FIXTURE(rel, buf) xc_test_path("XCLIP_FIXTURES", "tests/fixtures", (rel), (buf), sizeof(buf))
#define XC_SHARED(rel, buf) xc_test_path("XCLIP_SHARED", "../shared", (rel), (buf), sizeof(buf))

// A small synthetic video dataset for a test of the programs: `xclip-synth` (the arguments synth) into
// BUILD/NAME.data (the test's earlier outputs BUILD/NAME.data* removed first), and in sets the --set options that
// point a config at it and at CLIP's vocabulary, then extra. False if xclip-synth failed.
static inline bool xc_synth_sets(const char *build, const char *name, const char *synth, const char *extra, char *data,
                                 size_t data_cap, char *sets, size_t sets_cap) {
    char vocab[1200], cmd[8192];
    snprintf(data, data_cap, "%s/%s.data", build, name);
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'* && '%s/xclip-synth' '%s' %s > /dev/null", data, build, data, synth);
    snprintf(sets, sets_cap,
             "--set data.root='%s/videos' --set data.train_list='%s/train.txt' --set data.val_list='%s/val.txt' "
             "--set data.labels='%s/labels.csv' --set data.vocab='%s' %s", data, data, data, data, vocab, extra);
    return system(cmd) == 0;
}

// Runs a shell command, capturing stdout and stderr into out (cap bytes, NUL-terminated, cut if longer);
// returns its exit status (-1 if it could not run or did not exit normally).
static inline int xc_run_capture(const char *cmd, char *out, size_t cap) {
    size_t len = strlen(cmd) + 8;
    char *full = malloc(len);
    snprintf(full, len, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline int xc_test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, xc_tests_passed, xc_tests_failed);
    return xc_tests_failed ? 1 : 0;
}
