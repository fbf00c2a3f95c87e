// world_video.c - the action model over time and the video class sets. See world_video.h.
#include "data/world_video.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const world_action_names[WORLD_ACTIONS] = {
    "moving left", "moving right", "moving up", "moving down", "growing", "shrinking", "rotating clockwise",
    "rotating counterclockwise", "blinking", "fading in", "fading out", "turning", "bouncing", "approaching",
    "separating"};
const char *const world_product_names[WORLD_PRODUCTS] = {"source", "target_hmdb", "target_ucf",
                                                         "split1", "split2", "split3"};

// Which product each (action, shape) pair belongs to. Columns: circle square triangle diamond star cross ring heart.
// S source, H target_hmdb, U target_ucf, 1-3 zero-shot split, '.' unused (a turning circle or ring looks still).
// Row a is the pattern "SHSUSZSZ" shifted left by 5a, so every product meets every shape; the Z cells were
// numbered 1, 2, 3 in turn row by row. A product's classes are its cells in row-major order.
static const char kGrid[WORLD_ACTIONS][WORLD_SHAPES + 1] = {
    [WORLD_ACT_LEFT] = "SHSUS1S2",   [WORLD_ACT_RIGHT] = "3S1SHSUS",    [WORLD_ACT_UP] = "SUS2S3SH",
    [WORLD_ACT_DOWN] = "1SHSUS2S",   [WORLD_ACT_GROW] = "S3S1SHSU",     [WORLD_ACT_SHRINK] = "HSUS2S3S",
    [WORLD_ACT_CW] = ".1SHSU.2",     [WORLD_ACT_CCW] = ".S3S1S.S",      [WORLD_ACT_BLINK] = "SHSUS2S3",
    [WORLD_ACT_FADE_IN] = "1S2SHSUS", [WORLD_ACT_FADE_OUT] = "SUS3S1SH", [WORLD_ACT_TURN] = "2SHSUS3S",
    [WORLD_ACT_BOUNCE] = "S1S2SHSU", [WORLD_ACT_APPROACH] = "HSUS3S1S", [WORLD_ACT_SEPARATE] = "S2SHSUS3",
};
static const char kProductLetter[WORLD_PRODUCTS] = {'S', 'H', 'U', '1', '2', '3'};

enum { TAG_VIDEO = 0x76696400, TAG_VNOISE = 0x766e6f00 };

char world_grid_cell(int action, int shape) { return kGrid[action][shape]; }

// Named colours: class j of a product names a colour when (j + action / 2) is even (about every other class, and
// every shape somewhere) and every turning class does. The n-th named class of product p gets X = (3 n + 5 p) mod 8
// (so the colours come round in turn), moved on to the next colour while (X, shape) or, for turning,
// (X + 4 mod 8, shape) is an unseen image combination; a turning class turns into X + 4 mod 8.
int world_classes(WorldProduct p, WorldClass *out) {
    int k = 0, named = 0;
    for (int a = 0; a < WORLD_ACTIONS; a++)
        for (int s = 0; s < WORLD_SHAPES; s++) {
            if (kGrid[a][s] != kProductLetter[p]) continue;
            WorldClass c = {a, s, -1, -1};
            if (a == WORLD_ACT_TURN || (k + a / 2) % 2 == 0) {
                int x = (3 * named++ + 5 * (int)p) % WORLD_COLOURS;
                while (world_combo_unseen(x, s) ||
                       (a == WORLD_ACT_TURN && world_combo_unseen((x + 4) % WORLD_COLOURS, s)))
                    x = (x + 1) % WORLD_COLOURS;
                c.colour = x;
                if (a == WORLD_ACT_TURN) c.colour2 = (x + 4) % WORLD_COLOURS;
            }
            XC_CHECK(k < WORLD_MAX_CLASSES, "world: too many classes");
            out[k++] = c;
        }
    return k;
}

