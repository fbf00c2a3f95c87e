// snapshot_dir.c - a directory of snapshots: listing snap-*.h5, the newest one that verifies (--resume auto),
// retention (the last N and the best), setting aside a branch abandoned by a resume, and the removal of temporaries
// whose writer died.
#include "checkpoints/snapshot_internal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// "snap-<digits>.h5" -> iteration, else -1.
static int64_t parse_snap_name(const char *name) {
    if (strncmp(name, "snap-", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t v = 0;
    int nd = 0;
    for (; *p >= '0' && *p <= '9'; p++, nd++) {
        if (nd >= 18) return -1;
        v = v * 10 + (*p - '0');
    }
    if (nd == 0 || strcmp(p, ".h5") != 0) return -1;
    return v;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int snapshot_list(const char *dir, int64_t **iters, XcError *err) {
    *iters = NULL;
    DIR *dp = opendir(dir);
    if (!dp) return xc_err(err, "%s: cannot read the snapshot directory: %s", dir, strerror(errno));
    int64_t *v = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        int64_t it = parse_snap_name(de->d_name);
        if (it < 0) continue;
        if (n == cap) { cap = cap ? 2 * cap : 16; v = xc_realloc(v, (size_t)cap * sizeof *v); }
        v[n++] = it;
    }
    closedir(dp);
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_desc);
    *iters = v;
    return n;
}

int snapshot_find_latest(const char *dir, char *path, size_t cap, SnapshotInfo *info, FILE *log, XcError *err) {
    int64_t *it;
    int n = snapshot_list(dir, &it, err);
    if (n < 0) return XC_ERR;
    char summary[sizeof err->msg] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        char p[4200];
        snapshot_path(dir, it[i], p, sizeof p);
        XcError e = {{0}};
        if (snapshot_verify(p, info, &e) == XC_OK) {
            snprintf(path, cap, "%s", p);
            xc_free(it);
            return 1;
        }
        if (log) fprintf(log, "snapshot: skipping %s\n  %s\n", p, e.msg);
        if (used < sizeof summary) used += (size_t)snprintf(summary + used, sizeof summary - used, "\n  %s", e.msg);
    }
    xc_free(it);
    if (n == 0) { if (path && cap) path[0] = 0; return 0; }
    return xc_err(err, "%s: none of the %d snapshots is usable:%s", dir, n, summary);
}

int snapshot_resume_latest(const char *dir, SnapshotState *st, char *path, size_t cap, FILE *log, XcError *err) {
    int rc = snapshot_find_latest(dir, path, cap, NULL, log, err);
    if (rc != 1) return rc;
    if (snapshot_load(path, st, err) != XC_OK) return XC_ERR;
    if (log) fprintf(log, "snapshot: resumed from %s (iteration %lld, epoch %lld)\n", path, (long long)st->global_iter, (long long)st->epoch);
    return 1;
}

int snapshot_retain(const char *dir, int keep_last, int64_t keep_iter, FILE *log, XcError *err) {
    int64_t *it;
    int n = snapshot_list(dir, &it, err);
    if (n < 0) return XC_ERR;
    int deleted = 0, rc = XC_OK;
    for (int i = 0; i < n; i++) {
        if (i < keep_last || it[i] == keep_iter) continue;
        char p[4200];
        snapshot_path(dir, it[i], p, sizeof p);
        if (unlink(p) != 0 && errno != ENOENT) { rc = xc_err(err, "%s: cannot delete: %s", p, strerror(errno)); break; }
        if (log) fprintf(log, "snapshot: deleted %s (keeping the last %d%s)\n", p, keep_last, keep_iter >= 0 ? " and the best" : "");
        deleted++;
    }
    xc_free(it);
    if (rc == XC_OK && deleted) rc = snap_fsync_dir(dir, err);
    return rc == XC_OK ? deleted : XC_ERR;
}

int snapshot_remove_stale_temps(const char *dir, FILE *log, XcError *err) {
    DIR *dp = opendir(dir);
    if (!dp) return xc_err(err, "%s: cannot read the snapshot directory: %s", dir, strerror(errno));
    size_t plen = strlen(SNAPSHOT_TMP_PREFIX);
    int removed = 0, rc = XC_OK;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (strncmp(de->d_name, SNAPSHOT_TMP_PREFIX, plen) != 0) continue;
        char *end;
        long pid = strtol(de->d_name + plen, &end, 10);
        bool dead = end == de->d_name + plen || *end != '-' || pid <= 0 || pid == (long)getpid() ||
                    (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (!dead) {
            if (log) fprintf(log, "snapshot: leaving %s alone: its writer (pid %ld) is still running\n", p, pid);
            continue;
        }
        if (unlink(p) != 0 && errno != ENOENT) { rc = xc_err(err, "%s: cannot remove: %s", p, strerror(errno)); break; }
        if (log) fprintf(log, "snapshot: removed the stale temporary %s\n", p);
        removed++;
    }
    closedir(dp);
    return rc == XC_OK ? removed : XC_ERR;
}

int snapshot_set_aside(const char *dir, int64_t from_iter, const char *keep, char *where, size_t cap, XcError *err) {
    if (where && cap) where[0] = 0;
    int64_t *it;
    const int n = snapshot_list(dir, &it, err);
    if (n < 0) return XC_ERR;
    struct stat kst;
    const bool have_keep = keep && stat(keep, &kst) == 0;
    char sub[4200] = "", p[4200], q[4400];
    int moved = 0, rc = XC_OK;
    for (int i = 0; i < n && it[i] >= from_iter; i++) {
        struct stat st;
        snapshot_path(dir, it[i], p, sizeof p);
        if (have_keep && stat(p, &st) == 0 && st.st_dev == kst.st_dev && st.st_ino == kst.st_ino) continue;
        if (!*sub) { // the first free superseded/<k> (created on the first file moved)
            snprintf(q, sizeof q, "%s/superseded", dir);
            if (mkdir(q, 0777) != 0 && errno != EEXIST) { rc = xc_err(err, "%s: cannot create: %s", q, strerror(errno)); break; }
            for (int k = 1; !*sub; k++) {
                snprintf(sub, sizeof sub, "%s/superseded/%d", dir, k);
                if (mkdir(sub, 0777) == 0) break;
                if (errno != EEXIST || k == 100000) { rc = xc_err(err, "%s: cannot create: %s", sub, strerror(errno)); break; }
                sub[0] = 0;
            }
            if (rc != XC_OK) break;
        }
        snprintf(q, sizeof q, "%s/%s", sub, strrchr(p, '/') + 1);
        if (rename(p, q) != 0) { rc = xc_err(err, "cannot move %s to %s: %s", p, q, strerror(errno)); break; }
        moved++;
    }
    xc_free(it);
    if (rc == XC_OK && moved) rc = snap_fsync_dir(dir, err);
    if (where && cap && moved) snprintf(where, cap, "%s", sub);
    return rc == XC_OK ? moved : XC_ERR;
}
