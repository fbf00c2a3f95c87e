// xclip-train - fine-tune CLIP into an X-CLIP video recogniser from a config file (train/config.h,
// configs/README.md), or run the small built-in job (--demo, train/demo.h).
//
//   xclip-train CONFIG [--set section.key=value]... [--resume PATH|auto] [--init CKPT] [--overwrite]
//   xclip-train --keys            every config key with its default and meaning (markdown)
//   xclip-train --demo [--steps N] [--batch B] [--lr LR] [--seed S] [--threads N]
#include "autograd/runtime.h"
#include "tools/cli.h"
#include "train/demo.h"
#include "train/trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-train CONFIG [--set section.key=value]... [--resume PATH|auto] [--init CKPT] [--overwrite]\n"
            "       xclip-train --keys\n"
            "       xclip-train --demo [--steps N] [--batch B] [--lr LR] [--seed S] [--threads N]\n"
            "\n"
            "Fine-tunes X-CLIP as CONFIG says (INI sections [data] [model] [train] [aug] [test] [output];\n"
            "configs/README.md lists every key). The run directory (output.dir) receives config.ini (the\n"
            "effective config), log.txt, metrics.jsonl (JSON lines), best.safetensors and last.safetensors.\n"
            "Faster: --set train.matmul=bf16 (bf16 matmuls, float32 sums) on CPUs with Intel AMX or AMD Zen 4 and\n"
            "later (AVX512-BF16; Intel CPUs with AMX hidden run it at float32's speed). Leaner: --set model.checkpoint=true (recompute vision blocks in backward).\n"
            "\n"
            "  --set s.k=v   override one key (repeatable), one word: --set train.lr=1e-5 --set data.root=/videos\n"
            "  --init CKPT   load these weights (an X-CLIP checkpoint, e.g. an earlier best.safetensors) over the\n"
            "                model before training; the optimiser and schedule start fresh\n"
            "  --resume P    continue an interrupted run from a snapshot (PATH or auto: the newest in output.dir)\n"
            "  --overwrite   start afresh in an output.dir that holds an earlier run (refused without it): deletes\n"
            "                that run's snapshots, best/last weights, log.txt and metrics.jsonl first\n"
            "  --keys        print the table of config keys (markdown) and exit\n"
            "  --demo        the built-in default job: a small video transformer on generated clips of a square\n"
            "                moving in 4 directions (no files needed); --demo --help for its options\n");
}

static void demo_usage(FILE *f) {
    fprintf(f,
            "usage: xclip-train --demo [--steps N] [--batch B] [--lr LR] [--seed S] [--threads N]\n"
            "\n"
            "Runs the built-in default job: a small video transformer (patch embedding, class token,\n"
            "2 spatial blocks per frame, a temporal block over frames) trained with AdamW on generated\n"
            "clips of a red or blue square moving in one of 4 directions (the class), then reports\n"
            "accuracy on 512 held-out generated clips. Chance is 25%%.\n"
            "\n"
            "  --steps N    training steps (default 500)\n"
            "  --batch B    clips per step (default 32)\n"
            "  --lr LR      peak learning rate (default 1e-3; warm-up 10%%, then cosine)\n"
            "  --seed S     seed of initialisation and data (default 1024)\n"
            "  --threads N  OpenMP + OpenBLAS threads (default: OMP_NUM_THREADS or all cores)\n");
}

static int arg_int(const char *flag, const char *v, long lo, long hi) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || x < lo || x > hi) {
        fprintf(stderr, "xclip-train: %s wants an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, v);
        exit(2);
    }
    return (int)x;
}

