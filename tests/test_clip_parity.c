// test_clip_parity.c - CLIP image and text features, and gradients through both towers, against the
// PyTorch reference (tests/ref/xclip_ref.py; fixtures from tests/ref/make_clip_fixtures.py), for
//   model B (small.safetensors: width 128 = 2 heads, 2 + 2 layers, context 77) and
//   model A in every checkpoint format of tests/fixtures/ckpt (state-dict .pth, nested fp16 .pth,
//   TorchScript fp32 and fp16, safetensors, Hugging Face bf16).
// Tolerances, relative to the largest magnitude of the reference tensor (scale = max |ref|):
//   features  |c - ref| <= 1e-5 scale;   gradients  |c - ref| <= 1e-4 scale;
// and elementwise (xc_expect_elementwise), |c - ref| <= floor scale + rtol |ref| for every entry:
//   features  floor 1.2e-6, rtol 7.7e-6;  gradients  floor 3.3e-6, rtol 3e-5.
// Those are 5x (rounded up) the worst measured over every run here and OpenBLAS core types SkylakeX, Haswell and
// Sandybridge: floor = worst |c - ref| / scale among entries below scale / 10 (features 2.2e-7, gradients 6.4e-7),
// rtol = worst |c - ref| / |ref| among the entries above (features 1.5e-6, gradients 5.9e-6).
// fp16 / bf16 files are compared with the reference computed from the same rounded weights.
// Also: the fast text path (only max(EOT)+1 positions) gives the same features as the full context.
#include "test_util.h"
#include "h5_fixture.h"
#include "nn/clip.h"

#define FEAT_FLOOR 1.2e-6
#define FEAT_RTOL 7.7e-6
#define GRAD_FLOOR 3.3e-6
#define GRAD_RTOL 3e-5

typedef struct Result {
    double feat, grad, fast;
    double feat_used, grad_used; // share of the elementwise tolerance used (worst)
} Result;

static Result run_model(hid_t f, const char *group, const char *weights_path, const char *prec, bool grads) {
    Result res = {0, 0, 0, 0, 0};
    char name[2048];
    XcError err;
    WeightSet ws = {0};
    int rc = weights_load(&ws, weights_path, &err);
    XC_EXPECT(rc == XC_OK, "%s: %s", weights_path, err.msg);
    if (rc != XC_OK) return res;
    ClipConfig cfg;
    rc = clip_config_from_weights(&cfg, &ws, &err);
    XC_EXPECT(rc == XC_OK, "%s: %s", weights_path, err.msg);
    if (rc != XC_OK) { weights_free(&ws); return res; }
    ParamStore ps;
    param_store_init(&ps, "params");
    Clip m;
    clip_init(&m, &ps, &cfg, false);
    rc = params_load(&ps, &ws, NULL, &err);
    XC_EXPECT(rc == XC_OK, "%s: %s", weights_path, err.msg);
    weights_free(&ws);

    int nd;
    int64_t dims[8];
    snprintf(name, sizeof name, "%s/images", group);
    float *img = h5f_read(f, name, &nd, dims);
    int64_t ishape[4] = {dims[0], dims[1], dims[2], dims[3]};
    snprintf(name, sizeof name, "%s/tokens", group);
    float *tokf = h5f_read(f, name, &nd, dims);
    int64_t K = dims[0], S = dims[1];
    int32_t *tok = malloc((size_t)(K * S) * sizeof(int32_t));
    for (int64_t i = 0; i < K * S; i++) tok[i] = (int32_t)tokf[i];
    snprintf(name, sizeof name, "%s/r_image", group);
    float *r_img = h5f_read(f, name, &nd, dims);
    snprintf(name, sizeof name, "%s/r_text", group);
    float *r_txt = h5f_read(f, name, &nd, dims);
    snprintf(name, sizeof name, "%s/%s/image_features", group, prec);
    float *ref_img = h5f_read(f, name, &nd, dims);
    snprintf(name, sizeof name, "%s/%s/text_features", group, prec);
    float *ref_txt = h5f_read(f, name, &nd, dims);
    XC_EXPECT(img && tokf && r_img && r_txt && ref_img && ref_txt, "fixture %s incomplete", group);

    Graph g;
    graph_init(&g, 64u << 20);
    Tensor *images = tensor_from(&g, 4, ishape, img);
    Tensor *fi = clip_encode_image(&g, &m, images);
    Tensor *ft = clip_encode_text(&g, &m.text, tok, K, S, false);
    snprintf(name, sizeof name, "%s %s image features", weights_path, prec);
    res.feat = xc_expect_scaled(name, fi->data, ref_img, fi->numel, 1e-5);
    res.feat_used = xc_expect_elementwise(name, fi->data, ref_img, fi->numel, FEAT_FLOOR, FEAT_RTOL);
    snprintf(name, sizeof name, "%s %s text features", weights_path, prec);
    res.feat = fmax(res.feat, xc_expect_scaled(name, ft->data, ref_txt, ft->numel, 1e-5));
    res.feat_used = fmax(res.feat_used, xc_expect_elementwise(name, ft->data, ref_txt, ft->numel, FEAT_FLOOR, FEAT_RTOL));
    {
        bool prev = graph_set_grad(&g, false);
        Tensor *fast = clip_encode_text(&g, &m.text, tok, K, S, true);
        graph_set_grad(&g, prev);
        res.fast = xc_scaled_err(fast->data, ft->data, ft->numel);
        XC_EXPECT(res.fast <= 1e-6, "fast text path differs from the full context by %.3g", res.fast);
    }
    if (grads) {
        Tensor *ri = tensor_from(&g, 2, fi->shape, r_img), *rt = tensor_from(&g, 2, ft->shape, r_txt);
        Tensor *loss = op_add(&g, op_sum(&g, op_sum(&g, op_mul(&g, fi, ri), 1), 0),
                              op_sum(&g, op_sum(&g, op_mul(&g, ft, rt), 1), 0));
        graph_backward(&g, loss);
        int compared = 0;
        for (int i = 0; i < ps.n; i++) {
            Tensor *p = ps.p[i];
            snprintf(name, sizeof name, "%s/fp32/grad/%s", group, p->name);
            float *gref = h5f_read(f, name, &nd, dims);
            if (!gref) continue; // no gradient in the reference (logit_scale is not used by the towers)
            XC_EXPECT(shape_numel(nd, dims) == p->numel, "%s: gradient size", p->name);
            snprintf(name, sizeof name, "%s grad %s", weights_path, p->name);
            res.grad = fmax(res.grad, xc_expect_scaled(name, p->grad, gref, p->numel, 1e-4));
            res.grad_used = fmax(res.grad_used, xc_expect_elementwise(name, p->grad, gref, p->numel, GRAD_FLOOR, GRAD_RTOL));
            compared++;
            free(gref);
        }
        XC_EXPECT(compared == ps.n - 1, "%s: compared %d gradients of %d parameters", weights_path, compared, ps.n);
    }
    graph_free(&g);
    param_store_free(&ps);
    free(img); free(tokf); free(tok); free(r_img); free(r_txt); free(ref_img); free(ref_txt);
    return res;
}

