#include "harness/run/stall_doubt.h"

#include <algorithm>

#include <fmt/format.h>

#include "harness/judge/judge.h"

namespace kah {

std::optional<std::string> stall_doubt(const ConnectionResult& r, double origin_ms, const std::vector<Stall>& all) {
  const auto late = lateness_only(r);
  if (!late) return std::nullopt;
  double due = r.expected.window.earliest_ms;
  double end = r.observed.at_ms;
  for (const auto& c : r.evidence.probe_checks) {
    if (c.seen_ms) end = std::max(end, *c.seen_ms);
    if (c.verdict == evidence::ProbeVerdict::late && c.expected) due = std::min(due, c.expected->earliest_ms);
  }
  // Only the time a CPU did not run holds its timers back: all of a stop, and of a gap
  // in which it took timer interrupts, the ticks it took none for.
  const double from = origin_ms + due, to = origin_ms + end;
  const auto most = most_stalled(all, from, to);
  if (most.cpu < 0 || most.ms < *late) return std::nullopt;
  const Stall* longest = nullptr;
  for (const auto& s : all)
    if (s.cpu == most.cpu && s.missed_within_ms(from, to) > 0 && (!longest || s.missed_ms() > longest->missed_ms()))
      longest = &s;
  const Stall& s = *longest;
  return fmt::format("it came {:.1f} ms late while CPU {} ran nothing of this machine for {:.1f} ms in all "
                     "(longest {:.1f} ms, at {:.1f}..{:.1f} ms: a SCHED_FIFO thread there woke that late, {}), so "
                     "the kernel's timers could not run on time either",
                     *late, most.cpu, most.ms, s.length_ms(), s.from_ms - origin_ms, s.to_ms - origin_ms, s.describe());
}

}  // namespace kah