static int run_demo(int argc, char **argv) {
    DemoConfig cfg = demo_default_config();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { demo_usage(stdout); return 0; }
        if (i + 1 >= argc) {
            fprintf(stderr, "xclip-train --demo: %s needs a value\n", a);
            demo_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--steps")) cfg.steps = arg_int(a, v, 1, 10000000);
        else if (!strcmp(a, "--batch")) cfg.batch = arg_int(a, v, 1, 256);
        else if (!strcmp(a, "--seed")) cfg.seed = (uint64_t)arg_int(a, v, 0, 2147483647);
        else if (!strcmp(a, "--threads")) {
            int n = arg_int(a, v, 1, 256);
#ifdef _OPENMP
            omp_set_num_threads(n);
#endif
            openblas_set_num_threads(n);
        } else if (!strcmp(a, "--lr")) {
            char *end;
            cfg.lr = strtof(v, &end);
            if (*end || !(cfg.lr > 0.0f)) { fprintf(stderr, "xclip-train: --lr wants a positive number, got '%s'\n", v); return 2; }
        } else {
            fprintf(stderr, "xclip-train --demo: unknown option %s\n", a);
            demo_usage(stderr);
            return 2;
        }
    }
    Demo d;
    demo_init(&d, &cfg);
    printf("xclip-train: built-in default job: %d classes, clips %dx3x%dx%d, width %d, %d+1 blocks, %lld parameters\n",
           cfg.classes, cfg.frames, cfg.size, cfg.size, cfg.width, cfg.layers, (long long)d.ps.total);
    printf("accuracy before training: %.1f%% (chance %.1f%%)\n", 100.0 * demo_evaluate(&d, 512), 100.0 / cfg.classes);
    double t0 = xc_now(), ema = 0;
    for (int s = 0; s < cfg.steps; s++) {
        float loss = demo_train_step(&d, s);
        ema = s ? 0.9 * ema + 0.1 * loss : loss;
        if ((s + 1) % 25 == 0 || s + 1 == cfg.steps) {
            double dt = xc_now() - t0;
            printf("step %4d/%d  loss %.4f (avg %.4f)  %.0f clips/s  step arena peak %.1f MiB  rss %.0f MiB\n", s + 1,
                   cfg.steps, loss, ema, (double)(s + 1) * cfg.batch / dt, d.g.step.peak / 1048576.0,
                   xc_peak_rss() / 1048576.0);
            fflush(stdout);
        }
    }
    double acc = demo_evaluate(&d, 512);
    printf("accuracy after %d steps: %.1f%% on 512 held-out clips (chance %.1f%%), %.1f s\n", cfg.steps, 100.0 * acc,
           100.0 / cfg.classes, xc_now() - t0);
    demo_free(&d);
    return 0;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    if (argc < 2) {
        fprintf(stderr, "xclip-train: no CONFIG given (try configs/demo.ini, or --demo for the built-in job)\n");
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--demo")) return run_demo(argc - 2, argv + 2);
    const char *config = NULL;
    const char *sets[256];
    int nsets = 0;
    TrainRunOptions o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--keys")) { config_write_keys_markdown(stdout); return 0; }
        if (!strcmp(a, "--demo")) { fprintf(stderr, "xclip-train: --demo must come first (xclip-train --demo ...)\n"); return 2; }
        if (!strcmp(a, "--overwrite")) { o.overwrite = true; continue; }
        if (a[0] == '-' && a[1] == '-') {
            const char *v = NULL;
            const char *eq = strchr(a, '=');
            char flag[32];
            if (eq && eq - a < (long)sizeof flag) { // --set=a.b=c style is not used; --flag=value is
                snprintf(flag, sizeof flag, "%.*s", (int)(eq - a), a);
                v = eq + 1;
            } else {
                snprintf(flag, sizeof flag, "%.31s", a);
            }
            bool known = !strcmp(flag, "--set") || !strcmp(flag, "--resume") || !strcmp(flag, "--init");
            if (!known) {
                fprintf(stderr, "xclip-train: unknown option %s\n", a);
                usage(stderr);
                return 2;
            }
            if (!v) {
                if (i + 1 >= argc) { fprintf(stderr, "xclip-train: %s needs a value\n", flag); return 2; }
                v = argv[++i];
            }
            if (!strcmp(flag, "--set") && !cli_check_set("xclip-train", v, i + 1 < argc ? argv[i + 1] : NULL,
                                                           i + 2 < argc ? argv[i + 2] : NULL))
                return 2;
            if (!strcmp(flag, "--set")) {
                if (nsets == (int)(sizeof sets / sizeof sets[0])) { fprintf(stderr, "xclip-train: too many --set\n"); return 2; }
                sets[nsets++] = v;
            } else if (!strcmp(flag, "--resume")) o.resume = v;
            else o.init = v;
            continue;
        }
        if (config) {
            cli_extra_argument("xclip-train", config, "the CONFIG", a);
            return 2;
        }
        config = a;
    }
    if (!config) {
        fprintf(stderr, "xclip-train: no CONFIG given (try configs/demo.ini, or --demo for the built-in job)\n");
        usage(stderr);
        return 2;
    }
    if (o.resume && (o.init || o.overwrite)) { // each would be silently undone, or undo the resume
        fprintf(stderr, "xclip-train: --resume with %s: %s\n", o.init ? "--init" : "--overwrite",
                o.init ? "a resumed run takes its weights from the snapshot, not from --init; drop one of them"
                       : "--overwrite deletes the run that --resume continues; drop one of them");
        return 2;
    }
    TrainConfig c;
    XcError err = {{0}};
    if (config_load(&c, config, &err) != XC_OK) { fprintf(stderr, "xclip-train: %s\n", err.msg); return 2; }
    for (int i = 0; i < nsets; i++)
        if (config_set(&c, sets[i], &err) != XC_OK) { fprintf(stderr, "xclip-train: %s\n", err.msg); return 2; }
    if (dist_init(&argc, &argv, &err) != XC_OK) { fprintf(stderr, "xclip-train: %s\n", err.msg); return 2; }
    int rc = config_check(&c, CONFIG_FOR_TRAIN, &err); // (the same on every rank of an mpirun job)
    if (rc == XC_OK && o.init && access(o.init, R_OK) != 0) rc = xc_err(&err, "--init %s: cannot read it", o.init);
    if (rc != XC_OK) {
        if (dist_rank() == 0) fprintf(stderr, "xclip-train: %s\n", err.msg);
        dist_finalize();
        return 2;
    }
    return dist_exit("xclip-train", train_run(&c, &o, &err), &err); // 0, 75 (stopped: resume it) or 1
}
