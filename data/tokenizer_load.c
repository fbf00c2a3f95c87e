// tokenizer_load.c - the loaders: CLIP's own gzip merges file (the vocabulary derived from it, as CLIP does),
// the Hugging Face layout (vocab.json read with autograd/json.h, merges.txt), and tokenizer_load telling them apart.
#include "data/tokenizer_internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "autograd/json.h"
#include "autograd/utf8.h"

#define TOK_MAX_GZ_FILE ((size_t)64 << 20)    // compressed merges file
#define TOK_MAX_GZ_OUT ((size_t)16 << 20)     // decompressed merges text (CLIP's is 3.2 MB)
#define TOK_MAX_TEXT_FILE ((size_t)64 << 20)  // vocab.json, merges.txt
#define TOK_CLIP_MERGES (49152 - 256 - 2)     // merge lines CLIP uses: lines 1..48894 of the file

// ---- CLIP's bpe_simple_vocab_16e6.txt.gz ------------------------------------------------------------------

// Inflate a gzip file into a new NUL-terminated buffer of at most TOK_MAX_GZ_OUT bytes.
static char *gunzip_file(const char *path, size_t *out_len, XcError *err) {
    size_t in_len = 0;
    unsigned char *in = xc_read_file(path, TOK_MAX_GZ_FILE, &in_len, err);
    if (!in) return NULL;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) { // 16: expect a gzip header
        xc_free(in);
        xc_err(err, "%s: zlib inflateInit2 failed", path);
        return NULL;
    }
    size_t cap = (size_t)1 << 20, len = 0;
    char *out = xc_malloc(cap + 1);
    zs.next_in = in;
    zs.avail_in = (uInt)in_len; // in_len <= 64 MiB fits uInt
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
        if (len == cap) {
            if (cap >= TOK_MAX_GZ_OUT) {
                xc_err(err, "%s: decompresses to more than %zu MiB; not a CLIP merges file?", path,
                       TOK_MAX_GZ_OUT >> 20);
                goto fail;
            }
            cap = cap * 2 > TOK_MAX_GZ_OUT ? TOK_MAX_GZ_OUT : cap * 2;
            out = xc_realloc(out, cap + 1);
        }
        zs.next_out = (unsigned char *)out + len;
        zs.avail_out = (uInt)(cap - len);
        rc = inflate(&zs, Z_NO_FLUSH);
        len = cap - zs.avail_out;
        if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
            xc_err(err, "%s: truncated gzip file (the compressed stream ends early after %zu bytes out)", path, len);
            goto fail;
        }
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            xc_err(err, "%s: corrupt gzip data (zlib: %s)", path, zs.msg ? zs.msg : zError(rc));
            goto fail;
        }
    }
    inflateEnd(&zs);
    xc_free(in);
    out[len] = 0;
    *out_len = len;
    return out;
fail:
    inflateEnd(&zs);
    xc_free(in);
    xc_free(out);
    return NULL;
}

// CLIP's merges as text (gunzipped, or uncompressed), owned by the call.
static Tokenizer *clip_from_text(char *text, size_t len, const char *path, XcError *err) {
    // Line starts: we need lines 1..TOK_CLIP_MERGES (line 0 is a version header).
    char **lines = xc_malloc((TOK_CLIP_MERGES + 1) * sizeof *lines);
    size_t *lens = xc_malloc((TOK_CLIP_MERGES + 1) * sizeof *lens);
    size_t n_lines = 0, pos = 0;
    while (n_lines < TOK_CLIP_MERGES + 1 && pos < len) {
        char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        lines[n_lines] = text + pos;
        lens[n_lines] = end - pos;
        n_lines++;
        pos = end + 1;
    }
    if (n_lines < TOK_CLIP_MERGES + 1) {
        xc_err(err, "%s: has %zu merge lines; CLIP's vocabulary needs %d", path, n_lines ? n_lines - 1 : 0,
               TOK_CLIP_MERGES);
        xc_free(text); xc_free(lines); xc_free(lens);
        return NULL;
    }
    Tokenizer *t = tok_new();
    size_t n_vocab = 512 + TOK_CLIP_MERGES + 2;
    tok_vocab_init(t, n_vocab);
    tok_merges_init(t, TOK_CLIP_MERGES);
    char buf[TOK_MAX_TOKEN_BYTES + 8];
    int32_t id = 0;
    for (int w = 0; w < 2; w++) // the 256 byte symbols in bytes_to_unicode order, then the same with "</w>"
        for (int k = 0; k < 256; k++) {
            size_t n = xc_utf8_encode(t->byte_cp[t->byte_order[k]], buf);
            if (w) { memcpy(buf + n, "</w>", 4); n += 4; }
            tok_vocab_set(t, id++, buf, n);
        }
    char *pa, *pb;
    size_t na, nb;
    for (int i = 0; i < TOK_CLIP_MERGES; i++) {
        if (!tok_split_merge(lines[i + 1], lens[i + 1], &pa, &na, &pb, &nb)) {
            xc_err(err, "%s: line %d is not a merge \"a b\"", path, i + 2);
            xc_free(text); xc_free(lines); xc_free(lens);
            tokenizer_free(t);
            return NULL;
        }
        memcpy(buf, pa, na);
        memcpy(buf + na, pb, nb);
        tok_vocab_set(t, id++, buf, na + nb);
    }
    tok_vocab_set(t, id++, TOK_SOT_STR, strlen(TOK_SOT_STR));
    tok_vocab_set(t, id++, TOK_EOT_STR, strlen(TOK_EOT_STR));
    for (int i = 0; i < TOK_CLIP_MERGES; i++) {
        tok_split_merge(lines[i + 1], lens[i + 1], &pa, &na, &pb, &nb);
        int32_t a = tok_vocab_find(t, pa, na), b = tok_vocab_find(t, pb, nb);
        memcpy(buf, pa, na);
        memcpy(buf + na, pb, nb);
        int32_t ab = tok_vocab_find(t, buf, na + nb);
        // A part that is no vocabulary string can never occur in a word, so such a merge can never apply.
        if (a >= 0 && b >= 0) tok_merge_add(t, a, b, ab, i);
    }
    xc_free(text); xc_free(lines); xc_free(lens);
    if (tok_finish(t, path, err) != XC_OK) { tokenizer_free(t); return NULL; }
    return t;
}

