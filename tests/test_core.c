// test_core.c - arenas (chunked overflow, rewind, touched pages kept when a reset grows the main block), tape
// mechanics (no-grad mode, requires-grad propagation, frozen parameters, fan-out accumulation, recording an op
// without backward), spilling frozen parameters to a file, RNG streams and state, AdamW by hand and its first
// update, the linears over a recomputed input.
#include "test_util.h"
#include "autograd/kernels.h"
#include "autograd/ops.h"
#include "optim/adamw.h"

#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <unistd.h>

static void test_arena(void) {
    Arena a;
    arena_init(&a, "t", 256);
    char *p = arena_alloc(&a, 100), *q = arena_alloc(&a, 100);
    XC_EXPECT(((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0, "arena allocations are 64-byte aligned");
    XC_EXPECT(q >= p + 100, "allocations do not overlap");
    char *big = arena_alloc(&a, 10000); // overflow block
    big[9999] = 1;
    XC_EXPECT(a.peak >= 10000 + 200, "peak counts overflow (%zu)", a.peak);
    arena_reset(&a);
    XC_EXPECT(a.cap >= a.peak, "reset grows the main block to the peak (%zu < %zu)", a.cap, a.peak);
    uint64_t before = xc_sys_alloc_count();
    arena_alloc(&a, 100);
    arena_alloc(&a, 100);
    arena_alloc(&a, 10000);
    arena_reset(&a);
    XC_EXPECT(xc_sys_alloc_count() == before, "the same work after a reset allocates nothing");
    arena_free(&a);

    // many small overflow allocations share chunks; rewind and ownership see through them
    arena_init(&a, "chunks", 0);
    before = xc_sys_alloc_count();
    char *first = arena_alloc(&a, 1000);
    ArenaMark mk = arena_mark(&a);
    char *later = NULL;
    for (int i = 0; i < 5000; i++) later = arena_alloc(&a, 1000);
    XC_EXPECT(xc_sys_alloc_count() - before <= 2, "5001 small overflow allocations made %llu mappings",
              (unsigned long long)(xc_sys_alloc_count() - before));
    XC_EXPECT(arena_owns(&a, first) && arena_owns(&a, later), "arena_owns misses overflow allocations");
    arena_rewind(&a, mk);
    XC_EXPECT(arena_owns(&a, first) && !arena_owns(&a, later) && a.overflow == 1024, "rewind: overflow %zu, want 1024", a.overflow);
    XC_EXPECT(arena_alloc(&a, 1000) == first + 1024, "after a rewind the chunk is reused from the mark");
    arena_free(&a);

    // scratch that overflowed and was rewound before the reset still grows the main block: the same work
    // (a scratch above a mark, as op_layernorm_linear's) then fits without mapping anything
    arena_init(&a, "scratch", 4096);
    for (int step = 0; step < 3; step++) {
        before = xc_sys_alloc_count();
        arena_alloc(&a, 1000);
        mk = arena_mark(&a);
        arena_alloc(&a, 100000); // past the main block at first
        arena_rewind(&a, mk);
        arena_reset(&a);
        XC_EXPECT(step == 0 || xc_sys_alloc_count() == before, "step %d of the same work made %llu mappings", step,
                  (unsigned long long)(xc_sys_alloc_count() - before));
    }
    XC_EXPECT(a.cap >= a.peak, "reset after a rewound overflow grows the main block (%zu < %zu)", a.cap, a.peak);
    arena_free(&a);

    // The pages a step touched in overflow chunks move into the grown main block at reset: the same work again
    // neither faults them in anew (each fault zeroes a page: seconds per step at B/16 scale) nor holds them twice.
    arena_init(&a, "rss", 0);
    const size_t big_bytes = (size_t)200 << 20, pages = big_bytes / (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < 50; i++) memset(arena_alloc(&a, big_bytes / 50), 1, big_bytes / 50);
    uint64_t full = xc_rss();
    arena_reset(&a);
    XC_EXPECT(a.extra == NULL && a.cap >= a.peak, "reset folds the chunks into a main block of the peak");
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    for (int i = 0; i < 50; i++) memset(arena_alloc(&a, big_bytes / 50), 2, big_bytes / 50);
    getrusage(RUSAGE_SELF, &ru1);
    size_t faults = (size_t)(ru1.ru_minflt - ru0.ru_minflt);
    uint64_t again = xc_rss();
    size_t shadow = 0; // under AddressSanitizer each access reads one shadow byte per 8, fresh for a new address
#if defined(__SANITIZE_ADDRESS__)
    shadow = pages / 8;
#endif
    XC_EXPECT(faults < pages / 100 + shadow, "the same work after a reset faulted %zu of its %zu pages in again (%zu "
              "allowed for shadow memory)", faults, pages, shadow);
    XC_EXPECT(again < full + big_bytes / 20, "the same work after a reset holds its memory twice: RSS %.0f MB, was %.0f MB",
              again / 1e6, full / 1e6);
    arena_free(&a);
}

// Frozen parameters spilled to an unlinked file: same values, no resident memory until read, paged out again,
// writable; trainable ones untouched; refusals change nothing.
static bool spill_pick(const char *name) { return name[0] == 't'; }

static void test_spill(void) {
    ParamStore ps;
    param_store_init(&ps, "spill");
    ps.create_frozen = true;
    const int64_t n = (int64_t)24 << 20; // 96 MB per tensor
    Tensor *t1 = param_new(&ps, "text.a", 1, &n), *t2 = param_new(&ps, "text.b", 1, (int64_t[]){1000});
    Tensor *other = param_new(&ps, "visual.frozen", 1, (int64_t[]){1000});
    ps.create_frozen = false;
    Tensor *w = param_new(&ps, "trained", 1, (int64_t[]){1000}); // picked by name, but trainable
    Rng r = rng_stream(5, RNG_STREAM_TEST);
    Tensor *all[4] = {t1, t2, other, w};
    float *copy[4];
    for (int i = 0; i < 4; i++) {
        rng_fill_normal(&r, all[i]->data, all[i]->numel, 0.0f, 1.0f);
        copy[i] = xc_malloc(sizeof(float) * (size_t)all[i]->numel);
        memcpy(copy[i], all[i]->data, sizeof(float) * (size_t)all[i]->numel);
    }
    float *old[4] = {t1->data, t2->data, other->data, w->data};
    XcError err;
    size_t moved = 0;
    XC_EXPECT(param_store_spill(&ps, spill_pick, "/nonexistent-xclip-dir", &moved, &err) == XC_ERR &&
                  strstr(err.msg, "/nonexistent-xclip-dir") && t1->data == old[0] && !ps.spill,
              "spill into a missing directory: %s", err.msg);
    struct statfs sf;
    if (statfs("/dev/shm", &sf) == 0 && sf.f_type == TMPFS_MAGIC)
        XC_EXPECT(param_store_spill(&ps, spill_pick, "/dev/shm", &moved, &err) == XC_ERR && strstr(err.msg, "tmpfs") &&
                      t1->data == old[0],
                  "spill into tmpfs was not refused: %s", err.msg);
    // a disk-backed directory: the build directory, else /var/tmp (a tmpfs build directory is refused, above)
    const char *dirs[2] = {getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : ".", "/var/tmp"}, *dir = NULL;
    for (int i = 0; i < 2 && !dir; i++)
        if (statfs(dirs[i], &sf) == 0 && sf.f_type != TMPFS_MAGIC && sf.f_type != RAMFS_MAGIC) dir = dirs[i];
    if (!dir) {
        printf("  spill: SKIPPED the spilling checks: %s and /var/tmp are both in memory (tmpfs)\n", dirs[0]);
        for (int i = 0; i < 4; i++) xc_free(copy[i]);
        param_store_free(&ps);
        return;
    }
    uint64_t rss0 = xc_rss();
    int rc = param_store_spill(&ps, spill_pick, dir, &moved, &err);
    uint64_t rss1 = xc_rss();
    XC_EXPECT(rc == XC_OK, "spill: %s", err.msg);
    if (rc != XC_OK) {
        for (int i = 0; i < 4; i++) xc_free(copy[i]);
        param_store_free(&ps);
        return;
    }
    XC_EXPECT(moved >= (size_t)(n + 1000) * sizeof(float) && moved < (size_t)(n + 1000) * sizeof(float) + 128,
              "spilled %zu bytes", moved);
    XC_EXPECT(t1->data != old[0] && t2->data != old[1] && other->data == old[2] && w->data == old[3],
              "only the picked frozen tensors move");
    XC_EXPECT(rss0 > rss1 + (uint64_t)n * 3, "spilling 96 MB freed %.1f MB of RSS", ((double)rss0 - (double)rss1) / 1e6);
    bool same = true;
    for (int i = 0; i < 4; i++) same &= !memcmp(all[i]->data, copy[i], sizeof(float) * (size_t)all[i]->numel);
    uint64_t rss2 = xc_rss(); // everything read back
    XC_EXPECT(same, "spilled values differ");
    param_store_page_out(&ps);
    uint64_t rss3 = xc_rss();
    XC_EXPECT(rss2 > rss3 + (uint64_t)n * 3, "page-out released %.1f MB of RSS", ((double)rss2 - (double)rss3) / 1e6);
    t2->data[7] = 42.0f; // copy on write; survives a page-out
    param_store_page_out(&ps);
    XC_EXPECT(t2->data[7] == 42.0f && t2->data[6] == copy[1][6], "a write into a spilled tensor was lost");
    XC_EXPECT(param_store_spill(&ps, spill_pick, dir, NULL, &err) == XC_ERR, "a second spill was accepted");
    printf("  spill: %.1f MB to a file, RSS -%.1f MB; read back, page-out -%.1f MB\n", moved / 1e6,
           ((double)rss0 - (double)rss1) / 1e6, ((double)rss2 - (double)rss3) / 1e6);
    for (int i = 0; i < 4; i++) xc_free(copy[i]);
    param_store_free(&ps);
}

static void test_tape(void) {
    Graph g;
    graph_init(&g, 1 << 16);
    ParamStore ps;
    param_store_init(&ps, "params");
    Tensor *w = param_new(&ps, "w", 1, (int64_t[]){3});
    Tensor *frozen = param_new_frozen(&ps, "frozen", 1, (int64_t[]){3});
    for (int i = 0; i < 3; i++) { w->data[i] = (float)(i + 1); frozen->data[i] = 2.0f; }
    XC_EXPECT(frozen->grad == NULL, "a frozen parameter has no gradient buffer");

    // no-grad: nothing recorded
    bool prev = graph_set_grad(&g, false);
    Tensor *y = op_mul(&g, w, w);
    XC_EXPECT(g.n_nodes == 0 && !y->requires_grad, "no-grad mode records nothing");
    graph_set_grad(&g, prev);

    // frozen-only inputs: nothing recorded either (frozen parts cost nothing in backward)
    y = op_exp(&g, frozen);
    XC_EXPECT(g.n_nodes == 0 && !y->requires_grad, "ops on frozen tensors are not recorded");

    // fan-out: loss = sum(w * w + w * frozen) -> dw = 2w + frozen, accumulated over both uses
    Tensor *l = op_sum(&g, op_add(&g, op_mul(&g, w, w), op_mul(&g, w, frozen)), 0);
    graph_backward(&g, l);
    for (int i = 0; i < 3; i++)
        XC_EXPECT(fabsf(w->grad[i] - (2.0f * w->data[i] + 2.0f)) < 1e-6f, "dw[%d] = %g", i, w->grad[i]);
    XC_EXPECT(frozen->grad == NULL, "no gradient flows into a frozen parameter");

    // gradients accumulate across backward passes until zeroed (gradient accumulation)
    graph_reset(&g);
    l = op_sum(&g, op_mul(&g, w, w), 0);
    graph_backward(&g, l);
    XC_EXPECT(fabsf(w->grad[0] - (2.0f + 2.0f + 2.0f)) < 1e-6f, "second backward adds: %g", w->grad[0]);
    param_store_zero_grad(&ps);
    XC_EXPECT(w->grad[0] == 0.0f, "zero_grad clears");

    // unfreezing allocates the gradient and lets it flow
    param_set_trainable(&ps, frozen, true);
    graph_reset(&g);
    graph_backward(&g, op_sum(&g, op_mul(&g, w, frozen), 0));
    XC_EXPECT(frozen->grad && fabsf(frozen->grad[2] - 3.0f) < 1e-6f, "unfrozen parameter gets its gradient");
    param_store_free(&ps);
    graph_free(&g);
}

static void test_rng(void) {
    Rng a = rng_stream(1024, RNG_STREAM_INIT), b = rng_stream(1024, RNG_STREAM_INIT);
    Rng c = rng_stream(1024, RNG_STREAM_DATA), d = rng_stream(1025, RNG_STREAM_INIT);
    int same_ab = 1, same_ac = 0, same_ad = 0;
    for (int i = 0; i < 100; i++) {
        uint32_t x = rng_u32(&a), y = rng_u32(&b), z = rng_u32(&c), w = rng_u32(&d);
        same_ab &= x == y;
        same_ac += x == z;
        same_ad += x == w;
    }
    XC_EXPECT(same_ab, "same seed and stream give the same numbers");
    XC_EXPECT(same_ac < 3 && same_ad < 3, "other streams and seeds differ");
    // save / restore mid-block and mid-Box-Muller pair
    Rng r = rng_stream(7, RNG_STREAM_TEST);
    rng_u32(&r);
    rng_normal(&r);
    RngState st = rng_get_state(&r);
    float want[9];
    for (int i = 0; i < 9; i++) want[i] = i % 3 ? rng_uniform(&r) : rng_normal(&r);
    Rng r2 = rng_stream(1, 1);
    rng_set_state(&r2, st);
    int ok = 1;
    for (int i = 0; i < 9; i++) ok &= want[i] == (i % 3 ? rng_uniform(&r2) : rng_normal(&r2));
    XC_EXPECT(ok, "a restored state continues the exact sequence");
    // moments of the normal and uniform generators
    double s = 0, s2 = 0, u = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = rng_normal(&r);
        s += x;
        s2 += x * x;
        u += rng_uniform(&r);
    }
    XC_EXPECT(fabs(s / n) < 0.01 && fabs(s2 / n - 1) < 0.01 && fabs(u / n - 0.5) < 0.005,
              "moments: normal mean %.4f var %.4f, uniform mean %.4f", s / n, s2 / n, u / n);
    // rng_below is unbiased over a small range, permutation is a permutation
    int hist[3] = {0};
    for (int i = 0; i < 30000; i++) hist[rng_below(&r, 3)]++;
    XC_EXPECT(abs(hist[0] - 10000) < 400 && abs(hist[1] - 10000) < 400, "rng_below(3): %d %d %d", hist[0], hist[1], hist[2]);
    int64_t perm[50];
    int seen[50] = {0};
    rng_permutation(&r, perm, 50);
    int perm_ok = 1;
    for (int i = 0; i < 50; i++) perm_ok &= perm[i] >= 0 && perm[i] < 50 && !seen[perm[i]]++;
    XC_EXPECT(perm_ok, "rng_permutation gives each index once");
    float t[1000];
    rng_fill_trunc_normal(&r, t, 1000, 0.0f, 1.0f, -2.0f, 2.0f);
    int in_range = 1;
    for (int i = 0; i < 1000; i++) in_range &= t[i] >= -2.0f && t[i] <= 2.0f;
    XC_EXPECT(in_range, "truncated normal stays in [a, b]");
}

// AdamW with lr = 1, beta1 = beta2 = 0: m = g, v = g^2, so p <- p (1 - wd) - g / (|g| + eps).
static void test_adamw_by_hand(void) {
    ParamStore ps;
    param_store_init(&ps, "params");
    Tensor *a = param_new(&ps, "a", 1, (int64_t[]){2});
    Tensor *b = param_new(&ps, "b.bias", 1, (int64_t[]){2});
    a->data[0] = 1.0f; a->data[1] = -2.0f; a->grad[0] = 0.5f; a->grad[1] = -4.0f;
    b->data[0] = 3.0f; b->data[1] = 0.0f; b->grad[0] = -1.0f; b->grad[1] = 0.0f;
    AdamW opt;
    adamw_init(&opt, &ps, (AdamWConfig){0.0f, 0.0f, 1e-8f, 0.1f});
    adamw_set_group(&opt, 1, 1, false); // b: group 1 (at half the rate), no decay
    adamw_step(&opt, (float[]){1.0f, 0.5f});
    const float eps = 1e-8f;
    XC_EXPECT(fabsf(a->data[0] - (1.0f * 0.9f - 0.5f / (0.5f + eps))) < 1e-6f, "a0 = %g", a->data[0]);
    XC_EXPECT(fabsf(a->data[1] - (-2.0f * 0.9f + 4.0f / (4.0f + eps))) < 1e-6f, "a1 = %g", a->data[1]);
    XC_EXPECT(fabsf(b->data[0] - (3.0f + 0.5f)) < 1e-6f, "b0 = %g (lr 0.5, no decay)", b->data[0]);
    XC_EXPECT(b->data[1] == 0.0f, "zero gradient, zero moment: no move (%g)", b->data[1]);
    adamw_free(&opt);
    param_store_free(&ps);
}

// A snapshot restored into a running AdamW may set an earlier step (a rollback). The next step must still update
// every parameter: "updated this step" is told by the steps begun, not by the step number, which went back.
static void test_adamw_step_back(void) {
    ParamStore ps;
    param_store_init(&ps, "params");
    Tensor *a = param_new(&ps, "a", 1, (int64_t[]){2});
    a->data[0] = 1.0f; a->data[1] = -1.0f; a->grad[0] = 0.5f; a->grad[1] = -0.5f;
    AdamW opt;
    adamw_init(&opt, &ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.0f});
    adamw_step(&opt, (float[]){0.1f});
    adamw_step(&opt, (float[]){0.1f});
    opt.step = 1; // as snapshot_load of a snapshot taken after the first step sets it
    const float before = a->data[0];
    adamw_step(&opt, (float[]){0.1f});
    XC_EXPECT(opt.step == 2 && a->data[0] != before, "after the step went back to 1, the next step left a at %g", a->data[0]);
    adamw_free(&opt);
    param_store_free(&ps);
}

