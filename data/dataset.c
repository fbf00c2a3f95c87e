// dataset.c - list and label parsing with file:line errors, .tar indexing, few-shot subsets. See dataset.h.
#include "data/dataset.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autograd/rng.h"

#define MAX_LIST_BYTES ((size_t)1 << 30)

// ---- line reader over a whole file: strips a UTF-8 BOM and CR before LF -------------------------------------
typedef struct Lines { char *buf; size_t len, pos; int line; } Lines;

static int lines_open(Lines *L, const char *path, XcError *err) {
    memset(L, 0, sizeof *L);
    L->buf = xc_read_file(path, MAX_LIST_BYTES, &L->len, err);
    if (!L->buf) return XC_ERR;
    if (memchr(L->buf, 0, L->len)) {
        xc_free(L->buf);
        return xc_err(err, "%s: contains NUL bytes (not a text file)", path);
    }
    if (L->len >= 3 && (unsigned char)L->buf[0] == 0xEF && (unsigned char)L->buf[1] == 0xBB &&
        (unsigned char)L->buf[2] == 0xBF)
        L->pos = 3;
    return XC_OK;
}

// Next line (NUL-terminated in place, CR stripped), or NULL at the end.
static char *lines_next(Lines *L) {
    if (L->pos >= L->len) return NULL;
    char *s = L->buf + L->pos;
    char *nl = memchr(s, '\n', L->len - L->pos);
    size_t n = nl ? (size_t)(nl - s) : L->len - L->pos;
    L->pos += n + (nl ? 1 : 0);
    L->line++;
    if (n > 0 && s[n - 1] == '\r') n--;
    if (nl) s[n] = 0;
    else { // last line without newline: the buffer from xc_read_file is NUL-terminated? copy-safe path
        s[n] = 0;
    }
    return s;
}

static int is_blank(const char *s) {
    while (*s) if (!isspace((unsigned char)*s++)) return 0;
    return 1;
}

static int parse_int(const char *s, long long *out) {
    if (!*s) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

// Accumulates up to 10 messages into err, counts the rest.

// ---- labels ------------------------------------------------------------------------------------------------
// A quoted CSV field (RFC 4180) in place: "say ""hi"", left" -> say "hi", left. Problems: no closing quote (a
// field spanning lines is not supported), text after the closing quote (a lone quote inside).
static int unquote_field(char *field, const char *path, int line, XcProblems *P) {
    char shown[64];
    snprintf(shown, sizeof shown, "%s", field);
    char *w = field, *r = field + 1;
    for (; *r; r++) {
        if (*r != '"') { *w++ = *r; continue; }
        if (r[1] != '"') break; // the closing quote
        *w++ = '"';
        r++;
    }
    if (*r != '"') {
        xc_problem(P, "%s:%d: quoted name `%s` has no closing quote (a name cannot span lines)", path, line, shown);
        return XC_ERR;
    }
    if (r[1]) {
        xc_problem(P, "%s:%d: text after the closing quote in `%s` (a quote inside a quoted name is written twice: \"\")",
                path, line, shown);
        return XC_ERR;
    }
    *w = 0;
    return XC_OK;
}

void csv_write_field(FILE *f, const char *s) {
    size_t n = strlen(s);
    bool quote = strpbrk(s, ",\"\r\n") || (n && (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1])));
    if (!quote) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int labels_load(const char *path, LabelSet *out, XcError *err) {
    memset(out, 0, sizeof *out);
    Lines L;
    if (lines_open(&L, path, err) != XC_OK) return XC_ERR;
    XcProblems P = {err, 0, 0};
    if (err) err->msg[0] = 0;
    char *s;
    int header = 0, cap = 0;
    while ((s = lines_next(&L))) {
        if (is_blank(s)) continue;
        if (!header) {
            char *a = s;
            while (isspace((unsigned char)*a)) a++;
            if (strncmp(a, "id,name", 7) != 0 || !is_blank(a + 7)) {
                xc_problem(&P, "%s:%d: header must be `id,name`, found `%.60s`", path, L.line, s);
                break;
            }
            header = 1;
            continue;
        }
        char *comma = strchr(s, ',');
        if (!comma) { xc_problem(&P, "%s:%d: expected `id,name`, found `%.60s`", path, L.line, s); continue; }
        *comma = 0;
        char *name = comma + 1;
        long long id;
        char *ids = s;
        while (isspace((unsigned char)*ids)) ids++;
        if (!parse_int(ids, &id)) { xc_problem(&P, "%s:%d: id `%.30s` is not an integer", path, L.line, s); continue; }
        // name: trimmed; a quoted name (RFC 4180) keeps commas, blanks and doubled quotes
        while (isspace((unsigned char)*name)) name++;
        size_t nl = strlen(name);
        while (nl && isspace((unsigned char)name[nl - 1])) name[--nl] = 0;
        if (name[0] == '"' && unquote_field(name, path, L.line, &P) != XC_OK) continue;
        if (!*name) { xc_problem(&P, "%s:%d: empty class name for id %lld", path, L.line, id); continue; }
        if (id != out->count) {
            xc_problem(&P, "%s:%d: id %lld where %d was expected (ids must be 0..K-1 in order)", path, L.line, id,
                    out->count);
            continue;
        }
        if (out->count == cap) { cap = cap ? cap * 2 : 64; out->names = xc_realloc(out->names, sizeof(char *) * cap); }
        size_t len = strlen(name);
        out->names[out->count] = xc_malloc(len + 1);
        memcpy(out->names[out->count], name, len + 1);
        out->count++;
    }
    if (!P.count && !header) xc_problem(&P, "%s: empty label file (no `id,name` header)", path);
    if (!P.count && out->count == 0) xc_problem(&P, "%s: no classes after the header", path);
    xc_free(L.buf);
    if (P.count) {
        xc_problems_finish(&P, "problems");
        labels_free(out);
        return XC_ERR;
    }
    return XC_OK;
}

