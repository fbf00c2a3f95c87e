// dataset.h - video lists, label CSVs, .tar roots and few-shot subsets (docs/model.md §8, §10).
//
// A list file has one video per line: `relative/path.mp4 <label id>` (whitespace separated; a UTF-8 BOM, CRLF line
// ends and blank lines are accepted). The root is a folder or an uncompressed .tar holding the videos; a .tar is
// indexed once (ustar, GNU long names and pax `path=` records) and its members are decoded in place. A list path
// is looked up in the tar as written (a leading "./" ignored), else by its basename when that is unique (X-CLIP
// looks members up by basename).
// The label file is a CSV with the header `id,name` and ids 0..K-1 each once.
//
//   XcError err = {0};
//   LabelSet labels;
//   if (labels_load("labels/hmdb_51_labels.csv", &labels, &err) != XC_OK) ...;
//   Dataset *ds = dataset_open("train.txt", "videos.tar", labels.count, &err);  // NULL + "train.txt:12: ..."
//   if (ds->n_missing) fprintf(stderr, "%s\n", ds->issues);                    // missing files, one per line
//   dataset_write_fewshot(ds, 8, 1024, "train_k8.txt", &err);                  // 8 videos per class
//   dataset_free(ds); labels_free(&labels);
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "autograd/util.h"
#include "data/video.h"

typedef struct LabelSet {
    int count;      // K
    char **names;   // (K) class names, UTF-8
} LabelSet;

// Parse a label CSV. XC_ERR + "path:line: problem" (header, id not an integer, ids not 0..K-1 in order, empty
// name, duplicate id, a quoted name without its closing quote or with text after it). A name in double quotes
// (RFC 4180) keeps its commas and blanks, and "" inside stands for one quote: `3,"say ""hi"", left"` names
// class 3 `say "hi", left`. Unquoted names are trimmed and taken as written (quotes inside included).
int labels_load(const char *path, LabelSet *out, XcError *err);
void labels_free(LabelSet *ls);
// One CSV field as RFC 4180 writes it: in double quotes, with quotes doubled, when it holds a comma, a quote,
// CR or LF (or starts or ends with a blank, which an unquoted field would lose); as it is otherwise.
// labels_load reads such a name back unchanged (when it has no line break).
void csv_write_field(FILE *f, const char *s);

typedef struct DatasetItem {
    char *path;        // as written in the list
    int32_t label;
    int line;          // line number in the list file (1-based)
    int64_t offset;    // tar root: member data offset and size; folder root: 0, -1
    int64_t size;
    int missing;       // 1 if the file (or tar member) does not exist or is no regular file
    const char *why;   // missing: "no such file", "a directory", "a FIFO (named pipe)", "a symbolic link loop", ...
} DatasetItem;

typedef struct Dataset {
    char list_path[512];
    char root[512];
    int is_tar;
    int64_t n;             // videos in the list
    DatasetItem *items;    // (n)
    int num_classes;       // K given to dataset_open, or max label + 1 when it was 0
    int64_t n_missing;     // items whose file is missing
    char *issues;          // "list:line: path: no such file in root" lines for missing files, or "path: a
                           // directory, not a video file (in root)" ("" if none)
} Dataset;

// Read and validate a list against a root (folder or .tar). Format errors fail the whole list with up to 10
// "list:line: problem" lines in err (a line that is not `<path> <int>`, a label outside [0, num_classes) when
// num_classes > 0, a negative label, an absolute path or "..", an empty list). Missing files do not fail:
// they are counted and listed in issues, and the loader reports them as bad videos.
Dataset *dataset_open(const char *list_path, const char *root, int num_classes, XcError *err);
void dataset_free(Dataset *ds);
// The VideoSource of item i (path joined with the root, or the tar region). path_buf holds the joined path.
VideoSource dataset_source(const Dataset *ds, int64_t i, char *path_buf, size_t n);

// Few-shot subset: for every class 0..K-1 draw k videos without replacement (rng_stream(seed, RNG_STREAM_ORDER),
// classes in order, a partial Fisher-Yates over the class's videos in list order) and write them as a list file,
// class by class. XC_ERR if a class has fewer than k videos.
int dataset_write_fewshot(const Dataset *ds, int k, uint64_t seed, const char *out_path, XcError *err);

// ---- .tar index (used by dataset_open; public for tools and tests) --------------------------------------------
typedef struct TarIndex TarIndex;
TarIndex *tar_index_open(const char *path, XcError *err);
void tar_index_free(TarIndex *t);
// Find a member by name ("./" prefix ignored), else by unique basename. 1 if found (offset, size set).
int tar_index_find(const TarIndex *t, const char *name, int64_t *offset, int64_t *size);
int64_t tar_index_count(const TarIndex *t);
