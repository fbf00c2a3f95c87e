// test_video_decode.c - the reader against the ffmpeg program, frame for frame.
//
// For the four real clips in ../shared/videos (H.264 mp4 x2, H.264 1080p avi, MPEG-4 avi with MP3 audio) and for
// videos made here at run time with ffmpeg (a long GOP-50 clip, a VFR mkv, a VP9 webm, an mpeg4 avi):
//   - frame count == ffprobe's video packet count;
//   - RGB24 at native size for a spread of indices (given out of order, with repeats) == the frames the ffmpeg
//     program decodes with select=eq(n\,i) and the same swscale conversion (tolerance 0: same library);
//   - sparse decoding: 8 frames of the long clip decode far fewer frames than the file holds;
//   - the memory source gives the same frames as the file;
//   - resized output: VIDEO_SCALE_REF is checked against the transform's resize; the swscale direct path is
//     compared with it and the difference is printed (it low-pass filters, so it is not the reference).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autograd/rng.h"
#include "autograd/util.h"
#include "data/sampling.h"
#include "data/transforms.h"
#include "data/video.h"
#include "tests/test_util.h"

static char tmpdir[256];

static uint8_t *run_capture(const char *cmd, size_t *len) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, p)) > 0) {
        n += got;
        if (n == cap) { cap *= 2; buf = realloc(buf, cap); }
    }
    int st = pclose(p);
    if (st != 0) { free(buf); return NULL; }
    *len = n;
    return buf;
}

static int64_t ffprobe_packets(const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets "
             "-of csv=p=0 '%s'", path);
    size_t len = 0;
    uint8_t *out = run_capture(cmd, &len);
    if (!out) return -1;
    out = realloc(out, len + 1);
    out[len] = 0;
    int64_t n = atoll((char *)out);
    free(out);
    return n;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// Frames uniq[0..nu-1] (ascending, unique) decoded by the ffmpeg program as RGB24 at native size.
static uint8_t *ffmpeg_frames(const char *path, const int64_t *uniq, int nu, size_t *len) {
    char sel[4096] = "";
    size_t o = 0;
    for (int i = 0; i < nu; i++) o += (size_t)snprintf(sel + o, sizeof sel - o, "%seq(n\\,%lld)", i ? "+" : "", (long long)uniq[i]);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v error -nostdin -threads 1 -i '%s' -map 0:v:0 -vf \"select='%s',scale=flags=bilinear\" "
             "-fps_mode passthrough -pix_fmt rgb24 -f rawvideo -", path, sel);
    return run_capture(cmd, len);
}

// The default limits without the per-call deadline: valid files must decode however slow the machine is.
static VideoLimits limits_no_deadline(void) {
    VideoLimits lim = video_limits_default();
    lim.deadline_s = 0;
    return lim;
}

