// xclip-synth - write a labelled synthetic video dataset (see data/synth.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/runtime.h"
#include "data/synth.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-synth OUTDIR [--classes N] [--per-class N] [--val-per-class N] [--frames N] [--size S]\n"
            "                   [--fps F] [--seed S] [--codec NAME]\n"
            "Writes OUTDIR/videos/cNN/*.mp4, OUTDIR/train.txt and OUTDIR/val.txt (paths relative to OUTDIR/videos)\n"
            "and OUTDIR/labels.csv (id,name); OUTDIR and its missing parents are created (as mkdir -p). Classes\n"
            "differ in motion (left/right, up/down, growing/shrinking, clockwise/counterclockwise: frame order\n"
            "matters), colour and shape; names are English phrases such as \"a red circle moving left\".\n"
            "Defaults: 8 classes, 4 train + 2 val per class, 32 frames of 96x96 at 16 fps, seed 1024, libx264 if\n"
            "available (else mpeg4).\n");
}

static int num(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi) {
        fprintf(stderr, "xclip-synth: %s needs an integer in [%ld, %ld], got '%s'\n", opt, lo, hi, v ? v : "");
        return 0;
    }
    *out = x;
    return 1;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    SynthConfig sc = synth_config_default();
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--classes")) { if (!num(a, v, 1, 96, &x)) return 2; sc.classes = (int)x; i++; }
        else if (!strcmp(a, "--per-class")) { if (!num(a, v, 0, 100000, &x)) return 2; sc.per_class = (int)x; i++; }
        else if (!strcmp(a, "--val-per-class")) { if (!num(a, v, 0, 100000, &x)) return 2; sc.val_per_class = (int)x; i++; }
        else if (!strcmp(a, "--frames")) { if (!num(a, v, 1, 100000, &x)) return 2; sc.frames = (int)x; i++; }
        else if (!strcmp(a, "--size")) { if (!num(a, v, 16, 4096, &x)) return 2; sc.size = (int)x; i++; }
        else if (!strcmp(a, "--fps")) { if (!num(a, v, 1, 1000, &x)) return 2; sc.fps = (int)x; i++; }
        else if (!strcmp(a, "--seed")) { if (!num(a, v, 0, 0x7fffffffL, &x)) return 2; sc.seed = (uint64_t)x; i++; }
        else if (!strcmp(a, "--codec")) { if (!v) { fprintf(stderr, "xclip-synth: --codec needs a name\n"); return 2; } sc.codec = v; i++; }
        else if (a[0] == '-') { fprintf(stderr, "xclip-synth: unknown option %s\n", a); usage(stderr); return 2; }
        else if (!out) out = a;
        else { fprintf(stderr, "xclip-synth: more than one OUTDIR given\n"); return 2; }
    }
    if (!out) { usage(stderr); return 2; }
    XcError err = {{0}};
    if (synth_write_dataset(out, &sc, &err) != XC_OK) { fprintf(stderr, "xclip-synth: %s\n", err.msg); return 1; }
    printf("xclip-synth: wrote %d classes x (%d train + %d val) videos to %s\n", sc.classes, sc.per_class,
           sc.val_per_class, out);
    return 0;
}
