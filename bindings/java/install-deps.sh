#!/usr/bin/env bash
# Install what building bindings/java needs, only when something is missing (Debian/Ubuntu: apt-get):
# a JDK 17 or later (javac, jar, the JNI headers), JUnit 5's console launcher, Debian's kotlin and cmake.
set -euo pipefail

missing=()
if ! command -v javac >/dev/null 2>&1 || ! command -v jar >/dev/null 2>&1 ||
   [ "$(javac -version 2>&1 | sed -E 's/^javac ([0-9]+).*/\1/')" -lt 17 ] 2>/dev/null; then
  missing+=(openjdk-17-jdk-headless)
fi
[ -f "${JUNIT_JAR:-/usr/share/java/junit-platform-console-standalone.jar}" ] || missing+=(junit5)
command -v kotlinc >/dev/null 2>&1 || missing+=(kotlin)  # the docs' Kotlin example, compiled by the tests
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v cc >/dev/null 2>&1 || missing+=(gcc)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
bash "$root/native/apt-install.sh" bindings/java/install-deps.sh "${missing[@]}"
