// templates.c - see templates.h.
#include "data/templates.h"

#include <string.h>

void templates_free(Templates *t) {
    for (int i = 0; i < t->count; i++) xc_free(t->text[i]);
    xc_free(t->text);
    memset(t, 0, sizeof *t);
}

int templates_load(const char *path, Templates *t, XcError *err) {
    memset(t, 0, sizeof *t);
    size_t len = 0;
    char *text = xc_read_file(path, 1u << 20, &len, err);
    if (!text) return xc_err(err, "data.templates = %s: %s", path, err->msg);
    int line = 0, cap = 0, rc = XC_OK;
    for (char *s = text, *next; rc == XC_OK && s && *s; s = next) {
        line++;
        next = strchr(s, '\n');
        if (next) *next++ = 0;
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
        while (*s == ' ' || *s == '\t') s++;
        if (!*s || *s == '#') continue; // blank lines and comments
        if (!strstr(s, "{}")) {
            rc = xc_err(err, "%s:%d: data.templates: template '%.200s' has no {} for the class name", path, line, s);
            break;
        }
        if (strlen(s) > 512) {
            rc = xc_err(err, "%s:%d: data.templates: template longer than 512 characters", path, line);
            break;
        }
        if (t->count == cap) {
            cap = cap ? 2 * cap : 16;
            t->text = xc_realloc(t->text, (size_t)cap * sizeof(char *));
        }
        size_t m = strlen(s) + 1;
        t->text[t->count] = xc_malloc(m);
        memcpy(t->text[t->count++], s, m);
    }
    xc_free(text);
    if (rc != XC_OK) {
        templates_free(t);
        return XC_ERR;
    }
    if (t->count == 0) return xc_err(err, "%s:%d: data.templates: no template in the file (one per line, with {} for the "
                                          "class name; blank lines and # comments are skipped)", path, line > 0 ? line : 1);
    return XC_OK;
}
