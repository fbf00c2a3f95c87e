// evaluate.c - see evaluate.h. Letters: B videos of a batch, V views per video, T frames, H input size, K classes.
#include "train/evaluate.h"

#include <math.h>
#include <string.h>
#include "train/report.h"
#include "train/dist.h"
#include "train/signals.h"

// Counts over the videos seen so far.
typedef struct Tally {
    int64_t n, top1, top5;
    int64_t *hit, *count;     // (K) per class: correct top-1, videos
} Tally;

// sum (nc views, K) += softmax of each view's logits, view j into row (c0 + j) / V (the official validate).
static void add_view_probs(const Tensor *logits, int64_t c0, int V, int K, double *sum) {
    for (int64_t j = 0; j < logits->shape[0]; j++) {
        const float *l = logits->data + j * K;
        double mx = l[0], z = 0;
        for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
        for (int k = 0; k < K; k++) z += exp((double)l[k] - mx);
        double *acc = sum + ((c0 + j) / V) * K;
        for (int k = 0; k < K; k++) acc[k] += exp((double)l[k] - mx) / z;
    }
}

// The summed probabilities of one batch's videos: ranks into the tally, rows into out. A bad video the loader left
// out (item -1) counts nowhere.
static void score_batch(const Batch *b, const double *sum, int K, Tally *t, EvalOutput *out, int64_t n_videos) {
    for (int i = 0; i < b->B; i++) {
        if (b->items[i] < 0) continue;
        const double *p = sum + (size_t)i * K;
        int y = b->labels[i];
        int rank = 0; // classes scoring strictly higher than the label (ties resolved towards the label)
        for (int k = 0; k < K; k++) rank += p[k] > p[y] || (p[k] == p[y] && k < y);
        t->top1 += rank == 0;
        t->top5 += rank < 5;
        if (y >= 0 && y < K) {
            t->count[y]++;
            t->hit[y] += rank == 0;
        }
        if (out && t->n < n_videos) {
            for (int k = 0; k < K; k++) out->probs[t->n * K + k] = (float)p[k];
            out->labels[t->n] = y;
            out->items[t->n] = b->items[i];
        }
        t->n++;
    }
}

static void tally_result(const Tally *t, int K, EvalResult *res) {
    res->n = t->n;
    if (t->n == 0) return;
    res->top1 = 100.0 * (double)t->top1 / (double)t->n;
    res->top5 = 100.0 * (double)t->top5 / (double)t->n;
    double mc = 0;
    int present = 0;
    for (int k = 0; k < K; k++)
        if (t->count[k]) {
            mc += (double)t->hit[k] / (double)t->count[k];
            present++;
        }
    res->mean_class = present ? 100.0 * mc / present : 0;
}

