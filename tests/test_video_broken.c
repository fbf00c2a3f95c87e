// test_video_broken.c - damaged and wrong inputs made at run time from the real clips: every one is either
// refused with "path: reason" or (for damage the decoder conceals) read without crashing; under ASan this
// proves there are no memory errors. Also: a deadline of 1 ms stops a read, and tar regions are bounded.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autograd/rng.h"
#include "data/video.h"
#include "tests/test_util.h"

static char dir[64];

static uint8_t *src_bytes[2];
static size_t src_len[2];

static void put(const char *name, const uint8_t *b, size_t n, char *out) {
    sprintf(out, "%s/%s", dir, name);
    FILE *f = fopen(out, "wb");
    if (n) fwrite(b, 1, n, f);
    fclose(f);
}

// Open and read 4 frames; returns 1 if refused with a message naming the file, 2 if read fine, 0 on a bad message.
// must_fail: 1 the file must be refused, 0 either outcome, -1 a valid file that must read (the caller checks the 2):
// damaged files get a 20 s deadline (a hang in the decoder fails as a refusal, not as a CTest timeout), a valid one
// none, so a slow or loaded machine cannot fail the test.
static int attempt(const char *path, const char *what, int must_fail) {
    XcError err = {{0}};
    VideoLimits lim = video_limits_default();
    lim.deadline_s = must_fail < 0 ? 0 : 20;
    Video *v = video_open((VideoSource){.path = path}, &lim, &err);
    int result;
    if (v) {
        int64_t n = video_frame_count(v), idx[4] = {0, n / 3, (2 * n) / 3, n - 1};
        int oh, ow;
        video_output_size(v, 64, &oh, &ow);
        uint8_t *o = malloc((size_t)4 * oh * ow * 3);
        int rc = video_read_frames(v, idx, 4, 64, VIDEO_SCALE_REF, o, &err);
        free(o);
        video_close(v);
        result = rc == XC_OK ? 2 : 1;
    } else {
        result = 1;
    }
    if (result == 1) {
        XC_EXPECT(strstr(err.msg, path) != NULL && strlen(err.msg) > strlen(path) + 4, "%s: message `%s` must name the file and a reason", what, err.msg);
        char *nl = strchr(err.msg, '\n');
        if (nl) *nl = 0;
        printf("  %-28s refused: %s\n", what, strncmp(err.msg, dir, strlen(dir)) == 0 ? err.msg + strlen(dir) + 1 : err.msg);
    } else {
        printf("  %-28s read (damage concealed by the decoder)\n", what);
    }
    if (must_fail > 0) XC_EXPECT(result == 1, "%s: accepted but must be refused", what);
    return result;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/xclip_broken_XXXXXX");
    XC_CHECK(mkdtemp(dir), "mkdtemp");
    char buf[512], p[512], cmd[1200];
    const char *clips[2] = {"videos/kinetics_arm_wrestling.mp4", "videos/test_xvid.avi"};
    XcError err = {{0}};
    for (int i = 0; i < 2; i++) {
        src_bytes[i] = xc_read_file(XC_SHARED(clips[i], buf), 1 << 26, &src_len[i], &err);
        XC_EXPECT(src_bytes[i] != NULL, "%s", err.msg);
        if (!src_bytes[i]) return xc_test_summary("test_video_broken");
    }
    int cases = 0;
    const char *ext[2] = {"mp4", "avi"};
    // truncations at several points
    const double cuts[] = {0.001, 0.01, 0.05, 0.3, 0.7, 0.97};
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 6; c++) {
            char name[64];
            snprintf(name, sizeof name, "trunc_%d_%02d.%s", i, (int)(cuts[c] * 100), ext[i]);
            put(name, src_bytes[i], (size_t)(cuts[c] * (double)src_len[i]), p);
            attempt(p, name, c < 2);
            cases++;
        }
    // bit flips (seeded) at several densities, and a flipped header
    Rng r = rng_stream(3, RNG_STREAM_TEST);
    for (int i = 0; i < 2; i++)
        for (int d = 0; d < 3; d++) {
            uint8_t *b = malloc(src_len[i]);
            memcpy(b, src_bytes[i], src_len[i]);
            int flips = d == 0 ? 10 : d == 1 ? 200 : 5000;
            for (int k = 0; k < flips; k++) b[rng_below(&r, src_len[i])] ^= (uint8_t)(1u << rng_below(&r, 8));
            char name[64];
            snprintf(name, sizeof name, "flips_%d_%d.%s", i, flips, ext[i]);
            put(name, b, src_len[i], p);
            attempt(p, name, 0);
            free(b);
            cases++;
        }
    for (int i = 0; i < 2; i++) {
        uint8_t *b = malloc(src_len[i]);
        memcpy(b, src_bytes[i], src_len[i]);
        for (int k = 0; k < 64; k++) b[k] ^= 0x5a;
        char name[64];
        snprintf(name, sizeof name, "header_flipped.%s", ext[i]);
        put(name, b, src_len[i], p);
        attempt(p, name, 0);
        free(b);
        cases++;
    }
    // random bytes, zero bytes, empty, header only
    {
        uint8_t *b = malloc(300000);
        for (int k = 0; k < 300000; k++) b[k] = (uint8_t)rng_u32(&r);
        put("random.mp4", b, 300000, p); attempt(p, "random bytes .mp4", 1); cases++;
        memset(b, 0, 300000);
        put("zeros.mp4", b, 300000, p); attempt(p, "zero bytes .mp4", 1); cases++;
        put("empty.mp4", b, 0, p); attempt(p, "empty file", 1); cases++;
        free(b);
        put("header_only.mp4", src_bytes[0], 2048, p); attempt(p, "first 2 KB of an mp4", 1); cases++;
        put("text.avi", (const uint8_t *)"this is not a video\n", 20, p); attempt(p, "text file .avi", 1); cases++;
    }
    // wrong extension (content is fine: FFmpeg probes the content, so it must read)
    put("really_mp4.avi", src_bytes[0], src_len[0], p);
    XC_EXPECT(attempt(p, "mp4 named .avi", -1) == 2, "a valid mp4 named .avi must read");
    cases++;
    put("really_avi.webm", src_bytes[1], src_len[1], p);
    XC_EXPECT(attempt(p, "avi named .webm", -1) == 2, "a valid avi named .webm must read");
    cases++;
    // a directory, a missing file, a FIFO-like special path
    sprintf(p, "%s/adir.mp4", dir); mkdir(p, 0755); attempt(p, "directory", 1); cases++;
    sprintf(p, "%s/missing.mp4", dir); attempt(p, "missing file", 1); cases++;
    attempt("/dev/null", "/dev/null", 1); cases++;
    // audio only (from the avi's MP3 track) and an image
    snprintf(p, sizeof p, "%s/audio_only.mkv", dir);
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -nostdin -y -i '%s' -vn -c:a copy '%s'", XC_SHARED(clips[1], buf), p);
    if (system(cmd) == 0) { attempt(p, "audio-only mkv (ffmpeg -vn)", 1); cases++; }
    snprintf(p, sizeof p, "%s/audio_only.mp3", dir);
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -nostdin -y -i '%s' -vn -c:a copy '%s'", XC_SHARED(clips[1], buf), p);
    if (system(cmd) == 0) { attempt(p, "audio-only mp3", 1); cases++; }
    // mp4 with the moov box cut off at the end (ffmpeg writes moov at the end by default)
    snprintf(p, sizeof p, "%s/tail_cut.mp4", dir);
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -nostdin -y -f lavfi -i testsrc=size=64x48:rate=10:duration=2 -c:v libx264 '%s' && truncate -s -200 '%s'", p, p);
    if (system(cmd) == 0) { attempt(p, "mp4 with moov cut", 1); cases++; }
    // a frame size over the limit
    {
        VideoLimits lim = video_limits_default();
        lim.max_pixels = 1000;
        Video *v = video_open((VideoSource){.path = XC_SHARED(clips[0], buf)}, &lim, &err);
        XC_EXPECT(v == NULL && strstr(err.msg, "exceeds the limit"), "max_pixels: %s", err.msg);
        cases++;
    }
    // tar region outside the file, memory region of a truncated file
    {
        Video *v = video_open((VideoSource){.path = XC_SHARED(clips[0], buf), .is_region = 1, .offset = 100,
                                            .size = (int64_t)src_len[0]}, NULL, &err);
        XC_EXPECT(v == NULL && strstr(err.msg, "outside the file"), "region: %s", err.msg);
        v = video_open((VideoSource){.path = "mem", .mem = src_bytes[0], .mem_size = 5000}, NULL, &err);
        if (v) video_close(v);
        cases++;
    }
    // deadline: 1 microsecond cannot be met
    {
        VideoLimits lim = video_limits_default();
        lim.deadline_s = 1e-6;
        Video *v = video_open((VideoSource){.path = XC_SHARED(clips[0], buf)}, &lim, &err);
        XC_EXPECT(v == NULL && strstr(err.msg, "deadline"), "deadline: %s", v ? "opened" : err.msg);
        video_close(v);
        cases++;
    }
    printf("  %d broken or unusual inputs tried\n", cases);
    XC_EXPECT(cases >= 20, "only %d cases", cases);
    xc_free(src_bytes[0]);
    xc_free(src_bytes[1]);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return xc_test_summary("test_video_broken");
}