// A parameter's first update writes its moments without reading them (they are adamw_init's zeros): the bits of
// reading zeros, with each page of the moments faulted in once (written) instead of twice (read: the shared zero
// page; then written: a copy). Moments written from outside (snapshot_load, through adamw_state's flag) are read
// at every update.
static void test_adamw_first_update(void) {
    const int64_t n = (int64_t)4 << 20; // 16 MB per moment
    const size_t moment_pages = 2 * (size_t)n * sizeof(float) / (size_t)sysconf(_SC_PAGESIZE);
    ParamStore ps[3];
    AdamW opt[3];
    Tensor *w[3];
    for (int r = 0; r < 3; r++) {
        param_store_init(&ps[r], "adamw");
        w[r] = param_new(&ps[r], "w", 1, &n);
        Rng g = rng_stream(5, RNG_STREAM_TEST);
        rng_fill_normal(&g, w[r]->data, n, 0, 1);
        rng_fill_normal(&g, w[r]->grad, n, 0, 1);
        w[r]->grad[0] = 0.0f;
        w[r]->grad[1] = -0.0f;
        adamw_init(&opt[r], &ps[r], (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.1f});
    }
    *adamw_state(&opt[1]).restored = true; // zeros, as a snapshot taken before any step would give: read
    *adamw_state(&opt[2]).restored = true; // other moments: read, so the step differs
    for (int64_t j = 0; j < n; j++) opt[2].m[j] = opt[2].v[j] = 1e-3f;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    adamw_step(&opt[0], (float[]){1e-3f});
    getrusage(RUSAGE_SELF, &ru1);
    const size_t faults = (size_t)(ru1.ru_minflt - ru0.ru_minflt);
    size_t shadow = 0; // AddressSanitizer's shadow of the moments: one byte per 8, fresh too
#if defined(__SANITIZE_ADDRESS__)
    shadow = moment_pages / 8;
#endif
    printf("  adamw: first update faulted %zu pages for %zu pages of moments\n", faults, moment_pages);
    XC_EXPECT(faults < moment_pages + moment_pages / 10 + shadow, "the first update faulted %zu pages for %zu pages of "
              "fresh moments (%zu allowed for shadow memory): were they read before written?", faults, moment_pages, shadow);
    for (int r = 1; r < 3; r++) adamw_step(&opt[r], (float[]){1e-3f});
    const size_t bytes = (size_t)n * sizeof(float);
    for (int step = 1; step <= 2; step++) {
        XC_EXPECT(!memcmp(w[0]->data, w[1]->data, bytes) && !memcmp(opt[0].m, opt[1].m, bytes) &&
                      !memcmp(opt[0].v, opt[1].v, bytes),
                  "step %d: the update that did not read its zero moments differs from the one that did", step);
        XC_EXPECT(memcmp(w[0]->data, w[2]->data, bytes), "step %d: restored moments were not read", step);
        if (step == 1)
            for (int r = 0; r < 3; r++) adamw_step(&opt[r], (float[]){1e-3f});
    }
    for (int r = 0; r < 3; r++) {
        adamw_free(&opt[r]);
        param_store_free(&ps[r]);
    }
}

