#!/usr/bin/env python3
"""Reference token ids for tests/test_tokenizer.c.

A from-scratch Python statement of what openai/CLIP clip/simple_tokenizer.py + clip.tokenize compute:
  clean:   html.unescape(html.unescape(text)).strip(), regex.sub(r'\\s+', ' ', .).strip(), .lower()
           (CLIP first runs ftfy.fix_text; ftfy is not installed here and is deliberately left out, as in the C
           tokenizer, so none of the strings below rely on it: no mojibake, curly quotes are kept as they are);
  split:   regex.findall with CLIP's pattern and regex.IGNORECASE;
  bytes:   every UTF-8 byte of a piece -> bytes_to_unicode char, last one + '</w>';
  BPE:     merge the lowest-ranked adjacent pair (all its occurrences, left to right) until none is ranked;
  tokens:  [SOT] + ids + [EOT], cut to the context as clip.tokenize(truncate=True) does (keep the first 77,
           then put EOT last). X-CLIP's own clip.tokenize raises on too-long input instead.

Run (needs the `regex` module: Debian /usr/bin/python3 + python3-regex) from the repository root:
    /usr/bin/python3 tests/ref/make_tokenizer_fixture.py ../shared
It writes tests/fixtures/tokenizer_ids.txt and tests/fixtures/tokenizer_hf/{vocab.json,merges.txt}.

Fixture format (UTF-8 text, one record = two lines):
    clip|hf <text>        text with bytes < 0x20, 0x7F and '\\' written as \\xHH
    <n_ids> <eot_pos> <id_0> ... <id_eot_pos>   n_ids = BPE ids without SOT/EOT and without truncation;
                                                then the 77-token row up to and including EOT (zeros follow)
"""
import csv
import glob
import gzip
import html
import json
import os
import random
import sys

import regex

CONTEXT = 77
CLIP_MERGES = 49152 - 256 - 2
HF_MERGES = 3000  # the tiny Hugging Face vocabulary keeps only the first merges
PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)


def byte_chars():
    """bytes_to_unicode as an ordered list of (byte, char): printable Latin-1 bytes keep their code point and come
    first; the remaining bytes get 256, 257, ... in byte order."""
    printable = [b for b in range(256) if 33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255]
    others = [b for b in range(256) if b not in printable]
    return [(b, chr(b)) for b in printable] + [(b, chr(256 + i)) for i, b in enumerate(others)]


