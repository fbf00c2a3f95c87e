// runtime.c - see runtime.h.
#include "autograd/runtime.h"
#include "autograd/kernels.h"
#include "autograd/rng.h"
#include "autograd/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

// Re-execute this program with the same arguments (argv[0] included). The kernel names a process after the
// file it executes (the `comm` that ps -C, pgrep -x and pkill match): executing "/proc/self/exe" would
// rename xclip-train to "exe". So the real path is executed, and the name the process had (which differs
// from the file's when it was started through a renamed symlink) is handed over in XCLIP_PROCESS_NAME and
// restored by xc_runtime_init.
static void reexec(char **argv, const char *core) {
    if (core) {
        setenv("OPENBLAS_CORETYPE", core, 1);
        setenv("XCLIP_BLAS_CHOSEN", core, 1); // the re-executed process checks these kernels
    }
    setenv("XCLIP_RUNTIME_SET", "1", 1);      // and does not re-execute again
    char name[17] = "";                       // TASK_COMM_LEN = 16
    if (prctl(PR_GET_NAME, name) == 0 && *name) setenv("XCLIP_PROCESS_NAME", name, 1);
    fflush(stdout);
    fflush(stderr);
    char exe[4096];
    if (xc_exe_path(exe, sizeof exe)) execv(exe, argv);
    execv("/proc/self/exe", argv); // the file is gone (rebuilt while running): the name is restored anyway
    unsetenv("XCLIP_PROCESS_NAME");
    // exec failed: carry on with whatever OpenBLAS picked
}

// After a re-execution: take back the process name the program was started with (see reexec).
static void restore_name(void) {
    const char *name = getenv("XCLIP_PROCESS_NAME");
    if (!name) return;
    char now[17] = "";
    if (prctl(PR_GET_NAME, now) == 0 && strcmp(now, name) != 0) prctl(PR_SET_NAME, name);
    unsetenv("XCLIP_PROCESS_NAME"); // programs this one starts get their own names
}

static const char *best_core(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

// SGEMM through OpenBLAS against the naive loop on a few awkward shapes.
static bool gemm_ok(void) {
    static const int sizes[][3] = {{67, 45, 130}, {128, 96, 64}, {5, 300, 33}};
    Rng r = rng_stream(7, RNG_STREAM_TEST);
    bool ok = true;
    for (int s = 0; s < 3 && ok; s++) {
        int M = sizes[s][0], N = sizes[s][1], K = sizes[s][2];
        float *a = xc_malloc((size_t)M * K * sizeof(float)), *b = xc_malloc((size_t)K * N * sizeof(float));
        float *c1 = xc_calloc((size_t)M * N, sizeof(float)), *c2 = xc_calloc((size_t)M * N, sizeof(float));
        rng_fill_uniform(&r, a, (int64_t)M * K, -1, 1);
        rng_fill_uniform(&r, b, (int64_t)K * N, -1, 1);
        xc_gemm(false, true, M, N, K, 1.0f, a, K, b, K, 0.0f, c1, N);
        xc_gemm_naive(false, true, M, N, K, 1.0f, a, K, b, K, 0.0f, c2, N);
        for (int i = 0; i < M * N; i++) ok &= fabsf(c1[i] - c2[i]) <= 1e-4f * (1.0f + fabsf(c2[i]));
        xc_free(a); xc_free(b); xc_free(c1); xc_free(c2);
    }
    return ok;
}

void xc_runtime_init(int argc, char **argv) {
    (void)argc;
    restore_name();
    // a file growing past `ulimit -f` would kill the program with SIGXFSZ, silently; ignored, the write fails
    // with EFBIG and the program's error path names the file
    signal(SIGXFSZ, SIG_IGN);
    const char *chosen = getenv("XCLIP_BLAS_CHOSEN");
    const char *auto_ = getenv("XCLIP_BLAS_AUTO");
    if (!getenv("XCLIP_RUNTIME_SET")) {
        const char *core = NULL;
        if (!getenv("OPENBLAS_CORETYPE") && !(auto_ && !strcmp(auto_, "0"))) core = best_core();
        bool wait = !getenv("OMP_WAIT_POLICY");
        if (wait) setenv("OMP_WAIT_POLICY", "passive", 1);
        if (core || wait) reexec(argv, core);
    }
    if (chosen && !gemm_ok()) {
        if (strcmp(chosen, "Prescott") != 0) {
            fprintf(stderr, "xclip: OpenBLAS %s kernels miscompute on this CPU; falling back to Prescott\n", chosen);
            reexec(argv, "Prescott");
        }
        xc_fatal("OpenBLAS SGEMM miscomputes even with generic kernels; set OPENBLAS_CORETYPE by hand");
    }
}

const char *xc_blas_core(void) {
    const char *c = getenv("OPENBLAS_CORETYPE");
    return c && *c ? c : "auto";
}

bool xc_exe_path(char *buf, size_t n) {
    if (n < 2) return false;
    ssize_t len = readlink("/proc/self/exe", buf, n - 1);
    if (len <= 0 || (size_t)len >= n - 1) return false;
    buf[len] = 0;
    struct stat st; // "/path/prog (deleted)" once the file was replaced: not a path to execute or look beside
    return stat(buf, &st) == 0;
}

// Append "  dir/path: reason\n" to tried; true if dir/path is readable (then it goes to found).
static bool try_path(const char *dir, const char *path, char *found, size_t nfound, char *tried, size_t ntried,
                     size_t *used) {
    char p[4096];
    const bool slash = *dir && dir[strlen(dir) - 1] != '/';
    if (snprintf(p, sizeof p, "%s%s%s", dir, slash ? "/" : "", path) >= (int)sizeof p) return false;
    char line[4200];
    snprintf(line, sizeof line, "  %s: ", p);
    if (strstr(tried, line)) return false; // the same place reached twice (e.g. build/.. is the source tree)
    bool ok = access(p, R_OK) == 0;
    if (*used < ntried) {
        int w = snprintf(tried + *used, ntried - *used, "  %s: %s\n", p, ok ? "found" : strerror(errno));
        *used += w > 0 ? (size_t)w : 0;
        if (*used >= ntried) *used = ntried;
    }
    if (ok && snprintf(found, nfound, "%s", p) < (int)nfound) return true;
    return false;
}

bool xc_locate_file(const char *path, char *found, size_t nfound, char *tried, size_t ntried) {
    XC_CHECK(ntried > 0 && nfound > 0, "xc_locate_file: empty buffers");
    size_t used = 0;
    tried[0] = 0;
    if (path[0] == '/') return try_path("", path, found, nfound, tried, ntried, &used);
    char cwd[4096], exe[4096];
    if (getcwd(cwd, sizeof cwd) && try_path(cwd, path, found, nfound, tried, ntried, &used)) return true;
    if (xc_exe_path(exe, sizeof exe)) {
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0; // the program's directory
        if (try_path(exe, path, found, nfound, tried, ntried, &used)) return true;
        slash = strrchr(exe, '/');
        if (slash && slash != exe) *slash = 0; // its parent: a build folder inside the source tree
        if (slash && try_path(exe, path, found, nfound, tried, ntried, &used)) return true;
    }
#ifdef XCLIP_SOURCE_DIR
    if (try_path(XCLIP_SOURCE_DIR, path, found, nfound, tried, ntried, &used)) return true;
#endif
    return false;
}
