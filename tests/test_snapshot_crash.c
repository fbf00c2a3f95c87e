// test_snapshot_crash.c - a snapshot write killed at any point never leaves a torn snapshot behind, and a
// full disk leaves the previous snapshot intact with the error named.
//
// Kill test: a forked child writes a snapshot with a test hook that raise(SIGKILL)s at write point k (the
// points are every step of snapshot_write: temp created, each dataset written, before/after H5Fclose,
// header written, fsync, close, rename, directory fsync; see snapshot_set_test_hook). After each kill the
// parent removes stale temporaries and resumes: the newest committed snapshot must verify and restore bitwise
// to what was saved (the previous one if the kill came before the rename, the new one after it), and no
// temporary may remain. Two modes: a new snapshot name, and replacing an existing name (same iteration).
// This simulates a process crash (kill -9), not a power cut: the page cache survives a kill.
//
// Full disk: simulated with setrlimit(RLIMIT_FSIZE) in a forked child with SIGXFSZ ignored, so write(2)
// fails with EFBIG ("File too large") at three different sizes (while creating the file, in the middle of
// the datasets, at the very last bytes). No tmpfs is mounted (that would need privileges).
#include <math.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "checkpoints/snapshot.h"
#include "optim/adamw.h"
#include "tests/snap_test_util.h"
#include "tests/test_util.h"
#include "tests/xclip_params.h"

#if defined(__SANITIZE_ADDRESS__)
#define KILL_POINTS 16   // sampled lower under ASan (each point is a fork + a write)
#else
#define KILL_POINTS 36
#endif

static ParamStore g_ps;
static AdamW g_opt;
static SnapshotRng g_rng[1];
static int64_t g_order[10];

// The two states the tests save (seed 1: the committed snapshot, seed 2: the one being written), made once.
typedef struct Ref { float *p, *m, *v; int64_t step; RngState rng; int64_t order[10]; } Ref;
static Ref g_ref[3];

static void make_ref(Ref *r, uint64_t seed) {
    size_t bytes = (size_t)g_ps.total * 4, moments = (size_t)g_opt.numel * 4; // moments: trainable tensors only
    r->p = malloc(bytes); r->m = malloc(moments); r->v = malloc(moments);
    Rng g = rng_stream(seed, RNG_STREAM_TEST);
    rng_fill_normal(&g, r->p, g_ps.total, 0, 1);
    rng_fill_normal(&g, r->m, g_opt.numel, 0, 1);
    rng_fill_normal(&g, r->v, g_opt.numel, 0, 1);
    for (int64_t i = 0; i < g_opt.numel; i++) r->v[i] = fabsf(r->v[i]); // a second moment is >= 0 (checked on load)
    r->step = (int64_t)seed;
    Rng s = rng_stream(seed, RNG_STREAM_DROP);
    rng_u32(&s);
    r->rng = rng_get_state(&s);
    rng_permutation(&g, r->order, 10);
}

static void fill(int which) {
    const Ref *r = &g_ref[which];
    const float *at = r->p;
    for (int i = 0; i < g_ps.n; i++) { memcpy(g_ps.p[i]->data, at, (size_t)g_ps.p[i]->numel * 4); at += g_ps.p[i]->numel; }
    memcpy(g_opt.m, r->m, (size_t)g_opt.numel * 4);
    memcpy(g_opt.v, r->v, (size_t)g_opt.numel * 4);
    g_opt.step = r->step;
    g_rng[0].state = r->rng;
    memcpy(g_order, r->order, sizeof g_order);
}

static SnapshotState state(int64_t iter) {
    return (SnapshotState){.params = &g_ps, .opt = adamw_state(&g_opt), .global_iter = iter, .rngs = g_rng, .n_rngs = 1,
                           .order = g_order, .order_len = 10, .config = "cfg"};
}

