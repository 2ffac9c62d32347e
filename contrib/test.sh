#!/bin/bash
# Quick start, part 2: install what is missing, build, and run the whole test suite twice:
# a gcc build with warnings as errors, then a clang build with AddressSanitizer,
# UndefinedBehaviorSanitizer and the libFuzzer targets.  Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."

contrib/setup.sh test || exit 1
jobs=$(nproc)
status=0

echo "== gcc, -Werror"
# Build trees of its own (demo.sh configures build/ without tests), tests always on.
cmake -S . -B build-gcc -DCMAKE_C_COMPILER=gcc -DTETHER_WERROR=ON -DTETHER_TESTS=ON >/dev/null &&
    cmake --build build-gcc -j"$jobs" >/dev/null || exit 1
(cd build-gcc && ctest --output-on-failure -j"$jobs") || status=1

echo "== clang, address and undefined sanitizers, fuzzers"
cmake -S . -B build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DTETHER_WERROR=ON \
    -DTETHER_SANITIZE=ON -DTETHER_FUZZ=ON -DTETHER_TESTS=ON >/dev/null &&
    cmake --build build-asan -j"$jobs" >/dev/null || exit 1
(cd build-asan && ctest --output-on-failure -j"$jobs") || status=1

exit $status
