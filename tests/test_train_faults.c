// test_train_faults.c - xclip-train when the disk refuses and when the numbers go bad (issue 17, items 5 and 11):
//   - a file size limit (setrlimit RLIMIT_FSIZE in the child, i.e. `ulimit -f`) makes the snapshot write fail:
//     the run exits with status 1 (no SIGXFSZ, no crash at exit) naming the file and the cause, leaves no
//     temporary and no partial snapshot, and the earlier snapshot still resumes;
//   - numbers that went bad are never kept (XCLIP_TEST_NAN_AT, a hook in run_loop.c, makes them): a NaN in the
//     weights with a finite loss stops the run before its next snapshot, a NaN loss stops it at once, both naming
//     the last good snapshot and writing nothing; a snapshot with NaN weights (forged: checksums recomputed) is
//     passed over by --resume auto for the older one, with a message, and xclip-export refuses it.
// Small synthetic data (xclip-synth, 8 classes x 8 videos) and the demo model.
#include "test_util.h"
#include "autograd/util.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <hdf5.h>
#include <math.h>
#include "checkpoints/hash64.h"
#include "checkpoints/snapshot.h"
#include "tests/snap_test_util.h"

static const char *g_build;
static char g_sets[8192], g_configs[1024];

// xclip-train with the common settings in a child limited to fsize bytes per file (0: no limit); env: "VAR=value "
// prefix or "". Returns the raw wait status.
static int run_limited(const char *env, const char *args, const char *dir, rlim_t fsize) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s'%s/xclip-train' '%s/demo.ini' %s --set output.dir='%s' %s > '%s.log' 2>&1", env, g_build,
             g_configs, g_sets, dir, args, dir);
    pid_t pid = fork();
    if (pid == 0) {
        if (fsize) {
            struct rlimit rl = {fsize, fsize};
            if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(126);
        }
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static int run(const char *args, const char *dir) {
    int st = run_limited("", args, dir, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool log_has(const char *dir, const char *text) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "grep -qF -- '%s' '%s.log'", text, dir);
    return system(cmd) == 0;
}

// The sh child reports a program killed by a signal as 128 + the signal.
static void check_file_limit(const char *data) {
    char d[1100], snap[1300], want[1400];
    struct stat st;
    snprintf(d, sizeof d, "%s.fsize", data);
    XC_EXPECT(run("--set train.max_iters=2", d) == 0, "2 iterations failed (see %s.log)", d);
    // 1 MB per file: log and metrics fit, a 14 MB snapshot does not
    int ws = run_limited("", "--set train.max_iters=4 --resume auto", d, (rlim_t)1 << 20);
    const int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    XC_EXPECT(code == 1, "snapshot past the file size limit: status %#x (exit %d), want exit 1 (see %s.log)", ws, code, d);
    snprintf(snap, sizeof snap, "%s/snap-000000000004.h5", d);
    snprintf(want, sizeof want, "%s: cannot write", snap);
    XC_EXPECT(log_has(d, want) && log_has(d, "File too large"), "the failed snapshot's error does not name %s and EFBIG "
              "(see %s.log)", snap, d);
    XC_EXPECT(stat(snap, &st) != 0, "a partial snapshot %s is visible", snap);
    XC_EXPECT(st_count(d, SNAPSHOT_TMP_PREFIX) == 0, "a temporary is left in %s", d);
    XC_EXPECT(run("--set train.max_iters=4 --resume auto", d) == 0, "the earlier snapshot does not resume (see %s.log)", d);
    XC_EXPECT(log_has(d, "snap-000000000002.h5: epoch 1, iteration 2") && stat(snap, &st) == 0,
              "the resumed run did not start from iteration 2 and write %s (see %s.log)", snap, d);
    printf("  file size limit 1 MB: exit %d naming %s, no temporary, iteration 2 resumed\n", code, snap);
}

// A NaN in the first model tensor of a snapshot, its checksums recomputed and the file re-sealed: a snapshot
// that passes every integrity check but holds diverged weights.
static void forge_nan(const char *path, int64_t iter) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, "model", H5P_DEFAULT);
    char name[512] = "";
    H5Lget_name_by_idx(g, ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, 0, name, sizeof name, H5P_DEFAULT);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    const hssize_t n = H5Sget_simple_extent_npoints(sp);
    float *buf = malloc((size_t)n * 4);
    XC_EXPECT(f >= 0 && g >= 0 && d >= 0 && n > 0 && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0,
              "cannot read model/%s of %s", name, path);
    buf[n / 2] = NAN;
    uint64_t h = hash64(buf, (size_t)n * 4, 0);
    hid_t a = H5Aopen(d, "xxh64", H5P_DEFAULT);
    XC_EXPECT(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0 && a >= 0 &&
              H5Awrite(a, H5T_NATIVE_UINT64, &h) >= 0, "cannot forge model/%s of %s", name, path);
    free(buf);
    H5Aclose(a);
    H5Sclose(sp);
    H5Dclose(d);
    H5Gclose(g);
    H5Fclose(f);
    XcError err = {{0}};
    XC_EXPECT(snapshot_seal(path, iter, 0, &err) == XC_OK, "reseal %s: %s", path, err.msg);
}

