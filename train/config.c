// config.c - see config.h. One table holds every key: type, range, default and meaning (CONFIG_KEYS); this file
// parses values into it. Checks are in config_check.c, writing (the effective config, diffs, the Markdown
// reference) in config_write.c.
#include "train/config.h"
#include "train/dist.h"
#include "train/config_keys.h"
#include "autograd/kernels.h"
#include "autograd/runtime.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define F(field) offsetof(TrainConfig, field), sizeof(((TrainConfig *)0)->field)
#define INT(s, k, field, lo, hi, def, doc) {s, k, K_INT, F(field), lo, hi, NULL, def, doc}
#define I64(s, k, field, lo, hi, def, doc) {s, k, K_I64, F(field), lo, hi, NULL, def, doc}
#define NUM(s, k, field, lo, hi, def, doc) {s, k, K_F64, F(field), lo, hi, NULL, def, doc}
#define BOOL(s, k, field, def, doc) {s, k, K_BOOL, F(field), 0, 0, NULL, def, doc}
#define STR(s, k, field, def, doc) {s, k, K_STR, F(field), 0, 0, NULL, def, doc}
#define PATH(s, k, field, def, doc) {s, k, K_PATH, F(field), 0, 0, NULL, def, doc}
#define ENUM(s, k, field, choices, def, doc) {s, k, K_ENUM, F(field), 0, 0, choices, def, doc}

