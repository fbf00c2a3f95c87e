// util.h - errors, checked system calls and allocation accounting shared by the whole library.
//
// Two kinds of error (STYLE.md):
//   - programmer errors (shape mismatch, op without backward, broken invariant): XC_CHECK / xc_fatal
//     print file:line and abort, in release builds too;
//   - recoverable failures (I/O, bad input files): functions return XC_OK / XC_ERR and put a message in
//     an XcError that names the file and the problem, plus an optional HINT for the user.
//
//   XcError err = {0};
//   FILE *f = xc_fopen(path, "rb", &err);
//   if (!f) { fprintf(stderr, "%s\n", err.msg); return 1; }
//
// Every allocation the library makes goes through xc_malloc/xc_calloc/xc_realloc, which count calls
// (xc_sys_alloc_count) so tests can prove that a training step allocates nothing after the first.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <stdbool.h>

enum { XC_OK = 0, XC_ERR = -1 };

// Loops with less work than this (elements touched) run on one thread: starting a parallel region costs
// more than they do, and spinning threads are wasted when the machine is shared.
#define XC_PAR_MIN ((int64_t)32768)

typedef struct XcError {
    char msg[1024]; // "path: what is wrong" (+ "\nHINT: ..." when there is advice)
} XcError;

// Fill err (if non-NULL) with a printf-style message; always returns XC_ERR.
int xc_err(XcError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Several problems in one message (a list's format errors): the first XC_PROBLEMS_KEPT go into err->msg, one per
// line; xc_problems_finish adds "(and N more <what>)". Usage: XcProblems p = {err}; xc_problem(&p, "...", ...);
// ... ; xc_problems_finish(&p, "problems"); return p.count ? XC_ERR : XC_OK;
#define XC_PROBLEMS_KEPT 10
typedef struct XcProblems {
    XcError *err;   // may be NULL: counted only
    int count;      // problems found
    size_t used;    // bytes of err->msg written
} XcProblems;
void xc_problem(XcProblems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void xc_problems_finish(XcProblems *p, const char *what);

// Abort with file:line for programmer errors.
_Noreturn void xc_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define xc_fatal(...) xc_fatal_at(__FILE__, __LINE__, __VA_ARGS__)
#define XC_CHECK(cond, ...) do { if (!(cond)) xc_fatal_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)

// Checked allocation: out of memory is fatal (file:line and the size asked for).
void *xc_malloc_at(size_t n, const char *file, int line);
void *xc_calloc_at(size_t count, size_t size, const char *file, int line);
void *xc_realloc_at(void *p, size_t n, const char *file, int line);
#define xc_malloc(n) xc_malloc_at((n), __FILE__, __LINE__)
#define xc_calloc(c, s) xc_calloc_at((c), (s), __FILE__, __LINE__)
#define xc_realloc(p, n) xc_realloc_at((p), (n), __FILE__, __LINE__)
// Aligned allocation (align a power of two >= sizeof(void*)); release with xc_free.
void *xc_aligned_alloc_at(size_t align, size_t n, const char *file, int line);
#define xc_aligned_alloc(a, n) xc_aligned_alloc_at((a), (n), __FILE__, __LINE__)
void xc_free(void *p);
// Whole pages straight from the kernel (zeroed), given back by xc_unmap_pages with the same size: for big
// long-lived blocks whose memory must leave the process when released (malloc may keep freed memory resident).
void *xc_map_pages_at(size_t n, const char *file, int line);
#define xc_map_pages(n) xc_map_pages_at((n), __FILE__, __LINE__)
void xc_unmap_pages(void *p, size_t n);
// Number of malloc/calloc/realloc calls made through the functions above since start-up.
uint64_t xc_sys_alloc_count(void);

// 64-bit checked arithmetic for sizes read from untrusted files: return false on overflow.
static inline bool xc_mul_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_mul_overflow(a, b, out); }
static inline bool xc_add_u64(uint64_t a, uint64_t b, uint64_t *out) { return !__builtin_add_overflow(a, b, out); }

// fopen that reports "path: strerror" into err on failure. A read-only mode ("r", "rb") opens an input with
// xc_open_input: anything but a regular file is refused, and a FIFO never blocks the open.
FILE *xc_fopen(const char *path, const char *mode, XcError *err);
// Open an input file read-only without blocking (O_NONBLOCK, then cleared), refusing anything that is not a
// regular file: "path: is a FIFO (named pipe), not a regular file". The descriptor, or -1 + err.
int xc_open_input(const char *path, XcError *err);
// What a file of this st_mode is, for messages: "a directory", "a FIFO (named pipe)", "a character device", ...
const char *xc_file_kind(unsigned mode);
// pwrite all n bytes at off (retrying short writes and EINTR): 0, or -1 with errno set (EIO if nothing was written).
int xc_pwrite_all(int fd, const void *buf, size_t n, off_t off);
// Read a whole regular file (at most max_bytes) into a new buffer; *len gets its size. NULL + err on failure
// (also for a pseudo-file of /proc or /sys, whose size reads as 0 although it has content).
void *xc_read_file(const char *path, size_t max_bytes, size_t *len, XcError *err);
// Write n bytes to path atomically: into path.tmp, flushed to disk (fsync), then renamed over path, so path holds
// either its old content or all of the new. XC_ERR + "path: reason" (disk full, ...; path.tmp removed, path
// untouched) on failure.
int xc_write_file_atomic(const char *path, const void *data, size_t n, XcError *err);
// Create a directory and the missing ones above it, as `mkdir -p` does (mode for each one created). XC_OK if it
// exists afterwards; XC_ERR + "path: cannot create directory prefix: reason" (or "... is not a directory").
int xc_mkdir_p(const char *path, mode_t mode, XcError *err);

// True if none of x[0..n) is NaN or infinite: one pass over the bit patterns (an all-ones exponent), which
// vectorises; about the cost of reading the floats once.
bool xc_all_finite(const float *x, int64_t n);
// Monotonic wall clock in seconds.
double xc_now(void);
// Peak resident set size of this process in bytes (from getrusage).
uint64_t xc_peak_rss(void);
// Current resident set size in bytes (from /proc/self/statm; 0 if unreadable).
uint64_t xc_rss(void);
