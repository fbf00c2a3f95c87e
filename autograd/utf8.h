// utf8.h - one code point to UTF-8 and back: the library's one encoder and one decoder (the JSON
// reader and the tokenizer use them).
//
//   char buf[4];
//   size_t n = xc_utf8_encode(0xE9, buf);                      // "é": n = 2, buf = C3 A9
//   uint32_t cp;
//   size_t used = xc_utf8_decode((const unsigned char *)buf, n, &cp);   // used = 2, cp = 0xE9
//   if (used == 0) { ... }                                      // not valid UTF-8 here; cp = U+FFFD
//
// Valid means the shortest form of a code point up to U+10FFFF that is not a surrogate (RFC 3629).
#pragma once
#include <stddef.h>
#include <stdint.h>

// Write cp (at most U+10FFFF) as 1 to 4 bytes to out, which has room for 4; returns the count.
size_t xc_utf8_encode(uint32_t cp, char *out);
// Decode the sequence starting at s[0] (n >= 1 bytes readable): its length, 1 to 4, with the code point in
// *cp; or 0 when the bytes there are not valid UTF-8 (a stray continuation byte, an overlong form, a
// surrogate, a value above U+10FFFF, a sequence cut short by n), and then *cp = U+FFFD.
size_t xc_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
