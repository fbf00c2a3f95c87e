// test_tools_output.c - what the programs write for other programs to read, on a tiny X-CLIP trained here
// (3 synthetic classes, 3 iterations of configs/demo.ini, a few seconds):
//   - xclip-synth creates its output folder's missing parents (mkdir -p) and says when a parent is a file;
//   - xclip-eval's predictions CSV and xclip-infer --csv are RFC 4180: label names with quotes, commas and
//     blanks (read from a label CSV with quoted names) come back unchanged through a strict CSV reader;
//   - xclip-infer --json is one valid JSON document (checked by a strict syntax checker) holding the labels
//     with their escapes, and an entry with "error" for a video that cannot be read;
//   - xclip-infer's refusals: no labels (named), one label (a softmax over one class is always 100%),
//     --json with --csv; a label longer than the text context is named with what is kept, not cut silently
//     (xclip-eval names such a class too);
//   - a Hugging Face model folder works as --checkpoint (its weights and its vocab.json + merges.txt); a folder
//     without weights is refused naming the files it should hold;
//   - the default vocabulary is found when the program runs from another directory;
//   - xclip-infer's text-feature cache (nn/text_cache.h): the first call runs the text tower and writes one
//     file, the second reads it (said on the console) and prints the same bytes (X-CLIP, and plain CLIP with a
//     template ensemble); the file holds exactly the features xclip_cache_text computes here, bit for bit, for
//     exactly the token rows of the labels; other labels (one changed, or the same in another order) and
//     another template miss; a damaged, truncated or foreign file is a miss with a note naming it, replaced by
//     a good one; --no-text-cache writes nothing; the default folder is $XDG_CACHE_HOME/xclip, else
//     ~/.cache/xclip; a folder that cannot be made leaves the results alone (a message, exit 0). The other
//     calls here use $XDG_CACHE_HOME in the work folder.
#include "test_util.h"
#include "autograd/runtime.h"
#include "autograd/util.h"
#include "data/tokenizer.h"
#include "nn/xclip.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *build_dir(void) { return getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build"; }

static char g_out[1 << 16];
static int run(const char *cmd) { return xc_run_capture(cmd, g_out, sizeof g_out); }

