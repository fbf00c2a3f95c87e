// video.c - FFmpeg reader: packet index, sparse seek+decode, RGB24 conversion and short-side resize.
// See video.h for the contract. FFmpeg 5.1 API (send_packet / receive_frame).
#include "data/video.h"
#include "data/transforms.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/log.h>
#include <libswscale/swscale.h>

typedef struct RegionIO {   // custom AVIOContext state: a byte region of a file or a memory buffer
    int fd;                 // -1 for memory
    const uint8_t *mem;
    int64_t offset, size, pos;
    const double *deadline; // checked on every read
} RegionIO;

typedef struct FrameKey {   // one video packet of the index
    int64_t ts;             // pts (pts mode) or dts (dts mode)
    int64_t dts;            // dts or, if missing, ts: where to seek to
    int key;                // keyframe packet
} FrameKey;

struct Video {
    char path[512];
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVIOContext *avio;      // custom IO (regions, memory) or NULL
    RegionIO rio;
    int stream;
    AVRational tb;
    int width, height;
    int pts_mode;           // 1: frames identified by pts; 0: by counting from a keyframe (no pts)
    int can_seek;           // 0: always decode from the first keyframe (no pts and B-frames: see video.h)
    int64_t n;              // frame count
    int64_t *ts;            // (n) sorted frame timestamps (pts, or dts in dts mode)
    int64_t nkey;
    int64_t *key_index;     // (nkey) display index of each keyframe, ascending
    int64_t *key_seek;      // (nkey) timestamp to seek to for that keyframe (its pts, or dts in dts mode)
    double deadline;        // absolute xc_now() limit of the current call (0: none)
    double deadline_s;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
    int sws_key[5];         // w, h, fmt, out_w, out_h of the cached context
    uint8_t *conv;          // swscale output (th rows of a 64-byte aligned stride, padded)
    size_t conv_size;
    int64_t stat_decoded, stat_seeks;
};

VideoLimits video_limits_default(void) {
    return (VideoLimits){.probe_size = 5 << 20, .max_pixels = 4096LL * 2304, .max_frames = 2000000,
                         .deadline_s = 60.0};
}

static int interrupt_cb(void *opaque) {
    const Video *v = opaque;
    return v->deadline > 0 && xc_now() > v->deadline;
}

static int region_read(void *opaque, uint8_t *buf, int n) {
    RegionIO *r = opaque;
    if (r->deadline && *r->deadline > 0 && xc_now() > *r->deadline) return AVERROR_EXIT;
    int64_t left = r->size - r->pos;
    if (left <= 0) return AVERROR_EOF;
    if (n > left) n = (int)left;
    if (r->mem) {
        memcpy(buf, r->mem + r->pos, (size_t)n);
    } else {
        ssize_t got = pread(r->fd, buf, (size_t)n, (off_t)(r->offset + r->pos));
        if (got < 0) return AVERROR(errno);
        if (got == 0) return AVERROR_EOF;
        n = (int)got;
    }
    r->pos += n;
    return n;
}

static int64_t region_seek(void *opaque, int64_t off, int whence) {
    RegionIO *r = opaque;
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return r->size;
    int64_t p;
    if (whence == SEEK_SET) p = off;
    else if (whence == SEEK_CUR) p = r->pos + off;
    else if (whence == SEEK_END) p = r->size + off;
    else return AVERROR(EINVAL);
    if (p < 0) return AVERROR(EINVAL);
    r->pos = p; // past the end is allowed; reads there return EOF
    return p;
}

static int av_fail(Video *v, XcError *err, const char *what, int ret) {
    char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
    if (ret == AVERROR_EXIT || (v->deadline > 0 && xc_now() > v->deadline))
        return xc_err(err, "%s: %s: deadline of %.1f s exceeded\nHINT: the file may be damaged or very long; "
                      "raise the limit with VideoLimits.deadline_s", v->path, what, v->deadline_s);
    av_strerror(ret, buf, sizeof buf);
    return xc_err(err, "%s: %s: %s", v->path, what, buf);
}

