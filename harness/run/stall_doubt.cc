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
  // Only a CPU that stopped holds its timers back; one busy in the kernel ran them.
  std::vector<Stall> stops;
  for (const auto& s : all)
    if (s.stopped) stops.push_back(s);
  const auto most = most_stalled(stops, origin_ms + due, origin_ms + end);
  if (most.cpu < 0 || most.ms < *late) return std::nullopt;
  Stall longest{};
  for (const auto& s : stops)
    if (s.cpu == most.cpu && s.to_ms > origin_ms + due && s.from_ms < origin_ms + end &&
        s.to_ms - s.from_ms > longest.to_ms - longest.from_ms)
      longest = s;
  return fmt::format("it came {:.1f} ms late while CPU {} ran nothing of this machine for {:.1f} ms in all "
                     "(longest {:.1f} ms, at {:.1f}..{:.1f} ms: a SCHED_FIFO thread there woke that late and the CPU "
                     "took no timer interrupt meanwhile), so the kernel's timers could not run on time either",
                     *late, most.cpu, most.ms, longest.to_ms - longest.from_ms, longest.from_ms - origin_ms,
                     longest.to_ms - origin_ms);
}

}  // namespace kah
