// snapshot_load.c - snapshot_load, the full restore, in two passes: load_check validates everything
// against the run (parameters, optimiser size, RNG streams, data order) and reads the small items while
// nothing in the run changes; load_commit then reads the large tensors straight into place.
#include "checkpoints/snapshot_internal.h"
#include "checkpoints/h5io.h"

#include <math.h>
#include <string.h>

static bool same_shape(const DsInfo *di, const Tensor *p) {
    if (di->ndim != p->ndim) return false;
    for (int k = 0; k < p->ndim; k++)
        if (di->shape[k] != p->shape[k]) return false;
    return true;
}

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < ndim && o < n; k++) o += (size_t)snprintf(buf + o, n - o, k ? ", %lld" : "%lld", (long long)shape[k]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

static int64_t n_links(hid_t g) {
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0) return -1;
    return (int64_t)gi.nlinks;
}

static char *r_text(Reader *r, hid_t tg, const char *name) {
    char what[64];
    snprintf(what, sizeof what, "text/%s", name);
    DsInfo di;
    hid_t d = snap_r_open(r, tg, name, what, H5T_INTEGER, 1, &di);
    if (d < 0) return NULL;
    if (di.ndim != 1) { H5Dclose(d); xc_err(r->err, "%s: %s is not 1-D", r->path, what); return NULL; }
    char *s = xc_malloc((size_t)di.nbytes + 1);
    int rc = snap_r_read(r, d, what, H5T_NATIVE_UINT8, s, &di);
    H5Dclose(d);
    if (rc != XC_OK) { xc_free(s); return NULL; }
    s[di.nbytes] = 0;
    if (strlen(s) != di.nbytes) { xc_free(s); xc_err(r->err, "%s: %s contains a NUL byte", r->path, what); return NULL; }
    return s;
}

typedef struct Loaded {
    int64_t global_iter, epoch, iter_in_epoch, best_epoch, best_iter, cursor_epoch, cursor_batch, step;
    double best_acc;
    RngState *rng;
    float *lr_scale;
    uint8_t *decay;
    char *text[3];
} Loaded;

static void loaded_free(Loaded *L) {
    xc_free(L->rng);
    xc_free(L->lr_scale);
    xc_free(L->decay);
    for (int i = 0; i < 3; i++) xc_free(L->text[i]);
}

static int load_small_vec(Reader *r, hid_t g, const char *name, const char *what, H5T_class_t cls, size_t elem, hid_t mtype,
                          int64_t n, void *dst) {
    DsInfo di;
    hid_t d = snap_r_open(r, g, name, what, cls, elem, &di);
    if (d < 0) return XC_ERR;
    int rc = XC_OK;
    if (di.ndim != 1 || di.shape[0] != n)
        rc = xc_err(r->err, "%s: %s has %lld entries, %lld expected", r->path, what, di.ndim == 1 ? (long long)di.shape[0] : -1LL, (long long)n);
    if (rc == XC_OK) rc = snap_r_read(r, d, what, mtype, dst, &di);
    H5Dclose(d);
    return rc;
}