static int cmp_key(const void *a, const void *b) {
    const FrameKey *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

static void set_deadline(Video *v) { v->deadline = v->deadline_s > 0 ? xc_now() + v->deadline_s : 0; }

// Demux every packet once (no decoding) and build the sorted frame and keyframe tables.
static int build_index(Video *v, int64_t max_frames, XcError *err) {
    int64_t cap = 1024, n = 0, with_pts = 0;
    FrameKey *keys = xc_malloc((size_t)cap * sizeof *keys);
    int ret;
    while ((ret = av_read_frame(v->fmt, v->pkt)) >= 0) {
        if (v->pkt->stream_index == v->stream && v->pkt->size > 0 &&
            (v->pkt->pts != AV_NOPTS_VALUE || v->pkt->dts != AV_NOPTS_VALUE)) {
            if (n == max_frames) {
                av_packet_unref(v->pkt);
                xc_free(keys);
                return xc_err(err, "%s: more than %lld video packets\nHINT: raise VideoLimits.max_frames", v->path,
                              (long long)max_frames);
            }
            if (n == cap) { cap *= 2; keys = xc_realloc(keys, (size_t)cap * sizeof *keys); }
            int64_t pts = v->pkt->pts, dts = v->pkt->dts;
            keys[n].ts = pts;           // NOPTS for now; fixed below in dts mode
            keys[n].dts = dts != AV_NOPTS_VALUE ? dts : pts;
            keys[n].key = (v->pkt->flags & AV_PKT_FLAG_KEY) != 0;
            with_pts += pts != AV_NOPTS_VALUE;
            n++;
        }
        av_packet_unref(v->pkt);
    }
    if (ret != AVERROR_EOF) {
        xc_free(keys);
        return av_fail(v, err, "reading packets", ret);
    }
    if (n == 0) {
        xc_free(keys);
        return xc_err(err, "%s: the video stream has no packets (empty or truncated file)", v->path);
    }
    v->pts_mode = with_pts == n;
    for (int64_t i = 0; i < n; i++) {
        if (!v->pts_mode) {
            if (keys[i].dts == AV_NOPTS_VALUE) {
                xc_free(keys);
                return xc_err(err, "%s: video packet %lld has neither pts nor dts", v->path, (long long)i);
            }
            keys[i].ts = keys[i].dts;
        }
    }
    // dts mode: packets are in decode order; their dts sorted give decode indices (= display index of a
    // keyframe under the closed-GOP assumption). pts mode: sorting pts gives display order.
    qsort(keys, (size_t)n, sizeof *keys, cmp_key);
    v->n = n;
    v->ts = xc_malloc((size_t)n * sizeof *v->ts);
    int64_t nkey = 0;
    for (int64_t i = 0; i < n; i++) { v->ts[i] = keys[i].ts; nkey += keys[i].key; }
    if (nkey == 0) { // no keyframe flags at all: treat the first frame as the only entry point
        keys[0].key = 1;
        nkey = 1;
    }
    v->key_index = xc_malloc((size_t)nkey * sizeof *v->key_index);
    v->key_seek = xc_malloc((size_t)nkey * sizeof *v->key_seek);
    v->nkey = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!keys[i].key) continue;
        v->key_index[v->nkey] = i;
        // Seek by the keyframe's pts: demuxers index keyframes by pts (mkv) or by dts shifted by the edit list
        // (mp4: the packet dts we saw can lie before the indexed time, which would land a GOP early). If a
        // demuxer lands after the wanted frame anyway, reading retries from an earlier keyframe.
        v->key_seek[v->nkey] = keys[i].ts;
        v->nkey++;
    }
    xc_free(keys);
    return XC_OK;
}

