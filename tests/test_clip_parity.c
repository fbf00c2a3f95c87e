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
// Also: the fast text path (rows in groups of similar length, each group run to its longest EOT) gives the same
// features as the full context (scaled 1e-6), and with rows of lengths 3..77, with and without CoOp context vectors,
// the same features and gradients (scaled 1e-6 and 3e-6; measured 3.8e-7 and 5.7e-7).
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

// The fast path runs rows of different lengths in groups (each at its own longest length, nn/clip.c text_groups) and
// puts the rows back in order: features and every text-tower gradient (and CoOp context vectors') must match the
// full 77-token pass, for rows of lengths 2..77 in no particular order. Model B's weights, random ids.
static void test_fast_groups(void) {
    char path[1024];
    XcError err;
    WeightSet ws = {0};
    XC_EXPECT(weights_load(&ws, XC_FIXTURE("clip/small.safetensors", path), &err) == XC_OK, "%s", err.msg);
    ClipConfig cfg;
    if (clip_config_from_weights(&cfg, &ws, &err) != XC_OK) { XC_EXPECT(0, "%s", err.msg); weights_free(&ws); return; }
    ParamStore ps;
    param_store_init(&ps, "params");
    Clip m;
    clip_init(&m, &ps, &cfg, false);
    XC_EXPECT(params_load(&ps, &ws, NULL, &err) == XC_OK, "%s", err.msg);
    weights_free(&ws);
    const int64_t S = cfg.context, D = cfg.text_width, E = cfg.embed_dim, N = 4;
    static const int64_t eot[] = {5, 2, 40, 5, 9, 3, 76, 12, 5, 30, 9, 6, 5, 11};
    const int64_t K = sizeof eot / sizeof eot[0];
    int32_t *tok = calloc((size_t)(K * S), sizeof(int32_t));
    Rng r = rng_stream(7, RNG_STREAM_TEST);
    for (int64_t k = 0; k < K; k++) {
        tok[k * S] = (int32_t)cfg.vocab - 2; // start of text, then ids below it, EOT = the largest id
        for (int64_t s = 1; s < eot[k]; s++) tok[k * S + s] = 1 + (int32_t)(rng_uniform(&r) * (float)(cfg.vocab - 4));
        tok[k * S + eot[k]] = (int32_t)cfg.vocab - 1;
    }
    float *rt = malloc((size_t)(K * E) * sizeof(float));
    rng_fill_normal(&r, rt, K * E, 0.0f, 1.0f);
    float *feat[2], *grads[2][64], *dctx[2];
    XC_EXPECT(ps.n <= 64, "%d parameters", ps.n);
    Graph g;
    graph_init(&g, 64u << 20);
    for (int with_ctx = 0; with_ctx < 2; with_ctx++) {
        // with the context vectors only the rows long enough for them (EOT at N + 1 or later)
        int32_t *rows = calloc((size_t)(K * S), sizeof(int32_t));
        int64_t n = 0;
        for (int64_t k = 0; k < K; k++)
            if (!with_ctx || eot[k] >= N + 1) memcpy(rows + n++ * S, tok + k * S, (size_t)S * sizeof(int32_t));
        for (int fast = 0; fast < 2; fast++) {
            Tensor *ctx = NULL;
            if (with_ctx) { // CoOp: slots 1..N take the context vectors
                ctx = tensor_new(&g, 2, (int64_t[]){N, D});
                Rng rc = rng_stream(8, RNG_STREAM_TEST);
                rng_fill_normal(&rc, ctx->data, ctx->numel, 0.0f, 0.02f);
                ctx->requires_grad = true;
            }
            param_store_zero_grad(&ps);
            Tensor *f = clip_encode_text_ctx(&g, &m.text, rows, n, S, fast, ctx);
            graph_backward_from(&g, f, rt);
            feat[fast] = malloc((size_t)f->numel * sizeof(float));
            memcpy(feat[fast], f->data, (size_t)f->numel * sizeof(float));
            for (int i = 0; i < ps.n; i++) {
                grads[fast][i] = calloc((size_t)ps.p[i]->numel, sizeof(float));
                if (ps.p[i]->grad) memcpy(grads[fast][i], ps.p[i]->grad, (size_t)ps.p[i]->numel * sizeof(float));
            }
            dctx[fast] = NULL;
            if (ctx) {
                dctx[fast] = malloc((size_t)ctx->numel * sizeof(float));
                memcpy(dctx[fast], tensor_grad(&g, ctx), (size_t)ctx->numel * sizeof(float));
            }
            graph_reset(&g);
        }
        const char *how = with_ctx ? " with context vectors" : "";
        char what[256];
        snprintf(what, sizeof what, "fast path in groups%s: features", how);
        double fe = xc_expect_scaled(what, feat[1], feat[0], n * E, 1e-6), ge = 0;
        for (int i = 0; i < ps.n; i++) {
            snprintf(what, sizeof what, "fast path in groups%s: grad %s", how, ps.p[i]->name);
            ge = fmax(ge, xc_expect_scaled(what, grads[1][i], grads[0][i], ps.p[i]->numel, 3e-6));
            free(grads[0][i]);
            free(grads[1][i]);
        }
        if (with_ctx) ge = fmax(ge, xc_expect_scaled("fast path in groups: grad ctx", dctx[1], dctx[0], N * D, 3e-6));
        printf("  fast path in groups, %lld rows of lengths %s%s: features %.2e, gradients %.2e (scaled, against "
               "the full context)\n", (long long)n, with_ctx ? "6..77" : "3..77", how, fe, ge);
        free(feat[0]); free(feat[1]); free(dctx[0]); free(dctx[1]);
        free(rows);
    }
    graph_free(&g);
    param_store_free(&ps);
    free(tok);
    free(rt);
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
    test_fast_groups();
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
