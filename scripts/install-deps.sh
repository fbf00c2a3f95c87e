#!/usr/bin/env bash
# Installs every Debian 12 package xclip.c needs to build and test. Idempotent; run as root.
#   scripts/install-deps.sh          build + tests (compiler, CMake, OpenBLAS, HDF5, FFmpeg, zlib, and
#                                    Debian's PyTorch 1.13 + NumPy + h5py, which test_export_torch uses to
#                                    check the .pth files xclip-export writes)
#   scripts/install-deps.sh --torch  also torchvision, used by the parity fixture scripts
set -euo pipefail
pkgs=(build-essential cmake pkg-config
      libopenblas-openmp-dev          # OpenMP build of OpenBLAS: one thread pool shared with our loops
      libhdf5-dev zlib1g-dev
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
      python3-torch python3-numpy python3-h5py)   # test_export_torch: torch.load of our .pth files
if [ "${1:-}" = "--torch" ]; then pkgs+=(python3-torchvision); fi
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
