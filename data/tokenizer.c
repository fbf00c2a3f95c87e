// tokenizer.c - CLIP's byte-level BPE tokenizer; see tokenizer.h for the pipeline and its documented limits.
//
// Text flows through code point arrays held in the tokenizer's scratch buffers (grown on demand, reused):
//   UTF-8 text -> cps[] (decode) -> html_unescape x2 (in place) -> strip / collapse whitespace / strip (in place)
//   -> lower case into low[] -> pre-tokenise into pieces -> each piece as UTF-8 bytes -> BPE -> ids.
// The BPE result of each piece is cached (keyed by the piece's UTF-8 bytes) in fixed-size pools allocated at
// load time (about 0.9 MB); when a pool fills up the whole cache is dropped and refilled, so memory stays bounded.
#include "data/tokenizer.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "autograd/json.h"
#include "autograd/utf8.h"
#include "data/tokenizer_tables.h"

#define TOK_MAX_GZ_FILE ((size_t)64 << 20)    // compressed merges file
#define TOK_MAX_GZ_OUT ((size_t)16 << 20)     // decompressed merges text (CLIP's is 3.2 MB)
#define TOK_MAX_TEXT_FILE ((size_t)64 << 20)  // vocab.json, merges.txt
#define TOK_CLIP_MERGES (49152 - 256 - 2)     // merge lines CLIP uses: lines 1..48894 of the file
#define TOK_MAX_TOKEN_BYTES 4096              // longest vocabulary string accepted
#define TOK_CACHE_SLOTS 16384                 // hash slots (power of two); at most half are filled
#define TOK_CACHE_KEY_BYTES ((size_t)1 << 18) // bytes of cached piece text
#define TOK_CACHE_IDS ((size_t)1 << 16)       // cached ids
#define TOK_CACHE_MAX_PIECE 64                // longer pieces are encoded every time, never cached

static const char TOK_SOT_STR[] = "<|startoftext|>";
static const char TOK_EOT_STR[] = "<|endoftext|>";

typedef struct MergeSlot {
    uint64_t key; // (left id << 32) | right id; UINT64_MAX = empty
    int32_t rank; // position in the merges list (lower merges first)
    int32_t id;   // id of the merged symbol
} MergeSlot;

typedef struct CacheSlot {
    uint64_t hash;   // 0 = empty (real hashes are forced non-zero)
    uint32_t key_off, key_len; // piece bytes in cache_keys
    uint32_t ids_off, ids_len; // ids in cache_ids
} CacheSlot;

struct Tokenizer {
    size_t n_vocab;
    char *strings;      // (strings_len,) every token string (byte-unicode form, UTF-8), each NUL-terminated
    size_t strings_len, strings_cap;
    size_t *str_off;    // (n_vocab,) offset of token id's string in strings
    uint32_t *str_len;  // (n_vocab,) its length in bytes
    int32_t *vocab_slots; // (vocab_cap,) open addressing over token strings: id or -1
    size_t vocab_cap;
    MergeSlot *merge_slots; // (merge_cap,)
    size_t merge_cap, n_merges;
    uint32_t byte_cp[256];  // bytes_to_unicode: byte -> printable code point (< 324)
    int16_t cp_byte[324];   // inverse, -1 where no byte maps
    uint8_t byte_order[256]; // bytes in bytes_to_unicode's list order: printable ones first, then the rest
    int32_t byte_id[256];   // id of the symbol for byte b
    int32_t byte_id_w[256]; // id of the symbol for byte b followed by "</w>" (end of a word)
    int32_t sot, eot;
    // BPE cache (bounded; see file comment)
    CacheSlot *cache_slots; // (TOK_CACHE_SLOTS,)
    char *cache_keys;       // (TOK_CACHE_KEY_BYTES,)
    int32_t *cache_ids;     // (TOK_CACHE_IDS,)
    size_t cache_keys_len, cache_ids_len, cache_count;
    uint64_t cache_hits, cache_misses;
    // scratch, grown on demand
    uint32_t *cps; size_t cps_cap;   // text as code points
    uint32_t *low; size_t low_cap;   // lower-cased text (İ lowers to two code points)
    char *piece; size_t piece_cap;   // one pre-token as UTF-8
    int32_t *syms; size_t syms_cap;  // BPE symbols of one piece
};

