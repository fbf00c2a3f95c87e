// plot.c - see plot.h.
#include "train/plot.h"

#include <math.h>
#include <string.h>

// Panel geometry (pixels): the frame inside a panel's PLOT_WIDTH x PLOT_PANEL_HEIGHT box.
enum { TITLE_H = 28, FRAME_LEFT = 70, FRAME_RIGHT = 16, FRAME_TOP = 26, FRAME_BOTTOM = 42 };

// Series colours (a colour-blind safe palette, Okabe and Ito), reused after eight.
static const char *const COLOURS[] = {"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"};

PlotAxis plot_axis(double min, double max) {
    if (!isfinite(min) || !isfinite(max)) min = 0, max = 1;
    if (max < min) { double t = min; min = max; max = t; }
    if (max - min < 1e-12 * (fabs(min) + fabs(max)) || max == min) { // one value: a range around it
        const double d = min == 0 ? 1 : 0.1 * fabs(min);
        min -= d;
        max += d;
    }
    const double raw = (max - min) / 5, p = pow(10, floor(log10(raw))), f = raw / p;
    PlotAxis a = {.step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p};
    a.lo = floor(min / a.step) * a.step;
    a.hi = ceil(max / a.step) * a.step;
    a.n_ticks = (int)lround((a.hi - a.lo) / a.step) + 1;
    return a;
}

// v on axis a into pixels from p0 (at a.lo) to p1 (at a.hi).
static double axis_px(const PlotAxis *a, double v, double p0, double p1) {
    return p0 + (v - a->lo) / (a->hi - a->lo) * (p1 - p0);
}

// A tick's label: %g of the value, exactly 0 where rounding left a trace of it.
static void tick_label(const PlotAxis *a, int i, char *buf, size_t n) {
    double v = a->lo + i * a->step;
    if (fabs(v) < 1e-9 * a->step) v = 0;
    snprintf(buf, n, "%g", v);
}

// s with XML's five special characters escaped.
static void put_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&apos;", f); break;
        default: fputc(*s, f);
        }
    }
}

static bool point_ok(const PlotSeries *s, int i) { return isfinite(s->x[i]) && isfinite(s->y[i]); }

// The data range of a panel's finite points (widening x0..x1, y0..y1 as given); false if it has none.
static bool panel_range(const PlotPanel *p, double *x0, double *x1, double *y0, double *y1) {
    bool any = false;
    for (int s = 0; s < p->n_series; s++)
        for (int i = 0; i < p->series[s].n; i++) {
            if (!point_ok(&p->series[s], i)) continue;
            *x0 = fmin(*x0, p->series[s].x[i]);
            *x1 = fmax(*x1, p->series[s].x[i]);
            *y0 = fmin(*y0, p->series[s].y[i]);
            *y1 = fmax(*y1, p->series[s].y[i]);
            any = true;
        }
    return any;
}

// Series s: one polyline per run of finite points; a point standing alone (and every point of a short series)
// gets a dot, so that a single evaluation still shows.
static void write_series(FILE *f, int s, const PlotSeries *ser, const PlotAxis *ax, const PlotAxis *ay, double left,
                         double right, double top, double bottom) {
    const char *colour = COLOURS[s % (int)(sizeof COLOURS / sizeof COLOURS[0])];
    for (int i = 0; i < ser->n;) {
        if (!point_ok(ser, i)) { i++; continue; }
        int j = i, m = 0; // points i..j-1 make one line (m of them finite)
        while (j < ser->n && (point_ok(ser, j) || ser->join)) m += point_ok(ser, j++);
        if (m > 1) {
            fprintf(f, "<polyline class=\"s%d\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", s, colour);
            for (int k = i, first = 1; k < j; k++)
                if (point_ok(ser, k)) {
                    fprintf(f, "%s%.2f,%.2f", first ? "" : " ", axis_px(ax, ser->x[k], left, right),
                            axis_px(ay, ser->y[k], bottom, top));
                    first = 0;
                }
            fputs("\"/>\n", f);
        }
        for (int k = i; k < j; k++)
            if (point_ok(ser, k) && (m == 1 || ser->n <= 40))
                fprintf(f, "<circle class=\"s%d\" cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\" fill=\"%s\"/>\n", s,
                        axis_px(ax, ser->x[k], left, right), axis_px(ay, ser->y[k], bottom, top), colour);
        i = j;
    }
}

