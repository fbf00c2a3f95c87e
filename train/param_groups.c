// param_groups.c - see param_groups.h.
#include "train/param_groups.h"

#include <string.h>
#include "nn/xclip.h"

bool xclip_decays(const char *name, int ndim) {
    size_t n = strlen(name);
    bool bias = n >= 5 && !strcmp(name + n - 5, ".bias");
    return ndim != 1 && !bias && !strstr(name, "positional_embedding");
}

void xclip_adamw_groups(AdamW *opt) {
    for (int i = 0; i < opt->ps->n; i++) {
        const Tensor *p = opt->ps->p[i];
        adamw_set_group(opt, i, xclip_is_new_tensor(p->name) ? 1 : 0, xclip_decays(p->name, p->ndim));
    }
}
