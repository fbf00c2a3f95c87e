// test_head_parity.c - model.head = linear and model.fix_vision against the PyTorch reference (tests/ref/xclip_ref.py
// options head='linear' / fix_vision=True; fixtures from tests/ref/make_head_fixtures.py, tests/fixtures/xclip_head):
//   linear: B=2, T=3, grid 4x4, 2 vision layers, MIT 1, K=5: logits, video features, loss, every gradient (head.*
//           included); the parameter groups (head.* at 10x, decay on head.weight only); 3 AdamW steps (lr 1e-4);
//           the same weights with fix_vision (a linear probe): only head.* trains, with the reference's head
//           gradients, and the tape holds the head's few nodes only (no backward through the frozen vision tower);
//   text:   fix_vision with fix_text false: the text tower and logit_scale gradients; no visual/mit/prompts tensor
//           trains or gets a gradient, and none of the vision blocks is on the tape.
// Tolerances, about 5x (rounded up) the worst measured here (OpenBLAS SkylakeX kernels; max |c - ref| / max |ref|):
//   logits and video features <= 1e-5 (measured 1.5e-6, text branch; linear 3.3e-7); loss <= 3e-6 relative
//   (5.6e-7); gradients <= 1.5e-5 (2.6e-6, text branch; linear 6.5e-7); elementwise (xc_expect_elementwise) features
//   floor 2e-6 / rtol 1e-5 and gradients floor 1.1e-5 / rtol 8e-5 (a quarter and a half of test_xclip_parity's; 0.17 of
//   these used); AdamW losses <= 1.5e-6 relative (2.4e-7), the tracked tensors <= 2.5e-6 (4.1e-7).
// Also: the config keys (defaults, contradictions refused by name) and, end to end on synthetic videos, a linear-head
// run of xclip-train (2 steps, a snapshot, resumed), exported, evaluated by xclip-eval, and refused with a label file
// of another K.
#include "test_util.h"
#include "xclip_fixture.h"
#include "snap_test_util.h"
#include "checkpoints/h5io.h"
#include "nn/xclip.h"
#include "train/config.h"
#include "train/param_groups.h"

#include <sys/stat.h>

#define FEAT_TOL 1e-5
#define LOSS_TOL 3e-6
#define GRAD_TOL 1.5e-5
#define FEAT_FLOOR 2e-6
#define FEAT_RTOL 1e-5
#define GRAD_FLOOR 1.1e-5
#define GRAD_RTOL 8e-5
#define ADAM_LOSS_TOL 1.5e-6
#define ADAM_PARAM_TOL 2.5e-6