const Key CONFIG_KEYS[] = {
    // [data]
    PATH("data", "root", root, "", "folder or uncompressed .tar holding the training videos (list paths are relative to it)"),
    PATH("data", "val_root", val_root, "", "folder or .tar of the validation videos; empty: the same as root"),
    PATH("data", "train_list", train_list, "", "training list, one `relative/path.mp4 <label id>` per line"),
    PATH("data", "val_list", val_list, "", "validation / test list (same format)"),
    PATH("data", "labels", labels, "", "label CSV with header `id,name`; the names are the class texts"),
    PATH("data", "vocab", vocab, "../shared/clip/bpe_simple_vocab_16e6.txt.gz",
         "CLIP BPE vocabulary: openai/CLIP's clip/bpe_simple_vocab_16e6.txt.gz (gzip or uncompressed), or a Hugging Face "
         "vocab.json / merges.txt (the other file beside it) or the folder holding both; a relative path not found from the current "
         "directory is also looked for beside the program, in its parent folder and in the source tree"),
    STR("data", "template", template_, "{}", "text of a class: `{}` is replaced by the class name (X-CLIP uses the name alone)"),
    PATH("data", "templates", templates, "",
         "file of class-text templates, one per line with `{}` (blank lines and `#` comments skipped): a class's text "
         "features = the normalised mean of its templates' normalised features (CLIP's prompt ensemble); empty: "
         "data.template alone"),
    INT("data", "num_classes", num_classes, 0, 100000, "0", "K; 0 = the number of rows of the label file (else must equal it)"),
    INT("data", "frames", frames, 1, 1024, "8", "T, frames per clip (sparse segment sampling)"),
    INT("data", "input_size", input_size, 8, 1024, "224", "H = W of the network input; must match the model's image size"),
    INT("data", "workers", workers, 1, 64, "2", "decoding threads of the loader"),
    INT("data", "shots", shots, 0, 100000, "0", "few-shot: draw this many videos per class from train_list (0 = use the whole list)"),
    I64("data", "shot_seed", shot_seed, 0, 9007199254740991.0, "1024", "seed of the few-shot draw (the drawn list is saved in the run directory)"),
    ENUM("data", "resize", resize, "ref|sws", "ref",
         "first resize: ref = mmcv's bilinear geometry (reference), sws = swscale in one pass (faster, not bitwise)"),
    NUM("data", "max_bad_fraction", max_bad_fraction, 0, 1, "0.01", "stop when more than this share of a list fails to decode"),
    PATH("data", "probe_dir", probe_dir, "",
         "xclip-pretrain: folder of a world's probe images (images/ of `xclip-synth world`): zero-shot accuracy per "
         "attribute at every evaluation; empty: none"),
    // [model]
    PATH("model", "pretrained", pretrained, "",
         "CLIP checkpoint (OpenAI .pt, .pth, safetensors, HDF5, Hugging Face) or X-CLIP checkpoint; `none` = random init"),
    ENUM("model", "arch", arch, "ViT-B/32|ViT-B/16|ViT-L/14|ViT-L/14-336|custom", "ViT-B/32",
         "architecture; checked against the pretrained weights; `custom` takes the sizes below (pretrained = none)"),
    INT("model", "vision_width", vision_width, 64, 4096, "768", "custom: W, width of the vision transformer (a multiple of 64)"),
    INT("model", "vision_layers", vision_layers, 1, 64, "12", "custom: vision transformer blocks"),
    INT("model", "patch", patch, 1, 512, "32", "custom: P, patch size in pixels (input_size must be a multiple)"),
    INT("model", "embed_dim", embed_dim, 64, 4096, "512", "custom: E, joint embedding size (a multiple of 64)"),
    INT("model", "text_width", text_width, 64, 4096, "512", "custom: D, width of the text transformer (a multiple of 64)"),
    INT("model", "text_layers", text_layers, 1, 64, "12", "custom: text transformer blocks"),
    INT("model", "context", context, 8, 1024, "77", "custom: S, text context length"),
    INT("model", "vocab_size", vocab_size, 49408, 49408, "49408", "custom: token vocabulary (CLIP's BPE: 49408)"),
    INT("model", "mit_layers", mit_layers, 0, 64, "1",
        "multi-frame integration transformer blocks (CLIP start); 0 = none, not even mit.positional_embedding: the "
        "video feature is the mean of the frame features"),
    INT("model", "prompt_layers", prompt_layers, 0, 64, "2", "video-specific prompt generator layers (CLIP start); 0 = no prompt generator, no prompts_* tensors: the class "
        "features are the text features"),
    BOOL("model", "cct", cct, "true",
         "cross-frame communication (message tokens) in the vision blocks (CLIP start); false = CLIP's plain blocks on "
         "each frame alone, no message_* tensors (with mit_layers = 0 and prompt_layers = 0: CLIP + mean pooling)"),
    INT("model", "context_tokens", context_tokens, 0, 1021, "0",
        "CoOp: N learnable context vectors (prompt_learner.ctx, N x D, 10x lr) between the start token and the class "
        "text, shared by all classes; trained even with fix_text (the frozen tower runs every step); 0 = none"),
    NUM("model", "prompt_alpha", prompt_alpha, 0, 1e6, "0.1", "initial value of prompts_generator.alpha"),
    NUM("model", "drop_path", drop_path, 0, 1, "0",
        "stochastic depth of the last vision block (linear from 0); the official configs leave it at 0"),
    BOOL("model", "fix_text", fix_text, "true", "freeze the text tower and logit_scale; class text features computed once"),
    ENUM("model", "head", head, "text|linear", "text",
         "class scores: text = X-CLIP's video-text logits; linear = a new Linear(E, K) (head.weight, head.bias, 10x lr) on "
         "the video features, no text tower, logit_scale or tokens (model.prompt_layers must be 0)"),
    BOOL("model", "fix_vision", fix_vision, "false",
         "freeze the vision branch: visual.* and the X-CLIP additions message_*, mit*, prompts_* (no backward through "
         "it); with fix_text = false the text tower and logit_scale train; fix_text and fix_vision both true only with "
         "head = linear (a linear probe)"),
    BOOL("model", "checkpoint", checkpoint, "false",
         "gradient checkpointing: recompute each vision block in backward (less memory, about 1/3 more compute)"),
    BOOL("model", "spill_text", spill_text, "true",
         "with fix_text: once the class text features are cached, move the frozen text tower out of memory into an "
         "unlinked file in output.dir (read back only by exports and snapshots; kept in memory if that fails)"),
    BOOL("model", "interpolate_frames", interpolate_frames, "false",
         "X-CLIP checkpoint trained with another T: resample mit.positional_embedding linearly"),
    // [train]
    INT("train", "epochs", epochs, 1, 100000, "30", "training epochs"),
    NUM("train", "warmup_epochs", warmup_epochs, 0, 100000, "5", "linear warm-up from 0 (in epochs; warm-up iterations = int(this x batches per epoch))"),
    NUM("train", "lr", lr, 0, 10, "8e-6", "base learning rate of the CLIP tensors (new tensors: x new_lr_scale)"),
    NUM("train", "min_lr_ratio", min_lr_ratio, 0, 1, "0.01", "cosine floor = lr x this (official: lr / 100), shared by all groups"),
    NUM("train", "new_lr_scale", new_lr_scale, 0, 1e6, "10", "learning-rate multiplier of names containing message_, mit or prompts"),
    NUM("train", "weight_decay", weight_decay, 0, 10, "0.001", "AdamW decoupled weight decay (not on 1-D tensors, biases, positional embeddings)"),
    NUM("train", "beta1", beta1, 0, 0.999999, "0.9", "AdamW beta1"),
    NUM("train", "beta2", beta2, 0, 0.999999, "0.98", "AdamW beta2"),
    NUM("train", "eps", eps, 0, 1, "1e-8", "AdamW epsilon"),
    INT("train", "batch_size", batch_size, 1, 4096, "8", "videos per loader batch (per micro-batch)"),
    INT("train", "accumulation_steps", accumulation_steps, 1, 4096, "1",
        "micro-batches per optimiser step; the loss is divided by this"),
    ENUM("train", "matmul", matmul, "fp32|bf16", "fp32",
         "precision of the large matrix products of training and evaluation (xclip-eval too): fp32, or bf16 = operands "
         "rounded to bfloat16 and float32 sums (mixed precision) on Intel AMX, or else on AVX512-BF16 (AMD Zen 4 and "
         "later; the log names the unit): GEMMs 4-5x faster with AMX, about 2x on AMD Zen 4, no faster on Intel CPUs "
         "whose AMX a hypervisor hides (their VDPBF16PS is slow: the avx512-fma kernel keeps float32's speed); results differ from "
         "fp32 at bf16 rounding; weights, gradients and AdamW stay float32; with fix_text the cached class text "
         "features are computed in float32; attention's per-head products too from 64^3 multiply-adds (ViT-B/16's 197 "
         "tokens; B/32's 50 stay float32), its softmax float32. From random "
         "initialisation the demo learns in bf16 within the spread of its float32 runs (see the README)"),
    ENUM("train", "fused_adamw", fused_adamw, "auto|on|off", "auto",
         "apply AdamW inside backward as each gradient completes: no gradient buffers kept (less memory), the same "
         "numbers; auto = on when accumulation_steps is 1 and the run has one process (on needs both: with mpirun the "
        "gradients must be summed across the ranks before any update)"),
    NUM("train", "bucket_mb", bucket_mb, 0.001, 4096, "4",
        "data-parallel runs (mpirun): gradients are summed across the ranks in buckets of this many MB, each started "
        "as soon as backward completes it; a gradient at least this large is a bucket of its own"),
    INT("train", "check_ranks", check_ranks, 0, 1000000, "50",
        "data-parallel runs: optimiser steps between checks that every rank holds the same parameters (a checksum; "
        "also at every snapshot); 0 = at snapshots only"),
    I64("train", "seed", seed, 0, 9007199254740991.0, "1024", "seed of initialisation, data order, augmentation, mixing and drop-path"),
    INT("train", "threads", threads, 0, 1024, "0", "OpenMP + OpenBLAS threads; 0 = OMP_NUM_THREADS or all cores"),
    INT("train", "eval_freq", eval_freq, 0, 100000, "1", "single-view evaluation every this many epochs (and after the last); 0 = only at the end"),
    I64("train", "max_iters", max_iters, 0, 9007199254740991.0, "0",
        "stop after this many loader batches (smoke tests; at the next accumulation boundary); the schedule still spans all epochs; 0 = no limit"),
    // [aug]
    NUM("aug", "label_smooth", label_smooth, 0, 1, "0.1", "label smoothing s: off = s/K, on = 1 - s + s/K"),
    NUM("aug", "mixup", mixup, 0, 100, "0.8", "mixup Beta(alpha, alpha); 0 turns mixing off altogether (CutMix too, as the official code)"),
    NUM("aug", "cutmix", cutmix, 0, 100, "1.0", "CutMix Beta(alpha, alpha); 0 = mixup only"),
    NUM("aug", "mixup_switch_prob", mixup_switch_prob, 0, 1, "0.5", "probability of CutMix when both are on"),
    NUM("aug", "flip", flip, 0, 1, "0.5", "horizontal flip probability (0 where left/right is the class, e.g. the synthetic data)"),
    NUM("aug", "color_jitter", color_jitter, 0, 1, "0.8", "probability of colour jitter (per clip)"),
    NUM("aug", "gray_scale", gray_scale, 0, 1, "0.2", "probability of grayscale (per clip)"),
    NUM("aug", "brightness", brightness, 0, 10, "0.4", "colour jitter brightness range"),
    NUM("aug", "contrast", contrast, 0, 10, "0.4", "colour jitter contrast range"),
    NUM("aug", "saturation", saturation, 0, 10, "0.2", "colour jitter saturation range"),
    NUM("aug", "hue", hue, 0, 0.5, "0.1", "colour jitter hue range"),
    BOOL("aug", "jitter_per_clip", jitter_per_clip, "false",
         "draw jitter factors once per clip (false = per frame, as torchvision in the official code)"),
    // [test]
    INT("test", "num_clip", num_clip, 1, 64, "1", "clips per video in the per-epoch evaluation"),
    INT("test", "num_crop", num_crop, 1, 3, "1", "crops per clip: 1 = centre, 3 = three along the long side (2 is refused)"),
    ENUM("test", "view_mode", view_mode, "shifted|random", "shifted",
         "clips of a multi-view test: shifted = evenly shifted, deterministic; random = the official random draws"),
    INT("test", "batch_size", test_batch_size, 1, 4096, "8", "videos per evaluation batch"),
    INT("test", "final_num_clip", final_num_clip, 0, 64, "4", "clips of the final evaluation after training (0 = none)"),
    INT("test", "final_num_crop", final_num_crop, 1, 3, "3", "crops of the final evaluation (1 or 3)"),
    // [output]
    STR("output", "dir", dir, "runs/xclip", "run directory (relative to the current directory): config, log, metrics, weights"),
    INT("output", "print_freq", print_freq, 1, 1000000, "50", "iterations between log lines"),
    ENUM("output", "progress", progress, "auto|on|off", "auto", "progress bar: auto = when stdout is a terminal"),
    BOOL("output", "save_best", save_best, "true", "export the best weights (by top-1) as best.safetensors"),
    I64("output", "snapshot_freq", snapshot_freq, 0, 9007199254740991.0, "0", "iterations between snapshots (0 = at epoch ends only)"),
    INT("output", "keep_snapshots", keep_snapshots, 1, 1000, "3", "snapshots kept (plus the one of the best model)"),
    NUM("output", "snapshot_min_seconds", snapshot_min_seconds, 0, 1e9, "0",
        "seconds: an epoch-end snapshot is skipped while the last snapshot is younger than this (0 = one at every epoch "
        "end; the last epoch's, a new best model's and those a signal asks for are always written): for short epochs, "
        "as in few-shot runs; a crash then loses up to this much more training"),
};
const int CONFIG_NKEYS = (int)(sizeof CONFIG_KEYS / sizeof CONFIG_KEYS[0]);
#define KEYS CONFIG_KEYS
#define NKEYS CONFIG_NKEYS
static const char *SECTIONS[] = {"data", "model", "train", "aug", "test", "output"};

