// weight_set.c - the WeightSet container (weight_set.h).
#include "checkpoints/weight_set.h"

#include <string.h>

const WeightTensor *weights_first_nonfinite(const WeightSet *ws) {
    for (int i = 0; i < ws->n; i++)
        if (!xc_all_finite(ws->t[i].data, ws->t[i].numel)) return &ws->t[i];
    return NULL;
}

const WeightTensor *weights_find(const WeightSet *ws, const char *name) {
    for (int i = 0; i < ws->n; i++)
        if (strcmp(ws->t[i].name, name) == 0) return &ws->t[i];
    return NULL;
}

WeightTensor *weights_add_owned(WeightSet *ws, const char *name, int ndim, const int64_t *shape, float *data) {
    XC_CHECK(!weights_find(ws, name), "weights_add: duplicate tensor name %s", name);
    return ckpt_append_owned(ws, name, ndim, shape, data);
}

WeightTensor *ckpt_append_owned(WeightSet *ws, const char *name, int ndim, const int64_t *shape, float *data) {
    XC_CHECK(ndim >= 0 && ndim <= XC_WEIGHT_MAX_DIMS, "weights_add: %d dimensions for %s", ndim, name);
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? 2 * ws->cap : 64;
        ws->t = xc_realloc(ws->t, (size_t)ws->cap * sizeof *ws->t);
    }
    WeightTensor *t = &ws->t[ws->n++];
    memset(t, 0, sizeof *t);
    size_t len = strlen(name);
    t->name = xc_malloc(len + 1);
    memcpy(t->name, name, len + 1);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        XC_CHECK(shape[d] >= 0, "weights_add: negative dimension in %s", name);
        t->shape[d] = shape[d];
        t->numel *= shape[d];
    }
    t->data = data;
    return t;
}

WeightTensor *weights_add(WeightSet *ws, const char *name, int ndim, const int64_t *shape, const float *data) {
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    float *copy = xc_malloc((size_t)numel * sizeof(float));
    if (data) memcpy(copy, data, (size_t)numel * sizeof(float));
    else memset(copy, 0, (size_t)numel * sizeof(float));
    return weights_add_owned(ws, name, ndim, shape, copy);
}

void weights_free(WeightSet *ws) {
    for (int i = 0; i < ws->n; i++) {
        xc_free(ws->t[i].name);
        xc_free(ws->t[i].data);
    }
    xc_free(ws->t);
    memset(ws, 0, sizeof *ws);
}
