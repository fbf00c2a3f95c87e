// world_video.h - actions over time in the world (data/world.h) and the video class sets built from them.
//
// A video class is an action done by a shape, sometimes of a named colour: "a red circle moving left",
// "a star fading out", "an orange square turning blue", "two hearts approaching". The 15 actions:
//   moving left / right / up / down, growing, shrinking, rotating clockwise / counterclockwise, blinking,
//   fading in, fading out, turning <colour> (a colour change X -> Y), bouncing, approaching, separating
//   (the last two: two objects of the shape move towards / away from each other).
// Every (action, shape) pair belongs to at most one product (the grid in world_video.c, printed by
// `xclip-synth world --classes` and listed in data/README.md), so the class sets of the source dataset
// (Kinetics-400 role), the two targets (HMDB-51 and UCF-101 roles) and the 3 zero-shot splits are disjoint;
// every word of a target or zero-shot class name occurs in a source class name, the (action, shape)
// combination never does.
//
//   WorldClass cls[WORLD_MAX_CLASSES];
//   int K = world_classes(WORLD_SOURCE, cls);                 // 58 classes
//   char name[96];
//   world_class_name(&cls[3], name, sizeof name);              // "a ring moving left"
//   WorldVideo v;
//   world_video_sample(&wc, WORLD_SOURCE, 3, 0, &v);           // video 0 of class 3 (from the seed)
//   uint8_t rgb[32 * 32 * 3];
//   for (int t = 0; t < v.frames; t++) {
//       WorldScene sc;
//       world_video_frame(&v, t, &sc);                         // the scene at frame t
//       world_render(&sc, wc.video_size, rgb);                 // (S, S, 3)
//   }
#pragma once
#include "data/world.h"

typedef enum WorldAction {
    WORLD_ACT_LEFT, WORLD_ACT_RIGHT, WORLD_ACT_UP, WORLD_ACT_DOWN, WORLD_ACT_GROW, WORLD_ACT_SHRINK,
    WORLD_ACT_CW, WORLD_ACT_CCW, WORLD_ACT_BLINK, WORLD_ACT_FADE_IN, WORLD_ACT_FADE_OUT, WORLD_ACT_TURN,
    WORLD_ACT_BOUNCE, WORLD_ACT_APPROACH, WORLD_ACT_SEPARATE, WORLD_ACTIONS
} WorldAction;
extern const char *const world_action_names[WORLD_ACTIONS];   // "moving left", ..., "turning", ...

typedef enum WorldProduct {
    WORLD_SOURCE,        // Kinetics-400 role: train + val
    WORLD_TARGET_HMDB,   // HMDB-51 role: train (few-shot draws) + test
    WORLD_TARGET_UCF,    // UCF-101 role
    WORLD_ZEROSHOT_1, WORLD_ZEROSHOT_2, WORLD_ZEROSHOT_3,   // held-out classes: test only
    WORLD_PRODUCTS
} WorldProduct;
extern const char *const world_product_names[WORLD_PRODUCTS];  // "source", "target_hmdb", ..., "split1", ...

enum { WORLD_MAX_CLASSES = 64 };

typedef struct WorldClass {
    int action;    // WorldAction
    int shape;
    int colour;    // named colour, or -1: any colour (each video draws one)
    int colour2;   // WORLD_ACT_TURN: the colour it turns into; else -1
} WorldClass;

// The classes of a product in label order (out holds WORLD_MAX_CLASSES); returns K.
int world_classes(WorldProduct p, WorldClass *out);
// The class name: "a red circle moving left", "two stars approaching", "an orange square turning blue".
void world_class_name(const WorldClass *c, char *buf, size_t n);
// The product letter of an (action, shape) cell of the grid: 'S' source, 'H', 'U' targets, '1'-'3' zero-shot
// splits, '.' unused.
char world_grid_cell(int action, int shape);

typedef struct WorldVideo {
    WorldClass cls;
    int frames;                 // T
    WorldScene start;           // frame 0 before the action: background, actors obj[0..actors-1], then a distractor
    int actors;                 // 1, or 2 for approaching / separating
    float from[2][2], to[2][2]; // actor centres (x, y) at the first and last frame
    float r_from, r_to;         // radius at the first and last frame (growing / shrinking)
    float spin;                 // rotation over the clip, radians (+: clockwise)
    int half_period, phase;     // blinking: frames on (= frames off), offset
    float fade_t0, fade_t1;     // fading: the part of the clip (0..1) over which the opacity changes
    float switch_at;            // turning: where in the clip (0..1) the colour changes
    float rgb2[3];              // turning: the colour after the change
    float floor_y, height, bounces;  // bouncing: resting height, jump height, number of jumps over the clip
    uint64_t noise_key;
} WorldVideo;

// Draw video `index` of class `cls` of product p (random from (seed, product, class, index)).
void world_video_sample(const WorldConfig *wc, WorldProduct p, int cls, int64_t index, WorldVideo *v);
// The scene at frame t (0..frames-1).
void world_video_frame(const WorldVideo *v, int t, WorldScene *out);
