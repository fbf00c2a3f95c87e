// test_export.c - exact round trips of an X-CLIP state dict across every pair of export formats.
//
// Formats: safetensors, HDF5, PyTorch .pth ({'model': sd} and the bare sd), each with the official names
// and with Hugging Face XCLIPModel names (8 in all), plus a training snapshot as an input. Every file is
// read back with weights_load (which detects the format and maps HF names back) and must equal the source
// bitwise: names, order, shapes and every float's bits (NaN payloads, -0, infinities, subnormals, a 0-d
// tensor and an empty one included). Then every file is converted to every format (64 pairs), again exact.
// Also: the XCLIPModel names and transposes by hand, and the xclip-export program on a snapshot.
// The .pth files against PyTorch itself: tests/test_export_torch.sh (its own CTest test).
#include <sys/wait.h>

#include "checkpoints/snapshot.h"
#include "optim/adamw.h"
#include "tests/snap_test_util.h"
#include "tests/test_util.h"
#include "tests/xclip_params.h"

typedef struct Format { const char *ext; bool hf; bool flat; } Format;
static const Format formats[] = {
    {".safetensors", false, false}, {".h5", false, false}, {".pth", false, false}, {".pth", false, true},
    {".safetensors", true, false},  {".h5", true, false},  {".pth", true, true},   {".pth", true, false},
};
#define NFMT (int)(sizeof formats / sizeof formats[0])

static const char *fmt_name(int i, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", formats[i].hf ? "hf" : "official", formats[i].flat ? "-flat" : "", formats[i].ext);
    return buf;
}

static int save(const WeightSet *ws, int f, const char *path, XcError *err) {
    WeightSet h = {0};
    const WeightSet *w = ws;
    if (formats[f].hf) {
        if (weights_to_hf_xclip(&h, ws, err) != XC_OK) return XC_ERR;
        w = &h;
    }
    const char *e = formats[f].ext;
    int rc = !strcmp(e, ".h5") ? weights_save_hdf5(w, path, err)
           : !strcmp(e, ".pth") ? weights_save_torch(w, path, !formats[f].flat, err)
                                : weights_save_safetensors(w, path, err);
    weights_free(&h);
    return rc;
}

// Same names in the same order, same shapes, same bits.
static bool identical(const WeightSet *a, const WeightSet *b, const char *what) {
    if (a->n != b->n) { fprintf(stderr, "  %s: %d tensors, want %d\n", what, a->n, b->n); return false; }
    for (int i = 0; i < a->n; i++) {
        const WeightTensor *x = &a->t[i], *y = &b->t[i];
        bool ok = !strcmp(x->name, y->name) && x->ndim == y->ndim && x->numel == y->numel;
        for (int d = 0; d < x->ndim && ok; d++) ok = x->shape[d] == y->shape[d];
        ok = ok && !memcmp(x->data, y->data, (size_t)x->numel * 4);
        if (!ok) { fprintf(stderr, "  %s: tensor %d (%s vs %s) differs\n", what, i, x->name, y->name); return false; }
    }
    return true;
}

static void make_source(WeightSet *src, ParamStore *ps) {
    XclipDims d = xclip_dims_tiny();
    param_store_init(ps, "params");
    xclip_register_params(ps, &d, false);
    param_new(ps, "extra.empty", 2, (int64_t[]){0, 3});
    xclip_fill_random(ps, 21);
    uint32_t specials[] = {0x7fc00001u, 0xffa00005u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x00000001u, 0x807fffffu};
    memcpy(ps->p[0]->data, specials, sizeof specials);
    for (int i = 0; i < ps->n; i++) weights_add(src, ps->p[i]->name, ps->p[i]->ndim, ps->p[i]->shape, ps->p[i]->data);
}

