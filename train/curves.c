// curves.c - see curves.h.
#include "train/curves.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "train/config.h"
#include "train/plot.h"

const char *curve_title(CurveMetric m) {
    return m == CURVE_LOSS ? "training loss (mean per epoch)"
         : m == CURVE_LR   ? "learning rate (end of epoch)"
                           : "validation top-1 (%)";
}

const double *curve_values(const RunCurves *rc, CurveMetric m) {
    return m == CURVE_LOSS ? rc->loss : m == CURVE_LR ? rc->lr : rc->top1;
}

// The number after "key": in one of our own flat JSON records (see runlog_metrics); false if absent.
static bool record_number(const char *line, const char *key, double *v) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return false;
    char *end;
    *v = strtod(p + strlen(pat), &end);
    return end != p + strlen(pat);
}

// The per-epoch sums while reading.
typedef struct Acc {
    RunCurves *rc;
    int cap;
    double *loss_sum, *loss_iters, *last_iter; // (cap) per epoch
} Acc;

// Room for epoch e (1-based); new epochs start empty (NaN).
static void acc_reserve(Acc *a, int e) {
    if (e > a->cap) {
        int cap = a->cap ? a->cap : 16;
        while (cap < e) cap *= 2;
        double **cols[] = {&a->rc->epoch, &a->rc->loss, &a->rc->lr, &a->rc->top1, &a->loss_sum, &a->loss_iters, &a->last_iter};
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
            *cols[c] = xc_realloc(*cols[c], sizeof(double) * (size_t)cap);
            for (int i = a->cap; i < cap; i++) (*cols[c])[i] = c < 4 ? NAN : 0;
        }
        a->cap = cap;
    }
    for (int i = a->rc->n; i < e; i++) a->rc->epoch[i] = i + 1;
    if (e > a->rc->n) a->rc->n = e;
}

// A "train" record: its window's mean loss (loss_avg over the iterations since the previous record of the
// epoch) weighted by the iterations it covers; an iteration count going back (a run resumed from an earlier
// snapshot) starts the epoch's mean again.
static void acc_train(Acc *a, int e, const char *line) {
    double iter, loss, lr;
    if (!record_number(line, "iter", &iter)) return;
    if (!record_number(line, "loss_avg", &loss) && !record_number(line, "loss", &loss)) return;
    const int i = e - 1;
    if (iter <= a->last_iter[i]) a->loss_sum[i] = a->loss_iters[i] = a->last_iter[i] = 0;
    a->loss_sum[i] += loss * (iter - a->last_iter[i]);
    a->loss_iters[i] += iter - a->last_iter[i];
    a->last_iter[i] = iter;
    a->rc->loss[i] = a->loss_sum[i] / a->loss_iters[i];
    if (record_number(line, "lr", &lr)) a->rc->lr[i] = lr;
}

int curves_read(const char *dir, RunCurves *rc, XcError *err) {
    memset(rc, 0, sizeof *rc);
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f) return xc_err(err, "%s has no readable metrics.jsonl (%s): not a run folder of xclip-train or xclip-pretrain?",
                          dir, strerror(errno));
    Acc a = {.rc = rc};
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        double epoch, top1;
        if (!record_number(line, "epoch", &epoch) || !(epoch >= 1 && epoch <= 1e6)) continue;
        const int e = (int)epoch;
        if (strstr(line, "\"type\": \"train\"")) {
            acc_reserve(&a, e);
            acc_train(&a, e, line);
        } else if (strstr(line, "\"type\": \"eval\"") &&
                   (record_number(line, "top1", &top1) || record_number(line, "val_top1", &top1))) {
            acc_reserve(&a, e);
            rc->top1[e - 1] = top1;
        }
    }
    free(line);
    fclose(f);
    xc_free(a.loss_sum);
    xc_free(a.loss_iters);
    xc_free(a.last_iter);
    return XC_OK;
}

void curves_free(RunCurves *rc) {
    xc_free(rc->epoch);
    xc_free(rc->loss);
    xc_free(rc->lr);
    xc_free(rc->top1);
    memset(rc, 0, sizeof *rc);
}

int curves_write_svg(const char *dir, XcError *err) {
    RunCurves rc;
    if (curves_read(dir, &rc, err) != XC_OK) return XC_ERR;
    PlotSeries s[3];
    PlotPanel p[3];
    for (int m = 0; m < 3; m++) {
        s[m] = (PlotSeries){.x = rc.epoch, .y = curve_values(&rc, (CurveMetric)m), .n = rc.n, .join = m == CURVE_TOP1};
        p[m] = (PlotPanel){.title = curve_title((CurveMetric)m), .xlabel = "epoch", .series = &s[m], .n_series = 1};
    }
    char path[CONFIG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/curves.svg", dir);
    int rc_save = plot_svg_save(path, dir, p, 3, err);
    curves_free(&rc);
    return rc_save;
}