// ---- small helpers --------------------------------------------------------------------------------------

static uint64_t hash_bytes(const char *s, size_t n) { // FNV-1a, never 0
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ? h : 1;
}

static uint64_t hash_u64(uint64_t x) { // splitmix64 finaliser
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static void grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    *p = xc_realloc(*p, c * elem);
    *cap = c;
}

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid][0]) hi = mid;
        else if (c > r[mid][1]) lo = mid + 1;
        else return true;
    }
    return false;
}
#define IN_TABLE(t, c) in_ranges((t), sizeof(t) / sizeof((t)[0]), (c))

// ---- vocabulary and merges --------------------------------------------------------------------------------

static Tokenizer *tok_new(void) {
    Tokenizer *t = xc_calloc(1, sizeof *t);
    t->sot = t->eot = -1;
    // bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 to 256, 257, ... in byte order.
    int n_other = 0, n_printable = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (printable) t->byte_order[n_printable++] = (uint8_t)b;
        t->byte_cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + n_other++);
    }
    for (int b = 0, k = n_printable; b < 256; b++)
        if (t->byte_cp[b] >= 256) t->byte_order[k++] = (uint8_t)b;
    for (int i = 0; i < 324; i++) t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) t->cp_byte[t->byte_cp[b]] = (int16_t)b;
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    xc_free(t->strings); xc_free(t->str_off); xc_free(t->str_len); xc_free(t->vocab_slots);
    xc_free(t->merge_slots); xc_free(t->cache_slots); xc_free(t->cache_keys); xc_free(t->cache_ids);
    xc_free(t->cps); xc_free(t->low); xc_free(t->piece); xc_free(t->syms);
    xc_free(t);
}

// Slot of string s in the vocabulary map: either holding its id or the empty slot where it belongs.
static size_t vocab_slot(const Tokenizer *t, const char *s, size_t n) {
    size_t mask = t->vocab_cap - 1, i = (size_t)hash_bytes(s, n) & mask;
    for (;;) {
        int32_t id = t->vocab_slots[i];
        if (id < 0) return i;
        if (t->str_len[id] == n && memcmp(t->strings + t->str_off[id], s, n) == 0) return i;
        i = (i + 1) & mask;
    }
}

static int32_t vocab_find(const Tokenizer *t, const char *s, size_t n) {
    return t->vocab_slots[vocab_slot(t, s, n)];
}

// Reserve room for n_vocab ids (all filled by vocab_set before use).
static void vocab_init(Tokenizer *t, size_t n_vocab) {
    t->n_vocab = n_vocab;
    t->str_off = xc_calloc(n_vocab, sizeof *t->str_off);
    t->str_len = xc_calloc(n_vocab, sizeof *t->str_len);
    t->vocab_cap = pow2_at_least(2 * n_vocab);
    t->vocab_slots = xc_malloc(t->vocab_cap * sizeof *t->vocab_slots);
    for (size_t i = 0; i < t->vocab_cap; i++) t->vocab_slots[i] = -1;
}

// Give id the string s. A string seen before now maps to the new id, as Python's dict(zip(vocab, ids)) keeps
// the last one; returns the id it had (or -1).
static int32_t vocab_set(Tokenizer *t, int32_t id, const char *s, size_t n) {
    grow((void **)&t->strings, &t->strings_cap, t->strings_len + n + 1, 1);
    memcpy(t->strings + t->strings_len, s, n);
    t->strings[t->strings_len + n] = 0;
    t->str_off[id] = t->strings_len;
    t->str_len[id] = (uint32_t)n;
    t->strings_len += n + 1;
    size_t slot = vocab_slot(t, s, n);
    int32_t old = t->vocab_slots[slot];
    t->vocab_slots[slot] = id;
    return old;
}