Tokenizer *tokenizer_load_clip(const char *path, XcError *err) {
    size_t len = 0;
    char *text = gunzip_file(path, &len, err);
    return text ? clip_from_text(text, len, path, err) : NULL;
}

// ---- Hugging Face vocab.json + merges.txt ------------------------------------------------------------------

// The id of vocabulary entry `key`: a JSON integer in 0..2^24.
static int vocab_id(const JsonValue *v, const char *key, const char *path, int32_t *id, XcError *err) {
    if (v->type != JSON_NUMBER)
        return xc_err(err, "%s: the id of \"%.100s\" is a JSON %s, expected a non-negative integer id", path, key,
                      json_type_name(v->type));
    char num[32];
    if (v->is_int) snprintf(num, sizeof num, "%lld", (long long)v->i);
    else snprintf(num, sizeof num, "%g", v->d);
    if (v->d < 0) return xc_err(err, "%s: the id of \"%.100s\" is %s, expected a non-negative integer id", path, key, num);
    if (v->d > (double)(1 << 24)) return xc_err(err, "%s: the id of \"%.100s\" is %s: too large (more than 16M)", path, key, num);
    if (!v->is_int)
        return xc_err(err, "%s: the id of \"%.100s\" is %s, expected an integer id, found a fraction or exponent", path,
                      key, num);
    *id = (int32_t)v->i;
    return XC_OK;
}

// vocab.json, parsed (autograd/json.h: strict JSON, no duplicate keys) -> a tokenizer holding the vocabulary.
static Tokenizer *vocab_from_json(const JsonValue *root, const char *path, XcError *err) {
    if (root->type != JSON_OBJECT) {
        xc_err(err, "%s: expected '{' (vocab.json is one object: token string -> id), found a JSON %s", path,
               json_type_name(root->type));
        return NULL;
    }
    if (root->n == 0) { xc_err(err, "%s: empty vocabulary", path); return NULL; }
    size_t n = (size_t)root->n;
    int32_t *ids = xc_malloc(n * sizeof *ids);
    uint8_t *seen = xc_calloc(n, 1);
    Tokenizer *t = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(root->keys[i]);
        if (len > TOK_MAX_TOKEN_BYTES) {
            xc_err(err, "%s: key \"%.40s...\" (%zu bytes) is too long for a vocabulary entry (at most %d bytes)", path,
                   root->keys[i], len, TOK_MAX_TOKEN_BYTES);
            goto fail;
        }
        if (vocab_id(&root->items[i], root->keys[i], path, &ids[i], err) != XC_OK) goto fail;
    }
    // ids must be exactly 0..n-1
    for (size_t i = 0; i < n; i++) {
        if ((size_t)ids[i] >= n) {
            xc_err(err, "%s: id %d of \"%s\" is outside 0..%zu (ids must be 0..n-1 without gaps)", path, ids[i],
                   root->keys[i], n - 1);
            goto fail;
        }
        if (seen[ids[i]]++) {
            xc_err(err, "%s: id %d is used twice (\"%s\")", path, ids[i], root->keys[i]);
            goto fail;
        }
    }
    t = tok_new();
    tok_vocab_init(t, n);
    for (size_t i = 0; i < n; i++)
        if (tok_vocab_set(t, ids[i], root->keys[i], strlen(root->keys[i])) >= 0) { // json_parse refuses these already
            xc_err(err, "%s: key \"%s\" appears twice", path, root->keys[i]);
            goto fail;
        }
    xc_free(ids); xc_free(seen);
    return t;
fail:
    xc_free(ids); xc_free(seen);
    tokenizer_free(t);
    return NULL;
}

