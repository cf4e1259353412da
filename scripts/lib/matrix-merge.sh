#!/usr/bin/env bash
# Merges the kernel matrix's results (scripts/kernel-matrix.sh) into one JUnit file
# and one table with a kernel column, as markdown and as a self-contained HTML page.
#   scripts/lib/matrix-merge.sh DIR     reads DIR/<kernel>/{meta,run,sweep}.json and
#                                       junit.xml; writes DIR/junit.xml, DIR/matrix.md,
#                                       DIR/index.html
set -euo pipefail
dir=${1:?usage: matrix-merge.sh DIR (the --out folder of kernel-matrix.sh)}
command -v jq >/dev/null || { echo "matrix-merge.sh: needs jq (apt-get install jq)" >&2; exit 3; }

kernels=()
for meta in "$dir"/*/meta.json; do
  [ -f "$meta" ] && kernels+=("$(dirname "$meta")")
done
[ ${#kernels[@]} -gt 0 ] || { echo "matrix-merge.sh: no DIR/<kernel>/meta.json in $dir" >&2; exit 2; }

# One object per kernel: what the script measured (meta.json) and what the run and
# the sweep say. Widths are latest - earliest of each connection's outcome window.
summary() {  # kernel folder
  local k=$1 run=$1/run.json sweep=$1/sweep.json
  [ -f "$run" ] || run=/dev/null
  [ -f "$sweep" ] || sweep=/dev/null
  jq -n --slurpfile meta "$k/meta.json" --slurpfile run "$run" --slurpfile sweep "$sweep" \
     --arg exit "$(cat "$k/run.exit" 2>/dev/null || echo -)" \
     --arg validate "$(cat "$k/validate.exit" 2>/dev/null || echo -)" '
    def median: sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
    def r1: if . == null then null else (. * 10 | round) / 10 end;
    ($run[0] // {}) as $r
    | [$r.cases[]?.connections[]? | .expected | select(.latest_ms != null)
       | .latest_ms - .earliest_ms] as $widths
    | $meta[0] + {
        run_exit: $exit,
        validate_exit: $validate,
        calibration: ($r.calibration // "-"),
        calibration_note: ($r.calibration_note // ""),
        hz: ($r.hz // null),
        run_s: (if $r.wall_ms then $r.wall_ms / 1000 | r1 else null end),
        cases: [$r.cases[]? | {name, verdict}],
        passed: [$r.cases[]? | select(.verdict == "pass")] | length,
        failed: [$r.cases[]? | select(.verdict == "fail")] | length,
        errors: [$r.cases[]? | select(.verdict == "error")] | length,
        not_judged: [$r.cases[]? | select(.verdict == "not-judged")] | length,
        skipped: [$r.cases[]? | select(.verdict == "skip" or .verdict == "interrupted")] | length,
        connections: [$r.cases[]?.connections[]?] | length,
        median_width_ms: ($widths | median | r1),
        max_width_ms: ($widths | max | r1),
        sweep: ($sweep[0] // null)
      }'
}
all=$(for k in "${kernels[@]}"; do summary "$k"; done | jq -s 'sort_by(.where != "native", .kernel)')

# JUnit: every kernel's testsuites, renamed <kernel>/<case> (classname <kernel>.<case>)
# so that one CI view holds them all; the totals are the sums.
{
  totals=$(for k in "${kernels[@]}"; do
    [ -f "$k/junit.xml" ] || continue
    sed -n 's/^<testsuites [^>]*tests="\([0-9]*\)" failures="\([0-9]*\)" errors="\([0-9]*\)".*/\1 \2 \3/p' "$k/junit.xml"
  done | awk '{ t += $1; f += $2; e += $3 } END { printf "tests=\"%d\" failures=\"%d\" errors=\"%d\"", t, f, e }')
  echo '<?xml version="1.0" encoding="UTF-8"?>'
  echo "<testsuites name=\"kaharness kernel matrix\" $totals>"
  for k in "${kernels[@]}"; do
    [ -f "$k/junit.xml" ] || continue
    kernel=$(basename "$k")
    sed -n '/^<testsuites /,/^<\/testsuites>/p' "$k/junit.xml" | sed '1d;$d' |
      sed -e "s|<testsuite name=\"|<testsuite name=\"$kernel/|" -e "s|classname=\"|classname=\"$kernel.|g"
  done
  echo '</testsuites>'
} > "$dir/junit.xml"

