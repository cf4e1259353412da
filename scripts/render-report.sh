#!/usr/bin/env bash
# Runs cases with captures, writes the HTML report, and renders it with headless
# Chromium (Debian's `chromium`, installed if missing) to a PNG, to check that the
# page renders and to look at it.
#   scripts/render-report.sh [OUT_DIR] [CASE ...]   (default: build/report-check, a few cases)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/report-check}
shift || true
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(cases/peer-power-off.toml cases/peer-reboot.toml cases/peer-alive.toml)
bin=build/harness/kaharness
[ -x "$bin" ] || scripts/build.sh
command -v chromium >/dev/null || apt-get install -y -qq chromium >/dev/null
rm -rf "$out" && mkdir -p "$out"
"$bin" run "${cases[@]}" --report "$out/report" --pcap "$out/pcap" --pcap-all --junit "$out/junit.xml" || true
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# No background networking: this machine has no network beyond package mirrors.
chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --user-data-dir="$profile" --window-size=1200,1600 \
  --screenshot="$out/report.png" "file://$(realpath "$out/report/index.html")" 2>/dev/null
test -s "$out/report.png"
echo "rendered: $out/report.png ($(stat -c %s "$out/report.png") bytes)"