// A panel: its frame, grid, ticks and labels, series and legend, in the box whose top edge is y0; x axis ax.
static void write_panel(FILE *f, const PlotPanel *p, const PlotAxis *pax, double y0) {
    const double left = FRAME_LEFT, right = PLOT_WIDTH - FRAME_RIGHT, top = y0 + FRAME_TOP,
                 bottom = y0 + PLOT_PANEL_HEIGHT - FRAME_BOTTOM;
    double x0 = INFINITY, x1 = -INFINITY, v0 = INFINITY, v1 = -INFINITY;
    const bool any = panel_range(p, &x0, &x1, &v0, &v1);
    const PlotAxis ax = *pax, ay = plot_axis(any ? v0 : 0, any ? v1 : 1);
    fprintf(f, "<g class=\"panel\">\n<text x=\"%d\" y=\"%.1f\" font-size=\"13\" font-weight=\"bold\">", FRAME_LEFT, y0 + 17);
    put_text(f, p->title);
    fputs("</text>\n", f);
    char label[32];
    for (int i = 0; i < ay.n_ticks; i++) {
        const double y = axis_px(&ay, ay.lo + i * ay.step, bottom, top);
        tick_label(&ay, i, label, sizeof label);
        fprintf(f, "<g class=\"ytick\"><line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e4e4e4\"/>"
                   "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text></g>\n",
                left, y, right, y, left - 6, y + 4, label);
    }
    for (int i = 0; i < ax.n_ticks; i++) {
        const double x = axis_px(&ax, ax.lo + i * ax.step, left, right);
        tick_label(&ax, i, label, sizeof label);
        fprintf(f, "<g class=\"xtick\"><line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#555\"/>"
                   "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text></g>\n",
                x, bottom, x, bottom + 5, x, bottom + 18, label);
    }
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" stroke=\"#555\"/>\n", left, top,
            right - left, bottom - top);
    if (p->xlabel) {
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", (left + right) / 2, bottom + 34);
        put_text(f, p->xlabel);
        fputs("</text>\n", f);
    }
    if (!any)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" fill=\"#888\">no data yet</text>\n",
                (left + right) / 2, (top + bottom) / 2);
    for (int s = 0; s < p->n_series; s++) write_series(f, s, &p->series[s], &ax, &ay, left, right, top, bottom);
    int row = 0, rows = 0; // the legend, top right inside the frame, on a white box
    size_t widest = 0;
    for (int s = 0; s < p->n_series; s++)
        if (p->series[s].label) {
            rows++;
            widest = strlen(p->series[s].label) > widest ? strlen(p->series[s].label) : widest;
        }
    if (rows)
        fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\"/>\n",
                right - 40 - 6.2 * (double)widest, top + 2, 38 + 6.2 * (double)widest, 15 * rows + 4);
    for (int s = 0; s < p->n_series; s++) {
        if (!p->series[s].label) continue;
        const double y = top + 14 + 15 * row++;
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2.5\"/>"
                   "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">", right - 26, y - 4, right - 8, y - 4,
                COLOURS[s % (int)(sizeof COLOURS / sizeof COLOURS[0])], right - 32, y);
        put_text(f, p->series[s].label);
        fputs("</text>\n", f);
    }
    fputs("</g>\n", f);
}

void plot_svg_write(FILE *f, const char *title, const PlotPanel *panels, int n_panels) {
    const int h = TITLE_H + n_panels * PLOT_PANEL_HEIGHT;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%d\" y=\"19\" font-size=\"14\" text-anchor=\"middle\">", PLOT_WIDTH, h, PLOT_WIDTH, h, PLOT_WIDTH / 2);
    put_text(f, title);
    fputs("</text>\n", f);
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY; // the shared x axis: every panel's points
    bool any = false;
    for (int i = 0; i < n_panels; i++) any |= panel_range(&panels[i], &x0, &x1, &y0, &y1);
    const PlotAxis ax = plot_axis(any ? x0 : 0, any ? x1 : 1);
    for (int i = 0; i < n_panels; i++) write_panel(f, &panels[i], &ax, TITLE_H + (double)i * PLOT_PANEL_HEIGHT);
    fputs("</svg>\n", f);
}

int plot_svg_save(const char *path, const char *title, const PlotPanel *panels, int n_panels, XcError *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return xc_err(err, "%s: path too long", path);
    FILE *f = xc_fopen(tmp, "w", err);
    if (!f) return XC_ERR;
    plot_svg_write(f, title, panels, n_panels);
    const bool ok = !ferror(f);
    if (fclose(f) != 0 || !ok) {
        remove(tmp);
        return xc_err(err, "%s: write failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return xc_err(err, "cannot rename %s to %s", tmp, path);
    }
    return XC_OK;
}
