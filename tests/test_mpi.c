// test_mpi.c - data-parallel training over Open MPI (train/dist.h, issue 13), with mpirun on this machine:
//   - 2 ranks with batch b = 1 process accumulating 2 batches of b, over a whole epoch with mixup, CutMix and
//     drop path on: the same train losses and weights within float summation tolerance;
//   - 2 ranks are bitwise repeatable run to run;
//   - the sharded evaluation (each rank scores its share of the batches, the counts added up) gives exactly what
//     one process (xclip-eval, per-video predictions) gives on the same weights;
//   - SIGTERM to rank 0: every rank stops after a committed snapshot (exit 75); resuming it on 2 ranks and on 1
//     both finish;
//   - kill -9 of rank 1 in mid-run: the job ends, mpirun names the rank, the last committed snapshot resumes.
// Skipped (77) when the build has no MPI or mpirun is missing. Small synthetic data and a tiny model.
#include "test_util.h"
#include "autograd/util.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "checkpoints/snapshot.h"
#include "checkpoints/weights.h"
#include "tests/snap_test_util.h"
#include "train/dist.h"

static const char *g_build;
static char g_sets[8192], g_configs[1024], g_data[1024];

// The mpirun prefix: root is allowed (CI), two ranks on two cores whatever their number, no core binding, the
// sanitizers' settings passed on (main).
static char g_mpirun[512] = "mpirun --allow-run-as-root --oversubscribe --bind-to none -x OMP_WAIT_POLICY ";
#define MPIRUN g_mpirun

static const char *g_env = ""; // "VAR=value" for the next runs (passed to every rank), or ""

// The shell command of a run: ranks 0 = one process without mpirun.
static void command(char *cmd, size_t n, int ranks, const char *args, const char *dir) {
    char pre[800] = "", var[128];
    snprintf(var, sizeof var, "%.*s", (int)strcspn(g_env, "="), g_env);
    if (ranks > 0) snprintf(pre, sizeof pre, "%s %s%s%s -np %d ", g_env, MPIRUN, *var ? "-x " : "", var, ranks);
    snprintf(cmd, n, "%s'%s/xclip-train' '%s/demo.ini' %s --set output.dir='%s' %s > '%s.log' 2>&1", pre, g_build, g_configs,
             g_sets, dir, args, dir);
}

static int run(int ranks, const char *args, const char *dir) {
    char cmd[16384];
    command(cmd, sizeof cmd, ranks, args, dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool log_has(const char *dir, const char *text) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "grep -qF -- '%s' '%s.log'", text, dir);
    return system(cmd) == 0;
}

