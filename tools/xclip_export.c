// xclip-export - convert any weights file xclip reads (or a training snapshot) into safetensors, HDF5 or a
// PyTorch .pth, with the official names or a Hugging Face layout (weights plus config.json).
//
//   xclip-export ViT-B-32.pt clip-b32.safetensors        # TorchScript archive (fp16) -> float32 safetensors
//   xclip-export k400_32_8.pth xclip.h5                  # X-CLIP training checkpoint {'model': ...} -> HDF5
//   xclip-export run/snap-000000012000.h5 model.pth      # snapshot (model only) -> {'model': state_dict}
//   xclip-export --hf model.h5 hf-xclip/                 # Hugging Face folder: model.safetensors + config.json
//   xclip-export --hf=clip model.h5 hf-clip/pytorch_model.bin   # the CLIP part only, as CLIPModel
//
// Exit codes: 0 done, 1 the input could not be read, could not be represented or the output not written,
// 2 usage error.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autograd/runtime.h"
#include "checkpoints/snapshot.h"
#include "checkpoints/weights.h"
#include "nn/hf_config.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: xclip-export [--hf | --hf=clip | --hf=xclip] [--flat] [--no-config] [--allow-nonfinite] [--quiet] IN OUT\n"
            "\n"
            "Reads IN (safetensors; PyTorch .pth/.pt state dicts, also nested as {'model': ...} or\n"
            "{'state_dict': ...}; TorchScript archives such as OpenAI's ViT-B-32.pt; HDF5; Hugging Face\n"
            "CLIP / X-CLIP layouts; xclip training snapshots, of which only the model is read) and writes\n"
            "every tensor as float32 with the official OpenAI/X-CLIP names to OUT, whose extension picks\n"
            "the format: .safetensors, .h5 / .hdf5, or .pth / .pt / .bin (a zip laid out byte for byte as\n"
            "torch 1.13's torch.save, loadable with torch.load(OUT, weights_only=True)).\n"
            "\n"
            "  --hf        Hugging Face layout: XCLIPModel (microsoft/xclip-base-patch32) when IN holds X-CLIP\n"
            "              tensors (mit.*, prompts_*, message_*), CLIPModel otherwise, and a config.json\n"
            "              (CLIPConfig / XCLIPConfig with the model's sizes) beside OUT, so that the folder\n"
            "              loads with from_pretrained. OUT may be a folder (existing, or ending in '/'):\n"
            "              then OUT/model.safetensors and OUT/config.json are written.\n"
            "  --hf=clip   CLIPModel: only CLIP's tensors (the X-CLIP additions mit.*, prompts_*, message_*,\n"
            "              and head.* / prompt_learner.ctx are left out): a CLIP-only export of any checkpoint\n"
            "  --hf=xclip  XCLIPModel; refused for models XCLIPModel cannot hold (model.cct = false,\n"
            "              mit_layers = 0, prompt_layers = 0, a linear head, CoOp context vectors)\n"
            "  --no-config with --hf: write the weights only, no config.json\n"
            "  --flat      .pth / .bin: the bare state dict (default: {'model': state_dict} with official\n"
            "              names, the bare state dict with --hf, as pytorch_model.bin)\n"
            "  --allow-nonfinite  convert weights holding NaN or infinities as they are, bit for bit (default:\n"
            "              refused, naming the tensor: diverged weights are not passed on)\n"
            "  --quiet     print nothing on success\n"
            "  --help      this text\n"
            "\n"
            "Exit status: 0 success, 1 read/write failure or a model the Hugging Face class cannot hold,\n"
            "2 usage error.\n");
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// OUT names a folder: an existing directory, or a path ending in '/'.
static bool is_folder(const char *path) {
    struct stat st;
    return ends_with(path, "/") || (stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

static int write_text(const char *path, const char *text, XcError *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return xc_err(err, "%s: cannot create (%s)", path, strerror(errno));
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    return ok ? XC_OK : xc_err(err, "%s: write failed", path);
}

int main(int argc, char **argv) {
    xc_runtime_init(argc, argv); // may re-execute with faster OpenBLAS kernels
    const char *in = NULL, *out = NULL;
    bool hf = false, quiet = false, flat = false, config = true, allow_nonfinite = false;
    int hf_kind = 0; // 0 auto, 1 CLIPModel, 2 XCLIPModel
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        else if (strcmp(argv[i], "--hf") == 0) hf = true;
        else if (strcmp(argv[i], "--hf=clip") == 0) { hf = true; hf_kind = 1; }
        else if (strcmp(argv[i], "--hf=xclip") == 0) { hf = true; hf_kind = 2; }
        else if (strcmp(argv[i], "--flat") == 0) flat = true;
        else if (strcmp(argv[i], "--no-config") == 0) config = false;
        else if (strcmp(argv[i], "--quiet") == 0) quiet = true;
        else if (strcmp(argv[i], "--allow-nonfinite") == 0) allow_nonfinite = true;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "xclip-export: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else { fprintf(stderr, "xclip-export: too many arguments (%s)\n", argv[i]); usage(stderr); return 2; }
    }
    if (!in || !out) { fprintf(stderr, "xclip-export: need IN and OUT\n"); usage(stderr); return 2; }
    if (!config && !hf) { fprintf(stderr, "xclip-export: --no-config only goes with --hf\n"); return 2; }
    // OUT: a folder (Hugging Face layout) or a file whose extension picks the format
    char path[4200], dir[4200], cfg_path[4300];
    bool folder = is_folder(out);
    if (folder && !hf) {
        fprintf(stderr, "xclip-export: %s: a folder is written as a Hugging Face model folder\nHINT: add --hf (or name a "
                        "file: *.safetensors, *.h5, *.pth, *.bin)\n", out);
        return 2;
    }
    if (folder) {
        snprintf(dir, sizeof dir, "%s", out);
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/') dir[--n] = 0;
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
    } else {
        snprintf(path, sizeof path, "%s", out);
        const char *slash = strrchr(out, '/');
        if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash == out ? 1 : slash - out), out);
        else snprintf(dir, sizeof dir, ".");
    }
    snprintf(cfg_path, sizeof cfg_path, "%s%sconfig.json", strcmp(dir, "/") ? dir : "", "/");
    struct stat sin, sout; // OUT replacing IN would lose whatever of IN the export does not carry (a snapshot's optimiser state, ...)
    if (stat(in, &sin) == 0 && stat(path, &sout) == 0 && sin.st_dev == sout.st_dev && sin.st_ino == sout.st_ino) {
        fprintf(stderr, "xclip-export: %s: OUT is IN itself; the export would replace it\nHINT: name another OUT\n", path);
        return 2;
    }
    bool h5 = ends_with(path, ".h5") || ends_with(path, ".hdf5");
    bool pth = ends_with(path, ".pth") || ends_with(path, ".pt") || ends_with(path, ".bin");
    if (!h5 && !pth && !ends_with(path, ".safetensors")) {
        fprintf(stderr, "xclip-export: %s: unknown output format\nHINT: name the output *.safetensors, *.h5, *.hdf5, *.pth, "
                        "*.pt or *.bin, or (with --hf) a folder ending in '/'\n", out);
        return 2;
    }
    bool snapshot = snapshot_is_snapshot_file(in);
    WeightSet ws = {0};
    XcError err = {0};
    if (weights_load(&ws, in, &err) != XC_OK) { fprintf(stderr, "xclip-export: %s\n", err.msg); return 1; }
    const WeightTensor *bad = allow_nonfinite ? NULL : weights_first_nonfinite(&ws); // no diverged weights passed on
    if (bad) {
        fprintf(stderr, "xclip-export: %s: tensor '%s' holds NaN or infinite values: nothing exported\nHINT: "
                        "--allow-nonfinite converts them as they are\n", in, bad->name);
        weights_free(&ws);
        return 1;
    }
    bool xclip_names = hf && (hf_kind == 2 || (hf_kind == 0 && weights_is_xclip(&ws)));
    int left_out = 0; // --hf=clip: tensors that are not CLIP's
    char *json = NULL;
    if (hf) {
        if (!xclip_names) { // CLIPModel holds CLIP's tensors only
            WeightSet c = {0};
            left_out = weights_keep_clip(&c, &ws);
            weights_free(&ws);
            ws = c;
        }
        // config.json first: a model the Hugging Face class cannot represent is refused before anything is written
        WeightSet h = {0};
        int rc = hf_config_json(&ws, xclip_names, &json, &err);
        if (rc == XC_OK) rc = xclip_names ? weights_to_hf_xclip(&h, &ws, &err) : weights_to_hf_clip(&h, &ws, &err);
        if (rc != XC_OK) {
            fprintf(stderr, "xclip-export: %s: %s\n", in, err.msg);
            weights_free(&ws);
            xc_free(json);
            return 1;
        }
        weights_free(&ws);
        ws = h;
    }
    if (xc_mkdir_p(dir, 0755, &err) != XC_OK) { // the folder and its parents, as mkdir -p
        fprintf(stderr, "xclip-export: %s\n", err.msg);
        weights_free(&ws);
        xc_free(json);
        return 1;
    }
    int rc = h5 ? weights_save_hdf5(&ws, path, &err)
             : pth ? weights_save_torch(&ws, path, !(flat || hf), &err)
                   : weights_save_safetensors(&ws, path, &err);
    if (rc == XC_OK && hf && config) rc = write_text(cfg_path, json, &err);
    xc_free(json);
    if (rc != XC_OK) { fprintf(stderr, "xclip-export: %s\n", err.msg); weights_free(&ws); return 1; }
    if (!quiet) {
        int64_t total = 0;
        for (int i = 0; i < ws.n; i++) total += ws.t[i].numel;
        printf("xclip-export: %s%s -> %s%s%s: %d tensors, %lld parameters (float32, %s names)\n", in,
               snapshot ? " (snapshot: model only)" : "", path, hf && config ? " + " : "", hf && config ? cfg_path : "",
               ws.n, (long long)total,
               !hf ? "official" : xclip_names ? "Hugging Face XCLIPModel" : "Hugging Face CLIPModel");
        if (left_out > 0)
            printf("xclip-export: %d tensors that are not CLIP's left out (X-CLIP's mit.*, prompts_*, message_*; head.*, "
                   "prompt_learner.ctx)\n", left_out);
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (hf && config && strcmp(base, "model.safetensors") && strcmp(base, "pytorch_model.bin"))
            printf("xclip-export: from_pretrained reads %s/model.safetensors or %s/pytorch_model.bin: rename %s to load the "
                   "folder\n", dir, dir, base);
    }
    weights_free(&ws);
    return 0;
}
