// plot.h - line charts written directly as SVG (no library): panels stacked top to bottom, each with a frame,
// axes with "nice" ticks and their labels, a title, one polyline per series and a legend. Any browser shows
// the file; `rsvg-convert -o out.png in.svg` (librsvg2-bin) turns it into a PNG where one is needed.
//
//   double epoch[] = {1, 2, 3, 4}, loss[] = {2.08, 1.91, NAN, 1.62};   // a NaN breaks the line
//   PlotSeries s = {.label = "runs/demo", .x = epoch, .y = loss, .n = 4};
//   PlotPanel p = {.title = "training loss", .xlabel = "epoch", .series = &s, .n_series = 1};
//   if (plot_svg_save("loss.svg", "runs/demo", &p, 1, &err) != XC_OK) ...;   // written whole or not at all
//
// Layout: every panel is PLOT_WIDTH x PLOT_PANEL_HEIGHT pixels; the panels share one x axis (the range of all
// their points). The SVG is meant to be read by people and by
// tests: a series segment is `<polyline class="sI" points="x,y ...">`, a tick is `<g class="xtick|ytick">`
// holding its `<line>` (x1 / y1 = the tick's position) and its `<text>` label.
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include "autograd/util.h"

#define PLOT_WIDTH 640
#define PLOT_PANEL_HEIGHT 190

typedef struct PlotSeries {
    const char *label;          // legend entry (NULL: none)
    const double *x, *y;        // (n) points in order of x; a non-finite y (or x) breaks the line there
    int n;
    bool join;                  // join the finite points across non-finite ones (a metric taken every few epochs)
} PlotSeries;

typedef struct PlotPanel {
    const char *title;          // above the frame
    const char *xlabel;         // under the x axis (NULL: none)
    const PlotSeries *series;
    int n_series;
} PlotPanel;

// A linear axis over [lo, hi] cut at round numbers: lo and hi are multiples of step.
typedef struct PlotAxis {
    double lo, hi, step;
    int n_ticks;                // ticks at lo, lo + step, ..., hi
} PlotAxis;

// The axis for data in [min, max] (about 4-8 ticks; a single value or no finite value gets a range around it).
PlotAxis plot_axis(double min, double max);

// The whole SVG document: the title on top, then the panels.
void plot_svg_write(FILE *f, const char *title, const PlotPanel *panels, int n_panels);
// plot_svg_write into path through path.tmp and a rename, so a reader never sees half a picture.
int plot_svg_save(const char *path, const char *title, const PlotPanel *panels, int n_panels, XcError *err);