// xc_err may take err->msg itself as an argument (callers prefix context to a lower-level error).
static void test_err_prefix(void) {
    XcError err;
    xc_err(&err, "%s: truncated", "file.pt");
    xc_err(&err, "model.pretrained = %s: %s", "a.pt", err.msg);
    XC_EXPECT(!strcmp(err.msg, "model.pretrained = a.pt: file.pt: truncated"), "prefixed error reads \"%s\"", err.msg);
}

// Fused AdamW (updates inside backward, transient gradients) where the loss misses some uses: p's earliest use
// (p * p) leads nowhere while a later use (2 p) reaches the loss, and q is not used at all. Three steps must equal
// backward + adamw_step bit for bit (q decays as with a zero gradient) and leave no gradient behind.
static void test_fused_unreached(void) {
    float result[2][8];
    for (int fused = 0; fused < 2; fused++) {
        ParamStore ps;
        param_store_init(&ps, "fused");
        ps.transient_grads = fused;
        Tensor *p = param_new(&ps, "p", 1, (int64_t[]){4}), *q = param_new(&ps, "q", 1, (int64_t[]){4});
        for (int i = 0; i < 4; i++) p->data[i] = 0.5f + (float)i, q->data[i] = 1.0f - (float)i;
        AdamW opt;
        adamw_init(&opt, &ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.1f});
        Graph g;
        graph_init(&g, 0);
        if (fused) adamw_fuse(&opt, &g);
        for (int step = 0; step < 3; step++) {
            if (fused) adamw_begin_step(&opt, (float[]){0.05f});
            op_mul(&g, p, p); // recorded, never reaches the loss
            graph_backward(&g, op_sum(&g, op_scale(&g, p, 2.0f), 0));
            if (fused) adamw_end_step(&opt);
            else {
                adamw_step(&opt, (float[]){0.05f});
                param_store_zero_grad(&ps);
            }
            graph_reset(&g);
        }
        XC_EXPECT(!fused || (!p->grad && !q->grad), "fused: gradients left behind after backward");
        memcpy(result[fused], p->data, 4 * sizeof(float));
        memcpy(result[fused] + 4, q->data, 4 * sizeof(float));
        graph_free(&g);
        adamw_free(&opt);
        param_store_free(&ps);
    }
    XC_EXPECT(!memcmp(result[0], result[1], sizeof result[0]), "fused AdamW differs from backward + adamw_step "
              "(p %g vs %g, q %g vs %g)", result[0][0], result[1][0], result[0][4], result[1][4]);
    XC_EXPECT(result[0][4] != 1.0f, "q did not decay: the zero-gradient update was skipped");
}

