// test_checkpoints.c - every weights format loads to the same names, shapes and values.
//
// Fixtures (tests/fixtures/ckpt, made by tests/ref/make_ckpt_fixtures.py from one small random CLIP):
// ref.bin holds the expected float32 values, read here by an independent little parser. float32 files
// must match exactly; fp16 files must equal the fp16-rounded reference exactly, bf16 files the
// bf16-rounded reference. Save -> load round trips (safetensors, HDF5) and the Hugging Face mapping in
// both directions must be exact. The xclip-export program is run on a few inputs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/weights.h"
#include "tests/test_util.h"

typedef enum { EXACT, ROUND_F16, ROUND_BF16 } Rounding;

static float round_value(float x, Rounding r) {
    if (r == ROUND_F16) return (float)(_Float16)x; // IEEE round to nearest even (gcc on x86-64)
    if (r == ROUND_BF16) {
        uint32_t b;
        memcpy(&b, &x, 4);
        b = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u; // round to nearest even (no NaNs in the data)
        memcpy(&x, &b, 4);
    }
    return x;
}

// ref.bin: "XCREF001", u32 count, then per tensor u32 name_len, name, u32 ndim, i64 dims[ndim], f32 data.
static int read_ref(WeightSet *ws, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); return -1; }
    char magic[8];
    uint32_t count;
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "XCREF001", 8) == 0 && fread(&count, 4, 1, f) == 1;
    for (uint32_t i = 0; ok && i < count; i++) {
        uint32_t nlen, ndim;
        char name[512];
        int64_t shape[XC_WEIGHT_MAX_DIMS];
        ok = fread(&nlen, 4, 1, f) == 1 && nlen < sizeof name && fread(name, 1, nlen, f) == nlen &&
             fread(&ndim, 4, 1, f) == 1 && ndim <= XC_WEIGHT_MAX_DIMS && fread(shape, 8, ndim, f) == ndim;
        if (!ok) break;
        name[nlen] = 0;
        WeightTensor *t = weights_add(ws, name, (int)ndim, shape, NULL);
        ok = fread(t->data, 4, (size_t)t->numel, f) == (size_t)t->numel;
    }
    fclose(f);
    if (!ok) fprintf(stderr, "%s: malformed reference file\n", path);
    return ok ? 0 : -1;
}

// got must hold the reference's tensors (same names, shapes; values rounded as asked), and nothing else.
static void expect_same(const char *what, const WeightSet *got, const WeightSet *ref, Rounding r, bool same_order) {
    XC_EXPECT(got->n == ref->n, "%s: %d tensors, want %d", what, got->n, ref->n);
    int bad = 0;
    for (int i = 0; i < ref->n; i++) {
        const WeightTensor *w = &ref->t[i], *g = weights_find(got, w->name);
        if (!g) { if (bad++ < 5) fprintf(stderr, "  %s: missing %s\n", what, w->name); continue; }
        if (same_order && got->n == ref->n && strcmp(got->t[i].name, w->name) != 0) {
            if (bad++ < 5) fprintf(stderr, "  %s: tensor %d is %s, want %s\n", what, i, got->t[i].name, w->name);
        }
        bool shape_ok = g->ndim == w->ndim && g->numel == w->numel;
        for (int d = 0; shape_ok && d < w->ndim; d++) shape_ok = g->shape[d] == w->shape[d];
        if (!shape_ok) { if (bad++ < 5) fprintf(stderr, "  %s: %s has another shape\n", what, w->name); continue; }
        for (int64_t k = 0; k < w->numel; k++) {
            float want = round_value(w->data[k], r);
            if (memcmp(&g->data[k], &want, 4) != 0) {
                if (bad++ < 5) fprintf(stderr, "  %s: %s[%lld] = %.9g, want %.9g\n", what, w->name, (long long)k, g->data[k], want);
                break;
            }
        }
    }
    XC_EXPECT(bad == 0, "%s: %d mismatches against the reference", what, bad);
}

