// tokenizer.h - CLIP's byte-level BPE tokenizer (openai/CLIP clip/simple_tokenizer.py) in C.
//
// Text -> [SOT, BPE ids..., EOT, 0, 0, ...] exactly as CLIP's tokenize() builds the [K,S] token matrix the text
// encoder reads (docs/model.md §2). The steps, each as CLIP does them:
//   1. clean: html.unescape twice, strip, collapse runs of whitespace to one ' ', strip, str.lower();
//   2. pre-tokenise with CLIP's pattern
//        <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+   (IGNORECASE)
//      so "don't stop" -> "don" "'t" "stop", "abc123" -> "abc" "1" "2" "3";
//   3. map each UTF-8 byte of a piece to a printable unicode char (bytes_to_unicode), mark the last char with
//      "</w>", then apply BPE merges by rank until none applies; each resulting symbol is one vocabulary id.
//
//   XcError err = {0};
//   Tokenizer *tok = tokenizer_load_clip("../shared/clip/bpe_simple_vocab_16e6.txt.gz", &err);
//   if (!tok) { fprintf(stderr, "%s\n", err.msg); return 1; }
//   int32_t tokens[77];                                    // (S,) S = context length
//   int eot = tokenizer_encode(tok, "arm wrestling", tokens, 77);
//   // tokens = {49406, 4793, 5904, 49407, 0, ...}, eot = 3 (the text encoder reads row eot)
//   char text[256];
//   tokenizer_decode(tok, tokens + 1, (size_t)eot - 1, text, sizeof text);   // "arm wrestling "
//   tokenizer_free(tok);
//
// Hugging Face layout (openai/clip-vit-*: vocab.json + merges.txt) loads with tokenizer_load_hf and encodes the
// same way, using the ids of vocab.json and the merge order of merges.txt.
//
// Not reproduced (documented limits):
//   - ftfy.fix_text (CLIP runs it first): no mojibake repair, no NFC normalisation, no uncurling of quotes, no
//     ligature or full-width folding. Plain ASCII and NFC-composed text (almost all label names) are unaffected.
//   - html.unescape knows the HTML 4 entity names, the legacy names accepted without ';' and &apos; (365 of the
//     2231 HTML5 names, see tokenizer_tables.h); every numeric reference (&#NNN; &#xHH;, with or without ';',
//     including HTML5's remapping of invalid numbers) is handled. An unknown name stays as written.
//   - Letters, numbers, lower case (incl. U+0130 -> "i\u0307" and Greek final sigma) use full Unicode tables
//     generated from Python 3.11's str.lower and the regex module (scripts/gen_tokenizer_tables.py, Unicode 14
//     for lower case); text in scripts Unicode added later may classify differently from a newer Python.
//   - Text is NUL-terminated UTF-8, so it cannot contain U+0000; invalid UTF-8 bytes are read as U+FFFD each
//     (Python could not hold them in a str at all).
// Threads: encoding updates the BPE cache, so a Tokenizer must not be used by two threads at once.
// Code: tokenizer_vocab.c (the object and its hash tables), tokenizer_load.c (both loaders), tokenizer_clean.c
// (step 1), tokenizer_encode.c (steps 2-3 and the BPE cache), tokenizer_decode.c; tokenizer_internal.h.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "autograd/util.h"

typedef struct Tokenizer Tokenizer; // opaque; owns its vocabulary, merges and cache

// CLIP's own file: gzip text, a header line then one merge "a b" per line. Like CLIP, uses merge lines
// 1..48894 and builds the vocabulary 256 byte chars, the same + "</w>", the 48894 merges, <|startoftext|>,
// <|endoftext|> (49408 ids; SOT = 49406, EOT = 49407). NULL + err naming the path on failure.
Tokenizer *tokenizer_load_clip(const char *bpe_gz_path, XcError *err);

// Hugging Face layout: vocab.json (a JSON object string -> id) and merges.txt (optional "#version" line, then one
// merge per line, in rank order). The vocabulary must hold the 512 byte symbols, every merge's parts and result,
// <|startoftext|> and <|endoftext|>; ids must be 0..n-1 without gaps or repeats. NULL + err on failure.
Tokenizer *tokenizer_load_hf(const char *vocab_json_path, const char *merges_txt_path, XcError *err);

// Any of the above, told by content: a gzip file = CLIP's (tokenizer_load_clip); CLIP's merges uncompressed; a
// JSON vocabulary with merges.txt beside it, a merges.txt with vocab.json beside it, or a folder holding both
// (Hugging Face). NULL + err naming the path and what was missing.
Tokenizer *tokenizer_load(const char *path, XcError *err);

void tokenizer_free(Tokenizer *tok);

size_t tokenizer_vocab_size(const Tokenizer *tok);
int32_t tokenizer_sot(const Tokenizer *tok); // id of <|startoftext|>
int32_t tokenizer_eot(const Tokenizer *tok); // id of <|endoftext|>

// Encode one text into out[0..context-1] (context >= 2; CLIP uses 77): SOT, the BPE ids, EOT, then zeros.
// Returns the position of EOT (the row the text encoder pools). A text too long for the context is truncated as
// openai/CLIP's tokenize(truncate=True) does: out keeps SOT and the first context-2 ids and out[context-1] = EOT.
// (X-CLIP's own clip.tokenize has no truncate option and raises instead; use tokenizer_encode_ids to detect it.)
int tokenizer_encode(Tokenizer *tok, const char *text, int32_t *out, int context);

// The BPE ids of a text without SOT/EOT, like SimpleTokenizer.encode. Writes at most cap ids to ids (may be NULL
// when cap is 0) and returns the total count, so a return > cap means the output was cut short.
size_t tokenizer_encode_ids(Tokenizer *tok, const char *text, int32_t *ids, size_t cap);

// ids -> text like SimpleTokenizer.decode: token strings joined, mapped back to bytes, "</w>" -> " ".
// Writes at most cap-1 bytes plus a NUL (cap > 0) and returns the full length (like snprintf). Ids outside the
// vocabulary are written as "<?id>". Byte sequences that are not valid UTF-8 are passed through as they are.
size_t tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n, char *out, size_t cap);

// BPE cache statistics (for tests and tuning): lookups answered from the cache / computed.
void tokenizer_cache_stats(const Tokenizer *tok, uint64_t *hits, uint64_t *misses);
