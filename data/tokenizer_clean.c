// tokenizer_clean.c - CLIP's text cleaning before pre-tokenisation: html.unescape twice, strip, collapse
// whitespace, strip, then Python's str.lower (with U+0130 and the Greek final sigma).
#include "data/tokenizer_internal.h"

#include <string.h>

#include "autograd/utf8.h"
#include "data/tokenizer_tables.h"

// html.unescape maps numeric references 0x80..0x9F through Windows-1252 (HTML5 rules).
static const uint16_t tok_cp1252[32] = {
    0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,
    0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A,
    0x0153, 0x9D, 0x017E, 0x0178};

// Python's str.isspace (used by strip): regex's \s plus U+001C..U+001F.
static bool is_py_space(uint32_t c) { return tok_is_regex_space(c) || (c >= 0x1C && c <= 0x1F); }

// Result of a numeric reference &#NNN; / &#xHH; (num saturated at 0x110000): 0 or 1 code point in *out.
static size_t numeric_ref(uint32_t num, uint32_t *out) {
    if (num == 0) { *out = 0xFFFD; return 1; }
    if (num == 0x0D) { *out = 0x0D; return 1; }
    if (num >= 0x80 && num <= 0x9F) { *out = tok_cp1252[num - 0x80]; return 1; }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { *out = 0xFFFD; return 1; }
    bool invalid = (num >= 0x1 && num <= 0x8) || num == 0xB || (num >= 0xE && num <= 0x1F) || num == 0x7F ||
                   (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE;
    if (invalid) return 0; // html.unescape drops these
    *out = num;
    return 1;
}

// Code point of the named reference s[0..n) (ASCII, may end in ';'), or -1.
static int64_t entity_find(const char *s, size_t n) {
    size_t lo = 0, hi = sizeof tok_entities / sizeof tok_entities[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *name = tok_entities[mid].name;
        size_t m = strlen(name);
        int c = memcmp(s, name, n < m ? n : m);
        if (c == 0) c = n < m ? -1 : n > m ? 1 : 0;
        if (c == 0) return tok_entities[mid].cp;
        if (c < 0) hi = mid; else lo = mid + 1;
    }
    return -1;
}

// One pass of Python's html.unescape over s[0..n), in place (the output is never longer); returns the new length.
// The reference grammar is &(#[0-9]+;? | #[xX][0-9a-fA-F]+;? | [^\t\n\f <&#;]{1,32};?).
static size_t html_unescape(uint32_t *s, size_t n) {
    size_t r = 0, w = 0;
    while (r < n) {
        if (s[r] != '&' || r + 1 >= n) { s[w++] = s[r++]; continue; }
        size_t k = r + 1;
        if (s[k] == '#') {
            k++;
            bool hex = k < n && (s[k] == 'x' || s[k] == 'X'); // "&#x" + hex digits, else "&#" + decimal digits
            size_t d0 = hex ? k + 1 : k, e = d0;
            uint32_t num = 0;
            for (; e < n; e++) {
                uint32_t c = s[e], d;
                if (c >= '0' && c <= '9') d = c - '0';
                else if (hex && (c | 32) >= 'a' && (c | 32) <= 'f') d = (c | 32) - 'a' + 10;
                else break;
                num = num >= 0x110000 ? 0x110000 : num * (hex ? 16 : 10) + d;
                if (num > 0x110000) num = 0x110000;
            }
            if (e == d0) { s[w++] = s[r++]; continue; } // "&#" + no digits: not a reference
            if (e < n && s[e] == ';') e++;
            uint32_t cp;
            if (numeric_ref(num, &cp)) s[w++] = cp;
            r = e;
            continue;
        }
        // named: up to 32 characters outside [\t\n\f <&#;], then an optional ';'
        size_t e = k;
        while (e < n && e - k < 32 && s[e] != '\t' && s[e] != '\n' && s[e] != '\f' && s[e] != ' ' && s[e] != '<' &&
               s[e] != '&' && s[e] != '#' && s[e] != ';')
            e++;
        if (e == k) { s[w++] = s[r++]; continue; }
        if (e < n && s[e] == ';') e++;
        size_t len = e - k, ascii = 0;
        char name[40];
        while (ascii < len && s[k + ascii] < 0x80) { name[ascii] = (char)s[k + ascii]; ascii++; }
        int64_t cp = ascii == len ? entity_find(name, len) : -1;
        size_t used = len;
        // else the longest prefix of at least 2 characters that is a name (only the legacy ones without ';' can be)
        for (size_t x = (len - 1 < ascii ? len - 1 : ascii); cp < 0 && x >= 2; x--) {
            cp = entity_find(name, x);
            used = x;
        }
        if (cp < 0) { while (r < e) s[w++] = s[r++]; continue; } // unknown: left as written
        s[w++] = (uint32_t)cp;
        for (size_t i = k + used; i < e; i++) s[w++] = s[i];
        r = e;
    }
    return w;
}

static size_t strip_py_space(uint32_t *s, size_t n) {
    size_t a = 0;
    while (a < n && is_py_space(s[a])) a++;
    while (n > a && is_py_space(s[n - 1])) n--;
    if (a) memmove(s, s + a, (n - a) * sizeof *s);
    return n - a;
}

static size_t collapse_space(uint32_t *s, size_t n) { // regex.sub(r'\s+', ' ', s)
    size_t w = 0;
    for (size_t r = 0; r < n;) {
        if (tok_is_regex_space(s[r])) {
            while (r < n && tok_is_regex_space(s[r])) r++;
            s[w++] = ' ';
        } else {
            s[w++] = s[r++];
        }
    }
    return w;
}

static uint32_t lower_cp(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    size_t lo = 0, hi = sizeof tok_lower_runs / sizeof tok_lower_runs[0];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const int32_t *r = tok_lower_runs[mid];
        if (c < (uint32_t)r[0]) hi = mid;
        else if (c > (uint32_t)r[1]) lo = mid + 1;
        else return (c - (uint32_t)r[0]) % (uint32_t)r[3] == 0 ? (uint32_t)((int32_t)c + r[2]) : c;
    }
    return c;
}

