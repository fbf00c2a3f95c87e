// runtime.h - process set-up shared by the programs: OpenBLAS's kernels and OpenMP's waiting, the
// program's own path, and data files found from wherever a program runs.
//
// Debian's OpenBLAS 0.3.21 picks its kernels from the CPU model; on CPUs it does not know (common on
// virtual machines) it falls back to generic SSE3 ("Prescott") kernels, 3-5x slower than the AVX2 /
// AVX-512 ones the CPU can run. OpenBLAS reads OPENBLAS_CORETYPE once, when it is loaded, so:
//   - if OPENBLAS_CORETYPE is set, it is left exactly as it is (some machines set it on purpose);
//   - else, unless XCLIP_BLAS_AUTO=0, the program re-executes itself once with OPENBLAS_CORETYPE set to
//     the best kernel family the CPU supports (SkylakeX for AVX-512 F/BW/VL/DQ, Haswell for AVX2+FMA);
//   - OMP_WAIT_POLICY defaults to passive (idle OpenMP threads sleep instead of spinning): on a machine
//     shared with other work, spinning threads made small-op training several times slower;
//   - after start-up a small SGEMM is checked against a plain loop; if the chosen kernels miscompute,
//     the program re-executes itself once more with OPENBLAS_CORETYPE=Prescott and says so.
// A re-executed program keeps its arguments (argv[0] too) and its process name, so `pgrep -x xclip-train`,
// `ps -C xclip-train` and `pkill xclip-train` find it (executing /proc/self/exe would rename it "exe").
//
//   int main(int argc, char **argv) {
//       xc_runtime_init(argc, argv);   // first thing: may re-execute the program
//       ...
//
//   char vocab[4096], tried[2048];     // a file named relative to the source tree, from any directory
//   if (!xc_locate_file("../shared/clip/bpe_simple_vocab_16e6.txt.gz", vocab, sizeof vocab, tried, sizeof tried))
//       fprintf(stderr, "not found; looked at:\n%s", tried);
#pragma once
#include <stdbool.h>
#include <stddef.h>

void xc_runtime_init(int argc, char **argv);
// The OpenBLAS core family in use ("SkylakeX", ... or "auto" when OpenBLAS chose by itself).
const char *xc_blas_core(void);

// The running program's file (readlink /proc/self/exe) into buf; false if unknown or replaced since it started.
bool xc_exe_path(char *buf, size_t n);

// A data file a program needs (CLIP's vocabulary) found from wherever the program runs. An absolute path is
// only tried as it is; a relative one relative to the current directory, then to the program's directory
// (/proc/self/exe), that directory's parent (a build folder inside the source tree) and the source tree the
// program was built from, in that order. found (nfound bytes) gets the first readable one. tried (ntried
// bytes, cut if longer) gets every place looked at, one per line: "  /abs/path: No such file or directory".
bool xc_locate_file(const char *path, char *found, size_t nfound, char *tried, size_t ntried);
