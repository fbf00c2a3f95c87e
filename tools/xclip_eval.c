// xclip-eval - evaluate an X-CLIP checkpoint on one or more test lists (docs/model.md §10): top-1, top-5 and
// mean-class accuracy, mean ± std over several lists / label sets (zero-shot splits), per-video predictions.
//
//   xclip-eval CONFIG --checkpoint CKPT [--views CLIPSxCROPS] [--labels CSV]... [--list LIST]...
//              [--set section.key=value]... [--predictions PREFIX]
#include "autograd/runtime.h"
#include "nn/arch_check.h"
#include "tools/cli.h"
#include "train/pretrain.h"
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#define MAX_SETS 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-eval CONFIG --checkpoint CKPT [--views CLIPSxCROPS] [--labels CSV]... [--list LIST]...\n"
            "                  [--set section.key=value]... [--predictions PREFIX] [--probe DIR]\n"
            "\n"
            "Evaluates an X-CLIP checkpoint (e.g. a run's best.safetensors) with the data settings of CONFIG:\n"
            "top-1, top-5 and mean-class accuracy. The softmax probabilities of all views are summed per video.\n"
            "An X-CLIP checkpoint with a linear head (model.head = linear) scores the K classes it was trained on:\n"
            "the label file must have K rows, one --labels at most. A plain CLIP checkpoint (e.g. xclip-pretrain's)\n"
            "is evaluated zero-shot: the frames' CLIP features averaged (\"CLIP + mean pooling\", no X-CLIP module),\n"
            "data.frames frames per clip.\n"
            "\n"
            "  --checkpoint CKPT  X-CLIP or CLIP weights (any format xclip.c reads)\n"
            "  --views CxK        C clips x K crops per video (K = 1 or 3); default test.num_clip x test.num_crop\n"
            "  --list LIST        a test list (repeatable); default data.val_list\n"
            "  --labels CSV       label file (repeatable: one for all lists, or one per list, paired in order);\n"
            "                     default data.labels. Several lists or label sets print mean +- std (zero-shot splits)\n"
            "  --set s.k=v        override a config key, one word (e.g. --set data.val_root=/videos)\n"
            "  --predictions P    per-video predictions to P.csv (P_1.csv, P_2.csv... for several lists);\n"
            "                     default 'predictions'; 'none' writes none. Columns: path,label,label_name,pred,\n"
            "                     pred_name,prob,correct,top5 (RFC 4180: fields with , \" or line breaks are quoted)\n"
            "  --probe DIR        CLIP checkpoints: also zero-shot accuracy per attribute on a world's probe images\n"
            "                     (DIR = images/ of `xclip-synth world`: colour, shape, size, position, colour-shape\n"
            "                     pairs seen and unseen in pretraining), against chance; without --list, the probe alone\n"
            "Options take their value as the next word or after '=' (--checkpoint=CKPT); --set takes one word\n"
            "section.key=value.\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "xclip-eval: %s\n", msg);
    exit(1); // error exits leave the clean-up to the OS (everything stays reachable for LeakSanitizer)
}

static int write_predictions(const char *path, const Dataset *ds, const LabelSet *labels, const EvalOutput *o, int64_t n,
                             XcError *err) {
    FILE *f = xc_fopen(path, "w", err);
    if (!f) return XC_ERR;
    const int K = labels->count;
    fprintf(f, "path,label,label_name,pred,pred_name,prob,correct,top5\n");
    for (int64_t i = 0; i < n; i++) {
        const float *p = o->probs + i * K;
        int order[5], m = K < 5 ? K : 5;
        for (int r = 0; r < m; r++) { // top-5 by selection
            int best = -1;
            for (int k = 0; k < K; k++) {
                bool used = false;
                for (int q = 0; q < r; q++) used |= order[q] == k;
                if (!used && (best < 0 || p[k] > p[best])) best = k;
            }
            order[r] = best;
        }
        int y = o->labels[i];
        const char *path_i = o->items[i] >= 0 ? ds->items[o->items[i]].path : "?";
        csv_write_field(f, path_i); // RFC 4180: quoted (quotes doubled) only where a field needs it
        fprintf(f, ",%d,", y);
        csv_write_field(f, labels->names[y]);
        fprintf(f, ",%d,", order[0]);
        csv_write_field(f, labels->names[order[0]]);
        fprintf(f, ",%.6f,%d,", p[order[0]], order[0] == y);
        for (int r = 0; r < m; r++) fprintf(f, "%s%d", r ? " " : "", order[r]);
        fputc('\n', f);
    }
    fclose(f);
    return XC_OK;
}

