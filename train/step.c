// step.c - see step.h. Letters: B videos, T frames, H input size, K classes, S text context.
#include "train/step.h"

#include <string.h>
#include "train/param_groups.h"

static int xclip_group_of(const char *name) { return xclip_is_new_tensor(name) ? 1 : 0; }

StepGroups xclip_step_groups(double new_lr_scale) {
    return (StepGroups){.n = 2, .scale = {1.0f, (float)new_lr_scale}, .group_of = xclip_group_of, .decays = xclip_decays};
}

void train_step_init_groups(TrainStep *s, ParamStore *ps, AdamWConfig ac, StepGroups groups, LrSchedule sched, int accum,
                            uint64_t seed, bool drop_on) {
    memset(s, 0, sizeof *s);
    XC_CHECK(accum >= 1, "train_step_init: accumulation steps %d", accum);
    XC_CHECK(groups.n >= 1 && groups.n <= STEP_MAX_GROUPS, "train_step_init: %d learning-rate groups", groups.n);
    s->ps = ps;
    s->sched = sched;
    s->groups = groups;
    s->accum = accum;
    s->sched_t = -1;
    s->ranks = 1;
    s->drop_seed = seed;
    s->drop = rng_substream(seed, RNG_STREAM_DROP, 0, 0);
    s->drop_on = drop_on;
    adamw_init(&s->opt, ps, ac);
    for (int i = 0; i < ps->n; i++) {
        const Tensor *p = ps->p[i];
        const int group = groups.group_of ? groups.group_of(p->name) : 0;
        XC_CHECK(group >= 0 && group < groups.n, "train_step_init: %s in group %d of %d", p->name, group, groups.n);
        adamw_set_group(&s->opt, i, group, groups.decays ? groups.decays(p->name, p->ndim) : true);
    }
    graph_init(&s->g, 64u << 20);
    s->fused = false;
    for (int i = 0; i < ps->n; i++) s->fused |= ps->p[i]->grad_transient;
    XC_CHECK(!s->fused || accum == 1, "train_step_init: parameters with transient gradients (fused AdamW) cannot "
                                      "accumulate %d micro-batches", accum);
    if (s->fused) adamw_fuse(&s->opt, &s->g);
}

void train_step_init(TrainStep *s, XClip *m, ParamStore *ps, AdamWConfig ac, double new_lr_scale, LrSchedule sched,
                     int accum, uint64_t seed, bool drop_on) {
    train_step_init_groups(s, ps, ac, xclip_step_groups(new_lr_scale), sched, accum, seed, drop_on);
    s->m = m;
}

void train_step_distribute(TrainStep *s, size_t bucket_bytes) {
    XC_CHECK(!s->fused, "train_step_distribute: fused AdamW updates parameters before the ranks' gradients are summed");
    if (dist_size() <= 1) return;
    s->ranks = dist_size();
    grad_reducer_init(&s->reduce, s->ps, bucket_bytes);
}

void train_step_free(TrainStep *s) {
    if (s->ranks > 1) grad_reducer_free(&s->reduce);
    adamw_free(&s->opt);
    graph_free(&s->g);
    memset(s, 0, sizeof *s);
}

void train_step_set_tokens(TrainStep *s, const int32_t *tokens, int64_t K, int64_t S) {
    s->tokens = tokens;
    s->K = K;
    s->S = S;
}

void train_step_epoch_begin(TrainStep *s) { param_store_zero_grad(s->ps); }

static double rate_of(const TrainStep *s, double scale) {
    if (s->sched_t < 0) return lr_schedule_initial(&s->sched) * scale;
    return lr_schedule_at_scaled(&s->sched, s->sched_t, scale);
}

double train_step_next_lr(const TrainStep *s) { return rate_of(s, 1.0); }

static void update_one(void *ctx, int i) { adamw_update(ctx, i); }