void labels_free(LabelSet *ls) {
    for (int i = 0; i < ls->count; i++) xc_free(ls->names[i]);
    xc_free(ls->names);
    memset(ls, 0, sizeof *ls);
}

// ---- tar --------------------------------------------------------------------------------------------------
typedef struct TarEntry { char *name; const char *base; int64_t offset, size; } TarEntry;
struct TarIndex { TarEntry *e; int64_t n; };

static int64_t octal(const unsigned char *p, int n, int *ok) {
    int64_t v = 0;
    int i = 0;
    if (n > 0 && (p[0] & 0x80)) { // GNU base-256 for large sizes
        v = p[0] & 0x3f;
        for (i = 1; i < n; i++) {
            if (v > (INT64_MAX >> 8)) { *ok = 0; return 0; }
            v = (v << 8) | p[i];
        }
        return v;
    }
    while (i < n && (p[i] == ' ' || p[i] == 0)) i++;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
        if (v > (INT64_MAX >> 3)) { *ok = 0; return 0; }
        v = v * 8 + (p[i] - '0');
    }
    for (; i < n; i++) if (p[i] != ' ' && p[i] != 0) { *ok = 0; return 0; }
    return v;
}

static int cmp_entry(const void *a, const void *b) { return strcmp(((const TarEntry *)a)->name, ((const TarEntry *)b)->name); }

static char *norm_name(const char *s, size_t n) {
    while (n >= 2 && s[0] == '.' && s[1] == '/') { s += 2; n -= 2; }
    while (n && s[0] == '/') { s++; n--; }
    char *o = xc_malloc(n + 1);
    memcpy(o, s, n);
    o[n] = 0;
    return o;
}

// Why a video path of a folder root cannot be used (NULL: a regular file): stat's errno and the file's mode.
static const char *file_problem(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) return S_ISREG(st.st_mode) ? NULL : xc_file_kind(st.st_mode);
    switch (errno) {
    case ENOENT: return lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ? "a dangling symbolic link" : "no such file";
    case ELOOP: return "a symbolic link loop";
    case EACCES: return "not accessible (permission denied)";
    case ENOTDIR: return "no such file (a component of the path is not a directory)";
    case ENAMETOOLONG: return "a path too long";
    default: return "not accessible (stat failed)";
    }
}

