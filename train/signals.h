// signals.h - stop and snapshot requests from the outside (Ctrl-C, a scheduler's SIGTERM, kill -USR1).
//
// The handlers only set flags (sigaction, async-signal-safe: a volatile sig_atomic_t store); the training
// loop polls them between steps, writes a snapshot, and exits with XC_EXIT_SNAPSHOT_STOP, so a job
// scheduler can tell "stopped cleanly, resume me" from success (0) and failure (1).
//
//   signals_install();
//   for (;;) {
//       ...one training step...
//       unsigned req = signals_poll();
//       if (req & SIGNAL_SNAPSHOT) { write a snapshot; signals_clear(SIGNAL_SNAPSHOT); }   // SIGUSR1: go on
//       if (req & SIGNAL_STOP) { write a snapshot; return XC_EXIT_SNAPSHOT_STOP; }           // SIGINT/SIGTERM
//   }
//
// The first SIGINT / SIGTERM says at once (on stderr) that the run stops at the next batch boundary after a
// snapshot; the training loop and the evaluation loop both poll, and a run checks once more right after its
// set-up (a signal during it stops the run before its first batch). A second SIGINT (or SIGTERM) while the
// first is pending says so and kills the process by that signal (shell status 130 / 143): Ctrl-C twice still
// works when a snapshot write or the set-up hangs, and loses the work since the last snapshot.
//
// Testing hook: XCLIP_TEST_SIGNAL_AT="ITER:SIG" raises SIG (TERM, INT or USR1) at the process right after its
// ITER-th training batch of the whole run, "eval:BATCH:SIG" after the BATCH-th batch of an evaluation,
// "setup:TERM" / "setup:INT" when the handlers are installed (during the set-up), so tests drive the real signal
// path deterministically. The loops report their counts through signals_poll_at.
#pragma once
#include <stdbool.h>
#include <stdint.h>

enum {
    SIGNAL_STOP = 1u,       // SIGINT or SIGTERM: write a snapshot and stop
    SIGNAL_SNAPSHOT = 2u,   // SIGUSR1: write a snapshot and continue
};

// The places a loop polls at (for the testing hook).
typedef enum { SIGNAL_AT_TRAIN_ITER, SIGNAL_AT_EVAL_BATCH } SignalPoint;

// Exit status of a run that stopped on request after writing a snapshot (EX_TEMPFAIL of sysexits.h:
// "temporary failure, try again": resume with --resume auto).
#define XC_EXIT_SNAPSHOT_STOP 75

// Install the handlers for SIGINT, SIGTERM and SIGUSR1 (idempotent) and read the testing hook.
void signals_install(void);
// Restore the default dispositions.
void signals_uninstall(void);
// The pending requests (SIGNAL_* bits); does not clear them.
unsigned signals_poll(void);
// signals_poll from a loop that has just finished its count-th batch (training: of the run, evaluation: of this
// evaluation), after the testing hook had its chance to raise.
unsigned signals_poll_at(SignalPoint where, int64_t count);
// The signal number that last asked to stop (SIGINT / SIGTERM), 0 if none; for messages.
int signals_stop_signal(void);
// Clear the given request bits.
void signals_clear(unsigned bits);