void world_class_name(const WorldClass *c, char *buf, size_t n) {
    const char *colour = c->colour >= 0 ? world_colour_names[c->colour] : NULL;
    if (c->action == WORLD_ACT_APPROACH || c->action == WORLD_ACT_SEPARATE) {
        snprintf(buf, n, "two %s%s%s %s", colour ? colour : "", colour ? " " : "", world_shape_plurals[c->shape],
                 world_action_names[c->action]);
        return;
    }
    const char *first = colour ? colour : world_shape_names[c->shape];
    const char *art = strchr("aeiou", first[0]) ? "an" : "a";
    if (c->action == WORLD_ACT_TURN)
        snprintf(buf, n, "%s %s %s turning %s", art, colour, world_shape_names[c->shape], world_colour_names[c->colour2]);
    else
        snprintf(buf, n, "%s %s%s%s %s", art, colour ? colour : "", colour ? " " : "", world_shape_names[c->shape],
                 world_action_names[c->action]);
}

// ---- sampling --------------------------------------------------------------------------------------------------
static float uniform(Rng *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform(r); }
static float margin(float radius) { return 1.12f * radius + 0.02f; }   // keeps the whole shape in the frame

static int seen_colour(Rng *r, int shape, int avoid) {
    for (;;) {
        int c = (int)rng_below(r, WORLD_COLOURS);
        if (!world_combo_unseen(c, shape) && c != avoid) return c;
    }
}

static void set_actor(Rng *r, WorldObject *o, int colour, int shape, int size) {
    memset(o, 0, sizeof *o);
    o->colour = colour;
    o->shape = shape;
    o->size = size;
    o->radius = world_size_radius(r, size);
    o->alpha = 1.0f;
    world_object_colour(r, colour, o->rgb);
}

// Start and end centres of a straight move by D along (ux, uy) inside the frame.
static void straight_move(Rng *r, WorldVideo *v, float ux, float uy) {
    float m = margin(v->start.obj[0].radius), D = uniform(r, 0.35f, 0.5f);
    if (D > 1.0f - 2.0f * m - 0.02f) D = 1.0f - 2.0f * m - 0.02f;
    for (int k = 0; k < 2; k++) { // k = 0: x, 1: y
        float u = k ? uy : ux, lo = m, hi = 1.0f - m;
        if (u > 0) hi -= D;
        if (u < 0) lo += D;
        v->from[0][k] = uniform(r, lo, hi);
        v->to[0][k] = v->from[0][k] + u * D;
    }
}