TarIndex *tar_index_open(const char *path, XcError *err) {
    FILE *f = xc_fopen(path, "rb", err);
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        xc_err(err, "%s: not a regular file", path);
        return NULL;
    }
    const int64_t fsize = st.st_size;
    TarIndex *t = xc_calloc(1, sizeof *t);
    int64_t cap = 0, pos = 0;
    char *longname = NULL;
    unsigned char h[512];
    for (;;) {
        if (pos + 512 > fsize) break; // a missing end marker is tolerated
        if (fseeko(f, pos, SEEK_SET) != 0 || fread(h, 1, 512, f) != 512) {
            xc_err(err, "%s: read error at byte %lld", path, (long long)pos);
            goto fail;
        }
        int zero = 1;
        for (int i = 0; i < 512; i++) if (h[i]) { zero = 0; break; }
        if (zero) break; // end of archive
        int ok = 1;
        int64_t sum = octal(h + 148, 8, &ok), calc = 0;
        for (int i = 0; i < 512; i++) calc += (i >= 148 && i < 156) ? ' ' : h[i];
        int64_t size = octal(h + 124, 12, &ok);
        if (!ok || sum != calc) {
            xc_err(err, "%s: damaged tar header at byte %lld (bad checksum or size field)\nHINT: the root must be an "
                   "uncompressed .tar (not .tar.gz)", path, (long long)pos);
            goto fail;
        }
        int64_t data = pos + 512;
        if (size < 0 || size > fsize - data) {
            xc_err(err, "%s: member at byte %lld claims %lld bytes, beyond the end of the file (truncated tar)", path,
                   (long long)pos, (long long)size);
            goto fail;
        }
        char type = (char)h[156];
        if (type == 'L' || type == 'x') { // GNU long name / pax header for the next member
            if (size > 65536) { xc_err(err, "%s: oversized extended header at byte %lld", path, (long long)pos); goto fail; }
            char *buf = xc_malloc((size_t)size + 1);
            if (fread(buf, 1, (size_t)size, f) != (size_t)size) { xc_free(buf); xc_err(err, "%s: read error", path); goto fail; }
            buf[size] = 0;
            if (type == 'L') {
                xc_free(longname);
                longname = norm_name(buf, strnlen(buf, (size_t)size));
            } else { // records "len key=value\n"
                for (char *r = buf; r < buf + size;) {
                    char *sp = memchr(r, ' ', (size_t)(buf + size - r));
                    long len = strtol(r, NULL, 10);
                    if (!sp || len <= 0 || r + len > buf + size) break;
                    if (strncmp(sp + 1, "path=", 5) == 0) {
                        xc_free(longname);
                        char *v = sp + 6;
                        longname = norm_name(v, (size_t)(r + len - 1 - v));
                    }
                    r += len;
                }
            }
            xc_free(buf);
        } else if (type == '0' || type == 0 || type == '7') {
            if (t->n == cap) { cap = cap ? cap * 2 : 256; t->e = xc_realloc(t->e, sizeof(TarEntry) * (size_t)cap); }
            char *name;
            if (longname) { name = longname; longname = NULL; }
            else {
                char full[260];
                size_t pl = strnlen((char *)h + 345, 155), nl = strnlen((char *)h, 100);
                size_t o = 0;
                if (memcmp(h + 257, "ustar", 5) == 0 && pl) { memcpy(full, h + 345, pl); o = pl; full[o++] = '/'; }
                memcpy(full + o, h, nl);
                name = norm_name(full, o + nl);
            }
            const char *slash = strrchr(name, '/');
            t->e[t->n++] = (TarEntry){name, slash ? slash + 1 : name, data, size};
        } else {
            xc_free(longname);
            longname = NULL;
        }
        pos = data + ((size + 511) / 512) * 512;
    }
    xc_free(longname);
    fclose(f);
    if (t->n) qsort(t->e, (size_t)t->n, sizeof *t->e, cmp_entry);
    return t;
fail:
    xc_free(longname);
    fclose(f);
    tar_index_free(t);
    return NULL;
}

void tar_index_free(TarIndex *t) {
    if (!t) return;
    for (int64_t i = 0; i < t->n; i++) xc_free(t->e[i].name);
    xc_free(t->e);
    xc_free(t);
}

int64_t tar_index_count(const TarIndex *t) { return t->n; }

