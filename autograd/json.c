// json.c - see json.h. A recursive-descent parser over a byte range; every read is bounds-checked
// against the end of the input and the recursion depth is capped, so hostile input cannot run past
// the buffer or the C stack.
#include "autograd/json.h"
#include "autograd/utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Parser {
    const unsigned char *p, *end, *start;
    const char *where;
    XcError *err;
    bool failed;
    // json_parse_members: the current member's name, where its value starts, the values built for it so far, and
    // the limits (0: none)
    const char *member;
    const unsigned char *member_start;
    int64_t values;
    JsonLimits lim;
} Parser;

static int parse_value(Parser *ps, JsonValue *out, int depth);

static int fail(Parser *ps, const char *what) {
    if (!ps->failed) {
        xc_err(ps->err, "%s: invalid JSON: %s at byte %lld", ps->where, what, (long long)(ps->p - ps->start));
        ps->failed = true;
    }
    return XC_ERR;
}

static void skip_ws(Parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static bool match_word(Parser *ps, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) return false;
    ps->p += n;
    return true;
}

static int hex4(Parser *ps, uint32_t *out) {
    if (ps->end - ps->p < 4) return fail(ps, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = ps->p[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) return fail(ps, "bad hex digit in \\u escape");
        v = v * 16 + (uint32_t)d;
    }
    ps->p += 4;
    *out = v;
    return XC_OK;
}

static int parse_string(Parser *ps, char **out) {
    // ps->p is at the opening quote. First pass finds the end and an upper bound on the length.
    ps->p++;
    const unsigned char *s = ps->p;
    size_t cap = 1;
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p == '\\') {
            if (ps->end - ps->p < 2) { ps->p = ps->end; break; }
            ps->p += 2; cap += 4; continue;
        }
        ps->p++; cap++;
    }
    if (ps->p >= ps->end) return fail(ps, "unterminated string");
    const unsigned char *e = ps->p;
    if (ps->lim.max_bytes && ps->member_start && (size_t)(e - ps->member_start) > ps->lim.max_bytes) { // before the copy
        if (!ps->failed) {
            xc_err(ps->err, "%s: \"%.200s\" is longer than %zu bytes, the most one member may take (a string ends at byte %lld)",
                   ps->where, ps->member, ps->lim.max_bytes, (long long)(e - ps->start));
            ps->failed = true;
        }
        return XC_ERR;
    }
    ps->p = s;
    char *buf = xc_malloc(cap);
    size_t n = 0;
    while (ps->p < e) {
        unsigned char c = *ps->p;
        if (c < 0x20) { xc_free(buf); return fail(ps, "control character in string"); }
        if (c != '\\') {
            uint32_t cp;
            size_t len = xc_utf8_decode(ps->p, (size_t)(e - ps->p), &cp);
            if (!len) { xc_free(buf); return fail(ps, "invalid UTF-8 in string"); }
            memcpy(buf + n, ps->p, len); n += len; ps->p += len;
            continue;
        }
        ps->p++;
        char esc = (char)*ps->p++;
        switch (esc) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (hex4(ps, &cp) != XC_OK) { xc_free(buf); return XC_ERR; }
            if (cp >= 0xD800 && cp <= 0xDBFF) { // high surrogate: a low one must follow
                uint32_t lo;
                if (e - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') { xc_free(buf); return fail(ps, "unpaired surrogate"); }
                ps->p += 2;
                if (hex4(ps, &lo) != XC_OK) { xc_free(buf); return XC_ERR; }
                if (lo < 0xDC00 || lo > 0xDFFF) { xc_free(buf); return fail(ps, "unpaired surrogate"); }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                xc_free(buf); return fail(ps, "unpaired surrogate");
            } else if (cp == 0) {
                xc_free(buf); return fail(ps, "\\u0000 in string");
            }
            n += xc_utf8_encode(cp, buf + n);
            break;
        }
        default: xc_free(buf); ps->p--; return fail(ps, "bad escape in string");
        }
    }
    buf[n] = 0;
    ps->p = e + 1;
    *out = buf;
    return XC_OK;
}

