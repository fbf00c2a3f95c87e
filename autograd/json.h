// json.h - a small strict JSON parser (RFC 8259) for untrusted input: safetensors headers, the tokenizer's
// vocab.json. A document becomes a tree of JsonValue (about 60 bytes per value, so "[0,0,0,...]" costs some 30
// times its text); json_parse_members reads a top-level object one member at a time instead, with a limit on the
// values of each, so what it costs follows the largest member allowed, not the document.
//
// Strict means: one value, optional surrounding whitespace, no comments, no trailing commas, no
// leading zeros, no control characters or invalid UTF-8 in strings, paired \u surrogates, no duplicate
// keys in an object, nesting at most JSON_MAX_DEPTH. Integers without fraction or exponent that fit an
// int64_t are kept exactly (is_int); every other number is a double.
//
//   JsonValue root;
//   if (json_parse(&root, text, len, "model.safetensors: header", &err) != XC_OK) return XC_ERR;
//   const JsonValue *v = json_get(&root, "__metadata__");   // NULL if absent or root not an object
//   for (int64_t i = 0; i < root.n; i++) printf("%s\n", root.keys[i]);
//   json_free(&root);
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "autograd/util.h"

#define JSON_MAX_DEPTH 64

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } JsonType;

typedef struct JsonValue {
    JsonType type;
    bool b;                  // JSON_BOOL
    bool is_int;             // JSON_NUMBER: an integer literal that fits int64 (then i is exact)
    int64_t i;               // JSON_NUMBER when is_int
    double d;                // JSON_NUMBER (always set)
    char *s;                 // JSON_STRING: NUL-terminated UTF-8 (a \u0000 escape is refused)
    int64_t n;               // JSON_ARRAY / JSON_OBJECT: number of items / members
    struct JsonValue *items; // n items (array) or member values (object), in file order
    char **keys;             // JSON_OBJECT: n member names
} JsonValue;

// Parse text[0..len) into *out. On failure out is left empty and err says "<where>: <problem> at byte K".
int json_parse(JsonValue *out, const char *text, size_t len, const char *where, XcError *err);
// A top-level object member by member: each member's value is parsed (within lim), handed to fn with its name,
// and freed before the next member is read. fn returns XC_OK to go on, or XC_ERR with err filled to stop
// (json_parse_members then returns XC_ERR). Duplicate member names are not detected here: the caller keeps the
// names it needs. A document that is not an object is refused ("<where>: a JSON value that is an array, not an
// object").
//   static int on_member(void *ctx, const char *key, const JsonValue *v, XcError *err) { ...; return XC_OK; }
//   json_parse_members(text, len, "model.safetensors: header", (JsonLimits){4096, 1 << 20}, on_member, &state, &err);
typedef struct JsonLimits {
    int64_t max_values; // JSON values in one member's value, counting every string, number, array, object... inside
    size_t max_bytes;   // bytes of text one member's name or value may span (checked before each string is copied)
} JsonLimits;           // 0: no limit
typedef int (*JsonMemberFn)(void *ctx, const char *key, const JsonValue *value, XcError *err);
int json_parse_members(const char *text, size_t len, const char *where, JsonLimits lim, JsonMemberFn fn, void *ctx,
                       XcError *err);
void json_free(JsonValue *v);
// Member of an object by name, or NULL.
const JsonValue *json_get(const JsonValue *obj, const char *key);
const char *json_type_name(JsonType t);