static void check_nonfinite(const char *data) {
    char d[1100], want[1400], snap[1300], cmd[8192];
    struct stat st;
    // NaN weights after batch 6, the loss still finite: the snapshot due at 6 is refused, the run stops
    snprintf(d, sizeof d, "%s.nanw", data);
    int ws = run_limited("XCLIP_TEST_NAN_AT=6:weights ", "--set train.max_iters=8 --set output.snapshot_freq=2 --set output.keep_snapshots=3", d, 0);
    XC_EXPECT(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "NaN weights: status %#x, want exit 1 (see %s.log)", ws, d);
    snprintf(want, sizeof want, "holds NaN or infinite values at epoch 1 iteration 6: stopped, nothing written; the last "
                                "good snapshot is %s/snap-000000000004.h5", d);
    XC_EXPECT(log_has(d, want), "NaN weights: the error does not name the last good snapshot (see %s.log)", d);
    snprintf(snap, sizeof snap, "%s/snap-000000000006.h5", d);
    XC_EXPECT(stat(snap, &st) != 0 && st_count(d, SNAPSHOT_TMP_PREFIX) == 0, "NaN weights: %s or a temporary written", snap);
    snprintf(snap, sizeof snap, "%s/last.safetensors", d);
    XC_EXPECT(stat(snap, &st) != 0, "NaN weights: %s written", snap);

    // a NaN loss at batch 3: stops at once naming snapshot 2
    snprintf(d, sizeof d, "%s.nanl", data);
    ws = run_limited("XCLIP_TEST_NAN_AT=3:loss ", "--set train.max_iters=8 --set output.snapshot_freq=2 --set output.keep_snapshots=3", d, 0);
    XC_EXPECT(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "NaN loss: status %#x, want exit 1 (see %s.log)", ws, d);
    snprintf(want, sizeof want, "the loss is nan at epoch 1 iteration 3: stopped, nothing written; the last good snapshot "
                                "is %s/snap-000000000002.h5", d);
    XC_EXPECT(log_has(d, want), "NaN loss: the error does not name the last good snapshot (see %s.log)", d);

    // a forged snapshot with a NaN (checksums right): --resume auto takes the older one, xclip-export refuses it
    snprintf(d, sizeof d, "%s.nanw", data);
    snprintf(snap, sizeof snap, "%s/snap-000000000004.h5", d);
    forge_nan(snap, 4);
    XC_EXPECT(run("--set train.max_iters=8 --set output.snapshot_freq=2 --set output.keep_snapshots=3 --resume auto", d) == 0,
              "--resume auto over a NaN snapshot failed (see %s.log)", d);
    snprintf(want, sizeof want, "snapshot: skipping %s", snap);
    XC_EXPECT(log_has(d, want) && log_has(d, "holds NaN or infinite values") &&
              log_has(d, "snap-000000000002.h5: epoch 1, iteration 2"),
              "--resume auto did not pass over the NaN snapshot for snap 2, saying so (see %s.log)", d);
    snprintf(snap, sizeof snap, "%s/snap-000000000008.h5", d);
    XC_EXPECT(stat(snap, &st) == 0, "the run resumed over the NaN snapshot did not reach iteration 8");
    snprintf(snap, sizeof snap, "%s/snap-000000000004.h5", d); // rewritten by the resumed run: forge it again
    forge_nan(snap, 4);
    snprintf(cmd, sizeof cmd, "'%s/xclip-export' '%s' '%s.exported.safetensors' > '%s.export.log' 2>&1; test $? -eq 1 && "
                              "grep -q 'NaN or infinite' '%s.export.log' && test ! -e '%s.exported.safetensors'",
             g_build, snap, d, d, d, d);
    XC_EXPECT(system(cmd) == 0, "xclip-export of a NaN snapshot: not refused, or a file written (see %s.export.log)", d);
    printf("  NaN weights: refused before snapshot 6 naming snapshot 4; NaN loss: stopped naming snapshot 2; a NaN "
           "snapshot passed over by --resume auto and refused by xclip-export\n");
}