float train_step_run_loss(TrainStep *s, StepLossFn fn, void *ctx, int64_t idx, int64_t t, bool *stepped) {
    Graph *g = &s->g;
    const int64_t per_step = (int64_t)s->accum * s->ranks; // micro-batches of all ranks per optimiser step
    // this rank's micro-batch of the call's N: its drop-path masks are its own, whatever the number of ranks
    if (s->drop_on) s->drop = rng_substream(s->drop_seed, RNG_STREAM_DROP, (uint64_t)(t - s->ranks + 1 + dist_rank()), 0);
    Tensor *loss = fn(ctx, g, s->drop_on ? &s->drop : NULL);
    float value = loss->data[0];
    const bool step = (idx + 1) % per_step == 0;
    float lr[STEP_MAX_GROUPS] = {0}; // every group at its own rate (timm decays each from its own base to the shared floor)
    for (int k = 0; step && k < s->groups.n; k++) lr[k] = (float)rate_of(s, s->groups.scale[k]); // fused: step is always on
    const bool reduce = step && s->ranks > 1;
    if (s->fused || reduce) adamw_begin_step(&s->opt, lr); // updates happen inside backward (as sums arrive)
    if (reduce) grad_reducer_arm(&s->reduce, g, update_one, &s->opt); // buckets start as backward completes them
    graph_backward(g, per_step > 1 ? op_scale(g, loss, 1.0f / (float)per_step) : loss);
    if (reduce) grad_reducer_finish(&s->reduce, g); // the buckets still on their way
    if (s->fused || reduce) adamw_end_step(&s->opt); // parameters the loss did not reach
    graph_reset(g);
    if (step) {
        s->last_lr = rate_of(s, 1.0);
        if (!s->fused) {
            if (!reduce) adamw_step(&s->opt, lr);
            param_store_zero_grad(s->ps);
        }
        if (s->after_update) s->after_update(s->after_ctx);
        s->sched_t = t; // lr_scheduler.step_update(t): the rate of the next step
        s->opt_steps++;
    }
    if (stepped) *stepped = step;
    return value;
}

typedef struct XClipBatch {   // X-CLIP's micro-batch, for xclip_loss
    const TrainStep *s;
    const float *video, *targets; // (B, T, 3, H, H), (B, K)
    int B;
} XClipBatch;

static Tensor *xclip_loss(void *ctx, Graph *g, Rng *drop) {
    const XClipBatch *b = ctx;
    const TrainStep *s = b->s;
    const XClipConfig *c = &s->m->cfg;
    const int64_t H = c->clip.image_size;
    Tensor *v = tensor_wrap(g, 5, (int64_t[]){b->B, c->frames, 3, H, H}, b->video);
    XClipOut o = xclip_forward(g, s->m, v, s->tokens, s->K, s->S, drop);
    Tensor *y = tensor_wrap(g, 2, (int64_t[]){b->B, o.logits->shape[1]}, b->targets);
    return op_soft_cross_entropy(g, o.logits, y);
}

float train_step_run(TrainStep *s, const float *video, int B, const float *targets, int64_t idx, int64_t t, bool *stepped) {
    XC_CHECK(s->m, "train_step_run: not an X-CLIP step (train_step_init)");
    XClipBatch b = {s, video, targets, B};
    return train_step_run_loss(s, xclip_loss, &b, idx, t, stepped);
}

void train_step_resume_at(TrainStep *s, int64_t epoch, int64_t iter_in_epoch, int64_t n_iter) {
    // the iteration of the last optimiser step (steps happen at (idx + 1) % accum == 0)
    const int64_t a = (int64_t)s->accum * s->ranks;
    int64_t last = -1;
    if (iter_in_epoch >= a) last = epoch * n_iter + (iter_in_epoch / a) * a - 1;
    else if (epoch > 0 && n_iter >= a) last = (epoch - 1) * n_iter + (n_iter / a) * a - 1;
    s->sched_t = last;
    s->opt_steps = s->opt.step;
}
