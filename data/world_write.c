// world_write.c - writes the world's products to disk: captioned images (uncompressed .tar of PPM files, lists,
// captions, attribute label CSVs) and the video datasets (MP4 files, lists, label CSVs). See world.h and
// data/README.md for the layout. Items are rendered in parallel (OpenMP) and written in index order, so the
// files do not depend on the number of threads.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "data/synth.h"
#include "data/world.h"
#include "data/world_video.h"

enum { BLOCK = 2048 };   // images rendered per parallel block

static int mkdir_p(const char *dir, XcError *err) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return xc_err(err, "%s: bad directory name", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return xc_err(err, "%s: cannot create directory: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return xc_err(err, "%s: exists and is not a directory", dir);
    return XC_OK;
}

static FILE *open_out(const char *dir, const char *name, XcError *err) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p) {
        xc_err(err, "%s/%s: path too long", dir, name);
        return NULL;
    }
    return xc_fopen(p, "wb", err);
}

static int close_out(FILE *f, const char *dir, const char *name, XcError *err) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return xc_err(err, "%s/%s: write failed: %s", dir, name, strerror(errno));
    return XC_OK;
}

// A progress line at the end of a part and every 2 seconds before (*last: when the previous line was printed).
static void progress(const WorldConfig *wc, const char *what, int64_t done, int64_t total, double t0, double *last) {
    double now = xc_now();
    if (wc->quiet || (done < total && now - *last < 2.0)) return;
    *last = now;
    printf("world: %-22s %8lld / %-8lld %6.1f s\n", what, (long long)done, (long long)total, now - t0);
    fflush(stdout);
}

// ---- uncompressed ustar archive (deterministic: mtime 0, uid/gid 0, mode 0644) ------------------------------
static void tar_header(unsigned char h[512], const char *name, size_t size) {
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size);
    memcpy(h + 136, "00000000000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    h[155] = ' ';
}

static void tar_add(FILE *f, const char *name, const void *data, size_t n) {
    unsigned char h[512];
    static const unsigned char zeros[512];
    tar_header(h, name, n);
    fwrite(h, 1, 512, f);
    fwrite(data, 1, n, f);
    if (n % 512) fwrite(zeros, 1, 512 - n % 512, f);
}

static void tar_end(FILE *f) {
    static const unsigned char zeros[1024];
    fwrite(zeros, 1, sizeof zeros, f);
}

// ---- captioned images -------------------------------------------------------------------------------------------
typedef struct ImageFiles {
    FILE *tar, *captions, *list;   // <split>.tar, <split>_captions.tsv, <split>.txt
    FILE *attr[6];                 // probe: colour, shape, size, position, combo, unseen lists
} ImageFiles;
static const char *const kAttrList[6] = {"colour", "shape", "size", "position", "combo", "unseen"};

static int write_label_csvs(const char *dir, XcError *err) {
    static const char *const names[6] = {"colour.csv", "shape.csv", "size.csv", "position.csv", "combos.csv",
                                         "unseen_combos.csv"};
    static const int counts[6] = {WORLD_COLOURS, WORLD_SHAPES, WORLD_SIZES, WORLD_CELLS, WORLD_COMBOS, WORLD_UNSEEN};
    for (int k = 0; k < 6; k++) {
        FILE *f = open_out(dir, names[k], err);
        if (!f) return XC_ERR;
        fprintf(f, "id,name\n");
        for (int i = 0; i < counts[k]; i++) {
            char name[96];
            if (k == 0) world_colour_phrase(i, name, sizeof name);
            else if (k == 1) world_shape_phrase(i, name, sizeof name);
            else if (k == 2) world_size_phrase(i, name, sizeof name);
            else if (k == 3) world_cell_phrase(i, name, sizeof name);
            else if (k == 4) world_combo_phrase(i / WORLD_SHAPES, i % WORLD_SHAPES, name, sizeof name);
            else world_combo_phrase(i, (3 * i + 2) % WORLD_SHAPES, name, sizeof name); // unseen combination i
            fprintf(f, "%d,%s\n", i, name);
        }
        if (close_out(f, dir, names[k], err) != XC_OK) return XC_ERR;
    }
    return XC_OK;
}