// sum of every element of t, a scalar
static Tensor *total(Graph *g, Tensor *t) { return op_sum(g, op_reshape(g, t, 1, (int64_t[]){t->numel}), 0); }

// A run's output and its parameters' gradients, copied to compare two runs bit for bit.
typedef struct RunCopy {
    float *v[6]; // the output, then the gradient of each parameter
    size_t bytes[6];
    int n;
} RunCopy;

static void run_copy_take(RunCopy *c, const Tensor *y, Tensor *const *p, int np) {
    c->n = np + 1;
    for (int i = 0; i < c->n; i++) {
        c->bytes[i] = (size_t)(i ? p[i - 1]->numel : y->numel) * sizeof(float);
        c->v[i] = xc_malloc(c->bytes[i]);
        memcpy(c->v[i], i ? p[i - 1]->grad : y->data, c->bytes[i]);
    }
}

// -1 if equal, else what differs first: 0 the output, i the gradient of parameter i - 1
static int run_copy_diff(const RunCopy *a, const RunCopy *b) {
    for (int i = 0; i < a->n; i++)
        if (a->bytes[i] != b->bytes[i] || memcmp(a->v[i], b->v[i], a->bytes[i])) return i;
    return -1;
}

static void run_copy_free(RunCopy *c) {
    for (int i = 0; i < c->n; i++) xc_free(c->v[i]);
}

