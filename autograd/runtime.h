// runtime.h - process set-up shared by the programs: OpenBLAS's kernels and OpenMP's waiting.
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
//
//   int main(int argc, char **argv) {
//       xc_runtime_init(argc, argv);   // first thing: may re-execute the program
//       ...
#pragma once

void xc_runtime_init(int argc, char **argv);
// The OpenBLAS core family in use ("SkylakeX", ... or "auto" when OpenBLAS chose by itself).
const char *xc_blas_core(void);
