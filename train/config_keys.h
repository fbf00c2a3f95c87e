// config_keys.h - the key table of the run configuration, shared by the files of train/config (not a public API).
#pragma once
#include <stddef.h>

typedef enum { K_INT, K_I64, K_F64, K_BOOL, K_STR, K_PATH, K_ENUM } KeyKind;

typedef struct Key {
    const char *section, *key;
    KeyKind kind;
    size_t offset, size;  // field offset; buffer size for strings
    double lo, hi;        // numeric range (inclusive)
    const char *choices;  // K_ENUM: "a|b|c", stored as the index of the choice in an int-sized enum field
    const char *def;      // default, parsed like a value
    const char *doc;
} Key;

extern const Key CONFIG_KEYS[];  // every key, in section order
extern const int CONFIG_NKEYS;
// The name of choice `index` of "a|b|c" into buf.
const char *config_choice_name(const char *choices, int index, char *buf, size_t n);