static void sample_action(Rng *r, WorldVideo *v) {
    WorldObject *o = &v->start.obj[0];
    float m = margin(o->radius);
    v->from[0][0] = v->to[0][0] = uniform(r, m, 1.0f - m); // still by default
    v->from[0][1] = v->to[0][1] = uniform(r, m, 1.0f - m);
    v->r_from = v->r_to = o->radius;
    switch (v->cls.action) {
    case WORLD_ACT_LEFT: straight_move(r, v, -1, 0); break;
    case WORLD_ACT_RIGHT: straight_move(r, v, 1, 0); break;
    case WORLD_ACT_UP: straight_move(r, v, 0, -1); break;
    case WORLD_ACT_DOWN: straight_move(r, v, 0, 1); break;
    case WORLD_ACT_GROW:
    case WORLD_ACT_SHRINK: {
        float small = uniform(r, 0.06f, 0.08f), large = uniform(r, 0.2f, 0.23f);
        int grow = v->cls.action == WORLD_ACT_GROW;
        v->r_from = grow ? small : large;
        v->r_to = grow ? large : small;
        v->from[0][0] = v->to[0][0] = uniform(r, margin(large), 1.0f - margin(large));
        v->from[0][1] = v->to[0][1] = uniform(r, margin(large), 1.0f - margin(large));
        break;
    }
    case WORLD_ACT_CW:
    case WORLD_ACT_CCW:
        o->angle = uniform(r, 0.0f, 6.2831853f);
        v->spin = (v->cls.action == WORLD_ACT_CW ? 1.0f : -1.0f) * uniform(r, 1.0f, 1.6f);
        break;
    case WORLD_ACT_BLINK:
        v->half_period = (int)lrintf((float)v->frames * uniform(r, 0.16f, 0.22f));
        if (v->half_period < 1) v->half_period = 1;
        v->phase = (int)rng_below(r, (uint64_t)(2 * v->half_period));
        break;
    case WORLD_ACT_FADE_IN:
    case WORLD_ACT_FADE_OUT:
        v->fade_t0 = uniform(r, 0.0f, 0.15f);
        v->fade_t1 = uniform(r, 0.8f, 1.0f);
        break;
    case WORLD_ACT_TURN:
        v->switch_at = uniform(r, 0.35f, 0.65f);
        world_object_colour(r, v->cls.colour2, v->rgb2);
        break;
    case WORLD_ACT_BOUNCE:
        v->height = uniform(r, 0.3f, 0.42f);
        v->floor_y = uniform(r, m + v->height, 1.0f - m);
        v->bounces = uniform(r, 1.6f, 2.2f);
        break;
    case WORLD_ACT_APPROACH:
    case WORLD_ACT_SEPARATE: {
        float ang = 0.7853982f * (float)rng_below(r, 4), ux = cosf(ang), uy = sinf(ang);
        float comp = fmaxf(fabsf(ux), fabsf(uy)), far = uniform(r, 0.62f, 0.8f), near = 2.3f * o->radius + 0.02f;
        float limit = 2.0f * (0.5f - m - 0.03f) / comp;
        if (far > limit) far = limit;
        float cx = 0.5f + uniform(r, -0.03f, 0.03f), cy = 0.5f + uniform(r, -0.03f, 0.03f);
        float d0 = v->cls.action == WORLD_ACT_APPROACH ? far : near, d1 = v->cls.action == WORLD_ACT_APPROACH ? near : far;
        for (int i = 0; i < 2; i++) {
            float sgn = i ? 1.0f : -1.0f;
            v->from[i][0] = cx + sgn * 0.5f * d0 * ux;
            v->from[i][1] = cy + sgn * 0.5f * d0 * uy;
            v->to[i][0] = cx + sgn * 0.5f * d1 * ux;
            v->to[i][1] = cy + sgn * 0.5f * d1 * uy;
        }
        break;
    }
    default: xc_fatal("world: action %d out of range", v->cls.action);
    }
}

// One static distractor of another shape and colour, kept clear of the actors in every frame; 0 if no room.
static int add_distractor(Rng *r, WorldVideo *v) {
    WorldObject d;
    int shape = (v->cls.shape + 1 + (int)rng_below(r, WORLD_SHAPES - 1)) % WORLD_SHAPES;
    int colour = seen_colour(r, shape, v->start.obj[0].colour);
    set_actor(r, &d, colour, shape, 0);
    float m = margin(d.radius);
    for (int attempt = 0; attempt < 20; attempt++) {
        d.x = uniform(r, m, 1.0f - m);
        d.y = uniform(r, m, 1.0f - m);
        int clear = 1;
        for (int t = 0; t < v->frames && clear; t++) {
            WorldScene sc;
            world_video_frame(v, t, &sc);
            for (int i = 0; i < v->actors && clear; i++) {
                float dx = d.x - sc.obj[i].x, dy = d.y - sc.obj[i].y, gap = 1.12f * (d.radius + sc.obj[i].radius) + 0.03f;
                clear = dx * dx + dy * dy >= gap * gap;
            }
        }
        if (clear) {
            d.cell = (int)(d.y * 3.0f) * 3 + (int)(d.x * 3.0f);
            v->start.obj[v->start.n++] = d;
            return 1;
        }
    }
    return 0;
}

