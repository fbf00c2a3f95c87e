// test_plot.c - the SVG writer (train/plot.h) and a run's curves read back from metrics.jsonl (train/curves.h):
//   - the document is well-formed XML: every tag closed in order, text escaped (a legend "<a & b>");
//   - every polyline point is its data point mapped through the axes as drawn: the map is taken from the tick
//     marks' positions and their printed labels, as a reader of the picture would; a NaN breaks a line in two,
//     or is skipped in a joined series; the panels share the x axis;
//   - an empty series and an all-NaN series draw no line and say "no data yet";
//   - plot_axis covers the data with round ticks (one value, no finite value);
//   - curves_read: the mean loss of an epoch weights each record's window by the iterations it covers, the lr is
//     the epoch's last, top-1 the last evaluation of the epoch (NaN where none), and a folder without
//     metrics.jsonl is refused naming it.
#include "test_util.h"
#include "train/curves.h"
#include "train/plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// Well-formed: tags balanced and nested, attribute values quoted, '&' only in entities. Returns NULL or a problem.
static const char *xml_problem(const char *s) {
    static char msg[160];
    char stack[64][32];
    int depth = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '&') {
            if (strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) && strncmp(p, "&amp;", 5) && strncmp(p, "&quot;", 6) &&
                strncmp(p, "&apos;", 6))
                return "a bare '&'";
            continue;
        }
        if (*p == '>') return "a bare '>' in text";
        if (*p != '<') continue;
        if (p[1] == '?') { // the declaration
            p = strstr(p, "?>");
            if (!p) return "unterminated <?";
            p++;
            continue;
        }
        const bool closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " />");
        const char *q = name + len;
        bool quoted = false;
        for (; *q && (quoted || *q != '>'); q++)
            if (*q == '"') quoted = !quoted;
            else if (*q == '<' && quoted) return "a '<' in an attribute";
        if (!*q) return "unterminated tag";
        if (len == 0 || len >= 32) return "bad tag name";
        if (closing) {
            if (depth == 0 || strlen(stack[depth - 1]) != len || strncmp(stack[depth - 1], name, len)) {
                snprintf(msg, sizeof msg, "</%.*s> does not close <%s>", (int)len, name, depth ? stack[depth - 1] : "");
                return msg;
            }
            depth--;
        } else if (q[-1] != '/') {
            if (depth == 64) return "too deep";
            snprintf(stack[depth++], 32, "%.*s", (int)len, name);
        }
        p = q;
    }
    if (depth) {
        snprintf(msg, sizeof msg, "<%s> never closed", stack[depth - 1]);
        return msg;
    }
    return NULL;
}

// The affine map of an axis as drawn: (pixel, label value) of the first and last tick of the given class
// ("xtick" / "ytick", "x1" / "y1") from position from on. False if fewer than two ticks.
static bool tick_map(const char *from, const char *cls, const char *attr, double *p0, double *v0, double *p1, double *v1) {
    char pat[32], apat[16];
    snprintf(pat, sizeof pat, "<g class=\"%s\">", cls);
    snprintf(apat, sizeof apat, "%s=\"", attr);
    int n = 0;
    const char *stop = strstr(from + 1, "<g class=\"panel\">"); // the next panel
    for (const char *p = strstr(from, pat); p && (!stop || p < stop); p = strstr(p + 1, pat)) {
        double px = atof(strstr(p, apat) + strlen(apat));
        double v = atof(strstr(strstr(p, "<text"), ">") + 1);
        if (n++ == 0) *p0 = px, *v0 = v;
        *p1 = px, *v1 = v;
    }
    return n >= 2;
}

