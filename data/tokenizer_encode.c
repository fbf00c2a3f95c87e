// tokenizer_encode.c - text -> ids: CLIP's pre-tokenisation pattern over the cleaned code points, then
// byte-level BPE of each piece, with the bounded cache of BPE results (see tokenizer_internal.h).
#include "data/tokenizer_internal.h"

#include <string.h>

#include "autograd/utf8.h"
#include "data/tokenizer_tables.h"

static bool is_letter(uint32_t c) {
    if (c < 0x80) return (c | 32) >= 'a' && (c | 32) <= 'z';
    return IN_TABLE(tok_letter_ranges, c);
}
static bool is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return IN_TABLE(tok_number_ranges, c);
}

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
static bool is_other(uint32_t c) { return !tok_is_regex_space(c) && !is_letter(c) && !is_number(c) && c != 0x345; }

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
    uint64_t h = cacheable ? tok_hash_bytes(p, nb) : 0;
    if (cacheable) {
        const CacheSlot *c = cache_find(t, h, p, nb);
        if (c) {
            t->cache_hits++;
            for (uint32_t k = 0; k < c->ids_len; k++) emit(t->cache_ids[c->ids_off + k], ids, cap, count);
            return;
        }
    }
    t->cache_misses++;
    tok_grow((void **)&t->syms, &t->syms_cap, nb, sizeof *t->syms);
    int32_t *s = t->syms;
    for (size_t i = 0; i < nb; i++) {
        unsigned char b = (unsigned char)p[i];
        s[i] = i + 1 < nb ? t->byte_id[b] : t->byte_id_w[b];
    }
    size_t m = nb;
    while (m > 1) {
        int32_t best_rank = INT32_MAX, a = -1, b = -1, ab = -1;
        for (size_t i = 0; i + 1 < m; i++) {
            const MergeSlot *ms = tok_merge_slot(t, ((uint64_t)(uint32_t)s[i] << 32) | (uint32_t)s[i + 1]);
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
    size_t n = tok_clean_text(t, text), count = 0;
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
        tok_grow((void **)&t->piece, &t->piece_cap, 4 * (e - i) + 1, 1);
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

void tokenizer_cache_stats(const Tokenizer *t, uint64_t *hits, uint64_t *misses) {
    if (hits) *hits = t->cache_hits;
    if (misses) *misses = t->cache_misses;
}
