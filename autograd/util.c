// util.c - see util.h.
#include "autograd/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t g_sys_allocs; // counted atomically: the loader's worker threads allocate too

void xc_problem(XcProblems *p, const char *fmt, ...) {
    if (++p->count > XC_PROBLEMS_KEPT || !p->err || p->used + 2 >= sizeof p->err->msg) return;
    if (p->count > 1) p->err->msg[p->used++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(p->err->msg + p->used, sizeof p->err->msg - p->used, fmt, ap);
    va_end(ap);
    if (w > 0) p->used += (size_t)w < sizeof p->err->msg - p->used ? (size_t)w : sizeof p->err->msg - p->used - 1;
}

void xc_problems_finish(XcProblems *p, const char *what) {
    if (p->err && p->count > XC_PROBLEMS_KEPT && p->used + 40 < sizeof p->err->msg)
        snprintf(p->err->msg + p->used, sizeof p->err->msg - p->used, "\n(and %d more %s)", p->count - XC_PROBLEMS_KEPT, what);
}

int xc_err(XcError *err, const char *fmt, ...) {
    if (err) { // formatted aside first: callers often pass err->msg itself as an argument (prefixing context)
        char buf[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        memcpy(err->msg, buf, sizeof buf);
    }
    return XC_ERR;
}

void xc_fatal_at(const char *file, int line, const char *fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "xclip: fatal error at %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void *xc_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) xc_fatal_at(file, line, "out of memory allocating %zu bytes", n);
    __atomic_add_fetch(&g_sys_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

void *xc_calloc_at(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) xc_fatal_at(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    __atomic_add_fetch(&g_sys_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

void *xc_realloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) xc_fatal_at(file, line, "out of memory reallocating to %zu bytes", n);
    __atomic_add_fetch(&g_sys_allocs, 1, __ATOMIC_RELAXED);
    return q;
}

void *xc_aligned_alloc_at(size_t align, size_t n, const char *file, int line) {
    void *p = NULL;
    if (posix_memalign(&p, align, n ? n : align) != 0)
        xc_fatal_at(file, line, "out of memory allocating %zu bytes (aligned to %zu)", n, align);
    __atomic_add_fetch(&g_sys_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

void xc_free(void *p) { free(p); }

void *xc_map_pages_at(size_t n, const char *file, int line) {
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) xc_fatal_at(file, line, "out of memory mapping %zu bytes", n);
    __atomic_add_fetch(&g_sys_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

void xc_unmap_pages(void *p, size_t n) {
    if (p) munmap(p, n ? n : 1);
}

uint64_t xc_sys_alloc_count(void) { return __atomic_load_n(&g_sys_allocs, __ATOMIC_RELAXED); }

const char *xc_file_kind(unsigned mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

int xc_open_input(const char *path, XcError *err) {
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer (forever); a device might block too
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { xc_err(err, "%s: cannot open: %s", path, strerror(errno)); return -1; }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        xc_err(err, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        xc_err(err, "%s: is %s, not a regular file", path, xc_file_kind(st.st_mode));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK); // a regular file: ordinary blocking reads from here on
    return fd;
}

FILE *xc_fopen(const char *path, const char *mode, XcError *err) {
    if (mode[0] == 'r' && !strchr(mode, '+')) { // an input: refuse FIFOs, devices and directories without blocking
        int fd = xc_open_input(path, err);
        if (fd < 0) return NULL;
        FILE *f = fdopen(fd, mode);
        if (!f) { xc_err(err, "%s: cannot open: %s", path, strerror(errno)); close(fd); }
        return f;
    }
    FILE *f = fopen(path, mode);
    if (!f) xc_err(err, "%s: cannot open: %s", path, strerror(errno));
    return f;
}

int xc_write_file_atomic(const char *path, const void *data, size_t n, XcError *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return xc_err(err, "%s: path too long", path);
    FILE *f = xc_fopen(tmp, "wb", err);
    if (!f) return XC_ERR;
    bool ok = fwrite(data, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        remove(tmp);
        return xc_err(err, "%s: cannot write: %s", path, strerror(saved ? saved : EIO));
    }
    return XC_OK;
}

void *xc_read_file(const char *path, size_t max_bytes, size_t *len, XcError *err) {
    FILE *f = xc_fopen(path, "rb", err);
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        xc_err(err, "%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        xc_err(err, "%s: file is %lld bytes, more than the %zu allowed", path, (long long)st.st_size, max_bytes);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = xc_malloc(n + 1);
    if (n && fread(buf, 1, n, f) != n) {
        xc_err(err, "%s: read failed: %s", path, ferror(f) ? strerror(errno) : "file shrank while reading");
        xc_free(buf);
        fclose(f);
        return NULL;
    }
    if (n == 0 && fgetc(f) != EOF) { // /proc/self/status and the like: size 0 by stat, content when read
        xc_err(err, "%s: a pseudo-file (its size reads as 0 but it has content, like the files of /proc and /sys), "
                    "not an ordinary file", path);
        xc_free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = 0; // convenient for text files; not counted in *len
    fclose(f);
    *len = n;
    return buf;
}

int xc_mkdir_p(const char *path, mode_t mode, XcError *err) {
    char buf[4096];
    if (!*path) return xc_err(err, "cannot create a directory with an empty name");
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return xc_err(err, "%.80s...: path too long", path);
    for (char *p = buf + 1;; p++) { // each prefix ending before a '/', then the whole path
        if (*p && *p != '/') continue;
        char c = *p;
        *p = 0;
        struct stat st;
        if (mkdir(buf, mode) != 0) {
            int e = errno;
            if (stat(buf, &st) != 0) return xc_err(err, "%s: cannot create directory %s: %s", path, buf, strerror(e));
            if (!S_ISDIR(st.st_mode)) return xc_err(err, "%s: cannot create directory: %s is not a directory", path, buf);
        }
        *p = c;
        if (!c) return XC_OK;
        while (p[1] == '/') p++; // a//b
        if (!p[1]) return XC_OK;  // a trailing '/'
    }
}

int xc_pwrite_all(int fd, const void *buf, size_t n, off_t off) {
    const char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

bool xc_all_finite(const float *x, int64_t n) {
    const int64_t chunk = 1 << 14; // stop early at a bad chunk, but keep the inner loop branch-free
    for (int64_t s = 0; s < n; s += chunk) {
        const int64_t e = n - s < chunk ? n - s : chunk;
        uint32_t bad = 0;
        for (int64_t i = 0; i < e; i++) {
            uint32_t u;
            memcpy(&u, x + s + i, 4);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) return false;
    }
    return true;
}

double xc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t xc_peak_rss(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss * 1024u; // Linux reports kilobytes
}

uint64_t xc_rss(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    return n == 2 ? (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}
