// test_data_lists.c - list and label CSV validation with file:line messages; BOM, CRLF and blank lines accepted;
// missing files listed; few-shot lists reproducible from a seed.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "tests/test_util.h"

static char dir[64];

static const char *put_bytes(const char *name, const char *text, size_t n) {
    static char p[8][256];
    static int k;
    char *o = p[k++ % 8];
    snprintf(o, 256, "%s/%s", dir, name);
    FILE *f = fopen(o, "wb");
    fwrite(text, 1, n, f);
    fclose(f);
    return o;
}
static const char *put_file(const char *name, const char *text) { return put_bytes(name, text, strlen(text)); }

static void expect_list_error(const char *text, int K, const char *want) {
    const char *p = put_file("bad.txt", text);
    XcError err = {{0}};
    Dataset *ds = dataset_open(p, dir, K, &err);
    XC_EXPECT(ds == NULL, "list accepted: %s", text);
    XC_EXPECT(strstr(err.msg, want) != NULL, "message `%s` lacks `%s`", err.msg, want);
    dataset_free(ds);
}

static void expect_label_error(const char *text, const char *want) {
    const char *p = put_file("bad.csv", text);
    XcError err = {{0}};
    LabelSet ls;
    XC_EXPECT(labels_load(p, &ls, &err) != XC_OK, "labels accepted: %s", text);
    XC_EXPECT(strstr(err.msg, want) != NULL, "message `%s` lacks `%s`", err.msg, want);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/xclip_lists_XXXXXX");
    XC_CHECK(mkdtemp(dir), "mkdtemp");
    char sub[128];
    snprintf(sub, sizeof sub, "%s/a", dir);
    mkdir(sub, 0755);
    for (int i = 0; i < 6; i++) {
        char n[32];
        snprintf(n, sizeof n, "a/v%d.mp4", i);
        put_file(n, "x");
    }
    XcError err = {{0}};
    // good list with BOM, CRLF, blank lines, tabs
    const char *good = put_file("good.txt", "\xEF\xBB\xBF" "a/v0.mp4 0\r\n\r\na/v1.mp4\t1\r\n  a/v2.mp4   0  \n\na/v3.mp4 1\na/v4.mp4 2\na/v5.mp4 2");
    Dataset *ds = dataset_open(good, dir, 3, &err);
    XC_EXPECT(ds && ds->n == 6 && ds->n_missing == 0, "good list: %s", err.msg);
    if (ds) {
        XC_EXPECT(strcmp(ds->items[0].path, "a/v0.mp4") == 0 && ds->items[1].label == 1 && ds->items[1].line == 3,
                  "parsed items: %s %d %d", ds->items[0].path, ds->items[1].label, ds->items[1].line);
        // few-shot: 1 per class, reproducible
        char f1[128], f2[128];
        snprintf(f1, sizeof f1, "%s/fs1.txt", dir);
        snprintf(f2, sizeof f2, "%s/fs2.txt", dir);
        XC_EXPECT(dataset_write_fewshot(ds, 1, 5, f1, &err) == XC_OK, "%s", err.msg);
        XC_EXPECT(dataset_write_fewshot(ds, 1, 5, f2, &err) == XC_OK, "%s", err.msg);
        size_t l1, l2;
        char *t1 = xc_read_file(f1, 1 << 20, &l1, &err), *t2 = xc_read_file(f2, 1 << 20, &l2, &err);
        XC_EXPECT(t1 && t2 && l1 == l2 && memcmp(t1, t2, l1) == 0, "few-shot lists differ for the same seed");
        Dataset *fs = dataset_open(f1, dir, 3, &err);
        XC_EXPECT(fs && fs->n == 3 && fs->items[0].label == 0 && fs->items[2].label == 2, "few-shot list content");
        dataset_free(fs);
        xc_free(t1); xc_free(t2);
        XC_EXPECT(dataset_write_fewshot(ds, 3, 5, f1, &err) == XC_ERR && strstr(err.msg, "fewer than"),
                  "few-shot k too large: %s", err.msg);
        dataset_free(ds);
    }
    // missing file: listed, not fatal
    const char *miss = put_file("miss.txt", "a/v0.mp4 0\na/nothere.mp4 1\n");
    ds = dataset_open(miss, dir, 3, &err);
    XC_EXPECT(ds && ds->n_missing == 1 && strstr(ds->issues, "miss.txt:2: a/nothere.mp4"), "missing: %s",
              ds ? ds->issues : err.msg);
    dataset_free(ds);
    // not regular files are told apart from missing ones: a folder, a FIFO, a device, a symlink loop, a dangling link
    {
        char p1[160], p2[160];
        snprintf(p1, sizeof p1, "%s/a/dir.mp4", dir);
        XC_EXPECT(mkdir(p1, 0755) == 0, "mkdir %s", p1);
        snprintf(p1, sizeof p1, "%s/a/fifo.mp4", dir);
        XC_EXPECT(mkfifo(p1, 0600) == 0, "mkfifo %s", p1);
        snprintf(p1, sizeof p1, "%s/a/dev.mp4", dir);
        XC_EXPECT(symlink("/dev/null", p1) == 0, "symlink %s", p1);
        snprintf(p1, sizeof p1, "%s/a/loop1.mp4", dir);
        snprintf(p2, sizeof p2, "%s/a/loop2.mp4", dir);
        XC_EXPECT(symlink(p2, p1) == 0 && symlink(p1, p2) == 0, "symlink loop");
        snprintf(p1, sizeof p1, "%s/a/dangling.mp4", dir);
        XC_EXPECT(symlink("nowhere.mp4", p1) == 0, "dangling symlink");
        const char *odd = put_file("odd.txt", "a/dir.mp4 0\na/fifo.mp4 0\na/dev.mp4 1\na/loop1.mp4 1\na/dangling.mp4 2\na/none.mp4 2\n");
        ds = dataset_open(odd, dir, 3, &err);
        XC_EXPECT(ds && ds->n_missing == 6, "odd files: %lld of 6 unusable: %s", ds ? (long long)ds->n_missing : -1LL, ds ? ds->issues : err.msg);
        static const char *want[] = {"odd.txt:1: a/dir.mp4: a directory, not a video file",
                                     "odd.txt:2: a/fifo.mp4: a FIFO (named pipe), not a video file",
                                     "odd.txt:3: a/dev.mp4: a character device, not a video file",
                                     "odd.txt:4: a/loop1.mp4: a symbolic link loop, not a video file",
                                     "odd.txt:5: a/dangling.mp4: a dangling symbolic link",
                                     "odd.txt:6: a/none.mp4: no such file in"};
        for (size_t i = 0; ds && i < sizeof want / sizeof want[0]; i++)
            XC_EXPECT(strstr(ds->issues, want[i]), "odd files: no '%s' in:\n%s", want[i], ds->issues);
        dataset_free(ds);
    }
    // errors with file:line
    expect_list_error("a/v0.mp4 0\na/v1.mp4 7\n", 3, "bad.txt:2: label 7 outside [0, 3)");
    expect_list_error("a/v0.mp4 0\n\na/v1.mp4\n", 3, "bad.txt:3: expected `<path> <label>`, found 1 field");
    expect_list_error("a/v0.mp4 x1\n", 3, "bad.txt:1: label `x1` is not an integer");
    expect_list_error("a/v0.mp4 1 2\n", 3, "bad.txt:1: expected `<path> <label>`, found 3 fields");
    expect_list_error("a/v0.mp4 -1\n", 0, "bad.txt:1: label -1");
    expect_list_error("../etc/passwd 0\n", 3, "bad.txt:1: path `../etc/passwd` must be relative");
    expect_list_error("/abs.mp4 0\n", 3, "bad.txt:1: path `/abs.mp4`");
    expect_list_error("\n\r\n", 3, "the list has no videos");
    {
        XcError e2 = {{0}};
        const char *p = put_bytes("nul.txt", "a/v0.mp4 0\0\n", 12);
        XC_EXPECT(dataset_open(p, dir, 3, &e2) == NULL && strstr(e2.msg, "NUL"), "NUL list: %s", e2.msg);
    }
    {
        XcError e2 = {{0}};
        XC_EXPECT(dataset_open(good, "/nonexistent_root", 3, &e2) == NULL && strstr(e2.msg, "/nonexistent_root"),
                  "bad root: %s", e2.msg);
        XC_EXPECT(dataset_open("/nonexistent_list.txt", dir, 3, &e2) == NULL && strstr(e2.msg, "/nonexistent_list.txt"),
                  "bad list: %s", e2.msg);
    }
    // labels
    LabelSet ls;
    const char *lab = put_file("labels.csv", "\xEF\xBB\xBFid,name\r\n0,air drumming\r\n1,\"a, b\"\r\n\r\n2,  spaced  \r\n");
    XC_EXPECT(labels_load(lab, &ls, &err) == XC_OK, "%s", err.msg);
    if (ls.count == 3) {
        XC_EXPECT(strcmp(ls.names[0], "air drumming") == 0 && strcmp(ls.names[1], "a, b") == 0 &&
                  strcmp(ls.names[2], "spaced") == 0, "names %s|%s|%s", ls.names[0], ls.names[1], ls.names[2]);
    }
    labels_free(&ls);
    char shared[512];
    XC_EXPECT(labels_load(XC_SHARED("labels/kinetics_400_labels.csv", shared), &ls, &err) == XC_OK && ls.count == 400 &&
              strcmp(ls.names[0], "abseiling") == 0, "kinetics labels: %s", err.msg);
    labels_free(&ls);
    // quoted names (RFC 4180): doubled quotes, commas, kept blanks; quotes inside an unquoted name stay as written
    lab = put_file("quoted.csv", "id,name\n0,\"say \"\"hi\"\" left\"\n1,\"a, \"\"b\"\", c\"\n2,\" padded \"\n"
                                 "3,plain \"quoted\" inside\n4,\"\"\"\"\"\"\n5,\"\"\" , \"\"\"\n");
    XC_EXPECT(labels_load(lab, &ls, &err) == XC_OK, "%s", err.msg);
    static const char *QUOTED[] = {"say \"hi\" left", "a, \"b\", c", " padded ", "plain \"quoted\" inside", "\"\"", "\" , \""};
    XC_EXPECT(ls.count == 6, "quoted names: %d classes, want 6", ls.count);
    for (int i = 0; i < ls.count && i < 6; i++)
        XC_EXPECT(strcmp(ls.names[i], QUOTED[i]) == 0, "quoted name %d: got [%s], want [%s]", i, ls.names[i], QUOTED[i]);
    labels_free(&ls);
    // csv_write_field writes what labels_load reads back unchanged (and leaves plain names alone)
    static const char *NAMES[] = {"air drumming", "say \"hi\" left", "a, b", " lead", "trail ", "\"", "x\"\"y", "tab\tin", "é, ü \"ß\""};
    const int NN = (int)(sizeof NAMES / sizeof NAMES[0]);
    char written[512];
    snprintf(written, sizeof written, "%s/written.csv", dir);
    FILE *wf = fopen(written, "w");
    XC_CHECK(wf, "cannot write %s", written);
    fputs("id,name\n", wf);
    for (int i = 0; i < NN; i++) { fprintf(wf, "%d,", i); csv_write_field(wf, NAMES[i]); fputc('\n', wf); }
    fclose(wf);
    XC_EXPECT(labels_load(written, &ls, &err) == XC_OK && ls.count == NN, "round trip: %s", err.msg);
    for (int i = 0; i < ls.count && i < NN; i++)
        XC_EXPECT(strcmp(ls.names[i], NAMES[i]) == 0, "round trip %d: got [%s], want [%s]", i, ls.names[i], NAMES[i]);
    labels_free(&ls);
    size_t wlen;
    char *wtext = xc_read_file(written, 1 << 16, &wlen, &err);
    XC_EXPECT(wtext && strstr(wtext, "\n0,air drumming\n") && strstr(wtext, "\n1,\"say \"\"hi\"\" left\"\n") &&
                  strstr(wtext, "\n7,tab\tin\n"), "written fields:\n%s", wtext ? wtext : "");
    xc_free(wtext);
    expect_label_error("id,name\n0,\"open\n", "bad.csv:2: quoted name `\"open` has no closing quote");
    expect_label_error("id,name\n0,\"say \"hi\" left\"\n", "bad.csv:2: text after the closing quote");
    expect_label_error("id,name\n0,\"a\" b\n", "bad.csv:2: text after the closing quote");
    expect_label_error("id,name\n0,\"\"\n", "bad.csv:2: empty class name");
    expect_label_error("name,id\n0,a\n", "bad.csv:1: header must be `id,name`");
    expect_label_error("id,name\n0,a\n2,b\n", "bad.csv:3: id 2 where 1 was expected");
    expect_label_error("id,name\n0,a\nx,b\n", "bad.csv:3: id `x` is not an integer");
    expect_label_error("id,name\n0,a\n1\n", "bad.csv:3: expected `id,name`");
    expect_label_error("id,name\n0,\n", "bad.csv:2: empty class name");
    expect_label_error("id,name\n", "no classes");
    expect_label_error("", "empty label file");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
    return xc_test_summary("test_data_lists");
}
