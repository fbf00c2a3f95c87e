// text_cache.h - class-text features kept on disk between runs, so that a second xclip-infer with the same
// checkpoint and the same labels skips the text tower. One file per (text tower, token rows, kind); a file is
// only ever used for exactly the key it was written for, and anything else about it is a miss with a reason.
//
//   TextCacheKey key = {.kind = "xclip", .K = K, .M = M, .S = S, .E = E, .tokens = tokens};  // tokens (K*M, S)
//   text_cache_hash_weights(&ps, is_text_side, key.weights);   // the tensors the features depend on
//   key.build = text_cache_build_id();                         // this program's bytes, OpenBLAS, threads
//   char dir[4096], path[4200];
//   if (text_cache_dir(NULL, dir, sizeof dir) && text_cache_path(dir, &key, path, sizeof path) == XC_OK) {
//       float *f;
//       TextCacheStatus st = text_cache_read(path, &key, &f, &err);   // f (K, E) on TEXT_CACHE_HIT
//       if (st == TEXT_CACHE_UNUSABLE) fprintf(stderr, "note: %s\n", err.msg); // damaged, foreign, stale: a miss
//       ... on a miss: compute f, then text_cache_write(path, &key, f, &err) (temporary file + rename) ...
//   }
//
// The key (README.md, xclip-infer):
//   - weights: XXH64 (seeds 0 and 1, 128 bits) of the names, shapes and float32 values of the tensors the
//     features depend on, as loaded: the same weights give the same key whatever the file's name, format or
//     place, and a changed tensor a new key, which a file's size, mtime and inode cannot promise;
//   - tokens: the ids fed to the text tower (labels, templates, tokenizer, context length all end up there),
//     stored verbatim in the file and compared whole on reading, not only through a hash;
//   - kind, K, M (texts per class), S, E: what the features are (e.g. "xclip" unnormalised, "clip" normalised);
//   - build: XXH64 of the running program's own bytes, OpenBLAS's configuration and core, and the thread count:
//     a rebuilt program or another GEMM kernel could round differently, and a hit must give the same bits as a
//     miss. The file's name leaves the build out, so a rebuilt program replaces its entry instead of adding one.
// File (little-endian): a 128-byte header (magic "XCTXTFT1", version, header size, kind, K, M, S, E, weights,
// build, payload checksum, header checksum), then the tokens (K*M, S) int32 and the features (K, E) float32.
#pragma once
#include "autograd/tensor.h"

#define TEXT_CACHE_VERSION 1

typedef struct TextCacheKey {
    char kind[32];          // what the features are ("xclip": the model's cached text features; "clip": normalised)
    uint64_t weights[2];    // text_cache_hash_weights
    uint64_t build;         // text_cache_build_id
    int64_t K, M, S, E;     // classes, texts per class, context length, feature width
    const int32_t *tokens;  // (K*M, S) the token rows fed to the text tower
} TextCacheKey;

typedef enum { TEXT_CACHE_HIT, TEXT_CACHE_ABSENT, TEXT_CACHE_UNUSABLE } TextCacheStatus;

// XXH64 with seeds 0 and 1 of the name, shape and values of every tensor of ps that use(name) picks, in the
// store's order (the two seeds run on two threads).
void text_cache_hash_weights(const ParamStore *ps, bool (*use)(const char *name), uint64_t out[2]);
// This program's build and numeric environment (XXH64 of /proc/self/exe, OpenBLAS's configuration and core,
// the OpenMP thread count); 0 when the program cannot read itself (then no cache: nothing would tell builds apart).
uint64_t text_cache_build_id(void);
// The cache folder: given (if not NULL), else $XDG_CACHE_HOME/xclip (an absolute path only, as the XDG spec
// says), else $HOME/.cache/xclip. False when none can be named (no HOME) or it does not fit in n.
bool text_cache_dir(const char *given, char *out, size_t n);
// dir/<16 hex digits>.xtf, the digits a hash of everything in the key but the build. XC_ERR if it does not fit.
int text_cache_path(const char *dir, const TextCacheKey *key, char *out, size_t n);
// The features (K, E) for key from path, into a new array *features (xc_free) on TEXT_CACHE_HIT. No file:
// TEXT_CACHE_ABSENT. A file that cannot be used (unreadable, not a cache file, another version, damaged,
// truncated, written for another key or build): TEXT_CACHE_UNUSABLE and err names the file and the reason.
TextCacheStatus text_cache_read(const char *path, const TextCacheKey *key, float **features, XcError *err);
// Write features (K, E) for key to path atomically: the folder (and missing parents) created, a temporary file
// in it written and flushed to disk, then renamed over path. XC_ERR + err (the temporary removed) on failure.
int text_cache_write(const char *path, const TextCacheKey *key, const float *features, XcError *err);
