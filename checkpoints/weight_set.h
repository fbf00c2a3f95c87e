// weight_set.h - WeightSet: named float32 tensors, the common currency of the weight formats.
//
// Every reader (checkpoints/weight_formats.h) fills one, every writer takes one, and the model takes its
// tensors by name. This header is the container alone; reading a file of any format is
// checkpoints/weights.h.
//
//   WeightSet ws = {0};
//   int64_t shape[2] = {768, 512};                              // (W, E)
//   weights_add(&ws, "visual.proj", 2, shape, NULL);            // a zero-filled copy, owned by the set
//   const WeightTensor *w = weights_find(&ws, "visual.proj");  // NULL if absent
//   printf("%s: %lld x %lld, %lld floats\n", w->name, (long long)w->shape[0], (long long)w->shape[1],
//          (long long)w->numel);
//   weights_free(&ws);                                          // every name and every data buffer
#pragma once
#include <stdint.h>
#include "autograd/util.h"

#define XC_WEIGHT_MAX_DIMS 8

typedef struct WeightTensor {
    char *name;                            // official state-dict name, NUL-terminated
    int ndim;                              // 0 (scalar) .. XC_WEIGHT_MAX_DIMS
    int64_t shape[XC_WEIGHT_MAX_DIMS];     // PyTorch dimension order
    int64_t numel;                         // product of shape (1 for a scalar)
    float *data;                           // numel floats, contiguous row-major, owned by the set
} WeightTensor;

typedef struct WeightSet {
    WeightTensor *t; // n tensors, in file order
    int n, cap;
} WeightSet;

// The first tensor holding a NaN or an infinity (xc_all_finite), or NULL: weights that must not be written.
const WeightTensor *weights_first_nonfinite(const WeightSet *ws);
// Tensor by exact name, or NULL.
const WeightTensor *weights_find(const WeightSet *ws, const char *name);
// Append a copy of name/shape/data (data may be NULL: zero-filled). Returns the new tensor.
// A duplicate name is a programmer error (fatal); use weights_find first when unsure.
WeightTensor *weights_add(WeightSet *ws, const char *name, int ndim, const int64_t *shape, const float *data);
// Append a tensor taking ownership of data (numel floats from xc_malloc). Fatal on a duplicate name.
WeightTensor *weights_add_owned(WeightSet *ws, const char *name, int ndim, const int64_t *shape, float *data);
// The same without the (linear) duplicate check: for readers that checked all names at once.
WeightTensor *ckpt_append_owned(WeightSet *ws, const char *name, int ndim, const int64_t *shape, float *data);
// Free every tensor and reset the set to {0}.
void weights_free(WeightSet *ws);