// class_tokens cuts a class text longer than the text context (as CLIP's tokenize(truncate=True)): say so.
static void warn_long_labels(Tokenizer *tok, const LabelSet *labels, const char *file, const char *templ, int64_t S) {
    const char *at = strstr(templ, "{}");
    for (int k = 0; k < labels->count; k++) {
        size_t len = strlen(templ) + strlen(labels->names[k]);
        char *text = xc_malloc(len + 1);
        snprintf(text, len + 1, "%.*s%s%s", (int)(at - templ), templ, labels->names[k], at + 2);
        size_t count = tokenizer_encode_ids(tok, text, NULL, 0);
        if (count > (size_t)S - 2)
            fprintf(stderr, "xclip-eval: warning: %s: class %d '%s' is %zu tokens (data.template applied), more than the "
                            "%lld the model's text context holds; only its start is read\n",
                    file, k, labels->names[k], count, (long long)S - 2);
        xc_free(text);
    }
}

static void mean_std(const double *x, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0.0; // sample standard deviation over the splits
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *config = NULL, *ckpt = NULL, *views = NULL, *pred = "predictions", *probe = NULL;
    const char *lists[MAX_SETS], *labelfiles[MAX_SETS], *sets[256];
    int nlists = 0, nlabels = 0, nsets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (a[0] == '-' && a[1] == '-') {
            // --flag VALUE or --flag=VALUE
            char flag[32];
            const char *v;
            cli_split_flag(a, flag, sizeof flag, &v);
            static const char *FLAGS[] = {"--checkpoint", "--views", "--predictions", "--list", "--labels", "--set", "--probe"};
            bool known = false;
            for (size_t f = 0; f < sizeof FLAGS / sizeof FLAGS[0]; f++) known |= !strcmp(flag, FLAGS[f]);
            if (!known) { fprintf(stderr, "xclip-eval: unknown option %s\n", a); usage(stderr); return 2; }
            if (!v) {
                if (i + 1 >= argc) { fprintf(stderr, "xclip-eval: %s needs a value\n", flag); return 2; }
                v = argv[++i];
            }
            const char *next = i + 1 < argc ? argv[i + 1] : NULL, *next2 = i + 2 < argc ? argv[i + 2] : NULL;
            if (!strcmp(flag, "--checkpoint")) ckpt = v;
            else if (!strcmp(flag, "--views")) views = v;
            else if (!strcmp(flag, "--predictions")) pred = v;
            else if (!strcmp(flag, "--probe")) probe = v;
            else if (!strcmp(flag, "--list")) {
                if (nlists == MAX_SETS) { fprintf(stderr, "xclip-eval: more than %d --list\n", MAX_SETS); return 2; }
                lists[nlists++] = v;
            } else if (!strcmp(flag, "--labels")) {
                if (nlabels == MAX_SETS) { fprintf(stderr, "xclip-eval: more than %d --labels\n", MAX_SETS); return 2; }
                labelfiles[nlabels++] = v;
            } else {
                if (!cli_check_set("xclip-eval", v, next, next2)) return 2;
                if (nsets == (int)(sizeof sets / sizeof sets[0])) { fprintf(stderr, "xclip-eval: too many --set\n"); return 2; }
                sets[nsets++] = v;
            }
            continue;
        }
        if (config) { cli_extra_argument("xclip-eval", config, "the CONFIG", a); return 2; }
        config = a;
    }
    if (!config || !ckpt) {
        if (!config) fprintf(stderr, "xclip-eval: no CONFIG given (the config of the run, e.g. configs/demo.ini or RUN/config.ini)\n");
        else fprintf(stderr, "xclip-eval: no --checkpoint given (the X-CLIP weights to evaluate, e.g. RUN/best.safetensors)\n");
        usage(stderr);
        return 2;
    }
    if (nlabels > 1 && nlabels != (nlists ? nlists : 1)) {
        fprintf(stderr, "xclip-eval: %d --labels for %d lists: give one label file, or one per --list\n", nlabels, nlists);
        return 2;
    }
    TrainConfig c;
    XcError err = {{0}};
    if (config_load(&c, config, &err) != XC_OK) return fail(err.msg);
    for (int i = 0; i < nsets; i++)
        if (config_set(&c, sets[i], &err) != XC_OK) return fail(err.msg);
    int clips = c.num_clip, crops = c.num_crop;
    if (views) {
        char extra;
        if (sscanf(views, "%dx%d%c", &clips, &crops, &extra) != 2 || clips < 1 || clips > 64 || (crops != 1 && crops != 3)) {
            fprintf(stderr, "xclip-eval: --views wants CLIPSxCROPS with CROPS 1 or 3, e.g. 4x3 (got '%s')\n", views);
            return 2;
        }
    }
    // the lists and label files of the command line stand in for the config's
    if (nlists) snprintf(c.val_list, sizeof c.val_list, "%s", lists[0]);
    if (nlabels) snprintf(c.labels, sizeof c.labels, "%s", labelfiles[0]);
    const bool probe_only = probe && !nlists; // --probe without --list: the probe images alone
    if (!nlists) lists[nlists++] = c.val_list;
    if (config_check(&c, CONFIG_FOR_EVAL, &err) != XC_OK) return fail(err.msg);
    for (int i = 0; i < nlists; i++)
        if (access(lists[i], R_OK) != 0) { fprintf(stderr, "xclip-eval: --list %s: cannot read it\n", lists[i]); return 2; }
    for (int i = 0; i < nlabels; i++)
        if (access(labelfiles[i], R_OK) != 0) { fprintf(stderr, "xclip-eval: --labels %s: cannot read it\n", labelfiles[i]); return 2; }
    if (c.threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(c.threads);
#endif
        openblas_set_num_threads(c.threads);
    }

    c.fix_text = true; // evaluation: the text tower never trains
    c.head = XCLIP_HEAD_TEXT; // the checkpoint's own head decides (head.weight: linear); a CLIP one is zero-shot
    c.fused_adamw = FUSED_ADAMW_ON; // and nothing does: no gradient buffers (model_build)
    c.accumulation_steps = 1;
    c.context_tokens = 0; // the checkpoint's context vectors (prompt_learner.ctx), if it has any: nothing new to learn
    Gemm mm; // train.matmul: the precision of the evaluation's matmuls
    if (config_gemm_init(&c, &mm, &err) != XC_OK) return fail(err.msg);
    XClip m;
    Clip cm; // a plain CLIP checkpoint: zero-shot CLIP + mean pooling (no X-CLIP module would be trained)
    ParamStore ps;
    WeightSet ws = {0}; // read once: its tensors say which model to build
    if (weights_load(&ws, ckpt, &err) != XC_OK) {
        xc_err(&err, "--checkpoint = %s: %s", ckpt, err.msg);
        return fail(err.msg);
    }
    const bool is_xclip = xclip_weights_are_xclip(&ws);
    int built;
    if (is_xclip) built = model_build_from_weights(&m, &ps, &c, &ws, ckpt, &err);
    else if ((built = model_check_weights(&c, &ws, ckpt, &err)) == XC_OK) // model_build's checks, then a plain CLIP
        built = clip_model_from_weights(&cm, &ps, &ws, ckpt, &err);
    weights_free(&ws);
    if (built != XC_OK) return fail(err.msg);
    if (!is_xclip) {
        printf("xclip-eval: %s holds plain CLIP weights: zero-shot CLIP, the frames' features averaged (no X-CLIP modules)\n",
               ckpt);
    }
    if (probe && is_xclip) return fail("--probe measures a plain CLIP checkpoint; this one is X-CLIP");
    const bool linear = is_xclip && m.cfg.head == XCLIP_HEAD_LINEAR; // scores its own K classes, no text
    if (linear && nlabels > 1) {
        fprintf(stderr, "xclip-eval: %s has a linear head (head.weight, %lld classes): it scores only the classes it was "
                        "trained on, so several --labels (zero-shot label sets) cannot be evaluated\nHINT: give one "
                        "--labels (the run's label file), or evaluate a text-head X-CLIP\n", ckpt, (long long)m.cfg.num_classes);
        return 2;
    }
    const int64_t S = is_xclip ? m.cfg.clip.context : cm.cfg.context, T = c.frames;
    const int64_t H = is_xclip ? m.cfg.clip.image_size : cm.cfg.image_size;
    Tokenizer *tok = tokenizer_load(c.vocab, &err);
    if (!tok) {
        fprintf(stderr, "xclip-eval: data.vocab = %s: %s\n", c.vocab, err.msg);
        exit(1);
    }
    if (!linear && // (a linear head has no token embedding: its texts are never encoded)
        clip_arch_check_tokenizer(is_xclip ? m.cfg.clip.vocab : cm.cfg.vocab, tokenizer_vocab_size(tok), &err) != XC_OK)
        return fail(err.msg);
    Graph g;
    graph_init(&g, 64u << 20);
    g.gemm = &mm;
    const bool bar = isatty(STDOUT_FILENO) && c.progress != PROGRESS_OFF;
    double top1[MAX_SETS], top5[MAX_SETS], mcls[MAX_SETS];
    int nruns = probe_only ? 0 : nlists;
    const char *root = *c.val_root ? c.val_root : c.root;
    printf("xclip-eval: %s on %d list%s, %d clip%s x %d crop%s per video, T %lld, input %lld\n", ckpt, nlists,
           nlists == 1 ? "" : "s", clips, clips == 1 ? "" : "s", crops, crops == 1 ? "" : "s", (long long)T, (long long)H);
    if (probe) {
        ZeroShotResult z;
        if (clip_zero_shot_probe(&cm, &g, tok, probe, &z, &err) != XC_OK) return fail(err.msg);
        printf("zero-shot on %lld probe images of %s (chance): colour %.1f%% (12.5)  shape %.1f%% (12.5)  size %.1f%% (50)  "
               "position %.1f%% (11.1)  colour-shape pairs seen in pretraining %.1f%% / unseen %.1f%% (1.6, among all 64)\n",
               (long long)z.images, probe, z.colour, z.shape, z.size, z.position, z.combo_seen, z.combo_unseen);
    }
    for (int r = 0; r < nruns; r++) {
        const char *lf = nlabels > 1 ? labelfiles[r] : c.labels;
        LabelSet labels = {0};
        if (labels_load(lf, &labels, &err) != XC_OK) return fail(err.msg);
        const int K = labels.count;
        if (linear && K != m.cfg.num_classes) {
            fprintf(stderr, "xclip-eval: %s has %d classes but %s has a linear head (head.weight) of %lld: it scores only "
                            "the classes it was trained on (no zero-shot)\nHINT: give the run's label file (--labels or "
                            "data.labels)\n", lf, K, ckpt, (long long)m.cfg.num_classes);
            return 2;
        }
        const int64_t N = is_xclip ? m.cfg.context_tokens : 0; // a CoOp-trained checkpoint's learnt context
        int32_t *tokens = NULL;
        ClassTexts ct = {.M = 1};
        if (linear) {
            // the head scores its own K classes: no class texts
        } else if (!*c.templates && !N) {
            warn_long_labels(tok, &labels, lf, c.template_, S);
            tokens = class_tokens(tok, &labels, c.template_, S);
        } else { // a template ensemble or CoOp's context slots
            if (class_texts(tok, &labels, &c, N, S, &ct, &err) != XC_OK) return fail(err.msg);
            tokens = ct.tokens;
            if (ct.cut.count)
                fprintf(stderr, "xclip-eval: warning: %s: %d class texts are cut to the %lld ids the text context holds%s, "
                                "e.g. class %d '%s'\n", lf, ct.cut.count, (long long)ct.cut.room,
                        N ? " beside the context vectors" : "", ct.cut.class_index, labels.names[ct.cut.class_index]);
        }
        float *text = NULL; // CLIP: (K, E) normalised class features
        if (is_xclip && !linear) {
            m.cfg.templates = ct.templates;
            xclip_cache_text(&m, tokens, K, S);
        } else if (!is_xclip) {
            text = clip_text_features(&cm, &g, tokens, K * ct.M);
            if (ct.templates) clip_text_ensemble(text, K, ct.M, cm.cfg.embed_dim);
        }
        Dataset *ds = dataset_open(lists[r], root, K, &err);
        if (!ds) return fail(err.msg);
        if (ds->n_missing) fprintf(stderr, "warning: %lld videos of %s are missing:\n%s", (long long)ds->n_missing, lists[r], ds->issues);
        LoaderConfig lc = loader_config_test(&c, clips, crops, c.test_batch_size);
        Loader *ld = loader_create(ds, &lc, &err);
        if (!ld) return fail(err.msg);
        EvalResult res;
        EvalOutput out = {0};
        double t0 = xc_now();
        int rc = is_xclip ? evaluate(&m, &g, ld, ds->n, tokens, K, S, c.test_batch_size, bar, &res, &out, &err)
                          : evaluate_clip(&cm, text, T, &g, ld, ds->n, K, c.test_batch_size, bar, &res, &out, &err);
        if (rc != XC_OK) return fail(err.msg);
        top1[r] = res.top1;
        top5[r] = res.top5;
        mcls[r] = res.mean_class;
        printf("%s (%s, K = %d): top-1 %.2f%%  top-5 %.2f%%  mean class %.2f%%  (%lld videos, %d view%s, %.1f s)\n", lists[r],
               lf, K, res.top1, res.top5, res.mean_class, (long long)res.n, res.views, res.views == 1 ? "" : "s", xc_now() - t0);
        if (strcmp(pred, "none")) {
            char path[2048];
            if (nruns == 1) snprintf(path, sizeof path, "%s.csv", pred);
            else snprintf(path, sizeof path, "%s_%d.csv", pred, r + 1);
            if (write_predictions(path, ds, &labels, &out, res.n, &err) != XC_OK) return fail(err.msg);
            printf("  predictions -> %s\n", path);
        }
        eval_output_free(&out);
        loader_free(ld);
        dataset_free(ds);
        xc_free(tokens);
        xc_free(text);
        labels_free(&labels);
    }
    if (nruns > 1) {
        double a, b, c1, d, e, f;
        mean_std(top1, nruns, &a, &b);
        mean_std(top5, nruns, &c1, &d);
        mean_std(mcls, nruns, &e, &f);
        printf("mean over %d: top-1 %.2f +- %.2f%%  top-5 %.2f +- %.2f%%  mean class %.2f +- %.2f%%\n", nruns, a, b, c1, d, e, f);
    }
    graph_free(&g);
    gemm_free(&mm);
    tokenizer_free(tok);
    if (is_xclip) xclip_free(&m);
    param_store_free(&ps);
    return 0;
}