// Python lowers capital sigma to final sigma when a cased letter precedes it and none follows it, skipping
// case-ignorable characters (apostrophes, combining marks, ...) on both sides.
static bool final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && IN_TABLE(tok_case_ignorable_ranges, s[j - 1])) j--;
    if (j == 0 || !IN_TABLE(tok_cased_ranges, s[j - 1])) return false;
    j = i + 1;
    while (j < n && IN_TABLE(tok_case_ignorable_ranges, s[j])) j++;
    return j == n || !IN_TABLE(tok_cased_ranges, s[j]);
}

// UTF-8 text -> cleaned, lower-cased code points in t->low; returns their count.
size_t tok_clean_text(Tokenizer *t, const char *text) {
    size_t nb = strlen(text);
    tok_grow((void **)&t->cps, &t->cps_cap, nb + 1, sizeof *t->cps);
    size_t n = 0;
    for (size_t i = 0; i < nb; n++) { // an invalid byte reads as U+FFFD, consumed alone
        size_t used = xc_utf8_decode((const unsigned char *)text + i, nb - i, &t->cps[n]);
        i += used ? used : 1;
    }
    n = html_unescape(t->cps, n);
    n = html_unescape(t->cps, n);
    n = strip_py_space(t->cps, n);
    n = collapse_space(t->cps, n);
    n = strip_py_space(t->cps, n);
    tok_grow((void **)&t->low, &t->low_cap, 2 * n + 1, sizeof *t->low);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = t->cps[i];
        if (c == 0x130) { t->low[m++] = 'i'; t->low[m++] = 0x307; } // the one lower case of two code points
        else if (c == 0x3A3) t->low[m++] = final_sigma(t->cps, n, i) ? 0x3C2 : 0x3C3;
        else t->low[m++] = lower_cp(c);
    }
    return m;
}
