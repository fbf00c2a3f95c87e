// test_trainer.c - the training step of train/trainer.h and the schedule of train/schedule.h:
//   - learning rates at chosen iterations against timm's CosineLRScheduler (values below from a torch-free
//     transcription of timm 0.4.12's _get_lr, in the comment of SCHEDULE), per group (1x and 10x) with the
//     shared floor, fractional warm-up epochs;
//   - the lag: the first optimiser step uses the warm-up start 0 (weights unchanged, Adam moments updated),
//     step k uses the rate of the iteration of step k-1, also with gradient accumulation;
//   - gradient accumulation over 2 micro-batches of 2 equals one batch of 4 (same weights after 2 steps);
//   - parameter groups and no-decay sets by name, per-group cosine rates;
//   - no system allocation in steps after the first;
//   - train.fused_adamw: AdamW inside backward equals backward + AdamW bit for bit (weights and moments);
//   - the trainer's step against the PyTorch reference's 3 AdamW steps (tests/fixtures/xclip/t3: the 4 losses
//     of tests/ref/make_xclip_fixtures.py, rtol 1e-3 as test_xclip_parity).
#include "test_util.h"
#include "xclip_fixture.h"
#include "train/param_groups.h"
#include "train/trainer.h"

static bool near(double a, double b) { return fabs(a - b) <= 1e-12 * fabs(b) + 1e-20; }

static void test_schedule(void) {
    // python: timm(t, base, lr_min, warmup_t, t_initial) with base 8e-6 (x10 for the new tensors), lr_min 8e-8,
    // n_iter 100: warmup_t = int(5 * 100), t_initial = int(30 * 100)
    static const struct { int64_t t; double s1, s10; } SCHEDULE[] = {
        {0, 0.0, 0.0},
        {1, 1.5999999999999998e-08, 1.5999999999999998e-07},
        {250, 4e-06, 3.9999999999999996e-05},
        {499, 7.983999999999998e-06, 7.984e-05},
        {500, 7.469460598986378e-06, 7.464637513522616e-05},
        {501, 7.4673852678019554e-06, 7.462543315691063e-05},
        {1234, 5.1288661576931585e-06, 5.102764940944913e-05},
        {1500, 4.04e-06, 4.0039999999999996e-05},
        {2999, 8.000217131276967e-08, 8.00219105197666e-08},
        {3000, 8e-08, 8e-08},
    };
    LrSchedule s = lr_schedule_from_epochs(8e-6, 0.01, 5, 30, 100);
    XC_EXPECT(s.warmup == 500 && s.total == 3000 && near(s.min, 8e-8), "schedule sizes %lld %lld %g", (long long)s.warmup,
              (long long)s.total, s.min);
    int bad = 0;
    for (size_t i = 0; i < sizeof SCHEDULE / sizeof SCHEDULE[0]; i++) {
        double a = lr_schedule_at(&s, SCHEDULE[i].t), b = lr_schedule_at_scaled(&s, SCHEDULE[i].t, 10.0);
        if (!near(a, SCHEDULE[i].s1) || !near(b, SCHEDULE[i].s10)) {
            fprintf(stderr, "  t %lld: %.17g %.17g, timm %.17g %.17g\n", (long long)SCHEDULE[i].t, a, b, SCHEDULE[i].s1,
                    SCHEDULE[i].s10);
            bad++;
        }
    }
    XC_EXPECT(bad == 0, "%d schedule values differ from timm's", bad);
    // fractional warm-up (int(0.5 * 7) = 3 iterations), 2e-6 over 30 epochs of 7
    LrSchedule f = lr_schedule_from_epochs(2e-6, 0.01, 0.5, 30, 7);
    static const struct { int64_t t; double v; } FRAC[] = {
        {0, 0.0}, {1, 6.666666666666666e-07}, {2, 1.3333333333333332e-06}, {3, 1.9990031358759014e-06},
        {100, 1.08398279265056e-06}, {209, 2.01107792078293e-08}};
    bad = 0;
    for (size_t i = 0; i < sizeof FRAC / sizeof FRAC[0]; i++)
        if (!near(lr_schedule_at(&f, FRAC[i].t), FRAC[i].v)) bad++;
    XC_EXPECT(f.warmup == 3 && f.total == 210 && bad == 0, "fractional warm-up: warmup %lld, %d values off", (long long)f.warmup, bad);
    XC_EXPECT(lr_schedule_initial(&s) == 0.0, "initial rate with warm-up is %g, want 0", lr_schedule_initial(&s));
    LrSchedule nw = lr_schedule_make(1e-3, 0, 0, 100);
    XC_EXPECT(lr_schedule_initial(&nw) == 1e-3, "initial rate without warm-up is %g, want the base", lr_schedule_initial(&nw));
}

