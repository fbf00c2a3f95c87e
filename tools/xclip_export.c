// xclip-export - convert any weights file xclip reads (or a training snapshot) into safetensors, HDF5 or a
// PyTorch .pth, with the official names or a Hugging Face layout.
//
//   xclip-export ViT-B-32.pt clip-b32.safetensors        # TorchScript archive (fp16) -> float32 safetensors
//   xclip-export k400_32_8.pth xclip.h5                  # X-CLIP training checkpoint {'model': ...} -> HDF5
//   xclip-export run/snap-000000012000.h5 model.pth      # snapshot (model only) -> {'model': state_dict}
//   xclip-export --hf model.h5 pytorch_model.bin.pth     # Hugging Face XCLIPModel (or CLIPModel) names
//
// Exit codes: 0 done, 1 the input could not be read or the output not written, 2 usage error.
#include <stdio.h>
#include <string.h>

#include "autograd/runtime.h"
#include "checkpoints/snapshot.h"
#include "checkpoints/weights.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-export [--hf | --hf=clip | --hf=xclip] [--flat] [--quiet] IN OUT\n"
            "\n"
            "Reads IN (safetensors; PyTorch .pth/.pt state dicts, also nested as {'model': ...} or\n"
            "{'state_dict': ...}; TorchScript archives such as OpenAI's ViT-B-32.pt; HDF5; Hugging Face\n"
            "CLIP / X-CLIP layouts; xclip training snapshots, of which only the model is read) and writes\n"
            "every tensor as float32 with the official OpenAI/X-CLIP names to OUT, whose extension picks\n"
            "the format: .safetensors, .h5 / .hdf5, or .pth / .pt (a zip laid out byte for byte as\n"
            "torch 1.13's torch.save, loadable with torch.load(OUT, weights_only=True)).\n"
            "\n"
            "  --hf        Hugging Face names: XCLIPModel (microsoft/xclip-base-patch32) when IN holds X-CLIP\n"
            "              tensors (mit.*, prompts_*, message_*), CLIPModel otherwise\n"
            "  --hf=clip   force CLIPModel names; --hf=xclip force XCLIPModel names\n"
            "  --flat      .pth: the bare state dict (default: {'model': state_dict} with official names,\n"
            "              the bare state dict with --hf, as pytorch_model.bin)\n"
            "  --quiet     print nothing on success\n"
            "  --help      this text\n"
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
    bool hf = false, quiet = false, flat = false;
    int hf_kind = 0; // 0 auto, 1 CLIPModel, 2 XCLIPModel
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        else if (strcmp(argv[i], "--hf") == 0) hf = true;
        else if (strcmp(argv[i], "--hf=clip") == 0) { hf = true; hf_kind = 1; }
        else if (strcmp(argv[i], "--hf=xclip") == 0) { hf = true; hf_kind = 2; }
        else if (strcmp(argv[i], "--flat") == 0) flat = true;
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
    bool h5 = ends_with(out, ".h5") || ends_with(out, ".hdf5"), pth = ends_with(out, ".pth") || ends_with(out, ".pt");
    if (!h5 && !pth && !ends_with(out, ".safetensors")) {
        fprintf(stderr, "xclip-export: %s: unknown output format\nHINT: name the output *.safetensors, *.h5, *.hdf5, *.pth or *.pt\n", out);
        return 2;
    }
    bool snapshot = snapshot_is_snapshot_file(in);
    WeightSet ws = {0};
    XcError err = {0};
    if (weights_load(&ws, in, &err) != XC_OK) { fprintf(stderr, "xclip-export: %s\n", err.msg); return 1; }
    bool xclip_names = hf && (hf_kind == 2 || (hf_kind == 0 && weights_is_xclip(&ws)));
    if (hf) {
        WeightSet h = {0};
        int rc = xclip_names ? weights_to_hf_xclip(&h, &ws, &err) : weights_to_hf_clip(&h, &ws, &err);
        if (rc != XC_OK) {
            fprintf(stderr, "xclip-export: %s: %s\n", in, err.msg);
            weights_free(&ws);
            return 1;
        }
        weights_free(&ws);
        ws = h;
    }
    int rc = h5 ? weights_save_hdf5(&ws, out, &err)
             : pth ? weights_save_torch(&ws, out, !(flat || hf), &err)
                   : weights_save_safetensors(&ws, out, &err);
    if (rc != XC_OK) { fprintf(stderr, "xclip-export: %s\n", err.msg); weights_free(&ws); return 1; }
    if (!quiet) {
        int64_t total = 0;
        for (int i = 0; i < ws.n; i++) total += ws.t[i].numel;
        printf("xclip-export: %s%s -> %s: %d tensors, %lld parameters (float32, %s names)\n", in,
               snapshot ? " (snapshot: model only)" : "", out, ws.n, (long long)total,
               !hf ? "official" : xclip_names ? "Hugging Face XCLIPModel" : "Hugging Face CLIPModel");
    }
    weights_free(&ws);
    return 0;
}