// Pass 1: everything is checked and the small items are read into L; nothing in st changes.
static int load_check(Reader *r, SnapshotState *st, Loaded *L, hid_t mg, hid_t og, hid_t rg, hid_t dg, hid_t tg) {
    hid_t f = r->f;
    if (snap_r_i64(r, f, "root", "global_iter", &L->global_iter) || snap_r_i64(r, f, "root", "epoch", &L->epoch) ||
        snap_r_i64(r, f, "root", "iter_in_epoch", &L->iter_in_epoch) || snap_r_f64(r, f, "root", "best_acc", &L->best_acc) ||
        snap_r_i64(r, f, "root", "best_epoch", &L->best_epoch) || snap_r_i64(r, f, "root", "best_iter", &L->best_iter) ||
        snap_r_i64(r, f, "root", "cursor_epoch", &L->cursor_epoch) || snap_r_i64(r, f, "root", "cursor_batch", &L->cursor_batch))
        return XC_ERR;
    ParamStore *ps = st->params;
    char what[CKPT_MAX_NAME_BYTES + 32], a[128], b[128];
    // model: every parameter present with its shape, nothing else
    for (int i = 0; i < ps->n; i++) {
        const Tensor *p = ps->p[i];
        snprintf(what, sizeof what, "model tensor '%s'", p->name);
        DsInfo di;
        hid_t d = snap_r_open(r, mg, p->name, what, H5T_FLOAT, 4, &di);
        if (d < 0) return XC_ERR;
        H5Dclose(d);
        if (!same_shape(&di, p))
            return xc_err(r->err, "%s: %s has shape %s in the snapshot, %s in the model", r->path, what,
                          shape_str(di.ndim, di.shape, a, sizeof a), shape_str(p->ndim, p->shape, b, sizeof b));
    }
    Names nm = {0};
    if (snap_list_links(r, mg, "model", &nm) != XC_OK) return XC_ERR;
    int rc = XC_OK;
    for (int64_t i = 0; i < nm.n && rc == XC_OK; i++)
        if (!param_find(ps, nm.s[i])) rc = xc_err(r->err, "%s: model tensor '%s' is in the snapshot but not in the model", r->path, nm.s[i]);
    snap_names_free(&nm);
    if (rc != XC_OK) return XC_ERR;
    // optimiser
    if (st->opt.ps) {
        if (og < 0) return xc_err(r->err, "%s: optimiser state missing (a weights-only snapshot cannot resume training)", r->path);
        int64_t n, total;
        if (snap_r_i64(r, og, "optim", "n_params", &n) || snap_r_i64(r, og, "optim", "total", &total) || snap_r_i64(r, og, "optim", "step", &L->step))
            return XC_ERR;
        if (n != ps->n || total != st->opt.total)
            return xc_err(r->err, "%s: optimiser size: the snapshot has %lld parameters / %lld trained floats, the run %d / %lld",
                          r->path, (long long)n, (long long)total, ps->n, (long long)st->opt.total);
        if (L->step < 0) return xc_err(r->err, "%s: optimiser step %lld is negative", r->path, (long long)L->step);
        L->lr_scale = xc_malloc((size_t)(n ? n : 1) * sizeof(float));
        L->decay = xc_malloc((size_t)(n ? n : 1));
        if (load_small_vec(r, og, "lr_scale", "optim/lr_scale", H5T_FLOAT, 4, H5T_NATIVE_FLOAT, n, L->lr_scale) ||
            load_small_vec(r, og, "decay", "optim/decay", H5T_INTEGER, 1, H5T_NATIVE_UINT8, n, L->decay))
            return XC_ERR;
        for (int i = 0; i < ps->n; i++) { // a forged value would silently change training: ranges checked
            if (L->decay[i] > 1)
                return xc_err(r->err, "%s: optim/decay of '%s' is %u (a flag: 0 or 1)", r->path, ps->p[i]->name, L->decay[i]);
            if (!(L->lr_scale[i] >= 0) || !isfinite(L->lr_scale[i]))
                return xc_err(r->err, "%s: optim/lr_scale of '%s' is %g (a rate: finite, >= 0)", r->path, ps->p[i]->name,
                              (double)L->lr_scale[i]);
        }
        hid_t gm = snap_link_exists(og, "m") ? H5Gopen2(og, "m", H5P_DEFAULT) : -1;
        hid_t gv = snap_link_exists(og, "v") ? H5Gopen2(og, "v", H5P_DEFAULT) : -1;
        if (gm < 0 || gv < 0) rc = xc_err(r->err, "%s: optimiser moments (optim/m, optim/v) missing", r->path);
        if (rc == XC_OK && n_links(gm) != n_links(gv)) rc = xc_err(r->err, "%s: optim/m and optim/v hold different tensors", r->path);
        if (rc == XC_OK) rc = snap_list_links(r, gm, "optim/m", &nm);
        for (int64_t i = 0; i < nm.n && rc == XC_OK; i++) {
            const Tensor *p = param_find(ps, nm.s[i]);
            if (!p) { rc = xc_err(r->err, "%s: optimiser moment for '%s', which the model does not have", r->path, nm.s[i]); break; }
            for (int k = 0; k < 2 && rc == XC_OK; k++) {
                snprintf(what, sizeof what, "optimiser moment %s of '%s'", k ? "v" : "m", p->name);
                DsInfo di;
                hid_t d = snap_r_open(r, k ? gv : gm, p->name, what, H5T_FLOAT, 4, &di);
                if (d < 0) { rc = XC_ERR; break; }
                H5Dclose(d);
                if (!same_shape(&di, p))
                    rc = xc_err(r->err, "%s: %s has shape %s, the parameter %s", r->path, what,
                                shape_str(di.ndim, di.shape, a, sizeof a), shape_str(p->ndim, p->shape, b, sizeof b));
            }
        }
        snap_names_free(&nm);
        // every parameter this run trains has both moments (the writer stores them for each such parameter)
        for (int i = 0; i < ps->n && rc == XC_OK; i++)
            for (int k = 0; k < 2 && rc == XC_OK; k++)
                if (optim_state_moment(&st->opt, k, i) && !snap_link_exists(k ? gv : gm, ps->p[i]->name))
                    rc = xc_err(r->err, "%s: optimiser moment %s of '%s' missing (the parameter is trained)", r->path,
                                k ? "v" : "m", ps->p[i]->name);
        if (gm >= 0) H5Gclose(gm);
        if (gv >= 0) H5Gclose(gv);
        if (rc != XC_OK) return XC_ERR;
    }
    // RNG streams: exactly the ones the run has
    if (rg < 0) return xc_err(r->err, "%s: RNG states (rng/) missing", r->path);
    L->rng = xc_calloc((size_t)(st->n_rngs ? st->n_rngs : 1), sizeof(RngState));
    for (int i = 0; i < st->n_rngs; i++) {
        uint64_t raw[4];
        snprintf(what, sizeof what, "RNG stream '%s'", st->rngs[i].name);
        if (load_small_vec(r, rg, st->rngs[i].name, what, H5T_INTEGER, 8, H5T_NATIVE_UINT64, 4, raw) != XC_OK) return XC_ERR;
        uint32_t pos = (uint32_t)raw[2], spare_flag = (uint32_t)(raw[2] >> 32), spare = (uint32_t)raw[3];
        if (pos > 4 || spare_flag > 1 || raw[3] >> 32) return xc_err(r->err, "%s: %s: invalid state", r->path, what);
        L->rng[i] = (RngState){.key = raw[0], .counter = raw[1], .pos = pos, .has_spare = spare_flag};
        memcpy(&L->rng[i].spare, &spare, 4);
    }
    if (snap_list_links(r, rg, "rng", &nm) != XC_OK) return XC_ERR;
    for (int64_t i = 0; i < nm.n && rc == XC_OK; i++) {
        bool known = false;
        for (int j = 0; j < st->n_rngs && !known; j++) known = strcmp(nm.s[i], st->rngs[j].name) == 0;
        if (!known) rc = xc_err(r->err, "%s: RNG stream '%s' is in the snapshot but not in the run", r->path, nm.s[i]);
    }
    snap_names_free(&nm);
    if (rc != XC_OK) return XC_ERR;
    // data order and cursor
    if (dg < 0) return xc_err(r->err, "%s: data order (data/order) missing", r->path);
    DsInfo di;
    hid_t d = snap_r_open(r, dg, "order", "data order", H5T_INTEGER, 8, &di);
    if (d < 0) return XC_ERR;
    H5Dclose(d);
    if (di.ndim != 1 || di.shape[0] != st->order_len)
        return xc_err(r->err, "%s: data order length: %lld entries in the snapshot, the run has %lld (another dataset or list?)",
                      r->path, di.ndim == 1 ? (long long)di.shape[0] : -1LL, (long long)st->order_len);
    if (L->global_iter < 0 || L->epoch < 0 || L->iter_in_epoch < 0 || L->cursor_epoch < 0 || L->cursor_batch < 0)
        return xc_err(r->err, "%s: negative iteration, epoch or cursor", r->path);
    if (L->best_epoch < -1 || L->best_iter < -1 || isnan(L->best_acc))
        return xc_err(r->err, "%s: best accuracy %g at epoch %lld, iteration %lld: out of range", r->path, L->best_acc,
                      (long long)L->best_epoch, (long long)L->best_iter);
    // texts
    if (tg < 0) return xc_err(r->err, "%s: texts (text/) missing", r->path);
    static const char *tn[3] = {"fewshot_list", "bad_videos", "config"};
    for (int i = 0; i < 3; i++)
        if (!(L->text[i] = r_text(r, tg, tn[i]))) return XC_ERR;
    return XC_OK;
}

