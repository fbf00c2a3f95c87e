// ops_conv.c - patch embedding: conv with kernel = stride = P, no bias, as unfold + one GEMM.
//   cols (F*N, C*P*P): row (f, gy, gx) holds the patch's pixels in (c, py, px) order, which is the
//   layout of w (Wd, C, P, P) flattened, so out (F*N, Wd) = cols w^T.
#include "autograd/ops.h"
#include "autograd/kernels.h"

#include <string.h>

typedef struct PatchCtx {
    int64_t F, C, H, Wi, P, G_h, G_w;
} PatchCtx;

static void unfold(const PatchCtx *c, const float *img, float *cols) {
    int64_t N = c->G_h * c->G_w, CPP = c->C * c->P * c->P;
#pragma omp parallel for schedule(static) if ((c->F * N * c->C * c->P * c->P) >= XC_PAR_MIN)
    for (int64_t fn = 0; fn < c->F * N; fn++) {
        int64_t f = fn / N, gy = (fn % N) / c->G_w, gx = fn % c->G_w;
        float *row = cols + fn * CPP;
        for (int64_t ch = 0; ch < c->C; ch++)
            for (int64_t py = 0; py < c->P; py++)
                memcpy(row + (ch * c->P + py) * c->P,
                       img + ((f * c->C + ch) * c->H + gy * c->P + py) * c->Wi + gx * c->P, (size_t)c->P * sizeof(float));
    }
}

// cols is not kept: backward unfolds the image again into scratch (the same copy: the same bits), and
// overwrites it with dY w once dW has read it.
static void patch_embed_backward(Graph *g, TapeNode *node) {
    const PatchCtx *c = node->ctx;
    Tensor *img = node->in[0], *w = node->in[1];
    int64_t N = c->G_h * c->G_w, CPP = c->C * c->P * c->P, Wd = w->shape[0];
    const float *dY = node->out->grad; // (F*N, Wd)
    float *dw = w->requires_grad ? tensor_grad(g, w) : NULL, *dimg = img->requires_grad ? tensor_grad(g, img) : NULL;
    ArenaMark m = arena_mark(&g->step);
    float *cols = arena_alloc(&g->step, (size_t)(c->F * N * CPP) * sizeof(float));
    if (dw) {
        unfold(c, img->data, cols);
        gemm_run(g->gemm, true, false, Wd, CPP, c->F * N, 1.0f, dY, Wd, cols, CPP, 1.0f, dw, CPP);
    }
    if (dimg) {
        gemm_run(g->gemm, false, false, c->F * N, CPP, Wd, 1.0f, dY, Wd, w->data, CPP, 0.0f, cols, CPP);
        // fold back: patches do not overlap, so each pixel receives at most one term
        for (int64_t fn = 0; fn < c->F * N; fn++) {
            int64_t f = fn / N, gy = (fn % N) / c->G_w, gx = fn % c->G_w;
            const float *row = cols + fn * CPP;
            for (int64_t ch = 0; ch < c->C; ch++)
                for (int64_t py = 0; py < c->P; py++) {
                    float *d = dimg + ((f * c->C + ch) * c->H + gy * c->P + py) * c->Wi + gx * c->P;
                    for (int64_t px = 0; px < c->P; px++) d[px] += row[(ch * c->P + py) * c->P + px];
                }
        }
    }
    arena_rewind(&g->step, m);
}
const OpDef xc_opdef_patch_embed = {.name = "patch_embed", .backward = patch_embed_backward};

Tensor *op_patch_embed(Graph *g, Tensor *img, Tensor *w) {
    XC_CHECK(img->ndim == 4 && w->ndim == 4 && w->shape[1] == img->shape[1] && w->shape[2] == w->shape[3],
             "patch_embed: img (F, C, H, W) and w (Wd, C, P, P)");
    PatchCtx c = {img->shape[0], img->shape[1], img->shape[2], img->shape[3], w->shape[2], 0, 0};
    XC_CHECK(c.P > 0, "patch_embed: patch size 0");
    // like conv2d with stride P: trailing pixels that do not fill a patch are ignored
    c.G_h = c.H / c.P;
    c.G_w = c.Wi / c.P;
    int64_t N = c.G_h * c.G_w, CPP = c.C * c.P * c.P, Wd = w->shape[0];
    Tensor *out = tensor_new(g, 3, (int64_t[]){c.F, N, Wd});
    ArenaMark m = arena_mark(&g->step); // cols (F*N, C*P*P): scratch, unfolded again in backward
    float *cols = arena_alloc(&g->step, (size_t)(c.F * N * CPP) * sizeof(float));
    unfold(&c, img->data, cols);
    gemm_run(g->gemm, false, true, c.F * N, Wd, CPP, 1.0f, cols, CPP, w->data, CPP, 0.0f, out->data, Wd);
    arena_rewind(&g->step, m);
    Tensor *in[2] = {img, w};
    if (graph_needs_grad(g, in, 2)) {
        TapeNode *node = graph_record(g, &xc_opdef_patch_embed, out, in, 2);
        PatchCtx *cc = arena_alloc(&g->step, sizeof *cc);
        *cc = c;
        node->ctx = cc;
    }
    return out;
}
