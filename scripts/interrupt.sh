#!/usr/bin/env bash
# scripts/interrupt.sh [N] [SIGNAL]: stops `kaharness run cases/ --json` N times (default
# 20) with SIGINT (or the signal given: INT or TERM) at a random moment of the run, and
# prints for each stop how long the run took to exit after the signal, its exit code,
# whether its JSON parses, and how its cases read (passed / interrupted / failed /
# errors). What a CI job cancelled at its time limit gets. Needs root (namespaces) and
# a build (scripts/setup.sh); run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
sig=${2:-INT}
case "$sig" in INT) want=130 ;; TERM) want=143 ;; *) echo "interrupt.sh: SIGNAL is INT or TERM" >&2; exit 2 ;; esac
bin=build/harness/kaharness
[ -x "$bin" ] || { echo "interrupt.sh: $bin missing: run scripts/setup.sh first" >&2; exit 2; }
out=$(mktemp -d /tmp/kah-interrupt-XXXXXX)
trap 'rm -rf "$out"' EXIT

printf '%-4s %9s %12s %5s %5s %s\n' run "signal_s" "exit_after_ms" code json "cases (passed/interrupted/failed/errors)"
worst=0
bad=0
for i in $(seq 1 "$n"); do
  # A moment anywhere in a library run (about 15 s idle): setup, waiting, judging.
  delay=$(python3 -c "import random; print(f'{random.uniform(0.3, 15.0):.2f}')")
  "$bin" run cases --json "$out/run.json" >"$out/run.log" 2>&1 &
  pid=$!
  sleep "$delay"
  sent=$(date +%s%N)
  kill -s "$sig" "$pid" 2>/dev/null || true
  code=0
  wait "$pid" || code=$?
  ended=$(date +%s%N)
  after_ms=$(( (ended - sent) / 1000000 ))
  summary=$(python3 - "$out/run.json" <<'EOF'
import json, sys
try:
    run = json.load(open(sys.argv[1]))
except Exception as e:
    print("no", "-"); sys.exit(0)
v = [c["verdict"] for c in run["cases"]]
print("yes", f'{v.count("pass")}/{v.count("interrupted")}/{v.count("fail")}/{v.count("error")}')
EOF
)
  json=${summary%% *}
  cases=${summary#* }
  printf '%-4s %9s %12s %5s %5s %s\n' "$i" "$delay" "$after_ms" "$code" "$json" "$cases"
  [ "$after_ms" -gt "$worst" ] && worst=$after_ms
  # A run that ended on its own before the signal exits 0 or 1; any other code is wrong.
  if [ "$json" != yes ] || { [ "$code" != "$want" ] && [ "$code" != 0 ] && [ "$code" != 1 ]; }; then bad=$((bad + 1)); fi
  rm -f "$out/run.json"
done
echo
echo "slowest exit after the signal: ${worst} ms; runs without a valid JSON or with an unexpected exit code: $bad of $n"