// A number field of a metrics.jsonl line ("key": value), NAN if absent.
static double field(const char *line, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(line, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

// Up to cap values of key from the records of one type, in order; their count.
static int metrics(const char *dir, const char *type, const char *key, double *out, int cap) {
    char path[1200], line[4096], want[64];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    snprintf(want, sizeof want, "\"type\": \"%s\"", type);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && n < cap && fgets(line, sizeof line, f))
        if (strstr(line, want)) out[n++] = field(line, key);
    if (f) fclose(f);
    return n;
}

// The largest per-tensor max |a - b| / max |b| between two weight files (INFINITY if they do not pair up); the key
// thirds of the attention in_proj biases apart in *key_bias (scaled by the whole bias's max |b|). A key bias does
// not change the attention (softmax ignores a constant per query), so its true gradient is zero and it moves on
// rounding noise alone, through AdamW's normalisation: its difference measures that noise, not the arithmetic.
static double weights_diff(const char *a, const char *b, double *key_bias) {
    WeightSet wa = {0}, wb = {0};
    XcError err;
    double worst = INFINITY;
    *key_bias = INFINITY;
    if (weights_load(&wa, a, &err) == XC_OK && weights_load(&wb, b, &err) == XC_OK && wa.n == wb.n && wa.n > 0) {
        worst = *key_bias = 0;
        for (int i = 0; i < wa.n; i++) {
            const WeightTensor *y = weights_find(&wb, wa.t[i].name);
            if (!y || y->numel != wa.t[i].numel) { worst = INFINITY; break; }
            if (!strstr(y->name, "in_proj_bias")) {
                worst = fmax(worst, xc_scaled_err(wa.t[i].data, y->data, y->numel));
                continue;
            }
            double scale = 0;
            for (int64_t j = 0; j < y->numel; j++) scale = fmax(scale, fabs(y->data[j]));
            const int64_t n = y->numel / 3; // query, key, value
            for (int64_t j = 0; j < y->numel; j++) {
                double *into = j / n == 1 ? key_bias : &worst;
                *into = fmax(*into, fabs((double)wa.t[i].data[j] - y->data[j]) / (scale > 0 ? scale : 1));
            }
        }
    }
    weights_free(&wa);
    weights_free(&wb);
    return worst;
}

// The pid of rank r of a running xclip-train job writing to dir (its environment says its rank), or -1.
static pid_t find_rank(const char *dir, int rank) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = -1;
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    while (d && found < 0 && (e = readdir(d))) {
        char path[300], buf[65536];
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "rb");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        bool ours = false; // the program, then our run's output.dir among its arguments
        for (size_t i = 0; i < n && !ours; i += strlen(buf + i) + 1) ours = strstr(buf + i, dir) != NULL;
        if (!n || !strstr(buf, "xclip-train") || !ours) continue;
        snprintf(path, sizeof path, "/proc/%s/environ", e->d_name);
        f = fopen(path, "rb");
        n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f) fclose(f);
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
            if (!strcmp(buf + i, want)) found = (pid_t)atoi(e->d_name);
    }
    if (d) closedir(d);
    return found;
}

// Starts a run in the background; its pid (of the shell running mpirun).
static pid_t start(int ranks, const char *args, const char *dir) {
    char cmd[16384];
    command(cmd, sizeof cmd, ranks, args, dir);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Waits until dir/metrics.jsonl has at least n train records (false after 300 s or if the job ended).
static bool wait_records(pid_t job, const char *dir, int n) {
    double v[512];
    for (int i = 0; i < 3000; i++) {
        if (metrics(dir, "train", "loss", v, 512) >= n) return true;
        if (waitpid(job, NULL, WNOHANG) == job) return false;
        usleep(100000);
    }
    return false;
}

// Exit status of the job (-1 if it did not end within 120 s: then it is killed).
static int wait_job(pid_t job, double *seconds) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 1200; i++) {
        int st;
        if (waitpid(job, &st, WNOHANG) == job) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            *seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(100000);
    }
    kill(job, SIGKILL);
    waitpid(job, NULL, 0);
    return -1;
}

// A 2-rank run into dir (emptied first) with args, given signal sig at rank `rank` once metrics.jsonl has `records`
// train records; the job's exit status (wait_job) and its seconds from the signal to its end.
static int signal_rank_midrun(const char *dir, const char *args, int records, int rank, int sig, double *secs) {
    char rm[1200];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    XC_EXPECT(system(rm) == 0, "rm failed");
    pid_t job = start(2, args, dir);
    XC_EXPECT(wait_records(job, dir, records), "the 2-rank run did not get going (see %s.log)", dir);
    pid_t pid = find_rank(dir, rank);
    XC_EXPECT(pid > 0, "rank %d of the run in %s not found", rank, dir);
    if (pid > 0) kill(pid, sig);
    return wait_job(job, secs);
}

static void copy_dir(const char *from, const char *to) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    XC_EXPECT(system(cmd) == 0, "cp -r %s %s failed", from, to);
}