static MergeSlot *merge_slot(const Tokenizer *t, uint64_t key) {
    size_t mask = t->merge_cap - 1, i = (size_t)hash_u64(key) & mask;
    while (t->merge_slots[i].key != UINT64_MAX && t->merge_slots[i].key != key) i = (i + 1) & mask;
    return &t->merge_slots[i];
}

static void merges_init(Tokenizer *t, size_t n_merges) {
    t->merge_cap = pow2_at_least(2 * n_merges + 1);
    t->merge_slots = xc_malloc(t->merge_cap * sizeof *t->merge_slots);
    for (size_t i = 0; i < t->merge_cap; i++) t->merge_slots[i].key = UINT64_MAX;
}

// Register merge number `rank` (a, b) -> ab. A repeated pair takes the later rank, as dict(zip(merges, ranks)).
static void merge_add(Tokenizer *t, int32_t a, int32_t b, int32_t ab, int32_t rank) {
    MergeSlot *m = merge_slot(t, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b);
    if (m->key == UINT64_MAX) t->n_merges++;
    m->key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    m->rank = rank;
    m->id = ab;
}

// One merge line "a b" (separated by spaces or tabs, '\r' ignored): sets the two parts. False if malformed.
static bool split_merge(char *line, size_t n, char **a, size_t *na, char **b, size_t *nb) {
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
    size_t i = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t s0 = i;
    while (i < n && line[i] != ' ' && line[i] != '\t') i++;
    size_t e0 = i;
    while (i < n && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t s1 = i;
    while (i < n && line[i] != ' ' && line[i] != '\t') i++;
    if (e0 == s0 || i == s1 || i != n) return false;
    *a = line + s0; *na = e0 - s0; *b = line + s1; *nb = i - s1;
    return *na + *nb <= TOK_MAX_TOKEN_BYTES;
}

// After the vocabulary and merges are in: byte symbols, special ids, cache. Fails if a symbol is missing.
static int tok_finish(Tokenizer *t, const char *path, XcError *err) {
    char buf[16];
    for (int b = 0; b < 256; b++) {
        size_t n = xc_utf8_encode(t->byte_cp[b], buf);
        t->byte_id[b] = vocab_find(t, buf, n);
        memcpy(buf + n, "</w>", 4);
        t->byte_id_w[b] = vocab_find(t, buf, n + 4);
        if (t->byte_id[b] < 0 || t->byte_id_w[b] < 0)
            return xc_err(err, "%s: the vocabulary lacks the symbol for byte 0x%02X (\"%.*s\" or with \"</w>\")",
                          path, b, (int)n, buf);
    }
    t->sot = vocab_find(t, TOK_SOT_STR, strlen(TOK_SOT_STR));
    t->eot = vocab_find(t, TOK_EOT_STR, strlen(TOK_EOT_STR));
    if (t->sot < 0 || t->eot < 0)
        return xc_err(err, "%s: the vocabulary lacks %s or %s", path, TOK_SOT_STR, TOK_EOT_STR);
    t->cache_slots = xc_calloc(TOK_CACHE_SLOTS, sizeof *t->cache_slots);
    t->cache_keys = xc_malloc(TOK_CACHE_KEY_BYTES);
    t->cache_ids = xc_malloc(TOK_CACHE_IDS * sizeof *t->cache_ids);
    return XC_OK;
}

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

Tokenizer *tokenizer_load_clip(const char *path, XcError *err) {
    size_t len = 0;
    char *text = gunzip_file(path, &len, err);
    if (!text) return NULL;
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
    vocab_init(t, n_vocab);
    merges_init(t, TOK_CLIP_MERGES);
    char buf[TOK_MAX_TOKEN_BYTES + 8];
    int32_t id = 0;
    for (int w = 0; w < 2; w++) // the 256 byte symbols in bytes_to_unicode order, then the same with "</w>"
        for (int k = 0; k < 256; k++) {
            size_t n = xc_utf8_encode(t->byte_cp[t->byte_order[k]], buf);
            if (w) { memcpy(buf + n, "</w>", 4); n += 4; }
            vocab_set(t, id++, buf, n);
        }
    char *pa, *pb;
    size_t na, nb;
    for (int i = 0; i < TOK_CLIP_MERGES; i++) {
        if (!split_merge(lines[i + 1], lens[i + 1], &pa, &na, &pb, &nb)) {
            xc_err(err, "%s: line %d is not a merge \"a b\"", path, i + 2);
            xc_free(text); xc_free(lines); xc_free(lens);
            tokenizer_free(t);
            return NULL;
        }
        memcpy(buf, pa, na);
        memcpy(buf + na, pb, nb);
        vocab_set(t, id++, buf, na + nb);
    }
    vocab_set(t, id++, TOK_SOT_STR, strlen(TOK_SOT_STR));
    vocab_set(t, id++, TOK_EOT_STR, strlen(TOK_EOT_STR));
    for (int i = 0; i < TOK_CLIP_MERGES; i++) {
        split_merge(lines[i + 1], lens[i + 1], &pa, &na, &pb, &nb);
        int32_t a = vocab_find(t, pa, na), b = vocab_find(t, pb, nb);
        memcpy(buf, pa, na);
        memcpy(buf + na, pb, nb);
        int32_t ab = vocab_find(t, buf, na + nb);
        // A part that is no vocabulary string can never occur in a word, so such a merge can never apply.
        if (a >= 0 && b >= 0) merge_add(t, a, b, ab, i);
    }
    xc_free(text); xc_free(lines); xc_free(lens);
    if (tok_finish(t, path, err) != XC_OK) { tokenizer_free(t); return NULL; }
    return t;
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
    vocab_init(t, n);
    for (size_t i = 0; i < n; i++)
        if (vocab_set(t, ids[i], root->keys[i], strlen(root->keys[i])) >= 0) { // json_parse refuses these already
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
    merges_init(t, n_lines);
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
        if (!split_merge(line, ln, &pa, &na, &pb, &nb)) {
            xc_err(err, "%s: line %zu is not a merge \"a b\"", merges_path, line_no);
            goto fail;
        }
        memcpy(buf, pa, na);
        memcpy(buf + na, pb, nb);
        int32_t a = vocab_find(t, pa, na), b = vocab_find(t, pb, nb), ab = vocab_find(t, buf, na + nb);
        if (a < 0 || b < 0 || ab < 0) {
            xc_err(err, "%s: line %zu: merge \"%.*s %.*s\" uses a symbol missing from %s", merges_path, line_no,
                   (int)na, pa, (int)nb, pb, vocab_path);
            goto fail;
        }
        merge_add(t, a, b, ab, rank++);
    }
    if (tok_finish(t, vocab_path, err) != XC_OK) goto fail;
    xc_free(merges);
    return t;
fail:
    xc_free(merges);
    tokenizer_free(t);
    return NULL;
}

size_t tokenizer_vocab_size(const Tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_sot(const Tokenizer *t) { return t->sot; }
int32_t tokenizer_eot(const Tokenizer *t) { return t->eot; }

// ---- cleaning: html.unescape, whitespace, lower case ------------------------------------------------------

// html.unescape maps numeric references 0x80..0x9F through Windows-1252 (HTML5 rules).
static const uint16_t tok_cp1252[32] = {
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
    0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
    0x0153, 0x9D, 0x017E, 0x0178};

// Python's str.isspace (used by strip) and regex's \s (used by CLIP's patterns) differ only on U+001C..U+001F,
// which isspace accepts and \s does not.
static bool is_regex_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
static bool is_py_space(uint32_t c) { return is_regex_space(c) || (c >= 0x1C && c <= 0x1F); }

static bool is_letter(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    return IN_TABLE(tok_letter_ranges, c);
}
static bool is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return IN_TABLE(tok_number_ranges, c);
}

// Result of a numeric reference &#NNN; / &#xHH; (num saturated at 0x110000): 0 or 1 code point in *out.
static size_t numeric_ref(uint32_t num, uint32_t *out) {
    if (num == 0) { *out = 0xFFFD; return 1; }
    if (num == 0x0D) { *out = 0x0D; return 1; }
    if (num >= 0x80 && num <= 0x9F) { *out = tok_cp1252[num - 0x80]; return 1; }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { *out = 0xFFFD; return 1; }
    bool invalid = (num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || num == 0x7F ||
                   (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE;
    if (invalid) return 0; // html.unescape drops these
    *out = num;
    return 1;
}

// Code point of the named reference s[0..n) (ASCII, may end in ';'), or -1.
static int64_t entity_find(const char *s, size_t n) {
    size_t lo = 0, hi = sizeof tok_entities / sizeof tok_entities[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *name = tok_entities[mid].name;
        size_t m = strlen(name);
        int c = memcmp(s, name, n < m ? n : m);
        if (c == 0) c = n < m ? -1 : n > m ? 1 : 0;
        if (c == 0) return tok_entities[mid].cp;
        if (c < 0) hi = mid; else lo = mid + 1;
    }
    return -1;
}

// One pass of Python's html.unescape over s[0..n), in place (the output is never longer); returns the new length.
// The reference grammar is &(#[0-9]+;? | #[xX][0-9a-fA-F]+;? | [^\t\n\f <&#;]{1,32};?).
static size_t html_unescape(uint32_t *s, size_t n) {
    size_t r = 0, w = 0;
    while (r < n) {
        if (s[r] != '&' || r + 1 >= n) { s[w++] = s[r++]; continue; }
        size_t k = r + 1;
        if (s[k] == '#') {
            k++;
            bool hex = k < n && (s[k] == 'x' || s[k] == 'X'); // "&#x" + hex digits, else "&#" + decimal digits
            size_t d0 = hex ? k + 1 : k, e = d0;
            uint32_t num = 0;
            for (; e < n; e++) {
                uint32_t c = s[e], d;
                if (c >= '0' && c <= '9') d = c - '0';
                else if (hex && (c | 32) >= 'a' && (c | 32) <= 'f') d = (c | 32) - 'a' + 10;
                else break;
                num = num >= 0x110000 ? 0x110000 : num * (hex ? 16 : 10) + d;
                if (num > 0x110000) num = 0x110000;
            }
            if (e == d0) { s[w++] = s[r++]; continue; } // "&#" + no digits: not a reference
            if (e < n && s[e] == ';') e++;
            uint32_t cp;
            if (numeric_ref(num, &cp)) s[w++] = cp;
            r = e;
            continue;
        }
        // named: up to 32 characters outside [\t\n\f <&#;], then an optional ';'
        size_t e = k;
        while (e < n && e - k < 32 && s[e] != '\t' && s[e] != '\n' && s[e] != '\f' && s[e] != ' ' && s[e] != '<' &&
               s[e] != '&' && s[e] != '#' && s[e] != ';')
            e++;
        if (e == k) { s[w++] = s[r++]; continue; }
        if (e < n && s[e] == ';') e++;
        size_t len = e - k, ascii = 0;
        char name[40];
        while (ascii < len && s[k + ascii] < 0x80) { name[ascii] = (char)s[k + ascii]; ascii++; }
        int64_t cp = ascii == len ? entity_find(name, len) : -1;
        size_t used = len;
        // else the longest prefix of at least 2 characters that is a name (only the legacy ones without ';' can be)
        for (size_t x = (len - 1 < ascii ? len - 1 : ascii); cp < 0 && x >= 2; x--) {
            cp = entity_find(name, x);
            used = x;
        }
        if (cp < 0) { while (r < e) s[w++] = s[r++]; continue; } // unknown: left as written
        s[w++] = (uint32_t)cp;
        for (size_t i = k + used; i < e; i++) s[w++] = s[i];
        r = e;
    }
    return w;
}

static size_t strip_py_space(uint32_t *s, size_t n) {
    size_t a = 0;
    while (a < n && is_py_space(s[a])) a++;
    while (n > a && is_py_space(s[n - 1])) n--;
    if (a) memmove(s, s + a, (n - a) * sizeof *s);
    return n - a;
}

static size_t collapse_space(uint32_t *s, size_t n) { // regex.sub(r'\s+', ' ', s)
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        if (is_regex_space(s[r])) {
            while (r < n && is_regex_space(s[r])) r++;
            s[w++] = ' ';
        } else {
            s[w++] = s[r++];
        }
    }
    return w;
}

static uint32_t lower_cp(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    size_t lo = 0, hi = sizeof tok_lower_runs / sizeof tok_lower_runs[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const int32_t *r = tok_lower_runs[mid];
        if (c < (uint32_t)r[0]) hi = mid;
        else if (c > (uint32_t)r[1]) lo = mid + 1;
        else return (c - (uint32_t)r[0]) % (uint32_t)r[3] == 0 ? (uint32_t)((int32_t)c + r[2]) : c;
    }
    return c;
}

// Python lowers capital sigma to final sigma when a cased letter precedes it and none follows it, skipping
// case-ignorable characters (apostrophes, combining marks, ...) on both sides.
static bool final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && IN_TABLE(tok_case_ignorable_ranges, s[j - 1])) j--;
    if (j == 0 || !IN_TABLE(tok_cased_ranges, s[j - 1])) return false;
    j = i + 1;
    while (j < n && IN_TABLE(tok_case_ignorable_ranges, s[j])) j++;
    return j == n || !IN_TABLE(tok_cased_ranges, s[j]);
}

