// xclip-export - convert any weights file xclip reads into safetensors or HDF5 with the official names.
//
//   xclip-export ViT-B-32.pt clip-b32.safetensors        # TorchScript archive (fp16) -> float32 safetensors
//   xclip-export k400_32_8.pth xclip.h5                  # X-CLIP training checkpoint {'model': ...} -> HDF5
//   xclip-export --hf pytorch_model.safetensors out.safetensors   # write Hugging Face CLIPModel names instead
//
// Exit codes: 0 done, 1 the input could not be read or the output not written, 2 usage error.
#include <stdio.h>
#include <string.h>

#include "autograd/runtime.h"
#include "checkpoints/weights.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-export [--hf] [--quiet] IN OUT\n"
            "\n"
            "Reads IN (safetensors; PyTorch .pth/.pt state dicts, also nested as {'model': ...} or\n"
            "{'state_dict': ...}; TorchScript archives such as OpenAI's ViT-B-32.pt; HDF5; Hugging Face\n"
            "CLIP layouts) and writes every tensor as float32 with the official OpenAI/X-CLIP names to OUT,\n"
            "whose extension picks the format: .safetensors, or .h5 / .hdf5.\n"
            "\n"
            "  --hf      write Hugging Face CLIPModel names (vision_model.*, text_model.*) instead\n"
            "  --quiet   print nothing on success\n"
            "  --help    this text\n"
            "\n"
            "Exit status: 0 success, 1 read/write failure, 2 usage error.\n");
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *in = NULL, *out = NULL;
    bool hf = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        else if (strcmp(argv[i], "--hf") == 0) hf = true;
        else if (strcmp(argv[i], "--quiet") == 0) quiet = true;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "xclip-export: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else { fprintf(stderr, "xclip-export: too many arguments (%s)\n", argv[i]); usage(stderr); return 2; }
    }
    if (!in || !out) { fprintf(stderr, "xclip-export: need IN and OUT\n"); usage(stderr); return 2; }
    bool h5 = ends_with(out, ".h5") || ends_with(out, ".hdf5");
    if (!h5 && !ends_with(out, ".safetensors")) {
        fprintf(stderr, "xclip-export: %s: unknown output format\nHINT: name the output *.safetensors, *.h5 or *.hdf5\n", out);
        return 2;
    }
    WeightSet ws = {0};
    XcError err = {0};
    if (weights_load(&ws, in, &err) != XC_OK) { fprintf(stderr, "xclip-export: %s\n", err.msg); return 1; }
    if (hf) {
        WeightSet h = {0};
        if (weights_to_hf_clip(&h, &ws, &err) != XC_OK) {
            fprintf(stderr, "xclip-export: %s: %s\n", in, err.msg);
            weights_free(&ws);
            return 1;
        }
        weights_free(&ws);
        ws = h;
    }
    int rc = h5 ? weights_save_hdf5(&ws, out, &err) : weights_save_safetensors(&ws, out, &err);
    if (rc != XC_OK) { fprintf(stderr, "xclip-export: %s\n", err.msg); weights_free(&ws); return 1; }
    if (!quiet) {
        int64_t total = 0;
        for (int i = 0; i < ws.n; i++) total += ws.t[i].numel;
        printf("xclip-export: %s -> %s: %d tensors, %lld parameters (float32, %s names)\n", in, out, ws.n,
               (long long)total, hf ? "Hugging Face" : "official");
    }
    weights_free(&ws);
    return 0;
}
