// test_world_captions.c - the caption-list reader (data/captions.h) on the files of a small world and on bad input:
// a missing image, an empty caption and an over-long caption (by CLIP BPE tokens, or bytes without a tokenizer) are
// counted skips naming list:line (errors in strict mode); a line without a TAB and an empty, absolute or ".." image
// path refuse the list with list:line; so do a list with no usable pair, a missing list or root; damaged or
// truncated PPMs and a size mismatch fail the read naming list:line; 300 random lists never crash; a stored image
// is byte-identical to its rendering.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/captions.h"
#include "data/tokenizer.h"
#include "data/world.h"
#include "tests/test_util.h"

static char g_root[64];
static Tokenizer *g_tok;

static WorldConfig image_world(void) {
    WorldConfig wc = world_config_default();
    wc.seed = 7;
    wc.train_images = 20;
    wc.val_images = 4;
    wc.probe_per_combo = 1;
    wc.write_videos = 0;
    wc.quiet = 1;
    return wc;
}

static const char *put(const char *name, const char *text) {
    static char p[4][256];
    static int k;
    char *o = p[k++ % 4];
    snprintf(o, 256, "%s/%s", g_root, name);
    FILE *f = fopen(o, "wb");
    if (f) { fputs(text, f); fclose(f); }
    return o;
}

static CaptionList *open_list(const char *list, const char *root, int strict, int with_tok, XcError *err) {
    CaptionListOptions opt = caption_list_options_default();
    opt.tok = with_tok ? g_tok : NULL;
    opt.strict = strict;
    if (!with_tok) opt.max_bytes = 60;
    return caption_list_open(list, root, &opt, err);
}

static void expect_refused(const char *text, const char *root, const char *want) {
    const char *p = put("refused.tsv", text);
    XcError err = {{0}};
    CaptionList *cl = open_list(p, root, 0, 1, &err);
    XC_EXPECT(!cl, "accepted: %s", text);
    XC_EXPECT(strstr(err.msg, want) != NULL, "message `%s` lacks `%s`", err.msg, want);
    caption_list_free(cl);
}