// op_layernorm_linear / op_quick_gelu_linear against the op_linear(op_layernorm / op_quick_gelu) they stand for:
// the same bits in the output and in every gradient; sizes past XC_PAR_MIN so the threaded kernels run; mm NULL
// (float32) or a bf16 context (the fused GEMM: LayerNorm or QuickGELU applied in its packing, the QuickGELU gradient
// in its epilogue; on the best kernel here and on amx-emulated). Their input is an activation (its gradient lives in the step arena), with or
// without a residual use that back-propagates first (the gradient then accumulates rather than starts).
// And what they are for: the forward keeps R x C floats less in the step arena. A recomputation that rounds
// differently, or a gradient taken above the scratch mark (released with it), fails here.
static void recomputed_linear_case(bool gelu, bool residual, Gemm *mm) {
    enum { R = 256, C = 160, O = 192 };
    ParamStore ps;
    param_store_init(&ps, "params");
    Tensor *p[5] = {param_new(&ps, "x", 2, (int64_t[]){R, C}), param_new(&ps, "w", 2, (int64_t[]){O, C}),
                    param_new(&ps, "b", 1, (int64_t[]){O}), param_new(&ps, "ln_w", 1, (int64_t[]){C}),
                    param_new(&ps, "ln_b", 1, (int64_t[]){C})};
    Rng r = rng_stream(5, RNG_STREAM_TEST);
    for (int i = 0; i < 5; i++) rng_fill_uniform(&r, p[i]->data, p[i]->numel, -1, 1);
    RunCopy run[2];
    size_t kept[2];
    for (int fused = 0; fused < 2; fused++) {
        Graph g;
        graph_init(&g, 0);
        g.gemm = mm;
        param_store_zero_grad(&ps);
        Tensor *x = op_scale(&g, op_scale(&g, p[0], 0.5f), 1.5f), *y; // its producer allocates a gradient
        size_t before = g.step.used + g.step.overflow;
        if (fused) y = gelu ? op_quick_gelu_linear(&g, x, p[1], p[2]) : op_layernorm_linear(&g, x, p[3], p[4], 1e-5f, p[1], p[2]);
        else y = op_linear(&g, gelu ? op_quick_gelu(&g, x) : op_layernorm(&g, x, p[3], p[4], 1e-5f), p[1], p[2]);
        kept[fused] = g.step.used + g.step.overflow - before;
        Tensor *loss = total(&g, op_mul(&g, y, y));
        graph_backward(&g, residual ? op_add(&g, loss, total(&g, op_mul(&g, x, x))) : loss);
        run_copy_take(&run[fused], y, p, 5);
        graph_free(&g);
    }
    const char *what = gelu ? "quick_gelu_linear" : "layernorm_linear", *prec = mm ? "bf16" : "float32";
    const char *use = residual ? "with a residual" : "alone";
    static const char *names[6] = {"the output", "the gradient of x", "the gradient of w", "the gradient of b",
                                   "the gradient of ln_w", "the gradient of ln_b"};
    int d = run_copy_diff(&run[0], &run[1]);
    XC_EXPECT(d < 0, "%s (%s, %s): %s differs from the composed ops", what, prec, use, d < 0 ? "" : names[d]);
    XC_EXPECT(kept[0] >= kept[1] + (size_t)R * C * sizeof(float),
              "%s: the forward keeps %zu bytes, the composed ops %zu: the intermediate (%zu bytes) is still kept", what,
              kept[1], kept[0], (size_t)R * C * sizeof(float));
    printf("  %-18s %-7s %-15s bitwise equal to the composed ops; forward keeps %zu bytes against %zu\n", what, prec,
           use, kept[1], kept[0]);
    run_copy_free(&run[0]);
    run_copy_free(&run[1]);
    param_store_free(&ps);
}

