// world.c - the world's vocabulary, image scenes and the renderer. See world.h.
//
// Units: positions and sizes are fractions of the image side S, so one scene renders at any S. Pixel (x, y) covers
// [x, x+1) x [y, y+1) in S units; y grows downwards; angles are clockwise on screen.
#include "data/world.h"

#include <math.h>
#include <string.h>

const char *const world_colour_names[WORLD_COLOURS] = {"red", "orange", "yellow", "green",
                                                       "cyan", "blue", "purple", "pink"};
const uint8_t world_palette[WORLD_COLOURS][3] = {{225, 45, 45},  {245, 145, 30}, {240, 225, 50}, {50, 190, 70},
                                                 {50, 210, 220}, {50, 90, 235},  {155, 70, 210}, {245, 135, 200}};
const char *const world_shape_names[WORLD_SHAPES] = {"circle", "square", "triangle", "diamond",
                                                     "star",   "cross",  "ring",     "heart"};
const char *const world_shape_plurals[WORLD_SHAPES] = {"circles", "squares", "triangles", "diamonds",
                                                       "stars",   "crosses", "rings",     "hearts"};
const char *const world_size_names[WORLD_SIZES] = {"small", "big"};
const char *const world_cell_names[WORLD_CELLS] = {"top left",    "top",    "top right",
                                                   "left",        "center", "right",
                                                   "bottom left", "bottom", "bottom right"};
const char *const world_background_names[WORLD_BACKGROUNDS] = {"plain", "noisy", "striped", "checkered"};
const char *const world_image_split_names[WORLD_IMG_SPLITS] = {"train", "val", "probe"};

// Sub-stream tags of RNG_STREAM_DATA (one per purpose, so adding draws to one never shifts another).
enum { TAG_IMAGE = 0x696d6700, TAG_NOISE = 0x6e6f6900, TAG_CAPTION = 0x63617000 };

WorldConfig world_config_default(void) {
    return (WorldConfig){.seed = 1024, .image_size = 32, .train_images = 100000, .val_images = 5000,
                         .probe_per_combo = 100, .captions_per_image = 1, .video_size = 32, .frames = 16, .fps = 8,
                         .source_train = 100, .source_val = 20, .target_train = 32, .target_test = 16,
                         .zeroshot_test = 20, .distractor_prob = 0.3f, .codec = NULL, .write_images = 1,
                         .write_videos = 1, .quiet = 0};
}

int64_t world_image_count(const WorldConfig *wc, WorldImageSplit split) {
    return split == WORLD_IMG_TRAIN ? wc->train_images
         : split == WORLD_IMG_VAL   ? wc->val_images
                                    : (int64_t)WORLD_COMBOS * wc->probe_per_combo;
}

int world_combo_unseen(int colour, int shape) { return shape == (3 * colour + 2) % WORLD_SHAPES; }
int world_unseen_index(int colour, int shape) { return world_combo_unseen(colour, shape) ? colour : -1; }

uint64_t world_key(const WorldConfig *wc, uint64_t tag, uint64_t a, uint64_t b) {
    Rng r = rng_substream(wc->seed, RNG_STREAM_DATA, tag ^ (a << 40), b);
    return rng_u64(&r);
}

static float uniform(Rng *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform(r); }

void world_background_sample(Rng *r, WorldBackground *bg) {
    bg->kind = (int)rng_below(r, WORLD_BACKGROUNDS);
    float grey = uniform(r, 40, 110), sign = rng_uniform(r) < 0.5f ? -1.0f : 1.0f, contrast = uniform(r, 18, 32);
    for (int k = 0; k < 3; k++) {
        bg->base[k] = grey + uniform(r, -10, 10);  // a faint tint: saturation stays below ~20 levels
        bg->alt[k] = bg->base[k] + sign * contrast;
    }
    bg->period = uniform(r, 0.12f, 0.25f);
    bg->angle = 0.7853982f * (float)rng_below(r, 4) + uniform(r, -0.15f, 0.15f);
    bg->noise = bg->kind == WORLD_BG_NOISY ? uniform(r, 12, 22) : 3.0f;
}

void world_object_colour(Rng *r, int colour, float rgb[3]) {
    for (int k = 0; k < 3; k++) rgb[k] = (float)world_palette[colour][k] + uniform(r, -8, 8);
}

float world_size_radius(Rng *r, int size) { return size ? uniform(r, 0.18f, 0.2f) : uniform(r, 0.125f, 0.14f); }

