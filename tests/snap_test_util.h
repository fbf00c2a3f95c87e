// snap_test_util.h - scratch directories and file surgery for the snapshot and export tests.
#pragma once
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// A fresh directory under $TMPDIR (or /tmp) into buf.
static inline const char *st_mkdtemp(char *buf, size_t n, const char *tag) {
    const char *t = getenv("TMPDIR");
    snprintf(buf, n, "%s/xclip-%s-XXXXXX", t && t[0] ? t : "/tmp", tag);
    if (!mkdtemp(buf)) { perror("mkdtemp"); exit(1); }
    return buf;
}

// Remove every file of a flat directory, then the directory.
static inline void st_rmdir(const char *dir) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *de;
    char p[8400];
    while ((de = readdir(dp))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(dp);
    rmdir(dir);
}

// Count the entries of dir whose name starts with prefix.
static inline int st_count(const char *dir, const char *prefix) {
    DIR *dp = opendir(dir);
    if (!dp) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)))
        if (!strncmp(de->d_name, prefix, strlen(prefix))) n++;
    closedir(dp);
    return n;
}

static inline uint8_t *st_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); fclose(f); return NULL; }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static inline int st_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static inline int st_copy(const char *from, const char *to) {
    size_t n;
    uint8_t *b = st_read(from, &n);
    if (!b) return -1;
    int rc = st_write(to, b, n);
    free(b);
    return rc;
}

static inline bool st_contains(const char *s, const char *needle) { return s && strstr(s, needle) != NULL; }