static int open_image_files(const char *dir, WorldImageSplit split, ImageFiles *fs, XcError *err) {
    memset(fs, 0, sizeof *fs);
    const char *name = world_image_split_names[split];
    char p[256];
    snprintf(p, sizeof p, "%s.tar", name);
    if (!(fs->tar = open_out(dir, p, err))) return XC_ERR;
    snprintf(p, sizeof p, "%s_captions.tsv", name);
    if (!(fs->captions = open_out(dir, p, err))) return XC_ERR;
    snprintf(p, sizeof p, "%s.txt", name);
    if (!(fs->list = open_out(dir, p, err))) return XC_ERR;
    for (int k = 0; k < 6 && split == WORLD_IMG_PROBE; k++) {
        snprintf(p, sizeof p, "probe_%s.txt", kAttrList[k]);
        if (!(fs->attr[k] = open_out(dir, p, err))) return XC_ERR;
    }
    return XC_OK;
}

static int close_image_files(const char *dir, WorldImageSplit split, ImageFiles *fs, XcError *err) {
    const char *name = world_image_split_names[split];
    char p[256];
    int rc = XC_OK;
    if (fs->tar) { tar_end(fs->tar); snprintf(p, sizeof p, "%s.tar", name); rc |= close_out(fs->tar, dir, p, err); }
    if (fs->captions) { snprintf(p, sizeof p, "%s_captions.tsv", name); rc |= close_out(fs->captions, dir, p, err); }
    if (fs->list) { snprintf(p, sizeof p, "%s.txt", name); rc |= close_out(fs->list, dir, p, err); }
    for (int k = 0; k < 6; k++)
        if (fs->attr[k]) { snprintf(p, sizeof p, "probe_%s.txt", kAttrList[k]); rc |= close_out(fs->attr[k], dir, p, err); }
    return rc ? XC_ERR : XC_OK;
}

// One rendered image waiting to be written: PPM bytes, captions, scene.
typedef struct Pending { uint8_t *ppm; size_t ppm_len; char *captions; WorldScene scene; } Pending;

static void write_image(const WorldConfig *wc, ImageFiles *fs, WorldImageSplit split, int64_t i, const Pending *pd) {
    char member[64];
    snprintf(member, sizeof member, "%s/%07lld.ppm", world_image_split_names[split], (long long)i);
    tar_add(fs->tar, member, pd->ppm, pd->ppm_len);
    for (int v = 0; v < wc->captions_per_image; v++)
        fprintf(fs->captions, "%s\t%s\n", member, pd->captions + (size_t)v * WORLD_CAPTION_MAX);
    const WorldObject *o = &pd->scene.obj[0];
    fprintf(fs->list, "%s %d\n", member, o->colour * WORLD_SHAPES + o->shape);
    if (split != WORLD_IMG_PROBE) return;
    const int labels[5] = {o->colour, o->shape, o->size, o->cell, o->colour * WORLD_SHAPES + o->shape};
    for (int k = 0; k < 5; k++) fprintf(fs->attr[k], "%s %d\n", member, labels[k]);
    int u = world_unseen_index(o->colour, o->shape);
    if (u >= 0) fprintf(fs->attr[5], "%s %d\n", member, u);
}