// Paths that are not what their key wants, and a stop asked for during the set-up (items 10 and 13):
//   - --resume naming a FIFO: refused at once naming the path (a blocking open would wait forever for a writer;
//     `timeout` is only the guard that turns such a hang into a failure);
//   - data.labels naming a folder and output.dir = /dev/null: errors naming the key;
//   - SIGTERM during the set-up (XCLIP_TEST_SIGNAL_AT=setup:TERM): exit 75 before the first batch, with a message.
static void check_hostile_paths(const char *data) {
    char d[1100], fifo[1200], args[1400], want[1600], cmd[16384];
    snprintf(d, sizeof d, "%s.paths", data);
    snprintf(fifo, sizeof fifo, "%s.fifo", data);
    unlink(fifo);
    XC_EXPECT(mkfifo(fifo, 0600) == 0, "mkfifo %s", fifo);
    snprintf(args, sizeof args, "--set train.max_iters=2 --resume '%s'", fifo);
    int st = run_limited("timeout -s KILL 300 ", args, d, 0);
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    XC_EXPECT(code == 1, "--resume FIFO: exit %d, want 1 (137: blocked until the timeout killed it; see %s.log)", code, d);
    snprintf(want, sizeof want, "%s: is a FIFO (named pipe), not a regular file", fifo);
    XC_EXPECT(log_has(d, want), "--resume FIFO: no '%s' in %s.log", want, d);
    unlink(fifo);
    printf("  --resume FIFO: exit %d, refused naming the path\n", code);

    snprintf(d, sizeof d, "%s.labels", data);
    snprintf(args, sizeof args, "--set train.max_iters=2 --set data.labels='%s/videos'", data);
    code = run(args, d);
    snprintf(want, sizeof want, "data.labels = %s/videos: is a directory, not a file", data);
    XC_EXPECT(code == 2 && log_has(d, want), "data.labels = a folder: exit %d (want 2, a config error), no '%s' in %s.log", code, want, d);

    snprintf(d, sizeof d, "%s.devnull", data);
    snprintf(cmd, sizeof cmd, "'%s/xclip-train' '%s/demo.ini' %s --set output.dir=/dev/null --set train.max_iters=2 > '%s.log' 2>&1",
             g_build, g_configs, g_sets, d);
    st = system(cmd);
    XC_EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 1 && log_has(d, "output.dir: /dev/null: cannot create directory"),
              "output.dir = /dev/null: status %#x, the error does not name the key (see %s.log)", st, d);

    snprintf(d, sizeof d, "%s.setup", data);
    code = WEXITSTATUS(run_limited("XCLIP_TEST_SIGNAL_AT=setup:TERM ", "--set train.max_iters=2", d, 0));
    XC_EXPECT(code == 75 && log_has(d, "during the set-up, before training"),
              "SIGTERM during the set-up: exit %d, want 75 and a message (see %s.log)", code, d);
    XC_EXPECT(st_count(d, "snap-") == 0 && !log_has(d, "\"iter\""), "SIGTERM during the set-up: a batch ran or a snapshot was written (see %s)", d);
    printf("  data.labels = a folder, output.dir = /dev/null: named; SIGTERM in the set-up: exit %d before training\n", code);
}

int main(void) {
    g_build = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build";
    xc_test_path("XCLIP_FIXTURES", "tests/fixtures", "../../configs", g_configs, sizeof g_configs);
    char data[1024];
    XC_EXPECT(xc_synth_sets(g_build, "test_train_faults", "--classes 8 --per-class 8 --val-per-class 2 --frames 16 --size 32",
                            "--set train.batch_size=4 --set train.epochs=3 --set train.eval_freq=0 --set test.final_num_clip=0 "
                            "--set output.progress=off --set output.print_freq=1", data, sizeof data, g_sets, sizeof g_sets),
              "xclip-synth failed");
    check_file_limit(data);
    check_nonfinite(data);
    check_hostile_paths(data);
    return xc_test_summary("test_train_faults");
}
