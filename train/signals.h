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
// A second SIGINT while the first is pending kills the process at once (SA_RESETHAND): Ctrl-C twice
// still works when a snapshot write hangs.
#pragma once

enum {
    SIGNAL_STOP = 1u,       // SIGINT or SIGTERM: write a snapshot and stop
    SIGNAL_SNAPSHOT = 2u,   // SIGUSR1: write a snapshot and continue
};

// Exit status of a run that stopped on request after writing a snapshot (EX_TEMPFAIL of sysexits.h:
// "temporary failure, try again": resume with --resume auto).
#define XC_EXIT_SNAPSHOT_STOP 75

// Install the handlers for SIGINT, SIGTERM and SIGUSR1 (idempotent; re-arms the SIGINT reset).
void signals_install(void);
// Restore the default dispositions.
void signals_uninstall(void);
// The pending requests (SIGNAL_* bits); does not clear them.
unsigned signals_poll(void);
// The signal number that last asked to stop (SIGINT / SIGTERM), 0 if none; for messages.
int signals_stop_signal(void);
// Clear the given request bits.
void signals_clear(unsigned bits);
