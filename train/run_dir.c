// run_dir.c - a run's set-up before its task (train/run.h): the threads, the run directory (locked, claimed from an
// earlier run, or --overwrite; log.txt, metrics.jsonl; config.ini once the run has started), signal handlers and the
// matmul precision.
#include "train/run_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>
#include "checkpoints/snapshot.h"
#include "train/dist.h"

// An earlier run's files in the run directory: what shows a run was there, and what --overwrite removes with
// its snapshots (nothing else in the folder is touched).
static const char *const RUN_EVIDENCE[] = {"best.safetensors", "last.safetensors", "metrics.jsonl"};
static const char *const RUN_FILES[] = {"best.safetensors", "last.safetensors", "metrics.jsonl", "log.txt", "curves.svg"};

// A fresh run (no --resume) must not mix with an earlier run's files: its snapshots are what a later
// `--resume auto` would pick. Refused unless --overwrite, which first deletes the earlier run's files.
static int run_claim_dir(Run *r, XcError *err) {
    const char *dir = r->c->dir;
    char path[CONFIG_PATH_MAX + 64], found[512] = "";
    int len = 0;
    int64_t *iters = NULL;
    const int nsnap = snapshot_list(dir, &iters, err);
    if (nsnap < 0) return XC_ERR;
    if (nsnap > 0)
        len = snprintf(found, sizeof found, "%d snapshot%s (newest snap-%012lld.h5)", nsnap, nsnap == 1 ? "" : "s",
                       (long long)iters[0]);
    for (size_t i = 0; i < sizeof RUN_EVIDENCE / sizeof RUN_EVIDENCE[0]; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, RUN_EVIDENCE[i]);
        if (stat(path, &st) == 0 && st.st_size > 0 && len < (int)sizeof found)
            len += snprintf(found + len, sizeof found - (size_t)len, "%s%s", len ? ", " : "", RUN_EVIDENCE[i]);
    }
    int rc = XC_OK;
    if (len && !r->o->overwrite)
        rc = xc_err(err, "output.dir = %s already holds a run (%s)\nHINT: continue it with --resume auto (its settings "
                         "are in %s/config.ini), choose another folder (--set output.dir=...), or start over with "
                         "--overwrite (deletes that run's snapshots, weights, log and metrics)", dir, found, dir);
    for (int i = 0; len && rc == XC_OK && i < nsnap; i++)
        if (remove(snapshot_path(dir, iters[i], path, sizeof path)) != 0)
            rc = xc_err(err, "--overwrite: cannot remove %s: %s", path, strerror(errno));
    for (size_t i = 0; len && rc == XC_OK && i < sizeof RUN_FILES / sizeof RUN_FILES[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, RUN_FILES[i]);
        if (remove(path) != 0 && errno != ENOENT) rc = xc_err(err, "--overwrite: cannot remove %s: %s", path, strerror(errno));
    }
    if (len && rc == XC_OK) printf("--overwrite: removed the earlier run in %s (%s)\n", dir, found);
    xc_free(iters);
    return rc;
}

// One run at a time in a folder: rank 0 holds an exclusive lock on output.dir/.lock (flock, released when the
// process ends, however it ends) from here to the end; a second run into the folder, fresh or resumed, is refused
// naming the process that holds it.
static int run_lock_dir(Run *r, XcError *err) {
    char path[CONFIG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/.lock", r->c->dir);
    const int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return xc_err(err, "output.dir: cannot create %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        char pid[32] = "";
        const ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        close(fd);
        if (e == EWOULDBLOCK)
            return xc_err(err, "output.dir = %s is in use by another run (process %s, holding %s)\nHINT: wait for it to "
                               "end, or choose another folder (--set output.dir=...)", r->c->dir, *pid ? pid : "?", path);
        return xc_err(err, "output.dir: cannot lock %s: %s", path, strerror(e));
    }
    char pid[32];
    const int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || xc_pwrite_all(fd, pid, (size_t)n, 0) != 0) { /* the pid is only for the message */ }
    r->lock_fd = fd + 1;
    return XC_OK;
}

// The temporaries a run writes its files through (then renamed over them), left behind by a run that was killed
// mid-write: with the folder locked no other run can be writing them, so they go.
static void run_remove_stale_temps(Run *r) {
    static const char *const TEMPS[] = {"best.safetensors.tmp", "last.safetensors.tmp", "curves.svg.tmp", "config.ini.tmp"};
    for (size_t i = 0; i < sizeof TEMPS / sizeof TEMPS[0]; i++) {
        char path[CONFIG_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", r->c->dir, TEMPS[i]);
        if (remove(path) == 0) printf("removed %s, left by a run that ended while writing it\n", path);
    }
}

// config.ini: the run's effective config, which `--resume auto` continues it with. Written by rank 0 once the
// run has started or resumed (a refused --resume leaves the folder's config as it was), atomically (a full disk
// leaves the old one, never a truncated one).
int run_write_config(Run *r, XcError *err) {
    if (!r->root) return XC_OK;
    char path[CONFIG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/config.ini", r->c->dir);
    return xc_write_file_atomic(path, r->config, strlen(r->config), err);
}

// Threads, the run directory (its lock, log.txt, metrics.jsonl), signal handlers, the matmul precision.
// With several ranks only rank 0 writes the run directory, its log and metrics; the others are quiet.
int run_open(Run *r, XcError *err) {
    const TrainConfig *c = r->c;
    r->ranks = dist_size();
    r->root = dist_rank() == 0;
    int threads = c->threads;
    if (threads == 0 && r->ranks > 1 && !getenv("OMP_NUM_THREADS")) { // the machine's cores shared by its ranks
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores / dist_local_size() > 1 ? (int)(cores / dist_local_size()) : 1;
    }
    if (threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
        openblas_set_num_threads(threads);
    }
    if (!r->root) { // the quiet ranks: rank 0 creates the folder (spilled towers go there) before they go on
        r->log = (RunLog){.quiet = true};
        dist_barrier();
        signals_install();
        run_read_test_nan(r);
        return config_gemm_init(c, &r->gemm, err);
    }
    if (xc_mkdir_p(c->dir, 0777, err) != XC_OK) return xc_err(err, "output.dir: %s", err->msg);
    if (run_lock_dir(r, err) != XC_OK) return XC_ERR;
    run_remove_stale_temps(r);
    if (!r->o->resume && run_claim_dir(r, err) != XC_OK) return XC_ERR;
    // with several ranks, mpirun forwards the output: a bar would mix with its lines (and count one rank's share)
    const bool bar = config_progress_bar(c) && (r->ranks == 1 || c->progress == PROGRESS_ON);
    if (runlog_open(&r->log, c->dir, r->o->resume != NULL, bar, err) != XC_OK) return XC_ERR;
    size_t len = 0;
    FILE *cf = open_memstream(&r->config, &len);
    if (!cf) return xc_err(err, "cannot keep the effective config in memory: %s", strerror(errno));
    config_write(c, cf);
    fclose(cf);
    if (r->ranks > 1) {
        int each = threads;
#ifdef _OPENMP
        if (each <= 0) each = omp_get_max_threads();
#endif
        runlog_say(&r->log, "data-parallel: %d ranks (%d on this machine), %d thread%s each\n", r->ranks, dist_local_size(),
                   each, each == 1 ? "" : "s");
        dist_barrier();
    }
    signals_install(); // also reads the testing hook XCLIP_TEST_SIGNAL_AT (signals.h)
    run_read_test_nan(r);
    return config_gemm_init(c, &r->gemm, err);
}
