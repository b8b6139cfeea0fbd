#!/usr/bin/env bash
# Install Debian packages for native/install-deps*.sh: as root, through sudo, or say how.
#   native/apt-install.sh CALLER PACKAGE...   (a PACKAGE:arm64 adds arm64 as a foreign architecture)
set -euo pipefail
caller=$1
shift
echo "$caller: installing $*" >&2
if [ "$(id -u)" = 0 ]; then
  SUDO=
elif command -v sudo >/dev/null 2>&1; then
  SUDO=sudo
else
  echo "$caller: missing $*; run as root: apt-get update && apt-get install -y $*" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$caller: missing $* and no apt-get: install them with your package manager" >&2
  exit 1
fi
case " $* " in
  *:arm64\ *) dpkg --print-foreign-architectures | grep -qx arm64 || $SUDO dpkg --add-architecture arm64 ;;
esac
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "$@"