// ---- parsing one value ------------------------------------------------------------------------------
static void *field(TrainConfig *c, const Key *k) { return (char *)c + k->offset; }

static bool is_abs(const char *p) { return p[0] == '/'; }

// base_dir: directory relative paths are taken from (NULL or "" = current directory).
static int set_value(TrainConfig *c, const Key *k, const char *v, const char *base_dir, char *why, size_t nwhy) {
    char *end;
    switch (k->kind) {
    case K_INT:
    case K_I64: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno) { snprintf(why, nwhy, "'%s' is not an integer", v); return XC_ERR; }
        if ((double)x < k->lo || (double)x > k->hi) {
            snprintf(why, nwhy, "%lld is outside [%.0f, %.0f]", x, k->lo, k->hi);
            return XC_ERR;
        }
        if (k->kind == K_INT) *(int *)field(c, k) = (int)x;
        else *(int64_t *)field(c, k) = x;
        return XC_OK;
    }
    case K_F64: {
        errno = 0;
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x)) { snprintf(why, nwhy, "'%s' is not a number", v); return XC_ERR; }
        if (x < k->lo || x > k->hi) { snprintf(why, nwhy, "%g is outside [%g, %g]", x, k->lo, k->hi); return XC_ERR; }
        *(double *)field(c, k) = x;
        return XC_OK;
    }
    case K_BOOL: {
        bool *b = field(c, k);
        if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcmp(v, "1")) *b = true;
        else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcmp(v, "0")) *b = false;
        else { snprintf(why, nwhy, "'%s' is not a boolean (true/false)", v); return XC_ERR; }
        return XC_OK;
    }
    case K_ENUM: {
        const char *p = k->choices;
        size_t n = strlen(v);
        for (int index = 0; *p; index++) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == n && !strncasecmp(p, v, n)) {
                *(int *)field(c, k) = index;
                return XC_OK;
            }
            p += len + (bar ? 1 : 0);
        }
        snprintf(why, nwhy, "'%s' is not one of %s", v, k->choices);
        return XC_ERR;
    }
    case K_STR:
    case K_PATH: {
        char *dst = field(c, k);
        int n;
        if (k->kind == K_PATH && *v && !is_abs(v) && strcasecmp(v, "none") && base_dir && *base_dir)
            n = snprintf(dst, k->size, "%s/%s", base_dir, v);
        else
            n = snprintf(dst, k->size, "%s", v);
        if (n < 0 || (size_t)n >= k->size) { snprintf(why, nwhy, "value longer than %zu bytes", k->size - 1); return XC_ERR; }
        if (k->kind == K_STR && strchr(dst, '\n')) { snprintf(why, nwhy, "value has a line break"); return XC_ERR; }
        return XC_OK;
    }
    }
    return XC_ERR;
}

