// test_runtime.c - process set-up (autograd/runtime.h):
//   - the re-execution that selects OpenBLAS kernels keeps the program's arguments and its process name
//     (/proc/self/comm, what `ps -C`, `pgrep -x` and `pkill` match; executing /proc/self/exe renamed every
//     program "exe"), also when started through a renamed symlink; the hand-over variable does not leak;
//   - a real program (xclip-train, blocked on a FIFO as its config) is found by `pgrep -x xclip-train`;
//   - xc_locate_file: absolute paths as given, relative ones from the current directory, beside the program,
//     its parent folder and the source tree, and the list of every place looked at.
// The re-execution is forced by leaving OMP_WAIT_POLICY out of the child's environment (OPENBLAS_CORETYPE,
// if set, stays as it is).
#include "test_util.h"
#include "autograd/runtime.h"
#include "autograd/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *build_dir(void) { return getenv("XCLIP_BUILD") ? getenv("XCLIP_BUILD") : "build"; }

// Child mode: set up like a program, then report what the process looks like.
static int child_report(int argc, char **argv) {
    xc_runtime_init(argc, argv);
    char comm[64] = "";
    FILE *f = fopen("/proc/self/comm", "r");
    if (f) {
        if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
        fclose(f);
    }
    comm[strcspn(comm, "\n")] = 0;
    const char *set = getenv("XCLIP_RUNTIME_SET"), *name = getenv("XCLIP_PROCESS_NAME");
    printf("comm=%s|reexec=%s|argv0=%s|arg2=%s|name_env=%s|\n", comm, set ? set : "-", argv[0], argc > 2 ? argv[2] : "-",
           name ? name : "-");
    return 0;
}

// The environment minus the variables that would stop the re-execution (never OPENBLAS_CORETYPE).
static char **child_env(void) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "OMP_WAIT_POLICY=", 16) && strncmp(environ[i], "XCLIP_RUNTIME_SET=", 18) &&
            strncmp(environ[i], "XCLIP_BLAS_AUTO=", 16))
            env[k++] = environ[i];
    return env;
}

// Runs exe with argv0 and the child flag; its report into out.
static int run_child(const char *exe, const char *argv0, char *out, size_t cap) {
    int fds[2];
    XC_CHECK(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    XC_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        char *args[] = {(char *)argv0, "--child", "second argument", NULL};
        execve(exe, args, child_env());
        _exit(127);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = read(fds[0], out + got, cap - 1 - got)) > 0) got += (size_t)r;
    out[got] = 0;
    close(fds[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_reexec_keeps_name(const char *self) {
    char out[1024];
    int rc = run_child(self, "test_runtime", out, sizeof out);
    XC_EXPECT(rc == 0 && strstr(out, "comm=test_runtime|"), "re-executed process name: %d '%s' (want comm=test_runtime)", rc, out);
    XC_EXPECT(strstr(out, "reexec=1|"), "the child did not re-execute (the test would prove nothing): '%s'", out);
    XC_EXPECT(strstr(out, "argv0=test_runtime|arg2=second argument|"), "arguments changed by the re-execution: '%s'", out);
    XC_EXPECT(strstr(out, "name_env=-|"), "XCLIP_PROCESS_NAME leaks into the program's environment: '%s'", out);
    // argv[0] is kept as the caller gave it, even when it is not the file's name
    rc = run_child(self, "custom-argv0", out, sizeof out);
    XC_EXPECT(rc == 0 && strstr(out, "comm=test_runtime|") && strstr(out, "argv0=custom-argv0|"), "custom argv[0]: '%s'", out);
    // through a symlink of another name: the process keeps the symlink's name, as without re-execution
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/xclip-renamed", build_dir());
    unlink(link);
    XC_CHECK(symlink(self, link) == 0, "symlink %s: %s", link, strerror(errno));
    rc = run_child(link, link, out, sizeof out);
    XC_EXPECT(rc == 0 && strstr(out, "comm=xclip-renamed|") && strstr(out, "reexec=1|"), "through a symlink: '%s'", out);
    unlink(link);
}

// xclip-train blocks opening a FIFO given as its config, after its re-execution: pgrep must see it by name.
static void test_program_found_by_pgrep(void) {
    char fifo[PATH_MAX], exe[PATH_MAX];
    snprintf(fifo, sizeof fifo, "%s/test_runtime.fifo", build_dir());
    snprintf(exe, sizeof exe, "%s/xclip-train", build_dir());
    unlink(fifo);
    XC_CHECK(mkfifo(fifo, 0600) == 0, "mkfifo %s: %s", fifo, strerror(errno));
    pid_t pid = fork();
    XC_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        char *args[] = {"xclip-train", fifo, NULL};
        execve(exe, args, child_env());
        _exit(127);
    }
    // wait until it has re-executed (XCLIP_RUNTIME_SET in its initial environment) or has exited; the bound
    // (2 minutes) only keeps a broken re-execution from hanging the test
    char path[64], comm[64] = "", cmd[128], out[4096] = "";
    bool reexecuted = false, exited = false;
    int st = 0;
    for (int i = 0; i < 12000 && !reexecuted && !exited; i++) {
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        FILE *f = fopen(path, "r");
        if (f) {
            char env[65536];
            size_t n = fread(env, 1, sizeof env - 1, f);
            fclose(f);
            for (size_t o = 0; o < n; o += strlen(env + o) + 1) {
                env[n] = 0;
                if (!strcmp(env + o, "XCLIP_RUNTIME_SET=1")) reexecuted = true;
            }
        }
        if (!reexecuted) {
            exited = waitpid(pid, &st, WNOHANG) == pid;
            usleep(10000);
        }
    }
    XC_EXPECT(reexecuted, "xclip-train did not re-execute itself");
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
        fclose(f);
    }
    XC_EXPECT(!strcmp(comm, "xclip-train\n"), "xclip-train runs as '%s'", comm);
    snprintf(cmd, sizeof cmd, "pgrep -x xclip-train");
    xc_run_capture(cmd, out, sizeof out);
    char want[32];
    snprintf(want, sizeof want, "%d\n", (int)pid);
    bool listed = false;
    for (char *l = out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l))
        if (!strncmp(l, want, strlen(want))) listed = true;
    XC_EXPECT(listed, "pgrep -x xclip-train does not list pid %d:\n%s", (int)pid, out);
    if (!exited) {
        int w = open(fifo, O_WRONLY | O_NONBLOCK); // let it read an empty config and exit
        if (w >= 0) close(w);
        else kill(pid, SIGTERM);
        waitpid(pid, &st, 0);
    }
    unlink(fifo);
}