static int write_image_split(const char *dir, const WorldConfig *wc, WorldImageSplit split, XcError *err) {
    const int S = wc->image_size;
    const int64_t N = world_image_count(wc, split);
    char header[32];
    const int hlen = snprintf(header, sizeof header, "P6\n%d %d\n255\n", S, S);
    const size_t ppm_len = (size_t)hlen + (size_t)S * S * 3;
    ImageFiles fs;
    int rc = open_image_files(dir, split, &fs, err);
    Pending *pd = xc_calloc(BLOCK, sizeof *pd);
    uint8_t *ppm = xc_malloc((size_t)BLOCK * ppm_len);
    char *caps = xc_malloc((size_t)BLOCK * wc->captions_per_image * WORLD_CAPTION_MAX);
    char what[32];
    snprintf(what, sizeof what, "images/%s", world_image_split_names[split]);
    double t0 = xc_now(), last = t0;
    for (int64_t b0 = 0; b0 < N && rc == XC_OK; b0 += BLOCK) {
        const int nb = (int)(N - b0 < BLOCK ? N - b0 : BLOCK);
#pragma omp parallel for schedule(dynamic, 16)
        for (int j = 0; j < nb; j++) {
            Pending *p = &pd[j];
            p->ppm = ppm + (size_t)j * ppm_len;
            p->ppm_len = ppm_len;
            p->captions = caps + (size_t)j * wc->captions_per_image * WORLD_CAPTION_MAX;
            world_image_scene(wc, split, b0 + j, &p->scene);
            memcpy(p->ppm, header, (size_t)hlen);
            world_render(&p->scene, S, p->ppm + hlen);
            for (int v = 0; v < wc->captions_per_image; v++)
                world_image_caption(wc, split, b0 + j, v, &p->scene, p->captions + (size_t)v * WORLD_CAPTION_MAX,
                                    WORLD_CAPTION_MAX);
        }
        for (int j = 0; j < nb; j++) write_image(wc, &fs, split, b0 + j, &pd[j]);
        if (ferror(fs.tar) || ferror(fs.captions)) // a full disk stops the split at once
            rc = xc_err(err, "%s/%s.tar: write failed: %s", dir, world_image_split_names[split], strerror(errno));
        progress(wc, what, b0 + nb, N, t0, &last);
    }
    xc_free(caps);
    xc_free(ppm);
    xc_free(pd);
    if (close_image_files(dir, split, &fs, rc == XC_OK ? err : NULL) != XC_OK) rc = XC_ERR;
    return rc;
}

static int write_images(const char *outdir, const WorldConfig *wc, XcError *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/images", outdir);
    if (mkdir_p(dir, err) != XC_OK || write_label_csvs(dir, err) != XC_OK) return XC_ERR;
    for (int s = 0; s < WORLD_IMG_SPLITS; s++)
        if (write_image_split(dir, wc, (WorldImageSplit)s, err) != XC_OK) return XC_ERR;
    return XC_OK;
}

// ---- videos -----------------------------------------------------------------------------------------------------
typedef struct FrameCtx { const WorldVideo *v; int S; } FrameCtx;
static void render_frame(void *ctx, int t, uint8_t *rgb) {
    const FrameCtx *c = ctx;
    WorldScene sc;
    world_video_frame(c->v, t, &sc);
    world_render(&sc, c->S, rgb);
}

// Where the files of product p go: dir (labels, lists), videos root, the prefix of the list paths below the
// root, and the names of the two lists (the first may be NULL: zero-shot splits have only a test list).
typedef struct ProductLayout {
    char dir[4096], root[4096], prefix[64];
    const char *lists[2], *kinds[2], *labels;   // list file names; file name stems ("train", "val", "test")
    int counts[2];                              // videos per class in each list
} ProductLayout;