// ---- a tiny random X-CLIP --------------------------------------------------------------------------
typedef struct Tiny {
    XClip m;
    ParamStore ps;
    int32_t tokens[3 * 8];
} Tiny;

// fused: train.fused_adamw on (parameters with transient gradients, AdamW inside backward) or off.
static void tiny_init(Tiny *t, uint64_t seed, bool fused, double drop_path) {
    TrainConfig c;
    config_defaults(&c);
    c.fused_adamw = fused ? FUSED_ADAMW_ON : FUSED_ADAMW_OFF;
    c.drop_path = drop_path;
    snprintf(c.pretrained, sizeof c.pretrained, "none");
    c.arch = ARCH_CUSTOM;
    c.vision_width = 64, c.vision_layers = 2, c.patch = 4, c.input_size = 8, c.embed_dim = 64;
    c.text_width = 64, c.text_layers = 1, c.context = 8, c.frames = 3, c.mit_layers = 1, c.prompt_layers = 1;
    c.seed = (int64_t)seed;
    XcError err;
    int rc = model_build(&t->m, &t->ps, &c, NULL, NULL, &err);
    XC_CHECK(rc == XC_OK, "tiny model: %s", err.msg);
    static const int32_t rows[3][8] = {{49406, 320, 1929, 49407}, {49406, 320, 2866, 3477, 49407}, {49406, 1237, 49407}};
    memcpy(t->tokens, rows, sizeof rows);
    xclip_cache_text(&t->m, t->tokens, 3, 8);
}

static void tiny_free(Tiny *t) {
    xclip_free(&t->m);
    param_store_free(&t->ps);
}

// Batch of B clips (B, 3, 3, 8, 8) and soft targets (B, 3) from a seed.
static void make_batch(uint64_t seed, int B, float *video, float *targets) {
    Rng r = rng_stream(seed, RNG_STREAM_TEST);
    rng_fill_normal(&r, video, (int64_t)B * 3 * 3 * 8 * 8, 0.0f, 1.0f);
    for (int b = 0; b < B; b++) {
        float s = 0;
        for (int k = 0; k < 3; k++) s += targets[b * 3 + k] = 0.1f + rng_uniform(&r);
        for (int k = 0; k < 3; k++) targets[b * 3 + k] /= s;
    }
}

static const AdamWConfig ADAMW = {0.9f, 0.98f, 1e-8f, 0.001f};