// Place object o (attributes set) in a free cell, away from the first n objects; 0 if no place was found.
static int place(Rng *r, WorldObject *objs, int n, WorldObject *o) {
    for (int attempt = 0; attempt < 40; attempt++) {
        int cell = (int)rng_below(r, WORLD_CELLS), used = 0;
        for (int j = 0; j < n; j++) used |= objs[j].cell == cell;
        if (used) continue;
        float x = 0.22f + 0.28f * (float)(cell % 3) + uniform(r, -0.025f, 0.025f);
        float y = 0.22f + 0.28f * (float)(cell / 3) + uniform(r, -0.025f, 0.025f);
        int clear = 1;
        for (int j = 0; j < n && clear; j++) {
            float dx = x - objs[j].x, dy = y - objs[j].y, gap = 1.05f * (o->radius + objs[j].radius) + 0.01f;
            clear = dx * dx + dy * dy >= gap * gap;
        }
        if (!clear) continue;
        o->cell = cell;
        o->x = x;
        o->y = y;
        return 1;
    }
    return 0;
}

static void object_init(Rng *r, WorldObject *o, int colour, int shape) {
    memset(o, 0, sizeof *o);
    o->colour = colour;
    o->shape = shape;
    o->size = (int)rng_below(r, WORLD_SIZES);
    o->radius = world_size_radius(r, o->size);
    o->alpha = 1.0f;
    world_object_colour(r, colour, o->rgb);
}

void world_image_scene(const WorldConfig *wc, WorldImageSplit split, int64_t index, WorldScene *out) {
    memset(out, 0, sizeof *out);
    Rng r = rng_substream(wc->seed, RNG_STREAM_DATA, TAG_IMAGE + (uint64_t)split, (uint64_t)index);
    world_background_sample(&r, &out->bg);
    out->noise_key = world_key(wc, TAG_NOISE + (uint64_t)split, 0, (uint64_t)index);
    if (split == WORLD_IMG_PROBE) { // one object; the combinations in turn, 64 consecutive images cover them all
        int combo = (int)(index % WORLD_COMBOS);
        object_init(&r, &out->obj[0], combo / WORLD_SHAPES, combo % WORLD_SHAPES);
        if (!place(&r, out->obj, 0, &out->obj[0])) xc_fatal("world: cannot place a single object");
        out->n = 1;
        return;
    }
    float u = rng_uniform(&r);
    int want = u < 0.4f ? 1 : u < 0.75f ? 2 : 3;
    for (int i = 0; i < want; i++) {
        int k = (int)rng_below(&r, WORLD_COMBOS - WORLD_UNSEEN), combo = -1; // the k-th seen combination
        for (int c = 0; c < WORLD_COMBOS && k >= 0; c++)
            if (!world_combo_unseen(c / WORLD_SHAPES, c % WORLD_SHAPES) && k-- == 0) combo = c;
        WorldObject *o = &out->obj[out->n];
        object_init(&r, o, combo / WORLD_SHAPES, combo % WORLD_SHAPES);
        if (!place(&r, out->obj, out->n, o)) { // crowded: try once more as a small object, else leave it out
            o->size = 0;
            o->radius = world_size_radius(&r, 0);
            if (!place(&r, out->obj, out->n, o)) continue;
        }
        out->n++;
    }
}

// ---- shapes: the unit shape has radius 1, points up, w grows downwards ----------------------------------------
static int star_inside(float u, float w) {
    const float sector = 1.2566371f, inner = 0.45f; // 72 degrees; inner vertex radius
    float r = sqrtf(u * u + w * w);
    if (r > 1.0f) return 0;
    if (r < inner) return 1;
    float th = atan2f(u, -w) + 0.5f * sector;       // angle from "up", shifted so a point sits mid-sector
    th -= sector * floorf(th / sector);
    float phi = fabsf(th - 0.5f * sector);           // 0 at a point, 36 degrees at an inner vertex
    float px = r * cosf(phi), py = r * sinf(phi);
    // edge from the point (1, 0) to the inner vertex (inner cos 36, inner sin 36): inside if on the origin's side
    float ex = inner * 0.809017f - 1.0f, ey = inner * 0.5877853f;
    return ex * py - ey * (px - 1.0f) >= 0.0f;
}

static int heart_inside(float u, float w) {
    float x = 1.15f * u, y = -1.15f * w + 0.15f; // y up; the classic (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0
    float a = x * x + y * y - 1.0f;
    return a * a * a - x * x * y * y * y <= 0.0f;
}