// Load path after scrambling the run and compare bitwise with reference `which`.
static bool matches(const char *path, int which) {
    fill(0);
    SnapshotState st = state(0);
    XcError err;
    bool ok = snapshot_load(path, &st, &err) == XC_OK;
    if (!ok) fprintf(stderr, "  load %s: %s\n", path, err.msg);
    const Ref *r = &g_ref[which];
    const float *at = r->p;
    for (int i = 0; i < g_ps.n && ok; i++) { ok = !memcmp(at, g_ps.p[i]->data, (size_t)g_ps.p[i]->numel * 4); at += g_ps.p[i]->numel; }
    ok = ok && !memcmp(r->m, g_opt.m, (size_t)g_ps.total * 4) && !memcmp(r->v, g_opt.v, (size_t)g_ps.total * 4) &&
         !memcmp(r->order, g_order, sizeof g_order) && g_opt.step == r->step && g_rng[0].state.key == r->rng.key &&
         g_rng[0].state.counter == r->rng.counter && g_rng[0].state.pos == r->rng.pos;
    snapshot_state_free_text(&st);
    return ok;
}

// ---- the hook ----------------------------------------------------------------------------------------
static int g_kill_at = -1;
static int g_npoints;
static char g_what[1024][96];
static void hook(int point, const char *what) {
    if (point == g_kill_at) raise(SIGKILL);
    if (point < 1024) snprintf(g_what[point], sizeof g_what[point], "%s", what);
    g_npoints = point + 1;
}

static void crash_at(const char *dir, int k, bool same_name) {
    char p1[4200], p2[4200];
    snapshot_path(dir, 1, p1, sizeof p1);
    snapshot_path(dir, 2, p2, sizeof p2);
    pid_t pid = fork();
    if (pid == 0) {
        g_kill_at = k;
        snapshot_set_test_hook(hook);
        fill(2);
        XcError err;
        SnapshotState st = state(same_name ? 1 : 2);
        int rc = snapshot_save(dir, &st, NULL, 0, &err);
        _exit(rc == XC_OK ? 0 : 3);
    }
    int status;
    waitpid(pid, &status, 0);
    XC_EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "point %d (%s): child was killed", k, g_what[k]);
    bool after_rename = k > g_npoints - 3; // points after "renamed" (the last two: renamed, directory fsynced)
    for (int i = 0; i < g_npoints; i++)
        if (!strcmp(g_what[i], "renamed")) after_rename = k >= i;
    XcError err;
    int removed = snapshot_remove_stale_temps(dir, NULL, &err);
    XC_EXPECT(removed == (after_rename ? 0 : 1), "point %d (%s): %d stale temporaries removed", k, g_what[k], removed);
    XC_EXPECT(st_count(dir, SNAPSHOT_TMP_PREFIX) == 0, "point %d: no temporary left", k);
    char latest[4200];
    SnapshotInfo info;
    int rc = snapshot_find_latest(dir, latest, sizeof latest, &info, NULL, &err);
    XC_EXPECT(rc == 1, "point %d (%s): a snapshot to resume from: %s", k, g_what[k], err.msg);
    if (same_name) {
        XC_EXPECT(rc == 1 && !strcmp(latest, p1), "point %d: resumes from %s", k, p1);
        XC_EXPECT(matches(p1, after_rename ? 2 : 1), "point %d (%s): %s holds the %s snapshot, complete", k, g_what[k], p1,
                  after_rename ? "new" : "old");
        if (after_rename) { fill(1); SnapshotState st = state(1); snapshot_save(dir, &st, NULL, 0, &err); }
    } else {
        XC_EXPECT(rc == 1 && !strcmp(latest, after_rename ? p2 : p1), "point %d (%s): resumes from %s, want %s", k, g_what[k],
                  latest, after_rename ? p2 : p1);
        XC_EXPECT(access(p2, F_OK) == (after_rename ? 0 : -1), "point %d (%s): the new name exists only after the rename", k, g_what[k]);
        XC_EXPECT(matches(latest, after_rename ? 2 : 1), "point %d (%s): %s restores exactly", k, g_what[k], latest);
        unlink(p2);
    }
}

