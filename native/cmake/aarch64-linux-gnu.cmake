# Cross-compiling libsame_edge, same-edge-native and the native tests for 64-bit ARM Linux with
# Debian's gcc-aarch64-linux-gnu, against the arm64 libsndfile and libsoxr of Debian's multiarch
# (`dpkg --add-architecture arm64`) and the manylinux aarch64 ai-edge-litert wheel's libLiteRt.so.
# `make native-arm64` installs all of it and runs:
#   cmake -S native -B build/native-arm64 -DCMAKE_TOOLCHAIN_FILE=native/cmake/aarch64-linux-gnu.cmake \
#         -DLITERT_LIBRARY=build/litert-arm64/libLiteRt.so
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Headers and libraries of the target only; programs (cmake, pkg-config) of the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# pkg-config answers for the arm64 .pc files (Debian's multiarch layout), never the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
