#!/usr/bin/env bash
# Scale: thousands of real connections watched by one event loop. Runs a sweep of
# N random connections in namespace pairs of PER_CASE connections each and prints
# the sweep's figures plus the process's wall time, CPU time and peak memory.
#   scripts/bench-scale.sh [N] [PER_CASE]   (default 2000 connections, 250 per pair)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
per=${2:-250}
bin=build/harness/kaharness
[ -x "$bin" ] || scripts/build.sh
/usr/bin/time -f "process: %e s wall, %U s user, %S s sys, %M KB peak RSS" \
  "$bin" sweep -n "$n" --per-case "$per" --seed 7 | sed -n '2,6p'
