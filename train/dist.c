// dist.c - see dist.h. With XCLIP_HAVE_MPI (CMake found Open MPI) the group is MPI_COMM_WORLD; without it, a
// group of one.
#include "train/dist.h"

#include <stdlib.h>
#include <string.h>
#include "checkpoints/hash64.h"
#ifdef XCLIP_HAVE_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_local = 1;

bool dist_built_with_mpi(void) {
#ifdef XCLIP_HAVE_MPI
    return true;
#else
    return false;
#endif
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_size(void) { return g_local; }

// The world size a launcher announced in the environment (Open MPI, MPICH / Slurm's PMI), 1 if none.
static int launcher_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) return atoi(v);
    }
    return 1;
}

int dist_init(int *argc, char ***argv, XcError *err) {
#ifdef XCLIP_HAVE_MPI
    if (launcher_size() <= 1) return XC_OK; // not under mpirun (or -np 1): no MPI at all, as a plain build
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return xc_err(err, "MPI_Init_thread failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &g_local);
    MPI_Comm_free(&local);
    return XC_OK;
#else
    (void)argc, (void)argv;
    const int n = launcher_size();
    if (n > 1)
        return xc_err(err, "started as one of %d processes (mpirun), but this build has no MPI: each process would train "
                           "alone and they would overwrite each other's files\nHINT: install Open MPI "
                           "(scripts/install-deps.sh) and rebuild (cmake finds it), or run without mpirun", n);
    return XC_OK;
#endif
}

void dist_finalize(void) {
#ifdef XCLIP_HAVE_MPI
    if (g_size > 1) MPI_Finalize();
#endif
}

int dist_exit(const char *program, int rc, const XcError *err) {
    if (rc == XC_ERR) {
        if (g_size > 1) fprintf(stderr, "%s: rank %d of %d: %s\n", program, g_rank, g_size, err->msg);
        else fprintf(stderr, "%s: %s\n", program, err->msg);
        if (g_size > 1) dist_abort(1);
        return 1;
    }
    dist_finalize();
    return rc;
}

_Noreturn void dist_abort(int status) {
    fflush(stdout);
    fflush(stderr);
#ifdef XCLIP_HAVE_MPI
    if (g_size > 1) MPI_Abort(MPI_COMM_WORLD, status);
#endif
    exit(status);
}

void dist_barrier(void) {
#ifdef XCLIP_HAVE_MPI
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

// v (n values of MPI type t) replaced on every rank by its reduction op over the ranks.
#ifdef XCLIP_HAVE_MPI
static void allreduce(void *v, int n, MPI_Datatype t, MPI_Op op) {
    if (g_size > 1 && n > 0) MPI_Allreduce(MPI_IN_PLACE, v, n, t, op, MPI_COMM_WORLD);
}
#define ALLREDUCE(v, n, t, op) allreduce(v, n, t, op)
#else
#define ALLREDUCE(v, n, t, op) ((void)(v), (void)(n)) // a group of one: already the result
#endif

void dist_sum_i64(int64_t *v, int n) { ALLREDUCE(v, n, MPI_INT64_T, MPI_SUM); }
void dist_sum_f64(double *v, int n) { ALLREDUCE(v, n, MPI_DOUBLE, MPI_SUM); }

unsigned dist_or(unsigned bits) {
    ALLREDUCE(&bits, 1, MPI_UNSIGNED, MPI_BOR);
    return bits;
}

void dist_bcast(void *buf, size_t bytes, int root) {
#ifdef XCLIP_HAVE_MPI
    // in pieces: MPI counts are int
    for (size_t off = 0; g_size > 1 && off < bytes; off += (size_t)1 << 30) {
        size_t n = bytes - off < ((size_t)1 << 30) ? bytes - off : (size_t)1 << 30;
        MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD);
    }
#else
    (void)buf, (void)bytes, (void)root;
#endif
}

int dist_same_u64(uint64_t h, const char *what, XcError *err) {
#ifdef XCLIP_HAVE_MPI
    if (g_size <= 1) return XC_OK;
    uint64_t *all = xc_malloc(sizeof(uint64_t) * (size_t)g_size);
    MPI_Allgather(&h, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    char ranks[256] = "";
    int len = 0, bad = 0;
    for (int i = 1; i < g_size; i++)
        if (all[i] != all[0]) {
            bad++;
            if (len < (int)sizeof ranks - 16) len += snprintf(ranks + len, sizeof ranks - (size_t)len, "%s%d", bad > 1 ? ", " : "", i);
        }
    int rc = XC_OK;
    if (bad)
        rc = xc_err(err, "%s differ across the %d ranks: rank%s %s hold%s other values than rank 0 (checksum %016llx)",
                    what, g_size, bad > 1 ? "s" : "", ranks, bad > 1 ? "" : "s", (unsigned long long)all[0]);
    xc_free(all);
    return rc;
#else
    (void)h, (void)what, (void)err;
    return XC_OK;
#endif
}

uint64_t dist_param_checksum(const ParamStore *ps) {
    Hash64 s;
    hash64_init(&s, 0);
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i]->requires_grad) hash64_update(&s, ps->p[i]->data, (size_t)ps->p[i]->numel * sizeof(float));
    return hash64_digest(&s);
}