// The n points of every polyline of class "sI" in the panel at from, into xs / ys; the number of polylines.
static int polylines(const char *from, int series, double *xs, double *ys, int *n, int cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "<polyline class=\"s%d\"", series);
    const char *stop = strstr(from + 1, "<g class=\"panel\">");
    int lines = 0;
    *n = 0;
    for (const char *p = strstr(from, pat); p && (!stop || p < stop); p = strstr(p + 1, pat)) {
        lines++;
        const char *q = strstr(p, "points=\"") + 8;
        while (*q != '"' && *n < cap) {
            char *end;
            xs[*n] = strtod(q, &end);
            ys[*n] = strtod(end + 1, &end);
            (*n)++;
            q = end;
            while (*q == ' ') q++;
        }
    }
    return lines;
}

static char *svg_of(const char *title, const PlotPanel *p, int n) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    plot_svg_write(f, title, p, n);
    fclose(f);
    return buf;
}

static void test_points_on_axes(void) {
    // panel 1: a line broken by a NaN (two polylines) and a joined series (one polyline over the NaN)
    double x[] = {1, 2, 3, 4, 5, 6}, a[] = {2.08, 2.05, NAN, 1.7, 1.52, 1.31}, b[] = {NAN, 1.9, NAN, NAN, 1.6, 1.5};
    double x2[] = {2, 9}, c[] = {0.002, 0.0004}; // panel 2: x up to 9 widens the shared axis
    PlotSeries s1[] = {{.label = "<a & b>", .x = x, .y = a, .n = 6}, {.label = "run \"2\"", .x = x, .y = b, .n = 6, .join = true}};
    PlotSeries s2[] = {{.x = x2, .y = c, .n = 2}};
    PlotPanel p[] = {{.title = "loss", .xlabel = "epoch", .series = s1, .n_series = 2},
                     {.title = "lr", .series = s2, .n_series = 1}};
    char *svg = svg_of("two & panels", p, 2);
    const char *bad = xml_problem(svg);
    XC_EXPECT(!bad, "not well-formed: %s", bad ? bad : "");
    XC_EXPECT(strstr(svg, "&lt;a &amp; b&gt;") && strstr(svg, "run &quot;2&quot;"), "legend text not escaped");

    const char *panel[2];
    panel[0] = strstr(svg, "<g class=\"panel\">");
    panel[1] = panel[0] ? strstr(panel[0] + 1, "<g class=\"panel\">") : NULL;
    XC_EXPECT(panel[0] && panel[1], "two panels expected");
    if (!panel[0] || !panel[1]) { free(svg); return; }
    double max_err = 0;
    const PlotSeries *all[3] = {&s1[0], &s1[1], &s2[0]};
    const int in_panel[3] = {0, 0, 1}, index[3] = {0, 1, 0}, want_lines[3] = {2, 1, 1};
    double ax0[2], ax1[2];
    for (int k = 0; k < 3; k++) {
        double px0, vx0, px1, vx1, py0, vy0, py1, vy1, xs[16], ys[16];
        bool ok = tick_map(panel[in_panel[k]], "xtick", "x1", &px0, &vx0, &px1, &vx1) &&
                  tick_map(panel[in_panel[k]], "ytick", "y1", &py0, &vy0, &py1, &vy1);
        XC_EXPECT(ok, "series %d: fewer than two ticks on an axis", k);
        if (!ok) continue;
        ax0[in_panel[k]] = vx0, ax1[in_panel[k]] = vx1;
        XC_EXPECT(py1 < py0 && vy1 > vy0, "series %d: the y axis does not grow upwards", k);
        int n;
        const int lines = polylines(panel[in_panel[k]], index[k], xs, ys, &n, 16);
        XC_EXPECT(lines == want_lines[k], "series %d: %d polylines, want %d", k, lines, want_lines[k]);
        const PlotSeries *s = all[k];
        int j = 0;
        for (int i = 0; i < s->n; i++) {
            if (!isfinite(s->y[i])) continue;
            XC_EXPECT(j < n, "series %d: point %d missing", k, i);
            if (j >= n) break;
            const double ex = px0 + (s->x[i] - vx0) / (vx1 - vx0) * (px1 - px0);
            const double ey = py0 + (s->y[i] - vy0) / (vy1 - vy0) * (py1 - py0);
            const double e = fmax(fabs(xs[j] - ex), fabs(ys[j] - ey));
            max_err = fmax(max_err, e);
            XC_EXPECT(e <= 0.02, "series %d point %d: drawn at (%.2f, %.2f), the axes put it at (%.3f, %.3f)", k, i, xs[j],
                      ys[j], ex, ey);
            j++;
        }
        XC_EXPECT(j == n, "series %d: %d points drawn, %d finite", k, n, j);
    }
    XC_EXPECT(ax0[0] == ax0[1] && ax1[0] == ax1[1] && ax1[0] >= 9, "the panels do not share the x axis (%g-%g, %g-%g)",
              ax0[0], ax1[0], ax0[1], ax1[1]);
    printf("  points vs the axes as labelled: max %.4f px apart (printed to 0.01 px; tolerance 0.02)\n", max_err);
    free(svg);
}