// AdamW's moments as they can be: m finite, v (a running mean of squares) finite and >= 0. A forged negative v
// would make the update's sqrt(v) NaN, a huge m would throw the weights; refused naming the tensor.
static int check_moment(Reader *r, const char *what, int k, const float *x, int64_t n) {
    if (!xc_all_finite(x, n)) return xc_err(r->err, "%s: %s holds NaN or infinite values", r->path, what);
    if (k)
        for (int64_t j = 0; j < n; j++)
            if (x[j] < 0)
                return xc_err(r->err, "%s: %s holds a negative value (%g at element %lld): a second moment is >= 0",
                              r->path, what, (double)x[j], (long long)j);
    return XC_OK;
}

// Pass 2: the large reads straight into the model, moments and order; then the small items.
static int load_commit(Reader *r, SnapshotState *st, Loaded *L, hid_t mg, hid_t og, hid_t dg) {
    ParamStore *ps = st->params;
    char what[CKPT_MAX_NAME_BYTES + 32];
    DsInfo di;
    for (int i = 0; i < ps->n; i++) {
        Tensor *p = ps->p[i];
        snprintf(what, sizeof what, "model tensor '%s'", p->name);
        hid_t d = snap_r_open(r, mg, p->name, what, H5T_FLOAT, 4, &di);
        if (d < 0 || snap_r_read(r, d, what, H5T_NATIVE_FLOAT, p->data, &di) != XC_OK) { if (d >= 0) H5Dclose(d); return XC_ERR; }
        H5Dclose(d);
        if (!xc_all_finite(p->data, p->numel)) return xc_err(r->err, "%s: %s holds NaN or infinite values (the training diverged)", r->path, what);
    }
    if (st->opt.ps) {
        const OptimState *o = &st->opt;
        memset(o->m, 0, (size_t)o->total * sizeof(float));
        memset(o->v, 0, (size_t)o->total * sizeof(float));
        if (o->restored) *o->restored = true;
        hid_t g[2] = {H5Gopen2(og, "m", H5P_DEFAULT), H5Gopen2(og, "v", H5P_DEFAULT)};
        int rc = g[0] >= 0 && g[1] >= 0 ? XC_OK : xc_err(r->err, "%s: optim/m or optim/v unreadable", r->path);
        for (int i = 0; i < ps->n && rc == XC_OK; i++) {
            const Tensor *p = ps->p[i];
            for (int k = 0; k < 2 && rc == XC_OK; k++) {
                if (!snap_link_exists(g[k], p->name)) continue; // not stored: all zero
                snprintf(what, sizeof what, "optimiser moment %s of '%s'", k ? "v" : "m", p->name);
                float *dst = optim_state_moment(o, k, i);
                if (!dst) {
                    rc = xc_err(r->err, "%s: the snapshot has an %s, but '%s' is frozen in this run", r->path, what, p->name);
                    break;
                }
                hid_t d = snap_r_open(r, g[k], p->name, what, H5T_FLOAT, 4, &di);
                rc = d >= 0 ? snap_r_read(r, d, what, H5T_NATIVE_FLOAT, dst, &di) : XC_ERR;
                if (d >= 0) H5Dclose(d);
                if (rc == XC_OK) rc = check_moment(r, what, k, dst, p->numel);
            }
        }
        for (int k = 0; k < 2; k++) if (g[k] >= 0) H5Gclose(g[k]);
        if (rc != XC_OK) return XC_ERR;
        *o->step = L->step;
        for (int i = 0; i < ps->n; i++) {
            o->last_lr[i] = L->lr_scale[i];
            o->decay[i] = L->decay[i] != 0;
        }
    }
    hid_t d = snap_r_open(r, dg, "order", "data order", H5T_INTEGER, 8, &di);
    if (d < 0) return XC_ERR;
    int64_t dummy;
    int rc = snap_r_read(r, d, "data order", H5T_NATIVE_INT64, st->order ? (void *)st->order : (void *)&dummy, &di);
    H5Dclose(d);
    if (rc != XC_OK) return XC_ERR;
    st->global_iter = L->global_iter;
    st->epoch = L->epoch;
    st->iter_in_epoch = L->iter_in_epoch;
    st->best_acc = L->best_acc;
    st->best_epoch = L->best_epoch;
    st->best_iter = L->best_iter;
    st->cursor = (LoaderCursor){L->cursor_epoch, L->cursor_batch};
    for (int i = 0; i < st->n_rngs; i++) st->rngs[i].state = L->rng[i];
    st->fewshot_list = L->text[0];
    st->bad_videos = L->text[1];
    st->config = L->text[2];
    L->text[0] = L->text[1] = L->text[2] = NULL;
    return XC_OK;
}

