// captions.c - captioned-image lists with file:line checks, and PPM reading. See captions.h.
#include "data/captions.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "data/world.h"

#define MAX_LIST_BYTES ((size_t)1 << 31)
enum { MAX_ISSUES = 20 };

CaptionListOptions caption_list_options_default(void) {
    return (CaptionListOptions){.tok = NULL, .context = WORLD_CONTEXT, .max_bytes = 1000, .strict = 0};
}

// Appends one line to a growing text (*text of *cap bytes, *used of them written).
static void append(char **text, size_t *used, size_t *cap, const char *line) {
    size_t len = strlen(line);
    if (*used + len + 2 > *cap) {
        *cap = (*used + len + 2) * 2;
        *text = xc_realloc(*text, *cap);
    }
    memcpy(*text + *used, line, len);
    *used += len;
    (*text)[(*used)++] = '\n';
    (*text)[*used] = 0;
}

// A skipped line: counted under its reason; the first MAX_ISSUES are described in cl->issues.
typedef struct Issues { size_t used, cap; } Issues;
static void skip(CaptionList *cl, Issues *is, int64_t *counter, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void skip(CaptionList *cl, Issues *is, int64_t *counter, const char *fmt, ...) {
    (*counter)++;
    if (++cl->n_skipped > MAX_ISSUES) return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    append(&cl->issues, &is->used, &is->cap, line);
}

// A format error: the first 10 go into err, one per line.

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

static int bad_path(const char *p) {
    if (!*p || p[0] == '/') return 1;
    for (const char *s = p; (s = strstr(s, "..")); s += 2)
        if ((s == p || s[-1] == '/') && (s[2] == 0 || s[2] == '/')) return 1;
    return 0;
}

// Does the image exist? Sets its region for a tar root.
static int find_image(const CaptionList *cl, const TarIndex *tar, const char *image, int64_t *offset, int64_t *size) {
    *offset = 0;
    *size = -1;
    if (tar) return tar_index_find(tar, image, offset, size);
    char p[2048];
    if (snprintf(p, sizeof p, "%s/%s", cl->root, image) >= (int)sizeof p) return 0;
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// Parse every line into items; XC_ERR on a format error (up to 10 named in err).
static int parse_lines(CaptionList *cl, const TarIndex *tar, const CaptionListOptions *opt, size_t len, XcError *err) {
    Issues is = {0, 0};
    XcProblems P = {err, 0, 0};
    size_t pos = 0, item_cap = 0;
    int line = 0;
    if (len >= 3 && !memcmp(cl->buf, "\xEF\xBB\xBF", 3)) pos = 3;
    const size_t max_ids = opt->tok ? (size_t)opt->context - 2 : 0; // BPE ids that fit between SOT and EOT
    int32_t *ids = opt->tok ? xc_malloc((max_ids + 1) * sizeof *ids) : NULL;
    while (pos < len) {
        char *s = cl->buf + pos, *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + (nl ? 1 : 0);
        line++;
        s[n] = 0;
        if (n && s[n - 1] == '\r') s[n - 1] = 0;
        char *tab = strchr(s, '\t');
        if (!tab) {
            if (*trim(s)) xc_problem(&P, "%s:%d: no TAB between image and caption (expected `image<TAB>caption`)", cl->path, line);
            continue; // else a blank line
        }
        *tab = 0;
        char *image = trim(s), *caption = trim(tab + 1);
        if (bad_path(image)) {
            xc_problem(&P, "%s:%d: image path `%.80s` is empty, absolute or contains ..", cl->path, line, image);
            continue;
        }
        int64_t offset, size;
        if (!find_image(cl, tar, image, &offset, &size)) {
            skip(cl, &is, &cl->n_missing, "%s:%d: %s: no such image in %s", cl->path, line, image, cl->root);
            continue;
        }
        if (!*caption) {
            skip(cl, &is, &cl->n_empty, "%s:%d: %s: empty caption", cl->path, line, image);
            continue;
        }
        size_t bytes = strlen(caption);
        if (bytes > (size_t)opt->max_bytes) {
            skip(cl, &is, &cl->n_too_long, "%s:%d: %s: caption of %zu bytes, more than %d", cl->path, line, image,
                 bytes, opt->max_bytes);
            continue;
        }
        if (opt->tok) {
            size_t count = tokenizer_encode_ids(opt->tok, caption, ids, max_ids + 1);
            if (count > max_ids) {
                skip(cl, &is, &cl->n_too_long, "%s:%d: %s: caption of %zu tokens does not fit the context of %d "
                     "(%zu with SOT and EOT)", cl->path, line, image, count, opt->context, count + 2);
                continue;
            }
            if ((int)count > cl->max_tokens) cl->max_tokens = (int)count;
        }
        if ((size_t)cl->n == item_cap) {
            item_cap = item_cap ? item_cap * 2 : 1024;
            cl->items = xc_realloc(cl->items, item_cap * sizeof *cl->items);
        }
        cl->items[cl->n++] = (CaptionItem){image, caption, line, offset, size};
    }
    xc_free(ids);
    if (cl->n_skipped > MAX_ISSUES) {
        char more[64];
        snprintf(more, sizeof more, "(and %lld more skipped lines)", (long long)(cl->n_skipped - MAX_ISSUES));
        append(&cl->issues, &is.used, &is.cap, more);
    }
    xc_problems_finish(&P, "format errors");
    return P.count ? XC_ERR : XC_OK;
}

CaptionList *caption_list_open(const char *list_path, const char *root, const CaptionListOptions *opt, XcError *err) {
    CaptionListOptions def = caption_list_options_default();
    if (!opt) opt = &def;
    if (opt->tok && opt->context < 3) { xc_err(err, "%s: context %d is too small", list_path, opt->context); return NULL; }
    CaptionList *cl = xc_calloc(1, sizeof *cl);
    snprintf(cl->path, sizeof cl->path, "%s", list_path);
    snprintf(cl->root, sizeof cl->root, "%s", root);
    cl->issues = xc_calloc(1, 1); // "" until a line is skipped
    size_t len = 0;
    TarIndex *tar = NULL;
    struct stat st;
    if (stat(root, &st) != 0) { xc_err(err, "%s: image root: %s", root, strerror(errno)); goto fail; }
    cl->is_tar = S_ISREG(st.st_mode);
    if (cl->is_tar && !(tar = tar_index_open(root, err))) goto fail;
    if (!(cl->buf = xc_read_file(list_path, MAX_LIST_BYTES, &len, err))) goto fail;
    if (memchr(cl->buf, 0, len)) { xc_err(err, "%s: contains NUL bytes (not a text file)", list_path); goto fail; }
    if (err) err->msg[0] = 0;
    if (parse_lines(cl, tar, opt, len, err) != XC_OK) goto fail;
    if (opt->strict && cl->n_skipped) {
        xc_err(err, "%s: %lld lines with a missing image, an empty or an over-long caption (strict):\n%s", list_path,
               (long long)cl->n_skipped, cl->issues);
        goto fail;
    }
    if (cl->n == 0) {
        xc_err(err, "%s: no usable image-caption pair (%lld lines skipped)%s%s", list_path, (long long)cl->n_skipped,
               cl->n_skipped ? ":\n" : "", cl->issues);
        goto fail;
    }
    tar_index_free(tar);
    return cl;
fail:
    tar_index_free(tar);
    caption_list_free(cl);
    return NULL;
}

void caption_list_free(CaptionList *cl) {
    if (!cl) return;
    xc_free(cl->items);
    xc_free(cl->issues);
    xc_free(cl->buf);
    xc_free(cl);
}

// ---- PPM --------------------------------------------------------------------------------------------------------
// The next header number at *p (skipping blanks and # comments); -1 if none.
static long ppm_number(const unsigned char *h, size_t n, size_t *p) {
    for (;;) {
        while (*p < n && isspace(h[*p])) (*p)++;
        if (*p < n && h[*p] == '#') { while (*p < n && h[*p] != '\n') (*p)++; continue; }
        break;
    }
    long v = -1;
    while (*p < n && isdigit(h[*p]) && v < 100000) v = (v < 0 ? 0 : v * 10) + (h[(*p)++] - '0');
    return v;
}

int ppm_read(const char *path, int64_t offset, int64_t size, const char *name, int S, uint8_t *rgb, XcError *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return xc_err(err, "%s: %s", name, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return xc_err(err, "%s: %s", name, strerror(errno)); }
    if (size < 0) size = st.st_size - offset;
    if (offset < 0 || size < 0 || offset + size > st.st_size) { close(fd); return xc_err(err, "%s: region beyond the end of %s", name, path); }
    unsigned char h[64];
    ssize_t got = pread(fd, h, size < (int64_t)sizeof h ? (size_t)size : sizeof h, offset);
    if (got < 0) { close(fd); return xc_err(err, "%s: read failed: %s", name, strerror(errno)); }
    size_t p = 2;
    long w = -1, hh = -1, maxval = -1;
    if (got >= 2 && h[0] == 'P' && h[1] == '6') {
        w = ppm_number(h, (size_t)got, &p);
        hh = ppm_number(h, (size_t)got, &p);
        maxval = ppm_number(h, (size_t)got, &p);
    }
    if (w < 0 || hh < 0 || maxval != 255 || p >= (size_t)got || !isspace(h[p])) {
        close(fd);
        return xc_err(err, "%s: not a binary PPM (P6, maxval 255)", name);
    }
    p++; // the single blank after maxval
    if (w != S || hh != S) { close(fd); return xc_err(err, "%s: image is %ldx%ld, expected %dx%d", name, w, hh, S, S); }
    const size_t need = (size_t)S * S * 3;
    if ((int64_t)(p + need) > size) { close(fd); return xc_err(err, "%s: truncated PPM (%lld bytes for %zu pixels' worth)", name, (long long)size, need); }
    got = pread(fd, rgb, need, offset + (int64_t)p);
    close(fd);
    if (got != (ssize_t)need) return xc_err(err, "%s: short read", name);
    return XC_OK;
}

int caption_list_image(const CaptionList *cl, int64_t i, int S, uint8_t *rgb, XcError *err) {
    XC_CHECK(i >= 0 && i < cl->n, "caption_list_image: index %lld of %lld", (long long)i, (long long)cl->n);
    const CaptionItem *it = &cl->items[i];
    char name[1200], path[1100];
    snprintf(name, sizeof name, "%s:%d: %s", cl->path, it->line, it->image);
    if (cl->is_tar) return ppm_read(cl->root, it->offset, it->size, name, S, rgb, err);
    snprintf(path, sizeof path, "%s/%s", cl->root, it->image);
    return ppm_read(path, 0, -1, name, S, rgb, err);
}