static void test_empty(void) {
    double x[] = {1, 2}, y[] = {NAN, NAN};
    PlotSeries s[] = {{.label = "empty", .x = x, .y = y, .n = 0}, {.label = "nan", .x = x, .y = y, .n = 2, .join = true}};
    PlotPanel p[] = {{.title = "nothing", .series = s, .n_series = 2}, {.title = "no series"}};
    char *svg = svg_of("empty", p, 2);
    const char *bad = xml_problem(svg);
    XC_EXPECT(!bad, "empty plot not well-formed: %s", bad ? bad : "");
    XC_EXPECT(!strstr(svg, "<polyline") && !strstr(svg, "<circle"), "an empty / all-NaN series drew something");
    const char *n1 = strstr(svg, "no data yet");
    XC_EXPECT(n1 && strstr(n1 + 1, "no data yet"), "the empty panels do not say 'no data yet'");
    XC_EXPECT(!strstr(svg, "nan") || strstr(svg, ">nan</text>"), "a NaN leaked into the coordinates");
    free(svg);
}

static void test_axis(void) {
    const double cases[][2] = {{1, 30}, {1.31, 2.08}, {0, 0.002}, {12.5, 47.66}, {5, 5}, {0, 0}, {-3, 7}, {NAN, NAN}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double lo = cases[i][0], hi = cases[i][1];
        PlotAxis a = plot_axis(lo, hi);
        const double f = a.step / pow(10, floor(log10(a.step)));
        XC_EXPECT(a.hi > a.lo && a.n_ticks >= 2 && a.n_ticks <= 12, "axis(%g, %g): %g..%g, %d ticks", lo, hi, a.lo, a.hi, a.n_ticks);
        XC_EXPECT(!isfinite(lo) || (a.lo <= lo && a.hi >= hi), "axis(%g, %g) = %g..%g does not cover the data", lo, hi, a.lo, a.hi);
        XC_EXPECT(fabs(f - 1) < 1e-9 || fabs(f - 2) < 1e-9 || fabs(f - 5) < 1e-9, "axis(%g, %g): step %g not 1, 2 or 5 x 10^k",
                  lo, hi, a.step);
        XC_EXPECT(fabs(a.lo / a.step - round(a.lo / a.step)) < 1e-9, "axis(%g, %g): %g not a multiple of the step", lo, hi, a.lo);
    }
}