static const Key *find_key(const char *section, const char *key) {
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(KEYS[i].section, section) && !strcmp(KEYS[i].key, key)) return &KEYS[i];
    return NULL;
}

static bool known_section(const char *s) {
    for (size_t i = 0; i < sizeof SECTIONS / sizeof SECTIONS[0]; i++)
        if (!strcmp(SECTIONS[i], s)) return true;
    return false;
}

// "did you mean" for a misspelt key of a section: the key with the longest common prefix, if any shares 3.
static const char *suggest(const char *section, const char *key) {
    const char *best = NULL;
    size_t best_n = 2;
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(KEYS[i].section, section)) continue;
        size_t n = 0;
        while (key[n] && key[n] == KEYS[i].key[n]) n++;
        if (n > best_n) { best_n = n; best = KEYS[i].key; }
    }
    return best;
}

static void key_list(const char *section, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < NKEYS && used + 1 < n; i++) {
        if (strcmp(KEYS[i].section, section)) continue;
        int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", KEYS[i].key);
        if (w < 0) break;
        used += (size_t)w;
    }
}

const char *config_choice_name(const char *choices, int index, char *buf, size_t n) {
    const char *p = choices;
    for (int i = 0; i < index && p; i++) p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL;
    size_t len = p ? (strchr(p, '|') ? (size_t)(strchr(p, '|') - p) : strlen(p)) : 0;
    snprintf(buf, n, "%.*s", (int)len, p ? p : "");
    return buf;
}

