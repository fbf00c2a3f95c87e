// clip_pretrain.c - see clip_pretrain.h. Letters: B pairs, E embedding size.
#include "nn/clip_pretrain.h"

#include <math.h>

Tensor *clip_contrastive_loss(Graph *g, Tensor *img, Tensor *txt, Tensor *logit_scale, Tensor **logits_out) {
    char s1[64], s2[64];
    XC_CHECK(img->ndim == 2 && txt->ndim == 2 && img->shape[0] == txt->shape[0] && img->shape[1] == txt->shape[1],
             "clip_contrastive_loss: image features %s and text features %s, want both (B, E)",
             tensor_shape_str(img, s1, sizeof s1), tensor_shape_str(txt, s2, sizeof s2));
    const int64_t B = img->shape[0];
    Tensor *sim = op_matmul(g, op_l2_normalize(g, img), op_l2_normalize(g, txt), false, true); // (B, B) cosines
    Tensor *logits = op_mul(g, sim, op_exp(g, logit_scale));
    Tensor *eye = tensor_zeros(g, 2, (int64_t[]){B, B}); // one-hot targets: pair i is class i, both ways
    for (int64_t i = 0; i < B; i++) eye->data[i * B + i] = 1.0f;
    Tensor *image_to_text = op_soft_cross_entropy(g, logits, eye);
    Tensor *text_to_image = op_soft_cross_entropy(g, op_transpose(g, logits, 0, 1), eye);
    if (logits_out) *logits_out = logits;
    return op_scale(g, op_add(g, image_to_text, text_to_image), 0.5f);
}

bool clip_clamp_logit_scale(Tensor *logit_scale) {
    const float hi = logf(100.0f), v = logit_scale->data[0];
    const float c = v < 0.0f ? 0.0f : (v > hi ? hi : v);
    logit_scale->data[0] = c;
    return c != v;
}

bool clip_pretrain_decays(const char *name, int ndim) {
    (void)name;
    return ndim >= 2;
}

int64_t clip_batch_matches(const Tensor *logits) {
    const int64_t B = logits->shape[0];
    int64_t hits = 0;
    for (int64_t i = 0; i < B; i++) {
        const float *row = logits->data + i * B;
        int64_t best = 0;
        for (int64_t j = 1; j < B; j++) best = row[j] > row[best] ? j : best;
        hits += best == i;
    }
    return hits;
}
