#!/usr/bin/env bash
# How long after the tick of the jiffy it reads a timer callback runs: the figure behind
# RtoRules::callback_read_late_ms (harness/model/timing.cc). Records the kernel's
# timer:timer_expire_entry events (jiffies as the callback read it, CLOCK_MONOTONIC
# stamp) in a private tracefs instance that it removes, while one library run goes on
# (or, with --idle, while nothing does), then places each callback on the tick grid
# (ticks start at multiples of the tick on CLOCK_MONOTONIC) and counts those that ran
# 1 ms or more, and 4 ms (a tick) or more, after the tick of the jiffy they read.
# Needs root, tracefs and a build; HZ from /proc/timer_list's calibration is not
# needed: give it if not 250. Asserts nothing.
#   scripts/bench-callback-clock.sh [--idle SECONDS] [--hz HZ]
set -euo pipefail
cd "$(dirname "$0")/.."
idle=""; hz=250
while [ $# -gt 0 ]; do
  case "$1" in
    --idle) idle=$2; shift 2 ;;
    --hz) hz=$2; shift 2 ;;
    *) echo "usage: $0 [--idle SECONDS] [--hz HZ]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-callback-clock.sh: needs root (tracefs)" >&2; exit 3; }
tracefs=/sys/kernel/tracing
[ -d "$tracefs/instances" ] || { echo "bench-callback-clock.sh: no tracefs at $tracefs" >&2; exit 3; }
bin=build/harness/kaharness
[ -n "$idle" ] || [ -x "$bin" ] || scripts/build.sh
inst=$tracefs/instances/kaharness-callback-clock-$$
out=$(mktemp -d)
reader=""
cleanup() {
  [ -z "$reader" ] || kill "$reader" 2>/dev/null || true
  if [ -d "$inst" ]; then
    echo 0 > "$inst/events/timer/timer_expire_entry/enable" || true
    rmdir "$inst" || true
  fi
  rm -rf "$out"
}
trap cleanup EXIT
mkdir "$inst"
echo mono > "$inst/trace_clock"
echo 16384 > "$inst/buffer_size_kb"
echo 1 > "$inst/events/timer/timer_expire_entry/enable"
cat "$inst/trace_pipe" > "$out/trace" &
reader=$!
if [ -n "$idle" ]; then
  echo "== idle for $idle s"
  sleep "$idle"
else
  echo "== during one run of the library ($bin run cases/)"
  "$bin" run cases/ > "$out/run.log" 2>&1 || true
  grep " cases: " "$out/run.log" | tail -n 1
fi
sleep 1
kill "$reader"; wait "$reader" 2>/dev/null || true; reader=""
# Each line: "... [CPU] flags SECONDS.MICROS: timer_expire_entry: ... function=F now=J baseclk=B"
awk -v tick_us=$((1000000 / hz)) '
  /timer_expire_entry/ {
    for (i = 1; i <= NF; i++) {
      if ($i ~ /^[0-9]+\.[0-9]+:$/) { split(substr($i, 1, length($i) - 1), t, "."); us = t[1] * 1000000 + t[2] }
      if ($i ~ /^now=/) now = substr($i, 5)
      if ($i ~ /^function=/) fn = substr($i, 10)
    }
    n++; T[n] = us; J[n] = now; F[n] = fn
    k = sprintf("%.0f", now - int(us / tick_us)); K[k]++  # a string key: awk prints big numbers as 4.29e+09
  }
  END {
    if (n == 0) { print "no timer callbacks recorded"; exit 1 }
    best = 0; for (k in K) if (K[k] > best) { best = K[k]; off = k + 0 }
    for (i = 1; i <= n; i++) {
      d = T[i] - (J[i] - off) * tick_us   # us after the tick of the jiffy read
      if (d >= 1000) late1++
      if (d >= tick_us) { late_tick++; if (F[i] ~ /tcp_/) tcp++ }
      if (d > max) max = d
    }
    printf "%d timer callbacks; %d ran >= 1 ms after the tick of the jiffy they read, %d a tick or more (%.2f %%; %d of them TCP timers); the latest %.3f ms\n", n, late1, late_tick, 100 * late_tick / n, tcp, max / 1000
  }' "$out/trace"
