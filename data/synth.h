// synth.h - a labelled synthetic video dataset encoded with libavcodec (for tests, smoke runs and demos).
//
// Class c combines a motion (c % 8: moving left, moving right, moving up, moving down, growing, shrinking,
// rotating clockwise, rotating counterclockwise), a colour ((c / 8) % 4: red, green, blue, yellow) and a shape
// ((c / 32) % 3: circle, square, triangle), named in plain English for the CLIP text encoder, e.g.
// "a red circle moving left", "a blue square growing". Telling left from right, growing from shrinking or
// clockwise from counterclockwise needs the frame order; colour and shape differ by appearance. Each video draws
// its start position, speed, size, background and noise from (seed, video number).
//
//   SynthConfig sc = synth_config_default();
//   sc.classes = 8; sc.per_class = 4; sc.val_per_class = 2;
//   if (synth_write_dataset("/tmp/synth", &sc, &err) != XC_OK) ...;
//   // writes /tmp/synth/videos/<class>/<n>.mp4, train.txt and val.txt (relative to videos/), labels.csv
#pragma once
#include <stdint.h>
#include "autograd/util.h"

typedef struct SynthConfig {
    int classes;        // K (<= 96)
    int per_class;      // training videos per class
    int val_per_class;  // validation videos per class
    int frames;         // frames per video
    int size;           // frame width and height
    int fps;
    uint64_t seed;
    const char *codec;  // encoder name; NULL: libx264 if this libavcodec has it, else mpeg4
} SynthConfig;

SynthConfig synth_config_default(void);
// The name of class c (written into buf of n bytes).
void synth_class_name(int c, char *buf, size_t n);
// Render frame t of a video of class c with variation seed vseed: rgb (size, size, 3).
void synth_render(const SynthConfig *sc, int c, uint64_t vseed, int t, uint8_t *rgb);
// Encode one video.
int synth_write_video(const char *path, const SynthConfig *sc, int c, uint64_t vseed, XcError *err);
// The encoder behind it, for any frames: render(ctx, t, rgb) draws frame t into rgb (size, size, 3); the video is
// written to path (the container follows the name) at fps with codec_name (NULL: libx264 if this libavcodec has
// it, else mpeg4; libx264 runs single-threaded without macroblock-tree, so the bytes depend only on the frames).
typedef void (*SynthRenderFn)(void *ctx, int t, uint8_t *rgb);
int synth_encode_video(const char *path, int size, int frames, int fps, const char *codec_name, SynthRenderFn render,
                       void *ctx, XcError *err);
int synth_write_dataset(const char *outdir, const SynthConfig *sc, XcError *err);