static void check_file(const char *rel, const WeightSet *ref, Rounding r, bool same_order) {
    char path[1024];
    XC_FIXTURE(rel, path);
    WeightSet ws = {0};
    XcError err = {0};
    int rc = weights_load(&ws, path, &err);
    XC_EXPECT(rc == XC_OK, "%s: %s", rel, err.msg);
    if (rc == XC_OK) expect_same(rel, &ws, ref, r, same_order);
    weights_free(&ws);
}

static void test_round_trips(const WeightSet *ref, const char *tmpdir) {
    char path[1024];
    XcError err = {0};
    const char *exts[2] = {"rt.safetensors", "rt.h5"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, exts[k]);
        int rc = k == 0 ? weights_save_safetensors(ref, path, &err) : weights_save_hdf5(ref, path, &err);
        XC_EXPECT(rc == XC_OK, "save %s: %s", exts[k], err.msg);
        WeightSet back = {0};
        rc = weights_load(&back, path, &err);
        XC_EXPECT(rc == XC_OK, "load %s: %s", exts[k], err.msg);
        expect_same(exts[k], &back, ref, EXACT, true);
        weights_free(&back);
        // the format-specific entry points agree
        rc = k == 0 ? weights_load_safetensors(&back, path, &err) : weights_load_hdf5(&back, path, &err);
        XC_EXPECT(rc == XC_OK, "direct load %s: %s", exts[k], err.msg);
        expect_same(exts[k], &back, ref, EXACT, true);
        weights_free(&back);
    }
    // scalars, zero-sized and 8-D tensors survive both formats
    WeightSet odd = {0};
    int64_t s0[1] = {0}, s8[8] = {1, 2, 1, 2, 1, 2, 1, 3};
    float v = 2.5f, d8[24];
    for (int i = 0; i < 24; i++) d8[i] = (float)i * 0.25f - 1.0f;
    weights_add(&odd, "scalar", 0, NULL, &v);
    weights_add(&odd, "empty", 1, s0, NULL);
    weights_add(&odd, "eight.dims", 8, s8, d8);
    weights_add(&odd, "quote\"and\\backslash", 1, (int64_t[]){1}, &v);
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/odd.%s", tmpdir, k ? "h5" : "safetensors");
        int rc = k == 0 ? weights_save_safetensors(&odd, path, &err) : weights_save_hdf5(&odd, path, &err);
        XC_EXPECT(rc == XC_OK, "save odd: %s", err.msg);
        WeightSet back = {0};
        rc = weights_load_raw(&back, path, &err);
        XC_EXPECT(rc == XC_OK, "load odd: %s", err.msg);
        expect_same(path, &back, &odd, EXACT, true);
        weights_free(&back);
    }
    weights_free(&odd);
}

