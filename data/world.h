// world.h - a compositional visual world described in words: scenes of 1-3 coloured shapes on plain, noisy,
// striped or checkered backgrounds, rendered to RGB and captioned by a small English grammar. It makes the
// captioned images that pretrain the project's own small CLIP, and (data/world_video.h) the video datasets in
// the roles of Kinetics-400, HMDB-51, UCF-101 and the zero-shot splits. data/README.md documents the grammar,
// the products and every split.
//
// Vocabulary (ids are the label ids of the products' CSVs):
//   colour   red orange yellow green cyan blue purple pink                (8)
//   shape    circle square triangle diamond star cross ring heart         (8)
//   size     small big                                                   (2)
//   position top left, top, top right, left, center, right, bottom left, bottom, bottom right (3x3 grid, 9)
//   background plain noisy striped checkered                             (4)
// 8 of the 64 colour-shape combinations (world_combo_unseen) never occur in training or validation images
// nor in any caption of them: only the probe split shows them.
//
// Everything is a pure function of (seed, split, index): images can be rendered on the fly by a loader or
// read back from the files world_write stores (byte-identical to rendering them again).
//
//   WorldConfig wc = world_config_default();          // seed 1024, 32x32 images, 100000 training images ...
//   WorldScene sc;
//   world_image_scene(&wc, WORLD_IMG_TRAIN, 17, &sc);   // the scene of training image 17
//   uint8_t rgb[32 * 32 * 3];                           // (S, S, 3), S = wc.image_size
//   world_render(&sc, wc.image_size, rgb);
//   char cap[WORLD_CAPTION_MAX];
//   world_image_caption(&wc, WORLD_IMG_TRAIN, 17, 0, &sc, cap, sizeof cap);  // caption variant 0:
//   // e.g. "a small red circle to the left of a big blue star"
//   int colour = sc.obj[0].colour, shape = sc.obj[0].shape, cell = sc.obj[0].cell;  // attribute labels
//
//   XcError err = {0};
//   if (world_write("/tmp/world", &wc, &err) != XC_OK) fprintf(stderr, "%s\n", err.msg);  // every product
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "autograd/rng.h"
#include "autograd/util.h"

enum { WORLD_COLOURS = 8, WORLD_SHAPES = 8, WORLD_SIZES = 2, WORLD_CELLS = 9, WORLD_BACKGROUNDS = 4 };
enum { WORLD_COMBOS = WORLD_COLOURS * WORLD_SHAPES, WORLD_UNSEEN = 8 };
enum { WORLD_MAX_OBJECTS = 4 };     // an image has 1-3; a video 1-2 actors and at most 1 static distractor
enum { WORLD_CAPTION_MAX = 256 };   // bytes of a caption buffer (captions are far shorter)
enum { WORLD_CONTEXT = 32 };        // CLIP context length every caption and class name fits (SOT + <= 30 + EOT)

enum { WORLD_SHAPE_CIRCLE, WORLD_SHAPE_SQUARE, WORLD_SHAPE_TRIANGLE, WORLD_SHAPE_DIAMOND, WORLD_SHAPE_STAR,
       WORLD_SHAPE_CROSS, WORLD_SHAPE_RING, WORLD_SHAPE_HEART };
enum { WORLD_BG_PLAIN, WORLD_BG_NOISY, WORLD_BG_STRIPED, WORLD_BG_CHECKERED };

extern const char *const world_colour_names[WORLD_COLOURS];
extern const char *const world_shape_names[WORLD_SHAPES];
extern const char *const world_shape_plurals[WORLD_SHAPES];
extern const char *const world_size_names[WORLD_SIZES];
extern const char *const world_cell_names[WORLD_CELLS];       // "top left" ... "bottom right"
extern const char *const world_background_names[WORLD_BACKGROUNDS];
extern const uint8_t world_palette[WORLD_COLOURS][3];         // the RGB of each colour before jitter

// Colour-shape combination id = colour * 8 + shape. The 8 unseen ones pair each colour with one shape and each
// shape with one colour (shape = (3 * colour + 2) mod 8): red triangle, orange cross, yellow circle, green
// diamond, cyan ring, blue square, purple star, pink heart.
int world_combo_unseen(int colour, int shape);
int world_unseen_index(int colour, int shape);   // 0..7 in colour order, or -1 for a seen combination

typedef struct WorldObject {
    int colour, shape, size;   // attribute ids (size 0 small, 1 big)
    int cell;                  // position id: row * 3 + column of the 3x3 grid the centre lies in
    float x, y;                // centre, in units of the image side (0..1, y down)
    float radius;              // in units of the image side
    float angle;               // orientation, radians, clockwise on screen (0: upright)
    float alpha;               // opacity 0..1
    float rgb[3];              // the colour drawn (the palette colour with a little jitter; videos may change it)
} WorldObject;