static void product_layout(const char *outdir, const WorldConfig *wc, WorldProduct p, ProductLayout *L) {
    memset(L, 0, sizeof *L);
    if (p >= WORLD_ZEROSHOT_1) { // zeroshot/splitN_labels.csv, zeroshot/splitN_test.txt, zeroshot/videos/splitN/...
        static const char *const labels[3] = {"split1_labels.csv", "split2_labels.csv", "split3_labels.csv"};
        static const char *const tests[3] = {"split1_test.txt", "split2_test.txt", "split3_test.txt"};
        snprintf(L->dir, sizeof L->dir, "%s/zeroshot", outdir);
        snprintf(L->root, sizeof L->root, "%s/zeroshot/videos", outdir);
        snprintf(L->prefix, sizeof L->prefix, "%s/", world_product_names[p]);
        L->labels = labels[p - WORLD_ZEROSHOT_1];
        L->lists[1] = tests[p - WORLD_ZEROSHOT_1];
        L->kinds[1] = "test";
        L->counts[1] = wc->zeroshot_test;
        return;
    }
    snprintf(L->dir, sizeof L->dir, "%s/%s", outdir, world_product_names[p]);
    snprintf(L->root, sizeof L->root, "%s/%s/videos", outdir, world_product_names[p]);
    L->labels = "labels.csv";
    L->lists[0] = "train.txt";
    L->lists[1] = p == WORLD_SOURCE ? "val.txt" : "test.txt";
    L->kinds[0] = "train";
    L->kinds[1] = p == WORLD_SOURCE ? "val" : "test";
    L->counts[0] = p == WORLD_SOURCE ? wc->source_train : wc->target_train;
    L->counts[1] = p == WORLD_SOURCE ? wc->source_val : wc->target_test;
}

// The relative path of video i of class c (i counts the first list's videos first).
static void video_path(const ProductLayout *L, int c, int i, char *buf, size_t n) {
    const int second = i >= L->counts[0];
    snprintf(buf, n, "%sc%02d/%s%03d.mp4", L->prefix, c, L->kinds[second], second ? i - L->counts[0] : i);
}

static int write_product_lists(const ProductLayout *L, const WorldClass *cls, int K, XcError *err) {
    FILE *f = open_out(L->dir, L->labels, err);
    if (!f) return XC_ERR;
    fprintf(f, "id,name\n");
    for (int c = 0; c < K; c++) {
        char name[128];
        world_class_name(&cls[c], name, sizeof name);
        fprintf(f, "%d,%s\n", c, name);
    }
    if (close_out(f, L->dir, L->labels, err) != XC_OK) return XC_ERR;
    for (int k = 0; k < 2; k++) {
        if (!L->lists[k]) continue;
        if (!(f = open_out(L->dir, L->lists[k], err))) return XC_ERR;
        for (int c = 0; c < K; c++)
            for (int i = 0; i < L->counts[k]; i++) {
                char rel[128];
                video_path(L, c, k ? L->counts[0] + i : i, rel, sizeof rel);
                fprintf(f, "%s %d\n", rel, c);
            }
        if (close_out(f, L->dir, L->lists[k], err) != XC_OK) return XC_ERR;
    }
    return XC_OK;
}

static int write_product(const char *outdir, const WorldConfig *wc, WorldProduct p, XcError *err) {
    ProductLayout L;
    product_layout(outdir, wc, p, &L);
    WorldClass cls[WORLD_MAX_CLASSES];
    const int K = world_classes(p, cls), per = L.counts[0] + L.counts[1];
    if (mkdir_p(L.dir, err) != XC_OK || write_product_lists(&L, cls, K, err) != XC_OK) return XC_ERR;
    for (int c = 0; c < K; c++) {
        char d[4096 + 80];
        snprintf(d, sizeof d, "%s/%sc%02d", L.root, L.prefix, c);
        if (mkdir_p(d, err) != XC_OK) return XC_ERR;
    }
    const int64_t total = (int64_t)K * per;
    int failed = 0;
    int64_t done = 0;
    double t0 = xc_now(), last = t0;
    char what[64];
    snprintf(what, sizeof what, "%s%s", p >= WORLD_ZEROSHOT_1 ? "zeroshot/" : "", world_product_names[p]);
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t job = 0; job < total; job++) {
        int bad;
#pragma omp atomic read
        bad = failed;
        if (bad) continue;
        const int c = (int)(job / per), i = (int)(job % per);
        WorldVideo v;
        world_video_sample(wc, p, c, i, &v);
        char rel[128], path[4096 + 200];
        video_path(&L, c, i, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", L.root, rel);
        FrameCtx ctx = {&v, wc->video_size};
        XcError e = {{0}};
        int rc = synth_encode_video(path, wc->video_size, wc->frames, wc->fps, wc->codec, render_frame, &ctx, &e);
#pragma omp critical(world_progress)
        {
            if (rc != XC_OK && !failed) {
                *err = e;
#pragma omp atomic write
                failed = 1;
            }
            done++;
            if (!failed) progress(wc, what, done, total, t0, &last);
        }
    }
    return failed ? XC_ERR : XC_OK;
}