static void recomputed_linear_cases(Gemm *mm) {
    for (int gelu = 0; gelu < 2; gelu++)
        for (int residual = 0; residual < 2; residual++) recomputed_linear_case(gelu, residual, mm);
}

static void test_recomputed_linear(void) {
    recomputed_linear_cases(NULL);
    Gemm mm;
    XcError err = {0};
    if (gemm_init(&mm, XC_MATMUL_BF16, &err) != XC_OK) {
        printf("  bf16 cases not run: %s\n", err.msg);
        return;
    }
    recomputed_linear_cases(&mm);
    XC_EXPECT(mm.bf16_calls > 0, "the bf16 cases ran their GEMMs in bf16");
    if (gemm_set_bf16_kernel(&mm, XC_BF16_AMX_EMULATED, &err) == XC_OK) { // the AMX kernel's fusion, where AMX is missing
        const uint64_t calls = mm.bf16_calls;
        recomputed_linear_cases(&mm);
        XC_EXPECT(mm.bf16_calls > calls, "the amx-emulated cases ran their GEMMs in bf16");
    }
    printf("  linears over a recomputed LayerNorm / QuickGELU: float32 and bf16 on %s%s\n", xc_bf16_kernel_name(xc_bf16_best_kernel()),
           xc_bf16_kernel_available(XC_BF16_AMX_EMULATED) ? " and amx-emulated" : "");
    gemm_free(&mm);
}

