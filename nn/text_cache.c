// text_cache.c - see text_cache.h.
#include "nn/text_cache.h"
#include "autograd/runtime.h"
#include "checkpoints/hash64.h"

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAGIC "XCTXTFT1"
#define HEADER_BYTES 128
// header offsets
enum { H_MAGIC = 0, H_VERSION = 8, H_HEADER = 12, H_KIND = 16, H_K = 48, H_M = 56, H_S = 64, H_E = 72, H_W0 = 80,
       H_W1 = 88, H_BUILD = 96, H_PAYLOAD_SUM = 104, H_RESERVED = 112, H_HEADER_SUM = 120 };

// Little-endian fields on a little-endian host (as checkpoints/hash64.c assumes too).
static void put64(uint8_t *h, int off, uint64_t v) { memcpy(h + off, &v, 8); }
static uint64_t get64(const uint8_t *h, int off) { uint64_t v; memcpy(&v, h + off, 8); return v; }

void text_cache_hash_weights(const ParamStore *ps, bool (*use)(const char *name), uint64_t out[2]) {
#pragma omp parallel for schedule(static) num_threads(2)
    for (int seed = 0; seed < 2; seed++) {
        Hash64 h;
        hash64_init(&h, (uint64_t)seed);
        for (int i = 0; i < ps->n; i++) {
            const Tensor *p = ps->p[i];
            if (!use(p->name)) continue;
            int32_t nd = p->ndim;
            hash64_update(&h, p->name, strlen(p->name) + 1);
            hash64_update(&h, &nd, sizeof nd);
            hash64_update(&h, p->shape, sizeof(int64_t) * (size_t)p->ndim);
            hash64_update(&h, p->data, sizeof(float) * (size_t)p->numel);
        }
        out[seed] = hash64_digest(&h);
    }
}

uint64_t text_cache_build_id(void) {
    char exe[4096];
    XcError err;
    size_t len;
    if (!xc_exe_path(exe, sizeof exe)) return 0;
    uint8_t *bytes = xc_read_file(exe, (size_t)1 << 30, &len, &err);
    if (!bytes) return 0;
    Hash64 h;
    hash64_init(&h, 0);
    hash64_update(&h, bytes, len);
    xc_free(bytes);
    const char *config = openblas_get_config(), *core = openblas_get_corename();
    hash64_update(&h, config, strlen(config) + 1);
    hash64_update(&h, core, strlen(core) + 1);
    int32_t threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    hash64_update(&h, &threads, sizeof threads);
    uint64_t id = hash64_digest(&h);
    return id ? id : 1; // 0 means "unknown"
}

bool text_cache_dir(const char *given, char *out, size_t n) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int len;
    if (given) len = snprintf(out, n, "%s", given);
    else if (xdg && xdg[0] == '/') len = snprintf(out, n, "%s/xclip", xdg);
    else if (home && *home) len = snprintf(out, n, "%s/.cache/xclip", home);
    else return false;
    return len > 0 && (size_t)len < n;
}

// The header of key (payload checksum and header checksum filled in).
static void header_make(uint8_t h[HEADER_BYTES], const TextCacheKey *key, uint64_t payload_sum) {
    memset(h, 0, HEADER_BYTES);
    memcpy(h + H_MAGIC, MAGIC, 8);
    uint32_t version = TEXT_CACHE_VERSION, hb = HEADER_BYTES;
    memcpy(h + H_VERSION, &version, 4);
    memcpy(h + H_HEADER, &hb, 4);
    memcpy(h + H_KIND, key->kind, strnlen(key->kind, sizeof key->kind - 1)); // NUL-padded to 32 bytes
    put64(h, H_K, (uint64_t)key->K);
    put64(h, H_M, (uint64_t)key->M);
    put64(h, H_S, (uint64_t)key->S);
    put64(h, H_E, (uint64_t)key->E);
    put64(h, H_W0, key->weights[0]);
    put64(h, H_W1, key->weights[1]);
    put64(h, H_BUILD, key->build);
    put64(h, H_PAYLOAD_SUM, payload_sum);
    put64(h, H_HEADER_SUM, hash64(h, H_HEADER_SUM, 0));
}

static size_t token_bytes(const TextCacheKey *k) { return sizeof(int32_t) * (size_t)(k->K * k->M * k->S); }
static size_t feature_bytes(const TextCacheKey *k) { return sizeof(float) * (size_t)(k->K * k->E); }

int text_cache_path(const char *dir, const TextCacheKey *key, char *out, size_t n) {
    uint8_t h[HEADER_BYTES];
    header_make(h, key, 0);
    put64(h, H_BUILD, 0); // the name leaves the build out: a rebuilt program replaces its entry
    Hash64 s;
    hash64_init(&s, 0);
    hash64_update(&s, h + H_KIND, H_BUILD - H_KIND);
    hash64_update(&s, key->tokens, token_bytes(key));
    int len = snprintf(out, n, "%s/%016llx.xtf", dir, (unsigned long long)hash64_digest(&s));
    return len > 0 && (size_t)len < n ? XC_OK : XC_ERR;
}