static bool read_or_fail(const H5File *f, const char *name, H5Type t, H5Array *a) {
    XcError err;
    int rc = h5_read(f, name, t, a, false, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    return rc == XC_OK;
}

typedef struct Model {
    ParamStore ps;
    XClip m;
} Model;

static bool model_load(Model *md, const char *dir, int64_t T, bool fix_text, bool fix_vision) {
    return xclip_fixture_load(dir, T, (XclipVariant){.text_trains = !fix_text, .fix_vision = fix_vision}, &md->m, &md->ps);
}

static void model_free(Model *md) {
    xclip_free(&md->m);
    param_store_free(&md->ps);
}

// trained.txt: every trainable tensor of the reference with its lr multiplier and decay; the same set trains here.
static void check_trained(const char *dir, const ParamStore *ps) {
    char path[1200], name[256];
    snprintf(path, sizeof path, "%s/trained.txt", dir);
    FILE *f = fopen(path, "r");
    XC_EXPECT(f != NULL, "cannot open %s", path);
    if (!f) return;
    int mult, decay, n = 0, bad = 0;
    while (fscanf(f, "%255s %d %d", name, &mult, &decay) == 3) {
        Tensor *p = param_find(ps, name);
        n++;
        if (!p || !p->requires_grad || (xclip_is_new_tensor(name) ? 10 : 1) != mult || xclip_decays(name, p->ndim) != (decay == 1))
            if (bad++ < 5) fprintf(stderr, "  trained/group mismatch: %s (ref lr x%d decay %d)\n", name, mult, decay);
    }
    fclose(f);
    int trained = 0;
    for (int i = 0; i < ps->n; i++) trained += ps->p[i]->requires_grad;
    XC_EXPECT(bad == 0 && n == trained, "%s: %d mismatches, %d listed, %d trained here", dir, bad, n, trained);
}

// Gradients of the trainable tensors against ref.h5 (only those whose name passes `only`, if given).
static double compare_grads(const char *what, const ParamStore *ps, const H5File *fref, bool (*only)(const char *),
                            double *used, int *compared) {
    double e = 0;
    char name[600];
    *compared = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *p = ps->p[i];
        if (!p->requires_grad || (only && !only(p->name))) continue;
        H5Array gref;
        snprintf(name, sizeof name, "grad/%s", p->name);
        if (!read_or_fail(fref, name, H5_F32, &gref)) continue;
        snprintf(name, sizeof name, "%s grad %s", what, p->name);
        e = fmax(e, xc_expect_scaled(name, p->grad, gref.data, gref.numel, GRAD_TOL));
        *used = fmax(*used, xc_expect_elementwise(name, p->grad, gref.data, gref.numel, GRAD_FLOOR, GRAD_RTOL));
        (*compared)++;
        h5_array_free(&gref);
    }
    return e;
}

static bool is_head(const char *name) { return !strncmp(name, "head.", 5); }

static void fixture_dir(const char *cfg, char *dir, size_t n) {
    snprintf(dir, n, "%s/xclip_head/%s", getenv("XCLIP_FIXTURES") ? getenv("XCLIP_FIXTURES") : "tests/fixtures", cfg);
}

