#include "harness/run/stall_doubt.h"

#include <algorithm>

#include <fmt/format.h>

#include "harness/judge/judge.h"

namespace kah {

std::optional<std::string> stall_doubt(const ConnectionResult& r, double origin_ms, const std::vector<Stall>& all) {
  const auto late = lateness_only(r);
  if (!late) return std::nullopt;
  // From the first late event's due time to the last one's observation: a stall after
  // that held back nothing that came late (a late probe's timer re-arms from its late
  // callback, so what follows it comes late by as much).
  double due = r.expected.window.earliest_ms;
  double end = r.observed.at_ms > r.expected.window.latest_ms ? r.observed.at_ms : -1e300;
  for (const auto& c : r.evidence.probe_checks) {
    if (c.verdict != evidence::ProbeVerdict::late || !c.expected || !c.seen_ms) continue;
    due = std::min(due, c.expected->earliest_ms);
    end = std::max(end, *c.seen_ms);
  }
  // A firing so late that the user timeout aborted it: late from the missing probe's window.
  std::string what = "it came", then;
  if (const auto* aborted_by = late_firing_abort(r)) {
    due = std::min(due, aborted_by->expected->earliest_ms);
    end = std::max(end, r.observed.at_ms);
    what = fmt::format("the timer due to send probe {} fired", aborted_by->index + 1);
    then = " and, the user timeout having passed, aborted";
  }
  // Any gap of one CPU may have held its timers back (Stall::held_within_ms).
  const double from = origin_ms + due, to = origin_ms + end;
  const auto most = most_stalled(all, from, to);
  if (most.cpu < 0 || most.ms < *late) return std::nullopt;
  const Stall* longest = nullptr;
  double longest_ms = 0;
  for (const auto& s : all)
    if (const double ms = s.held_within_ms(from, to); s.cpu == most.cpu && ms > longest_ms) {
      longest = &s;
      longest_ms = ms;
    }
  const Stall& s = *longest;
  return fmt::format("{} {:.1f} ms late{} while the timers of CPU {} may have waited for {:.1f} ms in all "
                     "(longest gap {:.1f} ms, at {:.1f}..{:.1f} ms: a SCHED_FIFO thread there woke that late, {}), "
                     "so the kernel could not run them on time",
                     what, *late, then, most.cpu, most.ms, s.length_ms(), s.from_ms - origin_ms, s.to_ms - origin_ms, s.describe());
}

}  // namespace kah