int world_shape_inside(int shape, float u, float w) {
    float au = fabsf(u), aw = fabsf(w);
    switch (shape) {
    case WORLD_SHAPE_CIRCLE: return u * u + w * w <= 1.0f;
    case WORLD_SHAPE_SQUARE: return au <= 0.8f && aw <= 0.8f;
    case WORLD_SHAPE_TRIANGLE: // apex (0, -1), base w = 0.65 from u = -0.95 to 0.95
        return w >= -1.0f && w <= 0.65f && au <= 0.95f * (w + 1.0f) / 1.65f;
    case WORLD_SHAPE_DIAMOND: return au / 0.78f + aw / 1.05f <= 1.0f; // taller than wide: not a turned square
    case WORLD_SHAPE_STAR: return star_inside(u, w);
    case WORLD_SHAPE_CROSS: return (au <= 0.32f && aw <= 0.95f) || (aw <= 0.32f && au <= 0.95f);
    case WORLD_SHAPE_RING: { float r2 = u * u + w * w; return r2 <= 1.0f && r2 >= 0.2f; }
    case WORLD_SHAPE_HEART: return heart_inside(u, w);
    default: xc_fatal("world: shape %d out of range", shape);
    }
}

// ---- rendering -------------------------------------------------------------------------------------------------
static void draw_background(const WorldBackground *bg, int S, float *acc) {
    const float c = cosf(bg->angle), s = sinf(bg->angle), inv = 1.0f / (bg->period * (float)S);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float fx = (float)x + 0.5f, fy = (float)y + 0.5f;
            int second = 0;
            if (bg->kind == WORLD_BG_STRIPED) {
                float t = (c * fx + s * fy) * inv;
                second = t - floorf(t) >= 0.5f;
            } else if (bg->kind == WORLD_BG_CHECKERED) {
                second = ((int)floorf(fx * inv) + (int)floorf(fy * inv)) & 1;
            }
            const float *col = second ? bg->alt : bg->base;
            for (int k = 0; k < 3; k++) acc[((size_t)y * S + x) * 3 + k] = col[k];
        }
}

static void draw_object(const WorldObject *o, int S, float *acc) {
    if (o->alpha <= 0.0f || o->radius <= 0.0f) return;
    const float R = o->radius * (float)S, cx = o->x * (float)S, cy = o->y * (float)S, ext = 1.2f * R + 1.0f;
    const float c = cosf(o->angle), s = sinf(o->angle), inv = 1.0f / R;
    int x0 = (int)floorf(cx - ext), x1 = (int)ceilf(cx + ext), y0 = (int)floorf(cy - ext), y1 = (int)ceilf(cy + ext);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > S - 1) x1 = S - 1;
    if (y1 > S - 1) y1 = S - 1;
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            int hits = 0;
            for (int sy = 0; sy < 4; sy++)
                for (int sx = 0; sx < 4; sx++) {
                    float px = (float)x + 0.125f + 0.25f * (float)sx - cx, py = (float)y + 0.125f + 0.25f * (float)sy - cy;
                    // screen -> shape frame: rotate by -angle (clockwise on screen is positive)
                    hits += world_shape_inside(o->shape, (c * px + s * py) * inv, (-s * px + c * py) * inv);
                }
            if (!hits) continue;
            float a = o->alpha * (float)hits / 16.0f;
            float *p = acc + ((size_t)y * S + x) * 3;
            for (int k = 0; k < 3; k++) p[k] += a * (o->rgb[k] - p[k]);
        }
}

void world_render(const WorldScene *sc, int S, uint8_t *rgb) {
    float local[64 * 64 * 3]; // up to 64x64 no allocation (a loader may render in its workers)
    float *acc = S <= 64 ? local : xc_malloc((size_t)S * S * 3 * sizeof(float)); // (S, S, 3)
    draw_background(&sc->bg, S, acc);
    for (int i = 0; i < sc->n; i++) draw_object(&sc->obj[i], S, acc);
    Rng noise = rng_stream(sc->noise_key, RNG_STREAM_DATA);
    for (size_t p = 0; p < (size_t)S * S; p++) {
        float n = sc->bg.noise * (rng_uniform(&noise) + rng_uniform(&noise) - 1.0f); // grey: adds no colour
        for (int k = 0; k < 3; k++) {
            float v = floorf(acc[p * 3 + k] + n + 0.5f);
            rgb[p * 3 + k] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
        }
    }
    if (acc != local) xc_free(acc);
}

void world_image_caption(const WorldConfig *wc, WorldImageSplit split, int64_t index, int variant,
                         const WorldScene *sc, char *buf, size_t n) {
    Rng r = rng_substream(wc->seed, RNG_STREAM_DATA, TAG_CAPTION + (uint64_t)split + ((uint64_t)variant << 8),
                          (uint64_t)index);
    world_caption(sc, &r, buf, n);
}
