#!/usr/bin/env bash
# The Java binding of libsame_edge, built into build/java (each step only when its inputs changed):
#   native/                libsame_edge_jni.so and se_push_bench (CMake, against build/native)
#   classes/, same-edge.jar  the ai.sameedge sources (javac --release 17 -Werror -Xlint:all -Xdoclint:all,-missing)
#   test-classes/          the JUnit 5 tests;  bench-classes/: bench/Bench.java
# Needs `make native` (build/native/libsame_edge.so) and bindings/java/install-deps.sh's packages.
#
#   bindings/java/build.sh                  build
#   bindings/java/build.sh test [ARGS...]   build, then run the tests (JUnit's console launcher): -D, -X and -ea
#                                           ARGS go to the JVM (-Dsameedge.data=DIR, as tests/test_java.py
#                                           passes), the others to the launcher
#   bindings/java/build.sh bench MODEL_DIR [N] [THREADS]   build, then time C and Java pushes
#   bindings/java/build.sh java [ARGS...]   build, then run java with the library on its path
#   bindings/java/build.sh kotlin MODEL_DIR build, then compile (kotlinc) and run examples/Roundtrip.kt
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${SAME_EDGE_JAVA_BUILD:-$root/build/java}
native_build=${SAME_EDGE_BUILD_DIR:-$root/build/native}
junit=${JUNIT_JAR:-/usr/share/java/junit-platform-console-standalone.jar}
javac_flags=(--release 17 -Werror -Xlint:all -encoding UTF-8)
# The JDK of the javac on PATH, for CMake's FindJNI (which may otherwise pick another JDK under /usr/lib/jvm).
export JAVA_HOME=${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")}

if [ ! -f "$native_build/libsame_edge.so" ]; then
  echo "build.sh: $native_build/libsame_edge.so is missing: run \`make native\` first" >&2
  exit 1
fi

# Succeeds when $1 is missing or older than a file among (or under) the other arguments.
stale() {
  local target=$1
  shift
  [ ! -e "$target" ] || [ -n "$(find "$@" -newer "$target" -type f -print -quit)" ]
}

# javac OUT_DIR CLASSPATH SOURCE_DIR [FLAGS...]: every .java under SOURCE_DIR, when one is newer than OUT_DIR/.stamp.
compile() {
  local dest=$1 classpath=$2 sources=$3
  shift 3
  if stale "$dest/.stamp" "$sources" "$here/build.sh"; then
    rm -rf "$dest"
    mkdir -p "$dest"
    find "$sources" -name '*.java' | sort > "$dest/.sources"
    javac "${javac_flags[@]}" "$@" -cp "$classpath" -d "$dest" "@$dest/.sources"
    touch "$dest/.stamp"
  fi
}

build() {
  mkdir -p "$out"
  exec 9>"$out.lock"
  flock 9  # one build at a time (pytest-xdist workers, make)
  if [ ! -f "$out/native/CMakeCache.txt" ] || stale "$out/native/CMakeCache.txt" "$here/CMakeLists.txt"; then
    cmake -S "$here" -B "$out/native" -DSAME_EDGE_BUILD_DIR="$native_build" > /dev/null
  fi
  cmake --build "$out/native" -j2 > "$out/native-build.log" || { cat "$out/native-build.log" >&2; exit 1; }
  compile "$out/classes" "" "$here/src/main/java" "-Xdoclint:all,-missing"
  if stale "$out/same-edge.jar" "$out/classes"; then
    jar --create --file "$out/same-edge.jar" -C "$out/classes" ai
  fi
  compile "$out/test-classes" "$out/same-edge.jar:$junit" "$here/src/test/java"
  compile "$out/bench-classes" "$out/same-edge.jar" "$here/bench"
  exec 9>&-
}

java_run() {
  java -Djava.library.path="$out/native" "$@"
}

build
case "${1:-}" in
  "") ;;
  test)
    shift
    jvm=() launcher=()
    for arg in "$@"; do
      case "$arg" in -D* | -X* | -ea) jvm+=("$arg") ;; *) launcher+=("$arg") ;; esac
    done
    java_run "${jvm[@]}" -jar "$junit" --class-path "$out/same-edge.jar:$out/test-classes" --scan-class-path "$out/test-classes" \
      --disable-banner "${launcher[@]}"
    ;;
  bench)
    shift
    "$out/native/se_push_bench" "$@"
    java_run -cp "$out/same-edge.jar:$out/bench-classes" ai.sameedge.bench.Bench "$@"
    ;;
  java)
    shift
    java_run "$@"
    ;;
  kotlin)
    # Kotlin's AutoCloseable.use is in kotlin-stdlib-jdk7 (Debian's kotlin package: 1.3.31).
    shift
    kotlin_cp="$out/same-edge.jar:/usr/share/java/kotlin-stdlib.jar:/usr/share/java/kotlin-stdlib-jdk7.jar"
    if stale "$out/kotlin/roundtrip.jar" "$here/examples/Roundtrip.kt" "$out/same-edge.jar"; then
      mkdir -p "$out/kotlin"
      kotlinc -jvm-target 1.8 -cp "$kotlin_cp" "$here/examples/Roundtrip.kt" -d "$out/kotlin/roundtrip.jar" 2>&1 |
        grep -v 'Xverify:none' >&2 || true
    fi
    java_run -cp "$out/kotlin/roundtrip.jar:$kotlin_cp" RoundtripKt "$@"
    ;;
  *)
    echo "usage: $0 [test [ARGS...] | bench MODEL_DIR [N] [THREADS] | java ARGS... | kotlin MODEL_DIR]" >&2
    exit 2
    ;;
esac
