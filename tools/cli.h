// cli.h - small helpers shared by the command-line programs in tools/: option values that say what is wrong
// with them, and JSON strings for machine-readable output.
//
//   // xclip-train CONFIG --set data.frames 16   (a space where the '=' goes)
//   if (!cli_check_set("xclip-train", argv[i + 1], i + 2 < argc ? argv[i + 2] : NULL, i + 3 < argc ? argv[i + 3] : NULL))
//       return 2;
//   // -> xclip-train: --set needs section.key=value; got 'data.frames' (did you mean --set data.frames=16?)
//
//   cli_json_string(stdout, "say \"hi\"\n");   // -> "say \"hi\"\n" with the escapes JSON requires
#pragma once
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

// The word after --set must be section.key=value. next and next2 are the words after it (NULL at the end):
// when the value was written after a space (`--set data.frames 16`, `--set data.frames = 16`), the message
// shows the whole override as it should have been typed.
static inline bool cli_check_set(const char *prog, const char *v, const char *next, const char *next2) {
    if (strchr(v, '=')) return true; // the rest (section, key, value) is config_set's to judge
    if (next && next[0] == '=') next = next[1] ? next + 1 : next2;
    if (next && next[0] != '-')
        fprintf(stderr, "%s: --set needs section.key=value; got '%s' (did you mean --set %s=%s?)\n", prog, v, v, next);
    else
        fprintf(stderr, "%s: --set needs section.key=value; got '%s' (e.g. --set %s=VALUE)\n", prog, v,
                strchr(v, '.') ? v : "train.lr");
    return false;
}

// "--flag=VALUE" or "--flag": the flag into flag (n bytes), *value = what follows '=' (NULL without one).
static inline void cli_split_flag(const char *arg, char *flag, size_t n, const char **value) {
    const char *eq = strchr(arg, '=');
    *value = NULL;
    if (eq && (size_t)(eq - arg) < n) {
        snprintf(flag, n, "%.*s", (int)(eq - arg), arg);
        *value = eq + 1;
    } else snprintf(flag, n, "%s", arg);
}

// A second positional argument where a program takes one: say which came first and that options take their
// values after a space, except --set's key=value.
static inline void cli_extra_argument(const char *prog, const char *first, const char *what, const char *extra) {
    fprintf(stderr,
            "%s: unexpected argument '%s': %s is '%s' already (one per run)\n"
            "HINT: options take their value as the next word (--checkpoint CKPT), --set as one word section.key=value\n",
            prog, extra, what, first);
}

// s as a JSON string literal (quotes, backslash and control characters escaped; UTF-8 passed through).
static inline void cli_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}
