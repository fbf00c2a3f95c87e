// report.h - what a run tells its user: log lines (stdout and log.txt), metrics records (metrics.jsonl, one
// JSON object per line), the progress bar, durations.
//
//   RunLog log;
//   if (runlog_open(&log, "runs/demo", append, bar, &err) != XC_OK) ...;   // log.txt + metrics.jsonl
//   runlog_say(&log, "epoch %d\n", 3);                                   // stdout and log.txt
//   runlog_metrics(&log, "eval", (Metric[]){METRIC_INT("epoch", 3), METRIC_NUM("top1", 41.5)}, 2);
//   runlog_bar(&log, "train", 12, 40, "loss 2.01");                     // progress bar (stdout, if on)
//   runlog_close(&log);
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "autograd/util.h"

typedef struct RunLog {
    FILE *log, *metrics;  // log.txt, metrics.jsonl in the run directory (NULL: closed)
    bool bar;             // draw progress bars on stdout
    bool bar_shown;       // a bar line is on screen (cleared before the next line)
    bool quiet;           // nothing on stdout (the ranks other than 0 of a data-parallel run; no files either)
    bool failed[2];       // a write to log.txt / metrics.jsonl failed (said once on stderr; the run goes on)
    char dir[1024];       // the run directory, for messages
} RunLog;

// Opens dir/log.txt and dir/metrics.jsonl (appending when append, e.g. a resumed run).
int runlog_open(RunLog *l, const char *dir, bool append, bool bar, XcError *err);
void runlog_close(RunLog *l);
// A line (or several) to stdout and log.txt.
__attribute__((format(printf, 2, 3))) void runlog_say(RunLog *l, const char *fmt, ...);
// A line to log.txt only (routine news the console can do without, e.g. epoch-end snapshots).
__attribute__((format(printf, 2, 3))) void runlog_note(RunLog *l, const char *fmt, ...);
// The progress bar (only when l->bar): "what [=====>   ] done/total extra".
void runlog_bar(RunLog *l, const char *what, int64_t done, int64_t total, const char *extra);

// One field of a metrics record: an integer or a number (printed with 9 significant digits).
typedef struct Metric {
    const char *key;
    bool integer;
    int64_t i;
    double x;
} Metric;
#define METRIC_INT(k, v) ((Metric){.key = (k), .integer = true, .i = (int64_t)(v)})
#define METRIC_NUM(k, v) ((Metric){.key = (k), .x = (double)(v)})
// One JSON line {"type": TYPE, "time": Unix seconds (wall clock), fields...} in metrics.jsonl, flushed.
void runlog_metrics(RunLog *l, const char *type, const Metric *fields, int n);

// A progress bar on stdout for programs without a RunLog (xclip-eval), and its removal.
void progress_bar(const char *what, int64_t done, int64_t total, const char *extra);
void progress_bar_clear(void);
// h:mm:ss or m:ss ("?" for a negative or absurd value).
void fmt_duration(double seconds, char *buf, size_t n);
