#!/usr/bin/env bash
# Runs the whole test suite: unit tests (no privileges) and integration tests
# (real namespaces on this kernel: needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN).
# Builds first (warnings as errors), so it also works on a fresh clone after set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
