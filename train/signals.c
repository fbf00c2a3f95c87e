// signals.c - see signals.h. The handler touches only sig_atomic_t flags.
#include "train/signals.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_stop, g_snapshot, g_stop_sig;

static void on_signal(int sig) {
    if (sig == SIGUSR1) {
        g_snapshot = 1;
    } else {
        g_stop = 1;
        g_stop_sig = sig;
    }
}

static void set_handler(int sig, void (*fn)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

void signals_install(void) {
    // SA_RESTART: interrupted reads and writes resume, so I/O in flight does not fail because of the signal.
    set_handler(SIGINT, on_signal, SA_RESTART | SA_RESETHAND);
    set_handler(SIGTERM, on_signal, SA_RESTART);
    set_handler(SIGUSR1, on_signal, SA_RESTART);
}

void signals_uninstall(void) {
    set_handler(SIGINT, SIG_DFL, 0);
    set_handler(SIGTERM, SIG_DFL, 0);
    set_handler(SIGUSR1, SIG_DFL, 0);
}

unsigned signals_poll(void) { return (g_stop ? SIGNAL_STOP : 0u) | (g_snapshot ? SIGNAL_SNAPSHOT : 0u); }

int signals_stop_signal(void) { return g_stop ? (int)g_stop_sig : 0; }

void signals_clear(unsigned bits) {
    if (bits & SIGNAL_STOP) { g_stop = 0; g_stop_sig = 0; }
    if (bits & SIGNAL_SNAPSHOT) g_snapshot = 0;
}
