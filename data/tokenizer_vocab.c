// tokenizer_vocab.c - the Tokenizer object: bytes_to_unicode, the vocabulary (token string <-> id) and merge
// (pair -> rank, merged id) hash tables the loaders fill, the byte symbols and special ids, freeing, accessors.
#include "data/tokenizer_internal.h"

#include <string.h>

#include "autograd/utf8.h"

uint64_t tok_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h ? h : 1;
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

void tok_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    *p = xc_realloc(*p, c * elem);
    *cap = c;
}

Tokenizer *tok_new(void) {
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
    size_t mask = t->vocab_cap - 1, i = (size_t)tok_hash_bytes(s, n) & mask;
    for (;;) {
        int32_t id = t->vocab_slots[i];
        if (id < 0) return i;
        if (t->str_len[id] == n && memcmp(t->strings + t->str_off[id], s, n) == 0) return i;
        i = (i + 1) & mask;
    }
}

int32_t tok_vocab_find(const Tokenizer *t, const char *s, size_t n) {
    return t->vocab_slots[vocab_slot(t, s, n)];
}

// Reserve room for n_vocab ids (all filled by tok_vocab_set before use).
void tok_vocab_init(Tokenizer *t, size_t n_vocab) {
    t->n_vocab = n_vocab;
    t->str_off = xc_calloc(n_vocab, sizeof *t->str_off);
    t->str_len = xc_calloc(n_vocab, sizeof *t->str_len);
    t->vocab_cap = pow2_at_least(2 * n_vocab);
    t->vocab_slots = xc_malloc(t->vocab_cap * sizeof *t->vocab_slots);
    for (size_t i = 0; i < t->vocab_cap; i++) t->vocab_slots[i] = -1;
}

// Give id the string s. A string seen before now maps to the new id, as Python's dict(zip(vocab, ids)) keeps
// the last one; returns the id it had (or -1).
int32_t tok_vocab_set(Tokenizer *t, int32_t id, const char *s, size_t n) {
    tok_grow((void **)&t->strings, &t->strings_cap, t->strings_len + n + 1, 1);
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

void tok_merges_init(Tokenizer *t, size_t n_merges) {
    t->merge_cap = pow2_at_least(2 * n_merges + 1);
    t->merge_slots = xc_malloc(t->merge_cap * sizeof *t->merge_slots);
    for (size_t i = 0; i < t->merge_cap; i++) t->merge_slots[i].key = UINT64_MAX;
}

// Register merge number `rank` (a, b) -> ab. A repeated pair takes the later rank, as dict(zip(merges, ranks)).
void tok_merge_add(Tokenizer *t, int32_t a, int32_t b, int32_t ab, int32_t rank) {
    MergeSlot *m = tok_merge_slot(t, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b);
    if (m->key == UINT64_MAX) t->n_merges++;
    m->key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    m->rank = rank;
    m->id = ab;
}

// One merge line "a b" (separated by spaces or tabs, '\r' ignored): sets the two parts. False if malformed.
bool tok_split_merge(char *line, size_t n, char **a, size_t *na, char **b, size_t *nb) {
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
int tok_finish(Tokenizer *t, const char *path, XcError *err) {
    char buf[16];
    for (int b = 0; b < 256; b++) {
        size_t n = xc_utf8_encode(t->byte_cp[b], buf);
        t->byte_id[b] = tok_vocab_find(t, buf, n);
        memcpy(buf + n, "</w>", 4);
        t->byte_id_w[b] = tok_vocab_find(t, buf, n + 4);
        if (t->byte_id[b] < 0 || t->byte_id_w[b] < 0)
            return xc_err(err, "%s: the vocabulary lacks the symbol for byte 0x%02X (\"%.*s\" or with \"</w>\")",
                          path, b, (int)n, buf);
    }
    t->sot = tok_vocab_find(t, TOK_SOT_STR, strlen(TOK_SOT_STR));
    t->eot = tok_vocab_find(t, TOK_EOT_STR, strlen(TOK_EOT_STR));
    if (t->sot < 0 || t->eot < 0)
        return xc_err(err, "%s: the vocabulary lacks %s or %s", path, TOK_SOT_STR, TOK_EOT_STR);
    t->cache_slots = xc_calloc(TOK_CACHE_SLOTS, sizeof *t->cache_slots);
    t->cache_keys = xc_malloc(TOK_CACHE_KEY_BYTES);
    t->cache_ids = xc_malloc(TOK_CACHE_IDS * sizeof *t->cache_ids);
    return XC_OK;
}

size_t tokenizer_vocab_size(const Tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_sot(const Tokenizer *t) { return t->sot; }
int32_t tokenizer_eot(const Tokenizer *t) { return t->eot; }