// 2 ranks = accumulation 2 in one process; 2 ranks twice = bitwise the same.
static void check_equivalence(void) {
    char one[1100], two[1100], again[1100], a[1200], b[1200];
    snprintf(one, sizeof one, "%s.accum2", g_data);
    snprintf(two, sizeof two, "%s.ranks2", g_data);
    snprintf(again, sizeof again, "%s.ranks2b", g_data);
    XC_EXPECT(run(0, "--set train.accumulation_steps=2", one) == 0, "1 process, accumulation 2 failed (see %s.log)", one);
    XC_EXPECT(run(2, "", two) == 0, "2 ranks failed (see %s.log)", two);
    XC_EXPECT(run(2, "", again) == 0, "2 ranks (again) failed (see %s.log)", again);
    XC_EXPECT(log_has(two, "data-parallel: 2 ranks") && log_has(two, "2 ranks x accumulation 1: 8 videos per step"),
              "the 2-rank log does not describe the ranks (see %s.log)", two);
    // losses: the mean over each print window of 2 batches (print_freq 2): one process's 2 micro-batches, the
    // ranks' one round
    double l1[64], l2[64], l3[64];
    const int n1 = metrics(one, "train", "loss_avg", l1, 64), n2 = metrics(two, "train", "loss_avg", l2, 64);
    const int n3 = metrics(again, "train", "loss_avg", l3, 64);
    XC_EXPECT(n1 == 8 && n2 == 8 && n3 == 8, "train records: %d (1 process), %d and %d (2 ranks), want 8", n1, n2, n3);
    double loss_err = 0;
    bool same = n2 == n3;
    for (int i = 0; i < n1 && i < n2; i++) loss_err = fmax(loss_err, fabs(l1[i] - l2[i]) / fabs(l1[i]));
    for (int i = 0; i < n2 && i < n3; i++) same &= l2[i] == l3[i];
    snprintf(a, sizeof a, "%s/last.safetensors", one);
    snprintf(b, sizeof b, "%s/last.safetensors", two);
    double key_err = 0;
    const double w_err = weights_diff(b, a, &key_err);
    // Measured: losses 5.9e-8 relative; weights 2.5e-6 of each tensor's largest after the epoch's 8 steps (AdamW
    // with train.eps = 1e-5, see main). The weights' figure is rounding amplified by AdamW where a gradient is near
    // eps, and moves with the kernels' rounding: 6.2e-7 before the softmax and LayerNorm sums went into lanes. The
    // key biases (weights_diff: noise alone) 1.7e-5 (2.7e-6 before). Tolerances 4-6x; a gradient left out of the
    // reduction or scaled wrongly moves the weights by 1e-2 and more.
    XC_EXPECT(loss_err <= 3e-7, "2 ranks vs accumulation 2: train losses differ by %.3g relative (tolerance 3e-7)", loss_err);
    XC_EXPECT(w_err <= 1e-5, "2 ranks vs accumulation 2: weights differ by %.3g of each tensor's largest (tolerance 1e-5)",
              w_err);
    XC_EXPECT(key_err <= 3e-4, "2 ranks vs accumulation 2: key biases differ by %.3g (tolerance 3e-4)", key_err);
    snprintf(a, sizeof a, "%s/last.safetensors", again);
    XC_EXPECT(same && xc_same_file(a, b), "2 ranks are not bitwise repeatable (losses %s, weights %s)",
              same ? "equal" : "differ", xc_same_file(a, b) ? "equal" : "differ");
    printf("  2 ranks vs 1 process accumulating 2 (one epoch, mixup + CutMix + drop path): losses %.2g, weights %.2g "
           "(key biases %.2g); 2 ranks twice: bitwise %s\n", loss_err, w_err, key_err,
           same && xc_same_file(a, b) ? "equal" : "DIFFERENT");
}