// UTF-8 text -> cleaned, lower-cased code points in t->low; returns their count.
static size_t clean_text(Tokenizer *t, const char *text) {
    size_t nb = strlen(text);
    grow((void **)&t->cps, &t->cps_cap, nb + 1, sizeof *t->cps);
    size_t n = 0;
    for (size_t i = 0; i < nb; n++) { // an invalid byte reads as U+FFFD, consumed alone
        size_t used = xc_utf8_decode((const unsigned char *)text + i, nb - i, &t->cps[n]);
        i += used ? used : 1;
    }
    n = html_unescape(t->cps, n);
    n = html_unescape(t->cps, n);
    n = strip_py_space(t->cps, n);
    n = collapse_space(t->cps, n);
    n = strip_py_space(t->cps, n);
    grow((void **)&t->low, &t->low_cap, 2 * n + 1, sizeof *t->low);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = t->cps[i];
        if (c == 0x130) { t->low[m++] = 'i'; t->low[m++] = 0x307; } // the one lower case of two code points
        else if (c == 0x3A3) t->low[m++] = final_sigma(t->cps, n, i) ? 0x3C2 : 0x3C3;
        else t->low[m++] = lower_cp(c);
    }
    return m;
}

// ---- pre-tokenisation and BPE ------------------------------------------------------------------------------

