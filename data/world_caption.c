// world_caption.c - the caption grammar of the world: templates with synonyms, varied word order, positions and
// relations. Every caption describes every object of the scene truthfully; data/README.md lists the grammar.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "data/world.h"

// Synonym lists: the first entry is the canonical word (used in class names); a choice takes it with
// probability 0.7, else one of the others.
typedef const char *const Syn[4];
static Syn kColour[WORLD_COLOURS] = {{"red"}, {"orange"}, {"yellow"}, {"green"}, {"cyan"}, {"blue"}, {"purple", "violet"}, {"pink"}};
static Syn kShape[WORLD_SHAPES] = {{"circle", "disc"}, {"square"}, {"triangle"}, {"diamond", "rhombus"},
                                   {"star"}, {"cross", "plus sign"}, {"ring"}, {"heart"}};
static Syn kSize[WORLD_SIZES] = {{"small", "little", "tiny"}, {"big", "large"}};
static Syn kCell[WORLD_CELLS] = {
    {"in the top left corner", "at the top left", "in the upper left"},
    {"at the top", "near the top", "in the top middle"},
    {"in the top right corner", "at the top right", "in the upper right"},
    {"on the left", "at the left", "on the left side"},
    {"in the center", "in the middle", "in the centre"},
    {"on the right", "at the right", "on the right side"},
    {"in the bottom left corner", "at the bottom left", "in the lower left"},
    {"at the bottom", "near the bottom", "in the bottom middle"},
    {"in the bottom right corner", "at the bottom right", "in the lower right"}};
enum { REL_LEFT, REL_RIGHT, REL_ABOVE, REL_BELOW };
static Syn kRelation[4] = {{"to the left of", "left of", "on the left of"}, {"to the right of", "right of", "on the right of"},
                           {"above", "over"}, {"below", "under", "beneath"}};
static Syn kBackground[WORLD_BACKGROUNDS] = {{"plain"}, {"noisy", "grainy"}, {"striped"}, {"checkered", "checked"}};
static Syn kPicture = {"a picture of", "an image of", "a photo of", "a drawing of"};

// Words of the grammar that CLIP's BPE splits into several tokens (every other word and mark is one token);
// tests/test_world.c checks world_caption_tokens against the tokenizer.
static const struct { const char *word; int tokens; } kLongWords[] = {
    {"cyan", 2}, {"rhombus", 3}, {"grainy", 2}, {"checkered", 2}};

static const char *syn(Rng *r, const char *const *s) {
    int n = 1;
    while (n < 4 && s[n]) n++;
    if (n == 1 || rng_uniform(r) < 0.7f) return s[0];
    return s[1 + rng_below(r, (uint64_t)(n - 1))];
}

// A growing caption: words are joined by single spaces; "a" before a vowel becomes "an".
typedef struct Text { char *buf; size_t cap, len; } Text;

