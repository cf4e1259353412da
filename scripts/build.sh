#!/usr/bin/env bash
# Configures and builds kaharness into build/ (tests included). Warnings are errors
# here and in CI (KAH_WERROR); a plain `cmake` build leaves them warnings.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKAH_WERROR=ON >/dev/null
cmake --build build -j "$(nproc)"