static void test_hf_mapping(const WeightSet *ref) {
    XcError err = {0};
    WeightSet hf = {0}, back = {0};
    XC_EXPECT(!weights_is_hf_clip(ref), "the official layout is not HF");
    XC_EXPECT(weights_to_hf_clip(&hf, ref, &err) == XC_OK, "to_hf: %s", err.msg);
    XC_EXPECT(weights_is_hf_clip(&hf), "to_hf output is detected as HF");
    const WeightTensor *q = weights_find(&hf, "vision_model.encoder.layers.1.self_attn.k_proj.weight");
    const WeightTensor *in = weights_find(ref, "visual.transformer.resblocks.1.attn.in_proj_weight");
    XC_EXPECT(q && in && q->shape[0] == in->shape[0] / 3 && memcmp(q->data, in->data + q->numel, (size_t)q->numel * 4) == 0,
              "k_proj is the middle third of in_proj_weight");
    const WeightTensor *vp = weights_find(&hf, "visual_projection.weight"), *p = weights_find(ref, "visual.proj");
    XC_EXPECT(vp && p && vp->shape[0] == p->shape[1] && vp->shape[1] == p->shape[0] && vp->data[1] == p->data[p->shape[1]],
              "visual_projection.weight is visual.proj transposed");
    XC_EXPECT(weights_find(&hf, "text_model.final_layer_norm.bias") && weights_find(&hf, "vision_model.pre_layrnorm.weight") &&
              weights_find(&hf, "text_model.encoder.layers.0.mlp.fc2.weight"), "HF names present");
    XC_EXPECT(weights_from_hf_clip(&back, &hf, &err) == XC_OK, "from_hf: %s", err.msg);
    expect_same("official -> HF -> official", &back, ref, EXACT, false);
    weights_free(&back);
    // the raw HF fixture holds exactly the names our reverse mapping produces
    char path[1024];
    WeightSet raw = {0};
    XC_EXPECT(weights_load_raw(&raw, XC_FIXTURE("ckpt/clip_hf.safetensors", path), &err) == XC_OK, "raw HF: %s", err.msg);
    expect_same("clip_hf.safetensors (raw names)", &raw, &hf, ROUND_BF16, false);
    // an HF set missing v_proj is refused by name
    WeightSet broken = {0};
    for (int i = 0; i < raw.n; i++)
        if (strcmp(raw.t[i].name, "text_model.encoder.layers.0.self_attn.v_proj.bias") != 0)
            weights_add(&broken, raw.t[i].name, raw.t[i].ndim, raw.t[i].shape, raw.t[i].data);
    WeightSet out = {0};
    XC_EXPECT(weights_from_hf_clip(&out, &broken, &err) == XC_ERR && strstr(err.msg, "v_proj.bias"), "missing v_proj: %s", err.msg);
    XC_EXPECT(out.n == 0, "nothing left behind on error");
    weights_free(&broken);
    weights_free(&raw);
    weights_free(&hf);
}

static void test_set_api(void) {
    WeightSet ws = {0};
    float src[6] = {1, 2, 3, 4, 5, 6};
    WeightTensor *t = weights_add(&ws, "a.b", 2, (int64_t[]){2, 3}, src);
    src[0] = 99; // weights_add copied the data
    XC_EXPECT(t->numel == 6 && t->data[0] == 1 && t->data != src, "weights_add copies");
    XC_EXPECT(weights_find(&ws, "a.b") == &ws.t[0] && weights_find(&ws, "a") == NULL, "weights_find");
    weights_free(&ws);
    XC_EXPECT(ws.n == 0 && ws.t == NULL, "weights_free resets");
}

static void test_nested_raw(void) {
    char path[1024];
    XcError err = {0};
    WeightSet ws = {0};
    XC_EXPECT(weights_load_raw(&ws, XC_FIXTURE("ckpt/clip_nested.pth", path), &err) == XC_OK, "nested raw: %s", err.msg);
    XC_EXPECT(ws.n > 0 && strncmp(ws.t[0].name, "module.", 7) == 0, "raw names keep module. (%s)", ws.n ? ws.t[0].name : "");
    XC_EXPECT(!weights_find(&ws, "module.exp_avg") && !weights_find(&ws, "exp_avg"), "optimizer state is not read");
    weights_free(&ws);
    // TorchScript: the plain attn_mask attribute is not part of the state dict
    XC_EXPECT(weights_load(&ws, XC_FIXTURE("ckpt/clip_script_fp16.pt", path), &err) == XC_OK, "script: %s", err.msg);
    XC_EXPECT(!weights_find(&ws, "transformer.resblocks.0.attn_mask"), "attn_mask attribute excluded");
    weights_free(&ws);
}

// Integer buffers that are not weights (HF position_ids) are skipped; F64 is converted.
static void test_skipped_and_f64(const char *tmpdir) {
    const char *json = "{\"text_model.embeddings.position_ids\":{\"dtype\":\"I64\",\"shape\":[1,2],\"data_offsets\":[0,16]},"
                       "\"logit_scale\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[16,24]}}";
    char path[1024];
    snprintf(path, sizeof path, "%s/posids.safetensors", tmpdir);
    FILE *f = fopen(path, "wb");
    uint64_t hlen = strlen(json), ids[2] = {0, 1};
    double scale = 4.6052;
    fwrite(&hlen, 8, 1, f); fwrite(json, 1, hlen, f); fwrite(ids, 8, 2, f); fwrite(&scale, 8, 1, f);
    fclose(f);
    WeightSet ws = {0};
    XcError err = {0};
    XC_EXPECT(weights_load(&ws, path, &err) == XC_OK, "position_ids file: %s", err.msg);
    XC_EXPECT(ws.n == 1 && strcmp(ws.t[0].name, "logit_scale") == 0 && ws.t[0].ndim == 0 && ws.t[0].data[0] == (float)scale,
              "only logit_scale (F64 -> float32) is kept");
    weights_free(&ws);
}

