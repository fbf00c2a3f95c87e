// config_check.c - see config.h: cross-key checks and the input paths a run needs, all reported at once.
#include "train/config.h"
#include "train/dist.h"
#include "train/config_keys.h"
#include "autograd/kernels.h"
#include "autograd/runtime.h"
#include "data/templates.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYS CONFIG_KEYS
#define NKEYS CONFIG_NKEYS

// ---- checks ---------------------------------------------------------------------------------------
// The input paths a run needs are checked all together, so one run names every key still to set (a recipe
// such as configs/k400_8f.ini leaves root, lists and weights empty): one line per problem.
#define MAX_PATH_PROBLEMS 8
typedef struct PathProblems {
    int count;
    const char *keys[MAX_PATH_PROBLEMS]; // the keys to set, for the HINT
    bool unset_only;                     // every problem is a key left empty
    char text[sizeof(((XcError *)0)->msg)];
    size_t used;
} PathProblems;

static void path_problem(PathProblems *pp, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void path_problem(PathProblems *pp, const char *key, const char *fmt, ...) {
    if (pp->count < MAX_PATH_PROBLEMS) pp->keys[pp->count] = key;
    pp->count++;
    if (pp->used >= sizeof pp->text - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(pp->text + pp->used, sizeof pp->text - pp->used, fmt, ap);
    va_end(ap);
    pp->used += w > 0 ? (size_t)w : 0;
    if (pp->used > sizeof pp->text - 1) pp->used = sizeof pp->text - 1;
}

// What a path key accepts: anything that exists, a regular file, or a regular file or a folder.
typedef enum { NEED_ANY, NEED_FILE, NEED_FILE_OR_DIR } NeedKind;

static void need_path(PathProblems *pp, const char *key, const char *path, const char *what, NeedKind kind) {
    struct stat st;
    if (!*path) path_problem(pp, key, "\n  %s is not set (%s)", key, what);
    else if (stat(path, &st) != 0) {
        pp->unset_only = false;
        path_problem(pp, key, "\n  %s = %s: %s (%s)", key, path, strerror(errno), what);
    } else if ((kind == NEED_FILE && !S_ISREG(st.st_mode)) || (kind == NEED_FILE_OR_DIR && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
        pp->unset_only = false;
        path_problem(pp, key, "\n  %s = %s: is %s, not a %s (%s)", key, path, xc_file_kind(st.st_mode),
                     kind == NEED_FILE ? "file" : "file or folder", what);
    }
}
static void need_file(PathProblems *pp, const char *key, const char *path, const char *what) { need_path(pp, key, path, what, NEED_FILE); }

// data.vocab: CLIP's vocabulary, a file of the source tree's neighbourhood rather than of the data. A relative
// path that does not lead anywhere from the current directory is looked for beside the program and in the
// source tree (xc_locate_file), so the default works from any directory; every place looked at is named.
static void find_vocab(PathProblems *pp, TrainConfig *c) {
    static const char *what = "CLIP's BPE vocabulary bpe_simple_vocab_16e6.txt.gz, shipped with openai/CLIP";
    if (!*c->vocab || c->vocab[0] == '/') { need_file(pp, "data.vocab", c->vocab, what); return; }
    char found[CONFIG_PATH_MAX], tried[768];
    if (xc_locate_file(c->vocab, found, sizeof found, tried, sizeof tried)) {
        memcpy(c->vocab, found, strlen(found) + 1);
        return;
    }
    pp->unset_only = false;
    char indented[1024];
    size_t u = 0;
    for (const char *t = tried; *t && u + 3 < sizeof indented; t++) { // one more level of indentation
        if (t == tried || t[-1] == '\n') { indented[u++] = ' '; indented[u++] = ' '; }
        indented[u++] = *t;
    }
    while (u && indented[u - 1] == '\n') u--;
    indented[u] = 0;
    path_problem(pp, "data.vocab", "\n  data.vocab = %s: not found (%s); looked at:\n%s", c->vocab, what, indented);
}

static int report_paths(const PathProblems *pp, const char *src, XcError *err) {
    if (pp->count == 0) return XC_OK;
    const char *key = pp->keys[0];
    if (pp->count == 1) { // one problem: one line, as it always read
        const char *line = pp->text + 3;
        if (pp->unset_only) return xc_err(err, "%s: %s\nHINT: set it in %s or with --set %s=PATH", src, line, src, key);
        return xc_err(err, "%s: %s\nHINT: set %s to an existing path (in the config or with --set %s=PATH)", src, line, key,
                      key);
    }
    char sets[512];
    size_t u = 0;
    sets[0] = 0;
    for (int i = 0; i < pp->count && i < MAX_PATH_PROBLEMS && u < sizeof sets; i++) {
        int w = snprintf(sets + u, sizeof sets - u, "%s--set %s=PATH", i ? " " : "", pp->keys[i]);
        u += w > 0 ? (size_t)w : 0;
    }
    // keep the HINT whole: cut the list at a line end if the message would not fit
    char body[sizeof pp->text];
    memcpy(body, pp->text, pp->used + 1);
    const size_t room = sizeof err->msg - 1, fixed = 2 * strlen(src) + strlen(sets) + 100;
    if (fixed < room && strlen(body) > room - fixed) {
        char *cut = body + (room - fixed);
        *cut = 0;
        char *nl = strrchr(body, '\n');
        if (nl) memcpy(nl, "\n  ...", 7);
    }
    return xc_err(err, "%s: %d input paths are not set or not found:%s\nHINT: set them in %s, or on the command line: %s",
                  src, pp->count, body, src, sets);
}

// model.head and the frozen branches (fix_text, fix_vision): contradictions named by key.
static int config_check_branches(const TrainConfig *c, const char *src, XcError *err) {
    const bool linear = c->head == XCLIP_HEAD_LINEAR;
    if (linear && c->prompt_layers > 0)
        return xc_err(err, "%s: model.head = linear has no class texts for the video-specific prompts, but "
                           "model.prompt_layers = %d\nHINT: set model.prompt_layers = 0", src, c->prompt_layers);
    if (linear && !c->fix_text)
        return xc_err(err, "%s: model.fix_text = false trains the text tower, which model.head = linear does not have\n"
                           "HINT: leave model.fix_text = true (the linear head trains in any case)", src);
    if (linear && (c->context_tokens || *c->templates))
        return xc_err(err, "%s: model.head = linear reads no class texts, but %s is set\nHINT: leave it at its default",
                      src, c->context_tokens ? "model.context_tokens" : "data.templates");
    // both towers frozen: only additions outside them can train (the linear head, CoOp's context vectors)
    XClipConfig xc = {.fix_text = c->fix_text, .fix_vision = c->fix_vision, .head = c->head,
                      .context_tokens = c->context_tokens};
    if (!xclip_something_trains(&xc))
        return xc_err(err, "%s: model.fix_text = true and model.fix_vision = true freeze both towers: nothing would train\n"
                           "HINT: set model.fix_vision = false (vision branch), model.fix_text = false (text branch), or "
                           "model.head = linear (a linear probe on the frozen video features)", src);
    return XC_OK;
}

// data.templates (read here, so a bad line stops the run before it starts) and model.context_tokens, which exclude
// each other: CoOp learns the context a template ensemble would hand-craft.
static int check_prompting(const TrainConfig *c, const char *src, XcError *err) {
    if (*c->templates) {
        if (strcmp(c->template_, "{}"))
            return xc_err(err, "%s: data.templates and data.template = '%s' both give the class texts\nHINT: put the "
                               "template into the templates file, or leave data.template at {}", src, c->template_);
        Templates t;
        if (templates_load(c->templates, &t, err) != XC_OK) return xc_err(err, "%s: %s", src, err->msg);
        templates_free(&t);
        if (c->context_tokens)
            return xc_err(err, "%s: model.context_tokens = %d (CoOp's learnt context) and data.templates (a hand-crafted "
                               "ensemble) exclude each other\nHINT: set one of them (model.context_tokens = 0 or "
                               "data.templates = \"\")", src, c->context_tokens);
    }
    return XC_OK;
}

int config_check(TrainConfig *c, ConfigUse use, XcError *err) {
    const char *src = *c->source ? c->source : "the config";
    PathProblems pp = {.unset_only = true};
    if (use == CONFIG_FOR_TRAIN) {
        need_file(&pp, "data.train_list", c->train_list, "the training list, one `relative/path.mp4 <label id>` per line");
        need_path(&pp, "data.root", c->root, "folder or .tar of the training videos", NEED_FILE_OR_DIR);
        if (!config_pretrained_none(c))
            need_path(&pp, "model.pretrained", c->pretrained, "CLIP or X-CLIP weights, or `none` for random initialisation",
                      NEED_FILE_OR_DIR); // a Hugging Face model folder too
    }
    need_file(&pp, "data.val_list", c->val_list, "the validation list, the same format");
    if (*c->val_root || use == CONFIG_FOR_EVAL) {
        const char *vr = *c->val_root ? c->val_root : c->root;
        need_path(&pp, *c->val_root ? "data.val_root" : "data.root", vr, "folder or .tar of the validation videos", NEED_FILE_OR_DIR);
    }
    need_file(&pp, "data.labels", c->labels, "label CSV with header `id,name`");
    if (use != CONFIG_FOR_TRAIN || c->head != XCLIP_HEAD_LINEAR) find_vocab(&pp, c); // the linear head reads no text
    if (report_paths(&pp, src, err) != XC_OK) return XC_ERR;
    if (!strstr(c->template_, "{}")) return xc_err(err, "%s: data.template = '%s' has no {} for the class name", src, c->template_);
    if (check_prompting(c, src, err) != XC_OK) return XC_ERR;
    if (c->matmul == XC_MATMUL_BF16 && xc_bf16_best_kernel() == XC_BF16_NONE)
        return xc_err(err, "%s: train.matmul = bf16 needs Intel AMX (AMX-BF16 and AMX-TILE, Linux >= 5.16) or AVX512-BF16 "
                           "(AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids and later); this CPU or kernel offers "
                           "neither\nHINT: set train.matmul = fp32", src);
    if (c->fused_adamw == FUSED_ADAMW_ON && dist_size() > 1)
        return xc_err(err, "%s: train.fused_adamw = on cannot run on %d ranks (mpirun): each update needs the gradients "
                           "summed across the ranks first\nHINT: set train.fused_adamw = auto (AdamW then runs on each "
                           "gradient bucket as its sum arrives)", src, dist_size());
    if (c->fused_adamw == FUSED_ADAMW_ON && c->accumulation_steps > 1)
        return xc_err(err, "%s: train.fused_adamw = on needs train.accumulation_steps = 1 (got %d): accumulation keeps "
                           "gradients across micro-batches\nHINT: set train.fused_adamw = auto", src, c->accumulation_steps);
    if (config_check_branches(c, src, err) != XC_OK) return XC_ERR;
    if (c->num_crop == 2 || c->final_num_crop == 2)
        return xc_err(err, "%s: test.num_crop and test.final_num_crop must be 1 or 3", src);
    if (c->arch == ARCH_CUSTOM || config_pretrained_none(c)) {
        if (c->vision_width % 64 || c->embed_dim % 64 || c->text_width % 64)
            return xc_err(err, "%s: model.vision_width, embed_dim and text_width must be multiples of 64 (heads of 64)", src);
        if (c->input_size % c->patch)
            return xc_err(err, "%s: data.input_size %d is not a multiple of model.patch %d", src, c->input_size, c->patch);
    }
    if (c->final_num_clip > 0 && c->final_num_clip * c->final_num_crop * c->frames > 4 * 1024)
        return xc_err(err, "%s: test.final_num_clip x frames is too large", src);
    if (c->num_clip * c->frames > 4 * 1024) return xc_err(err, "%s: test.num_clip x frames is too large", src);
    return XC_OK;
}

