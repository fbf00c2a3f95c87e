// report.c - see report.h.
#include "train/report.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include "train/config.h"

// After a write to log.txt (which 0) or metrics.jsonl (1): a failure (a full disk, a file size limit) is said once
// on stderr; training goes on (snapshots and weights check their own writes and stop the run when they fail).
static void runlog_check(RunLog *l, int which, FILE *f) {
    if (fflush(f) == 0 && !ferror(f)) return;
    const int e = errno;
    if (!l->failed[which])
        fprintf(stderr, "warning: cannot write %s/%s (%s): it is incomplete from here on\n", l->dir,
                which ? "metrics.jsonl" : "log.txt", e ? strerror(e) : "write error");
    l->failed[which] = true;
    clearerr(f);
}

int runlog_open(RunLog *l, const char *dir, bool append, bool bar, XcError *err) {
    memset(l, 0, sizeof *l);
    l->bar = bar;
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/log.txt", dir);
    l->log = xc_fopen(path, append ? "a" : "w", err);
    if (!l->log) return XC_ERR;
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    l->metrics = xc_fopen(path, append ? "a" : "w", err);
    if (!l->metrics) {
        runlog_close(l);
        return XC_ERR;
    }
    return XC_OK;
}

void runlog_close(RunLog *l) {
    if (l->log) fclose(l->log);
    if (l->metrics) fclose(l->metrics);
    l->log = l->metrics = NULL;
}

void runlog_say(RunLog *l, const char *fmt, ...) {
    if (l->quiet) return;
    if (l->bar_shown) {
        progress_bar_clear();
        l->bar_shown = false;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (l->log) {
        va_start(ap, fmt);
        vfprintf(l->log, fmt, ap);
        va_end(ap);
        runlog_check(l, 0, l->log);
    }
}

void runlog_note(RunLog *l, const char *fmt, ...) {
    if (!l->log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(l->log, fmt, ap);
    va_end(ap);
    runlog_check(l, 0, l->log);
}

void runlog_bar(RunLog *l, const char *what, int64_t done, int64_t total, const char *extra) {
    if (!l->bar || l->quiet) return;
    progress_bar(what, done, total, extra);
    l->bar_shown = true;
}

void runlog_metrics(RunLog *l, const char *type, const Metric *fields, int n) {
    if (!l->metrics) return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now); // wall-clock time of every record: Unix seconds
    fprintf(l->metrics, "{\"type\": \"%s\", \"time\": %.3f", type, (double)now.tv_sec + now.tv_nsec * 1e-9);
    for (int i = 0; i < n; i++) {
        if (fields[i].integer) fprintf(l->metrics, ", \"%s\": %lld", fields[i].key, (long long)fields[i].i);
        else fprintf(l->metrics, ", \"%s\": %.9g", fields[i].key, fields[i].x);
    }
    fputs("}\n", l->metrics);
    runlog_check(l, 1, l->metrics);
}

void progress_bar(const char *what, int64_t done, int64_t total, const char *extra) {
    const int width = 30;
    int fill = total > 0 ? (int)((double)width * (double)done / (double)total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = 0;
    printf("\r\033[K%s [%s] %lld/%lld %s", what, bar, (long long)done, (long long)total, extra ? extra : "");
    fflush(stdout);
}

void progress_bar_clear(void) {
    printf("\r\033[K");
    fflush(stdout);
}

void fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}