// The 2-rank run's last evaluation (its final weights, no final pass) against xclip-eval in one process.
static void check_sharded_eval(void) {
    char two[1100], cmd[16384], pred[1200];
    snprintf(two, sizeof two, "%s.ranks2", g_data);
    double top1[8], top5[8], mc[8], videos[8];
    const int n = metrics(two, "eval", "top1", top1, 8);
    metrics(two, "eval", "top5", top5, 8);
    metrics(two, "eval", "mean_class", mc, 8);
    metrics(two, "eval", "videos", videos, 8);
    XC_EXPECT(n >= 1, "no eval record in %s/metrics.jsonl", two);
    if (n < 1) return;
    snprintf(pred, sizeof pred, "%s.pred", two);
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/demo.ini' %s --checkpoint '%s/last.safetensors' --views 1x1 "
             "--predictions '%s' > '%s.log' 2>&1", g_build, g_configs, g_sets, two, pred, pred);
    XC_EXPECT(system(cmd) == 0, "xclip-eval failed (see %s.log)", pred);
    // per video: path,label,label_name,pred,pred_name,prob,correct,top5
    char path[1300], line[4096];
    snprintf(path, sizeof path, "%s.csv", pred);
    FILE *f = fopen(path, "r");
    int64_t total = 0, hit1 = 0, hit5 = 0;
    int64_t per_hit[64] = {0}, per_n[64] = {0};
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "path,", 5)) continue;
        char *col[8];
        int k = 0;
        for (char *p = line; k < 8; k++) { // no commas in these names
            col[k] = p;
            p = strchr(p, ',');
            if (!p) { k++; break; }
            *p++ = 0;
        }
        if (k < 8) continue;
        const int y = atoi(col[1]), c = atoi(col[6]);
        int c5 = 0; // is the label among the five classes listed?
        for (char *q = col[7], *end; *q && *q != '\n'; q = end) {
            c5 |= strtol(q, &end, 10) == y;
            if (end == q) break;
        }
        total++, hit1 += c, hit5 += c5;
        if (y >= 0 && y < 64) per_hit[y] += c, per_n[y]++;
    }
    if (f) fclose(f);
    double mean = 0;
    int present = 0;
    for (int k = 0; k < 64; k++)
        if (per_n[k]) mean += (double)per_hit[k] / (double)per_n[k], present++;
    mean = present ? 100.0 * mean / present : 0;
    const double t1 = 100.0 * (double)hit1 / (double)total, t5 = 100.0 * (double)hit5 / (double)total;
    // metrics print 9 significant digits: equal counts agree to that
    const bool exact = videos[n - 1] == (double)total && fabs(top1[n - 1] - t1) < 1e-6 && fabs(top5[n - 1] - t5) < 1e-6 &&
                       fabs(mc[n - 1] - mean) < 1e-6;
    XC_EXPECT(exact, "sharded evaluation: %g videos, top-1 %.6f, top-5 %.6f, mean class %.6f; one process: %lld videos, "
              "%.6f, %.6f, %.6f", videos[n - 1], top1[n - 1], top5[n - 1], mc[n - 1], (long long)total, t1, t5, mean);
    printf("  sharded evaluation over 2 ranks = one process: %lld videos, top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%%\n",
           (long long)total, t1, t5, mean);
}

// SIGTERM to rank 0 mid-run: both ranks stop after a snapshot; it resumes on 2 ranks and on 1.
static void check_stop_and_resume(void) {
    char d[1100], d1[1200];
    snprintf(d, sizeof d, "%s.stop", g_data);
    snprintf(d1, sizeof d1, "%s.stop1", g_data);
    double secs = 0;
    const int code = signal_rank_midrun(d, "--set train.epochs=3", 3, 0, SIGTERM, &secs);
    XC_EXPECT(code == 75, "SIGTERM to rank 0: job exit %d, want 75 (see %s.log)", code, d);
    XC_EXPECT(log_has(d, "after the snapshot; continue with"), "no stop after a snapshot in %s.log", d);
    int64_t *iters = NULL;
    XcError err;
    const int nsnap = snapshot_list(d, &iters, &err);
    XC_EXPECT(nsnap >= 1, "no snapshot committed in %s", d);
    const long long at = nsnap >= 1 ? (long long)iters[0] : -1;
    xc_free(iters);
    copy_dir(d, d1);
    XC_EXPECT(run(2, "--set train.epochs=3 --resume auto", d) == 0, "resume on 2 ranks failed (see %s.log)", d);
    XC_EXPECT(run(0, "--set train.epochs=3 --set train.accumulation_steps=2 --resume auto", d1) == 0,
              "resume of the 2-rank snapshot in one process failed (see %s.log)", d1);
    XC_EXPECT(log_has(d, "resumed from") && log_has(d1, "resumed from"), "a resume did not start from the snapshot");
    printf("  SIGTERM to rank 0: exit 75 in %.1f s, snapshot at iteration %lld; resumed on 2 ranks and on 1: both finished\n",
           secs, at);
}

