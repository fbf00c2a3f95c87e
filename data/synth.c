// synth.c - synthetic moving-shape videos encoded with libavcodec. See synth.h.
#include "data/synth.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "autograd/rng.h"

static const char *kMotion[8] = {"moving left", "moving right", "moving up", "moving down",
                                 "growing", "shrinking", "rotating clockwise", "rotating counterclockwise"};
static const char *kColour[4] = {"red", "green", "blue", "yellow"};
static const uint8_t kRGB[4][3] = {{220, 40, 40}, {40, 190, 60}, {50, 80, 230}, {230, 210, 40}};
static const char *kShape[3] = {"circle", "square", "triangle"};

SynthConfig synth_config_default(void) {
    return (SynthConfig){.classes = 8, .per_class = 4, .val_per_class = 2, .frames = 32, .size = 96, .fps = 16,
                         .seed = 1024, .codec = NULL};
}

void synth_class_name(int c, char *buf, size_t n) {
    snprintf(buf, n, "a %s %s %s", kColour[(c / 8) % 4], kShape[(c / 32) % 3], kMotion[c % 8]);
}

typedef struct Vary { float x0, y0, speed, r0, bg, phase; } Vary;

static Vary vary_of(const SynthConfig *sc, uint64_t vseed) {
    Rng r = rng_substream(sc->seed, RNG_STREAM_DATA, 0x5157, vseed);
    Vary v;
    v.x0 = 0.35f + 0.3f * rng_uniform(&r);
    v.y0 = 0.35f + 0.3f * rng_uniform(&r);
    v.speed = 0.6f + 0.6f * rng_uniform(&r);
    v.r0 = 0.12f + 0.06f * rng_uniform(&r);
    v.bg = 30.0f + 60.0f * rng_uniform(&r);
    v.phase = 6.2831853f * rng_uniform(&r);
    return v;
}

// Inside test for the shape centred at (0,0) with radius rad, rotated by ang (in pixel units, y down).
static int inside(int shape, float x, float y, float rad, float ang) {
    float c = cosf(ang), s = sinf(ang);
    float u = c * x + s * y, w = -s * x + c * y; // rotate the point into the shape frame
    if (shape == 0) {
        if (u * u + w * w > rad * rad) return 0;
        // a notch marks the orientation of circles (so rotation is visible)
        float du = u - 0.6f * rad, dw = w;
        return du * du + dw * dw > 0.09f * rad * rad;
    }
    if (shape == 1) return fabsf(u) <= rad * 0.85f && fabsf(w) <= rad * 0.85f * (u > 0.5f * rad ? 0.5f : 1.0f);
    // triangle pointing along +u
    float t = (u + rad) / (2.0f * rad);
    return t >= 0 && t <= 1 && fabsf(w) <= rad * (1.0f - t);
}

void synth_render(const SynthConfig *sc, int c, uint64_t vseed, int t, uint8_t *rgb) {
    const int S = sc->size, motion = c % 8, colour = (c / 8) % 4, shape = (c / 32) % 3;
    Vary v = vary_of(sc, vseed);
    float p = sc->frames > 1 ? (float)t / (float)(sc->frames - 1) : 0; // 0..1 through the clip
    float cx = v.x0, cy = v.y0, rad = v.r0, ang = v.phase;
    float d = 0.3f * v.speed * (p - 0.5f);
    switch (motion) {
    case 0: cx = v.x0 - d; break;
    case 1: cx = v.x0 + d; break;
    case 2: cy = v.y0 - d; break;
    case 3: cy = v.y0 + d; break;
    case 4: rad = v.r0 * (0.6f + 0.9f * p); break;
    case 5: rad = v.r0 * (1.5f - 0.9f * p); break;
    case 6: ang = v.phase + 3.0f * v.speed * p; break;   // clockwise on screen (y down)
    default: ang = v.phase - 3.0f * v.speed * p; break;
    }
    Rng noise = rng_substream(sc->seed, RNG_STREAM_DATA, 0x6e6f, vseed * 4096 + (uint64_t)t);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            uint8_t *o = rgb + ((size_t)y * S + x) * 3;
            float px = ((float)x + 0.5f) - cx * S, py = ((float)y + 0.5f) - cy * S;
            int in = inside(shape, px, py, rad * S, ang);
            float n = 8.0f * (rng_uniform(&noise) - 0.5f);
            for (int k = 0; k < 3; k++) {
                float val = in ? (float)kRGB[colour][k] : v.bg + 0.3f * (float)y;
                val += n;
                o[k] = (uint8_t)(val < 0 ? 0 : val > 255 ? 255 : val);
            }
        }
}

