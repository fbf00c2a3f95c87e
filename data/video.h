// video.h - frame-exact sparse video reading with FFmpeg (libavformat/libavcodec/libswscale).
//
// A video is opened, its video stream's packets are indexed once by a demux pass (no decoding): the frame
// count and each frame's position come from the packet timestamps (pts of every video packet, sorted; frame i
// is the i-th smallest pts), never from the container's nb_frames or fps x duration, so variable frame rate and
// lying headers are handled. Reading then decodes only what the requested indices need: it seeks to the
// keyframe before the first wanted frame, decodes forward, and seeks again when the keyframe before the next
// wanted frame lies after the current position. Frames come out as RGB24 with the short side resized to a given
// length (the first Resize of the X-CLIP pipeline, docs/model.md §8).
//
//   XcError err = {0};
//   VideoLimits lim = video_limits_default();
//   Video *v = video_open((VideoSource){.path = "clip.mp4"}, &lim, &err);
//   if (!v) { fprintf(stderr, "%s\n", err.msg); return 1; }
//   int64_t n = video_frame_count(v);
//   int64_t idx[8] = {0, 35, 70, 105, 140, 175, 210, 245};     // e.g. from sample_train()
//   int oh, ow;
//   video_output_size(v, 256, &oh, &ow);                         // short side 256, mmcv rounding
//   uint8_t *rgb = malloc((size_t)8 * oh * ow * 3);              // (T, oh, ow, 3)
//   if (video_read_frames(v, idx, 8, 256, VIDEO_SCALE_REF, rgb, &err) != XC_OK) ...;
//   video_close(v);
//
// Sources: a file (FFmpeg's "file" protocol only, never network), a byte region of a file (a member of an
// uncompressed .tar, read in place through a custom AVIOContext), or a memory buffer.
// Untrusted input: probe size, pixel count, packet count and a per-call deadline are limited (VideoLimits);
// every failure returns XC_ERR with "path: reason" in err and never crashes.
//
// Frame identity: when every video packet carries a pts (mp4, mkv, webm), decoded frames are matched to indices
// by their pts. Streams without pts (AVI) have only decode timestamps: frames are counted in output order from a
// keyframe. Seeking is then used only when the stream has no B-frames (display order = decode order); an AVI
// with B-frames (xvid, x264) is decoded from its first keyframe, like the ffmpeg program numbers its frames.
// Not handled: sample aspect ratio and rotation metadata are ignored (as decord does).
#pragma once
#include <stdint.h>
#include "autograd/util.h"

typedef struct VideoSource {
    const char *path;      // file to read
    const char *name;      // name used in messages (NULL: path), e.g. "videos.tar:a/b.mp4" for a tar member
    int is_region;         // 1: read only the bytes [offset, offset + size) of the file (a tar member)
    int64_t offset;        // region start
    int64_t size;          // region length
    const uint8_t *mem;    // if non-NULL: read from this memory buffer of mem_size bytes instead of a file
    int64_t mem_size;
} VideoSource;

typedef struct VideoLimits {
    int64_t probe_size;    // bytes libavformat may read to detect the format (default 5 MB)
    int64_t max_pixels;    // width*height above this is refused (default 4096*2304)
    int64_t max_frames;    // video packets above this are refused (default 2,000,000)
    double deadline_s;     // wall-clock limit for each open or read call (default 60 s; <= 0: none)
} VideoLimits;

typedef enum VideoScale {
    // swscale converts to RGB24 at native size, then the short side is resized with OpenCV's INTER_LINEAR
    // geometry (half-pixel centres, no antialiasing, edge clamp) as mmcv.imresize does in the reference; the
    // result is within 1 level of cv2's fixed-point output and within 0.5 of the exact float interpolation.
    VIDEO_SCALE_REF = 0,
    // swscale converts and scales in one pass (SWS_BILINEAR, which low-pass filters when shrinking): faster for
    // large videos, but differs from the reference on fine detail (see tests/test_video_decode.c for figures).
    VIDEO_SCALE_SWS = 1,
} VideoScale;

typedef struct Video Video; // opaque

VideoLimits video_limits_default(void);

// Open and index. NULL + err ("path: reason") if the file is missing, not a video, has no decodable video
// stream, exceeds a limit, has no timestamps or no frames, or the deadline passes.
Video *video_open(VideoSource src, const VideoLimits *lim, XcError *err);
void video_close(Video *v);

int64_t video_frame_count(const Video *v);
int video_width(const Video *v);   // native size (coded frame size of the stream)
int video_height(const Video *v);
// Presentation timestamp of frame i in seconds (for tests and tools), or -1 if the stream has no pts.
double video_frame_time(const Video *v, int64_t i);

// Output size after resizing the short side to short_side (<= 0: native), as mmcv.rescale_size:
// scale = short_side / min(w, h), out = int(w*scale + 0.5) x int(h*scale + 0.5).
void video_output_size(const Video *v, int short_side, int *out_h, int *out_w);

// Decode the frames idx[0..count-1] (any order, repeats allowed, each in [0, frame_count)) into
// out (count, out_h, out_w, 3) RGB24. Decodes only what is needed (see above). XC_ERR + err on failure.
int video_read_frames(Video *v, const int64_t *idx, int count, int short_side, VideoScale scale, uint8_t *out,
                      XcError *err);

// Statistics of the last video_read_frames call: frames decoded and seeks made (for tests and benchmarks).
void video_last_read_stats(const Video *v, int64_t *decoded, int64_t *seeks);
