// xclip-check-data - find the bad videos of a list before training: validates the list (and labels), then opens
// every video and decodes its first, middle and last frames. Exit status 0 only if everything is readable.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/runtime.h"
#include "data/dataset.h"
#include "data/video.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-check-data LIST --root ROOT [--labels CSV] [--quick]\n"
            "Checks a video list (`<path> <label>` per line) against ROOT (a folder or an uncompressed .tar):\n"
            "the list format, labels against CSV (id,name), missing files, and every video by opening it and decoding\n"
            "its first, middle and last frames (--quick: open and index only). Prints one line per bad video\n"
            "(list:line: path: reason) and a summary; exits 1 if any video is bad, 2 on usage or list errors.\n");
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *list = NULL, *root = NULL, *labels = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--root") && i + 1 < argc) root = argv[++i];
        else if (!strcmp(argv[i], "--labels") && i + 1 < argc) labels = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (argv[i][0] == '-') { fprintf(stderr, "xclip-check-data: unknown or incomplete option %s\n", argv[i]); usage(stderr); return 2; }
        else if (!list) list = argv[i];
        else { fprintf(stderr, "xclip-check-data: more than one LIST given\n"); return 2; }
    }
    if (!list || !root) { usage(stderr); return 2; }
    XcError err = {{0}};
    int K = 0;
    if (labels) {
        LabelSet ls;
        if (labels_load(labels, &ls, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); return 2; }
        K = ls.count;
        labels_free(&ls);
    }
    Dataset *ds = dataset_open(list, root, K, &err);
    if (!ds) { fprintf(stderr, "%s\n", err.msg); return 2; }
    int64_t bad = 0;
    VideoLimits lim = video_limits_default();
    for (int64_t i = 0; i < ds->n; i++) {
        const DatasetItem *it = &ds->items[i];
        if (it->missing) {
            if (!strncmp(it->why, "no such", 7)) printf("%s:%d: %s: missing (%s in %s)\n", list, it->line, it->path, it->why, root);
            else printf("%s:%d: %s: unusable: %s, not a video file (in %s)\n", list, it->line, it->path, it->why, root);
            bad++;
            continue;
        }
        char buf[4096];
        VideoSource src = dataset_source(ds, i, buf, sizeof buf);
        Video *v = video_open(src, &lim, &err);
        int ok = v != NULL;
        if (ok && !quick) {
            int64_t n = video_frame_count(v), idx[3] = {0, n / 2, n - 1};
            int oh, ow;
            video_output_size(v, 64, &oh, &ow);
            uint8_t *rgb = malloc((size_t)3 * oh * ow * 3);
            ok = video_read_frames(v, idx, 3, 64, VIDEO_SCALE_SWS, rgb, &err) == XC_OK;
            free(rgb);
        }
        video_close(v);
        if (!ok) {
            char *nl = strchr(err.msg, '\n');
            if (nl) *nl = 0;
            printf("%s:%d: %s: %s\n", list, it->line, it->path, err.msg);
            bad++;
        }
    }
    printf("xclip-check-data: %lld videos, %lld bad (%lld missing or not a file)\n", (long long)ds->n, (long long)bad,
           (long long)ds->n_missing);
    dataset_free(ds);
    return bad ? 1 : 0;
}
