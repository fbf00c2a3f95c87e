// test_pretrain_run.c - xclip-pretrain end to end on a CI-sized world (3 000 captioned images, a small CLIP):
//   - xclip-eval --probe on the pretrained CLIP (a plain CLIP checkpoint: zero-shot mode) reports the same
//     zero-shot colour accuracy as the run's final evaluation;
//   - the run writes its directory (config.ini, log.txt, metrics.jsonl, best / last.safetensors) and the
//     zero-shot colour accuracy on the held-out probe images beats chance (12.5%) clearly: >= 25% (the
//     measured value is printed); the weights load as a CLIP checkpoint (model.pretrained of xclip-train
//     reads the architecture off them);
//   - stopped by SIGTERM after iteration 9 (XCLIP_TEST_SIGNAL_AT) it exits 75 with a snapshot, and
//     --resume auto ends with last.safetensors bit for bit equal to the uninterrupted run's;
//   - a caption list with a missing image, an empty and an over-long caption trains on with the three pairs
//     counted and named; a list naming no readable pair is refused with the file named.
// No accuracy but the chance check is asserted, and no wall-clock time.
#include "test_util.h"
#include "autograd/util.h"
#include "nn/clip.h"

#include <sys/stat.h>
#include <sys/wait.h>

static const char *g_build;
static char g_world[1100], g_vocab[1200];

static int pretrain(const char *env, const char *dir, const char *extra) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "%s'%s/xclip-pretrain' '%s/pretrain.ini' --set output.dir='%s' --set data.vocab='%s' %s > '%s.log' 2>&1", env,
             g_build, g_world, dir, g_vocab, extra, dir);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The last value of "key": in the metrics file's records of the given type (-1 if none).
static double last_metric(const char *dir, const char *type, const char *key) {
    char path[1300], line[8192], pat[96], tpat[96];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    snprintf(tpat, sizeof tpat, "\"type\": \"%s\"", type);
    FILE *f = fopen(path, "r");
    double v = -1;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, pat);
        if (p && strstr(line, tpat)) v = atof(p + strlen(pat));
    }
    if (f) fclose(f);
    return v;
}

static bool log_has(const char *dir, const char *text) {
    char path[1300];
    snprintf(path, sizeof path, "%s.log", dir);
    size_t n;
    XcError err;
    char *s = xc_read_file(path, 1u << 26, &n, &err);
    bool has = s && strstr(s, text);
    xc_free(s);
    return has;
}

