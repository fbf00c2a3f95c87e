// xclip-infer - zero-shot classification of one's own videos against free-text labels.
//
//   xclip-infer --checkpoint CKPT VIDEO... (--labels "a,b,c" | --label-file F) [--template "{}" | --templates F]
//               [--topk 5] [--views CLIPSxCROPS] [--frames T] [--vocab PATH] [--json | --csv]
//               [--text-cache DIR | --no-text-cache]
// With an X-CLIP checkpoint the full model runs (frames from the checkpoint unless --frames, which then
// resamples the MIT positional embedding). With a plain CLIP checkpoint every frame goes through CLIP's image
// tower, the frame features are averaged and normalised and compared with the text features (the usual
// CLIP-on-video baseline); the program says so. An X-CLIP checkpoint with a linear head (head.weight, K classes)
// is not zero-shot: the labels must be its K class names in training order (else an error). A checkpoint with
// CoOp context vectors (prompt_learner.ctx) puts them before every label's text; --templates ensembles a file of
// templates. --json and --csv print only the results on stdout (one JSON document, or RFC 4180 CSV rows);
// everything else goes to stderr. The class-text features are kept in a cache folder (nn/text_cache.h), so a
// second call with the same checkpoint and labels skips the text tower.
#include "autograd/runtime.h"
#include "data/dataset.h"
#include "data/sampling.h"
#include "data/tokenizer.h"
#include "data/transforms.h"
#include "data/video.h"
#include "nn/arch_check.h"
#include "nn/text_cache.h"
#include "nn/xclip.h"
#include "tools/cli.h"
#include "train/setup.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_VOCAB "../shared/clip/bpe_simple_vocab_16e6.txt.gz"

typedef enum { OUT_TEXT, OUT_JSON, OUT_CSV } OutFormat;

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-infer --checkpoint CKPT VIDEO... (--labels \"a,b,c\" | --label-file F)\n"
            "                   [--template \"{}\" | --templates F] [--topk 5] [--views CLIPSxCROPS] [--frames T] [--vocab PATH] [--json | --csv]\n"
            "                   [--text-cache DIR | --no-text-cache]\n"
            "\n"
            "Zero-shot classification of videos against free-text labels (at least two: the probabilities are a\n"
            "softmax over the labels); prints the top-k labels with their probabilities for each video.\n"
            "  --checkpoint CKPT  X-CLIP weights (full model), or plain CLIP weights (frame features averaged); a\n"
            "                     Hugging Face model folder also brings its tokenizer (vocab.json, merges.txt)\n"
            "  --labels L         comma-separated label texts (a label with a comma: use --label-file)\n"
            "  --label-file F     one label per line, or a CSV with header id,name (quoted names as RFC 4180)\n"
            "  --template T       text of a label: {} replaced by the label (default \"{}\"; e.g. \"a video of {}\");\n"
            "                     a text longer than the model's context is cut to fit, with a warning naming it\n"
            "  --templates F      a file of templates, one per line with {} (# comments): each label's text features\n"
            "                     are the normalised mean over the templates (CLIP's prompt ensemble)\n"
            "  --topk N           labels printed per video (default 5)\n"
            "  --views CxK        clips x crops per video, probabilities summed (default 1x1; K = 1 or 3)\n"
            "  --frames T         frames per clip (default: the checkpoint's for X-CLIP, 8 for CLIP or X-CLIP without MIT)\n"
            "  --vocab PATH       CLIP BPE vocabulary (default " DEFAULT_VOCAB ", also looked\n"
            "                     for beside the program and in the source tree when relative); gzip or plain,\n"
            "                     or a Hugging Face vocab.json / merges.txt / folder holding both\n"
            "  --json             results as one JSON document on stdout: {\"checkpoint\", \"model\", \"frames\", \"views\",\n"
            "                     \"labels\": [...], \"videos\": [{\"path\", \"frames\", \"top\": [{\"rank\", \"id\", \"label\",\n"
            "                     \"prob\"}...]} or {\"path\", \"error\"}]}; prob in [0, 1]\n"
            "  --csv              results as CSV on stdout: video,frames,rank,id,label,prob (RFC 4180 quoting);\n"
            "                     videos that cannot be read are named on stderr\n"
            "  --text-cache DIR   where the class-text features are kept between calls (default $XDG_CACHE_HOME/xclip,\n"
            "                     else ~/.cache/xclip): a second call with the same checkpoint, labels and templates\n"
            "                     reads them instead of running the text tower, with the same results to the bit. One\n"
            "                     file per checkpoint text tower and label list (the token rows and K x E floats, 0.9 MB\n"
            "                     for 400 labels at ViT-B/32); a rebuilt program replaces its files; a damaged file is a\n"
            "                     miss with a note; delete the folder any time\n"
            "  --no-text-cache    run the text tower and write nothing\n"
            "Exit status: 0, 1 if a video could not be read (the others are still classified), 2 on usage errors.\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "xclip-infer: %s\n", msg);
    exit(1); // error exits leave the clean-up to the OS (everything stays reachable for LeakSanitizer)
}

