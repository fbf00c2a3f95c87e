// xclip-synth - write a labelled synthetic video dataset (data/synth.h), or with `world` the compositional world's
// products: captioned images, source / target / zero-shot video datasets (data/world.h, data/README.md).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/runtime.h"
#include "data/synth.h"
#include "data/world.h"
#include "data/world_video.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-synth OUTDIR [--classes N] [--per-class N] [--val-per-class N] [--frames N] [--size S]\n"
            "                   [--fps F] [--seed S] [--codec NAME]\n"
            "Writes OUTDIR/videos/cNN/*.mp4, OUTDIR/train.txt and OUTDIR/val.txt (paths relative to OUTDIR/videos)\n"
            "and OUTDIR/labels.csv (id,name); OUTDIR and its missing parents are created (as mkdir -p). Classes\n"
            "differ in motion (left/right, up/down, growing/shrinking, clockwise/counterclockwise: frame order\n"
            "matters), colour and shape; names are English phrases such as \"a red circle moving left\".\n"
            "Defaults: 8 classes, 4 train + 2 val per class, 32 frames of 96x96 at 16 fps, seed 1024, libx264 if\n"
            "available (else mpeg4).\n"
            "       xclip-synth world OUTDIR [options]   (the compositional world; xclip-synth world --help)\n");
}

static void world_usage(FILE *f) {
    WorldConfig d = world_config_default();
    fprintf(f,
            "usage: xclip-synth world OUTDIR [--seed S] [--images N] [--val-images N] [--probe-per-combo N]\n"
            "                   [--captions-per-image K] [--image-size S] [--video-size S] [--frames T] [--fps F]\n"
            "                   [--source-train N] [--source-val N] [--target-train N] [--target-test N]\n"
            "                   [--zeroshot-test N] [--distractors P] [--codec NAME] [--no-images] [--no-videos] [--quiet]\n"
            "       xclip-synth world --classes     (print every product's classes and exit)\n"
            "Writes the compositional world under OUTDIR (created with its parents; data/README.md documents it):\n"
            "  images/       captioned images: {train,val,probe}.tar (PPM members), {train,val,probe}.txt,\n"
            "                *_captions.tsv (`path<TAB>caption`), probe_{colour,shape,size,position,combo,unseen}.txt,\n"
            "                colour.csv shape.csv size.csv position.csv combos.csv unseen_combos.csv\n"
            "  source/       Kinetics-400 role: labels.csv train.txt val.txt videos/\n"
            "  target_hmdb/ target_ucf/   HMDB-51 / UCF-101 roles: labels.csv train.txt test.txt videos/\n"
            "  zeroshot/     split{1,2,3}_labels.csv split{1,2,3}_test.txt videos/\n"
            "  world.txt     the settings and counts (written last)\n"
            "Defaults: seed %llu, %lld train + %lld val images, %d probe images per colour-shape pair, %d caption(s)\n"
            "per image, %dx%d images; videos %dx%d, %d frames at %d fps, per class: source %d + %d, targets %d + %d,\n"
            "zero-shot %d; distractor probability %.2f. Threads: OMP_NUM_THREADS.\n",
            (unsigned long long)d.seed, (long long)d.train_images, (long long)d.val_images, d.probe_per_combo,
            d.captions_per_image, d.image_size, d.image_size, d.video_size, d.video_size, d.frames, d.fps,
            d.source_train, d.source_val, d.target_train, d.target_test, d.zeroshot_test, (double)d.distractor_prob);
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

static void print_classes(void) {
    for (int p = 0; p < WORLD_PRODUCTS; p++) {
        WorldClass cls[WORLD_MAX_CLASSES];
        int K = world_classes((WorldProduct)p, cls);
        printf("%s%s (%d classes):\n", p >= WORLD_ZEROSHOT_1 ? "zeroshot/" : "", world_product_names[p], K);
        for (int c = 0; c < K; c++) {
            char name[128];
            world_class_name(&cls[c], name, sizeof name);
            printf("  %2d %s\n", c, name);
        }
    }
}

static int world_main(int argc, char **argv) {
    WorldConfig wc = world_config_default();
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        int *ip = NULL;
        int64_t *lp = NULL;
        long lo = 0, hi = 999;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { world_usage(stdout); return 0; }
        else if (!strcmp(a, "--classes")) { print_classes(); return 0; }
        else if (!strcmp(a, "--no-images")) { wc.write_images = 0; continue; }
        else if (!strcmp(a, "--no-videos")) { wc.write_videos = 0; continue; }
        else if (!strcmp(a, "--quiet")) { wc.quiet = 1; continue; }
        else if (!strcmp(a, "--codec")) { if (!v) { fprintf(stderr, "xclip-synth: --codec needs a name\n"); return 2; } wc.codec = v; i++; continue; }
        else if (!strcmp(a, "--distractors")) {
            char *end;
            double p = v ? strtod(v, &end) : -1;
            if (!v || *end || !(p >= 0 && p <= 1)) { fprintf(stderr, "xclip-synth: --distractors needs a probability in [0, 1], got '%s'\n", v ? v : ""); return 2; }
            wc.distractor_prob = (float)p;
            i++;
            continue;
        }
        else if (!strcmp(a, "--seed")) { if (!num(a, v, 0, 0x7fffffffL, &x)) return 2; wc.seed = (uint64_t)x; i++; continue; }
        else if (!strcmp(a, "--images")) { lp = &wc.train_images; hi = 9999999; }
        else if (!strcmp(a, "--val-images")) { lp = &wc.val_images; hi = 9999999; }
        else if (!strcmp(a, "--probe-per-combo")) { ip = &wc.probe_per_combo; hi = 150000; }
        else if (!strcmp(a, "--captions-per-image")) { ip = &wc.captions_per_image; lo = 1; hi = 16; }
        else if (!strcmp(a, "--image-size")) { ip = &wc.image_size; lo = 16; hi = 1024; }
        else if (!strcmp(a, "--video-size")) { ip = &wc.video_size; lo = 16; hi = 1024; }
        else if (!strcmp(a, "--frames")) { ip = &wc.frames; lo = 1; hi = 10000; }
        else if (!strcmp(a, "--fps")) { ip = &wc.fps; lo = 1; hi = 1000; }
        else if (!strcmp(a, "--source-train")) ip = &wc.source_train;
        else if (!strcmp(a, "--source-val")) ip = &wc.source_val;
        else if (!strcmp(a, "--target-train")) ip = &wc.target_train;
        else if (!strcmp(a, "--target-test")) ip = &wc.target_test;
        else if (!strcmp(a, "--zeroshot-test")) ip = &wc.zeroshot_test;
        else if (a[0] == '-') { fprintf(stderr, "xclip-synth world: unknown option %s\n", a); world_usage(stderr); return 2; }
        else if (!out) { out = a; continue; }
        else { fprintf(stderr, "xclip-synth world: more than one OUTDIR given\n"); return 2; }
        if (!num(a, v, lo, hi, &x)) return 2;
        if (ip) *ip = (int)x;
        else *lp = x;
        i++;
    }
    if (!out) { world_usage(stderr); return 2; }
    XcError err = {{0}};
    double t0 = xc_now();
    if (world_write(out, &wc, &err) != XC_OK) { fprintf(stderr, "xclip-synth world: %s\n", err.msg); return 1; }
    printf("xclip-synth world: wrote %s in %.1f s (%s)\n", out, xc_now() - t0, "see world.txt and data/README.md");
    return 0;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    if (argc > 1 && !strcmp(argv[1], "world")) return world_main(argc - 1, argv + 1);
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