Tokenizer *tokenizer_load_hf(const char *vocab_path, const char *merges_path, XcError *err) {
    size_t json_len = 0, merges_len = 0;
    char *json = xc_read_file(vocab_path, TOK_MAX_TEXT_FILE, &json_len, err);
    if (!json) return NULL;
    char *merges = xc_read_file(merges_path, TOK_MAX_TEXT_FILE, &merges_len, err);
    if (!merges) { xc_free(json); return NULL; }
    Tokenizer *t = NULL;
    JsonValue root;
    int rc = json_parse(&root, json, json_len, vocab_path, err);
    xc_free(json);
    if (rc == XC_OK) t = vocab_from_json(&root, vocab_path, err);
    json_free(&root);
    if (!t) goto fail;

    // merges.txt: optional "#version" header, then "a b" per line in rank order; blank lines are skipped.
    size_t n_lines = 1;
    for (size_t i = 0; i < merges_len; i++) n_lines += merges[i] == '\n';
    tok_merges_init(t, n_lines);
    char buf[2 * TOK_MAX_TOKEN_BYTES + 8];
    int32_t rank = 0;
    size_t pos = 0, line_no = 0;
    while (pos < merges_len) {
        char *line = merges + pos, *nl = memchr(line, '\n', merges_len - pos);
        size_t ln = nl ? (size_t)(nl - line) : merges_len - pos;
        pos += ln + 1;
        line_no++;
        if (line_no == 1 && ln >= 8 && memcmp(line, "#version", 8) == 0) continue;
        size_t k = 0;
        while (k < ln && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == ln) continue;
        char *pa, *pb;
        size_t na, nb;
        if (!tok_split_merge(line, ln, &pa, &na, &pb, &nb)) {
            xc_err(err, "%s: line %zu is not a merge \"a b\"", merges_path, line_no);
            goto fail;
        }
        memcpy(buf, pa, na);
        memcpy(buf + na, pb, nb);
        int32_t a = tok_vocab_find(t, pa, na), b = tok_vocab_find(t, pb, nb), ab = tok_vocab_find(t, buf, na + nb);
        if (a < 0 || b < 0 || ab < 0) {
            xc_err(err, "%s: line %zu: merge \"%.*s %.*s\" uses a symbol missing from %s", merges_path, line_no,
                   (int)na, pa, (int)nb, pb, vocab_path);
            goto fail;
        }
        tok_merge_add(t, a, b, ab, rank++);
    }
    if (tok_finish(t, vocab_path, err) != XC_OK) goto fail;
    xc_free(merges);
    return t;
fail:
    xc_free(merges);
    tokenizer_free(t);
    return NULL;
}

// ---- any of the above, by content ----------------------------------------------------------------------------

// dir/name into buf if that file exists.
static bool sibling(const char *path, bool is_dir, const char *name, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (is_dir) snprintf(buf, cap, "%s/%s", path, name);
    else if (slash) snprintf(buf, cap, "%.*s/%s", (int)(slash - path), path, name);
    else snprintf(buf, cap, "%s", name);
    struct stat st;
    return stat(buf, &st) == 0 && S_ISREG(st.st_mode);
}

Tokenizer *tokenizer_load(const char *path, XcError *err) {
    struct stat st;
    if (stat(path, &st) != 0) return xc_err(err, "%s: %s", path, strerror(errno)), NULL;
    char vocab[4096], merges[4096];
    if (S_ISDIR(st.st_mode)) { // a Hugging Face model or tokenizer folder
        bool hv = sibling(path, true, "vocab.json", vocab, sizeof vocab), hm = sibling(path, true, "merges.txt", merges, sizeof merges);
        if (hv && hm) return tokenizer_load_hf(vocab, merges, err);
        return xc_err(err, "%s: a folder, but without %s%s%s (a Hugging Face tokenizer folder holds both)", path,
                      hv ? "" : "vocab.json", !hv && !hm ? " and " : "", hm ? "" : "merges.txt"), NULL;
    }
    unsigned char head[64] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return xc_err(err, "%s: %s", path, strerror(errno)), NULL;
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) return tokenizer_load_clip(path, err); // gzip: CLIP's own file
    size_t k = 0;
    while (k < n && (head[k] == ' ' || head[k] == '\t' || head[k] == '\r' || head[k] == '\n')) k++;
    if (k < n && head[k] == '{') { // Hugging Face vocab.json: merges.txt beside it
        if (sibling(path, false, "merges.txt", merges, sizeof merges)) return tokenizer_load_hf(path, merges, err);
        return xc_err(err, "%s: a JSON vocabulary (Hugging Face vocab.json) needs merges.txt beside it: %s not found",
                      path, merges), NULL;
    }
    // plain text: merges. With vocab.json beside it, the Hugging Face pair; else CLIP's merges uncompressed.
    if (sibling(path, false, "vocab.json", vocab, sizeof vocab)) return tokenizer_load_hf(vocab, path, err);
    size_t len = 0;
    char *text = xc_read_file(path, TOK_MAX_GZ_OUT, &len, err);
    return text ? clip_from_text(text, len, path, err) : NULL;
}
