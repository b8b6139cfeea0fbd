#!/usr/bin/env bash
# Install what cross-building native/ for 64-bit ARM and running it under emulation needs, only
# when something is missing (Debian: apt-get, with arm64 added as a foreign architecture):
# Debian's gcc/g++-aarch64-linux-gnu, the arm64 libsndfile and libsoxr headers (multiarch),
# qemu-user; and LiteRT's aarch64 libLiteRt.so, from the ai-edge-litert wheel of the same release
# as the venv's, into LITERT_DIR.
#   native/install-deps-arm64.sh VENV_PYTHON LITERT_DIR
set -euo pipefail
python=$1
litert_dir=$2

missing=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || missing+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
[ -e /usr/lib/aarch64-linux-gnu/pkgconfig/sndfile.pc ] || missing+=(libsndfile1-dev:arm64)
[ -e /usr/lib/aarch64-linux-gnu/pkgconfig/soxr.pc ] || missing+=(libsoxr-dev:arm64)

if [ ${#missing[@]} -gt 0 ]; then
  bash "$(dirname "$0")/apt-install.sh" native/install-deps-arm64.sh "${missing[@]}"
fi

version=$("$python" -c "from importlib.metadata import version; print(version('ai-edge-litert'))")
if [ ! -s "$litert_dir/libLiteRt.so" ] || [ "$(cat "$litert_dir/VERSION" 2>/dev/null)" != "$version" ]; then
  echo "native/install-deps-arm64.sh: LiteRT $version for aarch64 (the manylinux_2_27_aarch64 wheel)" >&2
  mkdir -p "$litert_dir"
  wheels=$(mktemp -d)
  trap 'rm -rf "$wheels"' EXIT
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_27_aarch64 \
    --python-version 3.11 --dest "$wheels" "ai-edge-litert==$version"
  "$python" - "$wheels" "$litert_dir" <<'PY'
import sys, zipfile
from pathlib import Path

wheel = next(Path(sys.argv[1]).glob("ai_edge_litert-*.whl"))
target = Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    (target / "libLiteRt.so.part").write_bytes(z.read("ai_edge_litert/libLiteRt.so"))
(target / "libLiteRt.so.part").replace(target / "libLiteRt.so")
PY
  echo "$version" > "$litert_dir/VERSION"
fi
