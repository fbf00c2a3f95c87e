// xclip-pretrain - CLIP's contrastive pretraining on captioned images (train/pretrain.h, docs/model.md §13).
//
//   xclip-pretrain CONFIG [--set section.key=value]... [--resume PATH|auto] [--overwrite]
#include <stdio.h>
#include <string.h>
#include "autograd/runtime.h"
#include "tools/cli.h"
#include "train/pretrain.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-pretrain CONFIG [--set section.key=value]... [--resume PATH|auto] [--overwrite]\n"
            "\n"
            "Pretrains a CLIP (both towers from random initialisation) with CLIP's contrastive objective on a list of\n"
            "captioned images (data.train_list: image<TAB>caption, images in data.root), as configs/pretrain_world.ini\n"
            "does on the world of `xclip-synth world DIR`. Writes OUTPUT/best.safetensors and last.safetensors: CLIP\n"
            "weights under OpenAI's names, for model.pretrained of xclip-train or for xclip-export. Evaluates on\n"
            "data.val_list (image->caption top-1, which picks the best weights) and, with data.probe_dir, zero-shot\n"
            "accuracy per attribute. Snapshots, --resume, SIGINT / SIGTERM (snapshot, exit 75) and SIGUSR1 (snapshot)\n"
            "as xclip-train.\n"
            "\n"
            "  --set s.k=v      override a config key (repeatable; `xclip-train --keys` lists them)\n"
            "  --resume R       continue from a snapshot: a path, or `auto` (the newest valid one in output.dir)\n"
            "  --overwrite      start afresh in an output.dir that holds an earlier run (refused without it): deletes\n"
            "                   that run's snapshots, best/last weights, log.txt and metrics.jsonl first\n");
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *config = NULL, *sets[256];
    int nsets = 0;
    TrainRunOptions o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--overwrite")) { o.overwrite = true; continue; }
        if (!strcmp(a, "--set") || !strcmp(a, "--resume")) {
            if (i + 1 >= argc) { fprintf(stderr, "xclip-pretrain: %s needs a value\n", a); return 2; }
            const char *v = argv[++i];
            if (!strcmp(a, "--resume")) o.resume = v;
            else if (!cli_check_set("xclip-pretrain", v, i + 1 < argc ? argv[i + 1] : NULL, i + 2 < argc ? argv[i + 2] : NULL))
                return 2;
            else if (nsets == (int)(sizeof sets / sizeof sets[0])) { fprintf(stderr, "xclip-pretrain: too many --set\n"); return 2; }
            else sets[nsets++] = v;
            continue;
        }
        if (a[0] == '-') { fprintf(stderr, "xclip-pretrain: unknown option %s\n", a); usage(stderr); return 2; }
        if (config) {
            cli_extra_argument("xclip-pretrain", config, "the CONFIG", a);
            return 2;
        }
        config = a;
    }
    if (!config) { fprintf(stderr, "xclip-pretrain: no CONFIG given (try configs/pretrain_world.ini)\n"); usage(stderr); return 2; }
    if (o.resume && o.overwrite) {
        fprintf(stderr, "xclip-pretrain: --resume with --overwrite: --overwrite deletes the run that --resume continues; drop "
                        "one of them\n");
        return 2;
    }
    TrainConfig c;
    XcError err = {{0}};
    if (config_load(&c, config, &err) != XC_OK) { fprintf(stderr, "xclip-pretrain: %s\n", err.msg); return 2; }
    for (int i = 0; i < nsets; i++)
        if (config_set(&c, sets[i], &err) != XC_OK) { fprintf(stderr, "xclip-pretrain: %s\n", err.msg); return 2; }
    if (dist_init(&argc, &argv, &err) != XC_OK) { fprintf(stderr, "xclip-pretrain: %s\n", err.msg); return 2; }
    return dist_exit("xclip-pretrain", pretrain_run(&c, &o, &err), &err); // 0, 75 (stopped: resume it) or 1
}
