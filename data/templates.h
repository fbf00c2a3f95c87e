// templates.h - a hand-crafted prompt ensemble (data.templates): the class-text templates of a file, as in
// openai/CLIP's zero-shot notebooks (a class's text feature = the normalised mean of its templates' features).
//
//   Templates t;
//   if (templates_load("configs/templates_video.txt", &t, &err) != XC_OK) ...   // "file:line: ..." on a bad line
//   for (int i = 0; i < t.count; i++) ... t.text[i] ...                        // e.g. "a video of a person {}."
//   templates_free(&t);
#pragma once
#include "autograd/util.h"

// The templates of a data.templates file: one per line, each with {}; blank lines and lines starting with # are
// skipped. XC_ERR + "file:line: ..." for a line without {}, or a file with no template.
typedef struct Templates {
    char **text;
    int count;
} Templates;
int templates_load(const char *path, Templates *t, XcError *err);
void templates_free(Templates *t);
