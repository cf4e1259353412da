// The sweep: measures the timing model against the running kernel with many real
// connections of random settings in one run (idle 1-5 s, interval 1-3 s, count
// 1-5, TCP_USER_TIMEOUT off or 500-8000 ms, IPv4 and IPv6, peers that go silent
// or reboot), and sums up how often the kernel left its window and how wide the
// windows were. A benchmark for people, not a test: it prints figures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/case/case.h"
#include "harness/judge/result.h"

namespace kah {

struct SweepOptions {
  int connections = 500;
  std::uint64_t seed = 1;
  int per_case = 25;  // connections per namespace pair
};

// The random cases of a sweep (deterministic for a seed).
std::vector<Case> sweep_cases(const SweepOptions& options);

struct SweepSummary {
  int connections = 0;
  int misses = 0;   // observed outside the window, or another outcome
  int errors = 0;   // connections of cases that could not run
  int not_judged = 0;  // missed while the machine held the kernel (not misses; Verdict::not_judged)
  double median_width_ms = 0, max_width_ms = 0;
  double median_width_pct = 0, max_width_pct = 0;  // of the nominal time
  // Where observations fall inside their windows: 10 bins from earliest to latest.
  std::vector<int> position_deciles;
  std::vector<std::string> miss_messages;  // of every connection that did not pass: misses, errors, not judged
};

SweepSummary summarize_sweep(const RunResult& run);
std::string describe_sweep(const SweepSummary& s, const RunResult& run);
nlohmann::json sweep_json(const SweepSummary& s, const RunResult& run);

}  // namespace kah
