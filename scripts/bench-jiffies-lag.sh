#!/usr/bin/env bash
# How late this kernel's jiffies runs behind its tick boundaries (the tick interrupt
# that advances it can be late), idle and with every core busy: the figure behind
# Kernel::jiffies_lag_ms (harness/model/timing.h). Reads /proc/timer_list; needs root
# and a build. Asserts nothing.
#   scripts/bench-jiffies-lag.sh [ROUNDS]   (default 50 rounds of 400 readings each way)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-50}
bin=build/tests/kah_bench_jiffies_lag
[ -x "$bin" ] || scripts/build.sh
echo "== idle"
"$bin" "$rounds"
if ! command -v stress-ng >/dev/null; then
  echo "installing stress-ng for the loaded run"
  apt-get install -y -qq stress-ng >/dev/null
fi
echo "== every core busy (stress-ng --cpu $(nproc))"
stress-ng --cpu "$(nproc)" --timeout 600s --quiet &
hog=$!
trap 'kill "$hog" 2>/dev/null || true' EXIT
"$bin" "$rounds"