int synth_encode_video(const char *path, int size, int frames, int fps, const char *codec_name, SynthRenderFn render,
                       void *ctx, XcError *err) {
    av_log_set_level(AV_LOG_ERROR);
    const AVCodec *codec = codec_name ? avcodec_find_encoder_by_name(codec_name) : avcodec_find_encoder_by_name("libx264");
    if (!codec && !codec_name) codec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!codec) return xc_err(err, "%s: encoder %s not available in this libavcodec", path, codec_name ? codec_name : "mpeg4");
    AVFormatContext *fmt = NULL;
    AVCodecContext *enc = NULL;
    AVFrame *frame = NULL;
    AVPacket *pkt = NULL;
    struct SwsContext *sws = NULL;
    uint8_t *rgb = NULL;
    int rc = XC_ERR, ret;
    char ebuf[AV_ERROR_MAX_STRING_SIZE];
    if ((ret = avformat_alloc_output_context2(&fmt, NULL, NULL, path)) < 0 || !fmt) {
        av_strerror(ret, ebuf, sizeof ebuf);
        xc_err(err, "%s: cannot choose a container from the name: %s", path, ebuf);
        goto done;
    }
    AVStream *st = avformat_new_stream(fmt, NULL);
    enc = avcodec_alloc_context3(codec);
    if (!st || !enc) xc_fatal("out of memory (encoder)");
    enc->width = enc->height = size;
    enc->time_base = (AVRational){1, fps};
    enc->framerate = (AVRational){fps, 1};
    enc->pix_fmt = AV_PIX_FMT_YUV420P;
    enc->gop_size = 8;
    enc->max_b_frames = 2;
    enc->thread_count = 1;
    if (fmt->oformat->flags & AVFMT_GLOBALHEADER) enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if (strcmp(codec->name, "libx264") == 0) {
        av_opt_set(enc->priv_data, "preset", "veryfast", 0);
        av_opt_set(enc->priv_data, "crf", "20", 0);
        // No macroblock-tree ratecontrol: x264's AVX-512 mbtree kernels work on 8 or 16 macroblocks at a time
        // and fold in bytes past the end of a row that nothing wrote, so with it the files depended on what
        // the heap held before (the output path's length, where stdout/stderr pointed, ...), not on the seed.
        if (av_opt_set(enc->priv_data, "mbtree", "0", 0) < 0) {
            xc_err(err, "%s: this libx264 wrapper has no mbtree option", path);
            goto done;
        }
    } else {
        enc->bit_rate = 400000;
    }
    if ((ret = avcodec_open2(enc, codec, NULL)) < 0) {
        av_strerror(ret, ebuf, sizeof ebuf);
        xc_err(err, "%s: cannot open encoder %s: %s", path, codec->name, ebuf);
        goto done;
    }
    avcodec_parameters_from_context(st->codecpar, enc);
    st->time_base = enc->time_base;
    if ((ret = avio_open(&fmt->pb, path, AVIO_FLAG_WRITE)) < 0) {
        av_strerror(ret, ebuf, sizeof ebuf);
        xc_err(err, "%s: cannot create: %s", path, ebuf);
        goto done;
    }
    if ((ret = avformat_write_header(fmt, NULL)) < 0) {
        av_strerror(ret, ebuf, sizeof ebuf);
        xc_err(err, "%s: cannot write the header: %s", path, ebuf);
        goto done;
    }
    frame = av_frame_alloc();
    pkt = av_packet_alloc();
    frame->format = enc->pix_fmt;
    frame->width = frame->height = size;
    if (av_frame_get_buffer(frame, 0) < 0) xc_fatal("out of memory (frame)");
    sws = sws_getContext(size, size, AV_PIX_FMT_RGB24, size, size, AV_PIX_FMT_YUV420P, SWS_BILINEAR,
                         NULL, NULL, NULL);
    const int stride = ((size + 16) * 3 + 63) & ~63;
    rgb = av_malloc((size_t)stride * (size + 2));
    uint8_t *tight = av_malloc((size_t)size * size * 3);
    for (int t = 0; t <= frames; t++) {
        AVFrame *in = NULL;
        if (t < frames) {
            render(ctx, t, tight);
            for (int y = 0; y < size; y++) memcpy(rgb + (size_t)y * stride, tight + (size_t)y * size * 3, (size_t)size * 3);
            if (av_frame_make_writable(frame) < 0) xc_fatal("av_frame_make_writable");
            const uint8_t *src[1] = {rgb};
            int sstride[1] = {stride};
            sws_scale(sws, src, sstride, 0, size, frame->data, frame->linesize);
            frame->pts = t;
            in = frame;
        }
        ret = avcodec_send_frame(enc, in);
        if (ret < 0) { av_free(tight); xc_err(err, "%s: encoding failed", path); goto done; }
        while ((ret = avcodec_receive_packet(enc, pkt)) >= 0) {
            // Every frame lasts one tick of 1/fps. libx264 leaves pkt->duration 0, and the MP4 muxer then ends the
            // track's edit list at the last frame's start time: at most frame rates (all but 16 fps) players and
            // our reader dropped the last frame.
            if (pkt->duration == 0) pkt->duration = 1;
            av_packet_rescale_ts(pkt, enc->time_base, st->time_base);
            pkt->stream_index = st->index;
            if (av_interleaved_write_frame(fmt, pkt) < 0) { av_free(tight); xc_err(err, "%s: write failed", path); goto done; }
        }
    }
    av_free(tight);
    if (av_write_trailer(fmt) < 0) { xc_err(err, "%s: cannot finish the file", path); goto done; }
    rc = XC_OK;