static bool contains_line(const char *text, const char *line) {
    char needle[PATH_MAX + 64];
    snprintf(needle, sizeof needle, "  %s: ", line);
    return strstr(text, needle) != NULL;
}

static void test_locate(void) {
    char found[PATH_MAX], tried[4096], exe[PATH_MAX], cwd[PATH_MAX], base[] = "/tmp/xclip_locate_XXXXXX", dir[64];
    XC_EXPECT(xc_exe_path(exe, sizeof exe) && exe[0] == '/' && strstr(exe, "test_runtime"), "xc_exe_path: %s", exe);
    // one level down in a folder of our own, so that ../shared from here is surely absent (a /tmp/shared may exist)
    XC_CHECK(mkdtemp(base), "mkdtemp");
    snprintf(dir, sizeof dir, "%s/cwd", base);
    XC_CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
    char file[PATH_MAX + 32];
    snprintf(file, sizeof file, "%s/vocab.txt", dir);
    FILE *f = fopen(file, "w");
    XC_CHECK(f, "cannot write %s", file);
    fputs("x\n", f);
    fclose(f);
    XC_CHECK(getcwd(cwd, sizeof cwd), "getcwd");
    // absolute: as given, and only there
    XC_EXPECT(xc_locate_file(file, found, sizeof found, tried, sizeof tried) && !strcmp(found, file), "absolute: %s", found);
    XC_EXPECT(!xc_locate_file("/nonexistent/v.txt", found, sizeof found, tried, sizeof tried) &&
                  !strcmp(tried, "  /nonexistent/v.txt: No such file or directory\n"), "absolute missing: '%s'", tried);
    // relative to the current directory
    XC_CHECK(chdir(dir) == 0, "chdir");
    XC_EXPECT(xc_locate_file("vocab.txt", found, sizeof found, tried, sizeof tried) && strstr(found, "/vocab.txt") &&
                  !strncmp(found, dir, strlen(dir)), "relative to the current directory: %s", found);
    // the shared vocabulary named relative to the source tree, from a directory where that does not work
    char shared[PATH_MAX], want[PATH_MAX];
    XC_SHARED("clip/bpe_simple_vocab_16e6.txt.gz", shared);
    if (access(shared, R_OK) == 0 && realpath(shared, want)) {
        bool ok = xc_locate_file("../shared/clip/bpe_simple_vocab_16e6.txt.gz", found, sizeof found, tried, sizeof tried);
        char got[PATH_MAX] = "";
        XC_EXPECT(ok && realpath(found, got) && !strcmp(got, want), "vocabulary from %s: %d %s\n%s", dir, ok, found, tried);
        XC_EXPECT(strstr(tried, "No such file") && strstr(tried, ": found"), "the list of places: '%s'", tried);
    }
    // nothing anywhere: every place named
    bool ok = xc_locate_file("no/such/file.gz", found, sizeof found, tried, sizeof tried);
    char exedir[PATH_MAX], p[PATH_MAX + 64];
    snprintf(exedir, sizeof exedir, "%s", exe);
    *strrchr(exedir, '/') = 0;
    XC_EXPECT(!ok, "a missing file was found: %s", found);
    snprintf(p, sizeof p, "%s/no/such/file.gz", dir);
    char real_dir[PATH_MAX];
    if (realpath(dir, real_dir)) snprintf(p, sizeof p, "%s/no/such/file.gz", real_dir);
    XC_EXPECT(contains_line(tried, p), "current directory not named: '%s' lacks %s", tried, p);
    snprintf(p, sizeof p, "%s/no/such/file.gz", exedir);
    XC_EXPECT(contains_line(tried, p), "program directory not named: '%s' lacks %s", tried, p);
    *strrchr(exedir, '/') = 0;
    snprintf(p, sizeof p, "%s/no/such/file.gz", exedir);
    XC_EXPECT(contains_line(tried, p), "program's parent not named: '%s' lacks %s", tried, p);
    int lines = 0;
    for (const char *q = tried; *q; q++) lines += *q == '\n';
    XC_EXPECT(lines >= 3 && lines <= 4, "%d places (want 3 or 4: cwd, program dir, its parent, source tree if other):\n%s", lines,
              tried);
    XC_CHECK(chdir(cwd) == 0, "chdir back");
    unlink(file);
    rmdir(dir);
    rmdir(base);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--child")) return child_report(argc, argv);
    char self[PATH_MAX];
    XC_CHECK(xc_exe_path(self, sizeof self), "cannot read /proc/self/exe");
    test_reexec_keeps_name(self);
    test_program_found_by_pgrep();
    test_locate();
    return xc_test_summary("test_runtime");
}
