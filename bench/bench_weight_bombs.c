// bench_weight_bombs - what reading hostile weights files costs, at the sizes of issue 17 item 9: for each file
// (tests/weight_bombs.h) its size, the peak resident memory of weights_load above the loading process's own
// (a forked child), the load's wall time and its verdict; then the time and memory to read a safetensors header of
// a million tensors (accepted: a million empty tensors; refused: the same with the last tensor out of range).
//
//   bench_weight_bombs [--dir DIR] [--only NAME]
//
// The files are written to DIR (default $TMPDIR or /tmp) and each is deleted after its row (the largest, the
// safetensors headers, take 100 MB of disk); before the fixes of issue 17 item 9 the worst of them asked for
// 2-3 GB of memory, so run an old build only on a machine with room. test_weight_bombs makes the same classes
// at a tenth of these sizes and asserts the bounds.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/weight_bombs.h"

static char g_dir[900];
static const char *g_only;

static void row(const char *name, const char *file) {
    struct stat st;
    if (stat(file, &st) != 0) { perror(file); exit(1); }
    BombLoad r = bomb_load(file, 600);
    char msg[161];
    const char *m = r.msg;
    const char *colon = strstr(m, file); // drop the path from the message to keep the row short
    if (colon == m) m += strlen(file) + 2;
    snprintf(msg, sizeof msg, "%.160s", r.died ? r.msg : r.rc == XC_OK ? "accepted" : m);
    printf("%-34s %12.1f KB %9.1f MB %8.2f s  %s\n", name, (double)st.st_size / 1024.0, r.peak_mb, r.secs, msg);
    fflush(stdout);
    unlink(file);
}

static bool wanted(const char *name) { return !g_only || strstr(name, g_only); }

static void buf_row(const char *name, const char *fname, Buf *b) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_dir, fname);
    bomb_write(path, b);
    b->n = 0;
    row(name, path);
}

int main(int argc, char **argv) {
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) g_only = argv[++i];
        else { fprintf(stderr, "usage: bench_weight_bombs [--dir DIR] [--only NAME]\n"); return 2; }
    }
    snprintf(g_dir, sizeof g_dir, "%s/xclip_bombs_XXXXXX", dir);
    if (!mkdtemp(g_dir)) { perror(g_dir); return 1; }
    printf("%-34s %15s %12s %10s  %s\n", "file", "size", "peak", "time", "verdict");
    Buf b = {0};
    char path[1024];
    if (wanted("st-metadata-array")) { bomb_st_metadata_array(&b, 98600000); buf_row("st-metadata-array (98.6 MB)", "a.safetensors", &b); }
    if (wanted("st-metadata-nested")) { bomb_st_metadata_nested(&b, 98600000); buf_row("st-metadata-nested (98.6 MB)", "b.safetensors", &b); }
    if (wanted("st-metadata-keys")) { bomb_st_metadata_keys(&b, 98600000); buf_row("st-metadata-keys (98.6 MB)", "c.safetensors", &b); }
    if (wanted("st-entry-array")) { bomb_st_entry_array(&b, 98600000); buf_row("st-entry-array (98.6 MB)", "d.safetensors", &b); }
    if (wanted("pk-objects")) { bomb_pk_objects(&b, (size_t)4 << 20); buf_row("pk-objects (4M objects, deflated)", "e.pth", &b); }
    if (wanted("pk-trailing")) { bomb_pk_trailing(&b, ((size_t)1 << 30) - 4096); buf_row("pk-trailing (1 GiB after STOP)", "f.pth", &b); }
    if (wanted("zip-deflated-storages")) { bomb_deflated_storages(&b, 4, (size_t)256 << 20); buf_row("zip-deflated-storages (4x256 MiB)", "g.pth", &b); }
    if (wanted("zip-overlap")) { bomb_overlapping_entries(&b, 200, (size_t)2 << 20); buf_row("zip-overlap (200 entries, 2 MiB)", "h.pth", &b); }
    snprintf(path, sizeof path, "%s/i.h5", g_dir);
    if (wanted("h5-gzip")) { bomb_h5_deflate(path, (hsize_t)1 << 28, (hsize_t)1 << 20, (size_t)4 << 20, false); row("h5-gzip (1 GiB of zeros)", path); }
    if (wanted("h5-long-stream")) { bomb_h5_deflate(path, 1024, 1024, (size_t)1 << 30, false); row("h5-long-stream (4 KB chunk, 1 GiB)", path); }
    if (wanted("h5-big-chunk")) { bomb_h5_deflate(path, 16, (hsize_t)1 << 28, (size_t)1 << 30, true); row("h5-big-chunk (16 of 2^28 elements)", path); }
    if (wanted("h5-external")) { bomb_h5_external(path, (hsize_t)1 << 28, "/dev/zero"); row("h5-external (/dev/zero, 1 GiB)", path); }
    if (wanted("st-1M-tensors")) {
        bomb_st_many_tensors(&b, 1000000, false); buf_row("st-1M-tensors (empty, accepted)", "j.safetensors", &b);
        bomb_st_many_tensors(&b, 1000000, true); buf_row("st-1M-tensors (last out of range)", "k.safetensors", &b);
    }
    free(b.p);
    rmdir(g_dir);
    return 0;
}
