// tokenizer_internal.h - what the tokenizer's files share (not a public API; see tokenizer.h for the
// pipeline and its documented limits).
//
// Text flows through code point arrays held in the tokenizer's scratch buffers (grown on demand, reused):
//   UTF-8 text -> cps[] (decode) -> html_unescape x2 (in place) -> strip / collapse whitespace / strip (in place)
//   -> lower case into low[] -> pre-tokenise into pieces -> each piece as UTF-8 bytes -> BPE -> ids.
// The BPE result of each piece is cached (keyed by the piece's UTF-8 bytes) in fixed-size pools allocated at
// load time (about 0.9 MB); when a pool fills up the whole cache is dropped and refilled, so memory stays bounded.
//
// Files: tokenizer_vocab.c (the Tokenizer, its vocabulary and merge hash tables), tokenizer_load.c (CLIP's
// gzip file, Hugging Face vocab.json + merges.txt), tokenizer_clean.c (html.unescape, whitespace, lower
// case), tokenizer_encode.c (pre-tokenisation, BPE and its cache), tokenizer_decode.c (ids -> text).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "data/tokenizer.h"

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
    // BPE cache (bounded; see the comment at the top)
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

// ---- tokenizer_vocab.c ------------------------------------------------------------------------------
uint64_t tok_hash_bytes(const char *s, size_t n); // FNV-1a, never 0
// Grow *p (elements of elem bytes, capacity *cap) to hold at least need, doubling.
void tok_grow(void **p, size_t *cap, size_t need, size_t elem);
Tokenizer *tok_new(void);   // empty, with the bytes_to_unicode tables
// Reserve room for n_vocab ids (all filled by tok_vocab_set before use).
void tok_vocab_init(Tokenizer *t, size_t n_vocab);
// Give id the string s. A string seen before now maps to the new id, as Python's dict(zip(vocab, ids)) keeps
// the last one; returns the id it had (or -1).
int32_t tok_vocab_set(Tokenizer *t, int32_t id, const char *s, size_t n);
int32_t tok_vocab_find(const Tokenizer *t, const char *s, size_t n); // id of string s[0..n), or -1
void tok_merges_init(Tokenizer *t, size_t n_merges);
// Register merge number `rank` (a, b) -> ab. A repeated pair takes the later rank, as dict(zip(merges, ranks)).
void tok_merge_add(Tokenizer *t, int32_t a, int32_t b, int32_t ab, int32_t rank);
// One merge line "a b" (separated by spaces or tabs, '\r' ignored): sets the two parts. False if malformed.
bool tok_split_merge(char *line, size_t n, char **a, size_t *na, char **b, size_t *nb);
// After the vocabulary and merges are in: byte symbols, special ids, cache. Fails if a symbol is missing.
int tok_finish(Tokenizer *t, const char *path, XcError *err);

static inline uint64_t tok_hash_u64(uint64_t x) { // splitmix64 finaliser
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
// The slot of pair key = (a << 32) | b in the merge table: holding its merge, or the empty slot (key
// UINT64_MAX) where it belongs. Inline: BPE looks up every adjacent pair.
static inline MergeSlot *tok_merge_slot(const Tokenizer *t, uint64_t key) {
    size_t mask = t->merge_cap - 1, i = (size_t)tok_hash_u64(key) & mask;
    while (t->merge_slots[i].key != UINT64_MAX && t->merge_slots[i].key != key) i = (i + 1) & mask;
    return &t->merge_slots[i];
}

// ---- tokenizer_clean.c --------------------------------------------------------------------------------
// UTF-8 text -> cleaned, lower-cased code points in t->low; returns their count.
size_t tok_clean_text(Tokenizer *t, const char *text);

// ---- character classes (tokenizer_clean.c and tokenizer_encode.c) ---------------------------------------
// Python's str.isspace (used by strip) and regex's \s (used by CLIP's patterns) differ only on U+001C..U+001F,
// which isspace accepts and \s does not.
static inline bool tok_is_regex_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// c in one of n sorted inclusive ranges (tokenizer_tables.h)?
static inline bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
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
