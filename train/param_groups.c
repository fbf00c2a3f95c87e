// param_groups.c - see param_groups.h.
#include "train/param_groups.h"

#include <string.h>

float xclip_lr_scale(const char *name) {
    return strstr(name, "message_") || strstr(name, "mit") || strstr(name, "prompts") ? 10.0f : 1.0f;
}

bool xclip_decays(const char *name, int ndim) {
    size_t n = strlen(name);
    bool bias = n >= 5 && !strcmp(name + n - 5, ".bias");
    return ndim != 1 && !bias && !strstr(name, "positional_embedding");
}

void xclip_param_groups(AdamW *opt) {
    for (int i = 0; i < opt->ps->n; i++) {
        const Tensor *p = opt->ps->p[i];
        adamw_set_group(opt, i, xclip_lr_scale(p->name), xclip_decays(p->name, p->ndim));
    }
}