int tar_index_find(const TarIndex *t, const char *name, int64_t *offset, int64_t *size) {
    char *key = norm_name(name, strlen(name));
    TarEntry k = {key, NULL, 0, 0};
    TarEntry *hit = t->n ? bsearch(&k, t->e, (size_t)t->n, sizeof *t->e, cmp_entry) : NULL;
    if (!hit) { // unique basename
        const char *slash = strrchr(key, '/');
        const char *base = slash ? slash + 1 : key;
        for (int64_t i = 0; i < t->n; i++) {
            if (strcmp(t->e[i].base, base) == 0) {
                if (hit) { hit = NULL; break; } // ambiguous
                hit = &t->e[i];
            }
        }
    }
    xc_free(key);
    if (!hit) return 0;
    *offset = hit->offset;
    *size = hit->size;
    return 1;
}

// ---- lists ------------------------------------------------------------------------------------------------
Dataset *dataset_open(const char *list_path, const char *root, int num_classes, XcError *err) {
    struct stat rst;
    if (stat(root, &rst) != 0) {
        xc_err(err, "%s: cannot open the video root: %s", root, strerror(errno));
        return NULL;
    }
    Dataset *ds = xc_calloc(1, sizeof *ds);
    snprintf(ds->list_path, sizeof ds->list_path, "%s", list_path);
    snprintf(ds->root, sizeof ds->root, "%s", root);
    ds->is_tar = S_ISREG(rst.st_mode);
    TarIndex *tar = NULL;
    if (ds->is_tar && !(tar = tar_index_open(root, err))) { xc_free(ds); return NULL; }
    Lines L;
    if (lines_open(&L, list_path, err) != XC_OK) { tar_index_free(tar); xc_free(ds); return NULL; }
    if (err) err->msg[0] = 0;
    XcProblems P = {err, 0, 0};
    int64_t cap = 0;
    size_t icap = 0, iused = 0;
    int32_t maxlabel = -1;
    char *s;
    while ((s = lines_next(&L))) {
        if (is_blank(s)) continue;
        char *tok[3] = {0};
        int nt = 0;
        for (char *p = s; *p && nt < 3;) {
            while (*p && isspace((unsigned char)*p)) p++;
            if (!*p) break;
            tok[nt++] = p;
            while (*p && !isspace((unsigned char)*p)) p++;
            if (*p) *p++ = 0;
        }
        if (nt != 2) {
            xc_problem(&P, "%s:%d: expected `<path> <label>`, found %d field%s", list_path, L.line, nt, nt == 1 ? "" : "s");
            continue;
        }
        long long lab;
        if (!parse_int(tok[1], &lab)) { xc_problem(&P, "%s:%d: label `%.30s` is not an integer", list_path, L.line, tok[1]); continue; }
        if (lab < 0 || lab > INT32_MAX || (num_classes > 0 && lab >= num_classes)) {
            if (num_classes > 0) xc_problem(&P, "%s:%d: label %lld outside [0, %d)", list_path, L.line, lab, num_classes);
            else xc_problem(&P, "%s:%d: label %lld is negative or too large", list_path, L.line, lab);
            continue;
        }
        if (tok[0][0] == '/' || strstr(tok[0], "../") || strcmp(tok[0], "..") == 0) {
            xc_problem(&P, "%s:%d: path `%.80s` must be relative to the root and stay inside it", list_path, L.line, tok[0]);
            continue;
        }
        if (ds->n == cap) { cap = cap ? cap * 2 : 1024; ds->items = xc_realloc(ds->items, sizeof(DatasetItem) * (size_t)cap); }
        DatasetItem *it = &ds->items[ds->n++];
        size_t pl = strlen(tok[0]);
        it->path = xc_malloc(pl + 1);
        memcpy(it->path, tok[0], pl + 1);
        it->label = (int32_t)lab;
        it->line = L.line;
        it->offset = 0;
        it->size = -1;
        it->missing = 0;
        it->why = NULL;
        if (lab > maxlabel) maxlabel = (int32_t)lab;
        if (tar) {
            it->missing = !tar_index_find(tar, it->path, &it->offset, &it->size);
            if (it->missing) it->why = "no such member";
        } else {
            char full[4096];
            snprintf(full, sizeof full, "%s/%s", root, it->path);
            it->why = file_problem(full);
            it->missing = it->why != NULL;
        }
        if (it->missing) {
            char msg[700];
            int w = !strncmp(it->why, "no such", 7)
                        ? snprintf(msg, sizeof msg, "%s:%d: %s: %s in %s\n", list_path, L.line, it->path, it->why, root)
                        : snprintf(msg, sizeof msg, "%s:%d: %s: %s, not a video file (in %s)\n", list_path, L.line,
                                   it->path, it->why, root);
            if (w < 0) w = 0;
            if ((size_t)w >= sizeof msg) w = sizeof msg - 1;
            if (iused + (size_t)w + 1 > icap) { icap = (icap + (size_t)w + 1) * 2; ds->issues = xc_realloc(ds->issues, icap); }
            memcpy(ds->issues + iused, msg, (size_t)w + 1);
            iused += (size_t)w;
            ds->n_missing++;
        }
    }
    xc_free(L.buf);
    tar_index_free(tar);
    if (!P.count && ds->n == 0) xc_problem(&P, "%s: the list has no videos", list_path);
    if (P.count) {
        xc_problems_finish(&P, "problems");
        dataset_free(ds);
        return NULL;
    }
    if (!ds->issues) { ds->issues = xc_malloc(1); ds->issues[0] = 0; }
    ds->num_classes = num_classes > 0 ? num_classes : maxlabel + 1;
    return ds;
}