// ---- gradient buckets ----------------------------------------------------------------------------------
void grad_reducer_init(GradReducer *r, ParamStore *ps, size_t bucket_bytes) {
    memset(r, 0, sizeof *r);
    r->ps = ps;
    r->bucket_floats = bucket_bytes / sizeof(float) > 0 ? bucket_bytes / sizeof(float) : 1;
    const size_t n = (size_t)(ps->n > 0 ? ps->n : 1);
    r->order = xc_malloc(sizeof(int) * n);
    r->done = xc_calloc(n, sizeof(bool));
    r->buckets = xc_calloc(n, sizeof(GradBucket));
    size_t small = 0; // every gradient below the bucket size may need packing space
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i]->requires_grad && (size_t)ps->p[i]->numel < r->bucket_floats) small += (size_t)ps->p[i]->numel;
    r->pack = small ? xc_malloc(sizeof(float) * small) : NULL;
    r->arrived = xc_malloc(sizeof(int) * n);
#ifdef XCLIP_HAVE_MPI
    r->requests = xc_malloc(sizeof(MPI_Request) * n);
#endif
}

void grad_reducer_free(GradReducer *r) {
    xc_free(r->order);
    xc_free(r->done);
    xc_free(r->buckets);
    xc_free(r->pack);
    xc_free(r->requests);
    xc_free(r->arrived);
    memset(r, 0, sizeof *r);
}

// Start the sum of bucket order[first .. first + count) (packed when pack, else the one gradient in place).
static void bucket_start(GradReducer *r, int first, int count, bool pack) {
    GradBucket *b = &r->buckets[r->n_buckets];
    *b = (GradBucket){.first = first, .count = count};
    for (int k = first; k < first + count; k++) b->floats += (size_t)r->ps->p[r->order[k]]->numel;
    float *data = r->ps->p[r->order[first]]->grad;
    if (pack) {
        b->pack = data = r->pack + r->pack_used;
        for (int k = first, off = 0; k < first + count; k++) {
            const Tensor *p = r->ps->p[r->order[k]];
            memcpy(b->pack + off, p->grad, sizeof(float) * (size_t)p->numel);
            off += (int)p->numel;
        }
        r->pack_used += b->floats;
    }
    if (r->n_buckets == 0) r->t_first = xc_now();
    r->stats.bytes += (double)b->floats * sizeof(float);
#ifdef XCLIP_HAVE_MPI
    MPI_Request *req = r->requests;
    MPI_Iallreduce(MPI_IN_PLACE, data, (int)b->floats, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req[r->n_buckets]);
#else
    (void)data;
#endif
    r->n_buckets++;
}

static void open_bucket_flush(GradReducer *r) {
    if (r->n_order > r->open_first) bucket_start(r, r->open_first, r->n_order - r->open_first, true);
    r->open_first = r->n_order;
    r->open_floats = 0;
}

