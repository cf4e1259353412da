#include "harness/evidence/probe_check.h"

#include <algorithm>

#include <fmt/format.h>

namespace kah::evidence {

std::string to_string(ProbeVerdict v) {
  switch (v) {
    case ProbeVerdict::ok: return "ok";
    case ProbeVerdict::early: return "early";
    case ProbeVerdict::late: return "late";
    case ProbeVerdict::missing: return "missing";
    case ProbeVerdict::extra: return "extra";
  }
  return "?";
}

std::string window_text(const model::Window& w) {
  if (!w.bounded()) return fmt::format("after {:.1f} ms", w.earliest_ms);
  return fmt::format("within [{:.1f}, {:.1f}] ms", w.earliest_ms, w.latest_ms);
}

namespace {

// A time just outside a window's edge, with enough decimals to show that it is: "seen
// at 4081.6 ms" next to "within [4074.4, 4081.6] ms" read as a false verdict, though
// the comparison (full precision) was right: it was 4081.64 against 4081.58.
std::string beyond_edge(double seen_ms, double edge_ms) {
  for (int decimals = 1; decimals < 4; ++decimals)
    if (fmt::format("{:.{}f}", seen_ms, decimals) != fmt::format("{:.{}f}", edge_ms, decimals))
      return fmt::format("{:.{}f}", seen_ms, decimals);
  return fmt::format("{:.3f}", seen_ms);
}

}  // namespace

std::vector<ProbeCheck> check_probes(const FlowAnalysis& observed, const model::Prediction& predicted, double origin_ms,
                                     double until_ms) {
  std::vector<Probe> seen;
  if (observed.prober)
    for (const auto& p : observed.probes_of(*observed.prober))
      if (p.t_ms >= origin_ms && p.t_ms <= until_ms) seen.push_back(p);
  const double observed_for_ms = until_ms - origin_ms;

  const std::size_t expected_count = predicted.probes.size();
  std::vector<ProbeCheck> checks;
  for (std::size_t i = 0; i < std::max(expected_count, seen.size()); ++i) {
    ProbeCheck c;
    c.index = static_cast<int>(i);
    const int number = c.index + 1;
    if (i < seen.size()) {
      c.seen_ms = seen[i].t_ms - origin_ms;
      c.answer = seen[i].answer;
    }
    if (i >= expected_count) {
      c.verdict = ProbeVerdict::extra;
      c.message = fmt::format("probe {} not expected: seen at {:.1f} ms, the model predicts {} probe{}", number,
                              *c.seen_ms, expected_count, expected_count == 1 ? "" : "s");
      checks.push_back(std::move(c));
      continue;
    }
    const auto& window = predicted.probes[i].window;
    c.expected = window;
    c.certain = predicted.probes[i].certain;
    if (!c.seen_ms && window.latest_ms > observed_for_ms) {
      // Observation stopped inside (or before) the window: the probe may still come.
      c.verdict = ProbeVerdict::ok;
      c.message = fmt::format("probe {} not judged: expected {}, observation stopped at {:.1f} ms", number,
                              window_text(window), observed_for_ms);
    } else if (!c.seen_ms) {
      // The model marks a probe uncertain when only some timer alignments send it.
      c.verdict = c.certain ? ProbeVerdict::missing : ProbeVerdict::ok;
      c.message = c.certain ? fmt::format("probe {} missing: expected {}, not seen", number, window_text(window))
                            : fmt::format("probe {} not sent: allowed, the model expects it only for some timer "
                                          "alignments ({})", number, window_text(window));
    } else if (*c.seen_ms < window.earliest_ms) {
      c.verdict = ProbeVerdict::early;
      c.message = fmt::format("probe {} early: expected {}, seen at {} ms", number, window_text(window),
                              beyond_edge(*c.seen_ms, window.earliest_ms));
    } else if (*c.seen_ms > window.latest_ms) {
      c.verdict = ProbeVerdict::late;
      c.message = fmt::format("probe {} late: expected {}, seen at {} ms", number, window_text(window),
                              beyond_edge(*c.seen_ms, window.latest_ms));
    } else {
      c.verdict = ProbeVerdict::ok;
      c.message = fmt::format("probe {} ok: expected {}, seen at {:.1f} ms", number, window_text(window), *c.seen_ms);
    }
    checks.push_back(std::move(c));
  }
  return checks;
}

bool all_ok(const std::vector<ProbeCheck>& checks) {
  return std::all_of(checks.begin(), checks.end(), [](const ProbeCheck& c) { return c.verdict == ProbeVerdict::ok; });
}

}  // namespace kah::evidence
