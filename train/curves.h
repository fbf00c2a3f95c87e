// curves.h - a run's history per epoch, read back from its metrics.jsonl (train/report.h writes it), and the
// picture of it: RUN/curves.svg with three stacked panels (mean training loss, learning rate, validation top-1).
// The run loop (train/run_loop.c) rewrites curves.svg after every evaluation and at the end; xclip-plot overlays
// several runs. Reading the file back, rather than keeping a history in memory, makes a resumed run's picture
// hold its earlier epochs too, and costs nothing in the training step.
//
//   RunCurves rc;
//   if (curves_read("runs/demo", &rc, &err) != XC_OK) ...;      // "runs/demo has no metrics.jsonl ..."
//   for (int e = 0; e < rc.n; e++) printf("%g %g %g\n", rc.loss[e], rc.lr[e], rc.top1[e]);   // NaN: none
//   curves_free(&rc);
//   curves_write_svg("runs/demo", &err);                         // -> runs/demo/curves.svg
#pragma once
#include "autograd/util.h"

typedef struct RunCurves {
    int n;                   // epochs 1..n with any record
    double *epoch;           // (n) 1, 2, ..., n: the x axis
    double *loss;            // (n) mean training loss over the epoch's logged iterations (NaN: none)
    double *lr;              // (n) learning rate at the epoch's last logged iteration (NaN: none)
    double *top1;            // (n) validation top-1 (%) after the epoch (NaN: not evaluated); the last record wins
} RunCurves;

// What a metric is called in panels and legends, and its column in RunCurves.
typedef enum { CURVE_LOSS, CURVE_LR, CURVE_TOP1 } CurveMetric;
const char *curve_title(CurveMetric m);
const double *curve_values(const RunCurves *rc, CurveMetric m);

// dir/metrics.jsonl into rc. XC_ERR + err when the file is missing or unreadable (naming the folder).
int curves_read(const char *dir, RunCurves *rc, XcError *err);
void curves_free(RunCurves *rc);
// dir/curves.svg from dir/metrics.jsonl.
int curves_write_svg(const char *dir, XcError *err);