void config_defaults(TrainConfig *c) {
    memset(c, 0, sizeof *c);
    char why[256];
    for (int i = 0; i < NKEYS; i++) {
        XC_CHECK(KEYS[i].kind != K_ENUM || KEYS[i].size == sizeof(int), "config key %s.%s: enum field is not int-sized",
                 KEYS[i].section, KEYS[i].key);
        XC_CHECK(set_value(c, &KEYS[i], KEYS[i].def, NULL, why, sizeof why) == XC_OK, "config default %s.%s: %s",
                 KEYS[i].section, KEYS[i].key, why);
    }
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = 0;
    return s;
}

// Strip a comment (# or ; at the start or after whitespace) outside quotes; unquote "...". XC_ERR on an
// unterminated quote.
static int clean_value(char *v) {
    char *lead = v;
    while (*lead == ' ' || *lead == '\t') lead++;
    memmove(v, lead, strlen(lead) + 1);
    if (*v == '"') {
        char *q = strchr(v + 1, '"');
        if (!q) return XC_ERR;
        char *rest = trim(q + 1);
        if (*rest && *rest != '#' && *rest != ';') return XC_ERR;
        memmove(v, v + 1, (size_t)(q - v - 1));
        v[q - v - 1] = 0;
        return XC_OK;
    }
    for (char *p = v; *p; p++)
        if ((*p == '#' || *p == ';') && (p == v || p[-1] == ' ' || p[-1] == '\t')) { *p = 0; break; }
    char *t = trim(v);
    memmove(v, t, strlen(t) + 1);
    return XC_OK;
}