static int parse_number(Parser *ps, JsonValue *out) {
    const unsigned char *s = ps->p;
    bool neg = false, integer = true;
    if (*ps->p == '-') { neg = true; ps->p++; }
    if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) return fail(ps, "bad number");
    if (*ps->p == '0' && ps->p + 1 < ps->end && ps->p[1] >= '0' && ps->p[1] <= '9') return fail(ps, "leading zero in number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    if (ps->p < ps->end && *ps->p == '.') {
        integer = false; ps->p++;
        if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) return fail(ps, "bad fraction in number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        integer = false; ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || !(*ps->p >= '0' && *ps->p <= '9')) return fail(ps, "bad exponent in number");
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    size_t len = (size_t)(ps->p - s);
    char tmp[64];
    if (len >= sizeof tmp) { integer = false; }
    out->type = JSON_NUMBER;
    if (integer) { // exact int64 with overflow detection
        uint64_t v = 0;
        bool ok = true;
        for (const unsigned char *q = s + neg; q < ps->p; q++) {
            if (!xc_mul_u64(v, 10, &v) || !xc_add_u64(v, (uint64_t)(*q - '0'), &v)) { ok = false; break; }
        }
        if (ok && (neg ? v <= (uint64_t)INT64_MAX + 1 : v <= (uint64_t)INT64_MAX)) {
            out->is_int = true;
            out->i = neg ? (int64_t)(0 - v) : (int64_t)v;
            out->d = (double)out->i;
            return XC_OK;
        }
    }
    if (len < sizeof tmp) {
        memcpy(tmp, s, len); tmp[len] = 0;
        out->d = strtod(tmp, NULL);
    } else {
        out->d = neg ? -HUGE_VAL : HUGE_VAL; // absurdly long literal
    }
    return XC_OK;
}

static int cmp_keys(const void *a, const void *b) { return strcmp(**(char *const *const *)a, **(char *const *const *)b); }

static int parse_container(Parser *ps, JsonValue *out, int depth, bool object) {
    if (depth >= JSON_MAX_DEPTH) return fail(ps, "nesting too deep");
    out->type = object ? JSON_OBJECT : JSON_ARRAY;
    char close = object ? '}' : ']';
    ps->p++;
    int64_t cap = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) { ps->p++; return XC_OK; }
    for (;;) {
        if (out->n == cap) {
            cap = cap ? 2 * cap : 8;
            out->items = xc_realloc(out->items, (size_t)cap * sizeof *out->items);
            if (object) out->keys = xc_realloc(out->keys, (size_t)cap * sizeof *out->keys);
        }
        JsonValue *item = &out->items[out->n];
        memset(item, 0, sizeof *item);
        skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "expected a string key");
            char *key;
            if (parse_string(ps, &key) != XC_OK) return XC_ERR;
            out->keys[out->n] = key;
            out->n++; // counted now so json_free releases the key on a later failure
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail(ps, "expected ':'");
            ps->p++;
            skip_ws(ps);
            if (parse_value(ps, item, depth + 1) != XC_OK) return XC_ERR;
        } else {
            out->n++;
            if (parse_value(ps, item, depth + 1) != XC_OK) return XC_ERR;
        }
        skip_ws(ps);
        if (ps->p >= ps->end) return fail(ps, object ? "unterminated object" : "unterminated array");
        if (*ps->p == ',') { ps->p++; skip_ws(ps); if (ps->p < ps->end && *ps->p == close) return fail(ps, "trailing comma"); continue; }
        if (*ps->p == close) { ps->p++; break; }
        return fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    if (object && out->n > 1) { // duplicate keys: sort pointers to the keys, compare neighbours
        char ***idx = xc_malloc((size_t)out->n * sizeof *idx);
        for (int64_t i = 0; i < out->n; i++) idx[i] = &out->keys[i];
        qsort(idx, (size_t)out->n, sizeof *idx, cmp_keys);
        for (int64_t i = 1; i < out->n; i++) {
            if (strcmp(*idx[i - 1], *idx[i]) == 0) {
                if (!ps->failed) {
                    xc_err(ps->err, "%s: duplicate key \"%.200s\" in JSON object", ps->where, *idx[i]);
                    ps->failed = true;
                }
                xc_free(idx);
                return XC_ERR;
            }
        }
        xc_free(idx);
    }
    return XC_OK;
}

