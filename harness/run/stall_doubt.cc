#include "harness/run/stall_doubt.h"

#include <algorithm>
#include <map>

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
  // in which ticks went on, the ticks it did not take. A gap clipped to [due, end]
  // keeps of its missed time only what must lie inside (the rest may lie outside).
  const double from = origin_ms + due, to = origin_ms + end;
  std::map<int, double> held;
  std::map<int, const Stall*> longest;
  for (const auto& s : all) {
    const double overlap = std::min(s.to_ms, to) - std::max(s.from_ms, from);
    if (overlap <= 0) continue;
    const double inside = std::max(0.0, s.missed_ms() - (s.length_ms() - overlap));
    if (inside <= 0) continue;
    held[s.cpu] += inside;
    if (longest[s.cpu] == nullptr || s.missed_ms() > longest[s.cpu]->missed_ms()) longest[s.cpu] = &s;
  }
  int cpu = -1;
  for (const auto& [c, ms] : held)
    if (cpu < 0 || ms > held[cpu]) cpu = c;
  if (cpu < 0 || held[cpu] < *late) return std::nullopt;
  const Stall& s = *longest[cpu];
  return fmt::format("it came {:.1f} ms late while CPU {} ran nothing of this machine for {:.1f} ms in all "
                     "(longest {:.1f} ms, at {:.1f}..{:.1f} ms: a SCHED_FIFO thread there woke that late, {}), so "
                     "the kernel's timers could not run on time either",
                     *late, cpu, held[cpu], s.length_ms(), s.from_ms - origin_ms, s.to_ms - origin_ms, s.describe());
}

}  // namespace kah