// Case folding for CLIP's IGNORECASE literals (the text is lower case already; U+017F LONG S also matches 's').
static uint32_t fold(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c == 0x17F) return 's';
    if (c == 0x212A) return 'k';
    return c;
}

static size_t match_literal(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t m = strlen(lit);
    if (n - i < m) return 0;
    for (size_t k = 0; k < m; k++)
        if (fold(s[i + k]) != (uint32_t)(unsigned char)lit[k]) return 0;
    return m;
}

// [^\s\p{L}\p{N}]: U+0345 (combining ypogegrammeni) is in no class: under IGNORECASE its case variant iota makes
// it fail the negated class, while [\p{L}] rejects it; CLIP's findall skips it like a space.
static bool is_other(uint32_t c) { return !is_regex_space(c) && !is_letter(c) && !is_number(c) && c != 0x345; }

static inline void emit(int32_t id, int32_t *ids, size_t cap, size_t *count) {
    if (*count < cap) ids[*count] = id;
    (*count)++;
}

static const CacheSlot *cache_find(const Tokenizer *t, uint64_t h, const char *p, size_t nb) {
    size_t mask = TOK_CACHE_SLOTS - 1;
    for (size_t i = (size_t)h & mask; t->cache_slots[i].hash; i = (i + 1) & mask) {
        const CacheSlot *c = &t->cache_slots[i];
        if (c->hash == h && c->key_len == nb && memcmp(t->cache_keys + c->key_off, p, nb) == 0) return c;
    }
    return NULL;
}

