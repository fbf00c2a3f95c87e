// runtime.c - see runtime.h.
#include "autograd/runtime.h"
#include "autograd/kernels.h"
#include "autograd/rng.h"
#include "autograd/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void reexec(char **argv, const char *core) {
    if (core) {
        setenv("OPENBLAS_CORETYPE", core, 1);
        setenv("XCLIP_BLAS_CHOSEN", core, 1); // the re-executed process checks these kernels
    }
    setenv("XCLIP_RUNTIME_SET", "1", 1);      // and does not re-execute again
    fflush(stdout);
    fflush(stderr);
    execv("/proc/self/exe", argv);
    // exec failed: carry on with whatever OpenBLAS picked
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
