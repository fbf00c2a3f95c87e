// test_train_resume.c - snapshots in xclip-train: a run stopped and resumed ends with the same weights, bit for
// bit, as an uninterrupted one:
//   - stopped by train.max_iters in the middle of an epoch (after periodic snapshots), continued with --resume auto;
//   - with gradient accumulation 2, stopped by SIGTERM, continued: the run raises SIGTERM to itself after iteration 7
//     (XCLIP_TEST_SIGNAL_AT=7:TERM, a hook in train_run), so the stop always happens, through the real handler:
//     it must exit with status 75, say "stopped by signal 15" in its log.txt, and leave its snapshot at the next
//     accumulation boundary (iteration 8), which the resumed run starts from;
//   - SIGTERM during an evaluation (XCLIP_TEST_SIGNAL_AT=eval:2:TERM): exit 75 after that batch, the partial
//     evaluation recorded nowhere, the resumed run evaluates the epoch again and ends with the same last and best
//     weights as an uninterrupted run; curves.svg in the run folder; xclip-plot overlays two runs;
//   - --resume PATH of a missing file fails naming it; --resume auto in an empty directory starts afresh;
//   - a fresh run into a folder holding a run is refused (nothing there changes) unless --overwrite, which removes
//     the earlier snapshots; the stop hint names the run's own config.ini; metrics.jsonl counts epochs and
//     iterations from 1 and times every record; a warm-up covering the whole run is warned about;
//   - train.matmul = bf16 (where AMX or AVX512-BF16 exists): the run says so and names the unit, its mean loss over
//     the last 8 iterations is within 5% of the float32 run's, and stopped + resumed equals uninterrupted, bit for
//     bit; with neither unit the key is refused by name.
// Small synthetic data (xclip-synth, 8 classes x 8 videos) and the demo model; about 30 s.
#include "test_util.h"
#include "autograd/kernels.h"
#include "autograd/util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <hdf5.h>
#include "checkpoints/snapshot.h"
#include "train/signals.h"

static const char *g_build;
static char g_sets[8192], g_configs[1024];

// xclip-train with the common settings; env: "VAR=value " prefix or "".
static int run_env(const char *env, const char *args, const char *dir) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "%s'%s/xclip-train' '%s/demo.ini' %s --set output.dir='%s' %s > '%s.log' 2>&1", env, g_build,
             g_configs, g_sets, dir, args, dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(const char *args, const char *dir) { return run_env("", args, dir); }

// best_epoch of the evaluation record of epoch ep in dir/metrics.jsonl (-1: none).
static int eval_best_epoch(const char *dir, int ep) {
    char path[1200], line[4096], want[48];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    snprintf(want, sizeof want, "\"epoch\": %d,", ep);
    FILE *f = fopen(path, "r");
    int best = -1;
    while (f && fgets(line, sizeof line, f)) {
        const char *b = strstr(line, "\"best_epoch\": ");
        if (strstr(line, "\"type\": \"eval\"") && strstr(line, want) && b) best = atoi(b + 14);
    }
    if (f) fclose(f);
    return best;
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF) n += ch == '\n';
    fclose(f);
    return n;
}

// Ctrl-C twice in a process with the run's handlers (a child): the first sets the stop request and says at once
// what happens and what a second Ctrl-C does; the second says it quits and the process dies of SIGINT (status 130
// in a shell).
static void check_ctrl_c_twice(void) {
    int fd[2];
    XC_EXPECT(pipe(fd) == 0, "pipe");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], STDERR_FILENO);
        signals_install();
        raise(SIGINT);
        if (!(signals_poll() & SIGNAL_STOP)) _exit(3);
        raise(SIGINT);
        _exit(4); // not reached: the second SIGINT kills
    }
    close(fd[1]);
    char out[1024];
    ssize_t n, got = 0;
    while ((n = read(fd[0], out + got, sizeof out - 1 - (size_t)got)) > 0) got += n;
    out[got > 0 ? got : 0] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    XC_EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "second Ctrl-C: the process did not die of SIGINT (status %#x)", st);
    XC_EXPECT(strstr(out, "stopping at the next batch boundary") && strstr(out, "Ctrl-C again to quit at once"),
              "first Ctrl-C: no notice of what happens and what a second one does: '%s'", out);
    XC_EXPECT(strstr(out, "second Ctrl-C: quitting at once"), "second Ctrl-C: no notice: '%s'", out);
}

