// test_prompting_parity.c - the prompting options (data.templates, model.context_tokens; docs/model.md "Prompting")
// against the PyTorch reference (tests/ref/make_prompting_fixtures.py, fixtures in tests/fixtures/xclip_prompting):
//   templates     M = 3 templates per class ensembled inside the graph, the text tower training (fix_text false)
//   coop          N = 4 CoOp context vectors through the frozen text tower (fix_text), no video-specific prompts
//   coop_prompts  the same with 2 prompt layers
// logits, class text features, loss and the gradient of every trained tensor, elementwise: |c - ref| <= floor
// max|ref| + rtol |ref| (xc_expect_elementwise). Measured with test_xclip_parity's tolerances (features 7.8e-6 /
// 4.3e-5, gradients 2.2e-5 / 1.6e-4) over the three configurations and OpenBLAS core types SkylakeX, Haswell and
// Sandybridge, the worst share of the tolerance used was 0.05 for the features and 0.19 for the gradients (the
// templates configuration, its text tower gradients); the tolerances below are about 5x that: features scaled by
// 0.25, gradients kept (5.3x). Loss: 1e-5 relative.
// Also: the evaluation path (features cached once, tokens NULL) equals the training path; the trained set is the
// reference's (the text tower frozen but prompt_learner.ctx trained under fix_text); a checkpoint written and
// read back has the same context vectors and N; class_tokens_prompted's layout and its truncation count; the
// template-file parser's errors; the config's refusals by key.
#include "test_util.h"
#include "xclip_fixture.h"
#include "checkpoints/weight_formats.h"
#include "train/config.h"
#include "train/setup.h"

#include <unistd.h>

#define FEAT_FLOOR 2e-6
#define FEAT_RTOL 1.1e-5
#define GRAD_FLOOR 2.2e-5
#define GRAD_RTOL 1.6e-4

static int64_t ref_int(const H5File *f, const char *name) {
    H5Array a;
    XcError err;
    if (h5_read(f, name, H5_I64, &a, false, &err) != XC_OK) {
        XC_EXPECT(false, "%s", err.msg);
        return -1;
    }
    int64_t v = ((int64_t *)a.data)[0];
    h5_array_free(&a);
    return v;
}

// Writes the model's tensors to a safetensors file, reads them back: the same N, the same context vectors.
static void check_reload(const char *cfgname, const XClip *m, const ParamStore *ps) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/xclip_prompting_%d_%s.safetensors", (int)getpid(), cfgname);
    WeightSet ws = {0}, back = {0};
    params_to_weights(ps, &ws);
    XcError err;
    XClipConfig cfg;
    int rc = weights_save_safetensors(&ws, path, &err);
    if (rc == XC_OK) rc = weights_load(&back, path, &err);
    if (rc == XC_OK) rc = xclip_config_from_weights(&cfg, &back, m->cfg.frames, false, &err);
    XC_EXPECT(rc == XC_OK, "%s reload: %s", cfgname, err.msg);
    if (rc == XC_OK) {
        XC_EXPECT(cfg.context_tokens == m->cfg.context_tokens, "%s reload: N %lld, was %lld", cfgname,
                  (long long)cfg.context_tokens, (long long)m->cfg.context_tokens);
        const WeightTensor *w = weights_find(&back, "prompt_learner.ctx");
        XC_EXPECT(!m->prompt_ctx == !w, "%s reload: prompt_learner.ctx %s", cfgname, w ? "appeared" : "lost");
        if (w && m->prompt_ctx)
            XC_EXPECT(w->numel == m->prompt_ctx->numel && !memcmp(w->data, m->prompt_ctx->data, sizeof(float) * (size_t)w->numel),
                      "%s reload: context vectors differ", cfgname);
    }
    weights_free(&ws);
    weights_free(&back);
    unlink(path);
}