# The tables, as markdown; the HTML page is the same rows.
rows=$(jq -r '
  def f: if . == null then "-" else tostring end;
  def r1: (. * 10 | round) / 10;
  def sw: if .sweep == null then "-" else
    "\(.sweep.misses) of \(.sweep.connections); \(.sweep.median_width_ms | r1) / \(.sweep.max_width_ms | r1)" end;
  def win: if .calibration == "none" then "phase-blind" elif .calibration == "-" then "-"
           else "calibrated (\(.calibration))" end;
  "| kernel | where | clock | windows | cases passed / skipped / failed / errors | connections | window width median / max (ms) | sweep: misses; width median / max (ms) | validate (exit) | boot (s) | run (s, guest clock) | wall (s) |",
  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  (.[] | "| \(.kernel) | \(.where) | \(.clock) | \(win) | \(.passed) / \(.skipped) / \(.failed) / \(.errors) | \(.connections) | \(.median_width_ms | f) / \(.max_width_ms | f) | \(sw) | \(.validate_exit) | \(.boot_s) | \(.run_s | f) | \(.wall_s) |")
' <<<"$all")
cases=$(jq -r '
  (map(.kernel)) as $ks
  | ([.[].cases[].name] | unique) as $names
  | map({key: .kernel, value: (.cases | map({key: .name, value: .verdict}) | from_entries)}) | from_entries
  | . as $v
  | "| case | " + ($ks | join(" | ")) + " |",
    "| --- |" + ($ks | map(" --- |") | join("")),
    ($names[] as $n | "| \($n) | " + ($ks | map($v[.][$n] // "-") | join(" | ")) + " |")
' <<<"$all")
notes=$(jq -r '.[] | select(.calibration_note != "") | "* \(.kernel): \(.calibration_note)"' <<<"$all")
{
  echo "# Kernel matrix"
  echo
  echo "$rows"
  echo
  [ -z "$notes" ] || { echo "$notes"; echo; }
  echo "## Every case per kernel"
  echo
  echo "$cases"
} > "$dir/matrix.md"

# Markdown table rows into HTML rows: enough for these two tables, no other syntax.
md_table_to_html() {
  sed -e '/^| ---/d' -e 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g' \
      -e 's/^| \(.*\) |$/<tr><td>\1<\/td><\/tr>/' -e 's/ | /<\/td><td>/g' \
      -e 's/<td>fail<\/td>/<td class="fail">fail<\/td>/g; s/<td>error<\/td>/<td class="fail">error<\/td>/g'
}
{
  cat <<'EOF'
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>kaharness kernel matrix</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
td{border:1px solid #ccc;padding:.2em .6em}tr:first-child td{font-weight:bold;background:#eee}
td.fail{background:#f4c7c3}</style></head><body>
<h1>kaharness kernel matrix</h1>
EOF
  echo "<table>"; md_table_to_html <<<"$rows"; echo "</table>"
  [ -z "$notes" ] || { echo "<ul>"; sed -e 's/&/\&amp;/g; s/</\&lt;/g' -e 's/^\* \(.*\)/<li>\1<\/li>/' <<<"$notes"; echo "</ul>"; }
  echo "<h2>Every case per kernel</h2>"
  echo "<table>"; md_table_to_html <<<"$cases"; echo "</table>"
  echo "</body></html>"
} > "$dir/index.html"

echo "$rows"
echo "merged: $dir/junit.xml, $dir/matrix.md, $dir/index.html"