// stdout only (stderr to a file), so the output must parse as it is
static int run_stdout(const char *cmd) {
    char full[16384];
    snprintf(full, sizeof full, "( %s 2>'%s/test_tools_output.stderr' )", cmd, build_dir());
    return xc_run_capture(full, g_out, sizeof g_out);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    XC_CHECK(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

// ---- a strict RFC 4180 reader: rows of fields ----------------------------------------------------------
#define MAX_ROWS 64
#define MAX_FIELDS 12
typedef struct Csv { int rows, fields[MAX_ROWS]; char cell[MAX_ROWS][MAX_FIELDS][256]; } Csv;

// false on anything RFC 4180 does not allow (a quote inside an unquoted field, text after a closing quote,
// an unterminated quote) or too many rows / fields.
static bool csv_parse(const char *s, Csv *c) {
    memset(c, 0, sizeof *c);
    while (*s) {
        if (c->rows == MAX_ROWS) return false;
        int r = c->rows++, f = 0;
        for (;;) {
            if (f == MAX_FIELDS) return false;
            char *out = c->cell[r][f++];
            size_t n = 0;
            if (*s == '"') {
                for (s++;; s++) {
                    if (!*s) return false;
                    if (*s == '"' && s[1] != '"') { s++; break; }
                    if (*s == '"') s++;
                    if (n < 255) out[n++] = *s;
                }
                if (*s && *s != ',' && *s != '\n' && *s != '\r') return false;
            } else {
                for (; *s && *s != ',' && *s != '\n' && *s != '\r'; s++) {
                    if (*s == '"') return false;
                    if (n < 255) out[n++] = *s;
                }
            }
            out[n] = 0;
            if (*s == ',') { s++; continue; }
            if (*s == '\r') s++;
            if (*s == '\n') s++;
            break;
        }
        c->fields[r] = f;
    }
    return true;
}

// ---- a strict JSON syntax checker (RFC 8259) -----------------------------------------------------------
static const char *json_value(const char *s, int depth);
static const char *json_ws(const char *s) { while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t') s++; return s; }
static const char *json_string(const char *s) {
    if (*s++ != '"') return NULL;
    for (; *s != '"'; s++) {
        if (!*s || (unsigned char)*s < 0x20) return NULL;
        if (*s == '\\') {
            s++;
            if (*s == 'u') {
                for (int i = 1; i <= 4; i++) if (!isxdigit((unsigned char)s[i])) return NULL;
                s += 4;
            } else if (!strchr("\"\\/bfnrt", *s) || !*s) return NULL;
        }
    }
    return s + 1;
}
static const char *json_number(const char *s) {
    const char *p = s;
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (isdigit((unsigned char)*p)) while (isdigit((unsigned char)*p)) p++;
    else return NULL;
    if (*p == '.') { p++; if (!isdigit((unsigned char)*p)) return NULL; while (isdigit((unsigned char)*p)) p++; }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    return p;
}
static const char *json_value(const char *s, int depth) {
    if (depth > 32) return NULL;
    s = json_ws(s);
    if (*s == '{' || *s == '[') {
        char close = *s == '{' ? '}' : ']';
        bool object = *s == '{';
        s = json_ws(s + 1);
        if (*s == close) return s + 1;
        for (;;) {
            if (object) {
                s = json_string(json_ws(s));
                if (!s) return NULL;
                s = json_ws(s);
                if (*s++ != ':') return NULL;
            }
            s = json_value(s, depth + 1);
            if (!s) return NULL;
            s = json_ws(s);
            if (*s == ',') { s++; continue; }
            return *s == close ? s + 1 : NULL;
        }
    }
    if (*s == '"') return json_string(s);
    if (!strncmp(s, "true", 4)) return s + 4;
    if (!strncmp(s, "false", 5)) return s + 5;
    if (!strncmp(s, "null", 4)) return s + 4;
    return json_number(s);
}
static bool json_valid(const char *s) {
    const char *e = json_value(s, 0);
    return e && !*json_ws(e);
}

static void test_parsers_reject(void) { // the checkers themselves can fail
    Csv c;
    XC_EXPECT(!csv_parse("a,\"b\"c\n", &c) && !csv_parse("a,b\"c\n", &c) && !csv_parse("\"open\n", &c) &&
                  csv_parse("a,\"b,\"\"c\"\"\"\n", &c) && !strcmp(c.cell[0][1], "b,\"c\""), "csv_parse");
    XC_EXPECT(!json_valid("{\"a\": \"x\"y\"}") && !json_valid("[1,]") && !json_valid("{\"a\" 1}") && json_valid("{\"a\": [1, -2.5e3, \"\\\"\"]}"),
              "json_valid");
}

// The one .xtf file of dir into path (n bytes); how many files dir holds (-1: no folder).
static int cache_files(const char *dir, char *path, size_t n) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        count++;
        if (path && strstr(e->d_name, ".xtf") && snprintf(path, n, "%s/%s", dir, e->d_name) >= (int)n) path[0] = 0;
    }
    closedir(d);
    return count;
}

// The file's token rows (K, S) and features (K, E) equal what this process computes from the checkpoint for the
// labels a, b, c, bit for bit.
static void expect_cache_file_exact(const char *file, const char *ckpt, const char *vocab, const char *const *labels, int K) {
    XcError err = {{0}};
    WeightSet ws = {0};
    XClipConfig cfg;
    if (weights_load(&ws, ckpt, &err) != XC_OK || xclip_config_from_weights(&cfg, &ws, 8, true, &err) != XC_OK ||
        xclip_adapt_weights(&ws, cfg.frames, &err) != XC_OK) {
        XC_EXPECT(false, "%s", err.msg);
        weights_free(&ws);
        return;
    }
    cfg.fix_text = true;
    ParamStore ps;
    param_store_init(&ps, "params");
    XClip m;
    xclip_init(&m, &ps, &cfg);
    XC_EXPECT(params_load(&ps, &ws, NULL, &err) == XC_OK, "%s", err.msg);
    weights_free(&ws);
    Tokenizer *tok = tokenizer_load(vocab, &err);
    XC_CHECK(tok, "%s", err.msg);
    const int64_t S = cfg.clip.context, E = cfg.clip.embed_dim;
    int32_t *tokens = calloc((size_t)(K * S), sizeof(int32_t));
    for (int k = 0; k < K; k++) tokenizer_encode(tok, labels[k], tokens + k * S, (int)S);
    xclip_cache_text(&m, tokens, K, S);
    size_t len;
    uint8_t *bytes = xc_read_file(file, 1 << 20, &len, &err);
    const size_t nt = sizeof(int32_t) * (size_t)(K * S), nf = sizeof(float) * (size_t)(K * E);
    XC_EXPECT(bytes && len == 128 + nt + nf, "%s: %zu bytes, want %zu", file, bytes ? len : 0, 128 + nt + nf);
    if (bytes && len == 128 + nt + nf) {
        XC_EXPECT(!memcmp(bytes + 128, tokens, nt), "%s: the token rows are not those of the labels", file);
        XC_EXPECT(!memcmp(bytes + 128 + nt, m.text_cache, nf), "%s: the features differ from xclip_cache_text's", file);
    }
    xc_free(bytes);
    free(tokens);
    tokenizer_free(tok);
    xclip_free(&m);
    param_store_free(&ps);
}

static void test_infer_text_cache(const char *build, const char *work, const char *infer, const char *video, const char *vocab) {
    static char first[sizeof g_out], xclip_first[sizeof g_out];
    char dir[1200], cmd[16384], file[1400], base[8192];
    snprintf(dir, sizeof dir, "%s/textcache", work);
    snprintf(base, sizeof base, "%s '%s' --csv --text-cache '%s'", infer, video, dir);
    // first call: computed and written; second: read, same bytes on stdout
    snprintf(cmd, sizeof cmd, "%s --labels a,b,c", base);
    int rc = run_stdout(cmd);
    memcpy(first, g_out, sizeof first);
    memcpy(xclip_first, g_out, sizeof xclip_first);
    char errfile[1300];
    snprintf(errfile, sizeof errfile, "%s/test_tools_output.stderr", build);
    size_t len;
    XcError err = {{0}};
    char *info = xc_read_file(errfile, 1 << 16, &len, &err);
    XC_EXPECT(rc == 0 && info && strstr(info, "text features: computed in") && strstr(info, "cached to") &&
                  cache_files(dir, file, sizeof file) == 1,
              "first call (%d): %s, %d files in %s", rc, info ? info : err.msg, cache_files(dir, NULL, 0), dir);
    xc_free(info);
    snprintf(cmd, sizeof cmd, "%s --labels a,b,c", base);
    rc = run_stdout(cmd);
    info = xc_read_file(errfile, 1 << 16, &len, &err);
    XC_EXPECT(rc == 0 && info && strstr(info, "text features: cached (") && strstr(info, file) && !strstr(info, "computed"),
              "second call (%d) did not read %s: %s", rc, file, info ? info : err.msg);
    XC_EXPECT(!strcmp(g_out, first) && strstr(first, "video,frames,rank"), "a hit printed other results:\n%s\nthan the miss:\n%s",
              g_out, first);
    xc_free(info);
    static const char *const ABC[] = {"a", "b", "c"};
    char ckpt[1200];
    snprintf(ckpt, sizeof ckpt, "%s/run/best.safetensors", work);
    expect_cache_file_exact(file, ckpt, vocab, ABC, 3);

    // other labels, another order, another template: misses, each its own file
    static const char *const OTHER[] = {"--labels a,b,d", "--labels b,a,c", "--labels a,b,c --template 'a video of {}'"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "%s %s", base, OTHER[i]);
        rc = run(cmd);
        XC_EXPECT(rc == 0 && strstr(g_out, "text features: computed in") && !strstr(g_out, "text features: cached") &&
                      cache_files(dir, NULL, 0) == 2 + i,
                  "%s (%d) did not miss into a new file (%d files):\n%s", OTHER[i], rc, cache_files(dir, NULL, 0), g_out);
    }

    // damaged, truncated, foreign: a miss with a note naming the file, the same results, the file made good again
    static const struct { const char *how, *note; } BAD[] = {
        {NULL, "features damaged (checksum mismatch)"}, // one bit of the last feature flipped
        {"truncate -s 100 '%s'", "too short"},
        {"truncate -s -4 '%s'", "truncated or padded"},
        {"printf 'id,name\\n0,a\\n1,b\\n2,c\\n%%0200d' 0 > '%s'", "not a text-feature cache file"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        if (BAD[i].how) {
            char damage[2000];
            snprintf(damage, sizeof damage, BAD[i].how, file);
            XC_EXPECT(system(damage) == 0, "%s", damage);
        } else {
            FILE *f = fopen(file, "r+b");
            int c = f && fseek(f, -1, SEEK_END) == 0 ? fgetc(f) : EOF;
            XC_EXPECT(c != EOF && fseek(f, -1, SEEK_END) == 0 && fputc(c ^ 1, f) != EOF && fclose(f) == 0, "flipping a bit of %s", file);
        }
        snprintf(cmd, sizeof cmd, "%s --labels a,b,c", base);
        rc = run_stdout(cmd);
        info = xc_read_file(errfile, 1 << 16, &len, &err);
        XC_EXPECT(rc == 0 && info && strstr(info, "note: text cache") && strstr(info, file) && strstr(info, BAD[i].note) &&
                      strstr(info, "computed in") && !strcmp(g_out, first),
                  "%s (%d): %s", BAD[i].note, rc, info ? info : err.msg);
        xc_free(info);
        snprintf(cmd, sizeof cmd, "%s --labels a,b,c", base);
        rc = run(cmd);
        XC_EXPECT(rc == 0 && strstr(g_out, "text features: cached ("), "after '%s' the file was not made good (%d):\n%s",
                  BAD[i].note, rc, g_out);
    }

    // --no-text-cache: nothing written, not even the folder
    char none[1300];
    snprintf(none, sizeof none, "%s/no_cache", work);
    snprintf(cmd, sizeof cmd, "%s '%s' --labels a,b,c --no-text-cache", infer, video);
    rc = run(cmd);
    XC_EXPECT(rc == 0 && strstr(g_out, "text features: computed in") && strstr(g_out, "(not cached)") &&
                  cache_files(dir, NULL, 0) == 4,
              "--no-text-cache (%d):\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "XDG_CACHE_HOME='%s' %s '%s' --labels a,b,c --no-text-cache", none, infer, video);
    rc = run(cmd);
    XC_EXPECT(rc == 0 && cache_files(none, NULL, 0) == -1, "--no-text-cache made %s (%d):\n%s", none, rc, g_out);
    snprintf(cmd, sizeof cmd, "%s '%s' --labels a,b --no-text-cache --text-cache '%s'", infer, video, dir);
    rc = run(cmd);
    XC_EXPECT(rc == 2 && strstr(g_out, "not both"), "--text-cache with --no-text-cache (%d):\n%s", rc, g_out);

    // the default folder: $XDG_CACHE_HOME/xclip, else $HOME/.cache/xclip
    char xdg[1300], home[1300];
    snprintf(xdg, sizeof xdg, "%s/xdg_cache", work);
    snprintf(home, sizeof home, "%s/home", work);
    snprintf(cmd, sizeof cmd, "XDG_CACHE_HOME='%s' %s '%s' --labels a,b,c", xdg, infer, video);
    rc = run(cmd);
    snprintf(xdg, sizeof xdg, "%s/xdg_cache/xclip", work);
    XC_EXPECT(rc == 0 && strstr(g_out, xdg) && cache_files(xdg, NULL, 0) == 1, "$XDG_CACHE_HOME (%d):\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "env -u XDG_CACHE_HOME HOME='%s' %s '%s' --labels a,b,c", home, infer, video);
    rc = run(cmd);
    snprintf(home, sizeof home, "%s/home/.cache/xclip", work);
    XC_EXPECT(rc == 0 && strstr(g_out, home) && cache_files(home, NULL, 0) == 1, "$HOME/.cache (%d):\n%s", rc, g_out);

    // a plain CLIP checkpoint (the run's CLIP tensors) with a template ensemble: a hit too, the same bytes
    char tpl[1300];
    snprintf(tpl, sizeof tpl, "%s/templates.txt", work);
    FILE *tf = fopen(tpl, "w");
    XC_CHECK(tf && fputs("a video of {}\n{}\n", tf) >= 0 && fclose(tf) == 0, "cannot write %s", tpl);
    snprintf(cmd, sizeof cmd, "'%s/xclip-export' --hf=clip --quiet '%s/run/best.safetensors' '%s/hfclip/'", build, work, work);
    rc = run(cmd);
    XC_EXPECT(rc == 0, "exporting the CLIP part (%d):\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "'%s/xclip-infer' --checkpoint '%s/hfclip' --vocab '%s' '%s' --labels a,b,c --templates '%s' --csv "
             "--text-cache '%s/clipcache'", build, work, vocab, video, tpl, work);
    rc = run_stdout(cmd);
    memcpy(first, g_out, sizeof first);
    info = xc_read_file(errfile, 1 << 16, &len, &err);
    XC_EXPECT(rc == 0 && info && strstr(info, "plain CLIP") && strstr(info, "cached to"), "CLIP, first call (%d): %s", rc,
              info ? info : err.msg);
    xc_free(info);
    rc = run_stdout(cmd);
    info = xc_read_file(errfile, 1 << 16, &len, &err);
    XC_EXPECT(rc == 0 && info && strstr(info, "text features: cached (") && !strcmp(g_out, first) && strstr(first, "video,frames"),
              "CLIP, second call (%d): %s\n%s\nvs\n%s", rc, info ? info : err.msg, g_out, first);
    xc_free(info);

    // a folder that cannot be made: the results all the same, and why nothing was kept
    memcpy(first, xclip_first, sizeof first);
    snprintf(cmd, sizeof cmd, "%s '%s' --labels a,b,c --csv --text-cache '%s/run/best.safetensors/sub'", infer, video, work);
    rc = run_stdout(cmd);
    info = xc_read_file(errfile, 1 << 16, &len, &err);
    XC_EXPECT(rc == 0 && !strcmp(g_out, first) && info && strstr(info, "not cached:") && strstr(info, "best.safetensors"),
              "an unusable cache folder (%d): %s", rc, info ? info : err.msg);
    xc_free(info);
}

static const char *NAMES[] = {"say \"hi\" left", "a, \"b\", c", " padded "};
static const char *LABEL_CSV = "id,name\n0,\"say \"\"hi\"\" left\"\n1,\"a, \"\"b\"\", c\"\n2,\" padded \"\n";

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // the OpenBLAS kernels the programs run with: the features are compared bit for bit
    test_parsers_reject();
    const char *build = build_dir();
    char work[1024], data[1100], cmd[16384], shared[1024], configs[1024], labels[1100], xdg[1100];
    snprintf(work, sizeof work, "%s/test_tools_output.d", build);
    snprintf(xdg, sizeof xdg, "%s/xdg", work);
    setenv("XDG_CACHE_HOME", xdg, 1); // xclip-infer's text cache stays in the work folder
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", shared);
    xc_test_path("XCLIP_FIXTURES", "tests/fixtures", "../../configs", configs, sizeof configs);

    // xclip-synth into a folder whose parents do not exist yet
    snprintf(data, sizeof data, "%s/not/yet/there", work);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && '%s/xclip-synth' '%s' --classes 3 --per-class 2 --val-per-class 2 --frames 8 --size 32",
             work, build, data);
    int rc = run(cmd);
    struct stat st;
    char p[1300];
    snprintf(p, sizeof p, "%s/val.txt", data);
    XC_EXPECT(rc == 0 && stat(p, &st) == 0, "xclip-synth into missing parents (%d):\n%s", rc, g_out);
    if (rc) return xc_test_summary("test_tools_output");
    snprintf(p, sizeof p, "%s/afile", work);
    write_file(p, "x");
    snprintf(cmd, sizeof cmd, "'%s/xclip-synth' '%s/afile/sub'", build, work);
    rc = run(cmd);
    XC_EXPECT(rc == 1 && strstr(g_out, "afile is not a directory"), "xclip-synth under a file (%d):\n%s", rc, g_out);

    // a tiny X-CLIP: 3 iterations of the demo recipe
    snprintf(cmd, sizeof cmd,
             "'%s/xclip-train' '%s/demo.ini' --set data.root='%s/videos' --set data.train_list='%s/train.txt' "
             "--set data.val_list='%s/val.txt' --set data.labels='%s/labels.csv' --set data.vocab='%s' "
             "--set output.dir='%s/run' --set train.epochs=1 --set train.batch_size=2 --set test.final_num_clip=0 "
             "--set output.progress=off",
             build, configs, data, data, data, data, shared, work);
    rc = run(cmd);
    XC_EXPECT(rc == 0, "training the tiny model failed (%d):\n%s", rc, g_out);
    if (rc) return xc_test_summary("test_tools_output");
    snprintf(labels, sizeof labels, "%s/quoted.csv", work);
    write_file(labels, LABEL_CSV);

    // xclip-eval: the predictions CSV
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/run/config.ini' --checkpoint '%s/run/best.safetensors' --labels '%s' "
             "--predictions '%s/pred'", build, work, work, labels, work);
    rc = run(cmd);
    XC_EXPECT(rc == 0, "xclip-eval (%d):\n%s", rc, g_out);
    snprintf(p, sizeof p, "%s/pred.csv", work);
    size_t len;
    XcError err = {{0}};
    char *text = xc_read_file(p, 1 << 20, &len, &err);
    static Csv csv;
    XC_EXPECT(text && csv_parse(text, &csv), "predictions CSV is not RFC 4180:\n%s", text ? text : err.msg);
    if (text && csv.rows == 7) { // header + 6 videos
        XC_EXPECT(!strcmp(csv.cell[0][2], "label_name") && !strcmp(csv.cell[0][4], "pred_name"), "header: %s", text);
        for (int r = 1; r < csv.rows; r++) {
            XC_EXPECT(csv.fields[r] == 8, "row %d has %d fields:\n%s", r, csv.fields[r], text);
            int y = atoi(csv.cell[r][1]), pr = atoi(csv.cell[r][3]);
            XC_EXPECT(y >= 0 && y < 3 && pr >= 0 && pr < 3 && !strcmp(csv.cell[r][2], NAMES[y]) && !strcmp(csv.cell[r][4], NAMES[pr]),
                      "row %d: label %d [%s], predicted %d [%s]", r, y, csv.cell[r][2], pr, csv.cell[r][4]);
        }
    } else XC_EXPECT(false, "predictions: %d rows, want 7:\n%s", csv.rows, text ? text : "");
    xc_free(text);

    // xclip-eval names a class text too long for the text context (16 tokens here, the model holds 14)
    char longlab[1200];
    snprintf(longlab, sizeof longlab, "%s/long.csv", work);
    write_file(longlab, "id,name\n0,a red circle moving left very slowly on a grey background while it shakes a lot\n1,b\n2,c\n");
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/run/config.ini' --checkpoint '%s/run/best.safetensors' --labels '%s' "
             "--predictions none", build, work, work, longlab);
    rc = run(cmd);
    XC_EXPECT(rc == 0 && strstr(g_out, "long.csv: class 0 'a red circle moving left very slowly") &&
                  strstr(g_out, "is 16 tokens") && strstr(g_out, "more than the 14") && !strstr(g_out, "class 1"),
              "xclip-eval long class text (%d):\n%s", rc, g_out);

    // a bad video in the test list is left out of the figures and the predictions, not replaced by the next one
    // (which would then count twice): a list of the 6 videos plus an empty file scores 6 videos, each once
    char badlist[1200];
    snprintf(p, sizeof p, "%s/videos/c00/empty.mp4", data);
    write_file(p, "");
    snprintf(badlist, sizeof badlist, "%s/val_bad.txt", work);
    snprintf(cmd, sizeof cmd, "(head -n 1 '%s/val.txt'; echo 'c00/empty.mp4 0'; tail -n +2 '%s/val.txt') > '%s'", data, data,
             badlist);
    XC_EXPECT(system(cmd) == 0, "cannot write %s", badlist);
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/run/config.ini' --checkpoint '%s/run/best.safetensors' --list '%s' "
             "--set data.max_bad_fraction=0.5 --predictions '%s/predbad'", build, work, work, badlist, work);
    rc = run(cmd);
    XC_EXPECT(rc == 0 && strstr(g_out, "empty.mp4") && strstr(g_out, "(6 videos,"), "xclip-eval with a bad video (%d):\n%s",
              rc, g_out);
    snprintf(p, sizeof p, "%s/predbad.csv", work);
    text = xc_read_file(p, 1 << 20, &len, &err);
    if (text && csv_parse(text, &csv) && csv.rows == 7) { // header + the 6 good videos, each once
        for (int r = 1; r < csv.rows; r++)
            for (int q = 1; q < r; q++)
                XC_EXPECT(strcmp(csv.cell[r][0], csv.cell[q][0]), "predictions with a bad video: %s twice", csv.cell[r][0]);
    } else XC_EXPECT(false, "predictions with a bad video: %d rows, want 7:\n%s", csv.rows, text ? text : err.msg);
    xc_free(text);

    // xclip-infer --csv with the same label file: stdout is CSV only
    char video[1200], infer[4096];
    snprintf(video, sizeof video, "%s/videos/c01/val002.mp4", data);
    snprintf(infer, sizeof infer, "'%s/xclip-infer' --checkpoint '%s/run/best.safetensors' --vocab '%s'", build, work, shared);
    snprintf(cmd, sizeof cmd, "%s '%s' --label-file '%s' --csv", infer, video, labels);
    rc = run_stdout(cmd);
    XC_EXPECT(rc == 0 && csv_parse(g_out, &csv) && csv.rows == 4 && csv.fields[0] == 6 && !strcmp(csv.cell[0][4], "label"),
              "xclip-infer --csv (%d):\n%s", rc, g_out);
    for (int r = 1; r < csv.rows && r < 4; r++) {
        int id = atoi(csv.cell[r][3]);
        XC_EXPECT(csv.fields[r] == 6 && !strcmp(csv.cell[r][0], video) && atoi(csv.cell[r][2]) == r && id >= 0 && id < 3 &&
                      !strcmp(csv.cell[r][4], NAMES[id]) && atof(csv.cell[r][5]) > 0 && atof(csv.cell[r][5]) < 1,
                  "--csv row %d: %s,%s,%s,%s,[%s],%s", r, csv.cell[r][0], csv.cell[r][1], csv.cell[r][2], csv.cell[r][3],
                  csv.cell[r][4], csv.cell[r][5]);
    }

    // xclip-infer --json: one document, escapes, an error entry for a missing video (exit status 1)
    snprintf(cmd, sizeof cmd, "%s '%s' '%s/missing.mp4' --label-file '%s' --json --topk 2", infer, video, work, labels);
    rc = run_stdout(cmd);
    XC_EXPECT(rc == 1 && json_valid(g_out), "xclip-infer --json (%d) is not valid JSON:\n%s", rc, g_out);
    XC_EXPECT(strstr(g_out, "\"labels\": [\"say \\\"hi\\\" left\", \"a, \\\"b\\\", c\", \" padded \"]") &&
                  strstr(g_out, "\"model\": \"X-CLIP\"") && strstr(g_out, "\"rank\": 2") && !strstr(g_out, "\"rank\": 3") &&
                  strstr(g_out, "missing.mp4\", \"error\": \""),
              "--json content:\n%s", g_out);

    // refusals and reports
    snprintf(cmd, sizeof cmd, "%s '%s'", infer, video);
    rc = run(cmd);
    XC_EXPECT(rc == 2 && strstr(g_out, "no labels given: add --labels") && strstr(g_out, "--label-file"), "no labels (%d):\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "%s '%s' --labels 'a red circle moving left'", infer, video);
    rc = run(cmd);
    XC_EXPECT(rc == 2 && strstr(g_out, "one label only ('a red circle moving left')") && strstr(g_out, "always gets 100%"),
              "one label (%d):\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "%s '%s' --labels a,b --json --csv", infer, video);
    rc = run(cmd);
    XC_EXPECT(rc == 2 && strstr(g_out, "choose one"), "--json --csv (%d):\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "%s '%s' --labels 'a red circle moving left very slowly on a grey background while it shakes,b'"
             " --template 'a video of {}'", infer, video);
    rc = run(cmd); // the demo model's context is 16 tokens: 14 between SOT and EOT
    XC_EXPECT(rc == 0 && strstr(g_out, "warning: label 0 'a red circle moving left very slowly") &&
                  strstr(g_out, "more than the 14") && strstr(g_out, "only the start is read: 'a video of a red circle"),
              "long label (%d):\n%s", rc, g_out);
    XC_EXPECT(!strstr(g_out, "warning: label 1"), "a short label reported as long:\n%s", g_out);

    // a Hugging Face model folder as --checkpoint: its weights (here an --hf export of the run) and its tokenizer
    // (vocab.json + merges.txt, used without --vocab); a folder without weights is refused naming both file names
    char hf_tok[1024];
    XC_FIXTURE("tokenizer_hf/vocab.json", hf_tok);
    *strrchr(hf_tok, '/') = 0;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/hf' '%s/hf_empty' && '%s/xclip-export' --hf --quiet '%s/run/best.safetensors' "
             "'%s/hf/model.safetensors' && cp '%s/vocab.json' '%s/merges.txt' '%s/hf/'", work, work, build, work, work,
             hf_tok, hf_tok, work);
    rc = run(cmd);
    XC_EXPECT(rc == 0, "making a Hugging Face folder (%d):\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "'%s/xclip-infer' --checkpoint '%s/hf' '%s' --labels a,b --csv", build, work, video);
    rc = run(cmd);
    XC_EXPECT(rc == 0 && strstr(g_out, "tokenizer from the checkpoint folder") && strstr(g_out, "video,frames,rank"),
              "xclip-infer on a Hugging Face folder (%d):\n%s", rc, g_out);
    snprintf(cmd, sizeof cmd, "'%s/xclip-infer' --checkpoint '%s/hf_empty' '%s' --labels a,b --vocab '%s'", build, work, video,
             shared);
    rc = run(cmd);
    XC_EXPECT(rc == 1 && strstr(g_out, "hf_empty: a folder without model.safetensors or pytorch_model.bin"),
              "a folder without weights (%d):\n%s", rc, g_out);

    test_infer_text_cache(build, work, infer, video, shared);

    // the default vocabulary (../shared/... of the source tree) from another directory
    char source_vocab[1200];
    xc_test_path("XCLIP_FIXTURES", "tests/fixtures", "../../../shared/clip/bpe_simple_vocab_16e6.txt.gz", source_vocab,
                 sizeof source_vocab);
    if (access(source_vocab, R_OK) == 0) {
        char abs_build[PATH_MAX], abs_work[PATH_MAX], abs_video[PATH_MAX];
        XC_CHECK(realpath(build, abs_build) && realpath(work, abs_work) && realpath(video, abs_video), "realpath");
        snprintf(cmd, sizeof cmd, "cd / && '%s/xclip-infer' --checkpoint '%s/run/best.safetensors' '%s' --labels a,b --csv",
                 abs_build, abs_work, abs_video);
        rc = run(cmd);
        XC_EXPECT(rc == 0 && strstr(g_out, "video,frames,rank"), "default vocabulary from / (%d):\n%s", rc, g_out);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s/test_tools_output.stderr'", work, build);
    if (xc_tests_failed == 0 && system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", work);
    return xc_test_summary("test_tools_output");
}
