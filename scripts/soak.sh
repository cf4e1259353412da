#!/usr/bin/env bash
# Soak: can CI trust a verdict? Runs the case library N times on an idle machine, N
# times with every core busy (stress-ng --cpu $(nproc), started here and stopped by
# its pid), and N/5 times (at least once) two runs at once; then prints every false
# verdict (a connection whose verdict is fail or error) per case and connection, then
# apart those not judged (late while the machine held a CPU; not red), and for
# each case/connection the smallest margin seen to each edge of its window:
# observed - earliest and latest - observed, in ms (negative: outside). Copies of
# one connection ("c1-v4#2") count as observations of "c1-v4". Also writes the margins
# page (histograms of those margins, misses in red) to build/soak/margins.html. Needs root.
#
#   scripts/soak.sh [N] [CASES...]   (default N 10, cases/; JSONs kept in build/soak/)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(cases/)
if [ "$(id -u)" -ne 0 ]; then
  echo "soak.sh: needs root (network namespaces)" >&2
  exit 3
fi
bin=build/harness/kaharness
[ -x "$bin" ] || scripts/build.sh
if ! command -v stress-ng >/dev/null; then
  echo "installing stress-ng for the loaded runs"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null
fi
out=build/soak
rm -rf "$out" && mkdir -p "$out"
# One binary for the whole soak, even if build/ is rebuilt meanwhile.
cp "$bin" "$out/kaharness"
bin=$out/kaharness

hog=""
stop_hog() {
  if [ -n "$hog" ]; then kill "$hog" 2>/dev/null || true; wait "$hog" 2>/dev/null || true; hog=""; fi
}
trap stop_hog EXIT

one() {  # label: one run of the library, its JSON in $out/label.json; the exit code is not ours
  local rc=0
  "$bin" run "${cases[@]}" --json "$out/$1.json" >"$out/$1.log" 2>&1 || rc=$?
  # 0 all passed, 1 a case failed: both leave a JSON. 2 and 3 mean it never ran.
  if [ "$rc" -gt 1 ]; then echo "soak.sh: run $1 exited $rc (see $out/$1.log)" >&2; exit "$rc"; fi
  echo "  $1: $(grep " cases: " "$out/$1.log" | tail -n 1)"
}

echo "== idle: $n runs (load now $(cut -d' ' -f1-3 /proc/loadavg))"
for i in $(seq 1 "$n"); do one "idle-$i"; done

echo "== loaded: $n runs with stress-ng --cpu $(nproc)"
stress-ng --cpu "$(nproc)" --quiet &
hog=$!
sleep 1
for i in $(seq 1 "$n"); do one "loaded-$i"; done
stop_hog

pairs=$(( n / 5 )); [ "$pairs" -ge 1 ] || pairs=1
echo "== two at once: $pairs times"
for i in $(seq 1 "$pairs"); do
  one "pair-$i-a" & a=$!
  one "pair-$i-b" & b=$!
  wait "$a"; wait "$b"
done

echo
# The tables and the margins page come from kaharness itself (harness/report/margins.h),
# the same code as `kaharness sweep --report`. Exit 1 there means a false verdict.
"$bin" margins "$out"/*.json --html "$out/margins.html" || true
echo "JSONs and logs in $out/"
