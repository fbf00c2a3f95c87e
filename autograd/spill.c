// spill.c - moving frozen parameters out of anonymous memory into a file mapping (see tensor.h).
//
// The file is created unlinked (O_TMPFILE, else mkstemp + unlink), so nothing is left behind, whatever way the
// process ends. Its pages are clean page cache once written back: the kernel can drop them under pressure and
// read them again on use, which anonymous memory without swap never allows.
#include "autograd/tensor.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

static bool spillable(const Tensor *t, bool (*select)(const char *)) {
    return !t->requires_grad && !t->grad && t->numel > 0 && select(t->name);
}

static size_t up(size_t n, size_t a) { return (n + a - 1) / a * a; }

static int open_unlinked(const char *dir, XcError *err) {
    int fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/.xclip-spill-XXXXXX", dir) >= (int)sizeof path) {
        xc_err(err, "%s: directory name too long for the spill file", dir);
        return -1;
    }
    fd = mkstemp(path); // file systems without O_TMPFILE
    if (fd < 0) {
        xc_err(err, "%s: cannot create the spill file: %s", dir, strerror(errno));
        return -1;
    }
    unlink(path);
    return fd;
}

int param_store_spill(ParamStore *ps, bool (*select)(const char *name), const char *dir, size_t *moved, XcError *err) {
    if (moved) *moved = 0;
    if (ps->spill) return xc_err(err, "%s: this ParamStore has spilled its parameters already", dir);
    size_t bytes = 0; // layout: each tensor at a 64-byte aligned offset, in store order
    for (int i = 0; i < ps->n; i++)
        if (spillable(ps->p[i], select)) bytes = up(bytes, 64) + (size_t)ps->p[i]->numel * sizeof(float);
    if (!bytes) return XC_OK;
    int fd = open_unlinked(dir, err);
    if (fd < 0) return XC_ERR;
    struct statfs sf;
    if (fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)) {
        close(fd);
        return xc_err(err, "%s is held in memory (tmpfs): spilling frozen weights there would save nothing", dir);
    }
    int e = posix_fallocate(fd, 0, (off_t)bytes); // a full disk fails here, before anything is written
    size_t off = 0;
    for (int i = 0; i < ps->n && !e; i++) {
        const Tensor *t = ps->p[i];
        if (!spillable(t, select)) continue;
        off = up(off, 64);
        e = xc_pwrite_all(fd, t->data, (size_t)t->numel * sizeof(float), (off_t)off) ? errno : 0;
        off += (size_t)t->numel * sizeof(float);
    }
    if (!e && fdatasync(fd) != 0) e = errno; // on disk before the tensors depend on it: a failed writeback
                                              // would otherwise come back later as wrong weights
    void *map = e ? MAP_FAILED : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (!e && map == MAP_FAILED) e = errno;
    close(fd); // the mapping keeps the file
    if (e) return xc_err(err, "%s: cannot spill %.1f MB of frozen weights: %s", dir, bytes / 1e6, strerror(e));

    // Repoint the tensors, then release their old pages (whole pages inside each tensor's old data only;
    // neighbours in the store keep theirs).
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    off = 0;
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = ps->p[i];
        if (!spillable(t, select)) continue;
        off = up(off, 64);
        uintptr_t lo = up((uintptr_t)t->data, page), hi = ((uintptr_t)t->data + (size_t)t->numel * sizeof(float)) / page * page;
        t->data = (float *)((char *)map + off);
        off += (size_t)t->numel * sizeof(float);
        if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    ps->spill = map;
    ps->spill_bytes = bytes;
    if (moved) *moved = bytes;
    return XC_OK;
}

void param_store_page_out(ParamStore *ps) {
    if (!ps->spill) return;
#ifdef MADV_PAGEOUT
    madvise(ps->spill, ps->spill_bytes, MADV_PAGEOUT); // Linux >= 5.4; a hint: failure only costs memory
#endif
}