static int parse_value(Parser *ps, JsonValue *out, int depth) {
    skip_ws(ps);
    if (ps->p >= ps->end) return fail(ps, "unexpected end of input");
    if (ps->lim.max_values && ++ps->values > ps->lim.max_values) { // before anything more is built
        if (!ps->failed) {
            xc_err(ps->err, "%s: \"%.200s\" holds more than %lld JSON values, the most one member may hold (at byte %lld)",
                   ps->where, ps->member, (long long)ps->lim.max_values, (long long)(ps->p - ps->start));
            ps->failed = true;
        }
        return XC_ERR;
    }
    switch (*ps->p) {
    case '{': return parse_container(ps, out, depth, true);
    case '[': return parse_container(ps, out, depth, false);
    case '"': out->type = JSON_STRING; return parse_string(ps, &out->s);
    case 't': if (match_word(ps, "true")) { out->type = JSON_BOOL; out->b = true; return XC_OK; } break;
    case 'f': if (match_word(ps, "false")) { out->type = JSON_BOOL; out->b = false; return XC_OK; } break;
    case 'n': if (match_word(ps, "null")) { out->type = JSON_NULL; return XC_OK; } break;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps, out);
    }
    return fail(ps, "unexpected character");
}

int json_parse(JsonValue *out, const char *text, size_t len, const char *where, XcError *err) {
    memset(out, 0, sizeof *out);
    Parser ps = {(const unsigned char *)text, (const unsigned char *)text + len, (const unsigned char *)text,
                 where, err, false, "", NULL, 0, {0, 0}};
    if (parse_value(&ps, out, 0) == XC_OK) {
        skip_ws(&ps);
        if (ps.p == ps.end) return XC_OK;
        fail(&ps, "trailing characters after the value");
    }
    json_free(out);
    return XC_ERR;
}

int json_parse_members(const char *text, size_t len, const char *where, JsonLimits lim, JsonMemberFn fn, void *ctx,
                       XcError *err) {
    Parser ps = {(const unsigned char *)text, (const unsigned char *)text + len, (const unsigned char *)text,
                 where, err, false, "", NULL, 0, lim};
    skip_ws(&ps);
    if (ps.p >= ps.end || *ps.p != '{') { // named by its first token; the rest is not read
        const unsigned char *c = ps.p;
        const char *kind = c >= ps.end ? NULL : *c == '[' ? "an array" : *c == '"' ? "a string"
                         : *c == '-' || (*c >= '0' && *c <= '9') ? "a number"
                         : match_word(&ps, "true") || match_word(&ps, "false") ? "a boolean" : match_word(&ps, "null") ? "null" : NULL;
        if (kind) return xc_err(err, "%s: a JSON value that is %s, not an object", where, kind);
        return fail(&ps, c < ps.end ? "unexpected character" : "unexpected end of input");
    }
    ps.p++;
    skip_ws(&ps);
    if (ps.p < ps.end && *ps.p == '}') ps.p++;
    else for (;;) {
        skip_ws(&ps);
        if (ps.p >= ps.end || *ps.p != '"') return fail(&ps, "expected a string key");
        char *key;
        ps.member = "(a member's name)"; // the name is held to the same byte limit as the value
        ps.member_start = ps.p;
        if (parse_string(&ps, &key) != XC_OK) return XC_ERR;
        skip_ws(&ps);
        if (ps.p >= ps.end || *ps.p != ':') { xc_free(key); return fail(&ps, "expected ':'"); }
        ps.p++;
        JsonValue v;
        memset(&v, 0, sizeof v);
        ps.values = 0;
        ps.member = key;
        ps.member_start = ps.p;
        int rc = parse_value(&ps, &v, 1);
        if (rc == XC_OK) rc = fn(ctx, key, &v, err);
        json_free(&v);
        xc_free(key);
        ps.member = "";
        ps.member_start = NULL;
        if (rc != XC_OK) return XC_ERR;
        skip_ws(&ps);
        if (ps.p >= ps.end) return fail(&ps, "unterminated object");
        if (*ps.p == ',') { ps.p++; skip_ws(&ps); if (ps.p < ps.end && *ps.p == '}') return fail(&ps, "trailing comma"); continue; }
        if (*ps.p == '}') { ps.p++; break; }
        return fail(&ps, "expected ',' or '}'");
    }
    skip_ws(&ps);
    if (ps.p != ps.end) return fail(&ps, "trailing characters after the value");
    return XC_OK;
}

void json_free(JsonValue *v) {
    if (!v) return;
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (int64_t i = 0; i < v->n; i++) {
            json_free(&v->items[i]);
            if (v->keys) xc_free(v->keys[i]);
        }
        xc_free(v->items);
        xc_free(v->keys);
    }
    if (v->type == JSON_STRING) xc_free(v->s);
    memset(v, 0, sizeof *v);
}

const JsonValue *json_get(const JsonValue *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (int64_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

const char *json_type_name(JsonType t) {
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return (unsigned)t < 6 ? names[t] : "?";
}
