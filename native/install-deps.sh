#!/usr/bin/env bash
# Install what building native/ needs, only when something is missing (Debian/Ubuntu: apt-get).
# Needs: a C and C++ compiler, cmake, pkg-config, libsndfile and libsoxr headers.
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v nm >/dev/null 2>&1 || missing+=(binutils)
if command -v pkg-config >/dev/null 2>&1; then
  pkg-config --exists sndfile || missing+=(libsndfile1-dev)
  pkg-config --exists soxr || missing+=(libsoxr-dev)
else
  missing+=(libsndfile1-dev libsoxr-dev)
fi
# AddressSanitizer's runtime comes with gcc on Debian (libasan); check that it links.
if command -v cc >/dev/null 2>&1 && ! echo 'int main(void){return 0;}' | cc -x c -fsanitize=address,undefined -o /dev/null - >/dev/null 2>&1; then
  missing+=(gcc)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
bash "$(dirname "$0")/apt-install.sh" native/install-deps.sh "${missing[@]}"