static void add_ready(GradReducer *r, int i) {
    if (r->done[i]) return;
    r->done[i] = true;
    const size_t n = (size_t)r->ps->p[i]->numel;
    if (n >= r->bucket_floats) { // a large gradient is a bucket of its own, summed where it lies
        open_bucket_flush(r);
        r->order[r->n_order++] = i;
        bucket_start(r, r->n_order - 1, 1, false);
        r->open_first = r->n_order;
        return;
    }
    r->order[r->n_order++] = i;
    r->open_floats += n;
    if (r->open_floats >= r->bucket_floats) open_bucket_flush(r);
}

static void on_param_ready(void *ctx, Tensor *p) {
    GradReducer *r = ctx;
    XC_CHECK(p->index >= 0 && p->index < r->ps->n && r->ps->p[p->index] == p, "grad reducer: parameter %s is not in the store",
             p->name ? p->name : "?");
    add_ready(r, p->index);
}

static void bucket_deliver(GradReducer *r, int k) {
    const GradBucket *b = &r->buckets[k];
    for (int j = b->first, off = 0; j < b->first + b->count; j++) {
        Tensor *p = r->ps->p[r->order[j]];
        if (b->pack) memcpy(p->grad, b->pack + off, sizeof(float) * (size_t)p->numel);
        off += (int)p->numel;
        r->update(r->update_ctx, r->order[j]);
    }
    r->delivered++;
    r->t_last = xc_now();
}

// After every backward node: MPI moves non-blocking collectives on only inside MPI calls, so the buckets in flight
// are tested (microseconds; without it a transfer over TCP waits for the next bucket's start), and a bucket whose
// sum has arrived is delivered at once: its parameters' last use in backward is behind (Graph.param_ready), so
// AdamW may update them while backward goes on, as the fused optimiser does.
static void on_backward_tick(void *ctx) {
#ifdef XCLIP_HAVE_MPI
    GradReducer *r = ctx;
    if (r->delivered == r->n_buckets) return;
    int n = 0;
    MPI_Testsome(r->n_buckets, r->requests, &n, r->arrived, MPI_STATUSES_IGNORE); // arrived ones become MPI_REQUEST_NULL
    for (int i = 0; n != MPI_UNDEFINED && i < n; i++) bucket_deliver(r, r->arrived[i]);
#else
    (void)ctx;
#endif
}

void grad_reducer_arm(GradReducer *r, Graph *g, void (*update)(void *ctx, int param_index), void *ctx) {
    XC_CHECK(!g->param_ready, "grad reducer: the graph already has a parameter hook (fused AdamW?)");
    memset(r->done, 0, sizeof(bool) * (size_t)r->ps->n);
    r->n_order = r->open_first = r->n_buckets = r->delivered = 0;
    r->open_floats = r->pack_used = 0;
    r->update = update;
    r->update_ctx = ctx;
    g->param_ready = on_param_ready;
    g->backward_tick = on_backward_tick;
    g->param_ready_ctx = r;
}

void grad_reducer_finish(GradReducer *r, Graph *g) {
    g->param_ready = NULL;
    g->backward_tick = NULL;
    g->param_ready_ctx = NULL;
    // gradients the hook did not see (a parameter the loss reached through no node of this pass keeps the
    // buffer of earlier micro-batches): in parameter order, the same on every rank
    for (int i = 0; i < r->ps->n; i++)
        if (r->ps->p[i]->requires_grad && r->ps->p[i]->grad && !r->done[i]) add_ready(r, i);
    open_bucket_flush(r);
    double wait = 0;
#ifdef XCLIP_HAVE_MPI
    while (r->delivered < r->n_buckets) {
        int k = MPI_UNDEFINED;
        const double t0 = xc_now();
        MPI_Waitany(r->n_buckets, r->requests, &k, MPI_STATUS_IGNORE);
        wait += xc_now() - t0;
        XC_CHECK(k != MPI_UNDEFINED, "grad reducer: %d of %d buckets delivered, none left to wait for", r->delivered,
                 r->n_buckets);
        bucket_deliver(r, k); // AdamW on this bucket while the others finish
    }
#else
    for (int k = 0; k < r->n_buckets; k++) bucket_deliver(r, k);
#endif
    r->stats.wait += wait;
    if (r->n_buckets) r->stats.comm += r->t_last - r->t_first;
    r->stats.buckets += r->n_buckets;
    r->stats.steps++;
}
