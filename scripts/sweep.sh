#!/usr/bin/env bash
# Measures the timing model against this kernel: a sweep of random connections
# on an idle machine, then the same with every core busy (stress-ng): calibrated from
# /proc/timer_list, from timer firings (timer_list hidden), and phase-blind. Prints
# the figures; needs root and a build.
#   scripts/sweep.sh [CONNECTIONS]   (default 500)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
bin=build/harness/kaharness
[ -x "$bin" ] || scripts/build.sh
if ! command -v stress-ng >/dev/null; then
  echo "installing stress-ng for the loaded run"
  apt-get install -y -qq stress-ng >/dev/null
fi
out=build/sweep
mkdir -p "$out"

run() {  # label, extra args...
  local label=$1; shift
  echo "== $label"
  "$bin" sweep -n "$n" --json "$out/$label.json" "$@" | sed -n '2,$p' || true
}

# The same run where /proc/timer_list cannot be read (as in a container): a private
# mount namespace with /dev/null over it, so the run calibrates from timer firings.
run_hidden() {  # label, extra args...
  local label=$1; shift
  echo "== $label"
  unshare -m --propagation private sh -c 'mount --bind /dev/null /proc/timer_list && exec "$@"' sh \
    "$bin" sweep -n "$n" --json "$out/$label.json" "$@" | sed -n '2,$p' || true
}

run idle-calibrated --seed 101
run_hidden idle-firings --seed 105
run idle-uncalibrated --seed 102 --no-calibration

# Loaded: one CPU hog per core, for the length of the two runs.
stress-ng --cpu "$(nproc)" --timeout 120s --quiet &
hog=$!
trap 'kill $hog 2>/dev/null || true; wait $hog 2>/dev/null || true' EXIT
sleep 1
run loaded-calibrated --seed 103
run_hidden loaded-firings --seed 106
run loaded-uncalibrated --seed 104 --no-calibration
echo "figures as JSON in $out/"
