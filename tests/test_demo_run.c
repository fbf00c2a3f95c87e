// test_demo_run.c - configs/demo.ini end to end, as scripts/demo.sh runs it: xclip-synth writes the synthetic
// dataset into the build directory, xclip-train trains the random X-CLIP (960 iterations, about a minute on
// 2 cores: the time is printed, never asserted, since a loaded machine or a sanitizer build is slower) and must
// reach >= 30% top-1 on the 128 validation videos (8 classes: chance 12.5%; the run gets 40-50%). Then: the run directory holds what it should, its config.ini loads again, xclip-eval on
// best.safetensors reproduces the best validation top-1 exactly, and xclip-infer classifies a video.
#include "test_util.h"
#include "train/config.h"

#include <sys/stat.h>
#include <sys/wait.h>

static char g_out[65536];

static int run(const char *cmd) { return xc_run_capture(cmd, g_out, sizeof g_out); }

static bool exists(const char *dir, const char *name) {
    char p[2048];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && st.st_size > 0;
}

int main(void) {
    const char *build = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build";
    char configs[1024], data[1200], rundir[1200], cmd[16384];
    xc_test_path("XCLIP_FIXTURES", "tests/fixtures", "../../configs", configs, sizeof configs);
    snprintf(data, sizeof data, "%s/test_demo_run.data", build);
    snprintf(rundir, sizeof rundir, "%s/test_demo_run.out", build);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' '%s' && '%s/xclip-synth' '%s' --classes 8 --per-class 64 --val-per-class 16 --frames 16 --size 32",
             data, rundir, build, data);
    int rc = run(cmd);
    XC_EXPECT(rc == 0, "xclip-synth failed (%d):\n%s", rc, g_out);
    if (rc) return xc_test_summary("test_demo_run");
    char shared[1024];
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", shared);
    char sets[6144];
    snprintf(sets, sizeof sets,
             "--set data.root='%s/videos' --set data.train_list='%s/train.txt' --set data.val_list='%s/val.txt' "
             "--set data.labels='%s/labels.csv' --set data.vocab='%s'",
             data, data, data, data, shared);
    double t0 = xc_now();
    snprintf(cmd, sizeof cmd, "'%s/xclip-train' '%s/demo.ini' %s --set output.dir='%s' --set output.progress=off", build,
             configs, sets, rundir);
    rc = run(cmd);
    double secs = xc_now() - t0;
    XC_EXPECT(rc == 0, "xclip-train configs/demo.ini failed (%d):\n%s", rc, g_out);
    const char *tail = strstr(g_out, "final eval");
    printf("%s", tail ? tail : g_out);
    // best validation top-1 from the metrics file
    char path[2048];
    snprintf(path, sizeof path, "%s/metrics.jsonl", rundir);
    FILE *f = fopen(path, "r");
    XC_EXPECT(f != NULL, "no %s", path);
    double best = -1;
    int evals = 0, trains = 0;
    char line[4096];
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"best_top1\": ");
        if (strstr(line, "\"type\": \"eval\"") && p) {
            best = atof(p + 13);
            evals++;
        }
        trains += strstr(line, "\"type\": \"train\"") != NULL;
    }
    if (f) fclose(f);
    XC_EXPECT(evals == 6 && trains == 30, "metrics.jsonl: %d eval and %d train lines, want 6 and 30", evals, trains);
    XC_EXPECT(best >= 30.0, "demo reached %.2f%% top-1, want >= 30%% (chance 12.5%%)", best);
    printf("  demo: best top-1 %.2f%% (chance 12.5%%) in %.0f s\n", best, secs);
    static const char *FILES[] = {"config.ini", "log.txt", "metrics.jsonl", "best.safetensors", "last.safetensors"};
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) XC_EXPECT(exists(rundir, FILES[i]), "run directory lacks %s", FILES[i]);
    TrainConfig c;
    XcError err;
    snprintf(path, sizeof path, "%s/config.ini", rundir);
    rc = config_load(&c, path, &err);
    XC_EXPECT(rc == XC_OK && c.input_size == 32 && c.epochs == 30 && !strcmp(c.pretrained, "none"), "effective config: %s",
              rc ? err.msg : "wrong values");

    // xclip-eval on the best weights gives the best validation accuracy again
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/demo.ini' %s --checkpoint '%s/best.safetensors' --predictions '%s/pred'", build,
             configs, sets, rundir, rundir);
    rc = run(cmd);
    XC_EXPECT(rc == 0, "xclip-eval failed (%d):\n%s", rc, g_out);
    const char *p = strstr(g_out, "top-1 ");
    double again = p ? atof(p + 6) : -1;
    // xclip-eval prints 2 decimals (46.875 shows as 46.88): equal within that rounding
    XC_EXPECT(fabs(again - best) <= 0.0051, "xclip-eval top-1 %.2f%%, training's best %.3f%%\n%s", again, best, g_out);
    XC_EXPECT(exists(rundir, "pred.csv"), "no predictions CSV");
    // xclip-infer with free-text labels on one validation video
    snprintf(cmd, sizeof cmd,
             "'%s/xclip-infer' --checkpoint '%s/best.safetensors' '%s/videos/c00/val064.mp4' --vocab '%s' "
             "--labels 'a red circle moving left,a red circle moving right,a red circle growing' --topk 2 "
             "--text-cache '%s/text-cache'", // not the user's ~/.cache
             build, rundir, data, shared, rundir);
    rc = run(cmd);
    XC_EXPECT(rc == 0 && strstr(g_out, "val064.mp4 (16 frames, 1 view)") && strstr(g_out, "%  a red circle"), "xclip-infer (%d):\n%s",
              rc, g_out);
    return xc_test_summary("test_demo_run");
}