static void run_config(const char *cfgname) {
    char rel[64], dir[1024], path[1100], name[600];
    snprintf(rel, sizeof rel, "xclip_prompting/%s", cfgname);
    XC_FIXTURE(rel, dir);
    XcError err;
    H5File fin, fref;
    snprintf(path, sizeof path, "%s/in.h5", dir);
    int rc = h5_open(&fin, path, false, &err);
    snprintf(path, sizeof path, "%s/ref.h5", dir);
    if (rc == XC_OK && (rc = h5_open(&fref, path, false, &err)) != XC_OK) h5_close(&fin);
    XC_EXPECT(rc == XC_OK, "%s", err.msg);
    if (rc != XC_OK) return;
    H5Array video = {0}, tokens = {0}, labels = {0}, logits = {0}, tfeat = {0}, loss = {0};
    rc = h5_read(&fin, "video", H5_F32, &video, false, &err) || h5_read(&fin, "tokens", H5_I32, &tokens, false, &err) ||
         h5_read(&fin, "labels", H5_I64, &labels, false, &err) || h5_read(&fref, "logits", H5_F32, &logits, false, &err) ||
         h5_read(&fref, "text_features", H5_F32, &tfeat, false, &err) || h5_read(&fref, "loss", H5_F32, &loss, false, &err);
    XC_EXPECT(rc == XC_OK, "%s: %s", cfgname, err.msg);
    const bool fix_text = ref_int(&fref, "config/fix_text") == 1;
    const int64_t M = ref_int(&fref, "config/templates"), N = ref_int(&fref, "config/context_tokens");
    const int64_t B = logits.shape[0], K = logits.shape[1], S = tokens.shape[1];
    XClip m;
    ParamStore ps;
    if (rc != XC_OK || !xclip_fixture_load(dir, video.shape[1], (XclipVariant){.text_trains = !fix_text}, &m, &ps)) goto done;
    XC_EXPECT(m.cfg.context_tokens == N && !m.prompt_ctx == !N, "%s: N %lld from the weights, fixture %lld", cfgname,
              (long long)m.cfg.context_tokens, (long long)N);
    XC_EXPECT(tokens.shape[0] == K * (M ? M : 1), "%s: %lld token rows for K %lld, M %lld", cfgname,
              (long long)tokens.shape[0], (long long)K, (long long)M);
    m.cfg.templates = M;

    // training path: forward + backward with the tokens
    Graph g;
    graph_init(&g, 16u << 20);
    Tensor *v = tensor_from(&g, 5, video.shape, video.data);
    XClipOut o = xclip_forward(&g, &m, v, tokens.data, K, S, NULL);
    double u_feat = 0, u_grad = 0;
    snprintf(name, sizeof name, "%s logits", cfgname);
    u_feat = fmax(u_feat, xc_expect_elementwise(name, o.logits->data, logits.data, logits.numel, FEAT_FLOOR, FEAT_RTOL));
    snprintf(name, sizeof name, "%s text_features", cfgname);
    u_feat = fmax(u_feat, xc_expect_elementwise(name, o.text_features->data, tfeat.data, tfeat.numel, FEAT_FLOOR, FEAT_RTOL));
    Tensor *y = tensor_zeros(&g, 2, (int64_t[]){B, K});
    for (int64_t b = 0; b < B; b++) y->data[b * K + ((int64_t *)labels.data)[b]] = 1.0f;
    Tensor *l = op_soft_cross_entropy(&g, o.logits, y);
    const float lref = ((float *)loss.data)[0];
    XC_EXPECT(fabsf(l->data[0] - lref) <= 1e-5f * fabsf(lref), "%s loss %.8g vs %.8g", cfgname, l->data[0], lref);
    graph_backward(&g, l);
    int compared = 0, trained = 0;
    for (int i = 0; i < ps.n; i++) {
        Tensor *p = ps.p[i];
        snprintf(name, sizeof name, "grad/%s", p->name);
        H5Array gref = {0};
        const bool has_ref = h5_read(&fref, name, H5_F32, &gref, true, &err) == XC_OK && gref.data;
        XC_EXPECT(p->requires_grad == has_ref, "%s: %s trains %d here, %d in the reference", cfgname, p->name,
                  p->requires_grad, has_ref);
        if (fix_text) XC_EXPECT(p->requires_grad == xclip_trains_under_fix_text(p->name), "%s: %s", cfgname, p->name);
        trained += p->requires_grad;
        if (has_ref && p->requires_grad) {
            snprintf(name, sizeof name, "%s grad %s", cfgname, p->name);
            u_grad = fmax(u_grad, xc_expect_elementwise(name, p->grad, gref.data, gref.numel, GRAD_FLOOR, GRAD_RTOL));
            compared++;
        }
        h5_array_free(&gref);
    }
    XC_EXPECT(compared == trained && trained > 0, "%s: %d of %d trained tensors compared", cfgname, compared, trained);
    XC_EXPECT(!N || m.prompt_ctx->requires_grad, "%s: prompt_learner.ctx does not train", cfgname);
    graph_reset(&g);

    // evaluation path: the text features cached once (with the context vectors), no tokens
    xclip_cache_text(&m, tokens.data, K, S);
    bool prev = graph_set_grad(&g, false);
    Tensor *ve = tensor_from(&g, 5, video.shape, video.data);
    Tensor *le = xclip_forward(&g, &m, ve, NULL, K, S, NULL).logits;
    snprintf(name, sizeof name, "%s logits (cached text)", cfgname);
    xc_expect_elementwise(name, le->data, logits.data, logits.numel, FEAT_FLOOR, FEAT_RTOL);
    graph_set_grad(&g, prev);
    graph_free(&g);
    printf("  %s: K %lld, M %lld, N %lld, %d gradients; share of the tolerance used: features %.2f, gradients %.2f\n",
           cfgname, (long long)K, (long long)M, (long long)N, compared, u_feat, u_grad);
    check_reload(cfgname, &m, &ps);
    xclip_free(&m);
    param_store_free(&ps);
done:
    h5_array_free(&video); h5_array_free(&tokens); h5_array_free(&labels);
    h5_array_free(&logits); h5_array_free(&tfeat); h5_array_free(&loss);
    h5_close(&fin);
    h5_close(&fref);
}