int config_load(TrainConfig *c, const char *path, XcError *err) {
    config_defaults(c);
    size_t len;
    XcError rerr;
    char *text = xc_read_file(path, 1u << 20, &len, &rerr);
    if (!text) return xc_err(err, "config: %s", rerr.msg);
    snprintf(c->source, sizeof c->source, "%s", path);
    // directory of the file, for relative paths
    char dir[CONFIG_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    char absdir[PATH_MAX];
    if (realpath(dir, absdir) && strlen(absdir) < sizeof dir) memcpy(dir, absdir, strlen(absdir) + 1);

    char section[64] = "";
    bool seen[sizeof KEYS / sizeof KEYS[0]] = {0};
    int line = 0, rc = XC_OK;
    // walk lines by hand (strtok would merge blank lines and shift line numbers)
    char *p = text, *const end = text + len;
    while (p && p < end && rc == XC_OK) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl) *nl = 0;
        line++;
        if (memchr(p, 0, (size_t)((nl ? nl : end) - p))) { // C strings would silently drop the rest of the line
            rc = xc_err(err, "%s:%d: a NUL byte in the line (a binary or damaged file?)", path, line);
            break;
        }
        char *s = p;
        p = nl ? nl + 1 : NULL;
        if (line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF) s += 3;
        s = trim(s);
        if (!*s || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (!e || (*trim(e + 1) && *trim(e + 1) != '#' && *trim(e + 1) != ';')) {
                rc = xc_err(err, "%s:%d: malformed section header '%s' (want [name])", path, line, s);
                break;
            }
            *e = 0;
            char *name = trim(s + 1);
            if (!known_section(name)) {
                rc = xc_err(err, "%s:%d: unknown section [%s]; sections are [data] [model] [train] [aug] [test] [output]",
                            path, line, name);
                break;
            }
            snprintf(section, sizeof section, "%s", name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) { rc = xc_err(err, "%s:%d: expected `key = value`, got '%s'", path, line, s); break; }
        *eq = 0;
        char *key = trim(s), *val = eq + 1;
        if (!*section) {
            rc = xc_err(err, "%s:%d: key '%s' before any [section]", path, line, key);
            break;
        }
        const Key *k = find_key(section, key);
        if (!k) {
            char keys[1024];
            key_list(section, keys, sizeof keys);
            const char *sg = suggest(section, key);
            if (sg) rc = xc_err(err, "%s:%d: unknown key '%s' in [%s] (did you mean '%s'?)", path, line, key, section, sg);
            else rc = xc_err(err, "%s:%d: unknown key '%s' in [%s]; its keys are: %s", path, line, key, section, keys);
            break;
        }
        if (seen[k - KEYS]) { rc = xc_err(err, "%s:%d: %s.%s is given twice", path, line, section, key); break; }
        seen[k - KEYS] = true;
        if (clean_value(val) != XC_OK) { rc = xc_err(err, "%s:%d: %s.%s: unterminated or trailing text after a quoted value", path, line, section, key); break; }
        char why[512];
        if (set_value(c, k, val, dir, why, sizeof why) != XC_OK)
            rc = xc_err(err, "%s:%d: %s.%s: %s", path, line, section, key, why);
    }
    xc_free(text);
    return rc;
}

