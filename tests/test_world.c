// test_world.c - the compositional world (data/world.h, world_video.h, captions.h): a small world written twice
// (1 and 2 threads) is byte-identical and another seed changes it; every list and label CSV loads; the class sets
// of the source, the targets and the zero-shot splits are disjoint, the zero-shot words all occur in source class
// names and their (action, shape) pairs never do; every caption and class name fits the context (CLIP's BPE);
// unseen colour-shape pairs never reach training images or captions; the probe labels agree with the pixels
// (colour, position, shape, size); every action shows in the pixels as its class says; a written video decodes to
// its rendered frames. The caption reader's bad input: tests/test_world_captions.c.
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "checkpoints/hash64.h"
#include "data/captions.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "data/video.h"
#include "data/world.h"
#include "data/world_video.h"
#include "tests/test_util.h"

static char g_root[64];

static WorldConfig small_world(uint64_t seed) {
    WorldConfig wc = world_config_default();
    wc.seed = seed;
    wc.train_images = 400;
    wc.val_images = 64;
    wc.probe_per_combo = 2;
    wc.captions_per_image = 2;
    wc.frames = 8;
    wc.source_train = 1;
    wc.source_val = 1;
    wc.target_train = 1;
    wc.target_test = 1;
    wc.zeroshot_test = 1;
    wc.quiet = 1;
    return wc;
}

static int gen(const char *name, uint64_t seed, int threads) {
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
    char dir[128];
    snprintf(dir, sizeof dir, "%s/%s", g_root, name);
    WorldConfig wc = small_world(seed);
    XcError err = {{0}};
    int rc = world_write(dir, &wc, &err);
    XC_EXPECT(rc == XC_OK, "world_write %s: %s", dir, err.msg);
    return rc == XC_OK;
}

// ---- tree hashing -------------------------------------------------------------------------------------------------
typedef struct FileHash { char rel[160]; uint64_t h; } FileHash;
static FileHash g_files[4096];
static int g_nfiles;
static size_t g_prefix;

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st; (void)ftw;
    if (type != FTW_F || g_nfiles >= 4096) return 0;
    size_t len;
    XcError err = {{0}};
    char *buf = xc_read_file(path, (size_t)1 << 30, &len, &err);
    if (!buf) return 0;
    snprintf(g_files[g_nfiles].rel, sizeof g_files[0].rel, "%s", path + g_prefix);
    g_files[g_nfiles++].h = hash64(buf, len, 0);
    xc_free(buf);
    return 0;
}

static int cmp_files(const void *a, const void *b) { return strcmp(((const FileHash *)a)->rel, ((const FileHash *)b)->rel); }

static int hash_tree(const char *name, FileHash *out) {
    char dir[128];
    snprintf(dir, sizeof dir, "%s/%s", g_root, name);
    g_nfiles = 0;
    g_prefix = strlen(dir);
    nftw(dir, visit, 16, FTW_PHYS);
    qsort(g_files, (size_t)g_nfiles, sizeof *g_files, cmp_files);
    memcpy(out, g_files, sizeof *out * (size_t)g_nfiles);
    return g_nfiles;
}

static void test_determinism(void) {
    static FileHash a[4096], b[4096], c[4096];
    if (!gen("w1", 7, 2) || !gen("w2", 7, 1) || !gen("w3", 8, 2)) return;
    int na = hash_tree("w1", a), nb = hash_tree("w2", b), nc = hash_tree("w3", c);
    XC_EXPECT(na > 200 && na == nb && na == nc, "file counts %d %d %d", na, nb, nc);
    int diff = 0, moved = 0;
    for (int i = 0; i < na && i < nb; i++)
        if (strcmp(a[i].rel, b[i].rel) || a[i].h != b[i].h) {
            if (diff++ < 5) fprintf(stderr, "  differs for the same seed: %s / %s\n", a[i].rel, b[i].rel);
        }
    for (int i = 0; i < na && i < nc; i++) moved += !strcmp(a[i].rel, c[i].rel) && a[i].h != c[i].h;
    XC_EXPECT(diff == 0, "%d of %d files differ between two writes with seed 7 (2 threads, 1 thread)", diff, na);
    XC_EXPECT(moved > na / 2, "seed 8 changed only %d of %d files", moved, na);
    printf("determinism: %d files identical for the same seed (1 and 2 threads), %d changed by another seed\n", na, moved);
}