static void check_clip(const char *path, int nidx_extra_train) {
    XcError err = {0};
    VideoLimits lim = limits_no_deadline();
    Video *v = video_open((VideoSource){.path = path}, &lim, &err);
    XC_EXPECT(v != NULL, "open %s: %s", path, err.msg);
    if (!v) return;
    int64_t n = video_frame_count(v), np = ffprobe_packets(path);
    XC_EXPECT(n == np, "%s: frame count %lld, ffprobe packets %lld", path, (long long)n, (long long)np);
    int W = video_width(v), H = video_height(v);
    // indices: ends, middle, a sampled train clip; out of order and with a repeat
    int64_t idx[32];
    int c = 0;
    idx[c++] = n - 1; idx[c++] = 0; idx[c++] = n / 2; idx[c++] = 1; idx[c++] = n / 2; idx[c++] = n / 3;
    Rng r = rng_stream(7, RNG_STREAM_TEST);
    int64_t tr[16];
    sample_train(n, nidx_extra_train, &r, tr);
    for (int i = 0; i < nidx_extra_train; i++) idx[c++] = tr[i];
    size_t fsize = (size_t)W * H * 3;
    uint8_t *got = malloc(fsize * c);
    double t0 = xc_now();
    int rc = video_read_frames(v, idx, c, 0, VIDEO_SCALE_REF, got, &err);
    double dt = xc_now() - t0;
    XC_EXPECT(rc == XC_OK, "read %s: %s", path, err.msg);
    int64_t dec, seeks;
    video_last_read_stats(v, &dec, &seeks);
    printf("  %s: %dx%d, %lld frames, %d requested, %lld decoded, %lld seeks, %.1f ms\n", path, W, H, (long long)n,
           c, (long long)dec, (long long)seeks, dt * 1e3);
    if (rc == XC_OK) {
        int64_t uniq[32];
        memcpy(uniq, idx, sizeof(int64_t) * c);
        qsort(uniq, c, sizeof *uniq, cmp_i64);
        int nu = 0;
        for (int i = 0; i < c; i++) if (i == 0 || uniq[i] != uniq[nu - 1]) uniq[nu++] = uniq[i];
        size_t len = 0;
        uint8_t *ref = ffmpeg_frames(path, uniq, nu, &len);
        XC_EXPECT(ref && len == fsize * nu, "%s: ffmpeg gave %zu bytes, want %zu", path, len, fsize * nu);
        if (ref && len == fsize * nu) {
            for (int i = 0; i < c; i++) {
                int u = 0;
                while (uniq[u] != idx[i]) u++;
                const uint8_t *a = got + fsize * i, *b = ref + fsize * u;
                size_t bad = 0; int maxd = 0;
                for (size_t k = 0; k < fsize; k++) {
                    int d = abs((int)a[k] - (int)b[k]);
                    if (d) bad++;
                    if (d > maxd) maxd = d;
                }
                XC_EXPECT(bad == 0, "%s frame %lld: %zu of %zu bytes differ from ffmpeg (max %d)", path,
                          (long long)idx[i], bad, fsize, maxd);
            }
        }
        free(ref);
    }
    // resized: REF == our resize of the native frame; SWS close to it
    int oh, ow;
    video_output_size(v, 256, &oh, &ow);
    uint8_t *small = malloc((size_t)oh * ow * 3 * 4), *mine = malloc((size_t)oh * ow * 3);
    int64_t two[2] = {0, n / 2};
    XC_EXPECT(video_read_frames(v, two, 2, 256, VIDEO_SCALE_REF, small, &err) == XC_OK, "%s", err.msg);
    tf_resize_bilinear_u8(mine, oh, ow, got + fsize * 1 /* idx[1] == 0 */, H, W, (size_t)W * 3);
    XC_EXPECT(memcmp(mine, small, (size_t)oh * ow * 3) == 0, "%s: VIDEO_SCALE_REF != resize of native frame", path);
    XC_EXPECT(video_read_frames(v, two, 2, 256, VIDEO_SCALE_SWS, small + (size_t)oh * ow * 3, &err) == XC_OK, "%s",
              err.msg);
    double sum = 0; int maxd = 0;
    for (size_t k = 0; k < (size_t)oh * ow * 3; k++) {
        int d = abs((int)small[k] - (int)small[(size_t)oh * ow * 3 + k]);
        sum += d;
        if (d > maxd) maxd = d;
    }
    double mean = sum / ((double)oh * ow * 3);
    printf("  %s: short side 256 -> %dx%d; swscale-direct vs reference bilinear: mean |diff| %.2f, max %d\n", path,
           ow, oh, mean, maxd);
    if (H > 256) XC_EXPECT(mean < 4.0, "%s: swscale direct resize too far from reference (mean %.2f)", path, mean);
    free(small); free(mine);

    // memory source gives the same frames
    size_t flen = 0;
    uint8_t *bytes = xc_read_file(path, (size_t)1 << 30, &flen, &err);
    XC_EXPECT(bytes != NULL, "%s", err.msg);
    if (bytes) {
        Video *m = video_open((VideoSource){.path = path, .mem = bytes, .mem_size = (int64_t)flen}, &lim, &err);
        XC_EXPECT(m != NULL, "mem open %s: %s", path, err.msg);
        if (m) {
            XC_EXPECT(video_frame_count(m) == n, "mem count");
            uint8_t *g2 = malloc(fsize * 2);
            int64_t two_idx[2] = {idx[0], idx[2]};
            XC_EXPECT(video_read_frames(m, two_idx, 2, 0, VIDEO_SCALE_REF, g2, &err) == XC_OK, "%s", err.msg);
            XC_EXPECT(memcmp(g2, got, fsize) == 0 && memcmp(g2 + fsize, got + 2 * fsize, fsize) == 0,
                      "%s: memory source frames differ", path);
            free(g2);
            video_close(m);
        }
        xc_free(bytes);
    }
    free(got);
    video_close(v);
}