int config_set(TrainConfig *c, const char *assignment, XcError *err) {
    char buf[CONFIG_PATH_MAX + 128];
    if (snprintf(buf, sizeof buf, "%s", assignment) >= (int)sizeof buf) return xc_err(err, "--set %.60s...: too long", assignment);
    char *eq = strchr(buf, '='), *dot = strchr(buf, '.');
    if (!eq || !dot || dot > eq)
        return xc_err(err, "--set '%s': expected section.key=value (e.g. --set train.lr=1e-5)", assignment);
    *eq = 0;
    *dot = 0;
    char *section = trim(buf), *key = trim(dot + 1), *val = trim(eq + 1);
    if (!known_section(section))
        return xc_err(err, "--set '%s': unknown section '%s'; sections are data, model, train, aug, test, output", assignment, section);
    const Key *k = find_key(section, key);
    if (!k) {
        char keys[1024];
        key_list(section, keys, sizeof keys);
        return xc_err(err, "--set '%s': unknown key '%s' in [%s]; its keys are: %s", assignment, key, section, keys);
    }
    char why[512];
    if (set_value(c, k, val, NULL, why, sizeof why) != XC_OK) return xc_err(err, "--set '%s': %s", assignment, why);
    return XC_OK;
}

// ---- architectures ----------------------------------------------------------------------------------
// Indexed by ConfigArch (the order of model.arch's choices); ARCH_CUSTOM has no entry.
typedef struct Arch { const char *name; int width, layers, patch, embed, twidth, tlayers; } Arch;
static const Arch ARCHS[] = {
    [ARCH_VIT_B32] = {"ViT-B/32", 768, 12, 32, 512, 512, 12},
    [ARCH_VIT_B16] = {"ViT-B/16", 768, 12, 16, 512, 512, 12},
    [ARCH_VIT_L14] = {"ViT-L/14", 1024, 24, 14, 768, 768, 12},
    [ARCH_VIT_L14_336] = {"ViT-L/14-336", 1024, 24, 14, 768, 768, 12},
};

const char *config_arch_name(ConfigArch a) { return a >= 0 && a < ARCH_CUSTOM ? ARCHS[a].name : "custom"; }

bool config_apply_arch(TrainConfig *c) {
    if (c->arch < 0 || c->arch >= ARCH_CUSTOM) return false;
    const Arch *a = &ARCHS[c->arch];
    c->vision_width = a->width;
    c->vision_layers = a->layers;
    c->patch = a->patch;
    c->embed_dim = a->embed;
    c->text_width = a->twidth;
    c->text_layers = a->tlayers;
    c->context = 77;
    c->vocab_size = 49408;
    return true;
}

bool config_pretrained_none(const TrainConfig *c) { return !strcasecmp(c->pretrained, "none"); }

int config_gemm_init(const TrainConfig *c, Gemm *mm, XcError *err) {
    const char *src = *c->source ? c->source : "the config";
    if (gemm_init(mm, c->matmul, err) != XC_OK)
        return xc_err(err, "%s: train.matmul = %s: %s\nHINT: set train.matmul = fp32", src, gemm_precision_name(c->matmul),
                      err->msg);
    return XC_OK;
}

bool config_fused_adamw(const TrainConfig *c) {
    return c->fused_adamw == FUSED_ADAMW_ON ||
           (c->fused_adamw == FUSED_ADAMW_AUTO && c->accumulation_steps == 1 && dist_size() == 1);
}

bool config_progress_bar(const TrainConfig *c) {
    return c->progress == PROGRESS_ON || (c->progress == PROGRESS_AUTO && isatty(STDOUT_FILENO));
}