// ---- lists, label files, class sets --------------------------------------------------------------------------------
static void expect_list(const char *list, const char *root, int K, int64_t n_expected) {
    char lp[256], rp[256];
    snprintf(lp, sizeof lp, "%s/w1/%s", g_root, list);
    snprintf(rp, sizeof rp, "%s/w1/%s", g_root, root);
    XcError err = {{0}};
    Dataset *ds = dataset_open(lp, rp, K, &err);
    XC_EXPECT(ds && ds->n == n_expected && ds->n_missing == 0, "%s: %s (n %lld, want %lld, missing %lld)", list,
              err.msg, ds ? (long long)ds->n : -1LL, (long long)n_expected, ds ? (long long)ds->n_missing : -1LL);
    dataset_free(ds);
}

static int load_labels(const char *csv, LabelSet *ls) {
    char p[256];
    snprintf(p, sizeof p, "%s/w1/%s", g_root, csv);
    XcError err = {{0}};
    int rc = labels_load(p, ls, &err);
    XC_EXPECT(rc == XC_OK, "%s: %s", csv, err.msg);
    return rc == XC_OK ? ls->count : 0;
}

static int word_in(const char *word, const char *text) { // whole-word match
    size_t n = strlen(word);
    for (const char *s = text; (s = strstr(s, word)); s++)
        if ((s == text || s[-1] == ' ') && (s[n] == 0 || s[n] == ' ')) return 1;
    return 0;
}

static void test_products_and_splits(void) {
    static const char *const labels[WORLD_PRODUCTS] = {"source/labels.csv", "target_hmdb/labels.csv", "target_ucf/labels.csv",
                                                       "zeroshot/split1_labels.csv", "zeroshot/split2_labels.csv",
                                                       "zeroshot/split3_labels.csv"};
    WorldClass cls[WORLD_PRODUCTS][WORLD_MAX_CLASSES];
    int K[WORLD_PRODUCTS], owner[WORLD_ACTIONS][WORLD_SHAPES];
    memset(owner, -1, sizeof owner);
    char source_names[8192] = "";
    for (int p = 0; p < WORLD_PRODUCTS; p++) {
        K[p] = world_classes((WorldProduct)p, cls[p]);
        LabelSet ls;
        int n = load_labels(labels[p], &ls);
        XC_EXPECT(n == K[p], "%s: %d classes, world_classes says %d", labels[p], n, K[p]);
        for (int c = 0; c < K[p] && c < n; c++) {
            char name[128];
            world_class_name(&cls[p][c], name, sizeof name);
            XC_EXPECT(!strcmp(name, ls.names[c]), "%s row %d: `%s` vs `%s`", labels[p], c, ls.names[c], name);
            int *o = &owner[cls[p][c].action][cls[p][c].shape];
            XC_EXPECT(*o < 0, "(%s, %s) in two products", world_action_names[cls[p][c].action], world_shape_names[cls[p][c].shape]);
            *o = p;
            XC_EXPECT(cls[p][c].colour < 0 || !world_combo_unseen(cls[p][c].colour, cls[p][c].shape), "%s: unseen pair", name);
            if (p == WORLD_SOURCE) { strcat(source_names, name); strcat(source_names, " "); }
        }
        if (n) labels_free(&ls);
    }
    XC_EXPECT(K[WORLD_SOURCE] >= 40 && K[WORLD_TARGET_HMDB] >= 10 && K[WORLD_TARGET_UCF] >= 10, "class counts %d %d %d",
              K[0], K[1], K[2]);
    XC_EXPECT(K[3] >= 8 && K[4] >= 8 && K[5] >= 8, "zero-shot class counts %d %d %d", K[3], K[4], K[5]);
    // names pairwise distinct across all products; every word of a non-source name occurs in a source name
    int clashes = 0, new_words = 0;
    for (int p = 0; p < WORLD_PRODUCTS; p++)
        for (int c = 0; c < K[p]; c++) {
            char a[128], b[128];
            world_class_name(&cls[p][c], a, sizeof a);
            for (int q = 0; q < WORLD_PRODUCTS; q++)
                for (int d = 0; d < K[q]; d++) {
                    world_class_name(&cls[q][d], b, sizeof b);
                    clashes += (p != q || c != d) && !strcmp(a, b);
                }
            if (p == WORLD_SOURCE) continue;
            for (char *w = strtok(a, " "); w; w = strtok(NULL, " "))
                if (!word_in(w, source_names)) { new_words++; fprintf(stderr, "  `%s` of a %s class is not in the source\n", w, world_product_names[p]); }
        }
    XC_EXPECT(clashes == 0 && new_words == 0, "%d repeated class names, %d words unseen in the source", clashes, new_words);
    // the lists: every class, every video present
    WorldConfig wc = small_world(7);
    expect_list("source/train.txt", "source/videos", K[0], (int64_t)K[0] * wc.source_train);
    expect_list("source/val.txt", "source/videos", K[0], (int64_t)K[0] * wc.source_val);
    expect_list("target_hmdb/train.txt", "target_hmdb/videos", K[1], (int64_t)K[1] * wc.target_train);
    expect_list("target_ucf/test.txt", "target_ucf/videos", K[2], (int64_t)K[2] * wc.target_test);
    expect_list("zeroshot/split2_test.txt", "zeroshot/videos", K[4], (int64_t)K[4] * wc.zeroshot_test);
    expect_list("images/train.txt", "images/train.tar", WORLD_COMBOS, wc.train_images);
    expect_list("images/probe_colour.txt", "images/probe.tar", WORLD_COLOURS, 64LL * wc.probe_per_combo);
    expect_list("images/probe_position.txt", "images/probe.tar", WORLD_CELLS, 64LL * wc.probe_per_combo);
    expect_list("images/probe_unseen.txt", "images/probe.tar", WORLD_UNSEEN, 8LL * wc.probe_per_combo);
    static const char *const csvs[6] = {"images/colour.csv", "images/shape.csv", "images/size.csv", "images/position.csv",
                                        "images/combos.csv", "images/unseen_combos.csv"};
    static const int counts[6] = {WORLD_COLOURS, WORLD_SHAPES, WORLD_SIZES, WORLD_CELLS, WORLD_COMBOS, WORLD_UNSEEN};
    for (int k = 0; k < 6; k++) {
        LabelSet ls;
        int n = load_labels(csvs[k], &ls);
        XC_EXPECT(n == counts[k], "%s: %d rows", csvs[k], n);
        if (n) labels_free(&ls);
    }
    printf("splits: source %d, hmdb %d, ucf %d, zero-shot %d/%d/%d classes, disjoint\n", K[0], K[1], K[2], K[3], K[4], K[5]);
}

