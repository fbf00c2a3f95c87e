// test_tokenizer.c - the C BPE tokenizer against ids written by tests/ref/make_tokenizer_fixture.py (a Python
// statement of CLIP's simple_tokenizer), plus the Hugging Face loader, the cache, decode and the error paths.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/tokenizer.h"
#include "tests/test_util.h"

#define CONTEXT 77
#define MAX_TEXT 8192

typedef struct Case {
    char mode[8];        // "clip" or "hf"
    char text[MAX_TEXT]; // unescaped UTF-8
    long n_ids;          // BPE ids without SOT/EOT, before truncation
    int eot;             // EOT position in the 77-token row
    int32_t row[CONTEXT];
} Case;

// Parse one record (two lines) at *p; false at the end of the file. Aborts on a malformed fixture.
static bool next_case(char **p, Case *c) {
    char *s = *p;
    while (*s == '#') s = strchr(s, '\n') + 1; // comment lines
    if (!*s) return false;
    char *sp = strchr(s, ' '), *nl = strchr(s, '\n');
    XC_CHECK(sp && nl && sp < nl && (size_t)(sp - s) < sizeof c->mode, "fixture: bad record header");
    memcpy(c->mode, s, (size_t)(sp - s));
    c->mode[sp - s] = 0;
    size_t n = 0;
    for (char *q = sp + 1; q < nl; q++) {
        XC_CHECK(n + 1 < MAX_TEXT, "fixture: text too long");
        if (*q == '\\') {
            XC_CHECK(q[1] == 'x', "fixture: bad escape");
            char hex[3] = {q[2], q[3], 0};
            c->text[n++] = (char)strtol(hex, NULL, 16);
            q += 3;
        } else {
            c->text[n++] = *q;
        }
    }
    c->text[n] = 0;
    s = nl + 1;
    nl = strchr(s, '\n');
    XC_CHECK(nl, "fixture: missing ids line");
    char *end;
    c->n_ids = strtol(s, &end, 10);
    c->eot = (int)strtol(end, &end, 10);
    XC_CHECK(c->eot >= 1 && c->eot < CONTEXT, "fixture: bad eot position");
    memset(c->row, 0, sizeof c->row);
    for (int i = 0; i <= c->eot; i++) c->row[i] = (int32_t)strtol(end, &end, 10);
    XC_CHECK(end == nl, "fixture: trailing text on the ids line");
    *p = nl + 1;
    return true;
}

// Encode every case of the given mode; returns the number of mismatching strings (also counted as failures).
static int check_cases(Tokenizer *tok, const char *fixture, const char *mode, int *n_cases) {
    char *buf = strdup(fixture), *p = buf;
    Case *c = malloc(sizeof *c);
    int bad = 0, n = 0;
    int32_t got[CONTEXT];
    while (next_case(&p, c)) {
        if (strcmp(c->mode, mode) != 0) continue;
        n++;
        int eot = tokenizer_encode(tok, c->text, got, CONTEXT);
        size_t n_ids = tokenizer_encode_ids(tok, c->text, NULL, 0);
        bool ok = eot == c->eot && (long)n_ids == c->n_ids && memcmp(got, c->row, sizeof got) == 0;
        if (!ok) {
            if (bad < 8) {
                fprintf(stderr, "  %s mismatch for \"%s\": eot %d want %d, n_ids %zu want %ld\n    got :", mode,
                        c->text, eot, c->eot, n_ids, c->n_ids);
                for (int i = 0; i <= eot && i < 24; i++) fprintf(stderr, " %d", got[i]);
                fprintf(stderr, "\n    want:");
                for (int i = 0; i <= c->eot && i < 24; i++) fprintf(stderr, " %d", c->row[i]);
                fprintf(stderr, "\n");
            }
            bad++;
        }
    }
    XC_EXPECT(bad == 0, "%s: %d of %d strings tokenized differently from the Python reference", mode, bad, n);
    free(c);
    free(buf);
    *n_cases = n;
    return bad;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    XC_CHECK(f, "cannot write %s", path);
    XC_CHECK(fwrite(data, 1, n, f) == n, "short write to %s", path);
    fclose(f);
}

// The loader must fail, naming the path (and what went wrong when `what` is given).
static void expect_load_error(Tokenizer *t, const XcError *err, const char *path, const char *what) {
    XC_EXPECT(t == NULL, "loading %s should fail", path);
    tokenizer_free(t);
    XC_EXPECT(strstr(err->msg, path) != NULL, "error message \"%s\" does not name %s", err->msg, path);
    if (what) XC_EXPECT(strstr(err->msg, what) != NULL, "error message \"%s\" does not say \"%s\"", err->msg, what);
    printf("  expected error: %s\n", err->msg);
}

