// tokenizer_decode.c - ids -> text, as SimpleTokenizer.decode: token strings joined, each character mapped
// back to its byte (bytes_to_unicode inverted), "</w>" -> " ".
#include "data/tokenizer_internal.h"

#include <stdio.h>
#include <string.h>

#include "autograd/utf8.h"

size_t tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap) {
    size_t need = 1;
    for (size_t i = 0; i < n; i++)
        need += ids[i] >= 0 && (size_t)ids[i] < t->n_vocab ? t->str_len[ids[i]] : 24;
    char *raw = xc_malloc(need);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->n_vocab) {
            len += (size_t)snprintf(raw + len, need - len, "<?%d>", ids[i]);
            continue;
        }
        const unsigned char *s = (const unsigned char *)t->strings + t->str_off[ids[i]];
        size_t sl = t->str_len[ids[i]];
        for (size_t k = 0; k < sl;) { // each char of a token string stands for one byte
            uint32_t cp;
            size_t used = xc_utf8_decode(s + k, sl - k, &cp);
            if (!used) used = 1; // not UTF-8: the byte as it is (cp = U+FFFD maps to no byte)
            if (cp < 324 && t->cp_byte[cp] >= 0) raw[len++] = (char)t->cp_byte[cp];
            else { memcpy(raw + len, s + k, used); len += used; }
            k += used;
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < len;) {
        char c = raw[i];
        if (len - i >= 4 && memcmp(raw + i, "</w>", 4) == 0) { c = ' '; i += 4; } else i++;
        if (cap && total < cap - 1) out[total] = c;
        total++;
    }
    if (cap) out[total < cap - 1 ? total : cap - 1] = 0;
    xc_free(raw);
    return total;
}