// ---- captions fit the context; unseen pairs stay unseen -----------------------------------------------------------
static Tokenizer *g_tok;

static void test_tokens(void) {
    WorldConfig wc = small_world(7);
    int max_tokens = 0, mismatches = 0, over = 0;
    for (int64_t i = 0; i < 20000; i++) {
        WorldScene sc;
        WorldImageSplit split = (WorldImageSplit)(i % 3);
        world_image_scene(&wc, split, i, &sc);
        for (int v = 0; v < 2; v++) {
            char cap[WORLD_CAPTION_MAX];
            world_image_caption(&wc, split, i, v, &sc, cap, sizeof cap);
            int n = (int)tokenizer_encode_ids(g_tok, cap, NULL, 0);
            if (n != world_caption_tokens(cap) && mismatches++ < 3)
                fprintf(stderr, "  `%s`: %d tokens, world_caption_tokens says %d\n", cap, n, world_caption_tokens(cap));
            over += n > WORLD_CONTEXT - 2;
            if (n > max_tokens) max_tokens = n;
        }
    }
    XC_EXPECT(mismatches == 0, "world_caption_tokens wrong for %d captions", mismatches);
    XC_EXPECT(over == 0, "%d of 40000 captions do not fit %d tokens", over, WORLD_CONTEXT);
    // the written captions, through the reader in strict mode
    for (int s = 0; s < WORLD_IMG_SPLITS; s++) {
        char list[256], root[256];
        snprintf(list, sizeof list, "%s/w1/images/%s_captions.tsv", g_root, world_image_split_names[s]);
        snprintf(root, sizeof root, "%s/w1/images/%s.tar", g_root, world_image_split_names[s]);
        CaptionListOptions opt = caption_list_options_default();
        opt.tok = g_tok;
        opt.strict = 1;
        XcError err = {{0}};
        CaptionList *cl = caption_list_open(list, root, &opt, &err);
        XC_EXPECT(cl && cl->n == world_image_count(&wc, (WorldImageSplit)s) * wc.captions_per_image &&
                  cl->max_tokens <= WORLD_CONTEXT - 2, "%s: %s", list, err.msg);
        caption_list_free(cl);
    }
    // class names fit even the demo's context of 16; attribute phrases fit WORLD_CONTEXT
    int longest_class = 0;
    for (int p = 0; p < WORLD_PRODUCTS; p++) {
        WorldClass cls[WORLD_MAX_CLASSES];
        int K = world_classes((WorldProduct)p, cls);
        for (int c = 0; c < K; c++) {
            char name[128];
            world_class_name(&cls[c], name, sizeof name);
            int n = (int)tokenizer_encode_ids(g_tok, name, NULL, 0);
            if (n > longest_class) longest_class = n;
        }
    }
    XC_EXPECT(longest_class <= 14, "a class name has %d tokens", longest_class);
    for (int i = 0; i < WORLD_COMBOS; i++) {
        char a[96], b[96], c[96];
        world_combo_phrase(i / 8, i % 8, a, sizeof a);
        world_cell_phrase(i % WORLD_CELLS, b, sizeof b);
        world_colour_phrase(i % 8, c, sizeof c);
        XC_EXPECT(tokenizer_encode_ids(g_tok, a, NULL, 0) + tokenizer_encode_ids(g_tok, b, NULL, 0) +
                  tokenizer_encode_ids(g_tok, c, NULL, 0) <= WORLD_CONTEXT - 2, "phrases %s / %s / %s", a, b, c);
    }
    printf("tokens: longest of 40000 captions %d, longest class name %d (context %d)\n", max_tokens, longest_class,
           WORLD_CONTEXT);
}