static void test_errors(const char *gz_path, const char *vocab_path, const char *merges_path) {
    const char *dir = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "/tmp";
    char p1[1024], p2[1024];
    XcError err = {0};

    snprintf(p1, sizeof p1, "%s/no_such_dir/bpe.txt.gz", dir);
    expect_load_error(tokenizer_load_clip(p1, &err), &err, p1, NULL);

    // corrupt gzip: a valid header followed by garbage
    snprintf(p1, sizeof p1, "%s/tok_corrupt_%d.gz", dir, (int)getpid());
    unsigned char junk[64] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    for (int i = 10; i < 64; i++) junk[i] = (unsigned char)(i * 37 + 11);
    write_file(p1, junk, sizeof junk);
    expect_load_error(tokenizer_load_clip(p1, &err), &err, p1, "corrupt");
    // not gzip at all
    write_file(p1, "hello, this is text\n", 20);
    expect_load_error(tokenizer_load_clip(p1, &err), &err, p1, "corrupt");
    remove(p1);

    // truncated gzip: the first half of the real file
    size_t n = 0;
    char *gz = xc_read_file(gz_path, (size_t)64 << 20, &n, &err);
    XC_EXPECT(gz != NULL, "%s", err.msg);
    if (gz) {
        snprintf(p1, sizeof p1, "%s/tok_truncated_%d.gz", dir, (int)getpid());
        write_file(p1, gz, n / 2);
        expect_load_error(tokenizer_load_clip(p1, &err), &err, p1, "truncated");
        remove(p1);
        xc_free(gz);
    }

    // a valid gzip with too few merges
    snprintf(p1, sizeof p1, "%s/tok_short_%d.gz", dir, (int)getpid());
    gzFile g = gzopen(p1, "wb");
    XC_CHECK(g, "gzopen %s", p1);
    gzputs(g, "#version: 0.2\ni n\nt h\n");
    gzclose(g);
    expect_load_error(tokenizer_load_clip(p1, &err), &err, p1, "merge lines");
    remove(p1);

    // Hugging Face files
    snprintf(p1, sizeof p1, "%s/tok_vocab_%d.json", dir, (int)getpid());
    snprintf(p2, sizeof p2, "%s/no_such_merges.txt", dir);
    expect_load_error(tokenizer_load_hf(vocab_path, p2, &err), &err, p2, NULL);
    snprintf(p2, sizeof p2, "%s/no_such_vocab.json", dir);
    expect_load_error(tokenizer_load_hf(p2, merges_path, &err), &err, p2, NULL);
    static const struct { const char *json, *what; } bad_json[] = {
        {"", "end of input"},
        {"[1, 2]", "expected '{'"},
        {"{}", "empty"},
        {"{\"a\" 1}", "expected ':'"},
        {"{\"a\": 1,}", "trailing comma"},
        {"{\"a\": 1", "unterminated object"},
        {"{\"a\": -1}", "integer id"},
        {"{\"a\": 1.5}", "fraction"},
        {"{\"a\": 1e3}", "fraction or exponent"},
        {"{\"a\": 16777217}", "too large"},
        {"{\"a\": 007}", "leading zero"},
        {"{\"a\xff\": 0}", "invalid UTF-8"},
        {"{\"a\": \"b\"}", "integer id"},
        {"{\"a\\q\": 0}", "bad escape"},
        {"{\"a\\u12\": 0}", "\\u escape"},
        {"{\"\\ud800\": 0}", "surrogate"},
        {"{\"abc", "unterminated"},
        {"{\"a\tb\": 0}", "control character"},
        {"{\"a\": 0} x", "after the value"},
        {"{\"a\": 0, \"b\": 2}", "outside"},
        {"{\"a\": 0, \"b\": 0}", "used twice"},
        {"{\"a\": 0, \"a\": 1}", "duplicate key"},
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        write_file(p1, bad_json[i].json, strlen(bad_json[i].json));
        expect_load_error(tokenizer_load_hf(p1, merges_path, &err), &err, p1, bad_json[i].what);
    }
    // valid JSON and merges, but no byte symbols
    snprintf(p2, sizeof p2, "%s/tok_merges_%d.txt", dir, (int)getpid());
    write_file(p2, "#version: 0.2\n", strlen("#version: 0.2\n"));
    write_file(p1, "{\"a\": 0, \"b\": 1}", strlen("{\"a\": 0, \"b\": 1}"));
    expect_load_error(tokenizer_load_hf(p1, p2, &err), &err, p1, "lacks the symbol");
    remove(p1);
    // merges.txt naming a symbol the vocabulary lacks, and a malformed line
    snprintf(p2, sizeof p2, "%s/tok_merges_%d.txt", dir, (int)getpid());
    write_file(p2, "#version: 0.2\nzq\xc3\xa9 xy\n", strlen("#version: 0.2\nzq\xc3\xa9 xy\n"));
    expect_load_error(tokenizer_load_hf(vocab_path, p2, &err), &err, p2, "missing from");
    write_file(p2, "#version: 0.2\nabc\n", strlen("#version: 0.2\nabc\n"));
    expect_load_error(tokenizer_load_hf(vocab_path, p2, &err), &err, p2, "line 2");
    remove(p2);
}

