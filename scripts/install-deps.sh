#!/usr/bin/env bash
# Installs the Debian 12 packages xclip.c needs. Idempotent; run as root.
#   scripts/install-deps.sh          build + tests: compiler, CMake, OpenBLAS, HDF5, FFmpeg, zlib, and Debian's
#                                    PyTorch 1.13 + NumPy + h5py (about 1.1 GB), which only test_export_torch
#                                    uses, to check the .pth files xclip-export writes (scripts/test.sh);
#                                    gnuplot-nox for the plots of experiments/run (and its tests);
#                                    Open MPI for data-parallel training (mpirun; its tests)
#   scripts/install-deps.sh --demo   build and run only, no Python packages: what the programs and the demo
#                                    need (scripts/demo.sh); the test suite then fails test_export_torch
#   scripts/install-deps.sh --torch  the default set plus torchvision, used by the parity fixture scripts
#   ... --list                       print the packages of that set, one per line, and install nothing
set -euo pipefail
mode="" list=0
for a in "$@"; do
  case "$a" in
    --demo|--torch) mode=$a;;
    --list) list=1;;
    *) echo "usage: scripts/install-deps.sh [--demo | --torch] [--list]" >&2; exit 2;;
  esac
done
pkgs=(build-essential cmake pkg-config
      libopenblas-openmp-dev          # OpenMP build of OpenBLAS: one thread pool shared with our loops
      libhdf5-dev zlib1g-dev
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg)
if [ "$mode" != "--demo" ]; then pkgs+=(python3-torch python3-numpy python3-h5py); fi  # test_export_torch
if [ "$mode" != "--demo" ]; then pkgs+=(gnuplot-nox); fi  # experiments/run's plots (not needed by the demo)
if [ "$mode" != "--demo" ]; then pkgs+=(libopenmpi-dev openmpi-bin); fi  # optional: mpirun -np N xclip-train
if [ "$mode" = "--torch" ]; then pkgs+=(python3-torchvision); fi
if [ "$list" -eq 1 ]; then printf '%s\n' "${pkgs[@]}"; exit 0; fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "install-deps: all ${#pkgs[@]} packages present"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "HINT: run as root (or: sudo apt-get install ${missing[*]})" >&2; exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