static void test_unseen(void) {
    static const char *const colours[8][2] = {{"red"}, {"orange"}, {"yellow"}, {"green"}, {"cyan"}, {"blue"}, {"purple", "violet"}, {"pink"}};
    static const char *const shapes[8][2] = {{"circle", "disc"}, {"square"}, {"triangle"}, {"diamond", "rhombus"}, {"star"},
                                             {"cross", "plus sign"}, {"ring"}, {"heart"}};
    WorldConfig wc = small_world(7);
    int objects = 0, phrases = 0, probe[WORLD_COMBOS] = {0};
    for (int64_t i = 0; i < 12000; i++) {
        WorldImageSplit split = i % 4 == 3 ? WORLD_IMG_VAL : WORLD_IMG_TRAIN;
        WorldScene sc;
        world_image_scene(&wc, split, i, &sc);
        for (int k = 0; k < sc.n; k++) objects += world_combo_unseen(sc.obj[k].colour, sc.obj[k].shape);
        char cap[WORLD_CAPTION_MAX];
        world_image_caption(&wc, split, i, 0, &sc, cap, sizeof cap);
        for (int c = 0; c < 8; c++)
            for (int a = 0; a < 2 && colours[c][a]; a++)
                for (int b = 0; b < 2 && shapes[(3 * c + 2) % 8][b]; b++) {
                    char x[64], y[64];
                    snprintf(x, sizeof x, "%s %s", colours[c][a], shapes[(3 * c + 2) % 8][b]);
                    snprintf(y, sizeof y, "%s that is %s", shapes[(3 * c + 2) % 8][b], colours[c][a]);
                    phrases += strstr(cap, x) || strstr(cap, y);
                }
    }
    for (int64_t i = 0; i < world_image_count(&wc, WORLD_IMG_PROBE); i++) {
        WorldScene sc;
        world_image_scene(&wc, WORLD_IMG_PROBE, i, &sc);
        probe[sc.obj[0].colour * 8 + sc.obj[0].shape] += sc.n == 1;
    }
    int balanced = 1;
    for (int c = 0; c < WORLD_COMBOS; c++) balanced &= probe[c] == wc.probe_per_combo;
    XC_EXPECT(objects == 0 && phrases == 0, "unseen pairs in training: %d objects, %d caption phrases", objects, phrases);
    XC_EXPECT(balanced, "the probe split does not show every colour-shape pair %d times", wc.probe_per_combo);
}

// ---- labels against pixels -------------------------------------------------------------------------------------------
typedef struct Blob { int area; float cx, cy, spread; int colour; } Blob;