static void test_curves(void) {
    const char *dir = "test_plot.run";
    mkdir(dir, 0777);
    FILE *f = fopen("test_plot.run/metrics.jsonl", "w");
    XC_EXPECT(f != NULL, "cannot write %s/metrics.jsonl", dir);
    if (!f) return;
    // epoch 1: windows of 3 and 1 iterations; epoch 2: a record, then (resumed from an earlier snapshot) again
    // from iteration 2; an evaluation after epoch 2 twice (the last wins); epoch 3: only an evaluation
    fputs("{\"type\": \"train\", \"time\": 1.0, \"epoch\": 1, \"iter\": 3, \"global_iter\": 2, \"lr\": 0.001, \"next_lr\": 0.5, "
          "\"loss\": 9, \"loss_avg\": 2.0}\n"
          "{\"type\": \"train\", \"time\": 2.0, \"epoch\": 1, \"iter\": 4, \"global_iter\": 3, \"lr\": 0.002, \"loss\": 1.0, "
          "\"loss_avg\": 1.0}\n"
          "{\"type\": \"train\", \"time\": 3.0, \"epoch\": 2, \"iter\": 3, \"lr\": 0.003, \"loss_avg\": 7.0}\n"
          "{\"type\": \"train\", \"time\": 4.0, \"epoch\": 2, \"iter\": 2, \"lr\": 0.004, \"loss_avg\": 1.5}\n"
          "{\"type\": \"train\", \"time\": 5.0, \"epoch\": 2, \"iter\": 4, \"lr\": 0.005, \"loss_avg\": 2.5}\n"
          "{\"type\": \"eval\", \"time\": 6.0, \"epoch\": 2, \"global_iter\": 8, \"top1\": 30, \"train_loss\": 5, \"best_top1\": 99}\n"
          "{\"type\": \"eval\", \"time\": 7.0, \"epoch\": 2, \"global_iter\": 8, \"top1\": 40, \"best_top1\": 99}\n"
          "{\"type\": \"eval\", \"time\": 8.0, \"epoch\": 3, \"val_top1\": 45.5}\n"
          "{\"type\": \"final_eval\", \"time\": 9.0, \"top1\": 77}\n",
          f);
    fclose(f);
    RunCurves rc;
    XcError err = {{0}};
    XC_EXPECT(curves_read(dir, &rc, &err) == XC_OK, "curves_read: %s", err.msg);
    XC_EXPECT(rc.n == 3, "%d epochs read, want 3", rc.n);
    if (rc.n == 3) {
        XC_EXPECT(rc.epoch[0] == 1 && rc.epoch[2] == 3, "epochs not numbered from 1");
        XC_EXPECT(fabs(rc.loss[0] - (2.0 * 3 + 1.0) / 4) < 1e-12, "epoch 1 mean loss %g, want 1.75", rc.loss[0]);
        XC_EXPECT(fabs(rc.loss[1] - (1.5 * 2 + 2.5 * 2) / 4) < 1e-12, "epoch 2 mean loss %g, want 2 (after the rewind)", rc.loss[1]);
        XC_EXPECT(isnan(rc.loss[2]) && isnan(rc.lr[2]), "epoch 3 has no training records: loss %g lr %g", rc.loss[2], rc.lr[2]);
        XC_EXPECT(rc.lr[0] == 0.002 && rc.lr[1] == 0.005, "lr per epoch %g %g, want the last record's", rc.lr[0], rc.lr[1]);
        XC_EXPECT(isnan(rc.top1[0]) && rc.top1[1] == 40 && rc.top1[2] == 45.5, "top-1 per epoch %g %g %g, want nan 40 45.5",
                  rc.top1[0], rc.top1[1], rc.top1[2]);
    }
    curves_free(&rc);
    XC_EXPECT(curves_write_svg(dir, &err) == XC_OK, "curves_write_svg: %s", err.msg);
    f = fopen("test_plot.run/curves.svg", "r");
    XC_EXPECT(f != NULL, "no curves.svg");
    if (f) {
        char buf[65536];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
        const char *bad = xml_problem(buf);
        XC_EXPECT(!bad, "curves.svg not well-formed: %s", bad ? bad : "");
        XC_EXPECT(strstr(buf, "training loss") && strstr(buf, "learning rate") && strstr(buf, "validation top-1"),
                  "curves.svg lacks a panel");
    }
    XC_EXPECT(curves_read("test_plot.nowhere", &rc, &err) == XC_ERR && strstr(err.msg, "test_plot.nowhere") &&
                  strstr(err.msg, "metrics.jsonl"),
              "a folder without metrics.jsonl: '%s'", err.msg);
}

int main(void) {
    test_points_on_axes();
    test_empty();
    test_axis();
    test_curves();
    return xc_test_summary("test_plot");
}