int evaluate_logits(EvalLogitsFn fn, void *ctx, int64_t T, int64_t H, Graph *g, Loader *ld, int64_t n_videos, int K,
                    int chunk, bool progress, EvalResult *res, EvalOutput *out, XcError *err) {
    memset(res, 0, sizeof *res);
    XC_CHECK(!out || loader_shards(ld) == 1, "evaluate: per-video outputs from a sharded loader");
    if (out) {
        out->probs = xc_calloc((size_t)n_videos * (size_t)K, sizeof(float));
        out->labels = xc_calloc((size_t)n_videos, sizeof(int32_t));
        out->items = xc_calloc((size_t)n_videos, sizeof(int64_t));
    }
    const size_t clip_floats = (size_t)T * 3 * (size_t)H * (size_t)H;
    Tally t = {.hit = xc_calloc((size_t)K, sizeof(int64_t)), .count = xc_calloc((size_t)K, sizeof(int64_t))};
    double *sum = NULL; // (B, K) summed view probabilities of the current batch
    size_t sum_cap = 0;
    bool prev = graph_set_grad(g, false);
    int rc = XC_OK;
    for (int64_t batches = 1;; batches++) {
        const Batch *b;
        int r = loader_next(ld, &b, err);
        if (r == 0) break;
        if (r < 0) { rc = XC_ERR; break; }
        const int V = b->views;
        const int64_t clips = (int64_t)b->B * V;
        if ((size_t)b->B * (size_t)K > sum_cap) {
            xc_free(sum);
            sum_cap = (size_t)b->B * (size_t)K;
            sum = xc_malloc(sizeof(double) * sum_cap);
        }
        memset(sum, 0, sizeof(double) * (size_t)b->B * (size_t)K);
        res->views = V;
        for (int64_t c0 = 0; c0 < clips; c0 += chunk) {
            int64_t nc = clips - c0 < chunk ? clips - c0 : chunk;
            Tensor *v = tensor_wrap(g, 5, (int64_t[]){nc, T, 3, H, H}, b->video + (size_t)c0 * clip_floats);
            Tensor *logits = fn(ctx, g, v); // (nc, K)
            XC_CHECK(logits->shape[1] == K, "evaluate: model has %lld classes, expected %d", (long long)logits->shape[1], K);
            add_view_probs(logits, c0, V, K, sum);
            graph_reset(g);
        }
        score_batch(b, sum, K, &t, out, n_videos);
        if (progress) progress_bar("eval", t.n, n_videos, NULL);
        if (signals_poll_at(SIGNAL_AT_EVAL_BATCH, batches) & SIGNAL_STOP) break; // Ctrl-C: the caller sees the request
    }
    if (progress) progress_bar_clear();
    graph_set_grad(g, prev);
    if (loader_shards(ld) > 1) { // each rank scored its share of the batches: the counts add up exactly
        int64_t *all = xc_malloc(sizeof(int64_t) * (size_t)(3 + 2 * K));
        all[0] = t.n, all[1] = t.top1, all[2] = t.top5;
        memcpy(all + 3, t.hit, sizeof(int64_t) * (size_t)K);
        memcpy(all + 3 + K, t.count, sizeof(int64_t) * (size_t)K);
        dist_sum_i64(all, 3 + 2 * K);
        t.n = all[0], t.top1 = all[1], t.top5 = all[2];
        memcpy(t.hit, all + 3, sizeof(int64_t) * (size_t)K);
        memcpy(t.count, all + 3 + K, sizeof(int64_t) * (size_t)K);
        xc_free(all); // (a data error on this rank still joined the sum: the ranks stay in step until it is reported)
    }
    tally_result(&t, K, res);
    xc_free(sum);
    xc_free(t.hit);
    xc_free(t.count);
    return rc;
}

static Tensor *xclip_logits(void *ctx, Graph *g, Tensor *clips) {
    XClip *m = ctx;
    return xclip_forward(g, m, clips, NULL, m->text_cache_k, 0, NULL).logits;
}

int evaluate(XClip *m, Graph *g, Loader *ld, int64_t n_videos, const int32_t *tokens, int K, int64_t S, int chunk,
             bool progress, EvalResult *res, EvalOutput *out, XcError *err) {
    if (m->cfg.head == XCLIP_HEAD_LINEAR) { // class scores from the head: its K classes, no text
        if (K != m->cfg.num_classes)
            return xc_err(err, "the model's linear head scores %lld classes, the label set has %d",
                          (long long)m->cfg.num_classes, K);
        return evaluate_logits(xclip_logits, m, m->cfg.frames, m->cfg.clip.image_size, g, ld, n_videos, K, chunk, progress,
                               res, out, err);
    }
    if (!m->cfg.fix_text || m->prompt_ctx) xclip_cache_text(m, tokens, K, S); // the current text features (training tower or context)
    XC_CHECK(m->text_cache && m->text_cache_k == K, "evaluate: %d class texts, %lld cached", K, (long long)m->text_cache_k);
    return evaluate_logits(xclip_logits, m, m->cfg.frames, m->cfg.clip.image_size, g, ld, n_videos, K, chunk, progress, res,
                           out, err);
}

typedef struct ClipEval {
    const Clip *m;
    const float *text_features; // (K, E) normalised
    int64_t K;
} ClipEval;

static Tensor *clip_logits(void *ctx, Graph *g, Tensor *clips) {
    const ClipEval *c = ctx;
    return clip_video_logits(g, c->m, clips, c->text_features, c->K);
}

int evaluate_clip(const Clip *m, const float *text_features, int64_t T, Graph *g, Loader *ld, int64_t n_videos, int K,
                  int chunk, bool progress, EvalResult *res, EvalOutput *out, XcError *err) {
    ClipEval c = {m, text_features, K};
    return evaluate_logits(clip_logits, &c, T, m->cfg.image_size, g, ld, n_videos, K, chunk, progress, res, out, err);
}

void eval_output_free(EvalOutput *o) {
    xc_free(o->probs);
    xc_free(o->labels);
    xc_free(o->items);
    memset(o, 0, sizeof *o);
}
