#include "harness/cli/sweep.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "harness/report/report.h"

namespace kah {

std::vector<Case> sweep_cases(const SweepOptions& options) {
  std::mt19937_64 rng(options.seed);
  const auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::vector<Case> cases;
  for (int first = 0; first < options.connections; first += options.per_case) {
    // One fault per case (a case has one), alternating, so both kinds get half.
    const bool reboot = (first / options.per_case) % 2 == 1;
    Case c;
    c.name = fmt::format("sweep-{:03}-{}", first / options.per_case, reboot ? "reboot" : "blackhole");
    c.description = "random keepalive settings against a peer that " +
                    std::string(reboot ? "reboots" : "goes silent");
    c.file = fmt::format("sweep (seed {})", options.seed);
    FaultSpec fault;
    fault.kind = reboot ? FaultKind::peer_reboot : FaultKind::blackhole;
    c.faults.push_back(fault);
    c.expect.outcome = reboot ? ExpectedOutcome::reset : ExpectedOutcome::timeout;
    for (int i = first; i < std::min(options.connections, first + options.per_case); ++i) {
      ConnectionSpec spec;
      spec.name = fmt::format("s{:04}", i);
      spec.family = uniform(0, 1) == 0 ? Family::ipv4 : Family::ipv6;
      spec.keepalive.idle_s = uniform(1, 5);
      spec.keepalive.interval_s = uniform(1, 3);
      spec.keepalive.count = uniform(1, 5);
      spec.user_timeout_ms = uniform(0, 1) == 0 ? 0 : uniform(500, 8000);
      spec.where.file = c.file.string();
      c.connections.push_back(std::move(spec));
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

SweepSummary summarize_sweep(const RunResult& run) {
  SweepSummary s;
  s.position_deciles.assign(10, 0);
  std::vector<double> widths, percents;
  for (const auto& c : run.cases) {
    if (c.verdict == Verdict::error && (!c.error.empty() || c.connections.empty())) {  // the case could not run
      s.errors += static_cast<int>(std::max<std::size_t>(1, c.connections.size()));
      s.miss_messages.push_back(c.error);
      continue;
    }
    for (const auto& r : c.connections) {
      if (r.verdict == Verdict::interrupted) continue;  // undecided: neither a hit nor a miss
      if (r.verdict == Verdict::not_judged) {  // the machine held the kernel: neither a hit nor a miss
        ++s.not_judged;
        s.miss_messages.push_back(r.message);
        continue;
      }
      if (r.verdict == Verdict::error) {  // the harness could not test it (e.g. the fault came too late)
        ++s.errors;
        s.miss_messages.push_back(r.message);
        continue;
      }
      ++s.connections;
      const auto& w = r.expected.window;
      if (r.verdict != Verdict::pass) {
        ++s.misses;
        const auto& k = r.model_input.keepalive;
        s.miss_messages.push_back(fmt::format("{} [idle {} s, interval {} s, count {}, user timeout {} ms, {}]",
                                              r.message, k.idle_s, k.interval_s, k.count, k.user_timeout_ms,
                                              to_string(r.family)));
      }
      if (!w.bounded()) continue;
      widths.push_back(w.width_ms());
      if (r.prediction.nominal_ms > 0) percents.push_back(100.0 * w.width_ms() / r.prediction.nominal_ms);
      if (w.width_ms() > 0 && w.contains(r.observed.at_ms)) {
        const auto bin = static_cast<int>(10.0 * (r.observed.at_ms - w.earliest_ms) / w.width_ms());
        ++s.position_deciles[static_cast<std::size_t>(std::clamp(bin, 0, 9))];
      }
    }
  }
  s.median_width_ms = median(widths);
  s.median_width_pct = median(percents);
  if (!widths.empty()) s.max_width_ms = *std::max_element(widths.begin(), widths.end());
  if (!percents.empty()) s.max_width_pct = *std::max_element(percents.begin(), percents.end());
  return s;
}

std::string describe_sweep(const SweepSummary& s, const RunResult& run) {
  std::string out = fmt::format(
      "sweep: {} connections in {} cases, {:.1f} s (kernel {}, HZ {}, {})\n"
      "  misses (outside the window or another outcome): {}\n"
      "  connections the harness could not test (errors): {}\n"
      "  connections not judged (late while the machine held a CPU or stepped the clock): {}\n"
      "  window width: median {:.1f} ms ({:.2f} % of nominal), max {:.1f} ms ({:.2f} %)\n"
      "  where observations fall in their windows (earliest -> latest, tenths): {}\n",
      s.connections, run.cases.size(), run.wall_ms / 1000.0, run.kernel,
      run.hz ? std::to_string(*run.hz) : "unknown", calibration_text(run),
      s.misses, s.errors, s.not_judged, s.median_width_ms, s.median_width_pct, s.max_width_ms, s.max_width_pct,
      fmt::join(s.position_deciles, " "));
  out += fmt::format("  {}\n", kernel_trace_text(run));
  // Misses, errors and connections not judged alike: each message says which it is.
  for (const auto& m : s.miss_messages) out += fmt::format("  not passed: {}\n", m);
  return out;
}

nlohmann::json sweep_json(const SweepSummary& s, const RunResult& run) {
  return {{"connections", s.connections},     {"cases", run.cases.size()},
          {"misses", s.misses},               {"errors", s.errors}, {"not_judged", s.not_judged},
          {"median_width_ms", s.median_width_ms}, {"median_width_pct", s.median_width_pct},
          {"max_width_ms", s.max_width_ms},   {"max_width_pct", s.max_width_pct},
          {"position_deciles", s.position_deciles}, {"miss_messages", s.miss_messages},
          {"calibrated", run.calibrated},     {"hz", run.hz ? nlohmann::json(*run.hz) : nlohmann::json(nullptr)},
          {"calibration", run.calibration},   {"calibration_note", run.calibration_note},
          {"kernel", run.kernel},             {"wall_ms", run.wall_ms},
          {"kernel_trace", kernel_trace_text(run)}};
}

}  // namespace kah