// The saturated pixels of a frame (objects; backgrounds and noise are grey): area, centroid, spread, main colour.
static Blob blob(const uint8_t *rgb, int S, uint8_t *mask) {
    Blob b = {0, 0, 0, 0, -1};
    int votes[WORLD_COLOURS] = {0};
    for (int p = 0; p < S * S; p++) {
        const uint8_t *c = rgb + 3 * p;
        int mx = c[0] > c[1] ? (c[0] > c[2] ? c[0] : c[2]) : (c[1] > c[2] ? c[1] : c[2]);
        int mn = c[0] < c[1] ? (c[0] < c[2] ? c[0] : c[2]) : (c[1] < c[2] ? c[1] : c[2]);
        int on = mx - mn > 60;
        if (mask) mask[p] = (uint8_t)on;
        if (!on) continue;
        b.area++;
        b.cx += (float)(p % S) + 0.5f;
        b.cy += (float)(p / S) + 0.5f;
        int best = 0;
        float bd = 1e30f;
        for (int k = 0; k < WORLD_COLOURS; k++) {
            float d = 0;
            for (int j = 0; j < 3; j++) d += ((float)c[j] - world_palette[k][j]) * ((float)c[j] - world_palette[k][j]);
            if (d < bd) { bd = d; best = k; }
        }
        votes[best]++;
    }
    if (!b.area) return b;
    b.cx /= (float)b.area;
    b.cy /= (float)b.area;
    for (int p = 0; p < S * S; p++) {
        const uint8_t *c = rgb + 3 * p;
        int mx = c[0] > c[1] ? (c[0] > c[2] ? c[0] : c[2]) : (c[1] > c[2] ? c[1] : c[2]);
        int mn = c[0] < c[1] ? (c[0] < c[2] ? c[0] : c[2]) : (c[1] < c[2] ? c[1] : c[2]);
        if (mx - mn > 60) b.spread += hypotf((float)(p % S) + 0.5f - b.cx, (float)(p / S) + 0.5f - b.cy) / (float)b.area;
    }
    for (int k = 0; k < WORLD_COLOURS; k++) if (b.colour < 0 || votes[k] > votes[b.colour]) b.colour = k;
    return b;
}

static void test_probe_pixels(void) {
    static const char *const lists[4] = {"colour", "shape", "size", "position"};
    Dataset *ds[4];
    for (int k = 0; k < 4; k++) {
        char lp[256], root[256];
        snprintf(lp, sizeof lp, "%s/w1/images/probe_%s.txt", g_root, lists[k]);
        snprintf(root, sizeof root, "%s/w1/images/probe.tar", g_root);
        XcError err = {{0}};
        ds[k] = dataset_open(lp, root, 0, &err);
        XC_EXPECT(ds[k] != NULL, "%s", err.msg);
        if (!ds[k]) { for (int j = 0; j < k; j++) dataset_free(ds[j]); return; }
    }
    WorldConfig wc = small_world(7);
    const int S = 32;
    int wrong[4] = {0}, n = (int)ds[0]->n;
    double min_margin = 1e30;   // L1 distance from an image to its scene drawn with the nearest other shape
    double area[WORLD_SHAPES][2] = {{0}}, count[WORLD_SHAPES][2] = {{0}};
    for (int i = 0; i < n; i++) {
        uint8_t rgb[32 * 32 * 3], mask[32 * 32];
        XcError err = {{0}};
        if (ppm_read(ds[0]->root, ds[0]->items[i].offset, ds[0]->items[i].size, ds[0]->items[i].path, S, rgb, &err) != XC_OK) {
            XC_EXPECT(0, "%s", err.msg);
            continue;
        }
        const int colour = ds[0]->items[i].label, shape = ds[1]->items[i].label, size = ds[2]->items[i].label,
                  cell = ds[3]->items[i].label;
        Blob b = blob(rgb, S, mask);
        wrong[0] += b.colour != colour;
        wrong[3] += (int)(b.cy * 3 / (float)S) * 3 + (int)(b.cx * 3 / (float)S) != cell;
        // shape: of the scene drawn with each of the 8 shapes, the labelled one is the image, and the others differ
        // from it by at least a few pixels' worth of colour (shapes tell apart even when small)
        WorldScene sc;
        world_image_scene(&wc, WORLD_IMG_PROBE, atoll(strchr(ds[0]->items[i].path, '/') + 1), &sc);
        int best = -1;
        double best_d = 1e30, second = 1e30;
        for (int s = 0; s < WORLD_SHAPES; s++) {
            uint8_t alt[32 * 32 * 3];
            sc.obj[0].shape = s;
            world_render(&sc, S, alt);
            double d = 0;
            for (int k = 0; k < S * S * 3; k++) d += fabs((double)alt[k] - rgb[k]);
            if (d < best_d) { second = best_d; best_d = d; best = s; }
            else if (d < second) second = d;
        }
        if (best != shape || best_d != 0) wrong[1]++;
        if (second < min_margin) min_margin = second;
        area[shape][size] += b.area;
        count[shape][size] += 1;
    }
    for (int s = 0; s < WORLD_SHAPES; s++)
        wrong[2] += count[s][0] && count[s][1] && area[s][1] / count[s][1] < 1.6 * area[s][0] / count[s][0];
    XC_EXPECT(n == 64 * wc.probe_per_combo && !wrong[0] && !wrong[1] && !wrong[2] && !wrong[3],
              "%d probe images: colour wrong %d, shape %d, size (shapes) %d, position %d", n, wrong[0], wrong[1],
              wrong[2], wrong[3]);
    XC_EXPECT(min_margin >= 1000, "two shapes render almost alike: L1 distance %.0f", min_margin);
    printf("probe: colour, shape, size and position labels agree with the pixels of %d images (shapes differ by >= %.0f "
           "levels summed)\n", n, min_margin);
    for (int k = 0; k < 4; k++) dataset_free(ds[k]);
}

