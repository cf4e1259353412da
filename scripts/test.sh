#!/usr/bin/env bash
# Runs the whole test suite: unit tests (no privileges) and integration tests
# (real namespaces on this kernel: needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN).
# Builds first if needed, so it also works on a fresh clone after set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/harness/kaharness ] || scripts/build.sh
cmake --build build -j "$(nproc)" >/dev/null
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
