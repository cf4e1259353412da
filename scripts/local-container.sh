#!/usr/bin/env bash
# The case library under the local backend in an emulated CAP_NET_ADMIN-only
# container (build/tests/kah_contained: a fresh network namespace with lo up, own PID
# and mount namespaces, /proc/timer_list hidden, CAP_SYS_ADMIN dropped, a seccomp
# filter refusing namespaces as Docker's default profile does), RUNS times. Prints per
# run: backend, cases run / skipped / passed, wall time, calibration and the median and
# largest window widths of the connections that ran. Needs root and a build.
#   scripts/local-container.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
[ -x build/tests/kah_contained ] || scripts/build.sh
out=build/local-container
rm -rf "$out" && mkdir -p "$out"
cp build/harness/kaharness "$out/" && cp -r cases "$out/cases"
for i in $(seq 1 "$runs"); do
  (cd "$out" && ../tests/kah_contained ./kaharness run cases --json "run-$i.json" >"run-$i.log" 2>&1) || true
  python3 - "$out/run-$i.json" "$i" <<'PY'
import json, statistics, sys
run = json.load(open(sys.argv[1]))
cases = run["cases"]
verdicts = [c["verdict"] for c in cases]
widths = [c2["expected"]["latest_ms"] - c2["expected"]["earliest_ms"]
          for c in cases for c2 in c["connections"]
          if c2["expected"]["latest_ms"] is not None and c2["expected"]["outcome"] != "alive"]
print(f"run {sys.argv[2]}: backend {run['backend']}, {len(cases) - verdicts.count('skip')} of {len(cases)} cases ran, "
      f"{verdicts.count('skip')} skipped, {verdicts.count('pass')} passed, "
      f"{verdicts.count('fail')} failed, {verdicts.count('error')} errors, {verdicts.count('not-judged')} not judged; {run['wall_ms'] / 1000:.1f} s; "
      f"calibration {run['calibration']} ({run['calibration_note']}); "
      f"window widths median {statistics.median(widths):.1f} ms, max {max(widths):.1f} ms over {len(widths)} connections")
PY
done