// output.snapshot_min_seconds on 2 ranks: whether an epoch-end snapshot is skipped is agreed over the ranks (the
// snapshot is a collective), so a 2-epoch run not evaluated after epoch 1 finishes with one snapshot, at its end.
static void check_snapshot_min_seconds(void) {
    char d[1100], cmd[1300];
    snprintf(d, sizeof d, "%s.minsec", g_data);
    const int code = run(2, "--set train.epochs=2 --set train.eval_freq=0 --set output.snapshot_min_seconds=3600", d);
    int64_t *iters = NULL;
    XcError err;
    const int n = code == 0 ? snapshot_list(d, &iters, &err) : 0;
    snprintf(cmd, sizeof cmd, "grep -q 'no snapshot at the end of epoch 1' '%s/log.txt'", d);
    XC_EXPECT(code == 0 && n == 1 && iters[0] == 32 && system(cmd) == 0, "snapshot_min_seconds on 2 ranks: exit %d, %d "
              "snapshot(s) (want 1, at iteration 32), epoch 1's skip %s log.txt (see %s.log)", code, n,
              system(cmd) == 0 ? "in" : "not in", d);
    if (n == 1 && iters[0] == 32) printf("  output.snapshot_min_seconds on 2 ranks: epoch 1's snapshot skipped by both, one at the end\n");
    xc_free(iters);
}

// kill -9 of rank 1: the job ends naming the rank; the last committed snapshot resumes.
static void check_rank_killed(void) {
    char d[1100];
    snprintf(d, sizeof d, "%s.kill", g_data);
    double secs = 0;
    const int code = signal_rank_midrun(d, "--set train.epochs=3 --set output.snapshot_freq=8", 6, 1, SIGKILL, &secs);
    XC_EXPECT(code != 0 && code != -1, "kill -9 of rank 1: job exit %d (see %s.log)", code, d);
    XC_EXPECT(log_has(d, "rank 1"), "mpirun's message does not name rank 1 (see %s.log)", d);
    XC_EXPECT(st_count(d, "snap-") >= 1, "no committed snapshot in %s", d);
    XC_EXPECT(run(2, "--set train.epochs=3 --set output.snapshot_freq=8 --resume auto", d) == 0,
              "the last committed snapshot does not resume (see %s.log)", d);
    printf("  kill -9 of rank 1: the job ended in %.1f s (exit %d) naming rank 1; the last snapshot resumed and finished\n",
           secs, code);
}

// A rank whose parameters went astray (XCLIP_TEST_NAN_AT=ITER:diverge nudges one on the last rank) is caught
// by the next cross-rank check, which names it.
static void check_divergence(void) {
    char d[1100];
    snprintf(d, sizeof d, "%s.diverge", g_data);
    g_env = "XCLIP_TEST_NAN_AT=4:diverge";
    const int code = run(2, "--set train.check_ranks=1", d);
    g_env = "";
    XC_EXPECT(code == 1, "a diverged rank: exit %d, want 1 (see %s.log)", code, d);
    XC_EXPECT(log_has(d, "the trained parameters after an optimiser step differ across the 2 ranks: rank 1 holds other "
                         "values than rank 0"), "the divergence is not reported naming rank 1 (see %s.log)", d);
    printf("  a rank nudged off after iteration 4: stopped at the next check (exit %d), naming rank 1\n", code);
}