// op_add_residual and op_slice_consume write over their input when nothing reads it again, and only then: the
// output shares the input's memory after a linear (whose backward never reads its output) and after a slice
// of one, values and gradients bitwise equal to op_add and op_slice; a branch another op has already used, an
// op that reads its own output in backward (exp), a parameter, or a tensor with a gradient under the tape off
// each get a copy. A rule that overwrote any of those, or an in-place path that computed anything else, fails.
static void test_overwrite_in_place(void) {
    enum { R = 64, L = 5, C = 48 }; // (R, L, C): rows of L tokens; the slice keeps the first L - 1
    ParamStore ps;
    param_store_init(&ps, "params");
    Tensor *x = param_new(&ps, "x", 3, (int64_t[]){R, L - 1, C}), *h = param_new(&ps, "h", 3, (int64_t[]){R, L, C});
    Tensor *w = param_new(&ps, "w", 2, (int64_t[]){C, C}), *b = param_new(&ps, "b", 1, (int64_t[]){C});
    Tensor *p[4] = {x, h, w, b};
    Rng r = rng_stream(9, RNG_STREAM_TEST);
    for (int i = 0; i < 4; i++) rng_fill_uniform(&r, p[i]->data, p[i]->numel, -1, 1);
    RunCopy run[2];
    bool shared[2][2];
    for (int consume = 0; consume < 2; consume++) {
        Graph g;
        graph_init(&g, 0);
        param_store_zero_grad(&ps);
        Tensor *lin = op_linear(&g, h, w, b);
        Tensor *att = consume ? op_slice_consume(&g, lin, 1, 0, L - 1) : op_slice(&g, lin, 1, 0, L - 1);
        Tensor *y = consume ? op_add_residual(&g, x, att) : op_add(&g, x, att);
        shared[consume][0] = att->data == lin->data;
        shared[consume][1] = y->data == att->data;
        graph_backward(&g, total(&g, op_mul(&g, y, y)));
        run_copy_take(&run[consume], y, p, 4);
        graph_free(&g);
    }
    XC_EXPECT(shared[1][0] && shared[1][1], "op_slice_consume / op_add_residual after a linear worked in place (%d, %d)",
              shared[1][0], shared[1][1]);
    XC_EXPECT(!shared[0][0] && !shared[0][1], "op_slice / op_add made copies");
    static const char *names[5] = {"the output", "dx", "dh", "dw", "db"};
    int d = run_copy_diff(&run[0], &run[1]);
    XC_EXPECT(d < 0, "in place: %s differs from op_slice + op_add", d < 0 ? "" : names[d]);
    run_copy_free(&run[0]);
    run_copy_free(&run[1]);

    // the refusals: each gets a copy and leaves its input as it was
    Graph g;
    graph_init(&g, 0);
    Tensor *xs = op_slice(&g, x, 1, 0, L - 1); // (R, L - 1, C) like x
    Tensor *lin = op_linear(&g, xs, w, b);
    Tensor *used = op_linear(&g, lin, w, b); // lin is now an input of a later op, itself a linear
    float first = lin->data[0];
    Tensor *y = op_add_residual(&g, x, lin);
    XC_EXPECT(y->data != lin->data && lin->data[0] == first, "a branch another op has taken was overwritten");
    Tensor *e = op_exp(&g, used); // exp's backward reads its output
    first = e->data[0];
    y = op_add_residual(&g, x, e);
    XC_EXPECT(y->data != e->data && e->data[0] == first, "the output of an op that reads it in backward was overwritten");
    y = op_add_residual(&g, xs, x);
    XC_EXPECT(y->data != x->data, "a parameter was overwritten");
    Tensor *s = op_slice_consume(&g, op_exp(&g, xs), 1, 0, 2);
    XC_EXPECT(g.last->out == s && s->data != g.last->in[0]->data, "op_slice_consume of exp's output did not copy");
    bool prev = graph_set_grad(&g, false);
    Tensor *t = op_scale(&g, xs, 2.0f); // tape off, no gradient: may be overwritten
    y = op_add_residual(&g, xs, t);
    XC_EXPECT(y->data == t->data, "with the tape off, a step tensor without a gradient was not overwritten");
    y = op_add_residual(&g, t, xs); // xs requires grad (recorded earlier): kept
    XC_EXPECT(y->data != xs->data, "with the tape off, a tensor that requires grad was overwritten");
    graph_set_grad(&g, prev);
    graph_free(&g);
    param_store_free(&ps);
}

int main(void) {
    test_err_prefix();
    test_fused_unreached();
    test_arena();
    test_tape();
    test_spill();
    test_rng();
    test_adamw_by_hand();
    test_adamw_step_back();
    test_adamw_first_update();
    test_recomputed_linear();
    test_overwrite_in_place();
    return xc_test_summary("test_core");
}