void dataset_free(Dataset *ds) {
    if (!ds) return;
    for (int64_t i = 0; i < ds->n; i++) xc_free(ds->items[i].path);
    xc_free(ds->items);
    xc_free(ds->issues);
    xc_free(ds);
}

VideoSource dataset_source(const Dataset *ds, int64_t i, char *path_buf, size_t n) {
    XC_CHECK(i >= 0 && i < ds->n, "dataset_source: index %lld outside [0, %lld)", (long long)i, (long long)ds->n);
    const DatasetItem *it = &ds->items[i];
    if (ds->is_tar) {
        snprintf(path_buf, n, "%s:%s", ds->root, it->path);
        return (VideoSource){.path = ds->root, .name = path_buf, .is_region = 1, .offset = it->offset, .size = it->size};
    }
    snprintf(path_buf, n, "%s/%s", ds->root, it->path);
    return (VideoSource){.path = path_buf};
}

int dataset_write_fewshot(const Dataset *ds, int k, uint64_t seed, const char *out_path, XcError *err) {
    XC_CHECK(k > 0, "dataset_write_fewshot: k = %d", k);
    const int K = ds->num_classes;
    int64_t *count = xc_calloc((size_t)K, sizeof *count);
    for (int64_t i = 0; i < ds->n; i++) count[ds->items[i].label]++;
    for (int c = 0; c < K; c++) {
        if (count[c] < k) {
            int rc = xc_err(err, "%s: class %d has %lld video%s, fewer than the %d per class asked for", ds->list_path, c,
                            (long long)count[c], count[c] == 1 ? "" : "s", k);
            xc_free(count);
            return rc;
        }
    }
    FILE *f = xc_fopen(out_path, "w", err);
    if (!f) { xc_free(count); return XC_ERR; }
    Rng r = rng_stream(seed, RNG_STREAM_ORDER);
    int64_t *members = xc_malloc(sizeof(int64_t) * (size_t)ds->n);
    for (int c = 0; c < K; c++) {
        int64_t m = 0;
        for (int64_t i = 0; i < ds->n; i++) if (ds->items[i].label == c) members[m++] = i;
        for (int j = 0; j < k; j++) { // partial Fisher-Yates: position j gets a uniform pick of the rest
            int64_t pick = j + (int64_t)rng_below(&r, (uint64_t)(m - j));
            int64_t tmp = members[j]; members[j] = members[pick]; members[pick] = tmp;
            fprintf(f, "%s %d\n", ds->items[members[j]].path, c);
        }
    }
    xc_free(members);
    xc_free(count);
    if (fclose(f) != 0) return xc_err(err, "%s: write error: %s", out_path, strerror(errno));
    return XC_OK;
}