// The evaluation of xclip-pretrain on 2 ranks (each scores half of the validation chunks and encodes half of the
// probe images' chunks) against one process evaluating the same weights: the 2-rank run's final evaluation, and
// the final evaluation a single process does when it resumes that run's last snapshot (training already done).
// The numbers must be equal as recorded (9 digits): one process computes the same chunks, summed in the same order.
static void check_pretrain_eval(const char *cfg, const char *two) {
    char again[1300], cmd[16384];
    snprintf(again, sizeof again, "%s.again", two);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && '%s/xclip-pretrain' '%s' --resume auto --set output.dir='%s' "
             "> '%s.log' 2>&1", again, two, again, g_build, cfg, again, again);
    XC_EXPECT(system(cmd) == 0, "xclip-pretrain resuming the 2-rank run in one process failed (see %s.log)", again);
    static const char *keys[] = {"val_top1", "val_loss", "zs_colour", "zs_shape", "zs_size", "zs_position",
                                 "zs_combo_seen", "zs_combo_unseen"};
    int differ = 0;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        double r2[4], r1[4]; // again/metrics.jsonl: the copied record of the 2-rank run, then its own
        const int n2 = metrics(two, "final_eval", keys[i], r2, 4), n1 = metrics(again, "final_eval", keys[i], r1, 4);
        const bool same = n2 == 1 && n1 == 2 && isfinite(r2[0]) && r1[1] == r2[0];
        if (!same) printf("  %s: 2 ranks %g, 1 process %g (%d / %d records)\n", keys[i], n2 ? r2[0] : NAN, n1 > 1 ? r1[1] : NAN, n2, n1);
        differ += !same;
    }
    XC_EXPECT(differ == 0, "xclip-pretrain's evaluation on 2 ranks differs from one process's in %d of 8 numbers", differ);
    double probe[4] = {0};
    metrics(two, "final_eval", "zs_colour", probe, 4);
    if (differ == 0)
        printf("  xclip-pretrain's evaluation shared by 2 ranks = one process's (validation loss, top-1, 6 zero-shot "
               "accuracies; colour %.4g%%)\n", probe[0]);
}

// xclip-pretrain through the same run loop: 2 ranks = 1 process accumulating 2 (one epoch of a tiny world).
static void check_pretrain(const char *vocab) {
    char world[1100], cfg[1200], one[1200], two[1200], cmd[16384], a[1300], b[1300];
    snprintf(world, sizeof world, "%s.world", g_data);
    snprintf(cmd, sizeof cmd, "'%s/xclip-synth' world '%s' --images 512 --val-images 64 --probe-per-combo 5 --no-videos "
             "--quiet > /dev/null", g_build, world);
    XC_EXPECT(system(cmd) == 0, "xclip-synth world failed");
    snprintf(cfg, sizeof cfg, "%s/pretrain.ini", world);
    FILE *f = fopen(cfg, "w");
    XC_EXPECT(f != NULL, "cannot write %s", cfg);
    if (!f) return;
    fprintf(f, "[data]\nroot = images/train.tar\ntrain_list = images/train_captions.tsv\nval_root = images/val.tar\n"
               "val_list = images/val_captions.tsv\nprobe_dir = images\ninput_size = 32\nvocab = %s\n"
               "[model]\npretrained = none\narch = custom\nvision_width = 64\nvision_layers = 1\npatch = 8\nembed_dim = 64\n"
               "text_width = 64\ntext_layers = 1\ncontext = 32\n"
               "[train]\nepochs = 1\nwarmup_epochs = 0.25\nlr = 2e-3\nweight_decay = 0.1\neps = 1e-5\nbatch_size = 32\n"
               "seed = 7\nthreads = 1\n[output]\nprint_freq = 2\nprogress = off\n", vocab);
    fclose(f);
    snprintf(one, sizeof one, "%s.pre1", g_data);
    snprintf(two, sizeof two, "%s.pre2", g_data);
    snprintf(cmd, sizeof cmd, "'%s/xclip-pretrain' '%s' --set train.accumulation_steps=2 --set output.dir='%s' > '%s.log' 2>&1",
             g_build, cfg, one, one);
    XC_EXPECT(system(cmd) == 0, "xclip-pretrain, accumulation 2, failed (see %s.log)", one);
    snprintf(cmd, sizeof cmd, "%s-np 2 '%s/xclip-pretrain' '%s' --set output.dir='%s' > '%s.log' 2>&1", MPIRUN, g_build, cfg,
             two, two);
    XC_EXPECT(system(cmd) == 0, "xclip-pretrain on 2 ranks failed (see %s.log)", two);
    double l1[16], l2[16];
    const int n1 = metrics(one, "train", "loss_avg", l1, 16), n2 = metrics(two, "train", "loss_avg", l2, 16);
    double loss_err = n1 == n2 && n1 == 8 ? 0 : INFINITY, key_err = 0;
    for (int i = 0; i < n1 && i < n2; i++) loss_err = fmax(loss_err, fabs(l1[i] - l2[i]) / fabs(l1[i]));
    snprintf(a, sizeof a, "%s/last.safetensors", one);
    snprintf(b, sizeof b, "%s/last.safetensors", two);
    const double w_err = weights_diff(b, a, &key_err);
    // measured: losses 6.8e-8, weights 2.6e-6 of each tensor's largest (8 steps), key biases 5.7e-5; tolerances
    // 4-6x, as check_equivalence's
    XC_EXPECT(loss_err <= 3e-7 && w_err <= 1.5e-5 && key_err <= 3e-4, "xclip-pretrain, 2 ranks vs accumulation 2: %d / %d "
              "train records, losses %.3g, weights %.3g, key biases %.3g", n1, n2, loss_err, w_err, key_err);
    printf("  xclip-pretrain, 2 ranks vs 1 process accumulating 2 (one epoch): losses %.2g, weights %.2g (key biases "
           "%.2g)\n", loss_err, w_err, key_err);
    check_pretrain_eval(cfg, two);
}