// tokenizer_load tells the formats apart: CLIP's gzip file, the same merges uncompressed, a Hugging Face folder,
// its vocab.json or its merges.txt named alone; each must tokenize as its own loader does.
static void test_sniffing(const char *gz_path, const char *vocab_path, const char *fixture) {
    XcError err = {0};
    char plain[1200], cmd[4400], dir[1024], empty[1100];
    const char *build = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : ".";
    snprintf(plain, sizeof plain, "%s/test_tokenizer_bpe.txt", build);
    snprintf(cmd, sizeof cmd, "gzip -dc '%s' > '%s'", gz_path, plain);
    XC_EXPECT(system(cmd) == 0, "cannot gunzip %s", gz_path);
    const char *clip_paths[2] = {gz_path, plain};
    for (int i = 0; i < 2; i++) {
        Tokenizer *t = tokenizer_load(clip_paths[i], &err);
        XC_EXPECT(t && tokenizer_vocab_size(t) == 49408, "tokenizer_load(%s): %s", clip_paths[i], t ? "wrong size" : err.msg);
        int n = 0;
        if (t) XC_EXPECT(check_cases(t, fixture, "clip", &n) == 0 && n >= 900, "%s: %d strings, mismatches", clip_paths[i], n);
        tokenizer_free(t);
    }
    const char *slash = strrchr(vocab_path, '/');
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - vocab_path), vocab_path);
    char merges[1100];
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    const char *hf_paths[3] = {dir, vocab_path, merges};
    for (int i = 0; i < 3; i++) {
        Tokenizer *t = tokenizer_load(hf_paths[i], &err);
        XC_EXPECT(t && tokenizer_vocab_size(t) == 512 + 3000 + 2, "tokenizer_load(%s): %s", hf_paths[i], t ? "not the HF vocabulary" : err.msg);
        int n = 0;
        if (t) XC_EXPECT(check_cases(t, fixture, "hf", &n) == 0 && n >= 10, "%s: %d strings, mismatches", hf_paths[i], n);
        tokenizer_free(t);
    }
    snprintf(empty, sizeof empty, "%s/test_tokenizer_emptydir", build);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s' '%s/'", empty, empty, vocab_path, empty);
    XC_EXPECT(system(cmd) == 0, "cannot make %s", empty);
    Tokenizer *t = tokenizer_load(empty, &err);
    XC_EXPECT(!t && strstr(err.msg, empty) && strstr(err.msg, "merges.txt"), "a folder without merges.txt: %s", t ? "loaded" : err.msg);
    tokenizer_free(t);
    snprintf(plain, sizeof plain, "%s/vocab.json", empty);
    t = tokenizer_load(plain, &err);
    XC_EXPECT(!t && strstr(err.msg, "needs merges.txt"), "vocab.json alone: %s", t ? "loaded" : err.msg);
    tokenizer_free(t);
}