static void test_export_tool(const WeightSet *ref, const char *tmpdir) {
    const char *build = getenv("XCLIP_BUILD");
    if (!build) { fprintf(stderr, "XCLIP_BUILD not set: skipping the xclip-export checks\n"); return; }
    char cmd[4096], in[1024], out[1024];
    const struct { const char *in, *out; Rounding r; bool order; } cases[] = {
        {"ckpt/clip_script_fp32.pt", "exp1.safetensors", EXACT, true},
        {"ckpt/clip_nested.pth", "exp2.h5", ROUND_F16, true},
        {"ckpt/clip_hf.safetensors", "exp3.hdf5", ROUND_BF16, false},
    };
    for (int i = 0; i < 3; i++) {
        snprintf(out, sizeof out, "%s/%s", tmpdir, cases[i].out);
        snprintf(cmd, sizeof cmd, "'%s/xclip-export' --quiet '%s' '%s'", build, XC_FIXTURE(cases[i].in, in), out);
        int rc = system(cmd);
        XC_EXPECT(rc == 0, "%s exited with %d", cmd, rc);
        WeightSet ws = {0};
        XcError err = {0};
        XC_EXPECT(weights_load(&ws, out, &err) == XC_OK, "exported %s: %s", out, err.msg);
        expect_same(cases[i].out, &ws, ref, cases[i].r, cases[i].order);
        weights_free(&ws);
    }
    snprintf(cmd, sizeof cmd, "'%s/xclip-export' '%s/missing.pt' '%s/x.safetensors' 2>/dev/null", build, tmpdir, tmpdir);
    int rc = system(cmd);
    XC_EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "missing input exits 1 (got %d)", rc);
    snprintf(cmd, sizeof cmd, "'%s/xclip-export' '%s' '%s/x.txt' 2>/dev/null", build, in, tmpdir);
    rc = system(cmd);
    XC_EXPECT(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "unknown output extension exits 2 (got %d)", rc);
    snprintf(cmd, sizeof cmd, "'%s/xclip-export' --help >/dev/null", build);
    XC_EXPECT(system(cmd) == 0, "--help exits 0");
}

int main(void) {
    char path[1024], tmpdir[] = "/tmp/xclip_ckpt_XXXXXX";
    WeightSet ref = {0};
    if (read_ref(&ref, XC_FIXTURE("ckpt/ref.bin", path)) != 0) return 1;
    XC_EXPECT(ref.n == 50, "reference has %d tensors", ref.n);
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }

    test_set_api();
    check_file("ckpt/clip_state.pth", &ref, EXACT, true);        // views: transposed, offset storage
    check_file("ckpt/clip_script_fp32.pt", &ref, EXACT, true);   // TorchScript, state_dict order
    check_file("ckpt/clip_script_fp16.pt", &ref, ROUND_F16, true);
    check_file("ckpt/clip_nested.pth", &ref, ROUND_F16, true);   // {'model': {'module.*': fp16}} + optimizer + config
    check_file("ckpt/clip.safetensors", &ref, EXACT, true);
    check_file("ckpt/clip_hf.safetensors", &ref, ROUND_BF16, false);
    test_nested_raw();
    test_round_trips(&ref, tmpdir);
    test_hf_mapping(&ref);
    test_skipped_and_f64(tmpdir);
    test_export_tool(&ref, tmpdir);

    weights_free(&ref);
    snprintf(path, sizeof path, "rm -rf '%s'", tmpdir);
    if (system(path) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return xc_test_summary("test_checkpoints");
}