int main(void) {
    if (!dist_built_with_mpi()) {
        printf("SKIP test_mpi: this build has no MPI (install Open MPI: scripts/install-deps.sh, then cmake again)\n");
        return 77;
    }
    if (system("command -v mpirun > /dev/null 2>&1") != 0) {
        printf("SKIP test_mpi: mpirun is not installed (package openmpi-bin)\n");
        return 77;
    }
    // Under the sanitizers (scripts/test.sh --asan): ASan and UBSan stay on in every rank, LeakSanitizer off: Open
    // MPI's plugins are unloaded before it reports, leaving allocations it can neither attribute nor suppress.
    const char *asan = getenv("ASAN_OPTIONS");
    if (asan) {
        char opts[1024];
        snprintf(opts, sizeof opts, "%s:detect_leaks=0", asan); // the last setting wins
        setenv("ASAN_OPTIONS", opts, 1);
        strcat(g_mpirun, "-x ASAN_OPTIONS ");
        printf("  (LeakSanitizer off for these runs: Open MPI's unloaded plugins)\n");
    }
    if (getenv("UBSAN_OPTIONS")) strcat(g_mpirun, "-x UBSAN_OPTIONS ");
    g_build = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build";
    xc_test_path("XCLIP_FIXTURES", "tests/fixtures", "../../configs", g_configs, sizeof g_configs);
    // One epoch = 64 videos / 4 = 16 batches. Mixup, CutMix and drop path on; one thread per process (the two
    // ranks share the two cores). AdamW's eps is raised from 1e-8 to 1e-5: gradient entries that are zero up to
    // rounding would otherwise be turned by AdamW's normalisation into +-lr steps whose sign is the rounding's,
    // and the comparison would measure that amplification rather than the data-parallel arithmetic. Test
    // batches of 5 over 24 videos: the ranks get 3 and 2 batches, the last one short.
    XC_EXPECT(xc_synth_sets(g_build, "test_mpi", "--classes 8 --per-class 8 --val-per-class 3 --frames 8 --size 32",
                            "--set data.frames=4 --set data.workers=1 --set model.vision_layers=2 --set model.drop_path=0.2 "
                            "--set train.batch_size=4 --set train.epochs=1 --set train.eps=1e-5 --set train.threads=1 "
                            "--set train.warmup_epochs=0.25 --set aug.mixup=0.8 --set aug.cutmix=1.0 --set test.batch_size=5 "
                            "--set test.final_num_clip=0 --set output.progress=off --set output.print_freq=2 "
                            "--set output.keep_snapshots=10",
                            g_data, sizeof g_data, g_sets, sizeof g_sets),
              "xclip-synth failed");
    char vocab[1200];
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    check_equivalence();
    check_sharded_eval();
    check_divergence();
    check_stop_and_resume();
    check_rank_killed();
    check_snapshot_min_seconds();
    check_pretrain(vocab);
    return xc_test_summary("test_mpi");
}