static void test_lag(void) {
    Tiny t;
    tiny_init(&t, 7, true, 0);
    Tensor *w = param_find(&t.ps, "visual.transformer.resblocks.0.message_fc.weight");
    float *before = xc_malloc(sizeof(float) * (size_t)w->numel);
    memcpy(before, w->data, sizeof(float) * (size_t)w->numel);
    TrainStep s;
    LrSchedule sched = lr_schedule_make(1e-3, 1e-5, 4, 20);
    train_step_init(&s, &t.m, &t.ps, ADAMW, 10.0, sched, 1, 7, false);
    float video[4 * 3 * 3 * 8 * 8], targets[4 * 3];
    make_batch(1, 4, video, targets);
    train_step_epoch_begin(&s);
    bool stepped;
    train_step_run(&s, video, 4, targets, 0, 0, &stepped);
    double moments = 0;
    for (int64_t i = 0; i < s.opt.numel; i++) moments += fabs(s.opt.m[i]);
    XC_EXPECT(stepped && s.last_lr == 0.0, "first step used lr %g, want the warm-up start 0", s.last_lr);
    XC_EXPECT(!memcmp(before, w->data, sizeof(float) * (size_t)w->numel), "weights moved on the lr-0 first step");
    XC_EXPECT(moments > 0 && s.opt.step == 1, "Adam moments not updated on the first step (sum |m| %g)", moments);
    train_step_run(&s, video, 4, targets, 1, 1, NULL); // uses the rate of t = 0: still 0 in warm-up
    XC_EXPECT(s.last_lr == 0.0, "second step used %g, want lr(0) = 0", s.last_lr);
    train_step_run(&s, video, 4, targets, 2, 2, NULL); // uses lr(1) = base / 4
    XC_EXPECT(near(s.last_lr, 2.5e-4), "third step used %g, want lr(1) = 2.5e-4", s.last_lr);
    int i10 = -1;
    for (int i = 0; i < t.ps.n; i++)
        if (t.ps.p[i] == w) i10 = i;
    XC_EXPECT(i10 >= 0 && near(s.opt.last_lr[i10], (float)2.5e-3), "10x group rate %g, want 2.5e-3", s.opt.last_lr[i10]);
    XC_EXPECT(near(train_step_next_lr(&s), 5e-4), "next rate %g, want lr(2) = 5e-4", train_step_next_lr(&s));
    // into the cosine: the 10x group decays from 10 x base to the shared floor
    for (int64_t it = 3; it <= 10; it++) train_step_run(&s, video, 4, targets, it, it, NULL);
    double want1 = lr_schedule_at(&sched, 9), want10 = lr_schedule_at_scaled(&sched, 9, 10.0);
    XC_EXPECT(near(s.last_lr, want1) && fabs(s.opt.last_lr[i10] - want10) <= 1e-6 * want10 && fabs(want10 - 10 * want1) > 1e-6,
              "cosine step rates %g / %g, want %g / %g (not 10x)", s.last_lr, s.opt.last_lr[i10], want1, want10);
    train_step_free(&s);

    // with accumulation 2 the optimiser steps at idx 1, 3, ... and step k uses the rate of step k-1's t
    tiny_free(&t);
    tiny_init(&t, 7, false, 0);
    train_step_init(&s, &t.m, &t.ps, ADAMW, 10.0, sched, 2, 7, false);
    train_step_epoch_begin(&s);
    bool st0, st1, st3;
    train_step_run(&s, video, 4, targets, 0, 0, &st0);
    train_step_run(&s, video, 4, targets, 1, 1, &st1);
    double first = s.last_lr;
    train_step_run(&s, video, 4, targets, 2, 2, NULL);
    train_step_run(&s, video, 4, targets, 3, 3, &st3);
    XC_EXPECT(!st0 && st1 && st3 && s.opt_steps == 2, "accumulation 2: stepped %d %d %d, %lld steps", st0, st1, st3,
              (long long)s.opt_steps);
    XC_EXPECT(first == 0.0 && near(s.last_lr, 2.5e-4), "accumulation 2: rates %g %g, want 0 and lr(1) = 2.5e-4", first, s.last_lr);
    train_step_free(&s);
    tiny_free(&t);
    xc_free(before);
}