typedef struct WorldBackground {
    int kind;                  // WORLD_BG_*
    float base[3];             // low-saturation dark-to-mid colour
    float alt[3];              // second colour of stripes and checks
    float period;              // stripe / check period, in units of the image side
    float angle;               // stripe direction, radians
    float noise;               // amplitude of the per-pixel grey noise (0..255 levels)
} WorldBackground;

typedef struct WorldScene {
    int n;                          // objects, drawn in order (later ones on top)
    WorldObject obj[WORLD_MAX_OBJECTS];
    WorldBackground bg;
    uint64_t noise_key;             // key of the per-pixel noise (videos: one per frame)
} WorldScene;

typedef enum WorldImageSplit {
    WORLD_IMG_TRAIN,   // 1-3 objects, seen combinations only: the pretraining pairs
    WORLD_IMG_VAL,     // held out, the same distribution as train (retrieval, validation loss)
    WORLD_IMG_PROBE,   // held out, one object, all 64 combinations in turn: per-attribute labels, unseen combos
    WORLD_IMG_SPLITS
} WorldImageSplit;
extern const char *const world_image_split_names[WORLD_IMG_SPLITS];   // "train", "val", "probe"

typedef struct WorldConfig {
    uint64_t seed;
    int image_size;            // S of the captioned images (>= 16)
    int64_t train_images;      // images of each split
    int64_t val_images;
    int probe_per_combo;       // probe images per colour-shape combination (64 combinations)
    int captions_per_image;    // caption lines per image in the captions files (variants 0..n-1)
    int video_size;            // S of the videos
    int frames;                // T of the videos
    int fps;
    int source_train, source_val;   // videos per class of the source dataset (Kinetics-400 role)
    int target_train, target_test;  // videos per class of each target dataset (HMDB-51 / UCF-101 roles)
    int zeroshot_test;              // videos per class of each zero-shot split
    float distractor_prob;     // chance that a video shows one more, static, object
    const char *codec;         // video encoder; NULL: libx264 if available, else mpeg4
    int write_images, write_videos;   // which products world_write makes (1: yes)
    int quiet;                 // 1: no progress lines on stdout
} WorldConfig;

WorldConfig world_config_default(void);
// Images of a split: train_images, val_images or 64 * probe_per_combo.
int64_t world_image_count(const WorldConfig *wc, WorldImageSplit split);

// The scene of image `index` of a split (random from (seed, split, index)).
void world_image_scene(const WorldConfig *wc, WorldImageSplit split, int64_t index, WorldScene *out);
// Draw a scene into rgb (S, S, 3): background, objects with 4x4 supersampled edges, grey noise. Thread-safe;
// allocates nothing up to S = 64.
void world_render(const WorldScene *sc, int S, uint8_t *rgb);
// 1 if the point (u, w) of the unit shape (radius 1, upright, w down) is inside it.
int world_shape_inside(int shape, float u, float w);

// Caption variant `variant` of image `index` (a pure function of seed, split, index, variant and the scene).
void world_image_caption(const WorldConfig *wc, WorldImageSplit split, int64_t index, int variant,
                         const WorldScene *sc, char *buf, size_t n);
// The grammar itself (data/world_caption.c): a caption of a still scene drawing its choices from r. A draw that
// would not fit in WORLD_CONTEXT tokens (with SOT and EOT) is replaced by another.
void world_caption(const WorldScene *sc, Rng *r, char *buf, size_t n);
// CLIP BPE tokens of a caption of the grammar (without SOT / EOT), counted from its words.
int world_caption_tokens(const char *caption);
// Canonical phrases used as class names of the attribute label CSVs (the grammar's first choices):
// "a red shape", "a circle", "a small shape", "a shape in the top left corner", "a red circle".
void world_colour_phrase(int colour, char *buf, size_t n);
void world_shape_phrase(int shape, char *buf, size_t n);
void world_size_phrase(int size, char *buf, size_t n);
void world_cell_phrase(int cell, char *buf, size_t n);
void world_combo_phrase(int colour, int shape, char *buf, size_t n);

// Write every product under outdir (created with its parents): images/, source/, target_hmdb/, target_ucf/,
// zeroshot/ and world.txt (the settings and counts, written last). See data/README.md for the layout.
int world_write(const char *outdir, const WorldConfig *wc, XcError *err);

// Internal helpers shared by the world's files.
uint64_t world_key(const WorldConfig *wc, uint64_t tag, uint64_t a, uint64_t b);   // a sub-seed
void world_background_sample(Rng *r, WorldBackground *bg);
void world_object_colour(Rng *r, int colour, float rgb[3]);      // palette colour with jitter
float world_size_radius(Rng *r, int size);