static char *dup_text(const char *t) {
    size_t n = strlen(t);
    char *d = xc_malloc(n + 1);
    memcpy(d, t, n + 1);
    return d;
}

static void add_label(char ***names, int *n, int *cap, const char *t) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *names = xc_realloc(*names, sizeof(char *) * (size_t)*cap);
    }
    (*names)[(*n)++] = dup_text(t);
}

// Label texts from "a,b,c", or a file: a label CSV with the header id,name (labels_load: ids 0..K-1, quoted
// names as RFC 4180), else one label per line. Blank entries are skipped. Returns the count, -1 + err.
static int read_labels(const char *inline_list, const char *file, char ***out, XcError *err) {
    char **names = NULL;
    int n = 0, cap = 0;
    if (!inline_list) { // a file
        size_t len;
        char *text = xc_read_file(file, 16u << 20, &len, err);
        if (!text) return -1;
        char *start = text + (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0);
        if (!strncmp(start, "id,name", 7) && strchr("\r\n", start[7])) {
            xc_free(text);
            LabelSet ls;
            if (labels_load(file, &ls, err) != XC_OK) return -1;
            for (int k = 0; k < ls.count; k++) add_label(&names, &n, &cap, ls.names[k]);
            labels_free(&ls);
        } else {
            for (char *save = NULL, *line = strtok_r(start, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                while (*line == ' ' || *line == '\t') line++;
                size_t l = strlen(line);
                while (l && (line[l - 1] == ' ' || line[l - 1] == '\r' || line[l - 1] == '\t')) line[--l] = 0;
                if (*line) add_label(&names, &n, &cap, line);
            }
            xc_free(text);
        }
        if (n == 0) return xc_err(err, "--label-file %s: no labels in it (one per line, or a CSV id,name)", file), -1;
    } else {
        char *text = dup_text(inline_list);
        for (char *save = NULL, *tok = strtok_r(text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ' || *tok == '\t') tok++;
            size_t l = strlen(tok);
            while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t')) tok[--l] = 0;
            if (*tok) add_label(&names, &n, &cap, tok);
        }
        xc_free(text);
        if (n == 0) return xc_err(err, "--labels '%s': no labels in it (comma-separated texts, e.g. --labels \"a,b,c\")", inline_list), -1;
    }
    *out = names;
    return n;
}

// The token ids of each label's text (template applied) into tokens (K, S); a text longer than the context is
// cut as CLIP's tokenize(truncate=True) does, and each such label is named on stderr with what is kept.
static int32_t *label_tokens(Tokenizer *tok, char **names, int K, const char *templ, int64_t S) {
    int32_t *tokens = xc_calloc((size_t)K * (size_t)S, sizeof(int32_t));
    const char *at = strstr(templ, "{}");
    for (int k = 0; k < K; k++) {
        size_t len = strlen(templ) + strlen(names[k]);
        char *text = xc_malloc(len + 1);
        snprintf(text, len + 1, "%.*s%s%s", (int)(at - templ), templ, names[k], at + 2);
        int32_t *row = tokens + (size_t)k * (size_t)S;
        size_t count = tokenizer_encode_ids(tok, text, NULL, 0);
        tokenizer_encode(tok, text, row, (int)S);
        if (count > (size_t)S - 2) {
            char kept[512];
            tokenizer_decode(tok, row + 1, (size_t)S - 2, kept, sizeof kept);
            fprintf(stderr,
                    "xclip-infer: warning: label %d '%s' is %zu tokens%s, more than the %lld the model's text context "
                    "holds; only the start is read: '%s'\nHINT: shorten the label (or the --template)\n",
                    k, names[k], count, strcmp(templ, "{}") ? " with the template" : "", (long long)S - 2, kept);
        }
        xc_free(text);
    }
    return tokens;
}

// ---- class-text features kept between calls (nn/text_cache.h) ----------------------------------------
// The tensors the class-text features depend on: the text tower and CoOp's context vectors.
static bool text_side(const char *name) { return xclip_is_text_tensor(name) || !strncmp(name, "prompt_learner.", 15); }

// Completes key (weights, build) and names its file in path (n bytes); returns the cached features (K, E), or
// NULL on a miss: path[0] = 0 then means no cache (off, or no folder), and a file that was there but could not be
// used is named with the reason on stderr. dir: --text-cache (NULL: the default folder).
static float *text_cache_lookup(const char *dir, bool off, const ParamStore *ps, TextCacheKey *key, char *path, size_t n,
                                FILE *info) {
    char folder[4096];
    path[0] = 0;
    if (off) return NULL;
    if (!text_cache_dir(dir, folder, sizeof folder)) {
        fprintf(info, "xclip-infer: text cache off: no $XDG_CACHE_HOME or $HOME to put it in (give --text-cache DIR)\n");
        return NULL;
    }
    key->build = text_cache_build_id();
    if (!key->build) {
        fprintf(info, "xclip-infer: text cache off: cannot read the program's own file (/proc/self/exe) to tell builds apart\n");
        return NULL;
    }
    text_cache_hash_weights(ps, text_side, key->weights);
    if (text_cache_path(folder, key, path, n) != XC_OK) {
        path[0] = 0;
        fprintf(info, "xclip-infer: text cache off: the folder's path is too long: %s\n", folder);
        return NULL;
    }
    XcError err = {{0}};
    float *f = NULL;
    TextCacheStatus st = text_cache_read(path, key, &f, &err);
    if (st == TEXT_CACHE_HIT) fprintf(info, "xclip-infer: text features: cached (%s)\n", path);
    if (st == TEXT_CACHE_UNUSABLE) fprintf(stderr, "xclip-infer: note: text cache %s; running the text tower again\n", err.msg);
    return f;
}

// After a miss: says how long the text tower took and keeps the features (K, E) in path (unless path is empty).
static void text_cache_store(const char *path, const TextCacheKey *key, const float *features, double seconds, FILE *info) {
    XcError err = {{0}};
    if (!*path) fprintf(info, "xclip-infer: text features: computed in %.2f s (not cached)\n", seconds);
    else if (text_cache_write(path, key, features, &err) == XC_OK)
        fprintf(info, "xclip-infer: text features: computed in %.2f s, cached to %s\n", seconds, path);
    else fprintf(stderr, "xclip-infer: text features: computed in %.2f s; not cached: %s\n", seconds, err.msg);
}

// ---- output: text (default), one JSON document, or CSV ----------------------------------------------
typedef struct Output {
    OutFormat format;
    FILE *info;     // stdout for text, stderr when stdout carries JSON or CSV
    int videos;     // JSON: entries written so far
} Output;

static void out_begin(Output *o, const char *ckpt, bool is_xclip, int64_t T, int clips, int crops, const char *templ,
                      char **names, int K) {
    if (o->format == OUT_CSV) fputs("video,frames,rank,id,label,prob\n", stdout);
    if (o->format != OUT_JSON) return;
    fputs("{\"checkpoint\": ", stdout);
    cli_json_string(stdout, ckpt);
    printf(", \"model\": \"%s\", \"frames\": %lld, \"views\": {\"clips\": %d, \"crops\": %d}, \"template\": ",
           is_xclip ? "X-CLIP" : "CLIP", (long long)T, clips, crops);
    cli_json_string(stdout, templ);
    fputs(", \"labels\": [", stdout);
    for (int k = 0; k < K; k++) {
        if (k) fputs(", ", stdout);
        cli_json_string(stdout, names[k]);
    }
    fputs("], \"videos\": [", stdout);
}

static void out_video(Output *o, const char *path, int64_t frames, int nviews, const double *prob, const int *order,
                      int top, char **names) {
    if (o->format == OUT_TEXT) {
        printf("%s (%lld frames, %d view%s):\n", path, (long long)frames, nviews, nviews == 1 ? "" : "s");
        for (int a = 0; a < top; a++) printf("  %6.2f%%  %s\n", 100.0 * prob[order[a]], names[order[a]]);
    } else if (o->format == OUT_CSV) {
        for (int a = 0; a < top; a++) {
            csv_write_field(stdout, path);
            printf(",%lld,%d,%d,", (long long)frames, a + 1, order[a]);
            csv_write_field(stdout, names[order[a]]);
            printf(",%.8g\n", prob[order[a]]);
        }
    } else {
        fputs(o->videos++ ? ",\n  {\"path\": " : "\n  {\"path\": ", stdout);
        cli_json_string(stdout, path);
        printf(", \"frames\": %lld, \"top\": [", (long long)frames);
        for (int a = 0; a < top; a++) {
            printf("%s{\"rank\": %d, \"id\": %d, \"label\": ", a ? ", " : "", a + 1, order[a]);
            cli_json_string(stdout, names[order[a]]);
            printf(", \"prob\": %.8g}", prob[order[a]]);
        }
        fputs("]}", stdout);
    }
    fflush(stdout);
}

// A video that could not be read: named on stderr in every format, and as an entry in JSON.
static void out_error(Output *o, const char *path, const char *msg) {
    fprintf(stderr, "xclip-infer: %s\n", msg);
    if (o->format != OUT_JSON) return;
    fputs(o->videos++ ? ",\n  {\"path\": " : "\n  {\"path\": ", stdout);
    cli_json_string(stdout, path);
    fputs(", \"error\": ", stdout);
    cli_json_string(stdout, msg);
    fputs("}", stdout);
}

static void out_end(Output *o) {
    if (o->format == OUT_JSON) fputs(o->videos ? "\n]}\n" : "]}\n", stdout);
}

static int usage_error(const char *fmt, const char *arg) __attribute__((format(printf, 1, 0)));
static int usage_error(const char *fmt, const char *arg) {
    fputs("xclip-infer: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *ckpt = NULL, *labels_inline = NULL, *label_file = NULL, *templ = "{}", *vocab = DEFAULT_VOCAB;
    bool vocab_given = false;
    const char *templates_file = NULL;
    const char *videos[1024];
    int nvideos = 0, topk = 5, clips = 1, crops = 1, frames = 0;
    Output out = {.format = OUT_TEXT, .info = stdout};
    bool json = false, csv = false, no_text_cache = false;
    const char *text_cache = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--json")) { json = true; continue; }
        if (!strcmp(a, "--csv")) { csv = true; continue; }
        if (!strcmp(a, "--no-text-cache")) { no_text_cache = true; continue; }
        if (a[0] == '-' && a[1] == '-') {
            // --flag VALUE or --flag=VALUE
            char flag[32];
            const char *v;
            cli_split_flag(a, flag, sizeof flag, &v);
            static const char *FLAGS[] = {"--checkpoint", "--labels", "--label-file", "--template", "--templates", "--vocab",
                                          "--topk", "--frames", "--views", "--text-cache"};
            bool known = false;
            for (size_t f = 0; f < sizeof FLAGS / sizeof FLAGS[0]; f++) known |= !strcmp(flag, FLAGS[f]);
            if (!known) return usage_error("unknown option %s", a);
            if (!v) {
                if (i + 1 >= argc) { fprintf(stderr, "xclip-infer: %s needs a value\n", flag); return 2; }
                v = argv[++i];
            }
            char extra;
            if (!strcmp(flag, "--checkpoint")) ckpt = v;
            else if (!strcmp(flag, "--labels")) labels_inline = v;
            else if (!strcmp(flag, "--label-file")) label_file = v;
            else if (!strcmp(flag, "--template")) templ = v;
            else if (!strcmp(flag, "--templates")) templates_file = v;
            else if (!strcmp(flag, "--vocab")) vocab = v, vocab_given = true;
            else if (!strcmp(flag, "--text-cache")) text_cache = v;
            else if (!strcmp(flag, "--topk")) {
                if (sscanf(v, "%d%c", &topk, &extra) != 1 || topk < 1) { fprintf(stderr, "xclip-infer: --topk wants a positive integer, got '%s'\n", v); return 2; }
            } else if (!strcmp(flag, "--frames")) {
                if (sscanf(v, "%d%c", &frames, &extra) != 1 || frames < 1 || frames > 1024) { fprintf(stderr, "xclip-infer: --frames wants 1..1024, got '%s'\n", v); return 2; }
            } else if (sscanf(v, "%dx%d%c", &clips, &crops, &extra) != 2 || clips < 1 || clips > 64 || (crops != 1 && crops != 3)) {
                fprintf(stderr, "xclip-infer: --views wants CLIPSxCROPS with CROPS 1 or 3, e.g. 4x3, got '%s'\n", v);
                return 2;
            }
            continue;
        }
        if (nvideos == 1024) return fail("more than 1024 videos");
        videos[nvideos++] = a;
    }
    if (!ckpt) return usage_error("%s", "no --checkpoint given (X-CLIP or CLIP weights)");
    if (!nvideos) return usage_error("%s", "no VIDEO given (the files to classify)");
    if (!labels_inline && !label_file)
        return usage_error("%s", "no labels given: add --labels \"a,b,c\" or --label-file F (the texts the videos are "
                                 "compared with, at least two)");
    if (labels_inline && label_file) return usage_error("%s", "give --labels or --label-file, not both");
    if (json && csv) return usage_error("%s", "--json and --csv: choose one output format");
    if (no_text_cache && text_cache) return usage_error("%s", "give --text-cache DIR or --no-text-cache, not both");
    if (text_cache && !*text_cache) return usage_error("%s", "--text-cache needs a folder");
    if (json || csv) out = (Output){.format = json ? OUT_JSON : OUT_CSV, .info = stderr};
    if (!strstr(templ, "{}")) return fail("--template needs {} where the label goes");
    if (templates_file && strcmp(templ, "{}")) return usage_error("%s", "give --template or --templates, not both");
    XcError err = {{0}};
    char **names = NULL;
    int K = read_labels(labels_inline, label_file, &names, &err);
    if (K < 0) return fail(err.msg);
    if (K == 1) {
        fprintf(stderr, "xclip-infer: one label only ('%s'): the probabilities are a softmax over the labels, so a single "
                        "label always gets 100%%\nHINT: give at least two labels, e.g. --labels \"%s,something else\"\n",
                names[0], names[0]);
        exit(2); // as fail(): the clean-up is left to the OS
    }
    char vocab_path[4096], tried[1024];
    struct stat st;
    char hf_vocab[4096];
    snprintf(hf_vocab, sizeof hf_vocab, "%s/vocab.json", ckpt);
    if (!vocab_given && stat(ckpt, &st) == 0 && S_ISDIR(st.st_mode) && access(hf_vocab, R_OK) == 0) {
        snprintf(vocab_path, sizeof vocab_path, "%s", ckpt); // a Hugging Face folder brings its tokenizer
        fprintf(out.info, "xclip-infer: tokenizer from the checkpoint folder %s (vocab.json, merges.txt)\n", ckpt);
    } else if (!xc_locate_file(vocab, vocab_path, sizeof vocab_path, tried, sizeof tried)) {
        fprintf(stderr, "xclip-infer: --vocab %s: CLIP's BPE vocabulary not found; looked at:\n%s"
                        "HINT: give CLIP's bpe_simple_vocab_16e6.txt.gz (openai/CLIP) with --vocab PATH\n", vocab, tried);
        exit(1);
    }
    Tokenizer *tok = tokenizer_load(vocab_path, &err);
    if (!tok) {
        fprintf(stderr, "xclip-infer: %s\nHINT: give CLIP's bpe_simple_vocab_16e6.txt.gz (openai/CLIP) with --vocab\n", err.msg);
        exit(1);
    }

    WeightSet ws = {0};
    if (weights_load(&ws, ckpt, &err) != XC_OK) return fail(err.msg);
    const bool is_xclip = xclip_weights_are_xclip(&ws);
    ParamStore ps;
    param_store_init(&ps, "params");
    XClip xm;
    Clip cm;
    ClipConfig cc;
    int64_t T;
    bool linear_head = false; // X-CLIP with a linear head: no text, its own K classes
    if (is_xclip) {
        const WeightTensor *pos = weights_find(&ws, "mit.positional_embedding"); // absent without MIT (model.mit_layers 0)
        int64_t t0 = pos ? pos->shape[1] : 8;
        T = frames ? frames : t0;
        XClipConfig xc;
        if (xclip_config_from_weights(&xc, &ws, T, true, &err) != XC_OK || xclip_adapt_weights(&ws, T, &err) != XC_OK)
            return fail(err.msg);
        xc.fix_text = true;
        if (xc.head == XCLIP_HEAD_LINEAR && K != xc.num_classes) {
            fprintf(stderr, "xclip-infer: %s has a linear head (head.weight) trained on %lld classes; it scores only those, "
                            "not free-text labels (no zero-shot), and %d labels were given\nHINT: give its %lld class "
                            "names in training order with --label-file (the run's data.labels)\n",
                    ckpt, (long long)xc.num_classes, K, (long long)xc.num_classes);
            return 1;
        }
        linear_head = xc.head == XCLIP_HEAD_LINEAR;
        xclip_init(&xm, &ps, &xc);
        if (params_load(&ps, &ws, NULL, &err) != XC_OK) return fail(err.msg);
        cc = xc.clip;
        fprintf(out.info, "xclip-infer: X-CLIP checkpoint (T = %lld%s), %d labels%s\n", (long long)T,
               pos && T != t0 ? ", MIT positional embedding resampled" : "", K,
               linear_head ? " (linear head: the labels name its classes in order; the template is unused)" : "");
    } else {
        T = frames ? frames : 8;
        if (clip_config_from_weights(&cc, &ws, &err) != XC_OK) return fail(err.msg);
        clip_init(&cm, &ps, &cc, true);
        if (params_load(&ps, &ws, NULL, &err) != XC_OK) return fail(err.msg);
        fprintf(out.info, "xclip-infer: plain CLIP checkpoint: frame features of %lld frames averaged (no X-CLIP video modules), "
               "%d labels\n", (long long)T, K);
    }
    if (!linear_head && clip_arch_check_tokenizer(cc.vocab, tokenizer_vocab_size(tok), &err) != XC_OK) return fail(err.msg);
    weights_free(&ws);

    // class texts
    const int64_t S = cc.context;
    const int64_t N = is_xclip ? xm.cfg.context_tokens : 0; // a CoOp-trained checkpoint's context vectors
    int64_t M = 1, ensembled = 0;
    int32_t *tokens = NULL;
    if (linear_head) {
        if (templates_file) return fail("--templates: this checkpoint has a linear head (head.weight), which reads no texts");
    } else if (!templates_file && !N) {
        tokens = label_tokens(tok, names, K, templ, S);
    } else {
        Templates tl = {0};
        if (templates_file && N) return fail("--templates: this checkpoint has learnt context vectors (prompt_learner.ctx), "
                                             "which take the place of templates");
        if (templates_file && templates_load(templates_file, &tl, &err) != XC_OK) return fail(err.msg);
        if (N + 3 > S) return fail("the checkpoint's context vectors leave no room for a label in the text context");
        const char *const *list = tl.count ? (const char *const *)tl.text : &templ;
        M = tl.count ? tl.count : 1;
        ensembled = tl.count;
        PromptCut cut;
        tokens = class_tokens_prompted(tok, &(LabelSet){K, names}, list, (int)M, N, S, &cut);
        if (cut.count)
            fprintf(stderr, "xclip-infer: warning: %d label texts are cut to the %lld ids the text context holds%s, e.g. "
                            "label %d '%s'\n", cut.count, (long long)cut.room, N ? " beside the context vectors" : "",
                    cut.class_index, names[cut.class_index]);
        templates_free(&tl);
    }
    Graph g;
    graph_init(&g, 64u << 20);
    graph_set_grad(&g, false);
    float *text_feat = NULL; // (K, E) normalised, CLIP path
    if (is_xclip) xm.cfg.templates = ensembled;
    if (!linear_head) {
        char kind[32];
        snprintf(kind, sizeof kind, "%s%s", is_xclip ? "xclip" : "clip", ensembled ? "-ensemble" : "");
        TextCacheKey key = {.K = K, .M = M, .S = S, .E = cc.embed_dim, .tokens = tokens};
        snprintf(key.kind, sizeof key.kind, "%s", kind);
        char path[4200] = "";
        float *cached = text_cache_lookup(no_text_cache ? NULL : text_cache, no_text_cache, &ps, &key, path, sizeof path, out.info);
        double t0 = xc_now();
        if (is_xclip && cached) {
            xclip_set_text_cache(&xm, cached, K);
        } else if (is_xclip) {
            xclip_cache_text(&xm, tokens, K, S);
            text_cache_store(path, &key, xm.text_cache, xc_now() - t0, out.info);
        } else if (cached) {
            text_feat = cached;
            cached = NULL;
        } else {
            Tensor *t = op_l2_normalize(&g, clip_encode_text(&g, &cm.text, tokens, K * M, S, true));
            text_feat = xc_malloc(sizeof(float) * (size_t)t->numel);
            memcpy(text_feat, t->data, sizeof(float) * (size_t)t->numel);
            if (ensembled) clip_text_ensemble(text_feat, K, M, cc.embed_dim);
            graph_reset(&g);
            text_cache_store(path, &key, text_feat, xc_now() - t0, out.info);
        }
        xc_free(cached);
    }

    const int H = (int)cc.image_size;
    TfConfig tf = tf_config_default(H);
    tf.num_crop = crops;
    const size_t clip_floats = (size_t)T * 3 * H * H;
    float *input = xc_malloc(sizeof(float) * clip_floats * (size_t)crops * (size_t)clips);
    int64_t *idx = xc_malloc(sizeof(int64_t) * (size_t)(clips * T));
    double *prob = xc_malloc(sizeof(double) * (size_t)K);
    int *order = xc_malloc(sizeof(int) * (size_t)K);
    VideoLimits lim = video_limits_default();
    int status = 0;
    out_begin(&out, ckpt, is_xclip, T, clips, crops, templ, names, K);
    for (int vi = 0; vi < nvideos; vi++) {
        Video *v = video_open((VideoSource){.path = videos[vi]}, &lim, &err);
        if (!v) {
            out_error(&out, videos[vi], err.msg);
            status = 1;
            continue;
        }
        int64_t n = video_frame_count(v);
        sample_test_views(n, (int)T, clips, SAMPLE_VIEWS_SHIFTED, NULL, idx);
        int short_side = tf_test_short_side(&tf), oh, ow;
        video_output_size(v, short_side, &oh, &ow);
        uint8_t *frames_rgb = xc_malloc((size_t)clips * T * oh * ow * 3);
        int rc = video_read_frames(v, idx, (int)(clips * T), short_side, VIDEO_SCALE_REF, frames_rgb, &err);
        video_close(v);
        if (rc != XC_OK) {
            out_error(&out, videos[vi], err.msg);
            xc_free(frames_rgb);
            status = 1;
            continue;
        }
        for (int c = 0; c < clips; c++)
            tf_apply_test(&tf, frames_rgb + (size_t)c * T * oh * ow * 3, (int)T, oh, ow, input + (size_t)c * crops * clip_floats);
        xc_free(frames_rgb);
        for (int k = 0; k < K; k++) prob[k] = 0;
        const int nviews = clips * crops;
        for (int view = 0; view < nviews; view++) {
            const float *x = input + (size_t)view * clip_floats;
            Tensor *logits;
            if (is_xclip) {
                Tensor *vt = tensor_from(&g, 5, (int64_t[]){1, T, 3, H, H}, x);
                logits = xclip_forward(&g, &xm, vt, NULL, K, S, NULL).logits;
            } else { // CLIP + mean pooling: the frames' features averaged, as CLIP-on-video baselines do
                logits = clip_video_logits(&g, &cm, tensor_wrap(&g, 5, (int64_t[]){1, T, 3, H, H}, x), text_feat, K);
            }
            double mx = logits->data[0], z = 0;
            for (int k = 1; k < K; k++) mx = fmax(mx, logits->data[k]);
            for (int k = 0; k < K; k++) z += exp(logits->data[k] - mx);
            for (int k = 0; k < K; k++) prob[k] += exp(logits->data[k] - mx) / z / nviews;
            graph_reset(&g);
        }
        for (int k = 0; k < K; k++) order[k] = k;
        for (int a = 0; a < K && a < topk; a++) // partial selection sort
            for (int b = a + 1; b < K; b++)
                if (prob[order[b]] > prob[order[a]]) {
                    int t = order[a];
                    order[a] = order[b];
                    order[b] = t;
                }
        out_video(&out, videos[vi], n, nviews, prob, order, topk < K ? topk : K, names);
    }
    out_end(&out);
    xc_free(input);
    xc_free(idx);
    xc_free(prob);
    xc_free(order);
    xc_free(text_feat);
    xc_free(tokens);
    for (int k = 0; k < K; k++) xc_free(names[k]);
    xc_free(names);
    graph_free(&g);
    if (is_xclip) xclip_free(&xm);
    param_store_free(&ps);
    tokenizer_free(tok);
    return status;
}