done:
    if (sws) sws_freeContext(sws);
    av_free(rgb);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    avcodec_free_context(&enc);
    if (fmt) {
        if (fmt->pb) avio_closep(&fmt->pb);
        avformat_free_context(fmt);
    }
    return rc;
}

typedef struct SynthCtx { const SynthConfig *sc; int c; uint64_t vseed; } SynthCtx;
static void synth_render_cb(void *ctx, int t, uint8_t *rgb) {
    const SynthCtx *s = ctx;
    synth_render(s->sc, s->c, s->vseed, t, rgb);
}

int synth_write_video(const char *path, const SynthConfig *sc, int c, uint64_t vseed, XcError *err) {
    SynthCtx ctx = {sc, c, vseed};
    return synth_encode_video(path, sc->size, sc->frames, sc->fps, sc->codec, synth_render_cb, &ctx, err);
}

static int mkdir_p(const char *path, XcError *err) { return xc_mkdir_p(path, 0755, err); } // parents too

int synth_write_dataset(const char *outdir, const SynthConfig *sc, XcError *err) {
    if (sc->classes < 1 || sc->classes > 96 || sc->per_class < 0 || sc->val_per_class < 0 || sc->frames < 1 ||
        sc->size < 16 || sc->size > 4096 || sc->fps < 1)
        return xc_err(err, "synth: bad settings (classes 1..96, per-class >= 0, frames >= 1, size 16..4096)");
    char p[4096];
    if (mkdir_p(outdir, err) != XC_OK) return XC_ERR;
    snprintf(p, sizeof p, "%s/videos", outdir);
    if (mkdir_p(p, err) != XC_OK) return XC_ERR;
    snprintf(p, sizeof p, "%s/labels.csv", outdir);
    FILE *lab = xc_fopen(p, "w", err);
    if (!lab) return XC_ERR;
    fprintf(lab, "id,name\n");
    char name[128];
    for (int c = 0; c < sc->classes; c++) { synth_class_name(c, name, sizeof name); fprintf(lab, "%d,%s\n", c, name); }
    fclose(lab);
    FILE *lists[2];
    const char *ln[2] = {"train.txt", "val.txt"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s", outdir, ln[k]);
        if (!(lists[k] = xc_fopen(p, "w", err))) { if (k) fclose(lists[0]); return XC_ERR; }
    }
    int rc = XC_OK;
    uint64_t vid = 0;
    for (int c = 0; c < sc->classes && rc == XC_OK; c++) {
        snprintf(p, sizeof p, "%s/videos/c%02d", outdir, c);
        if ((rc = mkdir_p(p, err)) != XC_OK) break;
        for (int i = 0; i < sc->per_class + sc->val_per_class && rc == XC_OK; i++, vid++) {
            int val = i >= sc->per_class;
            snprintf(p, sizeof p, "%s/videos/c%02d/%s%03d.mp4", outdir, c, val ? "val" : "train", i);
            rc = synth_write_video(p, sc, c, vid, err);
            fprintf(lists[val], "c%02d/%s%03d.mp4 %d\n", c, val ? "val" : "train", i, c);
        }
    }
    fclose(lists[0]);
    fclose(lists[1]);
    return rc;
}