Video *video_open(VideoSource src, const VideoLimits *lim_in, XcError *err) {
    VideoLimits lim = lim_in ? *lim_in : video_limits_default();
    av_log_set_level(AV_LOG_QUIET);
    Video *v = xc_calloc(1, sizeof *v);
    snprintf(v->path, sizeof v->path, "%s", src.name ? src.name : src.path ? src.path : "<memory>");
    v->deadline_s = lim.deadline_s;
    v->rio.fd = -1;
    set_deadline(v);
    AVDictionary *opts = NULL;
    int ret;

    if (!src.mem && src.path) { // refuse directories and specials early with a clear message
        struct stat st;
        if (stat(src.path, &st) != 0) {
            xc_err(err, "%s: cannot open: %s", v->path, strerror(errno));
            goto fail;
        }
        if (!S_ISREG(st.st_mode)) {
            xc_err(err, "%s: not a regular file", v->path);
            goto fail;
        }
        if (!src.is_region && st.st_size == 0) {
            xc_err(err, "%s: empty file (0 bytes)", v->path);
            goto fail;
        }
        if (src.is_region && (src.offset < 0 || src.size < 0 || src.offset + src.size > st.st_size)) {
            xc_err(err, "%s: region [%lld, +%lld) lies outside the file (%lld bytes)", v->path,
                   (long long)src.offset, (long long)src.size, (long long)st.st_size);
            goto fail;
        }
    }
    v->fmt = avformat_alloc_context();
    if (!v->fmt) xc_fatal("out of memory (avformat_alloc_context)");
    v->fmt->probesize = lim.probe_size;
    v->fmt->interrupt_callback = (AVIOInterruptCB){interrupt_cb, v};
    v->fmt->protocol_whitelist = av_strdup("file");
    if (src.mem || src.is_region) {
        v->rio.deadline = &v->deadline;
        if (src.mem) {
            v->rio.mem = src.mem;
            v->rio.size = src.mem_size;
        } else {
            v->rio.fd = open(src.path, O_RDONLY | O_CLOEXEC);
            if (v->rio.fd < 0) {
                xc_err(err, "%s: cannot open: %s", v->path, strerror(errno));
                goto fail;
            }
            v->rio.offset = src.offset;
            v->rio.size = src.size;
        }
        if (v->rio.size <= 0) {
            xc_err(err, "%s: empty file (0 bytes)", v->path);
            goto fail;
        }
        const int bufsize = 64 * 1024;
        uint8_t *buf = av_malloc(bufsize);
        if (!buf) xc_fatal("out of memory (avio buffer)");
        v->avio = avio_alloc_context(buf, bufsize, 0, &v->rio, region_read, NULL, region_seek);
        if (!v->avio) xc_fatal("out of memory (avio_alloc_context)");
        v->fmt->pb = v->avio;
        v->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    }
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    ret = avformat_open_input(&v->fmt, v->avio ? NULL : src.path, NULL, &opts);
    av_dict_free(&opts);
    if (ret < 0) { // avformat_open_input frees the context on failure
        v->fmt = NULL;
        av_fail(v, err, "not a readable media file", ret);
        goto fail;
    }
    ret = avformat_find_stream_info(v->fmt, NULL);
    if (ret < 0) {
        av_fail(v, err, "cannot read stream information", ret);
        goto fail;
    }
    const AVCodec *codec = NULL;
    v->stream = av_find_best_stream(v->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (v->stream < 0) {
        if (v->stream == AVERROR_DECODER_NOT_FOUND)
            xc_err(err, "%s: no decoder for the video stream's codec", v->path);
        else
            xc_err(err, "%s: no video stream (audio-only or not a video file)", v->path);
        goto fail;
    }
    AVStream *st = v->fmt->streams[v->stream];
    for (unsigned i = 0; i < v->fmt->nb_streams; i++)
        if ((int)i != v->stream) v->fmt->streams[i]->discard = AVDISCARD_ALL;
    v->tb = st->time_base;
    v->width = st->codecpar->width;
    v->height = st->codecpar->height;
    if (v->width <= 0 || v->height <= 0) {
        xc_err(err, "%s: video stream has no frame size (%dx%d)", v->path, v->width, v->height);
        goto fail;
    }
    if ((int64_t)v->width * v->height > lim.max_pixels) {
        xc_err(err, "%s: frame size %dx%d exceeds the limit of %lld pixels\nHINT: raise VideoLimits.max_pixels",
               v->path, v->width, v->height, (long long)lim.max_pixels);
        goto fail;
    }
    v->dec = avcodec_alloc_context3(codec);
    if (!v->dec) xc_fatal("out of memory (avcodec_alloc_context3)");
    ret = avcodec_parameters_to_context(v->dec, st->codecpar);
    if (ret < 0) {
        av_fail(v, err, "bad codec parameters", ret);
        goto fail;
    }
    v->dec->thread_count = 1; // the loader parallelises over videos
    v->dec->max_pixels = lim.max_pixels;
    v->dec->pkt_timebase = st->time_base;
    ret = avcodec_open2(v->dec, codec, NULL);
    if (ret < 0) {
        av_fail(v, err, "cannot open the video decoder", ret);
        goto fail;
    }
    v->pkt = av_packet_alloc();
    v->frame = av_frame_alloc();
    if (!v->pkt || !v->frame) xc_fatal("out of memory (packet/frame)");
    if (build_index(v, lim.max_frames, err) != XC_OK) goto fail;
    // Without pts, frames are identified by counting from a keyframe, which is only sound when display order is
    // decode order; with B-frames (reordering) an AVI is decoded from its start.
    v->can_seek = v->pts_mode || (st->codecpar->video_delay == 0 && v->dec->has_b_frames == 0);
    v->deadline = 0;
    return v;
fail:
    video_close(v);
    return NULL;
}

void video_close(Video *v) {
    if (!v) return;
    if (v->sws) sws_freeContext(v->sws);
    av_frame_free(&v->frame);
    av_packet_free(&v->pkt);
    avcodec_free_context(&v->dec);
    if (v->fmt) avformat_close_input(&v->fmt);
    if (v->avio) {
        av_freep(&v->avio->buffer);
        avio_context_free(&v->avio);
    }
    if (v->rio.fd >= 0) close(v->rio.fd);
    xc_free(v->ts);
    xc_free(v->key_index);
    xc_free(v->key_seek);
    av_free(v->conv);
    xc_free(v);
}

int64_t video_frame_count(const Video *v) { return v->n; }
int video_width(const Video *v) { return v->width; }
int video_height(const Video *v) { return v->height; }

double video_frame_time(const Video *v, int64_t i) {
    if (!v->pts_mode || i < 0 || i >= v->n) return -1;
    return (double)(v->ts[i] - v->ts[0]) * av_q2d(v->tb);
}

void video_output_size(const Video *v, int short_side, int *out_h, int *out_w) {
    if (short_side <= 0) { *out_h = v->height; *out_w = v->width; return; }
    double scale = (double)short_side / (double)(v->width < v->height ? v->width : v->height);
    *out_w = (int)((double)v->width * scale + 0.5);
    *out_h = (int)((double)v->height * scale + 0.5);
    if (*out_w < 1) *out_w = 1;
    if (*out_h < 1) *out_h = 1;
}

void video_last_read_stats(const Video *v, int64_t *decoded, int64_t *seeks) {
    if (decoded) *decoded = v->stat_decoded;
    if (seeks) *seeks = v->stat_seeks;
}

// Index of the frame with timestamp ts, or -1.
static int64_t find_ts(const Video *v, int64_t ts) {
    int64_t lo = 0, hi = v->n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v->ts[mid] == ts) {
            while (mid > 0 && v->ts[mid - 1] == ts) mid--;
            return mid;
        }
        if (v->ts[mid] < ts) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

// Position in key_index of the last keyframe with display index <= i (0 if none).
static int64_t key_before(const Video *v, int64_t i) {
    int64_t lo = 0, hi = v->nkey - 1, best = 0;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v->key_index[mid] <= i) { best = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return best;
}

// Convert v->frame into dst (oh, ow, 3).
static int convert_frame(Video *v, int oh, int ow, VideoScale scale, uint8_t *dst, XcError *err) {
    AVFrame *f = v->frame;
    if (f->width != v->width || f->height != v->height) // mid-stream size changes are not supported
        return xc_err(err, "%s: frame size changed mid-stream (%dx%d -> %dx%d)", v->path, v->width, v->height,
                      f->width, f->height);
    int direct = scale == VIDEO_SCALE_SWS || (oh == v->height && ow == v->width);
    int tw = direct ? ow : v->width, th = direct ? oh : v->height;
    int key[5] = {f->width, f->height, f->format, tw, th};
    if (!v->sws || memcmp(key, v->sws_key, sizeof key) != 0) {
        if (v->sws) sws_freeContext(v->sws);
        v->sws = sws_getContext(f->width, f->height, f->format, tw, th, AV_PIX_FMT_RGB24, SWS_BILINEAR, NULL, NULL,
                                NULL);
        if (!v->sws) return xc_err(err, "%s: cannot convert pixel format %s to RGB24", v->path,
                                   av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?");
        memcpy(v->sws_key, key, sizeof key);
    }
    // The colour matrix and range of the frame, as FFmpeg's scale filter picks them ("auto").
    {
        const int *coef = sws_getCoefficients(f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : f->colorspace);
        int *inv_table, *table, src_range, dst_range, brightness, contrast, saturation;
        if (sws_getColorspaceDetails(v->sws, &inv_table, &src_range, &table, &dst_range, &brightness, &contrast,
                                     &saturation) >= 0) {
            int want_range = f->color_range == AVCOL_RANGE_JPEG ? 1 : src_range;
            sws_setColorspaceDetails(v->sws, coef, want_range, table, dst_range, brightness, contrast, saturation);
        }
    }
    // swscale's SIMD code writes whole blocks of 8 pixels and silently skips the last block when the rounded-up
    // row does not fit the stride; convert into our own buffer with 16 spare pixels per row, 64-byte aligned.
    const int stride = ((tw + 16) * 3 + 63) & ~63;
    const size_t need = (size_t)stride * (th + 2) + 64;
    if (need > v->conv_size) {
        av_free(v->conv);
        v->conv = av_malloc(need);
        if (!v->conv) xc_fatal("out of memory (%zu bytes for a frame)", need);
        v->conv_size = need;
    }
    uint8_t *planes[4] = {v->conv, NULL, NULL, NULL};
    int strides[4] = {stride, 0, 0, 0};
    int got = sws_scale(v->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, planes, strides);
    if (got != th) return xc_err(err, "%s: pixel conversion failed", v->path);
    if (direct) {
        for (int y = 0; y < th; y++) memcpy(dst + (size_t)y * tw * 3, v->conv + (size_t)y * stride, (size_t)tw * 3);
    } else {
        tf_resize_bilinear_u8(dst, oh, ow, v->conv, v->height, v->width, (size_t)stride);
    }
    return XC_OK;
}

typedef struct Want { int64_t frame; int slot; } Want;
static int cmp_want(const void *a, const void *b) {
    const Want *x = a, *y = b;
    if (x->frame != y->frame) return (x->frame > y->frame) - (x->frame < y->frame);
    return x->slot - y->slot;
}

// Seek so that decoding restarts at keyframe number k of the index.
static int seek_key(Video *v, int64_t k, XcError *err) {
    int ret = av_seek_frame(v->fmt, v->stream, v->key_seek[k], AVSEEK_FLAG_BACKWARD);
    if (ret < 0) ret = avformat_seek_file(v->fmt, v->stream, INT64_MIN, v->key_seek[k], v->key_seek[k], 0);
    if (ret < 0) return av_fail(v, err, "seek failed", ret);
    avcodec_flush_buffers(v->dec);
    v->stat_seeks++;
    return XC_OK;
}

int video_read_frames(Video *v, const int64_t *idx, int count, int short_side, VideoScale scale, uint8_t *out,
                      XcError *err) {
    XC_CHECK(count >= 0 && (count == 0 || (idx && out)), "video_read_frames: bad arguments");
    v->stat_decoded = v->stat_seeks = 0;
    if (count == 0) return XC_OK;
    for (int i = 0; i < count; i++)
        XC_CHECK(idx[i] >= 0 && idx[i] < v->n, "video_read_frames: index %lld outside [0, %lld)",
                 (long long)idx[i], (long long)v->n);
    int oh, ow;
    video_output_size(v, short_side, &oh, &ow);
    const size_t fsize = (size_t)oh * ow * 3;
    set_deadline(v);
    Want *want = xc_malloc((size_t)count * sizeof *want);
    for (int i = 0; i < count; i++) want[i] = (Want){idx[i], i};
    qsort(want, (size_t)count, sizeof *want, cmp_want);

    int rc = XC_ERR;
    int w = 0;              // next entry of want to fill
    int64_t cur = -1;       // display index of the last frame decoded since the last seek (-1: none)
    int64_t counter = -1;   // dts mode: display index of the next output frame
    int positioned = 0, draining = 0, retries = 0;
    int64_t kpos = -1;      // keyframe (position in key tables) decoding restarted at
    while (w < count) {
        int64_t target = want[w].frame;
        int64_t kb = v->can_seek ? key_before(v, target) : 0;
        // (re)seek when nothing is decoded yet, or when the keyframe before the target lies beyond the current
        // position (decoding forward would pass through a whole GOP for nothing); not while retrying.
        if (!positioned || (!retries && kb > kpos && v->key_index[kb] > cur)) {
            kpos = kb;
            if (seek_key(v, kpos, err) != XC_OK) goto done;
            positioned = 1;
            draining = 0;
            cur = -1;
            counter = -1;
        }
        // receive frames until one with index >= target
        int ret = avcodec_receive_frame(v->dec, v->frame);
        if (ret == AVERROR(EAGAIN)) {
            if (draining) { ret = AVERROR_EOF; goto eof; }
            ret = av_read_frame(v->fmt, v->pkt);
            if (ret == AVERROR_EOF) {
                draining = 1;
                ret = avcodec_send_packet(v->dec, NULL);
                if (ret < 0 && ret != AVERROR_EOF) { av_fail(v, err, "flushing the decoder", ret); goto done; }
                continue;
            }
            if (ret < 0) { av_fail(v, err, "reading packets", ret); goto done; }
            if (v->pkt->stream_index != v->stream || v->pkt->size == 0) { av_packet_unref(v->pkt); continue; }
            if (!v->pts_mode && counter < 0) { // dts mode: start counting at the first keyframe after the seek
                if (!(v->pkt->flags & AV_PKT_FLAG_KEY) || v->pkt->dts == AV_NOPTS_VALUE) {
                    av_packet_unref(v->pkt);
                    continue;
                }
                counter = find_ts(v, v->pkt->dts);
                if (counter < 0) { av_packet_unref(v->pkt); continue; }
            }
            ret = avcodec_send_packet(v->dec, v->pkt);
            av_packet_unref(v->pkt);
            if (ret < 0 && ret != AVERROR(EAGAIN) && ret != AVERROR_INVALIDDATA) {
                av_fail(v, err, "decoding", ret);
                goto done;
            }
            if (v->deadline > 0 && xc_now() > v->deadline) { av_fail(v, err, "decoding", AVERROR_EXIT); goto done; }
            continue;
        }
    eof:
        if (ret == AVERROR_EOF) {
            // The stream ended before the target appeared: restart from an earlier keyframe once, then give up.
            if (v->can_seek && retries < 2 && kpos > 0) {
                retries++;
                kpos = retries == 1 ? kpos - 1 : 0;
                if (seek_key(v, kpos, err) != XC_OK) goto done;
                draining = 0; cur = -1; counter = -1;
                continue;
            }
            xc_err(err, "%s: frame %lld of %lld could not be decoded (stream ends early or is damaged)", v->path,
                   (long long)target, (long long)v->n);
            goto done;
        }
        if (ret < 0) { av_fail(v, err, "decoding", ret); goto done; }
        v->stat_decoded++;
        int64_t fi = -1;
        if (v->pts_mode) {
            int64_t t = v->frame->pts != AV_NOPTS_VALUE ? v->frame->pts : v->frame->best_effort_timestamp;
            if (t != AV_NOPTS_VALUE) fi = find_ts(v, t);
        } else if (counter >= 0) {
            fi = counter++;
        }
        if (fi < 0) { av_frame_unref(v->frame); continue; } // unknown frame (damaged timestamps): skip
        if (fi < target) { cur = fi; av_frame_unref(v->frame); continue; }
        if (fi > target) {
            // Seek landed after the target (index/keyframe flags disagree with the stream): go back further.
            av_frame_unref(v->frame);
            if (v->can_seek && retries < 2 && kpos > 0) {
                retries++;
                kpos = retries == 1 ? kpos - 1 : 0;
                if (seek_key(v, kpos, err) != XC_OK) goto done;
                draining = 0; cur = -1; counter = -1;
                continue;
            }
            xc_err(err, "%s: frame %lld could not be reached by seeking (decoding restarts at frame %lld)", v->path,
                   (long long)target, (long long)fi);
            goto done;
        }
        cur = fi;
        if (convert_frame(v, oh, ow, scale, out + (size_t)want[w].slot * fsize, err) != XC_OK) {
            av_frame_unref(v->frame);
            goto done;
        }
        av_frame_unref(v->frame);
        w++;
        while (w < count && want[w].frame == fi) { // repeated indices: copy
            memcpy(out + (size_t)want[w].slot * fsize, out + (size_t)want[w - 1].slot * fsize, fsize);
            w++;
        }
        retries = 0;
    }
    rc = XC_OK;
done:
    xc_free(want);
    v->deadline = 0;
    return rc;
}