// Every class of every product, 3 videos each without distractors: the action shows in the pixels.
static void test_actions(void) {
    WorldConfig wc = small_world(11);
    wc.frames = 16;
    wc.distractor_prob = 0;
    const int S = 32, T = wc.frames;
    int checked = 0, bad = 0;
    for (int p = 0; p < WORLD_PRODUCTS; p++) {
        WorldClass cls[WORLD_MAX_CLASSES];
        int K = world_classes((WorldProduct)p, cls);
        for (int c = 0; c < K; c++)
            for (int i = 0; i < 3; i++) {
                WorldVideo v;
                world_video_sample(&wc, (WorldProduct)p, c, i, &v);
                Blob b[64];
                WorldScene first = {0}, last = {0};
                for (int t = 0; t < T; t++) {
                    WorldScene sc;
                    uint8_t rgb[32 * 32 * 3];
                    world_video_frame(&v, t, &sc);
                    if (t == 0) first = sc;
                    last = sc;
                    world_render(&sc, S, rgb);
                    b[t] = blob(rgb, S, NULL);
                }
                const Blob *b0 = &b[0], *b1 = &b[T - 1];
                float top = b0->cy;
                int off = 0, flips = 0, back_down = 0; // bouncing: up by 0.2 S, then down again by 0.1 S
                for (int t = 0; t < T; t++) {
                    if (b[t].cy < top) top = b[t].cy;
                    back_down |= top < b0->cy - 0.2f * S && b[t].cy > top + 0.1f * S;
                    off += b[t].area == 0;
                    flips += t > 0 && (b[t].area == 0) != (b[t - 1].area == 0);
                }
                int ok;
                switch (v.cls.action) {
                case WORLD_ACT_LEFT: ok = b1->cx - b0->cx < -0.25f * S; break;
                case WORLD_ACT_RIGHT: ok = b1->cx - b0->cx > 0.25f * S; break;
                case WORLD_ACT_UP: ok = b1->cy - b0->cy < -0.25f * S; break;
                case WORLD_ACT_DOWN: ok = b1->cy - b0->cy > 0.25f * S; break;
                case WORLD_ACT_GROW: ok = b1->area > 3 * b0->area; break;
                case WORLD_ACT_SHRINK: ok = b0->area > 3 * b1->area; break;
                case WORLD_ACT_CW: ok = last.obj[0].angle - first.obj[0].angle > 0.9f; break;
                case WORLD_ACT_CCW: ok = last.obj[0].angle - first.obj[0].angle < -0.9f; break;
                case WORLD_ACT_BLINK: ok = off >= 2 && off <= T - 2 && flips >= 2; break;
                case WORLD_ACT_FADE_IN: ok = b0->area == 0 && b1->area > 10; break;
                case WORLD_ACT_FADE_OUT: ok = b0->area > 10 && b1->area == 0; break;
                case WORLD_ACT_TURN: ok = b0->colour == v.cls.colour && b1->colour == v.cls.colour2; break;
                case WORLD_ACT_BOUNCE: ok = back_down; break;
                case WORLD_ACT_APPROACH: ok = b1->spread < 0.7f * b0->spread; break;
                case WORLD_ACT_SEPARATE: ok = b1->spread > 1.4f * b0->spread; break;
                default: ok = 0;
                }
                if (v.cls.colour >= 0 && b0->area > 0 && b0->colour != v.cls.colour) ok = 0;
                checked++;
                if (!ok) {
                    char name[128];
                    world_class_name(&v.cls, name, sizeof name);
                    if (bad++ < 5) fprintf(stderr, "  %s video %d: the pixels do not show it (area %d -> %d, x %.1f -> %.1f, "
                                           "y %.1f -> %.1f, spread %.1f -> %.1f, colour %d -> %d)\n", name, i, b0->area,
                                           b1->area, b0->cx, b1->cx, b0->cy, b1->cy, b0->spread, b1->spread, b0->colour, b1->colour);
                }
            }
    }
    XC_EXPECT(bad == 0, "%d of %d videos do not show their class", bad, checked);
    printf("actions: %d videos (every class of every product) show their action in the pixels\n", checked);
}