static void cache_put(Tokenizer *t, uint64_t h, const char *p, size_t nb, const int32_t *syms, size_t m) {
    if (t->cache_count + 1 > TOK_CACHE_SLOTS / 2 || t->cache_keys_len + nb > TOK_CACHE_KEY_BYTES ||
        t->cache_ids_len + m > TOK_CACHE_IDS) { // full: start again (bounded memory, simple and rare)
        memset(t->cache_slots, 0, TOK_CACHE_SLOTS * sizeof *t->cache_slots);
        t->cache_count = t->cache_keys_len = t->cache_ids_len = 0;
    }
    size_t mask = TOK_CACHE_SLOTS - 1, i = (size_t)h & mask;
    while (t->cache_slots[i].hash) i = (i + 1) & mask;
    CacheSlot *c = &t->cache_slots[i];
    c->hash = h;
    c->key_off = (uint32_t)t->cache_keys_len;
    c->key_len = (uint32_t)nb;
    c->ids_off = (uint32_t)t->cache_ids_len;
    c->ids_len = (uint32_t)m;
    memcpy(t->cache_keys + t->cache_keys_len, p, nb);
    memcpy(t->cache_ids + t->cache_ids_len, syms, m * sizeof *syms);
    t->cache_keys_len += nb;
    t->cache_ids_len += m;
    t->cache_count++;
}