int main(void) {
    char gz_path[1024], fx_path[1024], vocab_path[1024], merges_path[1024];
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", gz_path);
    XC_FIXTURE("tokenizer_ids.txt", fx_path);
    XC_FIXTURE("tokenizer_hf/vocab.json", vocab_path);
    XC_FIXTURE("tokenizer_hf/merges.txt", merges_path);
    XcError err = {0};

    double t0 = xc_now();
    Tokenizer *tok = tokenizer_load_clip(gz_path, &err);
    if (!tok) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("loaded %s in %.3f s\n", gz_path, xc_now() - t0);
    XC_EXPECT(tokenizer_vocab_size(tok) == 49408, "vocab %zu", tokenizer_vocab_size(tok));
    XC_EXPECT(tokenizer_sot(tok) == 49406 && tokenizer_eot(tok) == 49407, "sot %d eot %d", tokenizer_sot(tok),
              tokenizer_eot(tok));

    size_t fx_len = 0;
    char *fixture = xc_read_file(fx_path, (size_t)16 << 20, &fx_len, &err);
    if (!fixture) { fprintf(stderr, "%s\n", err.msg); return 1; }

    // every label name and tricky string, then again with a warm cache: the same ids, now from the cache
    int n_clip = 0, n_hf = 0;
    t0 = xc_now();
    int bad = check_cases(tok, fixture, "clip", &n_clip);
    double dt = xc_now() - t0;
    uint64_t hits0, misses0, hits1, misses1;
    tokenizer_cache_stats(tok, &hits0, &misses0);
    int bad2 = check_cases(tok, fixture, "clip", &n_clip);
    tokenizer_cache_stats(tok, &hits1, &misses1);
    printf("clip: %d strings compared (x2), %d + %d mismatches, %.1f ms; cache: %llu hits %llu misses, then "
           "+%llu hits +%llu misses\n", n_clip, bad, bad2, 1e3 * dt, (unsigned long long)hits0,
           (unsigned long long)misses0, (unsigned long long)(hits1 - hits0), (unsigned long long)(misses1 - misses0));
    XC_EXPECT(n_clip >= 900, "only %d clip strings in the fixture", n_clip);
    XC_EXPECT(hits1 - hits0 > 0 && misses1 - misses0 <= (misses0 + 9) / 10,
              "second pass should be served from the cache (+%llu hits, +%llu misses)",
              (unsigned long long)(hits1 - hits0), (unsigned long long)(misses1 - misses0));

    // the same string twice: identical rows, the second from the cache
    int32_t a[CONTEXT], b[CONTEXT];
    int ea = tokenizer_encode(tok, "a brand new phrase zyxwvut", a, CONTEXT);
    tokenizer_cache_stats(tok, &hits0, NULL);
    int eb = tokenizer_encode(tok, "a brand new phrase zyxwvut", b, CONTEXT);
    tokenizer_cache_stats(tok, &hits1, NULL);
    XC_EXPECT(ea == eb && memcmp(a, b, sizeof a) == 0, "encoding twice differs");
    XC_EXPECT(hits1 - hits0 == 5, "second encode: %llu cache hits, want 5", (unsigned long long)(hits1 - hits0));

    // truncation (clip.tokenize(truncate=True)): SOT + first context-2 ids + EOT, also for a small context
    int32_t full[200], small[6];
    size_t nfull = tokenizer_encode_ids(tok, "one two three four five six seven", full, 200);
    XC_EXPECT(nfull == 7, "7 ids, got %zu", nfull);
    int es = tokenizer_encode(tok, "one two three four five six seven", small, 6);
    XC_EXPECT(es == 5 && small[0] == 49406 && small[5] == 49407 && memcmp(small + 1, full, 4 * sizeof(int32_t)) == 0,
              "context-6 truncation wrong (eot %d)", es);
    es = tokenizer_encode(tok, "one two three four", small, 6);
    XC_EXPECT(es == 5 && small[5] == 49407 && memcmp(small + 1, full, 4 * sizeof(int32_t)) == 0, "exact fit wrong");
    es = tokenizer_encode(tok, "", small, 6);
    XC_EXPECT(es == 1 && small[0] == 49406 && small[1] == 49407 && small[2] == 0 && small[5] == 0, "empty text");

    // decode
    char text[256];
    int32_t ids[64];
    size_t ni = tokenizer_encode_ids(tok, "Arm wrestling, café naïve 🙂", ids, 64);
    size_t nt = tokenizer_decode(tok, ids, ni, text, sizeof text);
    XC_EXPECT(strcmp(text, "arm wrestling , café naïve 🙂 ") == 0 && nt == strlen(text), "decoded \"%s\"", text);
    nt = tokenizer_decode(tok, ids, ni, text, 4);
    XC_EXPECT(strcmp(text, "arm") == 0 && nt > 4, "decode into a short buffer: \"%s\" (%zu)", text, nt);
    int32_t odd[2] = {-3, 49408};
    tokenizer_decode(tok, odd, 2, text, sizeof text);
    XC_EXPECT(strcmp(text, "<?-3><?49408>") == 0, "decoded out-of-range ids as \"%s\"", text);
    tokenizer_free(tok);

    // Hugging Face layout
    Tokenizer *hf = tokenizer_load_hf(vocab_path, merges_path, &err);
    XC_EXPECT(hf != NULL, "%s", err.msg);
    if (hf) {
        XC_EXPECT(tokenizer_vocab_size(hf) == 512 + 3000 + 2, "hf vocab %zu", tokenizer_vocab_size(hf));
        int bad_hf = check_cases(hf, fixture, "hf", &n_hf);
        printf("hf: %d strings compared, %d mismatches\n", n_hf, bad_hf);
        XC_EXPECT(n_hf >= 10, "only %d hf strings in the fixture", n_hf);
        tokenizer_free(hf);
    }

    test_sniffing(gz_path, vocab_path, fixture);
    test_errors(gz_path, vocab_path, merges_path);
    xc_free(fixture);
    return xc_test_summary("test_tokenizer");
}