void world_video_sample(const WorldConfig *wc, WorldProduct p, int cls, int64_t index, WorldVideo *v) {
    WorldClass classes[WORLD_MAX_CLASSES];
    int K = world_classes(p, classes);
    XC_CHECK(cls >= 0 && cls < K, "world: class %d of %s out of range (K = %d)", cls, world_product_names[p], K);
    memset(v, 0, sizeof *v);
    v->cls = classes[cls];
    v->frames = wc->frames;
    Rng r = rng_substream(wc->seed, RNG_STREAM_DATA, TAG_VIDEO + ((uint64_t)p << 8) + (uint64_t)cls, (uint64_t)index);
    world_background_sample(&r, &v->start.bg);
    v->noise_key = world_key(wc, TAG_VNOISE + ((uint64_t)p << 8) + (uint64_t)cls, 0, (uint64_t)index);
    int two = v->cls.action == WORLD_ACT_APPROACH || v->cls.action == WORLD_ACT_SEPARATE;
    int size = v->cls.action == WORLD_ACT_GROW || v->cls.action == WORLD_ACT_SHRINK ? 1 : (int)rng_below(&r, 2);
    if (two) size = 0; // two big shapes do not fit far apart in the frame
    v->actors = two ? 2 : 1;
    for (int i = 0; i < v->actors; i++) {
        int colour = v->cls.colour >= 0 ? v->cls.colour : seen_colour(&r, v->cls.shape, -1);
        set_actor(&r, &v->start.obj[i], colour, v->cls.shape, size);
    }
    if (two) // two shapes need room to move apart: a little smaller than "small"
        for (int i = 0; i < 2; i++) v->start.obj[i].radius *= 0.85f;
    v->start.n = v->actors;
    sample_action(&r, v);
    if (two) v->start.obj[1].radius = v->start.obj[0].radius;
    if (rng_uniform(&r) < wc->distractor_prob) add_distractor(&r, v);
}

void world_video_frame(const WorldVideo *v, int t, WorldScene *out) {
    *out = v->start;
    const float p = v->frames > 1 ? (float)t / (float)(v->frames - 1) : 0.0f; // 0..1 through the clip
    for (int i = 0; i < v->actors; i++) {
        WorldObject *o = &out->obj[i];
        o->x = v->from[i][0] + (v->to[i][0] - v->from[i][0]) * p;
        o->y = v->from[i][1] + (v->to[i][1] - v->from[i][1]) * p;
        if (v->cls.action == WORLD_ACT_GROW || v->cls.action == WORLD_ACT_SHRINK)
            o->radius = v->r_from + (v->r_to - v->r_from) * p;
        o->angle += v->spin * p;
        float fade = v->fade_t1 > v->fade_t0 ? (p - v->fade_t0) / (v->fade_t1 - v->fade_t0) : 0.0f;
        fade = fade < 0.0f ? 0.0f : fade > 1.0f ? 1.0f : fade;
        switch (v->cls.action) {
        case WORLD_ACT_BLINK: o->alpha = ((t + v->phase) / v->half_period) % 2 == 0 ? 1.0f : 0.0f; break;
        case WORLD_ACT_FADE_IN: o->alpha = fade; break;
        case WORLD_ACT_FADE_OUT: o->alpha = 1.0f - fade; break;
        case WORLD_ACT_TURN:
            if (p >= v->switch_at) { memcpy(o->rgb, v->rgb2, sizeof o->rgb); o->colour = v->cls.colour2; }
            break;
        case WORLD_ACT_BOUNCE: o->y = v->floor_y - v->height * fabsf(sinf(3.14159265f * v->bounces * p)); break;
        default: break;
        }
        int col = (int)(o->x * 3.0f), row = (int)(o->y * 3.0f);
        o->cell = (row < 0 ? 0 : row > 2 ? 2 : row) * 3 + (col < 0 ? 0 : col > 2 ? 2 : col);
    }
    Rng r = rng_stream(v->noise_key, (uint64_t)t + 1000);
    out->noise_key = rng_u64(&r);
}