class RefBPE:
    def __init__(self, encoder, merges):
        self.encoder = encoder                     # str -> id
        self.ranks = {m: i for i, m in enumerate(merges)}  # (a, b) -> rank; a repeated pair keeps the last
        self.byte_char = dict(byte_chars())
        self.sot = encoder["<|startoftext|>"]
        self.eot = encoder["<|endoftext|>"]

    def bpe(self, piece):
        if piece in ("<|startoftext|>", "<|endoftext|>"):
            return [piece]
        syms = list(piece[:-1]) + [piece[-1] + "</w>"]
        while len(syms) > 1:
            ranked = [(self.ranks[p], p) for p in zip(syms, syms[1:]) if p in self.ranks]
            if not ranked:
                break
            a, b = min(ranked)[1]
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        return syms

    @staticmethod
    def clean(text):
        text = html.unescape(html.unescape(text)).strip()
        text = regex.sub(r"\s+", " ", text).strip()
        return text.lower()

    def encode(self, text):
        ids = []
        for piece in PATTERN.findall(self.clean(text)):
            chars = "".join(self.byte_char[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self.bpe(chars))
        return ids

    def tokenize(self, text):
        ids = self.encode(text)
        row = [self.sot] + ids + [self.eot]
        if len(row) > CONTEXT:
            row = row[:CONTEXT]
            row[-1] = self.eot
        return len(ids), row


def load_clip(path):
    lines = gzip.open(path).read().decode("utf-8").split("\n")[1:CLIP_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    vocab = [c for _, c in byte_chars()]
    vocab += [c + "</w>" for c in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return RefBPE({s: i for i, s in enumerate(vocab)}, merges), merges


def escape(text):
    out = bytearray()
    for b in text.encode("utf-8"):
        out += b"\\x%02x" % b if b < 0x20 or b == 0x7F or b == 0x5C else bytes([b])
    return bytes(out)


TRICKY = [
    # plain, punctuation, digits
    "", " ", "   \t\n ", "a", "A", "arm wrestling", "Arm Wrestling", "ARM WRESTLING", "a photo of a cat.",
    "hello, world!", "hello,world", "...", "?!?!", "a--b", "e-mail", "(parenthesised) [bracketed] {braced}",
    "C++ and C#", "snake_case_name", "path/to/file.txt", "user@example.com", "https://example.com/a?b=c&d=e",
    "#hashtag @mention", "100%", "$3.50", "3.14159", "2024-01-31", "12:30pm", "1st 2nd 3rd 4th", "007", "1,000,000",
    "abc123def", "x86_64", "mp4", "h.264", "5 o'clock",
    # apostrophes and contractions
    "don't", "it's", "we'll", "they're", "I've", "I'm", "he'd", "DON'T", "It'S", "WE'LL", "'s", "'", "''s",
    "rock 'n' roll", "'hello'", "the dog's bone", "the dogs' bones", "o'neill", "y'all'd've", "'ll'll",
    "don\u2019t (curly)", "can't won't shan't", "it's 'quoted'",
    # HTML entities (html.unescape twice)
    "fish &amp; chips", "fish &amp;amp; chips", "&lt;b&gt;bold&lt;/b&gt;", "&quot;quoted&quot;", "it&#39;s",
    "it&#x27;s", "&#39;s", "caf&eacute;", "&copy; 2024", "&nbsp;leading nbsp", "a&nbsp;&nbsp;b", "&#65;&#x42;&#X43;",
    "&#128512;", "&#x1F600;", "&#0;", "&#x80;", "&#150; dash", "&#13;", "&#1;x", "&#xD800;", "&#99999999;",
    "&amp", "&ampx", "&notit;", "&lt3", "&unknown;", "& alone", "&&amp;", "&#;", "&#x;", "AT&T", "&hellip;",
    "&mdash;&ndash;", "&AMP;", "&apos;", "&Sigma;&Omega;", "&euro;5", "&aacute&eacute",
    # whitespace
    "multiple   spaces", "tabs\tand\nnewlines", "\r\n windows \r\n", "  leading and trailing  ",
    "a\u00a0b", "a\u2003b", "a\u3000b", "a\x1cb", "\x1c\x1d edge \x1e\x1f", "a\x0bb\x0cc", "a\u2028b\u2029c",
    "a\u0085b", "ab\u200bcd",
    # accented Latin, Latin Extended, Turkish I
    "café", "CAFÉ", "naïve résumé", "Ærøskøbing", "straße", "STRASSE", "Œuvre", "Łódź", "ŠKODA", "ĳssel",
    "İstanbul", "ISTANBUL", "ı dotless", "ǅungla", "ſtop", "'ſ", "<|ſtartoftext|>", "e\u0301 combining",
    "ª º µ", "½ ¼ ² ³", "× ÷",
    # Greek, Cyrillic, Armenian, Hebrew, Arabic, Devanagari, Thai
    "ΟΔΥΣΣΕΥΣ", "Σ", "ΑΣ.", "ΑΣ'Α", "ΣΑΣ ΣΑΣ", "Ἀθῆναι", "αβγ δεζ", "ᾼ ᾳ \u0345",
    "Москва", "ПРИВЕТ МИР", "Ёлка", "Ѣ ѣ", "Ґ Є І Ї", "Հայաստան", "שלום עולם", "مرحبا بالعالم", "١٢٣ ٤٥٦",
    "नमस्ते दुनिया", "१२३", "สวัสดี",
    # CJK, kana, Hangul, full width
    "你好世界", "東京タワー", "ひらがな カタカナ", "한국어 텍스트", "ｆｕｌｌ ｗｉｄｔｈ １２３", "中文，标点。",
    "𠀀𠀁 ext-B", "Ⅻ roman", "①②③",
    # symbols and emoji
    "I ❤ NY", "🙂", "👍🏽 thumbs", "👨‍👩‍👧 family", "🇫🇷 flag", "⚽️ ball", "a😀b", "™ ® ©", "→ ← ↑", "∑∫√",
    "\U0001F600" * 5, "𝓗𝓮𝓵𝓵𝓸", "Kelvin \u212a",
    # special tokens in the text
    "<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "<|ENDOFTEXT|>", "!<|endoftext|>", "<|endoftext",
    "<|startoftext|><|endoftext|>", "<|\u017ftartoftext|>x",
    # invalid-ish and control characters
    "tab\x01soh", "bell\x07", "del\x7f", "\ufeffbom", "\ufffd replacement",
    # long strings (more than 77 tokens)
    " ".join(["word"] * 100), "antidisestablishmentarianism " * 20, "".join(str(i) for i in range(100)),
    "a" * 500, "!?" * 200, "The quick brown fox jumps over the lazy dog. " * 8,
    "supercalifragilisticexpialidocious" * 10, ("x" * 75), " ".join(["a"] * 75), " ".join(["a"] * 76),
]

HF_STRINGS = [
    "arm wrestling", "playing guitar", "don't stop believing", "fish &amp; chips", "café naïve",
    "ΟΔΥΣΣΕΥΣ", "你好", "🙂 emoji", "supercalifragilisticexpialidocious", "<|endoftext|>", " ".join(["tok"] * 90),
]


def label_names(shared):
    names = []
    for path in sorted(glob.glob(os.path.join(shared, "labels", "*.csv"))):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["id", "name"], path
        names += [row[1] for row in rows[1:]]
    seen = set()
    return [n for n in names if not (n in seen or seen.add(n))]


def record(out, mode, tok, text):
    n, row = tok.tokenize(text)
    out.write(mode.encode() + b" " + escape(text) + b"\n")
    out.write((" ".join(str(x) for x in [n, len(row) - 1] + row) + "\n").encode())


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
    clip, merges = load_clip(os.path.join(shared, "clip", "bpe_simple_vocab_16e6.txt.gz"))

    # Tiny Hugging Face pair: the byte symbols, the first HF_MERGES merges and the two special tokens, with ids
    # shuffled so that the C loader must take them from vocab.json rather than recompute CLIP's order.
    hf_merges = merges[:HF_MERGES]
    strings = [c for _, c in byte_chars()]
    strings += [c + "</w>" for c in strings]
    strings += ["".join(m) for m in hf_merges] + ["<|startoftext|>", "<|endoftext|>"]
    ids = list(range(len(strings)))
    random.Random(20240131).shuffle(ids)
    hf_vocab = dict(zip(strings, ids))
    hf = RefBPE(hf_vocab, hf_merges)
    os.makedirs(os.path.join(root, "tokenizer_hf"), exist_ok=True)
    with open(os.path.join(root, "tokenizer_hf", "vocab.json"), "w", encoding="ascii") as f:
        json.dump(hf_vocab, f, ensure_ascii=True)  # \uXXXX escapes for the non-ASCII symbols
    with open(os.path.join(root, "tokenizer_hf", "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in hf_merges))

    labels = label_names(shared)
    with open(os.path.join(root, "tokenizer_ids.txt"), "wb") as out:
        for text in labels + TRICKY:
            record(out, "clip", clip, text)
        for text in HF_STRINGS:
            record(out, "hf", hf, text)
    print(f"{len(labels)} label names, {len(TRICKY)} tricky strings, {len(HF_STRINGS)} HF strings")


if __name__ == "__main__":
    main()