static int write_manifest(const char *outdir, const WorldConfig *wc, XcError *err) {
    FILE *f = open_out(outdir, "world.txt", err);
    if (!f) return XC_ERR;
    fprintf(f, "# written by xclip-synth world (data/world.h); layout and splits: data/README.md\n");
    fprintf(f, "seed = %llu\nimage_size = %d\ntrain_images = %lld\nval_images = %lld\nprobe_images = %lld\n",
            (unsigned long long)wc->seed, wc->image_size, (long long)wc->train_images, (long long)wc->val_images,
            (long long)world_image_count(wc, WORLD_IMG_PROBE));
    fprintf(f, "captions_per_image = %d\ncontext = %d\nvideo_size = %d\nframes = %d\nfps = %d\n",
            wc->captions_per_image, WORLD_CONTEXT, wc->video_size, wc->frames, wc->fps);
    fprintf(f, "source_train = %d\nsource_val = %d\ntarget_train = %d\ntarget_test = %d\nzeroshot_test = %d\n",
            wc->source_train, wc->source_val, wc->target_train, wc->target_test, wc->zeroshot_test);
    fprintf(f, "distractor_prob = %.3f\nimages = %s\nvideos = %s\n", (double)wc->distractor_prob,
            wc->write_images ? "yes" : "no", wc->write_videos ? "yes" : "no");
    for (int p = 0; p < WORLD_PRODUCTS; p++) {
        WorldClass cls[WORLD_MAX_CLASSES];
        fprintf(f, "classes.%s = %d\n", world_product_names[p], world_classes((WorldProduct)p, cls));
    }
    return close_out(f, outdir, "world.txt", err);
}

int world_write(const char *outdir, const WorldConfig *wc, XcError *err) {
    if (wc->image_size < 16 || wc->image_size > 1024 || wc->video_size < 16 || wc->video_size > 1024 ||
        wc->train_images < 0 || wc->val_images < 0 || wc->probe_per_combo < 0 || wc->captions_per_image < 1 ||
        wc->captions_per_image > 16 || wc->frames < 1 || wc->fps < 1 || wc->source_train < 0 || wc->source_val < 0 ||
        wc->target_train < 0 || wc->target_test < 0 || wc->zeroshot_test < 0 || wc->source_train + wc->source_val > 999 ||
        wc->target_train + wc->target_test > 999 || wc->zeroshot_test > 999 || wc->train_images > 9999999 ||
        wc->val_images > 9999999 || (int64_t)wc->probe_per_combo * WORLD_COMBOS > 9999999 ||
        !(wc->distractor_prob >= 0 && wc->distractor_prob <= 1))
        return xc_err(err, "world: bad settings (sizes 16..1024, counts >= 0, videos per class <= 999, images per "
                           "split <= 9999999, captions per image 1..16, distractor probability 0..1)");
    if (mkdir_p(outdir, err) != XC_OK) return XC_ERR;
    if (wc->write_images && write_images(outdir, wc, err) != XC_OK) return XC_ERR;
    for (int p = 0; p < WORLD_PRODUCTS && wc->write_videos; p++)
        if (write_product(outdir, wc, (WorldProduct)p, err) != XC_OK) return XC_ERR;
    return write_manifest(outdir, wc, err);
}