// BPE of one pre-token given as UTF-8 bytes p[0..nb), nb >= 1: start from one symbol per byte (the last one
// carrying "</w>") and repeatedly merge every occurrence, left to right, of the adjacent pair with the lowest rank.
static void bpe_piece(Tokenizer *t, const char *p, size_t nb, int32_t *ids, size_t cap, size_t *count) {
    bool cacheable = nb <= TOK_CACHE_MAX_PIECE;
    uint64_t h = cacheable ? hash_bytes(p, nb) : 0;
    if (cacheable) {
        const CacheSlot *c = cache_find(t, h, p, nb);
        if (c) {
            t->cache_hits++;
            for (uint32_t k = 0; k < c->ids_len; k++) emit(t->cache_ids[c->ids_off + k], ids, cap, count);
            return;
        }
    }
    t->cache_misses++;
    grow((void **)&t->syms, &t->syms_cap, nb, sizeof *t->syms);
    int32_t *s = t->syms;
    for (size_t i = 0; i < nb; i++) {
        unsigned char b = (unsigned char)p[i];
        s[i] = i + 1 < nb ? t->byte_id[b] : t->byte_id_w[b];
    }
    size_t m = nb;
    while (m > 1) {
        int32_t best_rank = INT32_MAX, a = -1, b = -1, ab = -1;
        for (size_t i = 0; i + 1 < m; i++) {
            const MergeSlot *ms = merge_slot(t, ((uint64_t)(uint32_t)s[i] << 32) | (uint32_t)s[i + 1]);
            if (ms->key != UINT64_MAX && ms->rank < best_rank) {
                best_rank = ms->rank; a = s[i]; b = s[i + 1]; ab = ms->id;
            }
        }
        if (a < 0) break;
        size_t w = 0;
        for (size_t i = 0; i < m;) {
            if (i + 1 < m && s[i] == a && s[i + 1] == b) { s[w++] = ab; i += 2; }
            else s[w++] = s[i++];
        }
        m = w;
    }
    for (size_t k = 0; k < m; k++) emit(s[k], ids, cap, count);
    if (cacheable) cache_put(t, h, p, nb, s, m);
}