// Rewrite one int64 root attribute of a snapshot with libhdf5 and re-seal it: a well-formed file that lies.
static void forge_attr(const char *src, const char *dst, const char *attr, int64_t v) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
    XC_EXPECT(system(cmd) == 0, "cannot copy %s", src);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, attr, H5P_DEFAULT);
    XC_EXPECT(f >= 0 && a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0, "cannot forge %s in %s", attr, dst);
    H5Aclose(a);
    H5Fclose(f);
    XcError err = {{0}};
    XC_EXPECT(snapshot_seal(dst, 1, 0, &err) == XC_OK, "reseal %s: %s", dst, err.msg);
}

// A run's position in a snapshot is input (issue 17, item 4): a changed train.batch_size continues from a
// snapshot taken at an epoch's end (the place in the items is what counts) and is refused, naming the snapshot,
// the field and both values, from the middle of an epoch; forged counters and cursors are refused by name, never
// an abort.
static void check_position(const char *data) {
    char d[1100], log[1200], cmd[8192], snap[1300], forged[1300];
    struct stat st;
    snprintf(d, sizeof d, "%s.bs", data);
    XC_EXPECT(run("--set train.max_iters=16", d) == 0, "16 iterations (one epoch of batch 4) failed (see %s.log)", d);
    int code = run("--set train.batch_size=8 --set train.max_iters=24 --resume auto", d);
    snprintf(log, sizeof log, "%s.log", d);
    XC_EXPECT(code == 0, "resume at an epoch's end with train.batch_size 4 -> 8: exit %d, want 0 (see %s)", code, log);
    snprintf(cmd, sizeof cmd, "grep -q 'resumes at the start of epoch 2, the iteration count becomes 8 (was 16)' '%s' && "
                              "grep -q 'done: 24 iterations' '%s'", log, log);
    XC_EXPECT(system(cmd) == 0, "batch size 4 -> 8 at an epoch's end: not recounted to 8 + 16 = 24 iterations (see %s)", log);

    snprintf(d, sizeof d, "%s.bm", data);
    XC_EXPECT(run("--set train.max_iters=6", d) == 0, "6 iterations failed (see %s.log)", d);
    snprintf(snap, sizeof snap, "%s/snap-000000000006.h5", d);
    XC_EXPECT(stat(snap, &st) == 0, "no snapshot %s", snap);
    code = run("--set train.batch_size=8 --set train.max_iters=24 --resume auto", d);
    XC_EXPECT(code == 1, "resume mid-epoch with train.batch_size 4 -> 8: exit %d, want 1 (refused; see %s.log)", code, d);
    snprintf(cmd, sizeof cmd, "grep -q 'snapshot %s: it stopped in the middle of epoch 1 (iter_in_epoch = 6 of 16 "
                              "batches); this run has 8 batches per epoch (train.batch_size = 8)' "
                              "'%s.log'", snap, d);
    XC_EXPECT(system(cmd) == 0, "the mid-epoch refusal does not name the snapshot, the field and both values (see %s.log)", d);

    // forged counters: each refused naming the field and its value (exit 1, not a crash)
    const struct { const char *attr; int64_t v; const char *want; } cases[] = {
        {"epoch", 99, "epoch = 99 is outside this run"},
        {"epoch", -1, "forged.h5: negative iteration, epoch or cursor"},
        {"global_iter", (int64_t)1 << 62, "global_iter = 4611686018427387904 does not fit"},
        {"iter_in_epoch", 5, "global_iter = 6 does not fit epoch = 0 and iter_in_epoch = 5"},
        {"cursor_batch", 1000, "data cursor (epoch 0, batch 1000) differs"},
        {"cursor_epoch", 7, "data cursor (epoch 7, batch 6) differs"},
        {"best_iter", 1000, "best_epoch = 0 / best_iter = 1000 lie beyond"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(forged, sizeof forged, "%s.forged.h5", d);
        forge_attr(snap, forged, cases[k].attr, cases[k].v);
        char args[2048];
        snprintf(args, sizeof args, "--set train.max_iters=24 --resume '%s'", forged);
        code = run(args, d);
        snprintf(cmd, sizeof cmd, "grep -F '%s' '%s.log' | grep -qF '%s'", forged, d, cases[k].want);
        const int found = system(cmd);
        XC_EXPECT(code == 1 && found == 0, "forged %s = %lld: exit %d, want 1 and '%s' (see %s.log)", cases[k].attr,
                  (long long)cases[k].v, code, cases[k].want, d);
        if (code != 1 || found != 0) {
            snprintf(cmd, sizeof cmd, "tail -3 '%s.log'", d);
            XC_EXPECT(system(cmd) == 0, "%s.log", d);
        }
    }
    // a forged iter_in_epoch beyond the epoch, consistent with global_iter
    snprintf(forged, sizeof forged, "%s.forged.h5", d);
    forge_attr(snap, forged, "iter_in_epoch", 40);
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.forged2.h5", d);
    forge_attr(forged, tmp, "global_iter", 40);
    forge_attr(tmp, forged, "cursor_batch", 40);
    snprintf(cmd, sizeof cmd, "--set train.max_iters=24 --resume '%s'", forged);
    code = run(cmd, d);
    snprintf(cmd, sizeof cmd, "grep -qF 'iter_in_epoch = 40 is beyond an epoch of 16 batches' '%s.log'", d);
    XC_EXPECT(code == 1 && system(cmd) == 0, "forged iter_in_epoch = 40: exit %d, want 1 naming it (see %s.log)", code, d);
    printf("  batch size 4 -> 8 resumed at an epoch's end (24 iterations), refused mid-epoch; %zu forged counters refused\n",
           sizeof cases / sizeof cases[0] + 1);
}

int main(void) {
    check_ctrl_c_twice();
    g_build = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build";
    xc_test_path("XCLIP_FIXTURES", "tests/fixtures", "../../configs", g_configs, sizeof g_configs);
    char data[1024], cmd[16384], a[1100], b[1100], p1[1300], p2[1300];
    XC_EXPECT(xc_synth_sets(g_build, "test_train_resume", "--classes 8 --per-class 8 --val-per-class 2 --frames 16 --size 32",
                            "--set train.batch_size=4 --set train.epochs=3 --set train.eval_freq=0 --set test.final_num_clip=0 "
                            "--set output.progress=off --set output.print_freq=1", data, sizeof data, g_sets, sizeof g_sets),
              "xclip-synth failed");

    check_position(data);

    // 1. max_iters stop mid-epoch (epoch = 16 batches), periodic snapshots, --resume auto
    snprintf(a, sizeof a, "%s.a", data);
    snprintf(b, sizeof b, "%s.b", data);
    XC_EXPECT(run("--set train.max_iters=40", a) == 0, "uninterrupted run failed (see %s.log)", a);
    XC_EXPECT(run("--set train.max_iters=21 --set output.snapshot_freq=5", b) == 0, "first part failed (see %s.log)", b);
    XC_EXPECT(run("--set train.max_iters=40 --resume auto", b) == 0, "resumed part failed (see %s.log)", b);
    snprintf(p1, sizeof p1, "%s/last.safetensors", a);
    snprintf(p2, sizeof p2, "%s/last.safetensors", b);
    XC_EXPECT(xc_same_file(p1, p2), "stopped at 21 and resumed: weights differ from the uninterrupted run");
    snprintf(cmd, sizeof cmd, "grep -q 'train.max_iters = 40 (snapshot: 21)' '%s.log'", b);
    XC_EXPECT(system(cmd) == 0, "the resumed run does not name the setting that changed (see %s.log)", b);
    snprintf(p2, sizeof p2, "%s/snap-000000000021.h5", b);
    struct stat st;
    XC_EXPECT(stat(p2, &st) == 0, "no snapshot at the stop (iteration 21)");

    // 1b. output.snapshot_min_seconds: 3 epochs of 16 batches, evaluated after each. With an hour, an epoch's end
    //     has a snapshot only if it is the last or its evaluation found a new best model (metrics.jsonl says which),
    //     and log.txt names each one skipped; the weights are the run's without it bit for bit. A SIGTERM still
    //     writes its snapshot, and the run resumed from it ends the same.
    char m1[1100], m0[1100], m2[1100];
    snprintf(m1, sizeof m1, "%s.min1", data);
    snprintf(m0, sizeof m0, "%s.min0", data);
    snprintf(m2, sizeof m2, "%s.min2", data);
    const char *three = "--set train.epochs=3 --set train.eval_freq=1 --set test.batch_size=4 --set output.keep_snapshots=10",
               *hour = "--set output.snapshot_min_seconds=3600";
    XC_EXPECT(run(three, m0) == 0, "3 epochs failed (see %s.log)", m0);
    snprintf(cmd, sizeof cmd, "%s %s", three, hour);
    XC_EXPECT(run(cmd, m1) == 0, "3 epochs with snapshot_min_seconds failed (see %s.log)", m1);
    char kept[64] = "", skipped[64] = "";
    for (int ep = 1; ep <= 3; ep++) {
        const int best = eval_best_epoch(m1, ep);
        const bool want = ep == 3 || best == ep;
        snprintf(p1, sizeof p1, "%s/snap-%012d.h5", m0, 16 * ep);
        snprintf(p2, sizeof p2, "%s/snap-%012d.h5", m1, 16 * ep);
        XC_EXPECT(best > 0 && stat(p1, &st) == 0, "epoch %d: no evaluation record in %s or no snapshot without the setting", ep, m1);
        XC_EXPECT((stat(p2, &st) == 0) == want, "snapshot_min_seconds = 3600: the end of epoch %d %s a snapshot (best epoch %d, "
                  "last 3)", ep, want ? "lacks" : "has", best);
        snprintf(cmd, sizeof cmd, "grep -q 'no snapshot at the end of epoch %d: .* s since the last one or the start "
                 "(output.snapshot_min_seconds = 3600)' '%s/log.txt'", ep, m1);
        XC_EXPECT((system(cmd) == 0) == !want, "log.txt %s epoch %d's skipped snapshot (see %s/log.txt)", want ? "names" : "does not name",
                  ep, m1);
        char *list = want ? kept : skipped;
        snprintf(list + strlen(list), sizeof kept - strlen(list), " %d%s", ep, want && best == ep ? " (best)" : "");
    }
    snprintf(p1, sizeof p1, "%s/last.safetensors", m0);
    snprintf(p2, sizeof p2, "%s/last.safetensors", m1);
    XC_EXPECT(xc_same_file(p1, p2), "snapshot_min_seconds changed the trained weights");
    snprintf(cmd, sizeof cmd, "%s %s", three, hour);
    int code = run_env("XCLIP_TEST_SIGNAL_AT=20:TERM ", cmd, m2);
    snprintf(p2, sizeof p2, "%s/snap-000000000020.h5", m2);
    XC_EXPECT(code == 75 && stat(p2, &st) == 0, "snapshot_min_seconds and SIGTERM after iteration 20: exit %d (want 75), "
              "snapshot at 20 %s (see %s.log)", code, stat(p2, &st) == 0 ? "written" : "missing", m2);
    snprintf(cmd, sizeof cmd, "%s %s --resume auto", three, hour);
    XC_EXPECT(run(cmd, m2) == 0, "resume with snapshot_min_seconds failed (see %s.log)", m2);
    snprintf(p2, sizeof p2, "%s/last.safetensors", m2);
    XC_EXPECT(xc_same_file(p1, p2), "snapshot_min_seconds, stopped at 20 and resumed: weights differ from the uninterrupted run");
    printf("  output.snapshot_min_seconds = 3600: epoch-end snapshots at epochs%s, none at%s; one at a SIGTERM; weights "
           "as without it, also after the resume\n", kept, *skipped ? skipped : " none");

    // 2. accumulation 2, SIGTERM mid-run: exit 75 after a snapshot, then --resume auto
    char c2[1100], d2[1100];
    snprintf(c2, sizeof c2, "%s.c", data);
    snprintf(d2, sizeof d2, "%s.d", data);
    XC_EXPECT(run("--set train.max_iters=40 --set train.accumulation_steps=2", c2) == 0, "uninterrupted accumulation run failed");
    code = run_env("XCLIP_TEST_SIGNAL_AT=7:TERM ", "--set train.max_iters=40 --set train.accumulation_steps=2", d2);
    XC_EXPECT(code == 75, "SIGTERM after iteration 7: exit status %d, want 75 (stopped after a snapshot; see %s.log)", code, d2);
    snprintf(cmd, sizeof cmd, "grep -q 'stopped by signal %d after the snapshot' '%s/log.txt'", SIGTERM, d2);
    XC_EXPECT(system(cmd) == 0, "SIGTERM: no 'stopped by signal %d' line in %s/log.txt", SIGTERM, d2);
    snprintf(p2, sizeof p2, "%s/snap-000000000008.h5", d2);
    XC_EXPECT(stat(p2, &st) == 0, "SIGTERM after iteration 7: no snapshot at the accumulation boundary (iteration 8)");
    snprintf(p2, sizeof p2, "%s/metrics.jsonl", d2);
    int lines = count_lines(p2);
    XC_EXPECT(lines == 8, "SIGTERM after iteration 7: %d lines in metrics.jsonl, want 8 (iterations 1-8, no eval)", lines);
    snprintf(cmd, sizeof cmd, "head -n 1 '%s' | grep -q '\"iter\": 1, \"global_iter\": 1,' && tail -n 1 '%s' | grep -q "
             "'\"iter\": 8, \"global_iter\": 8,'", p2, p2);
    XC_EXPECT(system(cmd) == 0, "metrics.jsonl's train records do not count global_iter from 1 as iter (see %s)", p2);
    printf("  SIGTERM raised after iteration 7: exit %d, %d iterations logged, snapshot at 8\n", code, lines);
    XC_EXPECT(run("--set train.max_iters=40 --set train.accumulation_steps=2 --resume auto", d2) == 0, "resume after SIGTERM failed");
    snprintf(cmd, sizeof cmd, "grep -q 'snap-000000000008.h5: epoch 1, iteration 8 of 16' '%s.log'", d2);
    XC_EXPECT(system(cmd) == 0, "the run resumed after SIGTERM does not start from iteration 8 (see %s.log)", d2);
    snprintf(p1, sizeof p1, "%s/last.safetensors", c2);
    snprintf(p2, sizeof p2, "%s/last.safetensors", d2);
    XC_EXPECT(xc_same_file(p1, p2), "SIGTERM and resume with accumulation 2: weights differ from the uninterrupted run");

    // 2a. the run directory under misuse:
    //     - train.max_iters = 7 with accumulation 2 stops at the boundary (8), and the resumed run equals c2;
    //     - a resume from an older snapshot (8 of 8, 16, 24) moves the newer ones to superseded/1 (never deletes
    //       them), so its own snapshot 12 is what --resume auto takes next;
    //     - a refused --resume leaves config.ini as it was;
    //     - an accumulation longer than an epoch (17 > 16 batches) is refused, naming the key;
    //     - a folder another process holds (output.dir/.lock) is refused, naming that process.
    {
        char e3[1100], r3[1100];
        snprintf(e3, sizeof e3, "%s.e3", data);
        XC_EXPECT(run("--set train.max_iters=7 --set train.accumulation_steps=2", e3) == 0, "max_iters 7 failed (see %s.log)", e3);
        snprintf(p2, sizeof p2, "%s/snap-000000000008.h5", e3);
        XC_EXPECT(stat(p2, &st) == 0, "max_iters = 7 with accumulation 2: no stop at the boundary, iteration 8 (see %s.log)", e3);
        XC_EXPECT(run("--set train.max_iters=40 --set train.accumulation_steps=2 --resume auto", e3) == 0, "resume failed");
        snprintf(p1, sizeof p1, "%s/last.safetensors", c2);
        snprintf(p2, sizeof p2, "%s/last.safetensors", e3);
        XC_EXPECT(xc_same_file(p1, p2), "max_iters = 7 with accumulation 2, then resumed: weights differ from the uninterrupted run");
        snprintf(r3, sizeof r3, "%s.r3", data);
        XC_EXPECT(run("--set train.max_iters=24 --set output.snapshot_freq=8 --set output.keep_snapshots=5", r3) == 0,
                  "24 iterations failed (see %s.log)", r3);
        snprintf(cmd, sizeof cmd, "--set train.max_iters=12 --set output.snapshot_freq=4 --set output.keep_snapshots=5 "
                 "--resume '%s/snap-000000000008.h5'", r3);
        XC_EXPECT(run(cmd, r3) == 0, "resume from snapshot 8 failed (see %s.log)", r3);
        snprintf(cmd, sizeof cmd, "test -f '%s/superseded/1/snap-000000000016.h5' && test -f '%s/superseded/1/snap-000000000024.h5' "
                 "&& test -f '%s/snap-000000000012.h5' && test ! -e '%s/snap-000000000016.h5' && grep -q 'moved to %s/superseded/1' "
                 "'%s.log'", r3, r3, r3, r3, r3, r3);
        XC_EXPECT(system(cmd) == 0, "resumed from an older snapshot: the newer ones not set aside in superseded/1 (see %s.log)", r3);
        snprintf(p1, sizeof p1, "%s/config.ini", r3);
        snprintf(p2, sizeof p2, "%s.config-before", r3);
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p1, p2);
        XC_EXPECT(system(cmd) == 0, "cannot copy %s", p1);
        XC_EXPECT(run("--set train.max_iters=16 --set model.vision_layers=3 --resume auto", r3) == 1, "a resume into another "
                  "model did not fail (see %s.log)", r3);
        snprintf(cmd, sizeof cmd, "grep -q 'snap-000000000012.h5' '%s.log'", r3);
        XC_EXPECT(system(cmd) == 0, "--resume auto did not take snapshot 12, this branch's newest (see %s.log)", r3);
        XC_EXPECT(xc_same_file(p1, p2), "a refused --resume rewrote %s", p1);
        XC_EXPECT(run("--set train.accumulation_steps=17 --resume auto", r3) == 1, "an accumulation longer than an epoch was not refused");
        snprintf(cmd, sizeof cmd, "grep -q 'train.accumulation_steps = 17 asks for 17 batches per optimiser step, but an epoch "
                 "has 16' '%s.log'", r3);
        XC_EXPECT(system(cmd) == 0, "the refused accumulation does not say why (see %s.log)", r3);
        snprintf(p1, sizeof p1, "%s/.lock", r3);
        const int fd = open(p1, O_RDWR | O_CREAT, 0666);
        XC_EXPECT(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && ftruncate(fd, 0) == 0 && write(fd, "424242\n", 7) == 7,
                  "cannot hold %s", p1);
        XC_EXPECT(run("--set train.max_iters=16 --resume auto", r3) == 1, "a run into a folder another process holds was not refused");
        snprintf(cmd, sizeof cmd, "grep -q 'is in use by another run (process 424242' '%s.log'", r3);
        XC_EXPECT(system(cmd) == 0, "the refusal does not name the process holding the folder (see %s.log)", r3);
        if (fd >= 0) close(fd);
        XC_EXPECT(run("--set train.max_iters=16 --set output.snapshot_freq=4 --set output.keep_snapshots=5 --resume auto", r3) == 0,
                  "the folder released: the resume failed (see %s.log)", r3);
        printf("  max_iters 7 with accumulation 2 stops at 8 and resumes exactly; a resume from snapshot 8 sets 16 and 24 "
               "aside; a refused resume keeps config.ini; accumulation 17 > 16 and a held folder refused\n");
    }

    // 2b. SIGTERM during an evaluation (eval:2:TERM: after its 2nd batch of 4 videos): exit 75 after that batch,
    //     the partial evaluation not recorded, a snapshot that leaves epoch 1 unfinished; --resume auto evaluates
    //     epoch 1 again and ends as the uninterrupted run (c2 with evaluations): same last and best weights.
    //     Every run folder has curves.svg; xclip-plot overlays two runs and refuses a folder without metrics.
    char h[1100], i2[1100];
    snprintf(h, sizeof h, "%s.h", data);
    snprintf(i2, sizeof i2, "%s.i", data);
    const char *ev = "--set train.max_iters=40 --set train.eval_freq=1 --set test.batch_size=4";
    XC_EXPECT(run(ev, h) == 0, "uninterrupted run with evaluations failed (see %s.log)", h);
    code = run_env("XCLIP_TEST_SIGNAL_AT=eval:2:TERM ", ev, i2);
    XC_EXPECT(code == 75, "SIGTERM in an evaluation: exit status %d, want 75 (see %s.log)", code, i2);
    snprintf(cmd, sizeof cmd, "grep -q 'eval epoch 1/3 interrupted by signal %d (partial: .*(8 videos' '%s/log.txt'", SIGTERM, i2);
    XC_EXPECT(system(cmd) == 0, "the log does not say the evaluation stopped after its 2nd batch of 4 (see %s/log.txt)", i2);
    snprintf(cmd, sizeof cmd, "grep -q 'stopping at the next batch boundary' '%s.log'", i2);
    XC_EXPECT(system(cmd) == 0, "SIGTERM: no notice at once that the run stops at the next batch boundary (see %s.log)", i2);
    snprintf(cmd, sizeof cmd, "grep -q '\"eval\"' '%s/metrics.jsonl'", i2);
    XC_EXPECT(system(cmd) != 0, "the interrupted evaluation was recorded in metrics.jsonl");
    snprintf(p2, sizeof p2, "%s/best.safetensors", i2);
    XC_EXPECT(stat(p2, &st) != 0, "the interrupted evaluation wrote best.safetensors");
    snprintf(p2, sizeof p2, "%s/snap-000000000016.h5", i2);
    XC_EXPECT(stat(p2, &st) == 0, "SIGTERM in the evaluation after epoch 1: no snapshot at iteration 16");
    snprintf(cmd, sizeof cmd, "%s --resume auto", ev);
    XC_EXPECT(run(cmd, i2) == 0,
              "resume after SIGTERM in an evaluation failed (see %s.log)", i2);
    snprintf(cmd, sizeof cmd, "grep -q 'eval epoch 1/3: top-1' '%s.log'", i2);
    XC_EXPECT(system(cmd) == 0, "the resumed run did not evaluate epoch 1 again (see %s.log)", i2);
    for (int w = 0; w < 2; w++) {
        snprintf(p1, sizeof p1, "%s/%s.safetensors", h, w ? "best" : "last");
        snprintf(p2, sizeof p2, "%s/%s.safetensors", i2, w ? "best" : "last");
        XC_EXPECT(xc_same_file(p1, p2), "SIGTERM in an evaluation and resume: %s.safetensors differs from the uninterrupted run",
                  w ? "best" : "last");
    }
    snprintf(cmd, sizeof cmd, "grep -c '<polyline' '%s/curves.svg' | grep -qv '^0$' && tail -1 '%s/curves.svg' | grep -q '</svg>'", i2, i2);
    XC_EXPECT(system(cmd) == 0, "no complete curves.svg with lines in %s", i2);
    snprintf(cmd, sizeof cmd, "'%s/xclip-plot' '%s' '%s' -o '%s.plot.svg' > /dev/null && grep -q '>%s</text>' '%s.plot.svg' && "
             "grep -q '>%s</text>' '%s.plot.svg' && grep -q 'class=\"s1\"' '%s.plot.svg'", g_build, h, i2, data, h, data, i2, data, data);
    XC_EXPECT(system(cmd) == 0, "xclip-plot did not overlay two runs with a legend naming both (see %s.plot.svg)", data);
    snprintf(cmd, sizeof cmd, "'%s/xclip-plot' '%s' -o '%s.none.svg' 2>&1 | grep -q '%s has no readable metrics.jsonl'", g_build,
             g_configs, data, g_configs);
    XC_EXPECT(system(cmd) == 0, "xclip-plot on a folder without metrics.jsonl does not say so");
    { // train.max_iters at an epoch's last batch (16): that epoch is evaluated once, also across the resume
        char j[1100];
        snprintf(j, sizeof j, "%s.j", data);
        XC_EXPECT(run("--set train.max_iters=16 --set train.eval_freq=1 --set test.batch_size=4", j) == 0, "max_iters 16 failed");
        snprintf(cmd, sizeof cmd, "%s --resume auto", ev);
        XC_EXPECT(run(cmd, j) == 0, "resume after max_iters = 16 failed (see %s.log)", j);
        snprintf(cmd, sizeof cmd, "test $(grep -c '\"type\": \"eval\", \"time\": [0-9.]*, \"epoch\": 1,' '%s/metrics.jsonl') -eq 1", j);
        XC_EXPECT(system(cmd) == 0, "max_iters at an epoch's end, then resumed: epoch 1 evaluated more than once (see %s/metrics.jsonl)", j);
        snprintf(p1, sizeof p1, "%s/last.safetensors", h);
        snprintf(p2, sizeof p2, "%s/last.safetensors", j);
        XC_EXPECT(xc_same_file(p1, p2), "max_iters at an epoch's end, then resumed: weights differ from the uninterrupted run");
    }
    printf("  SIGTERM after evaluation batch 2: exit %d, not recorded, resumed run equals the uninterrupted one; "
           "curves.svg and xclip-plot overlay written\n", code);

    // 3. --resume errors and the empty directory
    char e[1100];
    snprintf(e, sizeof e, "%s.e", data);
    XC_EXPECT(run("--set train.max_iters=2 --resume /nonexistent/snap.h5", e) == 1, "--resume of a missing file did not fail");
    snprintf(cmd, sizeof cmd, "grep -q '/nonexistent/snap.h5' '%s.log'", e);
    XC_EXPECT(system(cmd) == 0, "--resume error does not name the file");
    XC_EXPECT(run("--set train.max_iters=2 --resume auto", e) == 0, "--resume auto in an empty directory failed");
    snprintf(cmd, sizeof cmd, "grep -q 'no snapshot in' '%s.log'", e);
    XC_EXPECT(system(cmd) == 0, "--resume auto did not say it started afresh");

    // 4. run folders: a fresh run into a folder holding a run is refused and changes nothing there; --overwrite
    //    starts afresh (the old snapshots gone); the stop hint resumes this run; metrics count epochs from 1 and
    //    carry the time; a warm-up longer than the run is called out.
    char snap40[1300];
    snprintf(snap40, sizeof snap40, "%s/snap-000000000040.h5", b);
    XC_EXPECT(stat(snap40, &st) == 0, "the finished run has no snapshot %s", snap40);
    snprintf(p1, sizeof p1, "%s/last.safetensors", b);
    snprintf(p2, sizeof p2, "%s.last-before", b);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", p1, p2);
    XC_EXPECT(system(cmd) == 0, "cannot copy %s", p1);
    code = run("--set train.max_iters=2", b);
    XC_EXPECT(code == 1, "a fresh run into a folder holding a run: exit %d, want 1 (refused)", code);
    snprintf(cmd, sizeof cmd, "grep -q 'already holds a run' '%s.log' && grep -q -- '--overwrite' '%s.log'", b, b);
    XC_EXPECT(system(cmd) == 0, "the refusal does not say why or offer --overwrite (see %s.log)", b);
    XC_EXPECT(xc_same_file(p1, p2), "the refused run changed the earlier run's last.safetensors");
    XC_EXPECT(run("--set train.max_iters=2 --overwrite", b) == 0, "--overwrite run failed (see %s.log)", b);
    XC_EXPECT(stat(snap40, &st) != 0, "--overwrite kept the earlier run's snapshot %s", snap40);
    snprintf(cmd, sizeof cmd, "grep -q 'continue with: .*xclip-train %s/config.ini --resume auto' '%s/log.txt'", d2, d2);
    XC_EXPECT(system(cmd) == 0, "the stop hint does not resume the run through its own config.ini (see %s/log.txt)", d2);
    snprintf(cmd, sizeof cmd, "head -1 '%s/metrics.jsonl' | grep -q '\"time\": [0-9]*\\.[0-9]*, \"epoch\": 1, \"iter\": 1,'", b);
    XC_EXPECT(system(cmd) == 0, "metrics.jsonl: the first record lacks the time or does not count from epoch 1, iteration 1");
    snprintf(cmd, sizeof cmd, "grep -q 'covers the whole run' '%s/log.txt'", e);
    XC_EXPECT(system(cmd) != 0, "a warm-up warning for a run whose warm-up is shorter than the run");
    snprintf(e, sizeof e, "%s.w", data);
    XC_EXPECT(run("--set train.max_iters=1 --set train.warmup_epochs=3", e) == 0, "warm-up run failed (see %s.log)", e);
    snprintf(cmd, sizeof cmd, "grep -q 'covers the whole run' '%s/log.txt'", e);
    XC_EXPECT(system(cmd) == 0, "a warm-up covering all 3 epochs is not called out (see %s/log.txt)", e);

    // 5. bf16 matmuls
    char f[1100], g[1100];
    snprintf(f, sizeof f, "%s.f", data);
    snprintf(g, sizeof g, "%s.g", data);
    if (xc_bf16_best_kernel() == XC_BF16_NONE) {
        XC_EXPECT(run("--set train.max_iters=2 --set train.matmul=bf16", f) == 2, "train.matmul = bf16 without a bf16 unit was not refused");
        snprintf(cmd, sizeof cmd, "grep -q 'train.matmul = bf16' '%s.log'", f);
        XC_EXPECT(system(cmd) == 0, "the bf16 refusal does not name train.matmul");
        printf("  neither AMX nor AVX512-BF16 here: train.matmul = bf16 refused by name\n");
    } else {
        XC_EXPECT(run("--set train.max_iters=40 --set train.matmul=bf16", f) == 0, "bf16 run failed (see %s.log)", f);
        snprintf(cmd, sizeof cmd, "grep -q 'matmuls in bf16 (%s,' '%s.log'", xc_bf16_kernel_name(xc_bf16_best_kernel()), f);
        XC_EXPECT(system(cmd) == 0, "the bf16 run does not say so, naming %s (see %s.log)", xc_bf16_kernel_name(xc_bf16_best_kernel()), f);
        // on the FMA kernel (a slow VDPBF16PS) the log tells that fp32 is as fast, and only there
        const bool slow_dp = xc_bf16_best_kernel() == XC_BF16_AVX512_FMA;
        snprintf(cmd, sizeof cmd, "grep -q 'train.matmul = fp32 is as fast here' '%s.log'", f);
        XC_EXPECT((system(cmd) == 0) == slow_dp, "the bf16 run %s the note on a slow VDPBF16PS (kernel %s; see %s.log)",
                  slow_dp ? "lacks" : "wrongly prints", xc_bf16_kernel_name(xc_bf16_best_kernel()), f);
        XC_EXPECT(run("--set train.max_iters=21 --set train.matmul=bf16 --set output.snapshot_freq=7", g) == 0, "bf16 first part failed");
        XC_EXPECT(run("--set train.max_iters=40 --set train.matmul=bf16 --resume auto", g) == 0, "bf16 resumed part failed");
        snprintf(p1, sizeof p1, "%s/last.safetensors", f);
        snprintf(p2, sizeof p2, "%s/last.safetensors", g);
        XC_EXPECT(xc_same_file(p1, p2), "bf16: stopped at 21 and resumed: weights differ from the uninterrupted run");
        // mean training loss of the last 8 iterations (the same batches): float32 run (a) and bf16 run (f)
        double loss[2] = {0, 0};
        const char *dirs[2] = {a, f};
        for (int i = 0; i < 2; i++) {
            char path[1300], line[4096];
            double hist[64];
            int n = 0;
            snprintf(path, sizeof path, "%s/metrics.jsonl", dirs[i]);
            FILE *mf = fopen(path, "r");
            while (mf && fgets(line, sizeof line, mf)) {
                const char *l = strstr(line, "\"loss\":");
                if (l && strstr(line, "\"train\"") && n < 64) hist[n++] = atof(l + 7);
            }
            if (mf) fclose(mf);
            for (int k = n - 8; k < n && n >= 8; k++) loss[i] += hist[k] / 8;
        }
        XC_EXPECT(loss[0] > 0 && fabs(loss[1] - loss[0]) <= 0.05 * loss[0],
                  "mean loss of the last 8 iterations: bf16 %.5f vs float32 %.5f (more than 5%% apart)", loss[1], loss[0]);
        printf("  bf16 on %s: mean loss of the last 8 iterations %.5f (float32 %.5f); resumed run bitwise equal\n",
               xc_bf16_kernel_name(xc_bf16_best_kernel()), loss[1], loss[0]);
    }
    return xc_test_summary("test_train_resume");
}