static void test_accumulation(void) {
    // constant rate: no warm-up and a cosine far longer than the test. Adam with eps = 1 makes the update
    // about lr x gradient, so the comparison sees gradient differences at float precision; with eps 1e-8 Adam
    // turns rounding noise in near-zero gradients into steps of about lr (up to 6e-4 here), which says nothing
    // about accumulation.
    LrSchedule sched = lr_schedule_make(0.1, 0, 0, (int64_t)1 << 50);
    const AdamWConfig linear = {0.9f, 0.98f, 1.0f, 0.001f};
    Tiny a, b;
    tiny_init(&a, 11, false, 0);
    tiny_init(&b, 11, true, 0); // one batch: fused AdamW
    TrainStep sa, sb;
    train_step_init(&sa, &a.m, &a.ps, linear, 10.0, sched, 2, 3, false);
    train_step_init(&sb, &b.m, &b.ps, linear, 10.0, sched, 1, 3, false);
    train_step_epoch_begin(&sa);
    train_step_epoch_begin(&sb);
    const size_t clip = 3 * 3 * 8 * 8;
    float video[4 * 3 * 3 * 8 * 8], targets[4 * 3];
    for (int step = 0; step < 2; step++) {
        make_batch(100 + step, 4, video, targets);
        float l0 = train_step_run(&sa, video, 2, targets, 2 * step, 2 * step, NULL);
        float l1 = train_step_run(&sa, video + 2 * clip, 2, targets + 6, 2 * step + 1, 2 * step + 1, NULL);
        float lb = train_step_run(&sb, video, 4, targets, step, step, NULL);
        XC_EXPECT(fabsf(0.5f * (l0 + l1) - lb) <= 1e-5f * fabsf(lb), "step %d: mean micro-batch loss %.7g vs batch loss %.7g",
                  step, 0.5f * (l0 + l1), lb);
    }
    XC_EXPECT(sa.opt_steps == 2 && sb.opt_steps == 2, "optimiser steps %lld / %lld", (long long)sa.opt_steps, (long long)sb.opt_steps);
    double maxd = 0, moved = 0;
    int compared = 0;
    for (int i = 0; i < a.ps.n; i++) {
        Tensor *pa = a.ps.p[i], *pb = b.ps.p[i];
        if (!pa->requires_grad) continue;
        char what[300];
        snprintf(what, sizeof what, "accumulated vs one batch: %s", pa->name);
        maxd = fmax(maxd, xc_expect_close(what, pa->data, pb->data, (long)pa->numel, 1e-6, 1e-4));
        compared++;
    }
    Tiny fresh;
    tiny_init(&fresh, 11, false, 0);
    Tensor *w0 = param_find(&fresh.ps, "visual.conv1.weight"), *w1 = param_find(&a.ps, "visual.conv1.weight");
    for (int64_t j = 0; j < w0->numel; j++) moved = fmax(moved, fabs(w0->data[j] - w1->data[j]));
    XC_EXPECT(moved > 1e-3, "the weights did not move (max %g): the comparison proves nothing", moved);
    printf("  accumulation: %d trained tensors, max |diff| %.2e after 2 steps (weights moved up to %.2e)\n", compared, maxd, moved);
    tiny_free(&fresh);
    train_step_free(&sa);
    train_step_free(&sb);
    tiny_free(&a);
    tiny_free(&b);
}

