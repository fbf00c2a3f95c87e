// weights.h - a set of named float32 tensors read from (or written to) a weights file.
//
// The common currency between file formats and the model: every loader (safetensors, PyTorch zip /
// TorchScript archives, HDF5, Hugging Face layouts) produces a WeightSet keyed by the official
// state-dict names (SPEC.md), converted to float32; the model then takes tensors by name.
//
//   WeightSet ws = {0};
//   XcError err;
//   if (weights_load(&ws, "ViT-B-32.pt", &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//   const WeightTensor *w = weights_find(&ws, "visual.conv1.weight"); // NULL if absent
//   ...
//   weights_free(&ws);
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