static void test_hf_names(const WeightSet *src) {
    WeightSet hf = {0}, back = {0};
    XcError err;
    XC_EXPECT(weights_is_xclip(src), "the source is detected as X-CLIP");
    XC_EXPECT(weights_to_hf_xclip(&hf, src, &err) == XC_OK, "to XCLIPModel: %s", err.msg);
    const char *must[] = {
        "vision_model.embeddings.patch_embedding.weight", "vision_model.embeddings.class_embedding",
        "vision_model.embeddings.position_embedding.weight", "vision_model.pre_layernorm.weight",
        "vision_model.post_layernorm.bias", "vision_model.encoder.layers.1.message_fc.weight",
        "vision_model.encoder.layers.1.message_ln.bias", "vision_model.encoder.layers.0.message_attn.q_proj.weight",
        "vision_model.encoder.layers.0.message_attn.v_proj.bias", "vision_model.encoder.layers.0.message_attn.out_proj.weight",
        "vision_model.encoder.layers.1.self_attn.k_proj.weight", "vision_model.encoder.layers.1.mlp.fc2.bias",
        "text_model.embeddings.token_embedding.weight", "text_model.encoder.layers.1.layer_norm2.weight",
        "text_model.final_layer_norm.weight", "visual_projection.weight", "text_projection.weight", "logit_scale",
        "prompts_visual_layernorm.weight", "prompts_visual_projection", "mit.position_embedding",
        "mit.encoder.layers.0.self_attn.q_proj.bias", "mit.encoder.layers.0.mlp.fc1.weight",
        "prompts_generator.layernorm.weight", "prompts_generator.decoder.1.cross_attn.v_proj.weight",
        "prompts_generator.decoder.0.mlp.3.bias", "prompts_generator.alpha",
    };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) XC_EXPECT(weights_find(&hf, must[i]), "XCLIPModel name %s", must[i]);
    const char *gone[] = {"vision_model.pre_layrnorm.weight", "visual.proj", "mit.positional_embedding", "prompts_visual_ln.weight",
                          "prompts_generator.norm.weight", "vision_model.encoder.layers.0.message_attn.in_proj_weight"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) XC_EXPECT(!weights_find(&hf, gone[i]), "no %s in XCLIPModel names", gone[i]);
    // transposed projections, untransposed prompts_visual_projection, q/k/v rows
    const WeightTensor *vp = weights_find(&hf, "visual_projection.weight"), *p = weights_find(src, "visual.proj");
    const WeightTensor *pv = weights_find(&hf, "prompts_visual_projection"), *pp = weights_find(src, "prompts_visual_proj");
    const WeightTensor *k = weights_find(&hf, "vision_model.encoder.layers.0.message_attn.k_proj.weight");
    const WeightTensor *in = weights_find(src, "visual.transformer.resblocks.0.message_attn.in_proj_weight");
    if (vp && p && pv && pp && k && in) {
        XC_EXPECT(vp->shape[0] == p->shape[1] && vp->shape[1] == p->shape[0] && vp->data[1 * vp->shape[1] + 2] == p->data[2 * p->shape[1] + 1],
                  "visual_projection.weight is visual.proj transposed");
        XC_EXPECT(pv->shape[0] == pp->shape[0] && !memcmp(pv->data, pp->data, (size_t)pp->numel * 4), "prompts_visual_projection is not transposed");
        XC_EXPECT(k->shape[0] * 3 == in->shape[0] && !memcmp(k->data, in->data + k->numel, (size_t)k->numel * 4), "k_proj is the middle third of in_proj");
    }
    XC_EXPECT(weights_is_hf_clip(&hf), "XCLIPModel names are detected as a Hugging Face layout");
    XC_EXPECT(weights_from_hf_clip(&back, &hf, &err) == XC_OK, "from XCLIPModel: %s", err.msg);
    XC_EXPECT(identical(&back, src, "official -> XCLIPModel -> official"), "exact name round trip");
    weights_free(&hf);
    weights_free(&back);
}

