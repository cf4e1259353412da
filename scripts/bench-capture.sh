#!/usr/bin/env bash
# What live captures cost: the same keepalive workload (connections in pairs of
# namespaces, a few request/reply rounds, then 3.5 s idle with probes every second)
# run without captures and with one capture on each veth end, printing wall time,
# CPU (getrusage), the capture loop's CPU, frames, probes and drops. Prints figures;
# asserts nothing. Needs root, like the integration tests.
#
#   scripts/bench-capture.sh            # 20 pairs x 10 connections = 200 connections
#   KAH_BENCH_PAIRS=100 KAH_BENCH_CONNECTIONS=2 KAH_BENCH_ROUNDS=200 KAH_BENCH_REPEATS=3 scripts/bench-capture.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench-capture.sh: needs root (network namespaces and packet sockets)" >&2
  exit 3
fi
[ -d build ] || scripts/build.sh
cmake --build build -j "$(nproc)" --target kah_integration_tests >/dev/null
exec build/tests/kah_integration_tests "[bench]"
