// test_train_cli.c - config files and the command lines of xclip-train / xclip-eval / xclip-infer:
//   - every shipped config (configs/*.ini) parses; every key of the table is documented in configs/README.md;
//   - config_load / config_set: values, relative paths, quoting, and each kind of error with file:line;
//   - the programs' error paths: missing config, unknown section, unknown key, bad value, bad --set, a data path
//     or weight path that does not exist (the message names the key to set), bad options; exit status 2.
#include "test_util.h"
#include "train/config.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *build_dir(void) { return getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build"; }
static const char *source_dir(void) { return getenv("XCLIP_FIXTURES") ? getenv("XCLIP_FIXTURES") : "tests/fixtures"; }

static char g_out[16384];

// Run a shell command, capture stdout+stderr into g_out, return the exit status.
static int run(const char *cmd) {
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(g_out, 1, sizeof g_out - 1, p);
    g_out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    XC_CHECK(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

// Expect `xclip-train CFG ARGS` to fail with status 2 and a message containing each of the needles.
static void expect_train_error(const char *what, const char *cfg_text, const char *args, const char *n1, const char *n2) {
    char cfg[1024], cmd[4096];
    snprintf(cfg, sizeof cfg, "%s/cli_test.ini", build_dir());
    if (cfg_text) write_file(cfg, cfg_text);
    snprintf(cmd, sizeof cmd, "'%s/xclip-train' %s %s", build_dir(), cfg_text ? cfg : "", args);
    int rc = run(cmd);
    XC_EXPECT(rc == 2, "%s: exit status %d, want 2; output:\n%s", what, rc, g_out);
    XC_EXPECT(!n1 || strstr(g_out, n1), "%s: message lacks '%s':\n%s", what, n1, g_out);
    XC_EXPECT(!n2 || strstr(g_out, n2), "%s: message lacks '%s':\n%s", what, n2, g_out);
}

static void test_shipped_configs(void) {
    char dir[1024], path[1300];
    snprintf(dir, sizeof dir, "%s/../../configs", source_dir());
    static const char *NAMES[] = {"demo", "k400_8f", "k400_16f", "k400_b16_8f", "k400_b16_16f", "k600_b16_8f",
                                  "hmdb51_fewshot_k2", "hmdb51_fewshot_k4", "hmdb51_fewshot_k8", "hmdb51_fewshot_k16",
                                  "ucf101_fewshot_k2", "ucf101_fewshot_k4", "ucf101_fewshot_k8", "ucf101_fewshot_k16",
                                  "zeroshot_k400_b16_32f", "zeroshot_eval_hmdb51", "zeroshot_eval_ucf101", "zeroshot_eval_k600"};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.ini", dir, NAMES[i]);
        TrainConfig c;
        XcError err;
        int rc = config_load(&c, path, &err);
        XC_EXPECT(rc == XC_OK, "%s: %s", NAMES[i], err.msg);
        struct stat st;
        XC_EXPECT(stat(c.labels, &st) == 0, "%s: label file %s missing", NAMES[i], c.labels);
    }
    // the recipes the brief names (SPEC.md §9 and the official yaml files)
    TrainConfig c;
    XcError err;
    snprintf(path, sizeof path, "%s/k400_8f.ini", dir);
    if (config_load(&c, path, &err) == XC_OK)
        XC_EXPECT(c.epochs == 30 && c.warmup_epochs == 5 && c.lr == 8e-6 && c.batch_size == 8 && c.accumulation_steps == 4 &&
                      c.label_smooth == 0.1 && c.mixup == 0.8 && c.cutmix == 1.0 && c.mixup_switch_prob == 0.5 && c.seed == 1024 &&
                      c.input_size == 224 && c.fix_text && c.drop_path == 0 && c.frames == 8 && !strcmp(c.arch, "ViT-B/32") &&
                      c.final_num_clip == 4 && c.final_num_crop == 3,
                  "k400_8f.ini is not the official Kinetics-400 recipe");
    snprintf(path, sizeof path, "%s/hmdb51_fewshot_k8.ini", dir);
    if (config_load(&c, path, &err) == XC_OK)
        XC_EXPECT(c.epochs == 50 && c.lr == 2e-6 && c.batch_size == 4 && c.accumulation_steps == 2 && c.frames == 32 &&
                      c.shots == 8 && !strcmp(c.arch, "ViT-B/16"),
                  "hmdb51_fewshot_k8.ini is not the official few-shot recipe");
    // every key documented
    snprintf(path, sizeof path, "%s/README.md", dir);
    size_t len;
    char *readme = xc_read_file(path, 1 << 20, &len, &err);
    XC_EXPECT(readme != NULL, "%s", err.msg);
    int missing = 0;
    for (int i = 0; readme && i < config_key_count(); i++) {
        char name[128], cell[160];
        config_key_name(i, name, sizeof name);
        snprintf(cell, sizeof cell, "| `%s` |", strchr(name, '.') + 1);
        if (!strstr(readme, cell)) {
            fprintf(stderr, "  %s is not in configs/README.md\n", name);
            missing++;
        }
    }
    XC_EXPECT(missing == 0, "%d keys undocumented", missing);
    xc_free(readme);
}

static void test_parser(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/cli_parse.ini", build_dir());
    write_file(path, "\xEF\xBB\xBF# comment\n[data]\nframes = 16   # trailing comment\ntemplate = \"a video of {} # not a comment\"\n"
                     "labels = sub/labels.csv\n\n; another comment\n[TRAIN]\n");
    TrainConfig c;
    XcError err;
    int rc = config_load(&c, path, &err);
    XC_EXPECT(rc == XC_ERR && strstr(err.msg, "cli_parse.ini:8:") && strstr(err.msg, "unknown section"), "upper-case section: %s", err.msg);
    write_file(path, "\xEF\xBB\xBF# comment\n[data]\nframes = 16   # trailing comment\ntemplate = \"a video of {} # not a comment\"\n"
                     "labels = sub/labels.csv\n\n; another comment\n[train]\nlr=2e-5\n[model]\nfix_text = 1\n");
    rc = config_load(&c, path, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    XC_EXPECT(c.frames == 16 && c.lr == 2e-5 && !strcmp(c.template_, "a video of {} # not a comment"), "values: %d %g '%s'",
              c.frames, c.lr, c.template_);
    XC_EXPECT(strstr(c.labels, "/sub/labels.csv") && c.labels[0] == '/', "relative path not resolved against the file: %s", c.labels);
    XC_EXPECT(c.batch_size == 8 && c.epochs == 30, "defaults lost");
    rc = config_set(&c, "data.labels=x.csv", &err);
    XC_EXPECT(rc == XC_OK && !strcmp(c.labels, "x.csv"), "--set path is relative to the current directory: %s", c.labels);
    rc = config_set(&c, "model.fix_text=off", &err);
    XC_EXPECT(rc == XC_OK && !c.fix_text, "--set bool");
    static const struct { const char *text, *needle; } BAD[] = {
        {"[data]\nframes = 0\n", ":2: data.frames: 0 is outside [1, 1024]"},
        {"[data]\nframes = eight\n", ":2: data.frames: 'eight' is not an integer"},
        {"[train]\nlr = fast\n", ":2: train.lr: 'fast' is not a number"},
        {"[model]\nfix_text = maybe\n", ":2: model.fix_text: 'maybe' is not a boolean"},
        {"[model]\narch = ViT-H/14\n", ":2: model.arch: 'ViT-H/14' is not one of"},
        {"[train]\nlearning_rate = 1\n", ":2: unknown key 'learning_rate' in [train]"},
        {"[train]\nepoch = 1\n", "did you mean 'epochs'"},
        {"frames = 8\n", ":1: key 'frames' before any [section]"},
        {"[data\n", ":1: malformed section header"},
        {"[data]\nframes\n", ":2: expected `key = value`"},
        {"[data]\nframes = 8\nframes = 9\n", ":3: data.frames is given twice"},
        {"[data]\ntemplate = \"abc\n", ":2: data.template: unterminated"},
        {"[optimizer]\n", ":1: unknown section [optimizer]"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        write_file(path, BAD[i].text);
        rc = config_load(&c, path, &err);
        XC_EXPECT(rc == XC_ERR && strstr(err.msg, BAD[i].needle), "config '%s': got '%s', want '%s'", BAD[i].text,
                  rc == XC_OK ? "(accepted)" : err.msg, BAD[i].needle);
    }
    static const struct { const char *set, *needle; } BADSET[] = {
        {"train.lr", "expected section.key=value"},
        {"lr=1", "expected section.key=value"},
        {"optim.lr=1", "unknown section 'optim'"},
        {"train.rate=1", "unknown key 'rate' in [train]"},
        {"train.batch_size=-1", "'train.batch_size=-1': -1 is outside"},
        {"test.view_mode=sideways", "is not one of shifted|random"},
    };
    for (size_t i = 0; i < sizeof BADSET / sizeof BADSET[0]; i++) {
        rc = config_set(&c, BADSET[i].set, &err);
        XC_EXPECT(rc == XC_ERR && strstr(err.msg, BADSET[i].needle) && strstr(err.msg, "--set"), "--set %s: got '%s'",
                  BADSET[i].set, rc == XC_OK ? "(accepted)" : err.msg);
    }
}

static void test_programs(void) {
    char shared[1024], vocab[1200], labels[1200], cfg[8192], args[2048];
    XC_SHARED("", shared);
    snprintf(vocab, sizeof vocab, "%s/clip/bpe_simple_vocab_16e6.txt.gz", shared);
    snprintf(labels, sizeof labels, "%s/labels/hmdb_51_labels.csv", shared);
    expect_train_error("no config", NULL, "", "no CONFIG given", NULL);
    expect_train_error("missing config file", NULL, "/nonexistent/x.ini", "/nonexistent/x.ini", "cannot");
    expect_train_error("unknown option", "[data]\n", "--bogus 1", "unknown option --bogus", NULL);
    expect_train_error("unknown section", "[data]\nframes = 8\n[datas]\n", "", "cli_test.ini:3: unknown section [datas]", NULL);
    expect_train_error("bad key", "[model]\npretrain = x\n", "", "cli_test.ini:2: unknown key 'pretrain' in [model]", NULL);
    expect_train_error("bad value", "[train]\nepochs = -3\n", "", "cli_test.ini:2: train.epochs: -3 is outside", NULL);
    expect_train_error("bad --set", "[data]\n", "--set train.epochs=many", "--set 'train.epochs=many'", "not an integer");
    expect_train_error("--set unknown key", "[data]\n", "--set data.frame=8", "unknown key 'frame' in [data]", NULL);
    expect_train_error("--set without value", "[data]\n", "--set", "--set needs a value", NULL);
    expect_train_error("train list unset", "[data]\n", "", "data.train_list is not set", "--set data.train_list=PATH");
    snprintf(cfg, sizeof cfg, "[data]\ntrain_list = /nonexistent/train.txt\n");
    expect_train_error("train list missing", cfg, "", "data.train_list = /nonexistent/train.txt", "No such file");
    snprintf(cfg, sizeof cfg, "[data]\ntrain_list = %s\nroot = %s\nval_list = %s\nlabels = %s\nvocab = %s\n[model]\npretrained = /nonexistent/ViT-B-32.pt\n",
             labels, shared, labels, labels, vocab);
    expect_train_error("weights missing", cfg, "", "model.pretrained = /nonexistent/ViT-B-32.pt", "none");
    snprintf(cfg, sizeof cfg, "[data]\ntrain_list = %s\nroot = %s\nval_list = %s\nlabels = %s\n[model]\npretrained = none\n",
             labels, shared, labels, labels);
    snprintf(args, sizeof args, "--set data.vocab=/nonexistent/bpe.txt.gz");
    expect_train_error("vocabulary missing", cfg, args, "data.vocab = /nonexistent/bpe.txt.gz", "openai/CLIP");
    expect_train_error("labels unset", "[data]\ntrain_list = /\nroot = /\nval_list = /\n[model]\npretrained = none\n", "",
                       "data.labels is not set", NULL);
    // xclip-eval and xclip-infer
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/cli_test.ini'", build_dir(), build_dir());
    int rc = run(cmd);
    XC_EXPECT(rc == 2 && strstr(g_out, "usage: xclip-eval"), "xclip-eval without --checkpoint: %d\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/cli_test.ini' --checkpoint x --views 4x2", build_dir(), build_dir());
    rc = run(cmd);
    XC_EXPECT(rc == 2 && strstr(g_out, "--views wants CLIPSxCROPS"), "xclip-eval --views 4x2: %d\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "'%s/xclip-infer' --checkpoint x v.mp4", build_dir());
    rc = run(cmd);
    XC_EXPECT(rc == 2 && strstr(g_out, "usage: xclip-infer"), "xclip-infer without labels: %d\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "'%s/xclip-infer' --checkpoint /nonexistent.pt v.mp4 --labels a,b --vocab '%s'", build_dir(), vocab);
    rc = run(cmd);
    XC_EXPECT(rc == 1 && strstr(g_out, "/nonexistent.pt"), "xclip-infer missing checkpoint: %d\n%s", rc, g_out);
    // --keys prints the table configs/README.md holds
    snprintf(cmd, sizeof cmd, "'%s/xclip-train' --keys", build_dir());
    rc = run(cmd);
    XC_EXPECT(rc == 0 && strstr(g_out, "| `accumulation_steps` |"), "--keys: %d", rc);
}

int main(void) {
    test_shipped_configs();
    test_parser();
    test_programs();
    return xc_test_summary("test_train_cli");
}