static bool open_pair(const char *dir, H5File *fin, H5File *fref) {
    char path[1200];
    XcError err;
    snprintf(path, sizeof path, "%s/in.h5", dir);
    int rc = h5_open(fin, path, false, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    if (rc != XC_OK) return false;
    snprintf(path, sizeof path, "%s/ref.h5", dir);
    rc = h5_open(fref, path, false, &err);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    if (rc != XC_OK) h5_close(fin);
    return rc == XC_OK;
}

static void test_linear(void) {
    char dir[1024];
    fixture_dir("linear", dir, sizeof dir);
    H5File fin, fref;
    if (!open_pair(dir, &fin, &fref)) return;
    H5Array video, labels, logits, vfeat, loss, losses;
    if (!read_or_fail(&fin, "video", H5_F32, &video) || !read_or_fail(&fin, "labels", H5_I64, &labels) ||
        !read_or_fail(&fref, "logits", H5_F32, &logits) || !read_or_fail(&fref, "video_features", H5_F32, &vfeat) ||
        !read_or_fail(&fref, "loss", H5_F32, &loss) || !read_or_fail(&fref, "adamw/losses", H5_F32, &losses))
        return;
    const int64_t T = video.shape[1], K = logits.shape[1];
    Model md;
    if (!model_load(&md, dir, T, true, false)) return;
    XC_EXPECT(md.m.cfg.head == XCLIP_HEAD_LINEAR && md.m.cfg.num_classes == K && md.m.cfg.prompt_layers == 0,
              "linear: head %d, K %lld, prompt layers %lld read off the weights", md.m.cfg.head,
              (long long)md.m.cfg.num_classes, (long long)md.m.cfg.prompt_layers);
    XC_EXPECT(!param_find(&md.ps, "logit_scale") && !param_find(&md.ps, "token_embedding.weight") &&
                  !param_find(&md.ps, "prompts_visual_proj") && !param_find(&md.ps, "prompts_generator.alpha"),
              "linear: text tower, logit_scale or prompt-generator tensors registered");
    check_trained(dir, &md.ps);

    // forward + backward (no tokens: the head needs no text)
    Graph g;
    graph_init(&g, 16u << 20);
    XClipOut o = xclip_forward(&g, &md.m, tensor_from(&g, 5, video.shape, video.data), NULL, 0, 0, NULL);
    double e_feat = xc_expect_scaled("linear logits", o.logits->data, logits.data, logits.numel, FEAT_TOL);
    e_feat = fmax(e_feat, xc_expect_scaled("linear video_features", o.video_features->data, vfeat.data, vfeat.numel, FEAT_TOL));
    double u_feat = xc_expect_elementwise("linear logits", o.logits->data, logits.data, logits.numel, FEAT_FLOOR, FEAT_RTOL);
    u_feat = fmax(u_feat, xc_expect_elementwise("linear video_features", o.video_features->data, vfeat.data, vfeat.numel,
                                                FEAT_FLOOR, FEAT_RTOL));
    XC_EXPECT(o.text_features == NULL, "linear: text features computed");
    Tensor *l = xclip_fixture_ce_loss(&g, o.logits, labels.data);
    const float lref = ((float *)loss.data)[0];
    double e_loss = fabs(l->data[0] - lref) / fabs(lref);
    XC_EXPECT(e_loss <= LOSS_TOL, "linear loss %.8g vs %.8g", l->data[0], lref);
    graph_backward(&g, l);
    double u_grad = 0;
    int compared = 0, trained = 0;
    for (int i = 0; i < md.ps.n; i++) trained += md.ps.p[i]->requires_grad;
    double e_grad = compare_grads("linear", &md.ps, &fref, NULL, &u_grad, &compared);
    XC_EXPECT(compared == trained && trained == md.ps.n, "linear: %d of %d tensors compared (%d registered)", compared, trained,
              md.ps.n);
    graph_reset(&g);
    printf("  linear: features %.2e, loss %.2e, gradients %.2e (%d tensors); elementwise share of tolerance: features "
           "%.2f, gradients %.2f\n", e_feat, e_loss, e_grad, compared, u_feat, u_grad);
    model_free(&md);

    // the linear probe: fix_vision (fix_text is moot: no text tower); only head.* trains, nothing else is on the tape
    if (model_load(&md, dir, T, true, true)) {
        int n_train = 0;
        for (int i = 0; i < md.ps.n; i++) n_train += md.ps.p[i]->requires_grad;
        XC_EXPECT(n_train == 2 && param_find(&md.ps, "head.weight")->requires_grad && param_find(&md.ps, "head.bias")->requires_grad,
                  "linear probe: %d trainable tensors, want head.weight and head.bias", n_train);
        md.m.cfg.checkpoint = true; // gradient checkpointing on: a frozen vision block must still leave no node
        o = xclip_forward(&g, &md.m, tensor_from(&g, 5, video.shape, video.data), NULL, 0, 0, NULL);
        l = xclip_fixture_ce_loss(&g, o.logits, labels.data);
        XC_EXPECT(!o.video_features->requires_grad, "linear probe: the frozen video features require grad");
        int nodes = g.n_nodes;
        XC_EXPECT(nodes <= 4, "linear probe: %d nodes on the tape, want the head's and the loss's (<= 4)", nodes);
        graph_backward(&g, l);
        double u = 0;
        int c = 0;
        double e = compare_grads("linear probe", &md.ps, &fref, is_head, &u, &c);
        XC_EXPECT(c == 2, "linear probe: %d head gradients compared", c);
        printf("  linear probe: %d tape nodes, head gradients %.2e\n", nodes, e);
        graph_reset(&g);
        model_free(&md);
    }

    // 3 AdamW steps (lr 1e-4; head.* in the 10x group)
    if (model_load(&md, dir, T, true, false)) {
        AdamW opt;
        adamw_init(&opt, &md.ps, (AdamWConfig){0.9f, 0.98f, 1e-8f, 0.001f});
        xclip_adamw_groups(&opt);
        float got[4];
        double e_adam = 0;
        for (int s = 0; s < 4; s++) {
            Tensor *ls = xclip_fixture_ce_loss(&g, xclip_forward(&g, &md.m, tensor_from(&g, 5, video.shape, video.data), NULL, 0, 0, NULL).logits,
                                 labels.data);
            got[s] = ls->data[0];
            if (s < 3) {
                graph_backward(&g, ls);
                adamw_step(&opt, (float[]){1e-4f, 1e-3f});
                param_store_zero_grad(&md.ps);
            }
            graph_reset(&g);
            const float r = ((float *)losses.data)[s];
            e_adam = fmax(e_adam, fabs((double)got[s] - r) / fabs(r));
            XC_EXPECT(fabs((double)got[s] - r) <= ADAM_LOSS_TOL * fabs(r), "linear AdamW loss %d: %.7g vs %.7g", s, got[s], r);
        }
        static const char *tracked[] = {"visual.conv1.weight", "mit.positional_embedding", "head.weight", "head.bias"};
        double e_param = 0;
        char name[300];
        for (size_t i = 0; i < sizeof tracked / sizeof tracked[0]; i++) {
            H5Array pref;
            snprintf(name, sizeof name, "adamw/param/%s", tracked[i]);
            if (!read_or_fail(&fref, name, H5_F32, &pref)) continue;
            snprintf(name, sizeof name, "linear after 3 AdamW steps: %s", tracked[i]);
            e_param = fmax(e_param, xc_expect_scaled(name, param_find(&md.ps, tracked[i])->data, pref.data, pref.numel,
                                                     ADAM_PARAM_TOL));
            h5_array_free(&pref);
        }
        printf("  linear: AdamW losses %.6f %.6f %.6f %.6f (rel err %.2e), tracked tensors %.2e\n", got[0], got[1], got[2],
               got[3], e_adam, e_param);
        adamw_free(&opt);
        model_free(&md);
    }
    graph_free(&g);
    h5_array_free(&video); h5_array_free(&labels); h5_array_free(&logits); h5_array_free(&vfeat);
    h5_array_free(&loss); h5_array_free(&losses);
    h5_close(&fin);
    h5_close(&fref);
}

static void test_text_branch(void) {
    char dir[1024];
    fixture_dir("text", dir, sizeof dir);
    H5File fin, fref;
    if (!open_pair(dir, &fin, &fref)) return;
    H5Array video, tokens, labels, logits, vfeat, loss;
    if (!read_or_fail(&fin, "video", H5_F32, &video) || !read_or_fail(&fin, "tokens", H5_I32, &tokens) ||
        !read_or_fail(&fin, "labels", H5_I64, &labels) || !read_or_fail(&fref, "logits", H5_F32, &logits) ||
        !read_or_fail(&fref, "video_features", H5_F32, &vfeat) || !read_or_fail(&fref, "loss", H5_F32, &loss))
        return;
    const int64_t T = video.shape[1], K = tokens.shape[0], S = tokens.shape[1];
    Model md;
    if (!model_load(&md, dir, T, false, true)) return;
    check_trained(dir, &md.ps);
    int vision = 0, bad = 0;
    for (int i = 0; i < md.ps.n; i++) {
        const Tensor *p = md.ps.p[i];
        if (!xclip_is_vision_tensor(p->name)) continue;
        vision++;
        if (p->requires_grad || p->grad) bad++;
    }
    XC_EXPECT(vision > 0 && bad == 0, "text branch: %d of %d vision tensors trainable or with a gradient buffer", bad, vision);
    XC_EXPECT(param_find(&md.ps, "logit_scale")->requires_grad, "text branch: logit_scale frozen");

    Graph g;
    graph_init(&g, 16u << 20);
    XClipOut o = xclip_forward(&g, &md.m, tensor_from(&g, 5, video.shape, video.data), tokens.data, K, S, NULL);
    XC_EXPECT(!o.video_features->requires_grad, "text branch: the frozen video features require grad");
    double e_feat = xc_expect_scaled("text logits", o.logits->data, logits.data, logits.numel, FEAT_TOL);
    e_feat = fmax(e_feat, xc_expect_scaled("text video_features", o.video_features->data, vfeat.data, vfeat.numel, FEAT_TOL));
    double u_feat = xc_expect_elementwise("text logits", o.logits->data, logits.data, logits.numel, FEAT_FLOOR, FEAT_RTOL);
    Tensor *l = xclip_fixture_ce_loss(&g, o.logits, labels.data);
    const float lref = ((float *)loss.data)[0];
    double e_loss = fabs(l->data[0] - lref) / fabs(lref);
    XC_EXPECT(e_loss <= LOSS_TOL, "text loss %.8g vs %.8g", l->data[0], lref);
    graph_backward(&g, l);
    double u_grad = 0;
    int compared = 0, trained = 0;
    for (int i = 0; i < md.ps.n; i++) trained += md.ps.p[i]->requires_grad;
    double e_grad = compare_grads("text", &md.ps, &fref, NULL, &u_grad, &compared);
    XC_EXPECT(compared == trained && trained > 0, "text: %d of %d trained tensors compared", compared, trained);
    printf("  text branch: features %.2e, loss %.2e, gradients %.2e (%d tensors); elementwise share of tolerance: "
           "features %.2f, gradients %.2f\n", e_feat, e_loss, e_grad, compared, u_feat, u_grad);
    graph_free(&g);
    model_free(&md);
    h5_array_free(&video); h5_array_free(&tokens); h5_array_free(&labels); h5_array_free(&logits);
    h5_array_free(&vfeat); h5_array_free(&loss);
    h5_close(&fin);
    h5_close(&fref);
}

// ---- configuration ------------------------------------------------------------------------------------------
static void expect_refused(const char *tag, const char *sets[], int n, const char *key1, const char *key2) {
    char self[1024], vocab[1200];
    snprintf(self, sizeof self, "%s", __FILE__);
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    TrainConfig c;
    config_defaults(&c);
    XcError err = {{0}};
    char s[1400];
    const char *paths[] = {"data.train_list", "data.val_list", "data.labels", "data.root"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        snprintf(s, sizeof s, "%s=%s", paths[i], i == 3 ? "." : self);
        XC_EXPECT(config_set(&c, s, &err) == XC_OK, "%s", err.msg);
    }
    snprintf(s, sizeof s, "data.vocab=%s", vocab);
    config_set(&c, s, &err);
    config_set(&c, "model.pretrained=none", &err);
    for (int i = 0; i < n; i++) XC_EXPECT(config_set(&c, sets[i], &err) == XC_OK, "%s: %s", sets[i], err.msg);
    int rc = config_check(&c, CONFIG_FOR_TRAIN, &err);
    if (!key1) {
        XC_EXPECT(rc == XC_OK, "%s: refused: %s", tag, err.msg);
        return;
    }
    XC_EXPECT(rc != XC_OK && strstr(err.msg, key1) && (!key2 || strstr(err.msg, key2)), "%s: %s (want %s%s%s named)", tag,
              rc == XC_OK ? "accepted" : err.msg, key1, key2 ? " and " : "", key2 ? key2 : "");
}

static void test_config(void) {
    TrainConfig c;
    config_defaults(&c);
    XC_EXPECT(c.head == XCLIP_HEAD_TEXT && !c.fix_vision && c.fix_text, "defaults: head %d fix_vision %d fix_text %d", c.head,
              c.fix_vision, c.fix_text);
    XcError err;
    XC_EXPECT(config_set(&c, "model.head=linear", &err) == XC_OK && c.head == XCLIP_HEAD_LINEAR, "model.head=linear");
    XC_EXPECT(config_set(&c, "model.head=mlp", &err) != XC_OK && strstr(err.msg, "model.head") && strstr(err.msg, "linear"),
              "model.head=mlp: %s", err.msg);
    XC_EXPECT(config_set(&c, "model.fix_vision=maybe", &err) != XC_OK, "model.fix_vision=maybe accepted");
    expect_refused("defaults", NULL, 0, NULL, NULL);
    expect_refused("linear with prompts", (const char *[]){"model.head=linear"}, 1, "model.head", "model.prompt_layers");
    expect_refused("linear", (const char *[]){"model.head=linear", "model.prompt_layers=0"}, 2, NULL, NULL);
    expect_refused("linear probe", (const char *[]){"model.head=linear", "model.prompt_layers=0", "model.fix_vision=true"}, 3,
                   NULL, NULL);
    expect_refused("linear + fix_text false", (const char *[]){"model.head=linear", "model.prompt_layers=0", "model.fix_text=false"},
                   3, "model.fix_text", "model.head");
    expect_refused("both frozen", (const char *[]){"model.fix_vision=true"}, 1, "model.fix_text", "model.fix_vision");
    expect_refused("text branch", (const char *[]){"model.fix_vision=true", "model.fix_text=false"}, 2, NULL, NULL);
    expect_refused("both branches", (const char *[]){"model.fix_text=false"}, 1, NULL, NULL);
    // the model side: the default config's registration is unchanged (same tensors, same order, same trainable set)
    ClipConfig cc = {.vision_width = 64, .vision_layers = 1, .vision_heads = 1, .vision_mlp = 256, .patch = 8,
                     .image_size = 16, .embed_dim = 64, .text_width = 64, .text_layers = 1, .text_heads = 1,
                     .text_mlp = 256, .context = 8, .vocab = 49408};
    XClipConfig xc = xclip_config_default(&cc, 2);
    XC_EXPECT(xc.head == XCLIP_HEAD_TEXT && !xc.fix_vision && xclip_something_trains(&xc), "xclip_config_default changed");
    xc.fix_vision = true;
    XC_EXPECT(!xclip_something_trains(&xc), "both towers frozen with the text head: something trains?");
    xc.head = XCLIP_HEAD_LINEAR;
    XC_EXPECT(xclip_something_trains(&xc), "linear probe: nothing trains?");
    xc.num_classes = 3;
    XC_EXPECT(xclip_config_check(&xc, &err) != XC_OK && strstr(err.msg, "prompt_layers"), "linear head with prompt layers accepted");
}

// ---- end to end: xclip-train (head = linear), snapshot + resume, xclip-export, xclip-eval -------------------------
static void test_end_to_end(void) {
    const char *build = getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build";
    char configs[1024], data[1100], vocab[1200], cmd[16384], sets[8192], out[16384];
    xc_test_path("XCLIP_FIXTURES", "tests/fixtures", "../../configs", configs, sizeof configs);
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    snprintf(data, sizeof data, "%s/test_head_parity.data", build);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'* && '%s/xclip-synth' '%s' --classes 4 --per-class 4 --val-per-class 2 --frames 16 "
             "--size 32 > /dev/null", data, build, data);
    XC_EXPECT(system(cmd) == 0, "xclip-synth failed");
    snprintf(sets, sizeof sets,
             "--set data.root='%s/videos' --set data.train_list='%s/train.txt' --set data.val_list='%s/val.txt' "
             "--set data.labels='%s/labels.csv' --set data.vocab=/nonexistent/vocab.txt.gz --set train.batch_size=4 "
             "--set train.epochs=2 --set train.eval_freq=1 --set test.final_num_clip=0 --set output.progress=off "
             "--set model.head=linear --set model.prompt_layers=0 --set output.snapshot_freq=1",
             data, data, data, data);
    // 2 steps, a snapshot each; then resumed to 4 (an epoch end with its evaluation, best.safetensors)
    snprintf(cmd, sizeof cmd, "'%s/xclip-train' '%s/demo.ini' %s --set output.dir='%s.run' --set train.max_iters=2", build,
             configs, sets, data);
    int st = xc_run_capture(cmd, out, sizeof out);
    XC_EXPECT(st == 0, "linear-head run failed (%d):\n%s", st, out);
    XC_EXPECT(strstr(out, "head linear (vision and head train)") != NULL, "the model line does not name the head:\n%s", out);
    snprintf(cmd, sizeof cmd, "'%s/xclip-train' '%s/demo.ini' %s --set output.dir='%s.run' --set train.max_iters=4 --resume auto",
             build, configs, sets, data);
    st = xc_run_capture(cmd, out, sizeof out);
    XC_EXPECT(st == 0, "resumed linear-head run failed (%d):\n%s", st, out);
    char best[1300], exported[1300];
    snprintf(best, sizeof best, "%s.run/best.safetensors", data);
    snprintf(exported, sizeof exported, "%s.export.pth", data);
    struct stat sb;
    XC_EXPECT(stat(best, &sb) == 0, "no %s after an epoch with evaluation", best);
    // the checkpoint carries head.* and no text tower; exported to .pth and read back
    WeightSet ws = {0};
    XcError err;
    if (weights_load(&ws, best, &err) == XC_OK) {
        const WeightTensor *h = weights_find(&ws, "head.weight");
        XC_EXPECT(h && h->shape[0] == 4 && weights_find(&ws, "head.bias") && !weights_find(&ws, "logit_scale") &&
                      !weights_find(&ws, "token_embedding.weight") && !weights_find(&ws, "prompts_visual_proj"),
                  "best.safetensors: head.weight (4, E) and head.bias without the text tensors expected");
        weights_free(&ws);
    } else {
        XC_EXPECT(false, "%s", err.msg);
    }
    snprintf(cmd, sizeof cmd, "'%s/xclip-export' --quiet '%s' '%s'", build, best, exported);
    st = xc_run_capture(cmd, out, sizeof out);
    XC_EXPECT(st == 0, "xclip-export failed:\n%s", out);
    // xclip-eval of the exported weights with the run's own config (head = linear) ...
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s.run/config.ini' --checkpoint '%s' --predictions none --set data.vocab='%s'",
             build, data, exported, vocab);
    st = xc_run_capture(cmd, out, sizeof out);
    XC_EXPECT(st == 0 && strstr(out, "K = 4") && strstr(out, "top-1"), "xclip-eval of the linear head failed (%d):\n%s", st, out);
    // ... and with the demo config (head = text, prompt_layers 1): the checkpoint's head decides
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s/demo.ini' --checkpoint '%s' --predictions none --set data.root='%s/videos' "
             "--set data.val_list='%s/val.txt' --set data.labels='%s/labels.csv' --set data.vocab='%s'",
             build, configs, exported, data, data, data, vocab);
    st = xc_run_capture(cmd, out, sizeof out);
    XC_EXPECT(st == 0 && strstr(out, "K = 4"), "xclip-eval of the linear head with demo.ini failed (%d):\n%s", st, out);
    // another label set (zero-shot use) is refused by name
    char other[1300];
    snprintf(other, sizeof other, "%s.other.csv", data);
    FILE *f = fopen(other, "w");
    if (f) {
        fputs("id,name\n0,a\n1,b\n2,c\n", f);
        fclose(f);
    }
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s.run/config.ini' --checkpoint '%s' --predictions none --labels '%s' "
             "--set data.vocab='%s'", build, data, exported, other, vocab);
    st = xc_run_capture(cmd, out, sizeof out);
    XC_EXPECT(st != 0 && strstr(out, "linear head") && strstr(out, "3 classes"), "a 3-class label file was not refused:\n%s", out);
    snprintf(cmd, sizeof cmd, "'%s/xclip-eval' '%s.run/config.ini' --checkpoint '%s' --predictions none --labels '%s/labels.csv' "
             "--labels '%s' --list '%s/val.txt' --list '%s/val.txt' --set data.vocab='%s'", build, data, exported, data, other,
             data, data, vocab);
    st = xc_run_capture(cmd, out, sizeof out);
    XC_EXPECT(st != 0 && strstr(out, "--labels"), "several --labels with a linear head not refused by name:\n%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'*", data);
    if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s*\n", data);
}

int main(void) {
    test_linear();
    test_text_branch();
    test_config();
    test_end_to_end();
    return xc_test_summary("test_head_parity");
}
