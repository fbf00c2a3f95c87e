// signals.c - see signals.h. The handler touches only sig_atomic_t flags, and writes its notice with write(2).
#include "train/signals.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop, g_snapshot, g_stop_sig;
static SignalPoint g_test_point;   // XCLIP_TEST_SIGNAL_AT: where and after which count to raise g_test_sig
static long long g_test_at;
static int g_test_sig;

static void say(const char *s) { // async-signal-safe
    ssize_t r = write(STDERR_FILENO, s, strlen(s));
    (void)r;
}

static void set_handler(int sig, void (*fn)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void on_signal(int sig) {
    if (sig == SIGUSR1) {
        g_snapshot = 1;
        return;
    }
    if (g_stop) { // the second Ctrl-C / SIGTERM: die of it as if no handler were set (status 130 / 143)
        say(sig == SIGINT ? "\nsecond Ctrl-C: quitting at once; the work since the last snapshot is lost\n"
                          : "\nsecond SIGTERM: quitting at once; the work since the last snapshot is lost\n");
        set_handler(sig, SIG_DFL, 0);
        raise(sig); // delivered when this handler returns (the signal is blocked while it runs)
        return;
    }
    if (!g_stop)
        say(sig == SIGINT ? "\nCtrl-C: stopping at the next batch boundary (training or evaluation) after writing a "
                            "snapshot (exit status 75); press Ctrl-C again to quit at once, losing the work since "
                            "the last snapshot\n"
                          : "\nSIGTERM: stopping at the next batch boundary (training or evaluation) after writing a "
                            "snapshot (exit status 75)\n");
    g_stop = 1;
    g_stop_sig = sig;
}

// XCLIP_TEST_SIGNAL_AT = ITER:SIG (training), eval:BATCH:SIG (evaluation) or setup:SIG (raised at once: during
// the run's set-up).
static void read_test_hook(void) {
    g_test_at = 0;
    const char *v = getenv("XCLIP_TEST_SIGNAL_AT");
    if (!v || !*v) return;
    if (!strcmp(v, "setup:TERM") || !strcmp(v, "setup:INT")) {
        raise(v[6] == 'T' ? SIGTERM : SIGINT);
        return;
    }
    const bool eval = !strncmp(v, "eval:", 5);
    char *end;
    long long at = strtoll(eval ? v + 5 : v, &end, 10);
    const char *name = *end == ':' ? end + 1 : "";
    int sig = !strcmp(name, "TERM") ? SIGTERM : !strcmp(name, "INT") ? SIGINT : !strcmp(name, "USR1") ? SIGUSR1 : 0;
    if (at <= 0 || !sig) {
        fprintf(stderr, "warning: XCLIP_TEST_SIGNAL_AT = '%s' ignored (want ITER:SIG, eval:BATCH:SIG or setup:SIG, SIG one "
                        "of TERM, INT, USR1; setup: TERM or INT)\n", v);
        return;
    }
    g_test_point = eval ? SIGNAL_AT_EVAL_BATCH : SIGNAL_AT_TRAIN_ITER;
    g_test_at = at;
    g_test_sig = sig;
}

void signals_install(void) {
    // SA_RESTART: interrupted reads and writes resume, so I/O in flight does not fail because of the signal.
    set_handler(SIGINT, on_signal, SA_RESTART);
    set_handler(SIGTERM, on_signal, SA_RESTART);
    set_handler(SIGUSR1, on_signal, SA_RESTART);
    set_handler(SIGXFSZ, SIG_IGN, 0); // past `ulimit -f` a write fails with EFBIG (named by the error path), no kill
    read_test_hook();
}

void signals_uninstall(void) {
    set_handler(SIGINT, SIG_DFL, 0);
    set_handler(SIGTERM, SIG_DFL, 0);
    set_handler(SIGUSR1, SIG_DFL, 0);
    g_test_at = 0;
}

unsigned signals_poll(void) { return (g_stop ? SIGNAL_STOP : 0u) | (g_snapshot ? SIGNAL_SNAPSHOT : 0u); }

unsigned signals_poll_at(SignalPoint where, int64_t count) {
    if (g_test_at && where == g_test_point && count == g_test_at) raise(g_test_sig);
    return signals_poll();
}

int signals_stop_signal(void) { return g_stop ? (int)g_stop_sig : 0; }

void signals_clear(unsigned bits) {
    if (bits & SIGNAL_STOP) { g_stop = 0; g_stop_sig = 0; }
    if (bits & SIGNAL_SNAPSHOT) g_snapshot = 0;
}
