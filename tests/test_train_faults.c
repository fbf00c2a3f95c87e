// test_train_faults.c - xclip-train when the disk refuses and when the numbers go bad (issue 17, items 5 and 11):
//   - a file size limit (setrlimit RLIMIT_FSIZE in the child, i.e. `ulimit -f`) makes the snapshot write fail:
//     the run exits with status 1 (no SIGXFSZ, no crash at exit) naming the file and the cause, leaves no
//     temporary and no partial snapshot, and the earlier snapshot still resumes;
//   (the non-finite checks follow in check_nonfinite)
// Small synthetic data (xclip-synth, 8 classes x 8 videos) and the demo model.
#include "test_util.h"
#include "autograd/util.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
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

int main(void) {
    g_build = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build";
    xc_test_path("XCLIP_FIXTURES", "tests/fixtures", "../../configs", g_configs, sizeof g_configs);
    char data[1024], vocab[1200], cmd[16384];
    snprintf(data, sizeof data, "%s/test_train_faults.data", g_build);
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'* && '%s/xclip-synth' '%s' --classes 8 --per-class 8 --val-per-class 2 --frames 16 --size 32 > /dev/null",
             data, g_build, data);
    XC_EXPECT(system(cmd) == 0, "xclip-synth failed");
    snprintf(g_sets, sizeof g_sets,
             "--set data.root='%s/videos' --set data.train_list='%s/train.txt' --set data.val_list='%s/val.txt' "
             "--set data.labels='%s/labels.csv' --set data.vocab='%s' --set train.batch_size=4 --set train.epochs=3 "
             "--set train.eval_freq=0 --set test.final_num_clip=0 --set output.progress=off --set output.print_freq=1",
             data, data, data, data, vocab);
    check_file_limit(data);
    return xc_test_summary("test_train_faults");
}