static void test_kill_points(const char *dir) {
    fill(1);
    SnapshotState st = state(1);
    XcError err;
    XC_EXPECT(snapshot_save(dir, &st, NULL, 0, &err) == XC_OK, "first snapshot: %s", err.msg);
    // count the points with a dry run elsewhere
    char dry[4096];
    st_mkdtemp(dry, sizeof dry, "snapdry");
    snapshot_set_test_hook(hook);
    XC_EXPECT(snapshot_save(dry, &st, NULL, 0, &err) == XC_OK, "dry run: %s", err.msg);
    snapshot_set_test_hook(NULL);
    st_rmdir(dry);
    int K = g_npoints;
    printf("snapshot write has %d hook points; killing at up to %d of them in each of 2 modes\n", K, KILL_POINTS);
    XC_EXPECT(K >= 20, "at least 20 kill points (%d)", K);
    // every non-dataset point, plus dataset points at a stride
    int stride = K / KILL_POINTS + 1, done = 0;
    for (int mode = 0; mode < 2; mode++) {
        for (int k = 0; k < K; k++) {
            bool structural = !strstr(g_what[k], " written") || !strcmp(g_what[k], "header written");
            if (!structural && k % stride) continue;
            crash_at(dir, k, mode == 1);
            done++;
        }
    }
    printf("killed %d writes\n", done);
    XC_EXPECT(done >= 40, "at least 20 kill points per mode (%d in all)", done);
}

// ---- full disk -----------------------------------------------------------------------------------------
static void disk_full(const char *dir, rlim_t limit, const char *label) {
    int fds[2];
    if (pipe(fds) != 0) { perror("pipe"); exit(1); }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {limit, limit};
        setrlimit(RLIMIT_FSIZE, &rl);
        fill(2);
        SnapshotState st = state(2);
        XcError err = {{0}};
        int rc = snapshot_save(dir, &st, NULL, 0, &err);
        ssize_t w = write(fds[1], err.msg, strlen(err.msg));
        (void)w;
        _exit(rc == XC_ERR ? 0 : 1);
    }
    close(fds[1]);
    char msg[1100] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof msg - 1 && (r = read(fds[0], msg + got, sizeof msg - 1 - got)) > 0) got += (size_t)r;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    XC_EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the write failed cleanly (status %d)", label, status);
    XC_EXPECT(st_contains(msg, "File too large") && st_contains(msg, "snap-000000000002.h5"),
              "%s: the error names the file and the cause: %s", label, msg);
    printf("full disk (%s, limit %llu bytes): %s\n", label, (unsigned long long)limit, msg);
    XC_EXPECT(st_count(dir, SNAPSHOT_TMP_PREFIX) == 0, "%s: the temporary was removed", label);
    char p1[4200], latest[4200];
    snapshot_path(dir, 1, p1, sizeof p1);
    XcError err;
    XC_EXPECT(snapshot_find_latest(dir, latest, sizeof latest, NULL, NULL, &err) == 1 && !strcmp(latest, p1),
              "%s: the previous snapshot is still the latest: %s", label, err.msg);
    XC_EXPECT(matches(p1, 1), "%s: the previous snapshot is intact", label);
}

static void test_disk_full(const char *dir) {
    char p1[4200];
    snapshot_path(dir, 1, p1, sizeof p1);
    struct stat sb;
    stat(p1, &sb);
    disk_full(dir, 600, "while creating");
    disk_full(dir, (rlim_t)sb.st_size / 2, "mid-way");
    disk_full(dir, (rlim_t)sb.st_size - 1, "last bytes");
}

int main(void) {
    XclipDims d = xclip_dims_tiny();
    d.vision_layers = 1;
    d.text_layers = 1;
    param_store_init(&g_ps, "params");
    xclip_register_params(&g_ps, &d, false);
    adamw_init(&g_opt, &g_ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
    snprintf(g_rng[0].name, SNAPSHOT_MAX_RNG_NAME, "drop");
    for (int i = 0; i < 3; i++) make_ref(&g_ref[i], (uint64_t)i + 100);
    char dir[4096];
    st_mkdtemp(dir, sizeof dir, "snapcrash");
    test_kill_points(dir);
    test_disk_full(dir);
    st_rmdir(dir);
    for (int i = 0; i < 3; i++) { free(g_ref[i].p); free(g_ref[i].m); free(g_ref[i].v); }
    adamw_free(&g_opt);
    param_store_free(&g_ps);
    return xc_test_summary("test_snapshot_crash");
}