static void test_groups_and_alloc(void) {
    Tiny t;
    tiny_init(&t, 5, true, 0);
    TrainStep s;
    train_step_init(&s, &t.m, &t.ps, ADAMW, 10.0, lr_schedule_make(1e-3, 1e-5, 2, 50), 1, 5, true); // drop-path stream on
    static const struct { const char *name; float scale; bool decay; } G[] = {
        {"visual.conv1.weight", 1, true},
        {"visual.class_embedding", 1, false},                        // 1-D
        {"visual.positional_embedding", 1, false},                   // positional_embedding
        {"visual.transformer.resblocks.0.attn.in_proj_weight", 1, true},
        {"visual.transformer.resblocks.0.attn.in_proj_bias", 1, false},
        {"visual.transformer.resblocks.1.message_fc.weight", 10, true},
        {"visual.transformer.resblocks.1.message_ln.weight", 10, false},
        {"visual.transformer.resblocks.0.message_attn.out_proj.bias", 10, false},
        {"mit.positional_embedding", 10, false},
        {"mit.resblocks.0.mlp.c_fc.weight", 10, true},
        {"prompts_generator.alpha", 10, false},
        {"prompts_generator.decoder.0.cross_attn.q_proj.weight", 10, true},
        {"prompts_visual_proj", 10, true},
        {"prompts_visual_ln.bias", 10, false},
        {"visual.proj", 1, true},
        {"visual.ln_post.weight", 1, false},
    };
    int bad = 0;
    for (size_t g = 0; g < sizeof G / sizeof G[0]; g++) {
        int i = -1;
        for (int j = 0; j < t.ps.n; j++)
            if (!strcmp(t.ps.p[j]->name, G[g].name)) i = j;
        if (i < 0 || s.groups.scale[s.opt.group[i]] != G[g].scale || s.opt.decay[i] != G[g].decay || !t.ps.p[i]->requires_grad) {
            fprintf(stderr, "  %s: %s\n", G[g].name, i < 0 ? "missing" : "wrong group");
            bad++;
        }
    }
    XC_EXPECT(bad == 0, "%d parameters in the wrong group", bad);
    // fix_text: the text tower and logit_scale are frozen (the official rule); logit_scale, 0-d, would decay
    XC_EXPECT(!param_find(&t.ps, "token_embedding.weight")->requires_grad && !param_find(&t.ps, "logit_scale")->requires_grad,
              "text tower / logit_scale trainable under fix_text");
    XC_EXPECT(xclip_decays("logit_scale", 0), "0-d logit_scale: the official code decays it");

    float video[4 * 3 * 3 * 8 * 8], targets[4 * 3];
    make_batch(9, 4, video, targets);
    train_step_epoch_begin(&s);
    train_step_run(&s, video, 4, targets, 0, 0, NULL);
    uint64_t a0 = xc_sys_alloc_count();
    for (int it = 1; it < 5; it++) train_step_run(&s, video, 4, targets, it, it, NULL);
    uint64_t a1 = xc_sys_alloc_count();
    XC_EXPECT(a1 == a0, "%llu system allocations in 4 training steps after the first", (unsigned long long)(a1 - a0));
    train_step_free(&s);
    tiny_free(&t);
}

// train.fused_adamw: the update inside backward gives the same weights and moments, bit for bit, as backward
// followed by adamw_step, over several steps with warm-up, both rate groups and drop-path on.
static void test_fused(void) {
    Tiny a, b;
    tiny_init(&a, 13, false, 0.3);
    tiny_init(&b, 13, true, 0.3);
    TrainStep sa, sb;
    LrSchedule sched = lr_schedule_make(1e-2, 1e-4, 2, 20);
    train_step_init(&sa, &a.m, &a.ps, ADAMW, 10.0, sched, 1, 3, true);
    train_step_init(&sb, &b.m, &b.ps, ADAMW, 10.0, sched, 1, 3, true);
    XC_EXPECT(!sa.fused && sb.fused, "fused flags %d %d, want 0 1", sa.fused, sb.fused);
    int transient = 0, grads = 0;
    for (int i = 0; i < b.ps.n; i++) {
        transient += b.ps.p[i]->grad_transient;
        grads += b.ps.p[i]->grad != NULL;
    }
    XC_EXPECT(transient > 0 && grads == 0, "fused model: %d transient, %d gradient buffers (want >0, 0)", transient, grads);
    float video[4 * 3 * 3 * 8 * 8], targets[4 * 3];
    train_step_epoch_begin(&sa);
    train_step_epoch_begin(&sb);
    bool same_loss = true;
    for (int it = 0; it < 6; it++) {
        make_batch(200 + (uint64_t)it, 4, video, targets);
        float la = train_step_run(&sa, video, 4, targets, it, it, NULL);
        float lb = train_step_run(&sb, video, 4, targets, it, it, NULL);
        same_loss &= la == lb;
    }
    XC_EXPECT(same_loss, "fused and unfused losses differ");
    int differ = 0, compared = 0;
    for (int i = 0; i < a.ps.n; i++) {
        Tensor *pa = a.ps.p[i], *pb = b.ps.p[i];
        differ += memcmp(pa->data, pb->data, sizeof(float) * (size_t)pa->numel) != 0;
        compared += pa->requires_grad;
    }
    differ += memcmp(sa.opt.m, sb.opt.m, sizeof(float) * (size_t)sa.opt.numel) != 0;
    differ += memcmp(sa.opt.v, sb.opt.v, sizeof(float) * (size_t)sa.opt.numel) != 0;
    Tiny fresh;
    tiny_init(&fresh, 13, false, 0.3);
    Tensor *w0 = param_find(&fresh.ps, "mit.resblocks.0.mlp.c_fc.weight"), *w1 = param_find(&b.ps, "mit.resblocks.0.mlp.c_fc.weight");
    double moved = 0;
    for (int64_t j = 0; j < w0->numel; j++) moved = fmax(moved, fabs(w0->data[j] - w1->data[j]));
    XC_EXPECT(differ == 0 && moved > 1e-3, "fused vs unfused: %d tensors differ after 6 steps (weights moved %g)", differ, moved);
    printf("  fused AdamW: %d trained tensors and the moments bitwise equal to the unfused step after 6 steps\n", compared);
    tiny_free(&fresh);
    train_step_free(&sa);
    train_step_free(&sb);
    tiny_free(&a);
    tiny_free(&b);
}