int main(void) {
    g_build = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build";
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", g_vocab);
    snprintf(g_world, sizeof g_world, "%s/test_pretrain_run.world", g_build);
    char cmd[8192], a[1200], b[1200], p1[1300], p2[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'* '%s/test_pretrain_run'.? && '%s/xclip-synth' world '%s' --images 3072 "
             "--val-images 512 --probe-per-combo 4 --no-videos --quiet > /dev/null", g_world, g_build, g_build, g_world);
    XC_EXPECT(system(cmd) == 0, "xclip-synth world failed: %s", cmd);
    // the config: a small CLIP, 4 epochs of 24 batches of 128
    snprintf(p1, sizeof p1, "%s/pretrain.ini", g_world);
    FILE *f = fopen(p1, "w");
    XC_EXPECT(f != NULL, "cannot write %s", p1);
    if (!f) return xc_test_summary("test_pretrain_run");
    fprintf(f, "[data]\nroot = images/train.tar\ntrain_list = images/train_captions.tsv\nval_root = images/val.tar\n"
               "val_list = images/val_captions.tsv\nprobe_dir = images\ninput_size = 32\n"
               "[model]\npretrained = none\narch = custom\nvision_width = 64\nvision_layers = 2\npatch = 8\nembed_dim = 64\n"
               "text_width = 64\ntext_layers = 1\ncontext = 32\n"
               "[train]\nepochs = 4\nwarmup_epochs = 0.5\nlr = 2e-3\nweight_decay = 0.1\neps = 1e-6\nbatch_size = 128\n"
               "seed = 7\neval_freq = 2\n[output]\nprint_freq = 8\nprogress = off\n");
    fclose(f);

    snprintf(a, sizeof a, "%s/test_pretrain_run.a", g_build);
    snprintf(b, sizeof b, "%s/test_pretrain_run.b", g_build);
    XC_EXPECT(pretrain("", a, "") == 0, "the pretraining run failed (see %s.log)", a);
    static const char *FILES[] = {"config.ini", "log.txt", "metrics.jsonl", "best.safetensors", "last.safetensors"};
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        struct stat st;
        snprintf(p1, sizeof p1, "%s/%s", a, FILES[i]);
        XC_EXPECT(stat(p1, &st) == 0 && st.st_size > 0, "%s missing or empty", p1);
    }
    double colour = last_metric(a, "final_eval", "zs_colour"), shape = last_metric(a, "final_eval", "zs_shape");
    double val = last_metric(a, "final_eval", "val_top1");
    XC_EXPECT(colour >= 25.0, "zero-shot colour accuracy %.1f%%, want >= 25%% (chance 12.5%%)", colour);
    printf("  pretraining: zero-shot colour %.1f%% (chance 12.5%%), shape %.1f%% (12.5%%), val image->caption %.1f%% "
           "(chance 0.8%%)\n", colour, shape, val);
    // the output is a CLIP checkpoint: its architecture reads back
    snprintf(p1, sizeof p1, "%s/best.safetensors", a);
    WeightSet ws = {0};
    XcError err;
    ClipConfig cc;
    XC_EXPECT(weights_load(&ws, p1, &err) == XC_OK && clip_config_from_weights(&cc, &ws, &err) == XC_OK &&
                  cc.vision_width == 64 && cc.patch == 8 && cc.image_size == 32 && cc.context == 32,
              "%s is not read as the CLIP it holds: %s", p1, err.msg);
    weights_free(&ws);
    // xclip-eval on the CLIP checkpoint: the probe's zero-shot colour accuracy is the pretraining's final one
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/pretrain.ini' --checkpoint '%s/best.safetensors' --probe '%s/images' "
             "--set data.vocab='%s' --set data.labels='%s/images/colour.csv' --predictions none > '%s.eval' 2>&1",
             g_build, g_world, a, g_world, g_vocab, g_world, a);
    int erc = system(cmd);
    snprintf(p1, sizeof p1, "%s.eval", a);
    size_t n;
    char *out = xc_read_file(p1, 1u << 20, &n, &err), want[64];
    snprintf(want, sizeof want, "colour %.1f%% (12.5)", colour);
    XC_EXPECT(erc == 0 && out && strstr(out, "plain CLIP weights") && strstr(out, want),
              "xclip-eval --probe of the pretrained CLIP does not report '%s' (see %s)", want, p1);
    xc_free(out);
    // the same checkpoint against a config it does not fit: refused, naming the setting (read once, then checked
    // as model_build checks, before the plain CLIP is built)
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/pretrain.ini' --checkpoint '%s/best.safetensors' --probe '%s/images' "
             "--set data.vocab='%s' --set data.labels='%s/images/colour.csv' --set data.input_size=64 --predictions none "
             "> '%s.eval' 2>&1", g_build, g_world, a, g_world, g_vocab, g_world, a);
    erc = system(cmd);
    out = xc_read_file(p1, 1u << 20, &n, &err);
    XC_EXPECT(erc != 0 && out && strstr(out, "expects 32x32 inputs but data.input_size = 64"),
              "xclip-eval of a 32x32 CLIP with data.input_size = 64 was not refused by name (see %s)", p1);
    xc_free(out);

    // stopped by SIGTERM after iteration 9, resumed: the same weights
    int code = pretrain("XCLIP_TEST_SIGNAL_AT=9:TERM ", b, "");
    XC_EXPECT(code == 75, "SIGTERM after iteration 9: exit status %d, want 75 (see %s.log)", code, b);
    XC_EXPECT(log_has(b, "stopped by signal 15"), "no 'stopped by signal 15' in %s.log", b);
    XC_EXPECT(pretrain("", b, "--resume auto") == 0, "the resumed run failed (see %s.log)", b);
    XC_EXPECT(log_has(b, "resumed from"), "the second part did not resume (see %s.log)", b);
    snprintf(p1, sizeof p1, "%s/last.safetensors", a);
    snprintf(p2, sizeof p2, "%s/last.safetensors", b);
    XC_EXPECT(xc_same_file(p1, p2), "stopped + resumed pretraining differs from the uninterrupted run (%s vs %s)", p2, p1);
    // the comparison can fail: a different file is not the same
    snprintf(p2, sizeof p2, "%s/test_pretrain_run.world/images/colour.csv", g_build);
    XC_EXPECT(!xc_same_file(p1, p2), "xc_same_file says two different files are the same");

    // bad pairs: a missing image, an empty and an over-long caption are skipped, counted and named
    snprintf(p1, sizeof p1, "%s/bad_captions.tsv", g_world);
    snprintf(cmd, sizeof cmd,
             "head -n 400 '%s/images/train_captions.tsv' > '%s' && printf 'train/9999999.ppm\\ta red circle\\n"
             "train/0000001.ppm\\t   \\ntrain/0000002.ppm\\t%s\\n' >> '%s'", g_world, p1,
             "a red circle a red circle a red circle a red circle a red circle a red circle a red circle a red circle "
             "a red circle a red circle a red circle a red circle", p1); // 36 tokens: more than the context of 32
    XC_EXPECT(system(cmd) == 0, "cannot write %s", p1);
    snprintf(p2, sizeof p2, "%s/test_pretrain_run.c", g_build);
    snprintf(cmd, sizeof cmd, "--set data.train_list='%s' --set train.max_iters=2 --set train.epochs=1 --set data.probe_dir=", p1);
    XC_EXPECT(pretrain("", p2, cmd) == 0, "a list with 3 bad pairs stopped the run (see %s.log)", p2);
    XC_EXPECT(log_has(p2, "3 pairs skipped") && log_has(p2, "1 missing images, 1 empty and 1 over-long"),
              "the skipped pairs are not counted by reason in %s.log", p2);
    XC_EXPECT(log_has(p2, "bad_captions.tsv:401") && log_has(p2, "bad_captions.tsv:403"), "the skipped lines are not named");
    snprintf(p1, sizeof p1, "%s/no_pairs.tsv", g_world);
    snprintf(cmd, sizeof cmd, "printf 'train/9999999.ppm\\ta red circle\\n' > '%s'", p1);
    XC_EXPECT(system(cmd) == 0, "cannot write %s", p1);
    snprintf(cmd, sizeof cmd, "--set data.train_list='%s' --set train.max_iters=2", p1);
    snprintf(p2, sizeof p2, "%s/test_pretrain_run.d", g_build);
    XC_EXPECT(pretrain("", p2, cmd) == 1 && log_has(p2, "no_pairs.tsv") && log_has(p2, "no usable image-caption pair"),
              "a list with no usable pair was not refused by name (see %s.log)", p2);
    return xc_test_summary("test_pretrain_run");
}