static bool read_all(int fd, void *buf, size_t n, off_t off) {
    for (size_t done = 0; done < n;) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        done += (size_t)r;
    }
    return true;
}

// Why the header h does not fit key (NULL if it does), for "path: <reason>".
static const char *header_mismatch(const uint8_t *h, const TextCacheKey *key) {
    uint32_t version, hb;
    memcpy(&version, h + H_VERSION, 4);
    memcpy(&hb, h + H_HEADER, 4);
    if (memcmp(h + H_MAGIC, MAGIC, 8)) return "not a text-feature cache file (no XCTXTFT1 magic)";
    if (version != TEXT_CACHE_VERSION || hb != HEADER_BYTES) return "a text-feature cache file of another format version";
    if (get64(h, H_HEADER_SUM) != hash64(h, H_HEADER_SUM, 0)) return "header damaged (checksum mismatch)";
    uint8_t want[HEADER_BYTES];
    header_make(want, key, 0);
    if (memcmp(h + H_KIND, want + H_KIND, H_W0 - H_KIND)) return "written for other texts or another model (kind or sizes differ)";
    if (memcmp(h + H_W0, want + H_W0, 16)) return "written for other weights";
    if (get64(h, H_BUILD) != key->build)
        return "written by another build of the program or with another OpenBLAS kernel or thread count";
    return NULL;
}

TextCacheStatus text_cache_read(const char *path, const TextCacheKey *key, float **features, XcError *err) {
    *features = NULL;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT) return TEXT_CACHE_ABSENT;
    int fd = xc_open_input(path, err);
    if (fd < 0) return TEXT_CACHE_UNUSABLE;
    if (fstat(fd, &st) != 0) {
        xc_err(err, "%s: %s", path, strerror(errno));
        close(fd);
        return TEXT_CACHE_UNUSABLE;
    }
    uint8_t h[HEADER_BYTES];
    const char *why = NULL;
    const size_t nt = token_bytes(key), nf = feature_bytes(key), want = HEADER_BYTES + nt + nf;
    if ((uint64_t)st.st_size < HEADER_BYTES) why = "too short for a text-feature cache file";
    else if (!read_all(fd, h, HEADER_BYTES, 0)) why = "cannot read the header";
    else why = header_mismatch(h, key);
    if (!why && (uint64_t)st.st_size != want) { // the header fits key, so want is the size it promises
        xc_err(err, "%s: truncated or padded: %lld bytes, a file of %lld x %lld features holds %zu", path,
               (long long)st.st_size, (long long)key->K, (long long)key->E, want);
        close(fd);
        return TEXT_CACHE_UNUSABLE;
    }
    uint8_t *payload = why ? NULL : xc_malloc(nt + nf);
    if (!why && !read_all(fd, payload, nt + nf, HEADER_BYTES)) why = "cannot read the features";
    else if (!why && hash64(payload, nt + nf, 0) != get64(h, H_PAYLOAD_SUM)) why = "features damaged (checksum mismatch)";
    else if (!why && memcmp(payload, key->tokens, nt)) why = "written for other label texts (the token rows differ)";
    close(fd);
    if (why) {
        xc_free(payload);
        xc_err(err, "%s: %s", path, why);
        return TEXT_CACHE_UNUSABLE;
    }
    float *f = xc_malloc(nf);
    memcpy(f, payload + nt, nf);
    xc_free(payload);
    *features = f;
    return TEXT_CACHE_HIT;
}

int text_cache_write(const char *path, const TextCacheKey *key, const float *features, XcError *err) {
    char dir[4096], tmp[4200];
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path) : 1;
    if (snprintf(dir, sizeof dir, "%.*s", dl, slash ? path : ".") >= (int)sizeof dir ||
        snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, slash ? slash + 1 : path) >= (int)sizeof tmp)
        return xc_err(err, "%s: path too long", path);
    if (slash && dl > 0 && xc_mkdir_p(dir, 0700, err) != XC_OK) return XC_ERR;
    const size_t nt = token_bytes(key), nf = feature_bytes(key);
    Hash64 s;
    hash64_init(&s, 0);
    hash64_update(&s, key->tokens, nt);
    hash64_update(&s, features, nf);
    uint8_t h[HEADER_BYTES];
    header_make(h, key, hash64_digest(&s));
    int fd = mkstemp(tmp);
    if (fd < 0) return xc_err(err, "%s: cannot create a temporary file in %s: %s", path, dir, strerror(errno));
    bool ok = xc_pwrite_all(fd, h, HEADER_BYTES, 0) == 0 && xc_pwrite_all(fd, key->tokens, nt, HEADER_BYTES) == 0 &&
              xc_pwrite_all(fd, features, nf, (off_t)(HEADER_BYTES + nt)) == 0 && fsync(fd) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) ok = false, e = errno;
    if (ok && rename(tmp, path) != 0) ok = false, e = errno;
    if (!ok) {
        unlink(tmp);
        return xc_err(err, "%s: cannot write: %s", path, strerror(e));
    }
    return XC_OK;
}
