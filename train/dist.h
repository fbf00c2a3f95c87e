// dist.h - data-parallel training across processes (docs/model.md §13): `mpirun -np N xclip-train CONFIG`.
//
// One process group: MPI_COMM_WORLD when the build has Open MPI (CMake found it) and the program was started by
// mpirun with N > 1; otherwise a group of one (rank 0 of 1) in which every call below is a no-op, so the
// single-process programs run exactly as without this file. Only the main thread calls MPI
// (MPI_THREAD_FUNNELED); OpenMP and loader threads never do.
//
//   if (dist_init(&argc, &argv, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); return 2; }
//   ... every rank runs the same program; rank 0 alone writes files ...
//   if (rc == XC_ERR) dist_abort(1);       // an error on one rank ends the whole job at once
//   dist_finalize();
//
// Collectives must be called by every rank in the same order: the run loop keeps its control flow identical on
// every rank by agreeing on the things one rank alone can see (signals, errors found at a phase boundary).
//
// Gradients (GradReducer): the optimiser step's last micro-batch arms the reducer on its graph; as backward
// completes each parameter's gradient (Graph.param_ready), the gradient joins a bucket and every full bucket's
// sum over the ranks starts at once (MPI_Iallreduce), so communication runs while backward goes on. A gradient of
// at least the bucket size is its own bucket, summed in place; smaller ones are packed into a shared buffer of
// bucket_bytes. After every backward node the buckets in flight are tested, and a bucket whose sum is in hands
// each of its parameters to the caller's update (AdamW), during backward already; grad_reducer_finish waits for
// the rest. Every rank forms the same buckets: the tape, and so the order in which gradients complete, is the
// same on every rank.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "autograd/tensor.h"

// Starts the process group (first thing in main). XC_ERR when mpirun started several processes but this build
// has no MPI (each would train alone and overwrite the others' files).
int dist_init(int *argc, char ***argv, XcError *err);
void dist_finalize(void);                 // at a normal end, on every rank
// The end of a training program: rc XC_OK -> 0, stopped (exit status 75) -> 75, after dist_finalize; XC_ERR ->
// "program: [rank R: ]message" on stderr, and the job ends on every rank (dist_abort) with status 1.
int dist_exit(const char *program, int rc, const XcError *err);
_Noreturn void dist_abort(int status);    // ends every rank now (MPI_Abort); exit(status) in a group of one
bool dist_built_with_mpi(void);
int dist_rank(void);
int dist_size(void);
int dist_local_size(void);                // ranks on this machine (the default thread count shares its cores)

void dist_barrier(void);
void dist_sum_i64(int64_t *v, int n);     // in place: the sum over the ranks, on every rank
void dist_sum_f64(double *v, int n);
unsigned dist_or(unsigned bits);          // bitwise OR over the ranks
void dist_bcast(void *buf, size_t bytes, int root);
// XC_OK when every rank holds the same h; else XC_ERR naming the ranks whose value differs from rank 0's.
int dist_same_u64(uint64_t h, const char *what, XcError *err);

// A checksum of the trainable parameters' values (what must be identical on every rank after a step).
uint64_t dist_param_checksum(const ParamStore *ps);

typedef struct DistStats {       // since grad_reducer_init
    int64_t steps, buckets;
    double bytes;                // gradient bytes summed per rank
    double wait;                 // seconds blocked in grad_reducer_finish (communication not hidden by backward)
    double comm;                 // seconds from each step's first bucket start to its last bucket's completion
} DistStats;

typedef struct GradBucket {
    int first, count;            // its parameters: order[first .. first + count)
    float *pack;                 // packed gradients (NULL: one large gradient summed in place)
    size_t floats;
} GradBucket;

typedef struct GradReducer {
    ParamStore *ps;              // borrowed
    size_t bucket_floats;
    int *order;                  // (ps->n) parameter indices in the order their gradients completed this step
    bool *done;                  // (ps->n) joined a bucket this step
    int n_order, open_first;     // the open (not yet started) pack bucket: order[open_first .. n_order)
    size_t open_floats;
    float *pack;                 // packing space for the small gradients (their total size)
    size_t pack_used;
    GradBucket *buckets;         // (ps->n) this step's buckets
    void *requests;              // (ps->n) their MPI_Request (mpi.h stays out of this header)
    int *arrived;                // (ps->n) indices of buckets whose sums arrived (MPI_Testsome)
    int n_buckets, delivered;    // started this step; handed to update
    void (*update)(void *ctx, int param_index); // what a parameter's summed gradient goes to (AdamW)
    void *update_ctx;
    double t_first, t_last;      // this step's first bucket start, last bucket delivery
    DistStats stats;
} GradReducer;

void grad_reducer_init(GradReducer *r, ParamStore *ps, size_t bucket_bytes);
void grad_reducer_free(GradReducer *r);
// The next backward on g starts the buckets as gradients complete (sets g->param_ready and g->backward_tick until
// finish), and as each bucket's sum arrives its parameters' gradients are replaced by the sum and update(ctx,
// parameter index) runs for each of them - during backward already (a bucket's parameters are no longer used
// by it) or in grad_reducer_finish.
void grad_reducer_arm(GradReducer *r, Graph *g, void (*update)(void *ctx, int param_index), void *ctx);
// After that backward: the remaining gradients go out and every bucket is waited for and delivered.
void grad_reducer_finish(GradReducer *r, Graph *g);