size_t tokenizer_encode_ids(Tokenizer *t, const char *text, int32_t *ids, size_t cap) {
    XC_CHECK(t && text && (ids || cap == 0), "tokenizer_encode_ids: NULL argument");
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t n = clean_text(t, text), count = 0;
    const uint32_t *s = t->low;
    for (size_t i = 0; i < n;) {
        uint32_t c = s[i];
        size_t e = i;
        if (c == '<') {
            // The pattern matches these case-insensitively ("<|ſtartoftext|>" too: U+017F folds to 's'), but
            // only the exact string is special (CLIP finds it in its BPE cache); any other spelling is plain BPE.
            size_t m = match_literal(s, n, i, TOK_SOT_STR), m2 = m ? 0 : match_literal(s, n, i, TOK_EOT_STR);
            int32_t special = m ? t->sot : t->eot;
            const char *lit = m ? TOK_SOT_STR : TOK_EOT_STR;
            m = m ? m : m2;
            bool exact = m > 0;
            for (size_t k = 0; k < m; k++) exact = exact && s[i + k] == (uint32_t)lit[k];
            if (exact) { emit(special, ids, cap, &count); i += m; continue; }
            e = i + m;
        }
        if (c == '\'' && e == i)
            for (size_t k = 0; k < sizeof contractions / sizeof contractions[0] && e == i; k++)
                e = i + match_literal(s, n, i, contractions[k]);
        if (e == i) {
            if (is_letter(c)) { e = i + 1; while (e < n && is_letter(s[e])) e++; }
            else if (is_number(c)) e = i + 1;
            else if (is_other(c)) { e = i + 1; while (e < n && is_other(s[e])) e++; }
            else { i++; continue; } // \s (or U+0345): not part of any piece
        }
        grow((void **)&t->piece, &t->piece_cap, 4 * (e - i) + 1, 1);
        size_t nb = 0;
        for (size_t k = i; k < e; k++) nb += xc_utf8_encode(s[k], t->piece + nb);
        bpe_piece(t, t->piece, nb, ids, cap, &count);
        i = e;
    }
    return count;
}

int tokenizer_encode(Tokenizer *t, const char *text, int32_t *out, int context) {
    XC_CHECK(context >= 2, "tokenizer_encode: context %d < 2 leaves no room for SOT and EOT", context);
    size_t cap = (size_t)context - 2;
    out[0] = t->sot;
    size_t n = tokenizer_encode_ids(t, text, out + 1, cap);
    size_t kept = n < cap ? n : cap; // too long: keep SOT + the first context-2 ids, EOT last (CLIP's truncate)
    out[1 + kept] = t->eot;
    for (size_t i = 2 + kept; i < (size_t)context; i++) out[i] = 0;
    return (int)(1 + kept);
}

size_t tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    size_t need = 1;
    for (size_t i = 0; i < n; i++)
        need += ids[i] >= 0 && (size_t)ids[i] < t->n_vocab ? t->str_len[ids[i]] : 24;
    char *raw = xc_malloc(need);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->n_vocab) {
            len += (size_t)snprintf(raw + len, need - len, "<?%d>", ids[i]);
            continue;
        }
        const unsigned char *s = (const unsigned char *)t->strings + t->str_off[ids[i]];
        size_t sl = t->str_len[ids[i]];
        for (size_t k = 0; k < sl;) { // each char of a token string stands for one byte
            uint32_t cp;
            size_t used = xc_utf8_decode(s + k, sl - k, &cp);
            if (!used) used = 1; // not UTF-8: the byte as it is (cp = U+FFFD maps to no byte)
            if (cp < 324 && t->cp_byte[cp] >= 0) raw[len++] = (char)t->cp_byte[cp];
            else { memcpy(raw + len, s + k, used); len += used; }
            k += used;
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < len;) {
        char c = raw[i];
        if (len - i >= 4 && memcmp(raw + i, "</w>", 4) == 0) { c = ' '; i += 4; } else i++;
        if (cap && total < cap - 1) out[total] = c;
        total++;
    }
    if (cap) out[total < cap - 1 ? total : cap - 1] = 0;
    xc_free(raw);
    return total;
}

void tokenizer_cache_stats(const Tokenizer *t, uint64_t *hits, uint64_t *misses) {
    if (hits) *hits = t->cache_hits;
    if (misses) *misses = t->cache_misses;
}