static void say(Text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(Text *t, const char *fmt, ...) {
    char w[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w, sizeof w, fmt, ap);
    va_end(ap);
    int glue = w[0] == ',' || w[0] == ':';
    size_t need = strlen(w) + (t->len && !glue ? 1 : 0);
    if (t->len + need + 1 > t->cap) return; // cannot happen with WORLD_CAPTION_MAX; never overflow
    if (t->len && !glue) t->buf[t->len++] = ' ';
    memcpy(t->buf + t->len, w, strlen(w) + 1);
    t->len += strlen(w);
}

static const char *article(const char *next) { return strchr("aeiou", next[0]) ? "an" : "a"; }

// The noun phrase of an object: "a small red circle", "one blue star", "a big square that is green".
static void noun_phrase(Text *t, Rng *r, const WorldObject *o) {
    const char *colour = syn(r, kColour[o->colour]), *shape = syn(r, kShape[o->shape]);
    const char *size = rng_uniform(r) < 0.5f ? syn(r, kSize[o->size]) : NULL;
    int one = rng_uniform(r) < 0.15f, postposed = rng_uniform(r) < 0.1f;
    if (postposed) { // "a big square that is green"
        const char *first = size ? size : shape;
        say(t, "%s", one ? "one" : article(first));
        if (size) say(t, "%s", size);
        say(t, "%s that is %s", shape, colour);
        return;
    }
    const char *first = size ? size : colour;
    say(t, "%s", one ? "one" : article(first));
    if (size) say(t, "%s", size);
    say(t, "%s %s", colour, shape);
}

// A relation of a to b that is true of their cells (left of / right of / above / below), chosen at random.
static const char *relation(Rng *r, const WorldObject *a, const WorldObject *b) {
    int opts[4], n = 0;
    if (a->cell % 3 < b->cell % 3) opts[n++] = REL_LEFT;
    if (a->cell % 3 > b->cell % 3) opts[n++] = REL_RIGHT;
    if (a->cell / 3 < b->cell / 3) opts[n++] = REL_ABOVE;
    if (a->cell / 3 > b->cell / 3) opts[n++] = REL_BELOW;
    XC_CHECK(n > 0, "world: two objects share cell %d", a->cell);
    return syn(r, kRelation[opts[rng_below(r, (uint64_t)n)]]);
}

static void background(Text *t, Rng *r, const WorldScene *sc) {
    say(t, "on a %s background", syn(r, kBackground[sc->bg.kind]));
}

static void one_object(Text *t, Rng *r, const WorldScene *sc, const WorldObject *a) {
    switch (rng_below(r, 9)) {
    case 0: noun_phrase(t, r, a); break;
    case 1: noun_phrase(t, r, a); say(t, "%s", syn(r, kCell[a->cell])); break;
    case 2: say(t, "%s there is", syn(r, kCell[a->cell])); noun_phrase(t, r, a); break;
    case 3: say(t, "there is"); noun_phrase(t, r, a); say(t, "%s", syn(r, kCell[a->cell])); break;
    case 4: say(t, "%s", syn(r, kPicture)); noun_phrase(t, r, a); break;
    case 5: say(t, "%s", syn(r, kPicture)); noun_phrase(t, r, a); say(t, "%s", syn(r, kCell[a->cell])); break;
    case 6: noun_phrase(t, r, a); background(t, r, sc); break;
    case 7: noun_phrase(t, r, a); say(t, "%s", syn(r, kCell[a->cell])); background(t, r, sc); break;
    default: // a partial description naming one attribute (the form of the attribute classes' names)
        switch (rng_below(r, 4)) {
        case 0: { const char *c = syn(r, kColour[a->colour]); say(t, "%s %s shape", article(c), c); break; }
        case 1: say(t, "a %s", syn(r, kShape[a->shape])); break;
        case 2: say(t, "a %s shape", syn(r, kSize[a->size])); break;
        default: say(t, "a shape %s", syn(r, kCell[a->cell])); break;
        }
    }
}

static void two_objects(Text *t, Rng *r, const WorldScene *sc, const WorldObject *a, const WorldObject *b) {
    switch (rng_below(r, 8)) {
    case 0: noun_phrase(t, r, a); say(t, "and"); noun_phrase(t, r, b); break;
    case 1: noun_phrase(t, r, a); say(t, "%s", relation(r, a, b)); noun_phrase(t, r, b); break;
    case 2: say(t, "there is"); noun_phrase(t, r, a); say(t, "%s", relation(r, a, b)); noun_phrase(t, r, b); break;
    case 3:
        noun_phrase(t, r, a); say(t, "%s and", syn(r, kCell[a->cell]));
        noun_phrase(t, r, b); say(t, "%s", syn(r, kCell[b->cell]));
        break;
    case 4: say(t, "two shapes"); say(t, ":"); noun_phrase(t, r, a); say(t, "and"); noun_phrase(t, r, b); break;
    case 5: say(t, "%s", syn(r, kPicture)); noun_phrase(t, r, a); say(t, "%s", relation(r, a, b)); noun_phrase(t, r, b); break;
    case 6: noun_phrase(t, r, a); say(t, "and"); noun_phrase(t, r, b); background(t, r, sc); break;
    default: noun_phrase(t, r, a); say(t, "is %s", relation(r, a, b)); noun_phrase(t, r, b); break;
    }
}

static void three_objects(Text *t, Rng *r, const WorldScene *sc, const WorldObject *a, const WorldObject *b,
                          const WorldObject *c) {
    switch (rng_below(r, 6)) {
    case 0: noun_phrase(t, r, a); say(t, ","); noun_phrase(t, r, b); say(t, "and"); noun_phrase(t, r, c); break;
    case 1:
        say(t, "three shapes"); say(t, ":"); noun_phrase(t, r, a); say(t, ",");
        noun_phrase(t, r, b); say(t, "and"); noun_phrase(t, r, c);
        break;
    case 2:
        noun_phrase(t, r, a); say(t, "%s", relation(r, a, b)); noun_phrase(t, r, b); say(t, ", and");
        noun_phrase(t, r, c);
        break;
    case 3:
        noun_phrase(t, r, a); say(t, "%s", syn(r, kCell[a->cell])); say(t, ",");
        noun_phrase(t, r, b); say(t, "%s and", syn(r, kCell[b->cell]));
        noun_phrase(t, r, c); say(t, "%s", syn(r, kCell[c->cell]));
        break;
    case 4:
        noun_phrase(t, r, a); say(t, "%s", relation(r, a, b)); noun_phrase(t, r, b); say(t, "and");
        noun_phrase(t, r, c); say(t, "%s", syn(r, kCell[c->cell]));
        break;
    default:
        noun_phrase(t, r, a); say(t, ","); noun_phrase(t, r, b); say(t, "and"); noun_phrase(t, r, c);
        background(t, r, sc);
        break;
    }
}

int world_caption_tokens(const char *s) {
    int n = 0;
    while (*s) {
        if (*s == ' ') { s++; continue; }
        if (*s == ',' || *s == ':') { n++; s++; continue; }
        size_t len = strcspn(s, " ,:");
        int cost = 1;
        for (size_t k = 0; k < sizeof kLongWords / sizeof kLongWords[0]; k++)
            if (strlen(kLongWords[k].word) == len && !strncmp(s, kLongWords[k].word, len)) cost = kLongWords[k].tokens;
        n += cost;
        s += len;
    }
    return n;
}

// The plain description used if 50 draws in a row were too long (never seen in practice): canonical words only.
static void plain_caption(const WorldScene *sc, Text *t) {
    for (int i = 0; i < sc->n; i++) {
        if (i) say(t, i + 1 == sc->n ? "and" : ",");
        say(t, "%s %s %s", article(kColour[sc->obj[i].colour][0]), kColour[sc->obj[i].colour][0],
            kShape[sc->obj[i].shape][0]);
    }
}

void world_caption(const WorldScene *sc, Rng *r, char *buf, size_t n) {
    XC_CHECK(sc->n >= 1 && sc->n <= 3, "world: a captioned scene has 1-3 objects, got %d", sc->n);
    for (int attempt = 0; attempt < 50; attempt++) { // a caption over the context is drawn again (3 objects, long phrases)
        Text t = {buf, n, 0};
        buf[0] = 0;
        int order[3] = {0, 1, 2};
        for (int i = sc->n - 1; i > 0; i--) { // word order: the objects in a random order
            int j = (int)rng_below(r, (uint64_t)i + 1), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        const WorldObject *a = &sc->obj[order[0]], *b = &sc->obj[order[1]], *c = &sc->obj[order[2]];
        if (sc->n == 1) one_object(&t, r, sc, a);
        else if (sc->n == 2) two_objects(&t, r, sc, a, b);
        else three_objects(&t, r, sc, a, b, c);
        if (world_caption_tokens(buf) <= WORLD_CONTEXT - 2) return;
    }
    Text t = {buf, n, 0};
    buf[0] = 0;
    plain_caption(sc, &t);
}

void world_colour_phrase(int colour, char *buf, size_t n) {
    snprintf(buf, n, "%s %s shape", article(kColour[colour][0]), kColour[colour][0]);
}
void world_shape_phrase(int shape, char *buf, size_t n) { snprintf(buf, n, "a %s", kShape[shape][0]); }
void world_size_phrase(int size, char *buf, size_t n) { snprintf(buf, n, "a %s shape", kSize[size][0]); }
void world_cell_phrase(int cell, char *buf, size_t n) { snprintf(buf, n, "a shape %s", kCell[cell][0]); }
void world_combo_phrase(int colour, int shape, char *buf, size_t n) {
    snprintf(buf, n, "%s %s %s", article(kColour[colour][0]), kColour[colour][0], kShape[shape][0]);
}