static void test_pairs(const WeightSet *src, const char *dir) {
    char pa[8400], pb[8400], na[64], nb[64];
    XcError err;
    int pairs = 0, ok_pairs = 0;
    for (int a = 0; a < NFMT; a++) {
        snprintf(pa, sizeof pa, "%s/a-%s", dir, fmt_name(a, na, sizeof na));
        XC_EXPECT(save(src, a, pa, &err) == XC_OK, "write %s: %s", na, err.msg);
        WeightSet la = {0};
        XC_EXPECT(weights_load(&la, pa, &err) == XC_OK, "read %s: %s", na, err.msg);
        XC_EXPECT(identical(&la, src, na), "%s read back exactly", na);
        for (int b = 0; b < NFMT; b++) {
            snprintf(pb, sizeof pb, "%s/b-%s", dir, fmt_name(b, nb, sizeof nb));
            WeightSet lb = {0};
            bool ok = save(&la, b, pb, &err) == XC_OK && weights_load(&lb, pb, &err) == XC_OK;
            char what[160];
            snprintf(what, sizeof what, "%s -> %s", na, nb);
            ok = ok && identical(&lb, src, what);
            XC_EXPECT(ok, "%s exact: %s", what, err.msg);
            pairs++;
            ok_pairs += ok;
            weights_free(&lb);
            unlink(pb);
        }
        weights_free(&la);
        unlink(pa);
    }
    printf("%d of %d format pairs round-trip bitwise\n", ok_pairs, pairs);
}

static void test_snapshot_input(const WeightSet *src, ParamStore *ps, const char *dir) {
    AdamW opt;
    adamw_init(&opt, ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
    SnapshotState st = {.params = ps, .opt = adamw_state(&opt), .global_iter = 77};
    char snap[4200], out[4200], back[4200], cmd[40000];
    XcError err;
    XC_EXPECT(snapshot_save(dir, &st, snap, sizeof snap, &err) == XC_OK, "snapshot: %s", err.msg);
    for (int f = 0; f < NFMT; f++) { // snapshot -> every format, via the library
        char nf[64];
        snprintf(out, sizeof out, "%s/s-%s", dir, fmt_name(f, nf, sizeof nf));
        WeightSet ws = {0}, got = {0};
        XC_EXPECT(weights_load(&ws, snap, &err) == XC_OK, "snapshot as weights: %s", err.msg);
        bool ok = save(&ws, f, out, &err) == XC_OK && weights_load(&got, out, &err) == XC_OK && identical(&got, src, nf);
        XC_EXPECT(ok, "snapshot -> %s exact: %s", nf, err.msg);
        weights_free(&ws);
        weights_free(&got);
        unlink(out);
    }
    const char *build = getenv("XCLIP_BUILD");
    XC_EXPECT(build != NULL, "XCLIP_BUILD is set (CTest sets it) so the xclip-export program can be run");
    if (build) { // the program: snapshot -> HF .pth -> official .h5 -> .safetensors
        snprintf(out, sizeof out, "%s/tool-hf.pth", dir);
        snprintf(back, sizeof back, "%s/tool-back.h5", dir);
        snprintf(cmd, sizeof cmd, "'%s/xclip-export' --quiet --hf '%s' '%s' && '%s/xclip-export' --quiet '%s' '%s'", build, snap,
                 out, build, out, back);
        XC_EXPECT(system(cmd) == 0, "xclip-export runs: %s", cmd);
        WeightSet got = {0}, hf = {0};
        XC_EXPECT(weights_load(&got, back, &err) == XC_OK && identical(&got, src, "tool round trip"), "xclip-export snapshot -> HF .pth -> .h5 exact: %s", err.msg);
        XC_EXPECT(weights_load_raw(&hf, out, &err) == XC_OK && weights_find(&hf, "mit.encoder.layers.0.self_attn.q_proj.weight"),
                  "--hf on X-CLIP weights writes XCLIPModel names");
        weights_free(&got);
        weights_free(&hf);
        snprintf(cmd, sizeof cmd, "'%s/xclip-export' --quiet '%s' '%s/x.zip' 2>/dev/null", build, snap, dir);
        int rc = system(cmd);
        XC_EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "an unknown output extension is a usage error");
        unlink(out);
        unlink(back);
    }
    unlink(snap);
    adamw_free(&opt);
}

int main(void) {
    char dir[4096];
    st_mkdtemp(dir, sizeof dir, "export");
    WeightSet src = {0};
    ParamStore ps;
    make_source(&src, &ps);
    test_hf_names(&src);
    test_pairs(&src, dir);
    test_snapshot_input(&src, &ps, dir);
    weights_free(&src);
    param_store_free(&ps);
    st_rmdir(dir);
    return xc_test_summary("test_export");
}
