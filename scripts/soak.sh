#!/usr/bin/env bash
# Soak: can CI trust a verdict? Runs the case library N times on an idle machine, N
# times with every core busy (stress-ng --cpu $(nproc), started here and stopped by
# its pid), and N/5 times (at least once) two runs at once; then prints every false
# verdict (a connection whose verdict is not pass) per case and connection, and for
# each case/connection the smallest margin seen to each edge of its window:
# observed - earliest and latest - observed, in ms (negative: outside). Copies of
# one connection ("c1-v4#2") count as observations of "c1-v4". Needs root.
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
  echo "  $1: $(tail -n 1 "$out/$1.log")"
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
/usr/bin/python3 - "$out"/*.json <<'PY'
import json, math, re, sys
from collections import defaultdict
false = defaultdict(list)      # (case, connection) -> ["idle-2: fail: message", ...]
margin = {}                    # (case, connection) -> [min to earliest, min to latest, n, run of each]
for path in sys.argv[1:]:
    run = re.sub(r".*/|\.json$", "", path)
    for c in json.load(open(path))["cases"]:
        for r in c["connections"]:
            key = (c["name"], re.sub(r"#\d+$", "", r["name"]))
            if r["verdict"] != "pass":
                false[key].append(f"{run}: {r['verdict']}" + (f": {r['message']}" if r.get("message") else ""))
            e, o = r["expected"], r["observed"]
            lo, hi, at = e.get("earliest_ms"), e.get("latest_ms"), o.get("at_ms")
            if e["outcome"] == "alive" or lo is None or at is None:
                continue  # alive: no window edge to be near
            m = margin.setdefault(key, [math.inf, math.inf, 0, "", ""])
            m[2] += 1
            if at - lo < m[0]: m[0], m[3] = at - lo, run
            if hi is not None and hi - at < m[1]: m[1], m[4] = hi - at, run
runs = len(sys.argv) - 1
print(f"false verdicts over {runs} runs: {sum(map(len, false.values()))}")
for (case, conn), why in sorted(false.items()):
    print(f"  {case}/{conn}: {len(why)}")
    for w in why[:5]: print(f"      {w}")
    if len(why) > 5: print(f"      ... {len(why) - 5} more")
print(f"\nsmallest margin to each window edge (ms; negative = outside), over every run:")
print(f"  {'case/connection':<48}{'n':>4}{'observed-earliest':>19}  {'run':<10}{'latest-observed':>16}  {'run':<10}")
f = lambda v: "inf" if v == math.inf else f"{v:.1f}"
for (case, conn), (lo, hi, cnt, rlo, rhi) in sorted(margin.items(), key=lambda kv: min(kv[1][0], kv[1][1])):
    print(f"  {case + '/' + conn:<48}{cnt:>4}{f(lo):>19}  {rlo:<10}{f(hi):>16}  {rhi:<10}")
PY
echo "JSONs and logs in $out/"