static int make(const char *args, const char *name, char *out, size_t outn) {
    snprintf(out, outn, "%s/%s", tmpdir, name);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -nostdin -y %s '%s'", args, out);
    int rc = system(cmd);
    XC_EXPECT(rc == 0, "could not make %s with: %s", name, cmd);
    return rc == 0;
}

int main(void) {
    char buf[1024];
    const char *clips[] = {"videos/kinetics_arm_wrestling.mp4", "videos/test_h264.mp4", "videos/test_xvid.avi",
                           "videos/ntu_S001C001P001R001A001_rgb.avi"};
    for (int i = 0; i < 4; i++) check_clip(XC_SHARED(clips[i], buf), 8);

    snprintf(tmpdir, sizeof tmpdir, "/tmp/xclip_video_XXXXXX");
    XC_CHECK(mkdtemp(tmpdir), "mkdtemp");
    char p[512];
    // long clip, keyframe every 50 frames: 8 sampled frames must not decode the whole file
    if (make("-f lavfi -i testsrc=size=96x64:rate=25:duration=40 -c:v libx264 -g 50 -keyint_min 50 -sc_threshold 0 "
             "-bf 2 -pix_fmt yuv420p", "long.mp4", p, sizeof p)) {
        check_clip(p, 8);
        XcError err = {0};
        VideoLimits lim = limits_no_deadline();
        Video *v = video_open((VideoSource){.path = p}, &lim, &err);
        XC_EXPECT(v != NULL, "%s", err.msg);
        if (v) {
            int64_t n = video_frame_count(v), idx[8];
            sample_test(n, 8, idx);
            int oh, ow;
            video_output_size(v, 0, &oh, &ow);
            uint8_t *o = malloc((size_t)8 * oh * ow * 3);
            XC_EXPECT(video_read_frames(v, idx, 8, 0, VIDEO_SCALE_REF, o, &err) == XC_OK, "%s", err.msg);
            int64_t dec, seeks;
            video_last_read_stats(v, &dec, &seeks);
            printf("  long clip: %lld frames, 8 sampled -> %lld decoded, %lld seeks\n", (long long)n, (long long)dec,
                   (long long)seeks);
            XC_EXPECT(dec <= 8 * 50 && dec < n / 2, "decoded %lld of %lld frames for 8", (long long)dec, (long long)n);
            XC_EXPECT(seeks >= 4, "only %lld seeks", (long long)seeks);
            free(o);
            video_close(v);
        }
    }
    // variable frame rate: drop frames irregularly and keep the timestamps
    if (make("-f lavfi -i testsrc=size=80x60:rate=30:duration=6 -vf \"select='lt(mod(n\\,7)\\,3)+between(n\\,40\\,60)'\" "
             "-fps_mode vfr -c:v libx264 -g 12 -pix_fmt yuv420p", "vfr.mkv", p, sizeof p)) {
        check_clip(p, 8);
        XcError err = {0};
        VideoLimits lim = limits_no_deadline();
        Video *v = video_open((VideoSource){.path = p}, &lim, &err);
        if (v) {
            // the gaps between frames are not all equal
            double d1 = video_frame_time(v, 1) - video_frame_time(v, 0);
            double d3 = video_frame_time(v, 3) - video_frame_time(v, 2);
            XC_EXPECT(d3 > d1 * 2, "vfr.mkv: frame times not variable (%g, %g)", d1, d3);
            video_close(v);
        }
    }
    if (make("-f lavfi -i testsrc=size=64x48:rate=20:duration=3 -c:v libvpx-vp9 -g 10 -b:v 200k -deadline realtime",
             "clip.webm", p, sizeof p))
        check_clip(p, 8);
    if (make("-f lavfi -i testsrc=size=72x56:rate=25:duration=4 -f lavfi -i sine=duration=4 -c:v mpeg4 -g 12 -bf 2 "
             "-c:a pcm_s16le -shortest", "mp4v.avi", p, sizeof p))
        check_clip(p, 8);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return xc_test_summary("test_video_decode");
}
