// captions.h - captioned-image lists for CLIP pretraining: one pair per line, `image<TAB>caption`, the image path
// relative to a root that is a folder or an uncompressed .tar (world_write stores its images as PPM members of
// <split>.tar and its captions as <split>_captions.tsv). A UTF-8 BOM, CRLF line ends and blank lines are accepted;
// an image may have several lines (several captions).
//
// Checks, each naming file:line:
//   - format errors fail the whole list: a line without a TAB, an empty, absolute or ".." image path, NUL bytes;
//   - a missing image, an empty caption (blank after trimming) or an over-long caption (more BPE tokens than fit
//     in the context with SOT and EOT, or more than max_bytes bytes) is a counted skip, listed in `issues`
//     (opt.strict = 1 turns any skip into an error); a list with no usable pair left is an error.
//
//   XcError err = {0};
//   Tokenizer *tok = tokenizer_load_clip("../shared/clip/bpe_simple_vocab_16e6.txt.gz", &err);
//   CaptionListOptions opt = caption_list_options_default();    // context 32, max_bytes 1000, not strict
//   opt.tok = tok;
//   CaptionList *cl = caption_list_open("world/images/train_captions.tsv", "world/images/train.tar", &opt, &err);
//   if (!cl) { fprintf(stderr, "%s\n", err.msg); return 1; }            // "train_captions.tsv:7: no TAB ..."
//   if (cl->n_skipped) fprintf(stderr, "%s", cl->issues);                // "train_captions.tsv:9: empty caption"
//   uint8_t rgb[32 * 32 * 3];                                           // (S, S, 3)
//   if (caption_list_image(cl, 0, 32, rgb, &err) != XC_OK) ...;         // damaged PPM, other size
//   int32_t tokens[32];
//   tokenizer_encode(tok, cl->items[0].caption, tokens, 32);
//   caption_list_free(cl);
#pragma once
#include <stdint.h>
#include "autograd/util.h"
#include "data/tokenizer.h"

typedef struct CaptionListOptions {
    Tokenizer *tok;     // NULL: captions are not tokenised (only max_bytes limits them)
    int context;        // with tok: a caption must fit in `context` tokens including SOT and EOT
    int max_bytes;      // a longer caption is over-long
    int strict;         // 1: a missing image, empty or over-long caption fails the list instead of being skipped
} CaptionListOptions;

CaptionListOptions caption_list_options_default(void);

typedef struct CaptionItem {
    const char *image;      // as written in the list (points into the list's buffer)
    const char *caption;    // trimmed
    int line;               // 1-based line in the list file
    int64_t offset, size;   // tar root: the member's bytes; folder root: 0, -1
} CaptionItem;

typedef struct CaptionList {
    char path[512], root[512];
    int is_tar;
    int64_t n;                  // usable pairs
    CaptionItem *items;         // (n)
    int64_t n_missing, n_empty, n_too_long, n_skipped;   // lines skipped, by reason, and their sum
    int max_tokens;             // most BPE tokens of a kept caption (without SOT/EOT; 0 without a tokenizer)
    char *issues;               // "list:line: problem\n" for the first 20 skipped lines (+ a count), "" if none
    char *buf;                  // the list file's text
} CaptionList;

CaptionList *caption_list_open(const char *list_path, const char *root, const CaptionListOptions *opt, XcError *err);
void caption_list_free(CaptionList *cl);

// The image of pair i: a binary PPM (P6, maxval 255) of S x S pixels, into rgb (S, S, 3). XC_ERR with
// "list:line: image: reason" when it cannot be read, is not such a PPM or has another size.
int caption_list_image(const CaptionList *cl, int64_t i, int S, uint8_t *rgb, XcError *err);

// A binary PPM of S x S pixels at [offset, offset + size) of a file (size -1: to the end of the file); name is
// used in messages. The attribute lists of the probe split (dataset_open on probe.tar) read their images with it.
int ppm_read(const char *path, int64_t offset, int64_t size, const char *name, int S, uint8_t *rgb, XcError *err);