// class_tokens_prompted with CLIP's tokenizer: [SOT] [N slots] [text ids] [EOT] [0...], the text cut to S-2-N.
static void test_token_layout(void) {
    char vocab[1024];
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    XcError err;
    Tokenizer *tok = tokenizer_load_clip(vocab, &err);
    XC_EXPECT(tok != NULL, "%s", err.msg);
    if (!tok) return;
    char *names[] = {"archery", "playing the violin in a very large and crowded concert hall at night"};
    LabelSet labels = {2, names};
    const int64_t S = 12, N = 4;
    const char *templ[] = {"{}", "a video of {}."};
    PromptCut cut;
    int32_t *t = class_tokens_prompted(tok, &labels, templ, 2, N, S, &cut);
    int32_t ids[64], sot = tokenizer_sot(tok), eot = tokenizer_eot(tok);
    size_t n0 = tokenizer_encode_ids(tok, "archery", ids, 64);
    const int32_t *r0 = t; // class 0, template 0
    XC_EXPECT(r0[0] == sot && r0[1 + N + (int64_t)n0] == eot, "row 0: SOT %d, EOT at %lld: %d", r0[0], (long long)(1 + N + (int64_t)n0),
              r0[1 + N + (int64_t)n0]);
    for (int64_t i = 1; i <= N; i++) XC_EXPECT(r0[i] == r0[1] && r0[i] < eot, "slot %lld: %d", (long long)i, r0[i]);
    XC_EXPECT(!memcmp(r0 + 1 + N, ids, n0 * sizeof(int32_t)), "row 0: class ids not after the slots");
    for (int64_t s = 2 + N + (int64_t)n0; s < S; s++) XC_EXPECT(r0[s] == 0, "row 0: padding at %lld is %d", (long long)s, r0[s]);
    // class 1 under both templates is longer than S-2-N = 6 ids: cut, EOT last
    XC_EXPECT(cut.count == 2 && cut.class_index == 1 && cut.room == S - 2 - N, "cut: %d texts, class %d, room %lld", cut.count,
              cut.class_index, (long long)cut.room);
    const int32_t *r3 = t + 3 * S; // class 1, template 1: "a video of playing ..." cut
    size_t n3 = tokenizer_encode_ids(tok, "a video of playing the violin in a very large and crowded concert hall at night.", ids, 64);
    XC_EXPECT(n3 > (size_t)(S - 2 - N) && r3[S - 1] == eot && !memcmp(r3 + 1 + N, ids, (size_t)(S - 2 - N) * sizeof(int32_t)),
              "row 3: not the start of the text then EOT");
    int64_t best = 0; // the EOT position is the row's largest id (clip_encode_text's argmax)
    for (int64_t s = 1; s < S; s++) best = r3[s] > r3[best] ? s : best;
    XC_EXPECT(best == S - 1, "row 3: argmax at %lld", (long long)best);
    xc_free(t);
    // N = 0 is class_tokens: CLIP's tokenize
    int32_t *a = class_tokens(tok, &labels, "a video of {}.", S), *b = class_tokens_prompted(tok, &labels, templ + 1, 1, 0, S, NULL);
    XC_EXPECT(!memcmp(a, b, sizeof(int32_t) * 2 * (size_t)S), "class_tokens and class_tokens_prompted (N = 0) differ");
    xc_free(a);
    xc_free(b);
    tokenizer_free(tok);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    XC_EXPECT(f != NULL, "cannot write %s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

// templates_load: comments and blank lines skipped, a line without {} or an empty file named by file:line.
static void test_template_files(void) {
    char path[256], want[320];
    snprintf(path, sizeof path, "/tmp/xclip_templates_%d.txt", (int)getpid());
    Templates t;
    XcError err;
    write_text(path, "# video templates\n\na video of {}.\r\n  a clip of a person {}  \n# end\n");
    int rc = templates_load(path, &t, &err);
    XC_EXPECT(rc == XC_OK && t.count == 2 && !strcmp(t.text[0], "a video of {}.") && !strcmp(t.text[1], "a clip of a person {}"),
              "templates: rc %d, %d templates", rc, t.count);
    if (rc == XC_OK) templates_free(&t);
    write_text(path, "a video of {}.\n\nno placeholder\n");
    rc = templates_load(path, &t, &err);
    snprintf(want, sizeof want, "%s:3:", path);
    XC_EXPECT(rc == XC_ERR && strstr(err.msg, want) && strstr(err.msg, "{}"), "missing {}: %s", rc ? err.msg : "accepted");
    write_text(path, "# only a comment\n\n");
    rc = templates_load(path, &t, &err);
    snprintf(want, sizeof want, "%s:2:", path);
    XC_EXPECT(rc == XC_ERR && strstr(err.msg, want) && strstr(err.msg, "no template"), "empty file: %s", rc ? err.msg : "accepted");
    unlink(path);
    rc = templates_load(path, &t, &err);
    XC_EXPECT(rc == XC_ERR && strstr(err.msg, "data.templates") && strstr(err.msg, path), "missing file: %s",
              rc ? err.msg : "accepted");
}

// config_check refuses data.templates with model.context_tokens, and with a non-default data.template, by name.
static void test_config_refusals(void) {
    char dir[1024], in[1100], tp[256];
    XC_FIXTURE("xclip_prompting/coop", dir);
    snprintf(in, sizeof in, "%s/in.h5", dir); // any existing file satisfies the path checks
    snprintf(tp, sizeof tp, "/tmp/xclip_templates_cfg_%d.txt", (int)getpid());
    write_text(tp, "a video of {}.\n");
    char vocab[1024];
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", vocab);
    const struct { const char *set, *want1, *want2; } cases[] = {
        {"model.context_tokens=4", "model.context_tokens", "data.templates"},
        {"data.template=a photo of {}", "data.templates", "data.template ="},
        {NULL, NULL, NULL}, // accepted
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TrainConfig c;
        XcError err;
        config_defaults(&c);
        char kv[1200];
        const char *sets[] = {"data.val_list=", "data.root=", "data.labels=", "data.vocab=", "data.templates="};
        const char *vals[] = {in, dir, in, vocab, tp};
        bool ok = true;
        for (size_t k = 0; k < 5; k++) {
            snprintf(kv, sizeof kv, "%s%s", sets[k], vals[k]);
            ok &= config_set(&c, kv, &err) == XC_OK;
        }
        if (cases[i].set) ok &= config_set(&c, cases[i].set, &err) == XC_OK;
        XC_EXPECT(ok, "config_set: %s", err.msg);
        int rc = config_check(&c, CONFIG_FOR_EVAL, &err);
        if (!cases[i].set) XC_EXPECT(rc == XC_OK, "templates alone refused: %s", err.msg);
        else
            XC_EXPECT(rc == XC_ERR && strstr(err.msg, cases[i].want1) && strstr(err.msg, cases[i].want2), "%s: %s", cases[i].set,
                      rc ? err.msg : "accepted");
    }
    unlink(tp);
}

int main(void) {
    run_config("templates");
    run_config("coop");
    run_config("coop_prompts");
    test_token_layout();
    test_template_files();
    test_config_refusals();
    return xc_test_summary("test_prompting_parity");
}
