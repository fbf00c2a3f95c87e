// bench_video.c - clips per second of the train pipeline (8 frames, input 224: sample, decode, resize short
// side to 256, MultiScaleCrop, resize, flip, jitter, grayscale, normalise) through the loader with 1 and 2
// workers, for the Kinetics clip (340x256 H.264) and the 1080p NTU clip, against decoding every frame of the file.
//   bench_video [SHARED_DIR] [seconds per row]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/runtime.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/video.h"

static double decode_all(const char *path, double secs, int64_t *frames) {
    XcError err = {{0}};
    int n = 0;
    double t0 = xc_now();
    do {
        Video *v = video_open((VideoSource){.path = path}, NULL, &err);
        if (!v) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        int64_t nf = video_frame_count(v);
        int64_t *idx = malloc(sizeof(int64_t) * nf);
        for (int64_t i = 0; i < nf; i++) idx[i] = i;
        int oh, ow;
        video_output_size(v, 256, &oh, &ow);
        uint8_t *o = malloc((size_t)nf * oh * ow * 3);
        if (video_read_frames(v, idx, (int)nf, 256, VIDEO_SCALE_REF, o, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        *frames = nf;
        free(o); free(idx);
        video_close(v);
        n++;
    } while (xc_now() - t0 < secs);
    return n / (xc_now() - t0);
}

static double loader_rate(const char *dir, const char *name, int workers, VideoScale scale, double secs) {
    char list[600];
    snprintf(list, sizeof list, "/tmp/bench_video_%d.txt", (int)getpid());
    FILE *f = fopen(list, "w");
    for (int i = 0; i < 16; i++) fprintf(f, "%s 0\n", name);
    fclose(f);
    XcError err = {{0}};
    Dataset *ds = dataset_open(list, dir, 1, &err);
    if (!ds) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    LoaderConfig lc = loader_config_default(224, 8, 1);
    lc.workers = workers;
    lc.scale = scale;
    lc.prefetch = 4;
    Loader *ld = loader_create(ds, &lc, &err);
    const Batch *b;
    loader_next(ld, &b, &err); // warm-up
    int n = 0;
    double t0 = xc_now();
    while (xc_now() - t0 < secs) {
        int rc = loader_next(ld, &b, &err);
        if (rc < 0) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        if (rc > 0) n++;
    }
    double r = n / (xc_now() - t0);
    loader_free(ld);
    dataset_free(ds);
    unlink(list);
    return r;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *shared = argc > 1 ? argv[1] : (getenv("XCLIP_SHARED") ? getenv("XCLIP_SHARED") : "../shared");
    double secs = argc > 2 ? atof(argv[2]) : 3.0;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/videos", shared);
    const char *clips[2] = {"kinetics_arm_wrestling.mp4", "ntu_S001C001P001R001A001_rgb.avi"};
    printf("%-36s %12s %12s %12s %16s\n", "clip (train: 8 frames at 224)", "1 worker", "2 workers", "2 w. (sws)",
           "decode all");
    for (int c = 0; c < 2; c++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", dir, clips[c]);
        double r1 = loader_rate(dir, clips[c], 1, VIDEO_SCALE_REF, secs);
        double r2 = loader_rate(dir, clips[c], 2, VIDEO_SCALE_REF, secs);
        double r2s = loader_rate(dir, clips[c], 2, VIDEO_SCALE_SWS, secs);
        int64_t nf = 0;
        double ra = decode_all(p, secs, &nf);
        printf("%-36s %9.2f/s %9.2f/s %9.2f/s %7.2f/s (%lld fr)\n", clips[c], r1, r2, r2s, ra, (long long)nf);
    }
    printf("(clips/s; 'decode all' decodes and converts every frame of the file once per clip, 1 thread;\n"
           " '2 w. (sws)' uses swscale's direct resize instead of the reference bilinear)\n");
    return 0;
}