// A written video of each product decodes to the frames rendered for its list line.
static void test_written_videos(void) {
    static const char *const lists[WORLD_PRODUCTS] = {"source/val.txt", "target_hmdb/test.txt", "target_ucf/train.txt",
                                                      "zeroshot/split1_test.txt", "zeroshot/split2_test.txt",
                                                      "zeroshot/split3_test.txt"};
    WorldConfig wc = small_world(7);
    for (int p = 0; p < WORLD_PRODUCTS; p++) {
        char lp[256], root[256];
        snprintf(lp, sizeof lp, "%s/w1/%s", g_root, lists[p]);
        snprintf(root, sizeof root, "%s/w1/%s/videos", g_root, p >= WORLD_ZEROSHOT_1 ? "zeroshot" : world_product_names[p]);
        XcError err = {{0}};
        Dataset *ds = dataset_open(lp, root, 0, &err);
        XC_EXPECT(ds && ds->n > 1, "%s: %s", lp, err.msg);
        if (!ds || ds->n < 2) { dataset_free(ds); continue; }
        const int64_t item = ds->n - 1, c = ds->items[item].label; // the last video of the last class
        const int index = p == WORLD_SOURCE ? wc.source_train : p <= WORLD_TARGET_UCF && strstr(lp, "test") ? wc.target_train : 0;
        char path[600];
        VideoSource src = dataset_source(ds, item, path, sizeof path);
        Video *vid = video_open(src, NULL, &err);
        XC_EXPECT(vid && video_frame_count(vid) == wc.frames, "%s: %s", path, err.msg);
        if (vid && video_frame_count(vid) == wc.frames) {
            int64_t idx[64];
            uint8_t got[64 * 32 * 32 * 3], want[32 * 32 * 3];
            for (int t = 0; t < wc.frames; t++) idx[t] = t;
            XC_EXPECT(video_read_frames(vid, idx, wc.frames, 0, VIDEO_SCALE_REF, got, &err) == XC_OK, "%s", err.msg);
            WorldVideo v;
            world_video_sample(&wc, (WorldProduct)p, (int)c, index, &v);
            double diff = 0;
            for (int t = 0; t < wc.frames; t++) {
                WorldScene sc;
                world_video_frame(&v, t, &sc);
                world_render(&sc, 32, want);
                for (int k = 0; k < 32 * 32 * 3; k++) diff += fabs((double)got[(size_t)t * 32 * 32 * 3 + k] - want[k]);
            }
            diff /= (double)wc.frames * 32 * 32 * 3;
            XC_EXPECT(diff < 8.0, "%s: decoded frames differ from the rendered ones by %.2f levels on average", path, diff);
        }
        video_close(vid);
        dataset_free(ds);
    }
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/xclip_world_XXXXXX");
    XC_CHECK(mkdtemp(g_root), "mkdtemp");
    char vocab[512];
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    XcError err = {{0}};
    g_tok = tokenizer_load_clip(vocab, &err);
    XC_CHECK(g_tok, "%s (the CLIP vocabulary is needed to check caption lengths)", err.msg);
    test_determinism();
    test_products_and_splits();
    test_tokens();
    test_unseen();
    test_probe_pixels();
    test_actions();
    test_written_videos();
    tokenizer_free(g_tok);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_root);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", g_root);
    return xc_test_summary("test_world");
}