// Weights that do not fit the model are refused with the tensors named: model A's file into model B.
static void test_mismatch_named(void) {
    char path[1024];
    XcError err;
    WeightSet a = {0}, b = {0};
    XC_EXPECT(weights_load(&a, XC_FIXTURE("ckpt/clip_state.pth", path), &err) == XC_OK, "%s", err.msg);
    XC_EXPECT(weights_load(&b, XC_FIXTURE("clip/small.safetensors", path), &err) == XC_OK, "%s", err.msg);
    ClipConfig cfg;
    XC_EXPECT(clip_config_from_weights(&cfg, &b, &err) == XC_OK, "%s", err.msg);
    ParamStore ps;
    param_store_init(&ps, "params");
    Clip m;
    clip_init(&m, &ps, &cfg, true);
    int rc = params_load(&ps, &a, NULL, &err);
    XC_EXPECT(rc == XC_ERR && strstr(err.msg, "mis-shaped") && strstr(err.msg, "visual.conv1.weight") &&
                  strstr(err.msg, "missing (transformer.resblocks.1"), "mismatch message names the tensors: %s", err.msg);
    // one tensor too many and one missing
    weights_add(&b, "visual.extra_tensor", 1, (int64_t[]){3}, NULL);
    WeightSet c = {0};
    for (int i = 0; i < b.n; i++)
        if (strcmp(b.t[i].name, "ln_final.bias")) weights_add(&c, b.t[i].name, b.t[i].ndim, b.t[i].shape, b.t[i].data);
    rc = params_load(&ps, &c, NULL, &err);
    XC_EXPECT(rc == XC_ERR && strstr(err.msg, "1 missing (ln_final.bias)") && strstr(err.msg, "1 unexpected (visual.extra_tensor)"),
              "missing / unexpected named: %s", err.msg);
    param_store_free(&ps);
    weights_free(&a);
    weights_free(&b);
    weights_free(&c);
}

int main(void) {
    test_mismatch_named();
    char path[1024], wpath[1024];
    hid_t f = H5Fopen(XC_FIXTURE("clip/clip_ref.h5", path), H5F_ACC_RDONLY, H5P_DEFAULT);
    XC_EXPECT(f >= 0, "cannot open %s", path);
    if (f < 0) return xc_test_summary("test_clip_parity");
    static const struct { const char *group, *file, *prec; bool grads; } runs[] = {
        {"B", "clip/small.safetensors", "fp32", true},
        {"A", "ckpt/clip_state.pth", "fp32", true},
        {"A", "ckpt/clip.safetensors", "fp32", true},
        {"A", "ckpt/clip_script_fp32.pt", "fp32", true},
        {"A", "ckpt/clip_script_fp16.pt", "fp16", false},
        {"A", "ckpt/clip_nested.pth", "fp16", false},
        {"A", "ckpt/clip_hf.safetensors", "bf16", false},
    };
    printf("  %-28s %-5s %14s %14s %12s   (err: max |diff| / max |ref|; used: share of the elementwise tolerance)\n",
           "weights", "prec", "feature err", "gradient err", "fast text");
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        Result r = run_model(f, runs[i].group, XC_FIXTURE(runs[i].file, wpath), runs[i].prec, runs[i].grads);
        printf("  %-28s %-5s %14.2e ", runs[i].file, runs[i].prec, r.feat);
        if (runs[i].grads) printf("%14.2e ", r.grad);
        else printf("%14s ", "-");
        printf("%12.2e   used: features %.2f", r.fast, r.feat_used);
        if (runs[i].grads) printf(", gradients %.2f", r.grad_used);
        printf("\n");
    }
    H5Fclose(f);
    return xc_test_summary("test_clip_parity");
}
