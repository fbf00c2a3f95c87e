// weights.h - read any weights file into a WeightSet: the format is recognised from the file's first
// bytes, its reader is called and the names are normalised.
//
// The WeightSet (checkpoints/weight_set.h) is the common currency between file formats and the model:
// every reader (checkpoints/weight_formats.h: safetensors, PyTorch zip / TorchScript archives, HDF5)
// produces one, converted to float32, and weights_load keys it by the official state-dict names
// (docs/model.md; Hugging Face layouts mapped by checkpoints/hf_names.h); the model then takes tensors by name.
// This header includes those three, so callers include it alone. The readers never include it: the
// arrows go weights.c -> readers -> weight_set.
//
//   WeightSet ws = {0};
//   XcError err;
//   if (weights_load(&ws, "ViT-B-32.pt", &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//   const WeightTensor *w = weights_find(&ws, "visual.conv1.weight"); // NULL if absent
//   printf("%s: %lld x %lld x %lld x %lld\n", w->name, (long long)w->shape[0], ...);
//   if (weights_save_safetensors(&ws, "clip.safetensors", &err) != XC_OK) { ... }   // weight_formats.h
//   weights_free(&ws);
//
// Formats weights_load understands (chosen by the first bytes of the file, never by its name alone):
//   - xclip training snapshots (checkpoints/snapshot.h): the model tensors, verified by their checksums;
//   - PyTorch zip checkpoints ("PK\3\4"): torch.save of a state dict, also nested as {'model': sd} or
//     {'state_dict': sd} beside other entries (optimizer state, a pickled config...), and TorchScript
//     archives (torch.jit.save, e.g. OpenAI's ViT-B-32.pt with fp16 storages). The pickles are read by a
//     restricted unpickler that executes nothing (checkpoints/pickle.h).
//   - HDF5 ("\x89HDF\r\n\x1a\n"): every float dataset in the file; the name is its path with '/' -> '.'
//     (weights_save_hdf5 writes one root-level dataset per tensor named by the official name, dots
//     included, e.g. "/visual.conv1.weight"; h5py reads it as f["visual.conv1.weight"]).
//   - safetensors (8-byte little-endian header length, then JSON): F32, F16, BF16.
//   - a Hugging Face model folder (from_pretrained's layout): its model.safetensors, else pytorch_model.bin.
// After reading, names are normalised: a leading "module." (DataParallel) is stripped from every name,
// and a Hugging Face CLIP or X-CLIP layout (vision_model.*, text_model.*, mit.encoder.*, ...) is mapped onto
// the official names.
// Untrusted files: the safetensors, zip and pickle readers are our own, validate every number before use
// and are fuzzed under ASan (tests/test_fuzz_weights.c). HDF5 files are parsed by libhdf5, which is not
// hardened against hostile files: load HDF5 weights only from sources you trust (we check each dataset's
// layout, filters and sizes before libhdf5 reads its data, not the file's metadata: see h5io.h).
// Memory (tests/test_weight_bombs.c, bench/bench_weight_bombs.c): reading a file costs its size (it is read
// whole) + its float32 tensors + about 300 bytes per tensor, plus for PyTorch archives the pickle's objects (at
// most 16 MiB + the storages' size in the file) and the inflated copies of deflated entries (at most 16 x their
// compressed size + 16 MiB), and for HDF5 the chunks libhdf5 decodes (in all at most 16 x what they store +
// 16 MiB, one chunk held at a time). For real weights, which deflate hardly at all, that is about twice the
// tensors they hold. What would cost more is refused before it is allocated, naming the file and the limit: a
// safetensors header is read one member at a time (at most 65536 JSON values and 16 MiB of text in one member;
// __metadata__ an object of strings); zip entries may not overlap, a deflated storage must be viewed whole, and
// nothing after the pickle's STOP is read; HDF5 datasets may not be virtual or external, use only the deflate /
// shuffle / fletcher32 filters, and each deflated chunk must inflate to exactly its size (h5io.h).
// Integer buffers that are not weights ("position_ids", "num_batches_tracked") are skipped; any other
// non-float tensor is refused with its name.
#pragma once
#include <stdbool.h>
#include "checkpoints/hf_names.h"        // name mapping, included for the callers of this header
#include "checkpoints/weight_formats.h"  // each format's reader and writer, likewise
#include "checkpoints/weight_set.h"      // the container

// ---- whole files ----------------------------------------------------------------------------------
// Read any supported file (see above) into ws (which must be empty) with official names.
int weights_load(WeightSet *ws, const char *path, XcError *err);
// Same without the name normalisation: the names exactly as stored (after unnesting {'model': ...}).
int weights_load_raw(WeightSet *ws, const char *path, XcError *err);

// ---- names ----------------------------------------------------------------------------------------
// In place: strip a leading "module." (when every name has it), then map a Hugging Face CLIP layout
// onto the official names. ws is left unchanged on error.
int weights_normalise_names(WeightSet *ws, XcError *err);