static hid_t open_group(hid_t f, const char *name) { return snap_link_exists(f, name) ? H5Gopen2(f, name, H5P_DEFAULT) : -1; }

int snapshot_load(const char *path, SnapshotState *st, XcError *err) {
    XC_CHECK(st && st->params, "snapshot_load: no ParamStore");
    XC_CHECK(!st->opt.ps || st->opt.ps == st->params, "snapshot_load: the AdamW belongs to another ParamStore");
    XC_CHECK(st->order_len >= 0 && (st->order || st->order_len == 0), "snapshot_load: order_len without an order buffer");
    Reader r;
    Loaded L;
    memset(&L, 0, sizeof L);
    H5Quiet q = h5_quiet_begin();
    int rc = snap_r_begin(&r, path, err, NULL);
    hid_t mg = -1, og = -1, rg = -1, dg = -1, tg = -1;
    if (rc == XC_OK) {
        mg = open_group(r.f, "model");
        og = open_group(r.f, "optim");
        rg = open_group(r.f, "rng");
        dg = open_group(r.f, "data");
        tg = open_group(r.f, "text");
        if (mg < 0) rc = xc_err(err, "%s: no model group", path);
    }
    if (rc == XC_OK) rc = load_check(&r, st, &L, mg, og, rg, dg, tg);
    if (rc == XC_OK && load_commit(&r, st, &L, mg, og, dg) != XC_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        xc_err(err, "%s (the model/optimiser state is now partly overwritten)", msg);
        rc = XC_ERR;
    }
    hid_t gs[5] = {mg, og, rg, dg, tg};
    for (int i = 0; i < 5; i++) if (gs[i] >= 0) H5Gclose(gs[i]);
    snap_r_end(&r);
    h5_quiet_end(q);
    loaded_free(&L);
    return rc;
}

void snapshot_state_free_text(SnapshotState *st) {
    xc_free(st->fewshot_list);
    xc_free(st->bad_videos);
    xc_free(st->config);
    st->fewshot_list = st->bad_videos = st->config = NULL;
}