static void test_reference_steps(void) {
    XclipFixture fx;
    if (!xclip_fixture_open(&fx, "t3")) return;
    XcError err;
    H5Array losses = {0};
    int rc = h5_read(&fx.ref, "adamw/losses", H5_F32, &losses, false, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    const int64_t B = fx.video.shape[0], K = fx.tokens.shape[0], S = fx.tokens.shape[1];
    float *targets = xc_calloc((size_t)(B * K), sizeof(float));
    for (int64_t b = 0; b < B; b++) targets[b * K + ((int64_t *)fx.labels.data)[b]] = 1.0f;
    for (int fused = 0; fused < 2 && rc == XC_OK; fused++) {
        XClip m;
        ParamStore ps;
        if (!xclip_fixture_model(&fx, fused, &m, &ps)) break;
        xclip_cache_text(&m, fx.tokens.data, K, S);
        // the reference: 3 AdamW steps at lr 1e-3 with the official groups (10x for the new tensors), no schedule
        TrainStep s;
        train_step_init(&s, &m, &ps, ADAMW, 10.0, lr_schedule_make(1e-3, 0, 0, (int64_t)1 << 50), 1, 1, false);
        train_step_epoch_begin(&s);
        float got[4];
        for (int i = 0; i < 4; i++) got[i] = train_step_run(&s, fx.video.data, (int)B, targets, i, i, NULL);
        const float *ref = losses.data;
        for (int i = 0; i < 4; i++)
            XC_EXPECT(fabs((double)got[i] - ref[i]) <= 1e-3 * fabs(ref[i]), "%s trainer step %d loss %.7g vs reference %.7g",
                      fused ? "fused" : "unfused", i, got[i], ref[i]);
        printf("  %s trainer step vs reference: losses %.6f %.6f %.6f %.6f (reference %.6f %.6f %.6f %.6f)\n",
               fused ? "fused" : "unfused", got[0], got[1], got[2], got[3], ref[0], ref[1], ref[2], ref[3]);
        train_step_free(&s);
        xclip_free(&m);
        param_store_free(&ps);
    }
    xc_free(targets);
    h5_array_free(&losses);
    xclip_fixture_close(&fx);
}

int main(void) {
    test_schedule();
    test_lag();
    test_accumulation();
    test_groups_and_alloc();
    test_fused();
    test_reference_steps();
    return xc_test_summary("test_trainer");
}
