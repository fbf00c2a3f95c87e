// xclip-plot - overlay the curves of several runs (their metrics.jsonl) in one SVG: mean training loss, learning
// rate and validation top-1 per epoch, one colour per run, a legend naming each run folder. Each run folder also
// holds its own curves.svg, which the run rewrites after every evaluation (train/curves.h).
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "train/curves.h"
#include "train/plot.h"

#define MAX_RUNS 32

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-plot RUN... [-o OUT.svg] [--metric top1|loss|lr]\n"
            "Overlays the runs (folders of xclip-train or xclip-pretrain, read from their metrics.jsonl) in one SVG:\n"
            "mean training loss, learning rate and validation top-1 per epoch, stacked (--metric: only that one),\n"
            "one colour per run, the legend naming each folder. OUT defaults to plot.svg; a browser shows it\n"
            "(rsvg-convert -o out.png OUT.svg makes a PNG). Up to %d runs. Exit status 1 if a folder has no\n"
            "metrics.jsonl, 2 on usage errors.\n", MAX_RUNS);
}

int main(int argc, char **argv) {
    const char *out = "plot.svg", *runs[MAX_RUNS];
    int n_runs = 0, metric = -1; // -1: all three
    for (int i = 1; i < argc; i++) {
        char flag[32];
        const char *v;
        cli_split_flag(argv[i], flag, sizeof flag, &v);
        const bool takes = !strcmp(flag, "-o") || !strcmp(flag, "--output") || !strcmp(flag, "--metric");
        if (takes && !v) {
            if (i + 1 >= argc) { fprintf(stderr, "xclip-plot: %s needs a value\n", flag); return 2; }
            v = argv[++i];
        }
        if (!strcmp(flag, "-h") || !strcmp(flag, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(flag, "-o") || !strcmp(flag, "--output")) out = v;
        else if (!strcmp(flag, "--metric")) {
            metric = !strcmp(v, "loss") ? CURVE_LOSS : !strcmp(v, "lr") ? CURVE_LR : !strcmp(v, "top1") ? CURVE_TOP1 : -2;
            if (metric == -2) { fprintf(stderr, "xclip-plot: --metric %s: want top1, loss or lr\n", v); return 2; }
        } else if (argv[i][0] == '-') { fprintf(stderr, "xclip-plot: unknown option %s\n", argv[i]); usage(stderr); return 2; }
        else if (n_runs == MAX_RUNS) { fprintf(stderr, "xclip-plot: more than %d runs\n", MAX_RUNS); return 2; }
        else runs[n_runs++] = argv[i];
    }
    if (!n_runs) { usage(stderr); return 2; }

    RunCurves rc[MAX_RUNS];
    char names[MAX_RUNS][256];
    XcError err = {{0}};
    for (int r = 0; r < n_runs; r++) {
        if (curves_read(runs[r], &rc[r], &err) != XC_OK) {
            fprintf(stderr, "xclip-plot: %s\n", err.msg);
            for (int k = 0; k < r; k++) curves_free(&rc[k]);
            return 1;
        }
        snprintf(names[r], sizeof names[r], "%s", runs[r]); // the legend: the folder as given, without a trailing '/'
        for (size_t len = strlen(names[r]); len > 1 && names[r][len - 1] == '/'; len--) names[r][len - 1] = 0;
        if (!rc[r].n) fprintf(stderr, "xclip-plot: warning: %s has no records yet\n", runs[r]);
    }
    PlotSeries s[3][MAX_RUNS];
    PlotPanel p[3];
    int n_panels = 0;
    for (int m = 0; m < 3; m++) {
        if (metric >= 0 && m != metric) continue;
        for (int r = 0; r < n_runs; r++)
            s[n_panels][r] = (PlotSeries){.label = names[r], .x = rc[r].epoch, .y = curve_values(&rc[r], (CurveMetric)m),
                                          .n = rc[r].n, .join = m == CURVE_TOP1};
        p[n_panels] = (PlotPanel){.title = curve_title((CurveMetric)m), .xlabel = "epoch", .series = s[n_panels],
                                  .n_series = n_runs};
        n_panels++;
    }
    char title[64];
    snprintf(title, sizeof title, "%d run%s", n_runs, n_runs == 1 ? "" : "s");
    int rcode = plot_svg_save(out, n_runs == 1 ? names[0] : title, p, n_panels, &err);
    for (int r = 0; r < n_runs; r++) curves_free(&rc[r]);
    if (rcode != XC_OK) { fprintf(stderr, "xclip-plot: %s\n", err.msg); return 1; }
    printf("xclip-plot: wrote %s (%d run%s)\n", out, n_runs, n_runs == 1 ? "" : "s");
    return 0;
}
