// config_write.c - see config.h: the effective config as INI text, diffs between two of them, the Markdown
// reference of every key.
#include "train/config.h"
#include "train/config_keys.h"
#include "autograd/kernels.h"
#include "autograd/runtime.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYS CONFIG_KEYS
#define NKEYS CONFIG_NKEYS

// ---- writing ------------------------------------------------------------------------------------------
static void value_str(const TrainConfig *c, const Key *k, char *buf, size_t n) {
    const void *f = (const char *)c + k->offset;
    switch (k->kind) {
    case K_INT: snprintf(buf, n, "%d", *(const int *)f); break;
    case K_I64: snprintf(buf, n, "%lld", (long long)*(const int64_t *)f); break;
    case K_F64: snprintf(buf, n, "%.17g", *(const double *)f); break;
    case K_BOOL: snprintf(buf, n, "%s", *(const bool *)f ? "true" : "false"); break;
    case K_ENUM: config_choice_name(k->choices, *(const int *)f, buf, n); break;
    case K_PATH: {
        char abs[PATH_MAX];
        const char *p = f;
        if (*p && strcasecmp(p, "none") && realpath(p, abs) && strlen(abs) < n) p = abs;
        size_t len = strlen(p) < n - 1 ? strlen(p) : n - 1;
        memcpy(buf, p, len);
        buf[len] = 0;
        break;
    }
    default: snprintf(buf, n, "%s", (const char *)f); break;
    }
    // quote values that would not survive the parser as written
    const char *v = buf;
    bool quote = *v && (v[0] == ' ' || v[strlen(v) - 1] == ' ' || strchr(v, '#') || strchr(v, ';') || v[0] == '"');
    if (quote) {
        char tmp[CONFIG_PATH_MAX + 8];
        snprintf(tmp, sizeof tmp, "\"%s\"", buf);
        snprintf(buf, n, "%s", tmp);
    }
}

void config_write(const TrainConfig *c, FILE *f) {
    fprintf(f, "# effective configuration (xclip.c)%s%s\n", *c->source ? " from " : "", c->source);
    const char *section = "";
    for (int i = 0; i < NKEYS; i++) {
        const Key *k = &KEYS[i];
        if (strcmp(section, k->section)) {
            fprintf(f, "%s[%s]\n", i ? "\n" : "", k->section);
            section = k->section;
        }
        char v[CONFIG_PATH_MAX + 16];
        value_str(c, k, v, sizeof v);
        fprintf(f, "%s = %s    # %s\n", k->key, v, k->doc);
    }
}

// The value of section.key in an effective-config text (config_write's format), into v; false if absent.
static bool text_value(const char *text, const char *section, const char *key, char *v, size_t n) {
    const size_t klen = strlen(key);
    bool in_section = false;
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (*line == '[') {
            in_section = len == strlen(section) + 2 && !strncmp(line + 1, section, strlen(section)) && line[len - 1] == ']';
            continue;
        }
        if (!in_section || len < klen + 3 || strncmp(line, key, klen) || strncmp(line + klen, " = ", 3)) continue;
        const char *val = line + klen + 3, *doc = strstr(val, "    # ");
        size_t vlen = (doc && doc < line + len ? (size_t)(doc - val) : len - klen - 3);
        if (vlen >= n) vlen = n - 1;
        memcpy(v, val, vlen);
        v[vlen] = 0;
        return true;
    }
    return false;
}

bool config_text_value(const char *text, const char *section, const char *key, char *v, size_t n) {
    return text && n && text_value(text, section, key, v, n);
}

int config_diff(const char *now, const char *then, char *out, size_t n) {
    int count = 0;
    size_t used = 0;
    if (n) out[0] = 0;
    for (int i = 0; i < NKEYS; i++) {
        char a[CONFIG_PATH_MAX + 16], b[CONFIG_PATH_MAX + 16];
        bool ha = text_value(now, KEYS[i].section, KEYS[i].key, a, sizeof a);
        bool hb = text_value(then, KEYS[i].section, KEYS[i].key, b, sizeof b);
        if (ha == hb && (!ha || !strcmp(a, b))) continue;
        count++;
        if (used < n) {
            int w = snprintf(out + used, n - used, "%s%s.%s = %s (snapshot: %s)", count > 1 ? "; " : "", KEYS[i].section,
                             KEYS[i].key, ha ? a : "-", hb ? b : "not set");
            used += w > 0 ? (size_t)w : 0;
        }
    }
    if (used >= n && n > 4) memcpy(out + n - 4, "...", 4);
    return count;
}

void config_write_keys_markdown(FILE *f) {
    const char *section = "";
    for (int i = 0; i < NKEYS; i++) {
        const Key *k = &KEYS[i];
        if (strcmp(section, k->section)) {
            fprintf(f, "%s### [%s]\n\n| key | default | meaning |\n| --- | --- | --- |\n", i ? "\n" : "", k->section);
            section = k->section;
        }
        char range[96] = "";
        if (k->kind == K_INT || k->kind == K_I64) {
            if (k->hi < 1e15) snprintf(range, sizeof range, " (%.0f..%.0f)", k->lo, k->hi);
            else snprintf(range, sizeof range, " (>= %.0f)", k->lo);
        } else if (k->kind == K_F64) snprintf(range, sizeof range, " (%g..%g)", k->lo, k->hi);
        else if (k->kind == K_ENUM) snprintf(range, sizeof range, " (one of %s)", k->choices);
        else if (k->kind == K_BOOL) snprintf(range, sizeof range, " (true/false)");
        if (*k->def) fprintf(f, "| `%s` | `%s` | ", k->key, k->def);
        else fprintf(f, "| `%s` | (empty) | ", k->key);
        for (int part = 0; part < 2; part++) // the meaning, then the range, | escaped for the markdown table
            for (const char *p = part ? range : k->doc; *p; p++) {
                if (*p == '|') fputs("\\|", f);
                else fputc(*p, f);
            }
        fputs(" |\n", f);
    }
}

int config_key_count(void) { return NKEYS; }

const char *config_key_name(int i, char *buf, size_t n) {
    XC_CHECK(i >= 0 && i < NKEYS, "config_key_name: %d", i);
    snprintf(buf, n, "%s.%s", KEYS[i].section, KEYS[i].key);
    return buf;
}