static void test_caption_reader(void) {
    char tar[256], long_caption[400] = "a";
    snprintf(tar, sizeof tar, "%s/w/images/train.tar", g_root);
    for (int i = 0; i < 40; i++) strcat(long_caption, " red");
    char text[1024];
    snprintf(text, sizeof text, "\xEF\xBB\xBFtrain/0000000.ppm\ta red thing\ntrain/9999999.ppm\ta missing image\n"
             "train/0000001.ppm\t   \ntrain/0000002.ppm\t%s\n\ntrain/0000003.ppm\tshort\r\n", long_caption);
    const char *bad = put("bad.tsv", text);
    XcError err = {{0}};
    CaptionList *cl = open_list(bad, tar, 0, 1, &err);
    XC_EXPECT(cl != NULL, "%s", err.msg);
    if (cl) {
        XC_EXPECT(cl->n == 2 && cl->n_missing == 1 && cl->n_empty == 1 && cl->n_too_long == 1 && cl->n_skipped == 3,
                  "kept %lld, missing %lld, empty %lld, too long %lld", (long long)cl->n, (long long)cl->n_missing,
                  (long long)cl->n_empty, (long long)cl->n_too_long);
        XC_EXPECT(strstr(cl->issues, "bad.tsv:2: train/9999999.ppm: no such image") &&
                  strstr(cl->issues, "bad.tsv:3: train/0000001.ppm: empty caption") &&
                  strstr(cl->issues, "bad.tsv:4: train/0000002.ppm: caption of 41 tokens does not fit the context of 32"),
                  "issues:\n%s", cl->issues);
        XC_EXPECT(cl->n == 2 && cl->items[1].line == 6 && !strcmp(cl->items[1].caption, "short"), "CRLF line");
        // the stored image is the rendered one
        WorldConfig wc = image_world();
        WorldScene sc;
        uint8_t got[32 * 32 * 3], want[32 * 32 * 3], big[48 * 48 * 3];
        world_image_scene(&wc, WORLD_IMG_TRAIN, 0, &sc);
        world_render(&sc, 32, want);
        XC_EXPECT(caption_list_image(cl, 0, 32, got, &err) == XC_OK && !memcmp(got, want, sizeof got),
                  "image 0 differs from its rendering: %s", err.msg);
        XC_EXPECT(caption_list_image(cl, 0, 48, big, &err) == XC_ERR && strstr(err.msg, "bad.tsv:1: train/0000000.ppm") &&
                  strstr(err.msg, "expected 48x48"), "size mismatch: %s", err.msg);
    }
    caption_list_free(cl);
    cl = open_list(bad, tar, 1, 1, &err);
    XC_EXPECT(!cl && strstr(err.msg, "strict") && strstr(err.msg, "bad.tsv:2:"), "strict: %s", err.msg);
    caption_list_free(cl);
    cl = open_list(bad, tar, 0, 0, &err); // no tokenizer: the byte limit (60) catches the long caption
    XC_EXPECT(cl && cl->n_too_long == 1 && strstr(cl->issues, "bad.tsv:4:") && strstr(cl->issues, "bytes"),
              "bytes: %s", cl ? cl->issues : err.msg);
    caption_list_free(cl);
    expect_refused("train/0000000.ppm a caption without a tab\n", tar, "refused.tsv:1: no TAB");
    expect_refused("train/0000000.ppm\tok\n/etc/passwd\tx\n", tar, "refused.tsv:2: image path `/etc/passwd`");
    expect_refused("../train/0000000.ppm\tx\n", tar, "refused.tsv:1:");
    expect_refused("\ttext\n", tar, "refused.tsv:1: image path ``");
    expect_refused("train/9999998.ppm\tgone\ntrain/0000000.ppm\t\n", tar, "no usable image-caption pair (2 lines skipped)");
    expect_refused("", tar, "no usable");
    expect_refused("a\tb\n", "/nonexistent/root.tar", "/nonexistent/root.tar");
    cl = open_list("/nonexistent/list.tsv", tar, 0, 1, &err);
    XC_EXPECT(!cl && strstr(err.msg, "/nonexistent/list.tsv"), "missing list: %s", err.msg);
    // a folder root with damaged images: read errors name list:line
    char dir[128], p[256];
    snprintf(dir, sizeof dir, "%s/imgs", g_root);
    mkdir(dir, 0755);
    put("imgs/junk.ppm", "hello");
    put("imgs/trunc.ppm", "P6\n32 32\n255\n0123456789");
    cl = open_list(put("folder.tsv", "junk.ppm\tjunk\ntrunc.ppm\ttruncated\nnone.ppm\tmissing\n"), dir, 0, 1, &err);
    XC_EXPECT(cl && cl->n == 2 && cl->n_missing == 1, "folder root: %s", err.msg);
    if (cl && cl->n == 2) {
        uint8_t rgb[32 * 32 * 3];
        XC_EXPECT(caption_list_image(cl, 0, 32, rgb, &err) == XC_ERR && strstr(err.msg, "folder.tsv:1: junk.ppm: not a binary PPM"),
                  "junk: %s", err.msg);
        XC_EXPECT(caption_list_image(cl, 1, 32, rgb, &err) == XC_ERR && strstr(err.msg, "folder.tsv:2: trunc.ppm: truncated"),
                  "truncated: %s", err.msg);
    }
    caption_list_free(cl);
    // random garbage never crashes: each list is refused or read
    Rng r = rng_stream(5, RNG_STREAM_TEST);
    int refused = 0;
    for (int t = 0; t < 300; t++) {
        char junk[256];
        int n = 1 + (int)rng_below(&r, 200);
        static const char alphabet[] = "ab/.\t\n\r .ppmtrain0123456789\xEF\xBB\xBF\xFF";
        for (int i = 0; i < n; i++) junk[i] = alphabet[rng_below(&r, sizeof alphabet - 1)];
        junk[n] = 0;
        snprintf(p, sizeof p, "%s", put("junk.tsv", junk));
        cl = open_list(p, tar, (int)(t & 1), (int)(t & 2), &err);
        refused += !cl;
        caption_list_free(cl);
    }
    printf("caption reader: skips counted and named, malformed lists refused (%d of 300 random lists refused)\n", refused);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/xclip_captions_XXXXXX");
    XC_CHECK(mkdtemp(g_root), "mkdtemp");
    char vocab[512], dir[128];
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    XcError err = {{0}};
    g_tok = tokenizer_load_clip(vocab, &err);
    XC_CHECK(g_tok, "%s (the CLIP vocabulary is needed to count caption tokens)", err.msg);
    WorldConfig wc = image_world();
    snprintf(dir, sizeof dir, "%s/w", g_root);
    XC_CHECK(world_write(dir, &wc, &err) == XC_OK, "world_write: %s", err.msg);
    test_caption_reader();
    tokenizer_free(g_tok);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_root);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", g_root);
    return xc_test_summary("test_world_captions");
}
